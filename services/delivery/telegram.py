"""Telegram delivery: one paced `sendMessage` per attempt through python-telegram-bot.

Telegram's limits for bots (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
about 30 messages per second overall and at most one message per second in a single chat. The
pacer keeps to both: every send reserves the next free slot of a smooth 30/s schedule (first come,
first served, no bursts), after waiting for its chat to be ready. Telegram has no idempotent send,
so the sender reports `supports_dedup = False` and the dispatcher never resends an ambiguous attempt.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from datetime import timedelta

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from services.clock import Clock
from services.contacts import mask_chat_id
from services.delivery.base import OutgoingMessage, SendResult
from services.messages import rsvp_label
from services.models import Channel, RsvpAnswer
from services.rsvp import telegram_callback_data

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
# Room for ~30 sends in flight (one second of traffic at the global limit) plus a spare.
_POOL_SIZE = 32
_PRUNE_AT = 4096  # chats remembered by the pacer before forgetting the ones long ready
# Both log request URLs, and Telegram's URLs contain the bot token.
_NOISY_LOGGERS = ("httpx", "telegram")


def retry_after_seconds(value: int | float | timedelta) -> float:
    """Seconds from `RetryAfter.retry_after`, an int (PTB default) or a timedelta (PTB_TIMEDELTA=1)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def rsvp_keyboard(campaign_id: int, chosen: RsvpAnswer | None = None) -> InlineKeyboardMarkup:
    """The answers under an invitation, one row of three buttons; `chosen` is ticked (the current answer)."""
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(rsvp_label(answer, chosen), callback_data=telegram_callback_data(campaign_id, answer))
        for answer in RsvpAnswer
    ]])


class PacingSchedule:
    """The pacing arithmetic, free of clocks and sleeping, so that tests can drive it directly.

    Global: a virtual schedule with one slot every `1 / rate` seconds (GCRA without burst credit),
    handed out in call order. Per chat: a chat is ready `per_chat_interval` after its previous
    slot. Callers first wait for their chat to be ready and only then reserve a global slot, so a
    busy chat never holds the global schedule up for everyone else.
    """

    def __init__(self, rate: float, per_chat_interval: float) -> None:
        if rate <= 0 or per_chat_interval < 0:
            raise ValueError("rate must be > 0 and per_chat_interval >= 0")
        self.spacing = 1.0 / rate
        self.per_chat_interval = per_chat_interval
        self._next_slot = -math.inf
        self._last: dict[int, float] = {}

    def chat_ready_at(self, chat_id: int) -> float:
        """When `chat_id` may receive its next message."""
        return self._last.get(chat_id, -math.inf) + self.per_chat_interval

    def reserve(self, chat_id: int, now: float) -> float:
        """Reserve the earliest free global slot at or after `now` for `chat_id`; return its time."""
        start = max(now, self._next_slot)
        self._next_slot = start + self.spacing
        self._last[chat_id] = start
        if len(self._last) > _PRUNE_AT:
            horizon = now - self.per_chat_interval
            self._last = {c: t for c, t in self._last.items() if t > horizon}
        return start


