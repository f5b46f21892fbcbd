"""The bot's Telegram side: long polling for `/start <token>` (link) and `/stop` (unlink).

One python-telegram-bot `Application` runs inside our event loop (initialize → start polling →
start, and the reverse on stop; never `run_polling`, which would own the loop). Its `Bot` is also
the one the `TelegramSender` sends promotions with, so there is a single connection pool.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Final

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes, filters
from telegram.request import HTTPXRequest

from services.contacts import mask_chat_id
from services.linking import LinkingService

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://api.telegram.org/bot"
POLL_TIMEOUT_SECONDS: Final = 10  # long-poll duration of one getUpdates

LINKED: Final = "Linked! You will get Rallypoint promotions here."
LINK_FAILED: Final = (
    "That link has expired or was already used; ask for a new one with /notify link telegram in Discord."
)
START_HELP: Final = (
    "Hi! I send Rallypoint promotions. To get them here, use /notify link telegram in Discord "
    "and open the link it gives you. Send /stop to stop them."
)
UNLINKED: Final = "Unlinked. You will not get Rallypoint promotions here any more."
NOT_LINKED: Final = "This chat is not linked to Rallypoint, so there is nothing to stop."
SOMETHING_WENT_WRONG: Final = "Sorry, something went wrong. Please try again in a minute."

# Both log request URLs, and Telegram's URLs contain the bot token.
_NOISY_LOGGERS: Final = ("httpx", "telegram")

Context = ContextTypes.DEFAULT_TYPE


def _request(pool_size: int) -> HTTPXRequest:
    return HTTPXRequest(
        connection_pool_size=pool_size,
        connect_timeout=5.0,
        read_timeout=10.0,
        write_timeout=10.0,
        pool_timeout=10.0,
    )


class TelegramSide:
    """Run the Telegram bot's update handling next to the Discord bot."""

    def __init__(
        self,
        token: str,
        base_url: str | None,
        linking: LinkingService,
        bot_username: str | None = None,
        *,
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
    ) -> None:
        self._linking = linking
        self._bot_username = (bot_username or "").strip().lstrip("@") or None
        self._poll_timeout = poll_timeout
        self._started = False
        self._app = (
            ApplicationBuilder()
            .token(token)
            .base_url(base_url or DEFAULT_BASE_URL)
            # Promotions are sent through this Bot too: room for ~30 sends in flight plus a spare.
            .request(_request(32))
            .get_updates_request(_request(1))
            .job_queue(None)
            .build()
        )
        private = filters.ChatType.PRIVATE
        self._app.add_handler(CommandHandler("start", self._on_start, filters=private))
        self._app.add_handler(CommandHandler("stop", self._on_stop, filters=private))
        self._app.add_error_handler(self._on_error)

    @property
    def bot(self) -> Bot:
        """The Bot to build the `TelegramSender` with (one Bot for updates and promotions)."""
        return self._app.bot

    @property
    def running(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Check the token, then poll for updates in the background."""
        for name in _NOISY_LOGGERS:
            logger = logging.getLogger(name)
            # The logger's own level (NOTSET included), so that lowering the root later, e.g. to
            # DEBUG, does not bring the URLs back.
            if logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)
        try:
            await self._app.initialize()
        except InvalidToken:
            await self._app.shutdown()
            # PTB's own message quotes the token; keep it out of logs and tracebacks.
            raise InvalidToken("Telegram rejected the bot token") from None
        except BaseException:
            await self._app.shutdown()
            raise
        try:
            updater = self._app.updater
            if updater is None:
                raise RuntimeError("the Telegram application has no updater")
            await updater.start_polling(
                timeout=self._poll_timeout,
                allowed_updates=[Update.MESSAGE],
                error_callback=self._on_polling_error,
            )
            await self._app.start()
        except BaseException:
            await self._stop_app()
            raise
        self._started = True
        actual = self._app.bot.username
        if self._bot_username and actual and actual.lower() != self._bot_username.lower():
            log.warning(
                "telegram.bot_username is %s but the token belongs to %s; deep links will use %s",
                self._bot_username,
                actual,
                self._linking.telegram_bot_username,
            )
        if self._linking.telegram_bot_username is None and actual:
            # Telegram is running, so deep links can be offered even without a configured username.
            self._linking.telegram_bot_username = actual
        log.info("Telegram bot @%s is polling for updates", actual)

    async def stop(self) -> None:
        """Stop polling, finish the updates in hand, then close the connections."""
        if not self._started:
            return
        self._started = False
        await self._stop_app()
        log.info("Telegram bot stopped")

    async def _stop_app(self) -> None:
        updater = self._app.updater
        try:
            if updater is not None and updater.running:
                await updater.stop()
            if self._app.running:
                await self._app.stop()
        finally:
            await self._app.shutdown()

    async def __aenter__(self) -> TelegramSide:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- handlers ------------------------------------------------------------------------------

    async def _on_start(self, update: Update, context: Context) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        args = context.args or []
        if not args:
            await message.reply_text(START_HELP)
            return
        player = await self._linking.complete_telegram_link(args[0], chat.id)
        await message.reply_text(LINKED if player is not None else LINK_FAILED)

    async def _on_stop(self, update: Update, context: Context) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        removed = await self._linking.unlink_telegram_chat(chat.id)
        await message.reply_text(UNLINKED if removed else NOT_LINKED)

    async def _on_error(self, update: object, context: Context) -> None:
        # PTB's default handler logs the whole update: the chat id and the /start token with it.
        error = context.error
        chat = update.effective_chat if isinstance(update, Update) else None
        where = mask_chat_id(str(chat.id)) if chat is not None else "(no chat)"
        log.error(
            "handling a Telegram update from chat %s failed: %s",
            where,
            type(error).__name__,
            exc_info=error,
        )
        if isinstance(update, Update) and update.effective_message is not None:
            with contextlib.suppress(TelegramError):
                await update.effective_message.reply_text(SOMETHING_WENT_WRONG)

    @staticmethod
    def _on_polling_error(error: TelegramError) -> None:
        # PTB's default logs the exception with its traceback at ERROR for every failed poll.
        log.warning("Telegram polling failed (%s: %s); retrying", type(error).__name__, error.message)


__all__ = ["TelegramSide"]
