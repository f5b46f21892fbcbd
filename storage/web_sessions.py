"""Browser sessions (migration 0004): stored by the hash of their id, deleted at logout."""

from __future__ import annotations

from datetime import datetime

from services.models import WebSession
from storage.db import Database, from_db_time, to_db_time


class WebSessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, id_hash: str, discord_user_id: int, now: datetime, expires_at: datetime) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO web_sessions (id_hash, discord_user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (id_hash, discord_user_id, to_db_time(now), to_db_time(expires_at)),
            )

    async def get(self, id_hash: str) -> WebSession | None:
        async with self.db.read() as tx:
            row = await tx.fetchone("SELECT * FROM web_sessions WHERE id_hash = ?", (id_hash,))
        if row is None:
            return None
        return WebSession(
            discord_user_id=int(row["discord_user_id"]),
            created_at=from_db_time(row["created_at"]),
            expires_at=from_db_time(row["expires_at"]),
        )

    async def delete(self, id_hash: str) -> bool:
        async with self.db.transaction() as tx:
            return await tx.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,)) > 0

    async def purge_expired(self, now: datetime) -> int:
        async with self.db.transaction() as tx:
            return await tx.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (to_db_time(now),))
