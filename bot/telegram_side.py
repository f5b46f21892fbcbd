"""The bot's Telegram side: long polling for `/start <token>` (link), `/stop` (unlink) and the answers
pressed under an invitation (I'm in, running late, can't tonight).

Every link confirmation names the Discord account the chat now serves. A chat already linked to
another account is asked first, with two inline buttons (move / keep); only "move" moves it. An
answer is confirmed with `answerCallbackQuery`, and the invitation's keyboard is edited to tick it.

One python-telegram-bot `Application` runs inside our event loop (initialize → start polling →
start, and the reverse on stop; never `run_polling`, which would own the loop). It is built on the
process's one `Bot` (`services.delivery.telegram.build_telegram_bot`), which the `TelegramSender`
sends promotions with too.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Final

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from services.contacts import mask_chat_id
from services.delivery.telegram import rsvp_keyboard
from services.linking import LinkingService
from services.messages import rsvp_reply_text
from services.models import RsvpRecorded, TelegramLinked, TelegramMoveAsked
from services.rsvp import TELEGRAM_TEMPLATE, RsvpService, parse_answer

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS: Final = 10  # long-poll duration of one getUpdates

LINKED: Final = (
    "Linked to the Discord account {name}: its Rallypoint promotions come here now. Send /stop to stop them."
)
MOVE_ASKED: Final = (
    "This chat gets the Rallypoint promotions of the Discord account {current}. The link you opened would "
    "give it to the Discord account {player} instead. Move it only if {player} is you."
)
MOVE_BUTTON: Final = "Move to {player}"
KEEP_BUTTON: Final = "Keep {current}"
MOVED: Final = "Moved: this chat now gets the Rallypoint promotions of the Discord account {player}."
KEPT: Final = "Nothing changed: this chat stays linked as it was."
CHOICE_STALE: Final = "That question has expired or was answered; open a new link with /notify link telegram."
_NAME_IN_TEXT: Final = 64
_NAME_ON_BUTTON: Final = 32
_CHOICE: Final = re.compile(r"link:(move|keep):([0-9]{1,18})")
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

Context = ContextTypes.DEFAULT_TYPE


def deep_link_username(configured: str, bot: Bot) -> str | None:
    """The username deep links open: `telegram.bot_username` if set, else the token's own bot."""
    wanted = configured.strip().lstrip("@")
    actual = bot.username
    if wanted and actual and actual.lower() != wanted.lower():
        log.warning(
            "telegram.bot_username is %s but the token belongs to %s; deep links will use %s", wanted, actual, wanted
        )
    return wanted or actual or None


class TelegramSide:
    """Run the Telegram bot's update handling next to the Discord bot."""

    def __init__(
        self, bot: Bot, linking: LinkingService, rsvp: RsvpService, *, poll_timeout: int = POLL_TIMEOUT_SECONDS
    ) -> None:
        self._linking = linking
        self._rsvp = rsvp
        self._poll_timeout = poll_timeout
        self._started = False
        self._app = ApplicationBuilder().bot(bot).job_queue(None).build()
        private = filters.ChatType.PRIVATE
        self._app.add_handler(CommandHandler("start", self._on_start, filters=private))
        self._app.add_handler(CommandHandler("stop", self._on_stop, filters=private))
        self._app.add_handler(CallbackQueryHandler(self._on_link_choice, pattern=_CHOICE))
        self._app.add_handler(CallbackQueryHandler(self._on_answer, pattern=re.compile(f"^{TELEGRAM_TEMPLATE}$")))
        self._app.add_error_handler(self._on_error)

    @property
    def running(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Poll for updates in the background."""
        await self._app.initialize()
        try:
            updater = self._app.updater
            if updater is None:
                raise RuntimeError("the Telegram application has no updater")
            await updater.start_polling(
                timeout=self._poll_timeout,
                allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
                error_callback=self._on_polling_error,
            )
            await self._app.start()
        except BaseException:
            await self._stop_app()
            raise
        self._started = True
        log.info("Telegram bot @%s is polling for updates", self._app.bot.username)

    async def stop(self) -> None:
        """Stop polling and finish the updates in hand."""
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
            # PTB's shutdown also shuts the Bot down; the Bot's own close, later, finds it done.
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
        result = await self._linking.complete_telegram_link(args[0], chat.id)
        if isinstance(result, TelegramMoveAsked):
            player, current = _shown(result.player.display_name), _shown(result.current.display_name)
            buttons = [
                InlineKeyboardButton(_shown(MOVE_BUTTON.format(player=player), _NAME_ON_BUTTON),
                                     callback_data=f"link:move:{result.token_id}"),
                InlineKeyboardButton(_shown(KEEP_BUTTON.format(current=current), _NAME_ON_BUTTON),
                                     callback_data=f"link:keep:{result.token_id}"),
            ]
            await message.reply_text(
                MOVE_ASKED.format(current=current, player=player), reply_markup=InlineKeyboardMarkup([buttons])
            )
        elif isinstance(result, TelegramLinked):
            await message.reply_text(LINKED.format(name=_shown(result.player.display_name)))
        else:
            await message.reply_text(LINK_FAILED)

    async def _on_link_choice(self, update: Update, context: Context) -> None:
        query = update.callback_query
        found = _CHOICE.fullmatch(query.data or "") if query is not None else None
        if query is None or found is None or query.message is None:
            return
        chat = query.message.chat
        if chat.type != ChatType.PRIVATE:
            await query.answer()
            return
        action, token_id = found.group(1), int(found.group(2))
        if action == "move":
            moved = await self._linking.move_telegram_chat(token_id, chat.id)
            text = MOVED.format(player=_shown(moved.player.display_name)) if moved is not None else CHOICE_STALE
        else:
            text = KEPT if await self._linking.keep_telegram_chat(token_id, chat.id) else CHOICE_STALE
        await query.answer()
        await query.edit_message_text(text)  # the buttons go with the question

    async def _on_answer(self, update: Update, context: Context) -> None:
        """A button under an invitation: store the answer, confirm it, tick it on the keyboard."""
        query = update.callback_query
        parsed = parse_answer(TELEGRAM_TEMPLATE, query.data or "") if query is not None else None
        if query is None or parsed is None or query.message is None:
            return
        if query.message.chat.type != ChatType.PRIVATE:  # invitations only ever go to private chats
            await query.answer()
            return
        campaign_id, answer = parsed
        result = await self._rsvp.answer_on_telegram(query.message.chat.id, campaign_id, answer)
        try:
            await query.answer(rsvp_reply_text(result))
        except BadRequest as exc:
            # Answered already, or too old (an update handed over again after a restart): the answer
            # is stored all the same; only the toast is lost.
            log.info("an answer's confirmation could not be shown: %s", exc.message)
        if not isinstance(result, RsvpRecorded):
            return
        keyboard = rsvp_keyboard(campaign_id, answer)
        shown = query.message.reply_markup if isinstance(query.message, Message) else None
        if shown == keyboard:
            return  # the same answer again: Telegram refuses an edit that changes nothing
        try:
            await query.edit_message_reply_markup(keyboard)
        except BadRequest as exc:
            # The answer is stored either way; only the tick is out of date (a message too old to edit).
            log.info("the keyboard of an answered invitation could not be updated: %s", exc.message)

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
        where = mask_chat_id(chat.id) if chat is not None else "(no chat)"
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


def _shown(name: str, limit: int = _NAME_IN_TEXT) -> str:
    """A display name (or a button label) cut to fit, on one line."""
    flat = " ".join(name.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = ["TelegramSide"]
