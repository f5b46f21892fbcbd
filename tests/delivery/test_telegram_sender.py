"""TelegramSender: a real PTB Bot against the loopback emulator; the pacer in virtual time."""

from __future__ import annotations

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")

import asyncio
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any

import pytest
from telegram import Bot
from telegram.error import InvalidToken
from telegram.request import HTTPXRequest

from bot.sandbox.telegram_emulator import TelegramEmulator
from services.contacts import mask_chat_id
from services.delivery.base import Outcome, OutgoingMessage
from services.delivery.telegram import (
    Pacer,
    PacingSchedule,
    TelegramSender,
    build_telegram_bot,
    retry_after_seconds,
)
from services.models import Channel
from tests.emulators import BOUND, bounded, running

TOKEN = "123456:sandbox"


class VirtualTime:
    """A clock whose sleeps finish in virtual time, earliest first, once the running tasks are blocked.

    (The part of `services.clock.Clock` that pacing reads: `monotonic()` and `sleep()`.)
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(delay, 0.0), self._seq, future))
        self._seq += 1
        await future

    async def run(self, *coros: Coroutine[Any, Any, Any]) -> list[Any]:
        tasks = [asyncio.ensure_future(c) for c in coros]
        while not all(t.done() for t in tasks):
            for _ in range(20):  # let every runnable task get to its next sleep
                await asyncio.sleep(0)
            if self._sleepers:
                when, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, when)
                future.set_result(None)
            else:
                await asyncio.sleep(0.001)  # tasks waiting on real I/O (the emulator)
        return [t.result() for t in tasks]


def message(address: str | int, text: str = "kick-off in 15 minutes") -> OutgoingMessage:
    return OutgoingMessage(Channel.TELEGRAM, str(address), text, nonce="n-1", player_id=1)


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    async with running(TelegramEmulator(token=TOKEN)) as emu:
        yield emu


@pytest.fixture
async def bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    async with asyncio.timeout(BOUND):
        tg = await build_telegram_bot(TOKEN, emulator.base_url)
    try:
        yield tg
    finally:
        await tg.shutdown()


@pytest.fixture
def sender(bot: Bot) -> TelegramSender:
    return TelegramSender(bot, pacer=None)



# -- the protocol ----------------------------------------------------------------------------


def test_channel_and_dedup(sender: TelegramSender) -> None:
    assert sender.channel is Channel.TELEGRAM
    assert sender.supports_dedup is False


@bounded
async def test_sent_carries_the_message_id(sender: TelegramSender, emulator: TelegramEmulator) -> None:
    first = await sender.send(message(4242, "first"))
    second = await sender.send(message(4242, "second"))
    assert first.outcome is Outcome.SENT
    assert first.provider_message_id == str(emulator.messages_to(4242)[0]["message_id"])
    assert second.provider_message_id == str(emulator.messages_to(4242)[1]["message_id"])
    assert [m["text"] for m in emulator.messages_to(4242)] == ["first", "second"]


@bounded
async def test_blocked_is_permanent(sender: TelegramSender, emulator: TelegramEmulator) -> None:
    emulator.blocked_chat_ids.add(13)
    result = await sender.send(message(13))
    assert result.outcome is Outcome.PERMANENT
    assert "blocked" in result.reason


@bounded
async def test_chat_not_found_is_permanent(sender: TelegramSender, emulator: TelegramEmulator) -> None:
    emulator.unknown_chat_ids.add(14)
    result = await sender.send(message(14))
    assert result.outcome is Outcome.PERMANENT
    assert result.reason.lower() == "chat not found"


@bounded
async def test_other_bad_request_is_permanent_with_the_description(sender: TelegramSender) -> None:
    result = await sender.send(message(15, "x" * 5000))
    assert result.outcome is Outcome.PERMANENT
    assert result.reason == "Message is too long"


@bounded
async def test_rate_limit_is_retryable_with_the_exact_retry_after(
    sender: TelegramSender, emulator: TelegramEmulator
) -> None:
    emulator.rate_limit_next(1, retry_after=17)
    limited = await sender.send(message(16))
    after = await sender.send(message(16))
    assert limited.outcome is Outcome.RETRYABLE
    assert limited.retry_after == 17.0
    assert after.outcome is Outcome.SENT


@bounded
async def test_server_error_is_retryable(sender: TelegramSender, emulator: TelegramEmulator) -> None:
    emulator.server_error_next(1)
    result = await sender.send(message(17))
    assert result.outcome is Outcome.RETRYABLE
    assert result.retry_after is None
    assert emulator.messages_to(17) == []


@bounded
async def test_timeout_is_retryable(emulator: TelegramEmulator) -> None:
    slow_bot = Bot(TOKEN, base_url=emulator.base_url, request=HTTPXRequest(read_timeout=0.1))
    try:
        await slow_bot.initialize()
        emulator.latency = 1.0
        result = await TelegramSender(slow_bot, pacer=None).send(message(18))
    finally:
        await slow_bot.shutdown()
    assert result.outcome is Outcome.RETRYABLE
    assert "timed out" in result.reason


@bounded
async def test_unreachable_api_is_retryable(sender: TelegramSender, emulator: TelegramEmulator) -> None:
    await emulator.stop()
    result = await sender.send(message(19))
    assert result.outcome is Outcome.RETRYABLE


@bounded
async def test_invalid_address_is_permanent_without_a_request(
    sender: TelegramSender, emulator: TelegramEmulator
) -> None:
    result = await sender.send(message("@someone"))
    assert result.outcome is Outcome.PERMANENT
    assert emulator.method_calls["sendmessage"] == 0


@bounded
async def test_logs_never_show_the_chat_id_or_the_text(
    sender: TelegramSender, emulator: TelegramEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    chat, text = 98765432, "secret rendezvous text"
    caplog.set_level(logging.DEBUG)
    emulator.rate_limit_next(1, retry_after=3)
    await sender.send(message(chat, text))
    emulator.server_error_next(1)
    await sender.send(message(chat, text))
    await sender.send(message(chat, text))
    emulator.blocked_chat_ids.add(chat)
    await sender.send(message(chat, text))
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("services.")]
    assert len(ours) >= 4
    assert not [line for line in ours if str(chat) in line or text in line]
    assert any("•••32" in line for line in ours)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (timedelta(seconds=7), 7.0), (timedelta(milliseconds=2500), 2.5), (2.5, 2.5)],
)
def test_retry_after_seconds_accepts_int_and_timedelta(
    value: int | float | timedelta, seconds: float
) -> None:
    assert retry_after_seconds(value) == seconds


@pytest.mark.parametrize(
    ("chat_id", "masked"), [(98765432, "•••32"), ("-1001234", "•••34"), (7, "•••"), ("", "•••")]
)
def test_mask_chat_id_keeps_at_most_two_digits(chat_id: object, masked: str) -> None:
    assert mask_chat_id(chat_id) == masked


async def test_build_telegram_bot_initialises_against_the_emulator(bot: Bot) -> None:
    assert bot.username == "rallypoint_bot"
    assert bot.base_url.endswith("/bot" + TOKEN)


@bounded
async def test_build_telegram_bot_keeps_the_token_out_of_the_error(emulator: TelegramEmulator) -> None:
    with pytest.raises(InvalidToken) as info:
        await build_telegram_bot("999:wrong-secret", emulator.base_url)
    assert "wrong-secret" not in str(info.value)
    assert info.value.__suppress_context__


# -- pacing, in virtual time -----------------------------------------------------------------


def test_schedule_spaces_sixty_chats_evenly_over_two_seconds() -> None:
    schedule = PacingSchedule(rate=30.0, per_chat_interval=1.0)
    starts = [schedule.reserve(chat, now=0.0) for chat in range(60)]
    assert starts == pytest.approx([i / 30 for i in range(60)])
    # 60 sends: the last starts 59/30 s after the first, i.e. the batch takes about 2 s at 30/s,
    # spread evenly rather than 30 at once and a one-second stall.
    assert starts[-1] == pytest.approx(1.9667, abs=1e-3)
    assert sum(1 for s in starts if s < 1.0 - 1e-9) == 30  # 30 in the first second, not 60


def test_schedule_gives_no_burst_credit_after_idling() -> None:
    schedule = PacingSchedule(rate=30.0, per_chat_interval=1.0)
    schedule.reserve(1, now=0.0)
    assert schedule.reserve(2, now=10.0) == 10.0
    assert schedule.reserve(3, now=10.0) == pytest.approx(10.0 + 1 / 30)


def test_schedule_tracks_each_chat_separately() -> None:
    schedule = PacingSchedule(rate=30.0, per_chat_interval=1.0)
    assert schedule.chat_ready_at(1) == float("-inf")
    start = schedule.reserve(1, now=5.0)
    assert schedule.chat_ready_at(1) == start + 1.0
    assert schedule.chat_ready_at(2) == float("-inf")


def test_schedule_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        PacingSchedule(rate=0.0, per_chat_interval=1.0)
    with pytest.raises(ValueError):
        PacingSchedule(rate=30.0, per_chat_interval=-1.0)


async def test_concurrent_callers_get_slots_in_arrival_order() -> None:
    clock = VirtualTime()
    pacer = Pacer(clock, 30.0, 1.0)
    async with asyncio.timeout(BOUND):
        starts = await clock.run(*(pacer.wait_turn(chat) for chat in range(60)))
    assert starts == pytest.approx([i / 30 for i in range(60)])
    assert clock.now == pytest.approx(59 / 30)


async def test_a_busy_chat_waits_without_holding_up_the_others() -> None:
    clock = VirtualTime()
    pacer = Pacer(clock, 30.0, 1.0)
    busy = [pacer.wait_turn(0) for _ in range(3)]
    others = [pacer.wait_turn(chat) for chat in range(1, 31)]
    async with asyncio.timeout(BOUND):
        starts = await clock.run(*busy, *others)
    busy_starts, other_starts = starts[:3], starts[3:]
    assert busy_starts[1] - busy_starts[0] >= 1.0 - 1e-9
    assert busy_starts[2] - busy_starts[1] >= 1.0 - 1e-9
    # 31 sends to distinct chats ahead of the busy chat's second message fit in ~1 s.
    assert max(other_starts) == pytest.approx(30 / 30)
    ordered = sorted(starts)
    assert all(b - a >= 1 / 30 - 1e-9 for a, b in itertools.pairwise(ordered))


async def test_sender_waits_for_its_turn(bot: Bot, emulator: TelegramEmulator) -> None:
    clock = VirtualTime()
    sender = TelegramSender(bot, pacer=Pacer(clock))
    sends = [sender.send(message(1, f"to one #{i}")) for i in range(3)]
    sends += [sender.send(message(2, "to two"))]
    async with asyncio.timeout(BOUND):
        results = await clock.run(*sends)
    assert all(r.outcome is Outcome.SENT for r in results)
    assert [m["text"] for m in emulator.messages_to(1)] == ["to one #0", "to one #1", "to one #2"]
    assert clock.now == pytest.approx(2.0)  # three messages to one chat, one second apart


@bounded
async def test_an_invitation_carries_an_inline_keyboard_of_answers(
    sender: TelegramSender, emulator: TelegramEmulator
) -> None:
    invitation = OutgoingMessage(Channel.TELEGRAM, "4242", "kick-off", nonce="n-1", player_id=1, rsvp_campaign_id=42)
    assert (await sender.send(invitation)).outcome is Outcome.SENT
    assert (await sender.send(message(4242, "plain"))).outcome is Outcome.SENT
    invited, plain = emulator.messages_to(4242)
    assert invited["reply_markup"] == {"inline_keyboard": [[
        {"text": "I'm in", "callback_data": "rsvp:42:in"},
        {"text": "Running late", "callback_data": "rsvp:42:late"},
        {"text": "Can't tonight", "callback_data": "rsvp:42:out"},
    ]]}
    assert "reply_markup" not in plain
