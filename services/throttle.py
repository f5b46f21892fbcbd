"""A throttle kept in memory, per key (a client address, say): for requests that must not cost a write.

The throttles that must survive a restart or span processes (link requests) count rows in the
database instead (storage/link_requests.py); both read the same `Throttle` rule.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from services.clock import Clock
from services.models import Throttle

DEFAULT_MAX_KEYS = 10_000


class KeyedThrottle:
    """At most `rule.limit` hits per key in any `rule.window`, for at most `max_keys` keys at once.

    When more keys than that are live, the one hit least recently is forgotten: memory stays
    bounded whatever a client does, at the price of letting a forgotten key start afresh.
    """

    def __init__(self, rule: Throttle, clock: Clock, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rule = rule
        self.clock = clock
        self.max_keys = max_keys
        self._window = rule.window.total_seconds()
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float | None:
        """Count a hit for `key`; None if allowed, else the seconds until one would be (nothing counted)."""
        now = self.clock.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._hits.popitem(last=False)
            hits = self._hits[key] = deque()
        else:
            self._hits.move_to_end(key)
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= self.rule.limit:
            return hits[0] + self._window - now
        hits.append(now)
        return None
