"""SignalClient and SignalSender against the signal-cli-rest-api emulator over loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox.signal_emulator import SignalEmulator
from services.delivery.base import Outcome, OutgoingMessage
from services.delivery.signal import SignalClient, SignalSender, classify_send_answer, parse_send_timestamp
from services.models import Channel
from tests.emulators import bounded, running

BOT = "+15550000001"
ANA = "+38640123456"


@pytest.fixture
async def emulator() -> AsyncIterator[SignalEmulator]:
    async with running(SignalEmulator(number=BOT)) as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def client(session: aiohttp.ClientSession, emulator: SignalEmulator) -> SignalClient:
    return SignalClient(session, emulator.api_url, BOT, timeout=2)



@bounded
@pytest.mark.parametrize("shape", ["object", "list"])
async def test_sent_with_either_answer_shape(
    client: SignalClient, emulator: SignalEmulator, shape: str
) -> None:
    emulator.answer_shape = shape  # type: ignore[assignment]
    result = await client.send_text(ANA, "kick-off in 15 minutes")
    assert result.outcome is Outcome.SENT
    assert result.provider_message_id is not None and result.provider_message_id.isdigit()
    assert emulator.messages_to(ANA) == ["kick-off in 15 minutes"]


@bounded
async def test_recipient_is_normalised_before_sending(client: SignalClient, emulator: SignalEmulator) -> None:
    result = await client.send_text("+386 40 123 456", "hi")
    assert result.outcome is Outcome.SENT
    assert emulator.messages_to(ANA) == ["hi"]


@bounded
async def test_unregistered_recipient_is_permanent(client: SignalClient, emulator: SignalEmulator) -> None:
    emulator.unregistered_numbers.add(ANA)
    result = await client.send_text(ANA, "hi")
    assert result.outcome is Outcome.PERMANENT
    assert result.reason == "recipient is not registered on Signal"
    assert ANA not in result.reason


@bounded
async def test_rate_limit_is_retryable_and_logs_the_challenge_not_the_number(
    client: SignalClient, emulator: SignalEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="services")
    emulator.rate_limit_next(1)
    result = await client.send_text(ANA, "secret text")
    assert result.outcome is Outcome.RETRYABLE
    assert result.retry_after is None  # signal-cli-rest-api gives no Retry-After
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(emulator.challenge_tokens[0] in line for line in warnings)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert ANA not in logged and BOT not in logged and "secret text" not in logged
    assert "+386•••••56" in logged


@bounded
async def test_rate_limit_honours_a_retry_after_header(
    client: SignalClient, emulator: SignalEmulator
) -> None:
    emulator.rate_limit_next(1, retry_after=30)
    result = await client.send_text(ANA, "hi")
    assert result.outcome is Outcome.RETRYABLE
    assert result.retry_after == 30.0


@bounded
async def test_server_error_is_retryable(client: SignalClient, emulator: SignalEmulator) -> None:
    emulator.server_error_next(1)
    result = await client.send_text(ANA, "hi")
    assert result.outcome is Outcome.RETRYABLE
    assert emulator.messages_to(ANA) == []


@bounded
async def test_timeout_is_retryable(session: aiohttp.ClientSession, emulator: SignalEmulator) -> None:
    emulator.latency = 1.0
    impatient = SignalClient(session, emulator.api_url, BOT, timeout=0.1)
    result = await impatient.send_text(ANA, "hi")
    assert result.outcome is Outcome.RETRYABLE
    assert "timed out" in result.reason


@bounded
async def test_unreachable_api_is_retryable(client: SignalClient, emulator: SignalEmulator) -> None:
    await emulator.stop()
    result = await client.send_text(ANA, "hi")
    assert result.outcome is Outcome.RETRYABLE


@bounded
async def test_our_unregistered_account_is_permanent(
    session: aiohttp.ClientSession, emulator: SignalEmulator
) -> None:
    wrong = SignalClient(session, emulator.api_url, "+15559999999")
    result = await wrong.send_text(ANA, "hi")
    assert result.outcome is Outcome.PERMANENT
    assert result.reason == "the bot's Signal account is not registered"


@bounded
async def test_other_client_errors_are_permanent_with_a_reason(
    session: aiohttp.ClientSession, emulator: SignalEmulator
) -> None:
    misconfigured = SignalClient(session, emulator.api_url + "/wrong-prefix", BOT)
    result = await misconfigured.send_text(ANA, "hi")
    assert result.outcome is Outcome.PERMANENT
    assert result.reason.startswith("Signal API error 404")


@bounded
async def test_invalid_recipient_is_permanent_without_a_request(
    client: SignalClient, emulator: SignalEmulator
) -> None:
    result = await client.send_text("040 123 456", "hi")
    assert result.outcome is Outcome.PERMANENT
    assert emulator.requests_total == 0


@pytest.mark.parametrize(
    ("status", "body", "outcome", "reason_part"),
    [
        (400, '{"error": "Failed to send message due to rate limiting"}', Outcome.RETRYABLE, "rate limiting"),
        (
            400,
            '{"error": "Failed to send message: [413] Rate limit exceeded: 413"}',
            Outcome.RETRYABLE,
            "413",
        ),
        (
            400,
            '{"error": "Failed to send (some) messages:\\nNetwork failure for \\"+38640123456\\""}',
            Outcome.RETRYABLE,
            "+386•••••56",
        ),
        (400, '{"error": "Failed to send message"}', Outcome.PERMANENT, "Failed to send message"),
        (400, "not json at all", Outcome.PERMANENT, "not json at all"),
        (503, "", Outcome.RETRYABLE, "503"),
        (408, "", Outcome.RETRYABLE, "408"),
        (404, "404 page not found", Outcome.PERMANENT, "404"),
    ],
)
def test_error_classification(status: int, body: str, outcome: Outcome, reason_part: str) -> None:
    result = classify_send_answer(status, body, {}, "+386•••••56")
    assert result.outcome is outcome
    assert reason_part in result.reason
    assert "40123" not in result.reason


@pytest.mark.parametrize(
    ("body", "timestamp"),
    [
        ('{"timestamp": "1700000000123"}', "1700000000123"),
        ('{"timestamp": 1700000000123}', "1700000000123"),
        ('[{"timestamp": "1700000000123"}]', "1700000000123"),
        ("[1700000000123]", "1700000000123"),
        ("1700000000123", "1700000000123"),
        ("", None),
        ("null", None),
        ('"OK"', None),
        ("[]", None),
        ('{"timestamp": true}', None),
        ('{"timestamp": "12ab"}', None),
        ("<html>", None),
    ],
)
def test_parse_send_timestamp(body: str, timestamp: str | None) -> None:
    assert parse_send_timestamp(body) == timestamp


@bounded
async def test_sender_delegates_to_the_client(client: SignalClient, emulator: SignalEmulator) -> None:
    sender = SignalSender(client)
    assert sender.channel is Channel.SIGNAL
    assert sender.supports_dedup is False
    message = OutgoingMessage(Channel.SIGNAL, ANA, "we are starting now", nonce="n-1", player_id=1)
    result = await sender.send(message)
    assert result.outcome is Outcome.SENT
    assert emulator.messages_to(ANA) == ["we are starting now"]
