"""The API's HTTP server against slow and hostile clients: the real server (start_api) on 127.0.0.1.

Each test bounds its waits; none asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from bot.api import ServerLimits, bound_port, create_app, start_api, stop_api
from bot.api.connections import CONNECTIONS, ConnectionGuard
from bot.api.deps import DEPS
from tests.api.helpers import TOKEN, Api, FakeDiscordOAuth, api_client, raw_exchange, raw_request
from tests.support import PROMOTER_ID

BOUND = 5.0
TIGHT = ServerLimits(max_connections=20, header_timeout=0.3, body_timeout=0.3, keepalive=0.3)


@dataclass
class Served:
    api: Api
    runner: web.AppRunner

    @property
    def port(self) -> int:
        return bound_port(self.runner)

    @property
    def guard(self) -> ConnectionGuard:
        return self.runner.app[CONNECTIONS]


@contextlib.asynccontextmanager
async def served(api: Api, limits: ServerLimits) -> AsyncIterator[Served]:
    """The same app as `api`, but served by start_api (the production server) with `limits`."""
    runner = await start_api(create_app(api.client.app[DEPS], api.settings, limits), "127.0.0.1", 0)
    try:
        yield Served(api, runner)
    finally:
        await stop_api(runner)


@pytest.fixture
async def api(tmp_path) -> AsyncIterator[Api]:
    async with api_client(tmp_path) as client:
        yield client


async def until(predicate: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(BOUND):
            while True:
                value = predicate()
                if not isinstance(value, bool):
                    value = await value
                if value:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {BOUND} s") from None


class Trickler:
    """A client that opens a connection and sends its headers one byte at a time, forever."""

    def __init__(self, port: int, *, head: bytes = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") -> None:
        self.port = port
        self.head = head
        self.closed = asyncio.Event()
        self.received = b""
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._task = asyncio.create_task(self._run(reader, writer))

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def drip() -> None:
            writer.write(self.head)
            while True:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.02)

        dripping = asyncio.create_task(drip())
        try:
            self.received = await reader.read()  # until the server closes the connection
        except ConnectionError:
            pass
        finally:
            dripping.cancel()
            with contextlib.suppress(BaseException):
                await dripping
            writer.close()
            self.closed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


@contextlib.asynccontextmanager
async def tricklers(port: int, count: int, **kwargs: bytes) -> AsyncIterator[list[Trickler]]:
    crowd = [Trickler(port, **kwargs) for _ in range(count)]
    try:
        for t in crowd:
            await t.open()
        yield crowd
    finally:
        await asyncio.gather(*(t.stop() for t in crowd))


async def get_healthz(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
        assert response.content_type == "application/json"
        return response.status


async def test_200_trickling_connections_do_not_lock_healthz_out(api: Api) -> None:
    # Headers may take 60 s here: what frees the slots is the cap, not the timeout.
    limits = ServerLimits(max_connections=20, header_timeout=60, body_timeout=60, keepalive=60)
    async with asyncio.timeout(BOUND), served(api, limits) as server, tricklers(server.port, 200) as crowd:
        await until(lambda: sum(t.closed.is_set() for t in crowd) >= 180, "the cap closing the oldest tricklers")
        assert await get_healthz(server.port) == 200
        assert server.guard.peak <= 20
        assert server.guard.open_count <= 20
        assert all(t.received == b"" for t in crowd)  # a displaced trickler gets no answer, just a close
    print(f"\n200 tricklers against a cap of 20: {server.guard.displaced} displaced, peak {server.guard.peak} open")


async def test_a_trickled_header_is_cut_off_after_the_header_timeout(api: Api) -> None:
    async with asyncio.timeout(BOUND), served(api, TIGHT) as server, tricklers(server.port, 3) as crowd:
        await until(lambda: all(t.closed.is_set() for t in crowd), "the header timeout closing the tricklers")
        assert server.guard.open_count == 0
        assert await get_healthz(server.port) == 200


async def test_a_slow_body_is_408_and_changes_nothing(api: Api) -> None:
    before = await api.dump()
    async with asyncio.timeout(BOUND), served(api, TIGHT) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = raw_request(
            "POST", "/api/availability",
            [(b"Authorization", f"Bearer {TOKEN}".encode()), (b"X-Discord-User-Id", str(PROMOTER_ID).encode()),
             (b"Content-Type", b"application/json"), (b"Content-Length", b"100")],
        )
        writer.write(head + b'{"status": ')  # and the rest never comes
        answer = await reader.read()
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"408"
    assert b'"request_timeout"' in rest
    assert await api.dump() == before


async def test_an_idle_keep_alive_connection_is_closed(api: Api) -> None:
    async with asyncio.timeout(BOUND), served(api, TIGHT) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await reader.read()  # returns once the server closes the idle connection
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.count(b"HTTP/1.1") == 1


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_503(api: Api) -> None:
    limits = ServerLimits(max_connections=3, header_timeout=60, body_timeout=60, keepalive=60)
    busy = raw_request(
        "POST", "/api/availability",
        [(b"Authorization", f"Bearer {TOKEN}".encode()), (b"X-Discord-User-Id", str(PROMOTER_ID).encode()),
         (b"Content-Length", b"100")],
    )
    async with asyncio.timeout(BOUND), served(api, limits) as server:
        writers = []
        for _ in range(3):  # three requests waiting for their bodies: busy, not displaceable
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(busy)
            writers.append(writer)
        await until(lambda: server.guard.open_count == 3, "three busy connections")
        answer = await raw_exchange(server.port, raw_request("GET", "/healthz", []))
        for writer in writers:
            writer.close()
    assert (answer.status, answer.json()["error"]["code"]) == (503, "busy")
    assert answer.header("retry-after") == "1" and answer.header("server") == "Rallypoint"
    assert server.guard.refused == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line Bearer secret-token-123\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing: \x01secret-token-123\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing: " + b"secret-token-123" * 1000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00secret-token-123\r\n\r\n",  # TLS spoken to the plain HTTP port
    ],
    ids=["no colon", "control character", "header too long", "not HTTP"],
)
async def test_a_request_the_parser_refuses_is_a_json_400_that_echoes_nothing(
    api: Api, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with asyncio.timeout(BOUND), served(api, TIGHT) as server:
        answer = await raw_exchange(server.port, request_bytes)
    assert answer.status == 400
    assert answer.header("content-type") == "application/json"
    assert answer.json() == {"error": {"code": "bad_request", "message": "The request is malformed."}}
    assert answer.header("server") == "Rallypoint"
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "bot.api"))]
    assert not any(r.exc_info for r in records)
    assert all("secret-token-123" not in r.getMessage() for r in records)
    assert len([r for r in records if "malformed" in r.getMessage()]) == 1


async def test_accept_errors_are_logged_once_a_minute_not_once_a_second(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.DEBUG)
    before = loop.get_exception_handler()
    async with served(api, TIGHT):
        for _ in range(30):  # what asyncio's accept loop reports, about once a second, when out of descriptors
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
            )
        loop.call_exception_handler({"message": "something else entirely"})
    accept = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(accept) == 1 and accept[0].exc_info is None
    assert any("something else entirely" in r.getMessage() for r in caplog.records)  # passed on, not swallowed
    assert loop.get_exception_handler() is before  # restored when the app stopped


@pytest.fixture
async def oauth_api(tmp_path) -> AsyncIterator[Api]:
    async with FakeDiscordOAuth().running() as fake, api_client(tmp_path, oauth=fake) as client:
        yield client


async def test_the_access_log_keeps_the_query_of_auth_urls_out(
    oauth_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    async with asyncio.timeout(BOUND), served(oauth_api, TIGHT) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}"
        async with session.get(f"{base}/auth/callback?code=the-one-time-code&state=the-state") as response:
            assert response.status == 400
        async with session.get(
            f"{base}/api/availability?date=2026-11-24", headers=oauth_api.auth(PROMOTER_ID)
        ) as response:
            assert response.status == 200
        sneaky = {"User-Agent": "an-agent", "Referer": "http://x/?code=the-one-time-code"}
        async with session.get(f"{base}/healthz", headers=sneaky) as response:
            assert response.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 3, lines
    assert '"GET /auth/callback" 400' in lines[0]
    assert '"GET /api/availability?date=2026-11-24" 200' in lines[1]
    for line in lines:
        assert line.startswith("127.0.0.1 ")
        assert "the-one-time-code" not in line and "the-state" not in line and "agent" not in line
