"""Bulk seeding for benchmarks: executemany in one transaction, never one awaited call per row."""

from __future__ import annotations

from datetime import date, datetime

from storage.db import Database, to_db_time


async def seed_players(
    db: Database,
    count: int,
    day: date,
    now: datetime,
    *,
    looking_every: int = 1,
    first_discord_id: int = 10_000_000,
) -> None:
    """Insert `count` players who turned promotions on; every `looking_every`-th is LOOKING on `day`,
    the rest NOT_PLAYING."""
    at = to_db_time(now)
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(i, first_discord_id + i, f"Player {i:06d}", at, at) for i in range(1, count + 1)],
        )
        await tx.executemany(
            "INSERT INTO availability (player_id, date, status, updated_at) VALUES (?, ?, ?, ?)",
            [
                (i, day.isoformat(), "LOOKING" if i % looking_every == 0 else "NOT_PLAYING", at)
                for i in range(1, count + 1)
            ],
        )
        # Consent is opt-in: a player is promoted to only after saying yes.
        await tx.executemany(
            "INSERT INTO preferences (player_id, allow_promotions, promotions_chosen_at, updated_at)"
            " VALUES (?, 1, ?, ?)",
            [(i, at, at) for i in range(1, count + 1)],
        )