class Pacer:
    """Wait for a send's turn under a `PacingSchedule`; sends to one chat keep their order.

    The defaults are Telegram's limits: 30 messages per second, one per second in a chat.
    """

    def __init__(self, clock: Clock, rate: float = 30.0, per_chat_interval: float = 1.0) -> None:
        self.schedule = PacingSchedule(rate, per_chat_interval)
        self._clock = clock
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: Counter[int] = Counter()

    async def wait_turn(self, chat_id: int) -> float:
        """Return once a message to `chat_id` may be sent, at the returned clock time."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._users[chat_id] += 1
        try:
            # The chat lock is held until the slot is reached, so the next message to the same
            # chat measures its interval from this one's real slot.
            async with lock:
                await self._sleep_until(self.schedule.chat_ready_at(chat_id))
                start = self.schedule.reserve(chat_id, self._clock.monotonic())
                await self._sleep_until(start)
                return start
        finally:
            self._users[chat_id] -= 1
            if self._users[chat_id] == 0:
                del self._users[chat_id]
                del self._locks[chat_id]

    async def _sleep_until(self, when: float) -> None:
        delay = when - self._clock.monotonic()
        if delay > 0:
            await self._clock.sleep(delay)


class TelegramSender:
    """Send one Telegram message per attempt and classify Telegram's answer."""

    def __init__(self, bot: Bot, pacer: Pacer | None) -> None:
        """`pacer` None sends without pacing (tests and benchmarks that measure the raw sender)."""
        self._bot = bot
        self._pacer = pacer

    @property
    def channel(self) -> Channel:
        return Channel.TELEGRAM

    @property
    def supports_dedup(self) -> bool:
        return False

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Send `message.text` to the chat id in `message.address`; classify the outcome."""
        try:
            chat_id = int(message.address)
        except ValueError:
            log.warning("Telegram address for player %s is not a chat id", message.player_id)
            return SendResult.permanent("invalid Telegram chat id")
        if self._pacer is not None:
            await self._pacer.wait_turn(chat_id)
        if message.on_wire is not None:
            await message.on_wire()
        masked = mask_chat_id(chat_id)
        try:
            markup = rsvp_keyboard(message.rsvp_campaign_id) if message.rsvp_campaign_id is not None else None
            sent = await self._bot.send_message(chat_id=chat_id, text=message.text, reply_markup=markup)
        except RetryAfter as exc:
            seconds = retry_after_seconds(exc.retry_after)
            log.warning("Telegram flood control for chat %s: retry in %.0f s", masked, seconds)
            return SendResult.retryable("Telegram rate limit (429)", retry_after=seconds)
        except Forbidden as exc:
            # Blocked by the user, kicked, user deactivated: nothing to retry on this channel.
            log.info("Telegram refused chat %s: %s", masked, exc.message)
            return SendResult.permanent(exc.message)
        except BadRequest as exc:
            # "Chat not found", "Message is too long", ...; PTB strips the "Bad Request: " prefix.
            log.info("Telegram rejected the message to chat %s: %s", masked, exc.message)
            return SendResult.permanent(exc.message)
        except TimedOut:
            log.warning("Telegram send to chat %s timed out", masked)
            return SendResult.retryable("Telegram request timed out")
        except NetworkError as exc:
            # Connection failures and 5xx answers (PTB maps 502 and unknown statuses here).
            log.warning("Telegram send to chat %s failed: %s", masked, exc.message)
            return SendResult.retryable(f"Telegram network error: {exc.message}")
        except InvalidToken:
            log.error("Telegram rejected the bot token")
            return SendResult.permanent("Telegram rejected the bot token")
        except ChatMigrated:
            return SendResult.permanent("chat migrated to a supergroup")
        except TelegramError as exc:
            log.warning("Telegram send to chat %s failed: %s", masked, exc.message)
            return SendResult.permanent(exc.message)
        log.debug("Telegram message %s sent to chat %s", sent.message_id, masked)
        return SendResult.sent(str(sent.message_id))


def _request(pool_size: int) -> HTTPXRequest:
    return HTTPXRequest(
        connection_pool_size=pool_size,
        connect_timeout=5.0,
        read_timeout=10.0,
        write_timeout=10.0,
        pool_timeout=10.0,
    )


def _quiet_noisy_loggers() -> None:
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        # The logger's own level (NOTSET included), so that lowering the root later, e.g. to
        # DEBUG, does not bring the URLs back.
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


async def build_telegram_bot(token: str, base_url: str | None) -> Bot:
    """Create and initialise the one `telegram.Bot` of the process; `base_url` empty means Telegram's own.

    It sends promotions (`TelegramSender`) and polls for updates (`bot.telegram_side`), each over its
    own connection pool; `bot.username` is known once this returns.
    """
    _quiet_noisy_loggers()
    bot = Bot(
        token,
        base_url=base_url or DEFAULT_BASE_URL,
        request=_request(_POOL_SIZE),
        get_updates_request=_request(1),
    )
    try:
        await bot.initialize()
    except InvalidToken:
        await bot.shutdown()
        # PTB's own message quotes the token; keep it out of logs and tracebacks.
        raise InvalidToken("Telegram rejected the bot token") from None
    except BaseException:
        await bot.shutdown()
        raise
    return bot
