"""Signal replies to invitations: the bot's Signal side reading `/v1/receive` of the signal-cli-rest-api
emulator over loopback, in both of its modes, with the real engine over a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import aiohttp
import pytest

from bot.sandbox.signal_emulator import SignalEmulator
from bot.signal_side import SignalSide
from services.clock import SystemClock
from services.delivery.signal import IncomingText, SignalClient, incoming_text, parse_received
from services.messages import RSVP_CONFIRMATIONS, RSVP_REFUSALS
from services.models import PlayerStatus, PreferredChannel, RsvpAnswer, RsvpRefusal
from tests.emulators import bounded, running
from tests.support import PROMOTER_ID, Harness, local, make_harness, opted_in

BOT = "+15550000001"
BOR = "+38640111222"
EVA = "+38640555555"  # linked, but not invited tonight
STRANGER = "+38640999999"
DAY = date(2026, 11, 24)
QUICK = 0.05  # seconds between polls in these tests


@pytest.fixture
async def emulator() -> AsyncIterator[SignalEmulator]:
    async with running(SignalEmulator(number=BOT)) as emu:
        yield emu


@pytest.fixture
async def h(tmp_path) -> AsyncIterator[Harness]:
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    await harness.add_player(2, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL), signal=BOR)
    await harness.add_player(5, "Eva", status=PlayerStatus.MAYBE, signal=EVA)
    await harness.engine.promote.create(harness.actor())
    yield harness
    await harness.engine.db.close()


@pytest.fixture
async def side(emulator: SignalEmulator, h: Harness) -> AsyncIterator[SignalSide]:
    async with aiohttp.ClientSession() as http:
        replier = SignalClient(http, emulator.api_url, BOT, timeout=2)
        async with SignalSide(
            http, emulator.api_url, BOT, h.engine.rsvp, replier, SystemClock(), interval=QUICK
        ) as running_side:
            yield running_side


async def replies(emulator: SignalEmulator, number: str, count: int) -> list[str]:
    async with asyncio.timeout(5):
        while len(emulator.messages_to(number)) < count:
            await asyncio.sleep(0.01)
    return emulator.messages_to(number)


async def answers(h: Harness) -> dict[int, RsvpAnswer]:
    campaign = await h.engine.campaign_store.for_date(DAY)
    assert campaign is not None
    return await h.engine.rsvp_store.latest(campaign.id)


@bounded
async def test_json_rpc_mode_a_digit_from_a_linked_number_answers_and_is_confirmed(
    emulator: SignalEmulator, h: Harness, side: SignalSide
) -> None:
    await emulator.wait_for_receiver()  # json-rpc (the default): the side listens on the WebSocket
    emulator.queue_text(BOR, "2")
    assert await replies(emulator, BOR, 1) == [RSVP_CONFIRMATIONS[RsvpAnswer.LATE]]
    assert list((await answers(h)).values()) == [RsvpAnswer.LATE]
    emulator.queue_text(EVA, "1")  # linked, no invitation today: told so
    assert await replies(emulator, EVA, 1) == [RSVP_REFUSALS[RsvpRefusal.NO_INVITATION]]


@bounded
@pytest.mark.parametrize("mode", ["normal", "native"])
async def test_polling_modes_answer_and_ignore_everything_else(
    emulator: SignalEmulator, h: Harness, mode: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.mode = mode
    for text in ("hello", "1 2", "4"):  # not answers
        emulator.queue_text(BOR, text)
    emulator.queue_receipt(BOR)
    emulator.queue_typing(BOR)
    emulator.queue_text(STRANGER, "1")  # nobody linked that number: silence
    emulator.queue_text(BOR, "3", hide_number=True)  # no number to know the sender by
    emulator.queue_text(BOR, " 3 ")
    caplog.set_level(logging.DEBUG, logger="bot.signal_side")
    async with aiohttp.ClientSession() as http:
        replier = SignalClient(http, emulator.api_url, BOT, timeout=2)
        async with SignalSide(http, emulator.api_url, BOT, h.engine.rsvp, replier, SystemClock(), interval=QUICK):
            assert await replies(emulator, BOR, 1) == [RSVP_CONFIRMATIONS[RsvpAnswer.OUT]]
    assert emulator.pending_incoming == 0
    assert emulator.messages_to(STRANGER) == [] and len(emulator.messages_to(BOR)) == 1
    assert list((await answers(h)).values()) == [RsvpAnswer.OUT]
    async with h.engine.db.read() as tx:
        stored = await tx.fetchall("SELECT count(*) AS n FROM rsvps")
    assert stored[0]["n"] == 1  # nothing else was stored
    logged = caplog.text
    for secret in (BOR, STRANGER, "hello"):  # neither numbers nor what people wrote reach the log
        assert secret not in logged, secret


@bounded
async def test_a_failing_api_is_logged_once_per_streak(
    emulator: SignalEmulator, h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.mode = "normal"
    caplog.set_level(logging.INFO, logger="bot.signal_side")
    async with aiohttp.ClientSession() as http:
        replier = SignalClient(http, emulator.api_url, BOT, timeout=2)
        # An account the API does not know: every poll is refused (400).
        async with SignalSide(http, emulator.api_url, "+15559999999", h.engine.rsvp, replier, SystemClock(),
                              interval=QUICK):
            async with asyncio.timeout(5):
                while emulator.receive_requests < 5:
                    await asyncio.sleep(0.01)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "HTTP 400" in warnings[0].getMessage()
    assert "15559999999" not in caplog.text


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"envelope": {"sourceNumber": BOR, "dataMessage": {"message": "1"}}}, IncomingText(BOR, "1")),
        ({"envelope": {"sourceNumber": None, "source": "uuid", "dataMessage": {"message": "1"}}}, None),
        ({"envelope": {"sourceNumber": BOR, "receiptMessage": {"isRead": True}}}, None),
        ({"envelope": {"sourceNumber": BOR, "dataMessage": {"message": None}}}, None),  # an attachment alone
        ({"envelope": {"sourceNumber": 38640, "dataMessage": {"message": "1"}}}, None),
        ({"envelope": "x"}, None),
        ([], None),
        (None, None),
    ],
)
def test_what_counts_as_a_text(item: Any, expected: IncomingText | None) -> None:
    assert incoming_text(item) == expected


def test_a_polling_answer_is_a_json_array() -> None:
    assert parse_received('[{"envelope": {}}]') == [{"envelope": {}}]
    assert parse_received("") == []
    for bad in ('{"envelope": {}}', "not json", "[1,"):
        with pytest.raises(ValueError):
            parse_received(bad)
