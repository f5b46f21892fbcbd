"""Campaigns, their recipient snapshot and their jobs."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime

from services.models import (
    JOB_ORDER,
    CampaignSchedule,
    CampaignStatus,
    Channel,
    ChannelsSummary,
    DeliveryStatus,
    JobStatus,
    JobType,
    Player,
    PlayerStatus,
    Recipient,
)
from storage.db import Database, from_db_time, to_db_time
from storage.players import player_from_row


class DuplicateCampaign(Exception):
    """The database refused a second campaign for the same promoter (or day, with the global guard)."""

    def __init__(self, global_guard: bool) -> None:
        super().__init__("duplicate campaign")
        self.global_guard = global_guard


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    campaign_date: date
    initiator: Player
    status: CampaignStatus
    dry_run: bool
    include_available: bool
    include_maybe: bool
    timezone: str
    recipient_count: int
    channels_summary: ChannelsSummary
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    campaign_id: int
    job_type: JobType
    seq: int
    run_at: datetime
    due_at: datetime
    status: JobStatus
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_until: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SnapshotRecipient:
    player: Player
    status: PlayerStatus
    selected_channel: Channel


_CAMPAIGN_SELECT = """
    SELECT c.*, p.id AS p_id, p.discord_user_id AS p_discord_user_id, p.display_name AS p_display_name
    FROM campaigns c JOIN players p ON p.id = c.initiator_player_id
