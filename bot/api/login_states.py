"""Logins in progress: the `state` of each /auth/login, usable once, for a few minutes.

Kept in memory rather than in the database, on purpose: /auth/login needs no authentication, so a
table would let anyone make the bot write; a pending login is worth nothing after a restart (the
user clicks "log in" again); and one process serves the API. The store is bounded: past
`capacity` pending logins the oldest is dropped, so a flood of /auth/login costs a fixed amount of
memory and, at worst, makes someone's pending login fail and start over.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import timedelta
from typing import Final

from services.clock import Clock

DEFAULT_STATE_TTL: Final = timedelta(minutes=10)
DEFAULT_CAPACITY: Final = 10_000
_STATE_BYTES: Final = 24


class PendingLogins:
    def __init__(self, clock: Clock, *, ttl: timedelta = DEFAULT_STATE_TTL, capacity: int = DEFAULT_CAPACITY) -> None:
        self.clock = clock
        self.ttl = ttl
        self.capacity = capacity
        self._pending: OrderedDict[str, tuple[float, str]] = OrderedDict()  # state → (deadline, next path)

    def __len__(self) -> int:
        return len(self._pending)

    def issue(self, next_path: str) -> str:
        """A fresh state for a login that returns to `next_path`."""
        now = self.clock.monotonic()
        while self._pending and (len(self._pending) >= self.capacity or next(iter(self._pending.values()))[0] <= now):
            self._pending.popitem(last=False)  # insertion order is deadline order: the oldest first
        state = secrets.token_urlsafe(_STATE_BYTES)
        self._pending[state] = (now + self.ttl.total_seconds(), next_path)
        return state

    def take(self, state: str) -> str | None:
        """Use `state` up: the login's next path, or None if it is unknown, used or expired."""
        entry = self._pending.pop(state, None)
        if entry is None or entry[0] <= self.clock.monotonic():
            return None
        return entry[1]
