"""The injected clocks: the fake one jumps instead of waiting, and its intervals are the time it jumped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.clock import FakeClock, SystemClock

T0 = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


async def test_a_fake_sleep_moves_both_readings_and_waits_for_nothing() -> None:
    clock = FakeClock(T0)
    before = clock.monotonic()
    async with asyncio.timeout(1):
        await clock.sleep(3600)
    assert clock.now() == T0 + timedelta(hours=1)
    assert clock.monotonic() - before == 3600
    clock.advance(0.25)
    assert clock.monotonic() - before == 3600.25


async def test_sleep_until_returns_at_once_when_woken_and_never_moves_backwards() -> None:
    clock = FakeClock(T0)
    wake = asyncio.Event()
    wake.set()
    await clock.sleep_until(T0 + timedelta(minutes=5), wake)
    assert clock.now() == T0  # woken: no time passed
    wake.clear()
    await clock.sleep_until(T0 - timedelta(minutes=5), wake)
    assert clock.now() == T0


def test_a_fake_clock_needs_an_aware_start() -> None:
    with pytest.raises(ValueError):
        FakeClock(datetime(2026, 11, 24, 17, 0))  # noqa: DTZ001 - the point of the test


def test_the_system_clock_reads_aware_utc_and_a_steady_monotonic() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    first = clock.monotonic()
    assert clock.monotonic() >= first
