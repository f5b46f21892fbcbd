"""Who the acting Discord user is in the community's guild.

The bot implements `MembershipResolver` from its gateway cache, falling back to a REST member
lookup; `CachedMembership` keeps those answers for a few seconds so that a page that fires several
API calls costs one lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from services.clock import Clock
from services.models import Actor


class MembershipResolver(Protocol):
    async def resolve(self, discord_user_id: int) -> Actor:
        """Return the user as the guild knows them; `is_member` is False for non-members."""
        ...


class StaticMembership:
    """A fixed table of members (tests, the demo); anyone else is a non-member."""

    def __init__(self, members: Mapping[int, Actor] | None = None) -> None:
        self.members: dict[int, Actor] = dict(members or {})

    async def resolve(self, discord_user_id: int) -> Actor:
        return self.members.get(discord_user_id) or Actor(discord_user_id, is_member=False)


class CachedMembership:
    """Cache another resolver's answers for `ttl_seconds` (failures are not cached)."""

    def __init__(
        self,
        inner: MembershipResolver,
        clock: Clock,
        ttl_seconds: float = 30.0,
        *,
        max_entries: int = 10_000,
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._cache: dict[int, tuple[float, Actor]] = {}

    async def resolve(self, discord_user_id: int) -> Actor:
        hit = self._cache.get(discord_user_id)
        if hit is not None and hit[0] > self.clock.monotonic():
            return hit[1]
        actor = await self.inner.resolve(discord_user_id)
        self._cache.pop(discord_user_id, None)
        if len(self._cache) >= self.max_entries:
            # Dicts keep insertion order: the first entry is the oldest.
            del self._cache[next(iter(self._cache))]
        self._cache[discord_user_id] = (self.clock.monotonic() + self.ttl, actor)
        return actor

    def invalidate(self, discord_user_id: int | None = None) -> None:
        """Forget one user (after a role change, say), or everyone."""
        if discord_user_id is None:
            self._cache.clear()
        else:
            self._cache.pop(discord_user_id, None)
