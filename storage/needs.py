""""We need N more": each call, the players it asked, and the one job that messages them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from services.models import UNORDERED_SEQ, JobType, NeedCounts, Recipient, SnapshotRecipient
from storage.campaigns import snapshot_recipient
from storage.db import Database, to_db_time


class NeedStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def asked_on(self, day: date) -> set[int]:
        """The players any campaign of `day` asked already (each is asked at most once a day)."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                "SELECT player_id FROM need_recipients WHERE campaign_date = ?", (day.isoformat(),)
            )
        return {r["player_id"] for r in rows}

    async def ask(
        self,
        *,
        campaign_id: int,
        day: date,
        promoter_id: int,
        count: int,
        recipients: Sequence[Recipient],
        max_attempts: int,
        now: datetime,
    ) -> int:
        """Record the call and whom it asks, and (re)arm the campaign's need job, in one transaction.

        Players asked already today (by any campaign) are left out by the database. When anyone new is
        asked, the job is due now: pending again if it ran before, and taken from a run still in
        progress (its lease is withdrawn, so that run stops and the next one sees the new players).
        Returns how many players this call asks.
        """
        at = to_db_time(now)
        async with self.db.transaction() as tx:
            need_id = await tx.insert(
                "INSERT INTO needs (campaign_id, player_id, count, asked, created_at) VALUES (?, ?, ?, 0, ?)",
                (campaign_id, promoter_id, count, at),
            )
            rows = await tx.fetchall(
                """
                INSERT INTO need_recipients (campaign_id, player_id, need_id, campaign_date, status, selected_channel)
                SELECT :campaign, json_extract(e.value, '$[0]'), :need, :day, json_extract(e.value, '$[1]'),
                       json_extract(e.value, '$[2]')
                FROM json_each(:rows) e WHERE true
                ON CONFLICT DO NOTHING
                RETURNING player_id
                """,
                {
                    "campaign": campaign_id,
                    "need": need_id,
                    "day": day.isoformat(),
                    "rows": json.dumps([[r.player.id, r.status.value, r.selected_channel.value] for r in recipients]),
                },
            )
            asked = len(rows)
            await tx.execute("UPDATE needs SET asked = ? WHERE id = ?", (asked, need_id))
            if asked:
                await tx.execute(
                    """
                    INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts)
                    VALUES (:campaign, :type, :seq, :now, :now, 'pending', :max)
                    ON CONFLICT (campaign_id, job_type) DO UPDATE SET
                        status = 'pending', run_at = excluded.run_at, due_at = excluded.due_at, attempts = 0,
                        lease_owner = NULL, lease_until = NULL, last_error = NULL, finished_at = NULL
                    """,
                    {"campaign": campaign_id, "type": JobType.NEED.value, "seq": UNORDERED_SEQ, "now": at,
                     "max": max_attempts},
                )
        return asked

    async def latest_count(self, campaign_id: int) -> int | None:
        """How many players the campaign's newest "need" asked for (the message says so)."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT count FROM needs WHERE campaign_id = ? ORDER BY id DESC LIMIT 1", (campaign_id,)
            )
        return int(row["count"]) if row is not None else None

    async def recipients(self, campaign_id: int) -> list[SnapshotRecipient]:
        """Every player the campaign's "need" calls asked, with the channel chosen for them then."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT p.id, p.discord_user_id, p.display_name, n.status, n.selected_channel
                FROM need_recipients n JOIN players p ON p.id = n.player_id
                WHERE n.campaign_id = ? ORDER BY p.id
                """,
                (campaign_id,),
            )
        return [snapshot_recipient(r) for r in rows]

    async def counts(self, campaign_id: int) -> NeedCounts:
        """Players asked, and how many of them joined the snapshot (answered that they are in)."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                """
                SELECT count(*) AS asked,
                       count(r.player_id) AS joined
                FROM need_recipients n
                LEFT JOIN campaign_recipients r ON r.campaign_id = n.campaign_id AND r.player_id = n.player_id
                WHERE n.campaign_id = ?
                """,
                (campaign_id,),
            )
        return NeedCounts(int(row["asked"]), int(row["joined"])) if row is not None else NeedCounts()

    async def joined(self, campaign_id: int) -> list[str]:
        """The display names of the asked players who joined, in the order they were asked."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT p.display_name FROM need_recipients n
                JOIN campaign_recipients r ON r.campaign_id = n.campaign_id AND r.player_id = n.player_id
                JOIN players p ON p.id = n.player_id
                WHERE n.campaign_id = ? ORDER BY n.need_id, p.display_name COLLATE NOCASE
                """,
                (campaign_id,),
            )
        return [r["display_name"] for r in rows]
