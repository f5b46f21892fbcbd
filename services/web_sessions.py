"""Browser sessions: opened by the Discord login, ended by logout or by time, whatever the cookie says.

The cookie (signed, see bot/api/sessions.py) carries a random session id; the database keeps
only the id's hash, the user and the expiry. So logging out really ends the session, a copied
cookie stops working at logout or expiry, and a session can never outlive `ttl` on the server's
own clock, whatever expiry a cookie claims.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Final

from services.clock import Clock
from services.models import WebSession
from storage.changes import Changes, Memo
from storage.web_sessions import WebSessionStore

DEFAULT_SESSION_TTL: Final = timedelta(days=7)
_ID_BYTES: Final = 32


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


class WebSessionService:
    def __init__(
        self, *, store: WebSessionStore, clock: Clock, changes: Changes, ttl: timedelta = DEFAULT_SESSION_TTL
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a session ttl must be positive")
        self.store = store
        self.clock = clock
        self.ttl = ttl
        # Every request of a browser names its session: read it once per change (a logout is one).
        self._sessions: Memo[str, WebSession | None] = Memo(changes)

    async def open(self, discord_user_id: int) -> tuple[str, datetime]:
        """Start a session for the user; return its id (for the cookie only) and its expiry."""
        now = self.clock.now()
        await self.store.purge_expired(now)
        session_id = secrets.token_urlsafe(_ID_BYTES)
        expires_at = now + self.ttl
        await self.store.create(_id_hash(session_id), discord_user_id, now, expires_at)
        return session_id, expires_at

    async def session(self, session_id: str) -> WebSession | None:
        """The session `session_id` names; None if it never existed or was logged out (expired ones are returned)."""
        id_hash = _id_hash(session_id)
        return await self._sessions.get_or_load(id_hash, lambda: self.store.get(id_hash))

    async def close(self, session_id: str) -> bool:
        """End a session (logout); False if there was none."""
        return await self.store.delete(_id_hash(session_id))
