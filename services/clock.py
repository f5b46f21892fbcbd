"""Injectable time: every "now" and every wait goes through a clock, so tests never sleep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for intervals: pacing, caches, flush timers)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        """Return at `when` (never, if None) or as soon as `wake` is set, whichever is first."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        timeout = None if when is None else max(0.0, (when - self.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await wake.wait()


class LeapingClock(SystemClock):
    """The real clock, `ahead` in front: it only ever leaps forward, as a clock that waited would.

    The demo and the end-to-end tests use it to reach a whole minute (a standing session's start)
    without waiting for the wall clock to get there.
    """

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.ahead

    def leap(self, by: timedelta) -> None:
        if by < timedelta(0):
            raise ValueError("a leaping clock never goes back")
        self.ahead += by

    def leap_before_a_minute(self, lead: timedelta) -> datetime:
        """Leap to `lead` before the next whole minute at least `lead` away; return that minute."""
        now = self.now()
        minute = (now + lead + timedelta(minutes=1)).replace(second=0, microsecond=0)
        self.leap(minute - lead - now)
        return minute


class FakeClock:
    """A clock that jumps instead of waiting: a sleep advances time and yields once.

    Waiting for a wake event with no deadline blocks until the event is set (as the real clock
    does), so a scheduler under test idles without spinning.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start
        self._start = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        # Intervals on the fake clock are the fake time that passed.
        return (self._now - self._start).total_seconds()

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        self._now = when

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self._now += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        if wake.is_set():
            return
        if when is None:
            await wake.wait()
            return
        if when > self._now:
            self._now = when
        await asyncio.sleep(0)
