"""The signal-cli-rest-api emulator, over raw HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from bot.sandbox.signal_emulator import SignalEmulator
from tests.emulators import running

BOT = "+15550000001"
ANA = "+38640123456"
BOUND = 5  # seconds any single test may take


@pytest.fixture
async def emulator() -> AsyncIterator[SignalEmulator]:
    async with running(SignalEmulator(number=BOT)) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(
    http: aiohttp.ClientSession, emulator: SignalEmulator, body: Any
) -> tuple[int, Any, Mapping[str, str]]:
    async with asyncio.timeout(BOUND):
        async with http.post(emulator.api_url + "/v2/send", json=body) as resp:
            text = await resp.text()
            try:
                data: Any = await resp.json(content_type=None)
            except ValueError:
                data = text
            return resp.status, data, resp.headers


def body(*recipients: str, message: str = "kick-off in 15 minutes", number: str = BOT) -> dict[str, Any]:
    return {"message": message, "number": number, "recipients": list(recipients)}


async def test_api_url_is_loopback(emulator: SignalEmulator) -> None:
    assert emulator.api_url.startswith("http://127.0.0.1:")


async def test_about_and_health(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(BOUND):
        async with http.get(emulator.api_url + "/v1/about") as resp:
            about = await resp.json()
        async with http.get(emulator.api_url + "/v1/health") as health:
            assert health.status == 204
    assert "v2" in about["versions"]
    assert "v2/send" in about["capabilities"]


async def test_send_answers_201_with_a_timestamp_string(
    emulator: SignalEmulator, http: aiohttp.ClientSession
) -> None:
    status, data, _ = await send(http, emulator, body(ANA))
    assert status == 201
    assert set(data) == {"timestamp"}
    assert data["timestamp"].isdigit() and len(data["timestamp"]) >= 13  # milliseconds
    assert emulator.messages_to(ANA) == ["kick-off in 15 minutes"]
    assert emulator.sent_total == 1


async def test_list_answer_shape(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    emulator.answer_shape = "list"
    status, data, _ = await send(http, emulator, body(ANA))
    assert status == 201
    assert isinstance(data, list) and data[0]["timestamp"].isdigit()


async def test_timestamps_are_unique(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    stamps = [(await send(http, emulator, body(ANA)))[1]["timestamp"] for _ in range(5)]
    assert len(set(stamps)) == 5


async def test_single_recipient_fallback_field(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    status, _, _ = await send(http, emulator, {"message": "hi", "number": BOT, "recipient": ANA})
    assert status == 201
    assert emulator.messages_to(ANA) == ["hi"]


async def test_unregistered_recipient(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    emulator.unregistered_numbers.add(ANA)
    status, data, _ = await send(http, emulator, body(ANA))
    assert status == 400
    assert data["error"].startswith("Failed to send (some) messages:")
    assert f'Unregistered user "{ANA}"' in data["error"]
    assert emulator.messages_to(ANA) == []
    assert emulator.sent_total == 0


async def test_rate_limit_challenge(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    emulator.rate_limit_next(1)
    status, data, headers = await send(http, emulator, body(ANA))
    assert status == 429
    assert data["error"].startswith("Failed to send message due to rate limiting.")
    assert "/v1/accounts/{number}/rate-limit-challenge" in data["error"]
    assert data["challenge_tokens"] == emulator.challenge_tokens
    assert data["account"] == BOT
    assert "Retry-After" not in headers  # signal-cli-rest-api sends none
    assert emulator.messages_to(ANA) == []
    status, _, _ = await send(http, emulator, body(ANA))
    assert status == 201


async def test_rate_limit_with_retry_after_header(
    emulator: SignalEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.rate_limit_next(2, retry_after=30)
    for _ in range(2):
        status, _, headers = await send(http, emulator, body(ANA))
        assert status == 429
        assert headers["Retry-After"] == "30"
    assert len(set(emulator.challenge_tokens)) == 2
    assert (await send(http, emulator, body(ANA)))[0] == 201


async def test_server_error(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    emulator.server_error_next(1)
    status, data, _ = await send(http, emulator, body(ANA))
    assert status == 502
    assert data == "502 Bad Gateway"
    assert (await send(http, emulator, body(ANA)))[0] == 201


async def test_wrong_sender_number(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    status, data, _ = await send(http, emulator, body(ANA, number="+15559999999"))
    assert status == 400
    assert "is not registered" in data["error"]
    assert emulator.sent_total == 0


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("not an object", "invalid request"),
        ({"message": "hi", "number": BOT, "recipients": []}, "at least one recipient"),
        ({"message": "hi", "recipients": [ANA]}, "valid number"),
        ({"message": 5, "number": BOT, "recipients": [ANA]}, "invalid request"),
    ],
)
async def test_malformed_requests_are_400(
    emulator: SignalEmulator, http: aiohttp.ClientSession, payload: Any, error: str
) -> None:
    status, data, _ = await send(http, emulator, payload)
    assert status == 400
    assert error in data["error"]
    assert emulator.sent_total == 0


async def test_registered_recipients_of_a_mixed_request_still_receive(
    emulator: SignalEmulator, http: aiohttp.ClientSession
) -> None:
    other = "+38641000000"
    emulator.unregistered_numbers.add(other)
    status, _, _ = await send(http, emulator, body(ANA, other))
    assert status == 400
    assert emulator.messages_to(ANA) == ["kick-off in 15 minutes"]
    assert emulator.messages_to(other) == []


def test_fault_injection_refuses_nonsense() -> None:
    emu = SignalEmulator()
    with pytest.raises(ValueError):
        emu.rate_limit_next(-1)
    with pytest.raises(ValueError):
        emu.server_error_next(-1)
    with pytest.raises(RuntimeError):
        _ = emu.api_url
