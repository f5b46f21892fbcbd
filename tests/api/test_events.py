"""GET …/campaign/events: server-sent events of the campaign, bounded, and gone when the client or the server is.

The streams wait on `HeldClock`, a fake clock that waits for the test to move time (FakeClock jumps
ahead at once, and a stream would race through its heartbeats to its end). Tests that need aiohttp's
production behaviour on a client that leaves (no handler cancellation) serve the app with
`start_api`, as the bot does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.api import bound_port, create_app, start_api, stop_api
from bot.api.deps import DEPS
from bot.api.events import STREAMS, StreamLimits
from services.clock import FakeClock
from services.models import PlayerStatus
from tests.api.helpers import DAY, MEMBER_ID, Api, api_client
from tests.emulators import BOUND
from tests.support import PROMOTER_ID, local

EVENTS = "/api/availability/promotions/campaign/events"
STATUS = "/api/availability/promotions/campaign"
CREATE = "/api/availability/promotions/campaigns"
WAITING = StreamLimits(heartbeat=timedelta(seconds=15), idle=timedelta(minutes=10), lifetime=timedelta(hours=1))


class HeldClock(FakeClock):
    """Fake time that waits as real time does: `sleep_until` returns at a wake, or once the test has
    moved time to `when` or past it."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._moved = asyncio.Event()

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self._tick()

    def set(self, when: datetime) -> None:
        super().set(when)
        self._tick()

    def _tick(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        while not wake.is_set() and (when is None or self.now() < when):
            waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(self._moved.wait())}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()


@asynccontextmanager
async def held_api(tmp_path, limits: StreamLimits = WAITING, at: datetime | None = None) -> AsyncIterator[Api]:
    clock = HeldClock((at or local(DAY, 18, 0)).astimezone(UTC))
    async with api_client(tmp_path, streams=limits, clock=clock) as api:
        for i, name in enumerate(["Ana", "Bor", "Cene"], start=1):
            await api.h.add_player(i, name)
        yield api


