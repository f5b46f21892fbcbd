"""The one owner of "something changed": a version of the database's contents, and what is kept per version.

`Database` bumps `Changes.version` after every access that changed rows (it compares SQLite's total
change count before and after, so a write can never forget to bump it). Whatever is derived from
stored rows alone — a cached API answer, a looked-up profile — stays good while the version stays the
same, and whoever waits for news (an event stream) is woken by the bump.

Writes by another process (an operator's sqlite3 shell) are not seen here: this process owns its
database while it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Changes:
    """A counter bumped after every committed change, and the events of those who wait for one."""

    def __init__(self) -> None:
        self.version = 0
        self._watchers: set[asyncio.Event] = set()

    def bump(self) -> None:
        self.version += 1
        for event in self._watchers:
            event.set()

    @contextmanager
    def watching(self) -> Iterator[asyncio.Event]:
        """An event set at every bump while the block runs (the holder clears it)."""
        event = asyncio.Event()
        self._watchers.add(event)
        try:
            yield event
        finally:
            self._watchers.discard(event)

    @property
    def watchers(self) -> int:
        return len(self._watchers)


class Memo(Generic[K, V]):
    """Values loaded at one version of the database, good until the next change; bounded, oldest out first.

    Loads are serialized: requests that miss together wait for the first load and then share it
    (they would queue for the one database connection anyway).
    """

    def __init__(self, changes: Changes, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.changes = changes
        self.max_entries = max_entries
        self._version = -1
        self._entries: dict[K, V] = {}
        self._lock = asyncio.Lock()

    def get(self, key: K) -> tuple[V] | None:
        """`(value,)` when a value loaded at the current version is kept, else None."""
        if self._version != self.changes.version or key not in self._entries:
            return None
        return (self._entries[key],)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self.get(key)
        if hit is not None:
            return hit[0]
        async with self._lock:
            hit = self.get(key)
            if hit is not None:
                return hit[0]
            version = self.changes.version
            value = await load()
            self._keep(key, value, version)
            return value

    def _keep(self, key: K, value: V, version: int) -> None:
        if version != self.changes.version:
            return  # something changed while loading: the value may already be stale
        if self._version != version:
            self._entries.clear()
            self._version = version
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_entries:
            # Dicts keep insertion order: the first entry is the oldest.
            del self._entries[next(iter(self._entries))]
        self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries) if self._version == self.changes.version else 0