"""


def _campaign(row: sqlite3.Row) -> Campaign:
    return Campaign(
        id=row["id"],
        campaign_date=date.fromisoformat(row["campaign_date"]),
        initiator=Player(row["p_id"], row["p_discord_user_id"], row["p_display_name"]),
        status=CampaignStatus(row["status"]),
        dry_run=bool(row["dry_run"]),
        include_available=bool(row["include_available"]),
        include_maybe=bool(row["include_maybe"]),
        timezone=row["timezone"],
        recipient_count=row["recipient_count"],
        channels_summary=ChannelsSummary(
            row["count_discord"], row["count_telegram"], row["count_signal"]
        ),
        created_at=from_db_time(row["created_at"]),
    )


def job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        campaign_id=row["campaign_id"],
        job_type=JobType(row["job_type"]),
        seq=row["seq"],
        run_at=from_db_time(row["run_at"]),
        due_at=from_db_time(row["due_at"]),
        status=JobStatus(row["status"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        lease_owner=row["lease_owner"],
        lease_until=from_db_time(row["lease_until"]) if row["lease_until"] else None,
        last_error=row["last_error"],
    )


class CampaignStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        day: date,
        initiator: Player,
        dry_run: bool,
        global_guard: bool,
        include_available: bool,
        include_maybe: bool,
        timezone: str,
        recipients: list[Recipient],
        schedule: CampaignSchedule,
        max_attempts: int,
        now: datetime,
    ) -> tuple[Campaign, list[Job]]:
        """Insert the campaign, its recipient snapshot and its three jobs in one transaction."""
        summary = ChannelsSummary.of(recipients)
        try:
            async with self.db.transaction() as tx:
                campaign_id = await tx.insert(
                    """
                    INSERT INTO campaigns (campaign_date, initiator_player_id, status, dry_run,
                        global_slot, include_available, include_maybe, timezone, recipient_count,
                        count_discord, count_telegram, count_signal, created_at)
                    VALUES (?, ?, 'scheduled', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    (
                        day.isoformat(),
                        initiator.id,
                        int(dry_run),
                        1 if global_guard and not dry_run else None,
                        int(include_available),
                        int(include_maybe),
                        timezone,
                        len(recipients),
                        summary.discord,
                        summary.telegram,
                        summary.signal,
                        to_db_time(now),
                    ),
                )
                await tx.executemany(
                    """
                    INSERT INTO campaign_recipients (campaign_id, player_id, status, selected_channel)
                    VALUES (?, ?, ?, ?)
                    """,
                    [
                        (campaign_id, r.player.id, r.status.value, r.selected_channel.value)
                        for r in recipients
                    ],
                )
                await tx.executemany(
                    """
                    INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts)
                    VALUES (?, ?, ?, ?, ?, 'pending', ?)
                    """,
                    [
                        (
                            campaign_id,
                            job_type.value,
                            seq,
                            to_db_time(schedule.at(job_type)),
                            to_db_time(schedule.at(job_type)),
                            max_attempts,
                        )
                        for seq, job_type in enumerate(JOB_ORDER)
                    ],
                )
        except sqlite3.IntegrityError as exc:
            text = str(exc)
            if "campaigns.campaign_date" in text and "initiator" not in text:
                raise DuplicateCampaign(global_guard=True) from exc
            if "campaigns." in text:
                raise DuplicateCampaign(global_guard=False) from exc
            raise
        campaign = await self.get(campaign_id)
        if campaign is None:
            raise RuntimeError("row vanished inside its own transaction")
        return campaign, await self.jobs(campaign_id)

    async def get(self, campaign_id: int) -> Campaign | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(_CAMPAIGN_SELECT + " WHERE c.id = ?", (campaign_id,))
        return _campaign(row) if row else None

    async def for_date(self, day: date) -> Campaign | None:
        """The newest real campaign of `day`, else the newest dry run (DESIGN.md)."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                _CAMPAIGN_SELECT + " WHERE c.campaign_date = ? ORDER BY c.dry_run, c.id DESC LIMIT 1",
                (day.isoformat(),),
            )
        return _campaign(row) if row else None

    async def active_for_initiator(self, initiator_id: int, day: date) -> Campaign | None:
        """The initiator's newest campaign of `day` that can still be cancelled, real ones first."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                _CAMPAIGN_SELECT
                + """ WHERE c.campaign_date = ? AND c.initiator_player_id = ?
                      AND c.status IN ('scheduled', 'running', 'sent', 'partial', 'failed')
                      ORDER BY c.dry_run, c.id DESC LIMIT 1""",
                (day.isoformat(), initiator_id),
            )
        return _campaign(row) if row else None

    async def jobs(self, campaign_id: int) -> list[Job]:
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                "SELECT * FROM jobs WHERE campaign_id = ? ORDER BY seq", (campaign_id,)
            )
        return [job_from_row(r) for r in rows]

    async def recipients(self, campaign_id: int) -> list[SnapshotRecipient]:
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT p.id, p.discord_user_id, p.display_name, r.status, r.selected_channel
                FROM campaign_recipients r JOIN players p ON p.id = r.player_id
                WHERE r.campaign_id = ? ORDER BY p.id
                """,
                (campaign_id,),
            )
        return [
            SnapshotRecipient(
                player_from_row(r), PlayerStatus(r["status"]), Channel(r["selected_channel"])
            )
            for r in rows
        ]

    async def set_status(
        self, campaign_id: int, status: CampaignStatus, *, unless: tuple[CampaignStatus, ...] = ()
    ) -> bool:
        """Move a campaign to `status` unless it is in one of `unless` (a cancel always wins)."""
        blocked = (CampaignStatus.CANCELLED, *unless)
        marks = ",".join("?" * len(blocked))
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE campaigns SET status = ? WHERE id = ? AND status NOT IN ({marks})",  # noqa: S608
                (status.value, campaign_id, *[s.value for s in blocked]),
            )
        return changed == 1

    async def cancel(self, campaign_id: int, now: datetime) -> bool:
        """Cancel the campaign and its unfinished jobs; return False if already over.

        A job running in a live process sees the cancel at its next lease check and stops; a job
        left running by a dead process is cancelled here rather than resumed.
        """
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                """
                UPDATE campaigns SET status = 'cancelled', cancelled_at = ?
                WHERE id = ? AND status NOT IN ('cancelled', 'followup_sent')
                """,
                (to_db_time(now), campaign_id),
            )
            if changed:
                await tx.execute(
                    """
                    UPDATE jobs SET status = 'cancelled', finished_at = ?, lease_owner = NULL,
                                    lease_until = NULL
                    WHERE campaign_id = ? AND status IN ('pending', 'running')
                    """,
                    (to_db_time(now), campaign_id),
                )
        return changed == 1

    async def delivery_counts(self, campaign_id: int) -> dict[DeliveryStatus, int]:
        """Final outcome of each (recipient, message job) pair; the summary post is not counted."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT status, count(*) AS n FROM send_log
                WHERE campaign_id = ? AND final = 1 AND player_id IS NOT NULL
                GROUP BY status
                """,
                (campaign_id,),
            )
        counts = {s: 0 for s in DeliveryStatus}
        for r in rows:
            counts[DeliveryStatus(r["status"])] = r["n"]
        return counts
