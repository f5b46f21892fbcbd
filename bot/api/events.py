"""Server-sent events: a page watches an answer (the campaign's status) instead of polling it.

A stream sends the answer at once, then again each time it changes: it waits on the database's
change version (storage/changes.py) and, because "today" moves at midnight in the promotion
timezone, on the next midnight too. Answers come from the same cache as the plain reads, so a
thousand pages watching one campaign cost one database read per change.

Streams are bounded: at most `max_streams` at once (then 503 with Retry-After), each closed after
`idle` without news or `lifetime` in all (the browser's EventSource reconnects by itself, sending
`Last-Event-ID`, and gets no repeat of what it has). A heartbeat comment every `heartbeat` keeps
proxies from cutting the line and finds clients that left: a write to a closed connection ends the
stream. Shutdown ends every stream at once (`Streams.close_all` runs on the app's on_shutdown), so
it never waits for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from aiohttp import web

from bot.api.conditional import Answer
from bot.api.errors import TooManyStreams
from services.clock import Clock
from storage.changes import Changes

log = logging.getLogger(__name__)

MEDIA_TYPE: Final = "text/event-stream"


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_streams: int = 100
    heartbeat: timedelta = timedelta(seconds=15)
    idle: timedelta = timedelta(minutes=10)  # no news for this long: close (the browser reconnects)
    lifetime: timedelta = timedelta(hours=1)
    retry: timedelta = timedelta(seconds=5)  # how long the browser waits before it reconnects


DEFAULT_LIMITS: Final = StreamLimits()
EVENTS_DESCRIPTION: Final = f"""\
`text/event-stream` (server-sent events; in a browser, `new EventSource(url)`). Every event is

    id: <an id of this state>
    event: campaign
    data: <the `campaign` of GET …/campaign: an object, or null>

sent once at the start and then on every change (jobs, delivery counts, a cancel, the day turning
over at midnight when no date is given). A comment line (`: heartbeat`) comes every
{DEFAULT_LIMITS.heartbeat.seconds} s. The server ends a stream after {DEFAULT_LIMITS.idle.seconds // 60} minutes without
an event, or after {DEFAULT_LIMITS.lifetime.seconds // 3600} hour; the browser then reconnects by itself with
`Last-Event-ID`, and an unchanged state is not sent again. At most {DEFAULT_LIMITS.max_streams} streams are open at
once; beyond that the answer is 503 `too_many_streams` with Retry-After."""


class Streams:
    """The open event streams: counted, capped, and all ended at shutdown."""

    def __init__(self, changes: Changes, clock: Clock, limits: StreamLimits) -> None:
        self.changes = changes
        self.clock = clock
        self.limits = limits
        self.closing = False
        self._wakes: set[asyncio.Event] = set()

    @contextmanager
    def opened(self) -> Iterator[asyncio.Event]:
        """A slot for one stream, and the event that wakes it (a change, or shutdown)."""
        if self.closing or len(self._wakes) >= self.limits.max_streams:
            raise TooManyStreams()
        with self.changes.watching() as wake:
            self._wakes.add(wake)
            try:
                yield wake
            finally:
                self._wakes.discard(wake)

    async def close_all(self, app: web.Application) -> None:
        """End every stream now and refuse new ones (the app's on_shutdown)."""
        self.closing = True
        for wake in self._wakes:
            wake.set()

    def __len__(self) -> int:
        return len(self._wakes)


STREAMS = web.AppKey("event_streams", Streams)


def event_bytes(name: str, event_id: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


async def stream_answers(
    request: web.Request,
    *,
    event: str,
    render: Callable[[], Awaitable[Answer]],
    data: Callable[[Answer], str],
    next_rollover: Callable[[], datetime],
) -> web.StreamResponse:
    """Send `render()` as `event` now and whenever it changes, until a limit, a disconnect or shutdown."""
    streams = request.app[STREAMS]
    limits, clock = streams.limits, streams.clock
    with streams.opened() as wake:
        response = web.StreamResponse(headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.content_type = MEDIA_TYPE
        await response.prepare(request)
        if request.method == "HEAD":  # the headers a GET would get, and no stream
            return response
        started = last_news = clock.now()
        next_beat = started + limits.heartbeat
        sent = request.headers.get("Last-Event-ID")
        try:
            await response.write(f"retry: {int(limits.retry.total_seconds() * 1000)}\n\n".encode())
            while not streams.closing and not _gone(request):
                wake.clear()  # before rendering: a change from here on wakes the wait below
                answer = await render()
                now = clock.now()
                if answer.event_id != sent:
                    await response.write(event_bytes(event, answer.event_id, data(answer)))
                    sent, last_news, next_beat = answer.event_id, now, now + limits.heartbeat
                ends = min(started + limits.lifetime, last_news + limits.idle)
                if now >= ends:
                    break
                if now >= next_beat:
                    await response.write(b": heartbeat\n\n")
                    next_beat = now + limits.heartbeat
                await clock.sleep_until(min(ends, next_beat, next_rollover()), wake)
        except ConnectionError:
            log.debug("event stream client went away")
    return response


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
