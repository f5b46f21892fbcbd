"""A per-key sliding-window limit on the injectable clock (for example 5 link requests per 10 minutes)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from datetime import datetime, timedelta

from services.clock import Clock
from services.errors import TooManyRequests


class Throttle:
    def __init__(self, limit: int, window: timedelta, clock: Clock, *, what: str = "requests") -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self.clock = clock
        self.what = what
        self._hits: dict[Hashable, deque[datetime]] = {}

    def hit(self, key: Hashable) -> None:
        """Count one request for `key`, or raise TooManyRequests saying when to retry."""
        now = self.clock.now()
        cutoff = now - self.window
        if len(self._hits) > 10_000:
            self._sweep(cutoff)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if len(hits) >= self.limit:
            retry_after = (hits[0] + self.window - now).total_seconds()
            raise TooManyRequests(
                f"Too many {self.what}; try again in {max(1, round(retry_after))} s.", retry_after
            )
        hits.append(now)

    def _sweep(self, cutoff: datetime) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]
