"""Waiting out an unreachable platform at start (bot/app.py `until_reachable`), on the fake clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from bot.app import REACH_RETRY_CAP_SECONDS, until_reachable
from services.clock import FakeClock


class Flaky:
    """Fails `failures` times with ConnectionError, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("Cannot connect to host discord.com:443")
        return "answer"


async def test_backs_off_with_one_line_per_try_then_answers(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(datetime(2026, 11, 24, 20, 0, tzinfo=UTC))
    attempt = Flaky(failures=9)
    with caplog.at_level(logging.INFO, logger="bot.app"):
        assert await until_reachable("Discord at X", attempt, (OSError,), clock) == "answer"
    assert clock.slept == [1, 2, 4, 8, 16, 32, *[REACH_RETRY_CAP_SECONDS] * 3]  # doubling up to the cap
    tries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(tries) == 9
    assert tries[0] == (
        "cannot reach Discord at X (ConnectionError: Cannot connect to host discord.com:443); retrying in 1 s (try 1)"
    )
    assert all(r.exc_info is None for r in caplog.records)  # one line each, no traceback
    assert caplog.records[-1].getMessage() == "reached Discord at X after 10 tries"


async def test_an_answer_at_once_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(datetime(2026, 11, 24, 20, 0, tzinfo=UTC))
    with caplog.at_level(logging.INFO, logger="bot.app"):
        assert await until_reachable("Discord", Flaky(failures=0), (OSError,), clock) == "answer"
    assert clock.slept == [] and caplog.records == []


async def test_other_errors_are_not_waited_out() -> None:
    clock = FakeClock(datetime(2026, 11, 24, 20, 0, tzinfo=UTC))

    async def refused() -> str:
        raise PermissionError("401: the token was rejected")

    with pytest.raises(PermissionError):
        await until_reachable("Telegram", refused, (ConnectionError,), clock)
    assert clock.slept == []
