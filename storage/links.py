"""Verified Telegram / Signal links (addresses encrypted by the caller)."""

from __future__ import annotations

from datetime import datetime

from services.models import Channel, Link
from storage.db import Database, from_db_time, to_db_time


class LinkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def links(self, player_id: int) -> list[Link]:
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                "SELECT * FROM channel_links WHERE player_id = ? ORDER BY channel", (player_id,)
            )
        return [
            Link(r["player_id"], Channel(r["channel"]), r["address_encrypted"],
                 from_db_time(r["verified_at"]))
            for r in rows
        ]

    async def save(
        self, player_id: int, channel: Channel, encrypted: str, address_hash: str, now: datetime
    ) -> None:
        """Store a verified link; an address linked to another player moves to this one."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM channel_links WHERE channel = ? AND address_hash = ? AND player_id <> ?",
                (channel.value, address_hash, player_id),
            )
            await tx.execute(
                """
                INSERT INTO channel_links (player_id, channel, address_encrypted, address_hash, verified_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (player_id, channel) DO UPDATE SET
                    address_encrypted = excluded.address_encrypted,
                    address_hash = excluded.address_hash,
                    verified_at = excluded.verified_at
                """,
                (player_id, channel.value, encrypted, address_hash, to_db_time(now)),
            )

    async def remove(self, player_id: int, channel: Channel) -> bool:
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "DELETE FROM channel_links WHERE player_id = ? AND channel = ?",
                (player_id, channel.value),
            )
        return changed > 0

    async def player_for_address(self, channel: Channel, address_hashes: list[str]) -> int | None:
        """Find who linked an address, given its hashes under every configured key."""
        if not address_hashes:
            return None
        marks = ",".join("?" * len(address_hashes))
        async with self.db.read() as tx:
            row = await tx.fetchone(
                f"SELECT player_id FROM channel_links WHERE channel = ? AND address_hash IN ({marks})",  # noqa: S608
                (channel.value, *address_hashes),
            )
        return int(row["player_id"]) if row else None

    async def all_links(self) -> list[tuple[int, Channel, str]]:
        """Every link's (player, channel, ciphertext), for key rotation."""
        async with self.db.read() as tx:
            rows = await tx.fetchall("SELECT player_id, channel, address_encrypted FROM channel_links")
        return [(r["player_id"], Channel(r["channel"]), r["address_encrypted"]) for r in rows]

    async def rewrite(self, rows: list[tuple[int, Channel, str, str, str]]) -> None:
        """Replace ciphertexts and hashes in one transaction.

        Rows are (player, channel, old ciphertext, new ciphertext, new hash); a link changed since
        it was read (the player re-linked meanwhile) is left alone rather than overwritten.
        """
        async with self.db.transaction() as tx:
            await tx.executemany(
                """
                UPDATE channel_links SET address_encrypted = ?, address_hash = ?
                WHERE player_id = ? AND channel = ? AND address_encrypted = ?
                """,
                [(new, h, pid, ch.value, old) for pid, ch, old, new, h in rows],
            )
