"""KeyedThrottle: a sliding window per key, bounded in memory (fake clock, tables of cases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.clock import FakeClock
from services.models import Throttle
from services.throttle import KeyedThrottle

RULE = Throttle(limit=3, window=timedelta(seconds=60))


def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))


# (seconds since start, key, expected answer: None = allowed, else the wait in seconds)
@pytest.mark.parametrize(
    ("steps",),
    [
        pytest.param([(0, "a", None), (1, "a", None), (2, "a", None), (3, "a", 57.0)], id="the fourth hit waits"),
        pytest.param([(0, "a", None), (1, "a", None), (2, "a", None), (60, "a", None)], id="the first ages out"),
        pytest.param(
            [(0, "a", None), (1, "a", None), (2, "a", None), (30, "a", 30.0), (31, "a", 29.0), (60, "a", None),
             (60.5, "a", 0.5)],
            id="refused hits do not count",
        ),
        pytest.param([(0, "a", None), (0, "a", None), (0, "a", None), (0, "b", None), (0, "b", None)], id="per key"),
    ],
)
def test_sliding_window(steps: list[tuple[float, str, float | None]]) -> None:
    c = clock()
    throttle = KeyedThrottle(RULE, c)
    for at, key, expected in steps:
        c.set(datetime(2026, 11, 24, 18, 0, tzinfo=UTC) + timedelta(seconds=at))
        assert throttle.hit(key) == expected, (at, key)


def test_memory_stays_bounded_by_forgetting_the_least_recent_key() -> None:
    throttle = KeyedThrottle(Throttle(limit=1, window=timedelta(hours=1)), clock(), max_keys=2)
    assert throttle.hit("a") is None
    assert throttle.hit("b") is None
    assert throttle.hit("a") is not None  # refused, and now the most recent key
    assert throttle.hit("c") is None  # "b" is forgotten to make room
    assert throttle.hit("a") is not None
    assert throttle.hit("b") is None  # starts afresh


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        KeyedThrottle(RULE, clock(), max_keys=0)