async def next_block(response: aiohttp.ClientResponse) -> dict[str, str] | None:
    """The next block of the stream as its fields (a comment as `comment`); None at the end."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(BOUND):
        while True:
            line = await response.content.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if not text:
                if fields:
                    return fields
                continue
            name, _, value = text.partition(":")
            fields["comment" if name == "" else name] = value.removeprefix(" ")


async def next_event(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """The next `campaign` event (heartbeats and the retry hint skipped), its data parsed; None at the end."""
    while True:
        block = await next_block(response)
        if block is None:
            return None
        if "event" in block:
            assert block["event"] == "campaign"
            return {"id": block["id"], "campaign": json.loads(block["data"])}


async def until(condition: Any) -> None:
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_stream_sends_the_campaign_at_once_and_on_every_change(tmp_path) -> None:
    async with held_api(tmp_path) as api, api.client.get(EVENTS, headers=api.auth()) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-cache"
        assert await next_block(stream) == {"retry": "5000"}
        first = await next_event(stream)
        assert first is not None and first["campaign"] is None

        _, created = await api.post(CREATE, json={})
        scheduled = await next_event(stream)
        assert scheduled is not None and scheduled["id"] != first["id"]
        _, status = await api.get(STATUS)
        assert scheduled["campaign"] == status["campaign"]
        assert scheduled["campaign"]["status"] == "scheduled"

        # A write the campaign does not show wakes the stream, which finds nothing new to send:
        # the next event is the cancel, not a repeat.
        await api.post("/api/availability", as_user=MEMBER_ID, json={"status": "MAYBE"})
        await api.post(f"{CREATE}/{created['campaign_id']}/cancel")
        cancelled = await next_event(stream)
        assert cancelled is not None and cancelled["campaign"]["status"] == "cancelled"


async def test_a_stream_for_a_date_follows_that_date(tmp_path) -> None:
    async with held_api(tmp_path) as api:
        await api.post(CREATE, json={})
        async with api.client.get(EVENTS, headers=api.auth(), params={"date": "2026-11-23"}) as stream:
            event = await next_event(stream)
            assert event is not None and event["campaign"] is None


async def test_the_day_turning_over_is_news_without_any_write(tmp_path) -> None:
    async with held_api(tmp_path, at=local(DAY, 23, 59, 30)) as api:
        await api.post(CREATE, json={"dry_run": True})
        async with api.client.get(EVENTS, headers=api.auth()) as stream:
            tonight = await next_event(stream)
            assert tonight is not None and tonight["campaign"]["campaign_date"] == "2026-11-24"
            version = api.h.engine.db.changes.version
            api.h.clock.set(local(DAY, 23, 59, 59))
            assert await next_block(stream) == {"comment": "heartbeat"}
            api.h.clock.set(local(DAY + timedelta(days=1), 0, 0, 0))  # midnight in Ljubljana
            tomorrow = await next_event(stream)
            assert tomorrow is not None and tomorrow["campaign"] is None
            assert api.h.engine.db.changes.version == version


async def test_a_quiet_stream_beats_then_ends_at_the_idle_limit(tmp_path) -> None:
    limits = StreamLimits(heartbeat=timedelta(seconds=15), idle=timedelta(seconds=40), lifetime=timedelta(hours=1))
    async with held_api(tmp_path, limits) as api, api.client.get(EVENTS, headers=api.auth()) as stream:
        assert await next_event(stream) is not None
        for _ in range(2):
            api.h.clock.advance(15)
            assert await next_block(stream) == {"comment": "heartbeat"}
        api.h.clock.advance(10)  # 40 s without news
        assert await next_block(stream) is None
        await until(lambda: len(api.client.app[STREAMS]) == 0)


async def test_a_busy_stream_still_ends_at_its_lifetime(tmp_path) -> None:
    limits = StreamLimits(heartbeat=timedelta(minutes=5), idle=timedelta(minutes=10), lifetime=timedelta(minutes=2))
    async with held_api(tmp_path, limits) as api, api.client.get(EVENTS, headers=api.auth()) as stream:
        assert await next_event(stream) is not None
        api.h.clock.advance(60)
        await api.post(CREATE, json={})
        assert await next_event(stream) is not None
        api.h.clock.advance(60)
        assert await next_block(stream) is None


async def test_a_reconnect_with_the_last_event_id_gets_no_repeat(tmp_path) -> None:
    async with held_api(tmp_path) as api:
        await api.post(CREATE, json={})
        async with api.client.get(EVENTS, headers=api.auth()) as stream:
            seen = await next_event(stream)
        assert seen is not None
        headers = {**api.auth(), "Last-Event-ID": seen["id"]}
        async with api.client.get(EVENTS, headers=headers) as stream:
            await api.post(f"{CREATE}/{seen['campaign']['id']}/cancel")
            news = await next_event(stream)
            assert news is not None and news["campaign"]["status"] == "cancelled"


async def test_streams_are_capped_and_a_closed_one_frees_its_slot(tmp_path) -> None:
    limits = StreamLimits(max_streams=1, heartbeat=timedelta(seconds=15), idle=timedelta(seconds=20))
    async with held_api(tmp_path, limits) as api:
        streams = api.client.app[STREAMS]
        async with api.client.get(EVENTS, headers=api.auth()) as first:
            assert await next_event(first) is not None
            async with api.client.get(EVENTS, headers=api.auth()) as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "30"
                assert (await refused.json())["error"]["code"] == "too_many_streams"
            api.h.clock.advance(20)  # idle: the first stream ends
            assert await next_block(first) is None
        await until(lambda: len(streams) == 0)
        async with api.client.get(EVENTS, headers=api.auth()) as again:
            assert again.status == 200


async def test_only_members_may_watch(tmp_path) -> None:
    async with held_api(tmp_path) as api:
        status, body = await api.get(EVENTS, as_user=3000)
        assert (status, body["error"]["code"]) == (403, "not_linked")
        status, body = await api.get(EVENTS, as_user=None)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        assert len(api.client.app[STREAMS]) == 0


@asynccontextmanager
async def served(api: Api) -> AsyncIterator[tuple[str, Any]]:
    """The same app served as the bot serves it (no handler cancellation when a client leaves)."""
    app = create_app(api.client.app[DEPS], api.settings)
    runner = await start_api(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}", runner
    finally:
        await stop_api(runner)


async def test_a_client_that_leaves_is_forgotten_at_the_next_wake(tmp_path) -> None:
    async with held_api(tmp_path) as api, served(api) as (url, runner):
        streams = runner.app[STREAMS]
        async with aiohttp.ClientSession() as session:
            async with session.get(url + EVENTS, headers=api.auth()) as stream:
                assert await next_event(stream) is not None
                assert len(streams) == 1
            # Gone; the stream notices when it next wakes: a change (or, in real time, its heartbeat).
            await api.h.add_player(9, "Iva", status=PlayerStatus.LOOKING)
            await until(lambda: len(streams) == 0)
            async with session.get(url + EVENTS, headers=api.auth()) as stream:
                assert await next_event(stream) is not None
            api.h.clock.advance(15)
            await until(lambda: len(streams) == 0)


async def test_shutdown_ends_open_streams_instead_of_waiting_for_them(tmp_path) -> None:
    async with held_api(tmp_path) as api:
        app = create_app(api.client.app[DEPS], api.settings)
        runner = await start_api(app, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(runner)}{EVENTS}"
        async with aiohttp.ClientSession() as session:
            streams = [await session.get(url, headers=api.auth(user)) for user in (PROMOTER_ID, MEMBER_ID)]
            for stream in streams:
                assert await next_event(stream) is not None
            async with asyncio.timeout(BOUND):
                await stop_api(runner)  # aiohttp would wait 60 s for handlers still running
            for stream in streams:
                assert await next_block(stream) is None
                stream.release()
        assert len(app[STREAMS]) == 0
