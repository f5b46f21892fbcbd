"""The signal-cli-rest-api emulator, over raw HTTP and WebSocket on loopback (what the bot's client speaks).

Sending (`/v2/send`), then receiving (`/v1/receive/{number}`: a GET in normal/native mode, a WebSocket
in json-rpc mode).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from bot.sandbox.signal_emulator import SignalEmulator
from tests.emulators import running

BOT = "+15550000001"
ANA = "+38640123456"
BEN = "+38640999888"
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


# ---- receiving --------------------------------------------------------------------------------


async def receive(
    http: aiohttp.ClientSession, emulator: SignalEmulator, number: str = BOT, **query: str
) -> tuple[int, str, Any]:
    """GET /v1/receive/<number>; return the status, the content type and the parsed body."""
    url = f"{emulator.api_url}/v1/receive/{number.replace('+', '%2B')}"
    async with asyncio.timeout(BOUND), http.get(url, params={"timeout": "0", **query}) as resp:
        return resp.status, resp.headers["Content-Type"], json.loads(await resp.text())


# ---- /v1/receive, normal / native mode: a GET answers a JSON array ----------------------------


@pytest.mark.parametrize("mode", ["normal", "native"])
async def test_a_get_serves_the_queued_messages_once(
    emulator: SignalEmulator, http: aiohttp.ClientSession, mode: str
) -> None:
    emulator.mode = mode  # type: ignore[assignment]
    queued = emulator.queue_text(ANA, "1", name="Ana")
    emulator.queue_text(BEN, "3")
    status, content_type, items = await receive(http, emulator)
    assert status == 200 and content_type == "text/plain; charset=utf-8"  # as the real server sends it
    assert items == [queued, items[1]]
    first = items[0]
    assert first["account"] == BOT
    envelope = first["envelope"]
    assert (envelope["source"], envelope["sourceNumber"], envelope["sourceName"]) == (ANA, ANA, "Ana")
    assert envelope["sourceUuid"] and envelope["sourceDevice"] == 1
    assert envelope["dataMessage"]["message"] == "1"
    assert envelope["dataMessage"]["timestamp"] == envelope["timestamp"]
    assert items[1]["envelope"]["sourceNumber"] == BEN
    assert await receive(http, emulator) == (200, "text/plain; charset=utf-8", [])  # emptied when read
    assert emulator.incoming_delivered == 2 and emulator.pending_incoming == 0


async def test_receipts_and_typing_are_not_data_messages(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    emulator.mode = "normal"
    emulator.queue_typing(ANA)
    emulator.queue_receipt(ANA, "read", [1_700_000_000_000])
    emulator.queue_text(ANA, "2", hide_number=True)
    _, _, items = await receive(http, emulator)
    typing, receipt, hidden = (item["envelope"] for item in items)
    assert "dataMessage" not in typing and typing["typingMessage"]["action"] == "STARTED"
    assert "dataMessage" not in receipt
    assert receipt["receiptMessage"] | {"when": 0} == {
        "when": 0,
        "isDelivery": False,
        "isRead": True,
        "isViewed": False,
        "timestamps": [1_700_000_000_000],
    }
    # A sender who keeps their number private: no sourceNumber, the uuid in `source`.
    assert hidden["sourceNumber"] is None and hidden["source"] == hidden["sourceUuid"]
    assert hidden["sourceUuid"] == typing["sourceUuid"]  # the same person, the same uuid


async def test_max_messages_leaves_the_rest_for_the_next_get(
    emulator: SignalEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.mode = "normal"
    for text in ("1", "2", "3"):
        emulator.queue_text(ANA, text)
    _, _, first = await receive(http, emulator, max_messages="2")
    _, _, rest = await receive(http, emulator, max_messages="2")
    assert [i["envelope"]["dataMessage"]["message"] for i in first + rest] == ["1", "2", "3"]


async def test_a_get_waits_up_to_its_timeout_for_a_message(
    emulator: SignalEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.mode = "normal"
    waiting = asyncio.create_task(receive(http, emulator, timeout="4"))
    async with asyncio.timeout(BOUND):
        while emulator.receive_requests == 0:
            await asyncio.sleep(0.01)
    emulator.queue_text(ANA, "1")
    _, _, items = await waiting
    assert [i["envelope"]["dataMessage"]["message"] for i in items] == ["1"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"timeout": "soon"}, "Couldn't process request - timeout needs to be numeric!"),
        ({"max_messages": "all"}, "Couldn't process request - max_messages needs to be numeric!"),
        ({"ignore_attachments": "yes"}, "ignore_attachments parameter needs to be either 'true' or 'false'"),
        ({"send_read_receipts": "1"}, "send_read_receipts parameter needs to be either 'true' or 'false'"),
    ],
)
async def test_bad_queries_are_400(
    emulator: SignalEmulator, http: aiohttp.ClientSession, query: dict[str, str], error: str
) -> None:
    emulator.mode = "normal"
    emulator.queue_text(ANA, "1")
    status, _, body = await receive(http, emulator, **query)
    assert status == 400 and error in body["error"]
    assert emulator.pending_incoming == 1  # nothing was handed out


async def test_an_unknown_number_is_not_registered(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    emulator.mode = "normal"
    emulator.queue_text(ANA, "1")
    status, content_type, body = await receive(http, emulator, number=ANA)
    assert (status, content_type) == (400, "application/json; charset=utf-8")
    assert body == {"error": f"User {ANA} is not registered.\n"}
    assert emulator.pending_incoming == 1


async def test_about_reports_the_mode(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    for mode in ("json-rpc", "normal"):
        emulator.mode = mode  # type: ignore[assignment]
        async with http.get(emulator.api_url + "/v1/about") as resp:
            assert (await resp.json())["mode"] == mode
    with pytest.raises(ValueError, match="unknown"):
        emulator.mode = "websocket"  # type: ignore[assignment]


# ---- /v1/receive, json-rpc mode: a WebSocket pushes one object per frame ----------------------


async def test_json_rpc_mode_pushes_each_message_on_the_websocket(
    emulator: SignalEmulator, http: aiohttp.ClientSession
) -> None:
    assert emulator.mode == "json-rpc"  # the default, as docs/telegram-signal.md recommends
    url = f"{emulator.api_url}/v1/receive/{BOT}"
    async with asyncio.timeout(BOUND), http.ws_connect(url) as ws:
        await emulator.wait_for_receiver()
        queued = emulator.queue_text(ANA, "1", name="Ana")
        emulator.queue_typing(ANA, "STOPPED")
        assert json.loads((await ws.receive()).data) == queued
        assert "typingMessage" in json.loads((await ws.receive()).data)["envelope"]
    assert emulator.incoming_delivered == 2 and emulator.incoming_dropped == 0


async def test_json_rpc_mode_loses_what_arrives_while_nobody_listens(
    emulator: SignalEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.queue_text(ANA, "before anyone connected")
    other = f"{emulator.api_url}/v1/receive/{ANA}"  # a socket for another account hears nothing of ours
    async with asyncio.timeout(BOUND), http.ws_connect(other) as ws:
        async with asyncio.timeout(BOUND):
            while emulator.receive_requests == 0:
                await asyncio.sleep(0.01)
        emulator.queue_text(BEN, "while only another account listened")
        await ws.close()
    assert emulator.incoming_dropped == 2 and emulator.incoming_delivered == 0 and emulator.receivers == 0


async def test_json_rpc_mode_refuses_a_plain_get(emulator: SignalEmulator, http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(BOUND), http.get(f"{emulator.api_url}/v1/receive/{BOT}") as resp:
        text = await resp.text()
    assert resp.status == 400
    head, _, error = text.partition("\n")
    assert head == "Bad Request" and "not using the websocket protocol" in json.loads(error)["error"]


async def test_stopping_closes_the_websockets(http: aiohttp.ClientSession) -> None:
    emulator = SignalEmulator(number=BOT)
    async with running(emulator):
        ws = await http.ws_connect(f"{emulator.api_url}/v1/receive/{BOT}")
        await emulator.wait_for_receiver()
    async with asyncio.timeout(BOUND):
        message = await ws.receive()
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    await ws.close()
