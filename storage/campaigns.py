"""Campaigns, their recipient snapshot and their jobs."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, time

from services.models import (
    JOB_ORDER,
    Campaign,
    CampaignLimit,
    CampaignSchedule,
    CampaignStatus,
    Channel,
    ChannelsSummary,
    DeliveryStatus,
    Job,
    JobStatus,
    JobType,
    Player,
    PlayerStatus,
    Recipient,
    SnapshotRecipient,
)
from storage.db import Database, Transaction, from_db_time, to_db_hhmm, to_db_time
from storage.players import player_from_row

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
        start_time=time.fromisoformat(row["start_time"]) if row["start_time"] else None,
        title=row["title"],
        standing_session_id=row["standing_session_id"],
    )


def snapshot_recipient(row: sqlite3.Row) -> SnapshotRecipient:
    """A recipient row (player columns, `status`, `selected_channel`) as the fan-out takes it."""
    return SnapshotRecipient(player_from_row(row), PlayerStatus(row["status"]), Channel(row["selected_channel"]))


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
        dry_run_limit: int | None = None,
        start_time: time | None = None,
        title: str | None = None,
        standing_session_id: int | None = None,
    ) -> tuple[Campaign, list[Job]] | CampaignLimit:
        """Insert the campaign, its recipient snapshot and its three jobs in one transaction.

        Rule 6 is the database's: when a partial unique index refuses the campaign, nothing is
        written and the guard that matched is returned (a standing session's second campaign of a
        date is refused the same way, as `CampaignLimit.STANDING`). A dry run beyond the initiator's
        `dry_run_limit` of the day (cancelled ones count) is refused the same way; the count and the
        insert share one write transaction (BEGIN IMMEDIATE), so concurrent creates cannot both slip
        under it.
        """
        summary = ChannelsSummary.of(recipients)
        async with self.db.transaction() as tx:
            if dry_run and dry_run_limit is not None:
                row = await tx.fetchone(
                    "SELECT count(*) AS n FROM campaigns"
                    " WHERE initiator_player_id = ? AND campaign_date = ? AND dry_run = 1",
                    (initiator.id, day.isoformat()),
                )
                if row is not None and int(row["n"]) >= dry_run_limit:
                    return CampaignLimit.DRY_RUNS
            row = await tx.fetchone(
                """
                INSERT INTO campaigns (campaign_date, initiator_player_id, status, dry_run,
                    global_slot, include_available, include_maybe, timezone, recipient_count,
                    count_discord, count_telegram, count_signal, created_at, start_time, title,
                    standing_session_id)
                VALUES (?, ?, 'scheduled', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                RETURNING id
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
                    to_db_hhmm(start_time) if start_time is not None else None,
                    title,
                    standing_session_id,
                ),
            )
            if row is None:
                return await _limit_that_matched(tx, day, initiator.id, standing_session_id)
            campaign_id = int(row["id"])
            await tx.executemany(
                """
                INSERT INTO campaign_recipients (campaign_id, player_id, status, selected_channel)
                VALUES (?, ?, ?, ?)
                """,
                [(campaign_id, r.player.id, r.status.value, r.selected_channel.value) for r in recipients],
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
        campaign = await self.get(campaign_id)
        if campaign is None:
            raise RuntimeError("row vanished inside its own transaction")
        return campaign, await self.jobs(campaign_id)

    async def get(self, campaign_id: int) -> Campaign | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(_CAMPAIGN_SELECT + " WHERE c.id = ?", (campaign_id,))
        return _campaign(row) if row else None

    async def for_date(self, day: date) -> Campaign | None:
        """The newest real campaign of `day`, else the newest dry run."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                _CAMPAIGN_SELECT + " WHERE c.campaign_date = ? ORDER BY c.dry_run, c.id DESC LIMIT 1",
                (day.isoformat(),),
            )
        return _campaign(row) if row else None

    async def live_for_date(self, day: date) -> Campaign | None:
        """The newest real campaign of `day` that is not cancelled: the evening that is promoted."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                _CAMPAIGN_SELECT
                + " WHERE c.campaign_date = ? AND c.dry_run = 0 AND c.status <> 'cancelled'"
                " ORDER BY c.id DESC LIMIT 1",
                (day.isoformat(),),
            )
        return _campaign(row) if row else None

    async def of_standing(self, session_id: int, day: date) -> Campaign | None:
        """The campaign standing session `session_id` created for `day`, if any (at most one)."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                _CAMPAIGN_SELECT + " WHERE c.standing_session_id = ? AND c.campaign_date = ?",
                (session_id, day.isoformat()),
            )
        return _campaign(row) if row else None

    async def unfinished(self, since: date, prefer_initiator: int | None = None) -> Campaign | None:
        """The newest campaign dated `since` or later with a job still to run (`prefer_initiator`'s first,
        then real ones before dry runs): a campaign created at 23:59 stays in reach after midnight."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                _CAMPAIGN_SELECT  # noqa: S608 - constant fragments, values are bound
                + """ WHERE c.campaign_date >= ? AND c.status <> 'cancelled'
                      AND EXISTS (SELECT 1 FROM jobs j
                                   WHERE j.campaign_id = c.id AND j.status IN ('pending', 'running'))
                      ORDER BY c.initiator_player_id IS ? DESC, c.dry_run, c.id DESC LIMIT 1""",
                (since.isoformat(), prefer_initiator),
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
        return [snapshot_recipient(r) for r in rows]

    async def set_status(self, campaign_id: int, status: CampaignStatus) -> bool:
        """Move a campaign to `status` unless it was cancelled (a cancel always wins)."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE campaigns SET status = ? WHERE id = ? AND status <> 'cancelled'",
                (status.value, campaign_id),
            )
        return changed == 1

    async def cancel(self, campaign_id: int, now: datetime) -> bool:
        """Cancel the campaign and its unfinished jobs; return False if already over.

        A job running in a live process sees the cancel at its next lease check and stops; a job
        left running by a dead process is cancelled here rather than resumed. A campaign that has
        delivered anything keeps its place under rule 6 (the indexes of migration 0008).
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
        """Final outcome of each (recipient, message job) pair over the reminder, start and follow-up;
        neither the summary post nor the "we need N more" asks are counted."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT status, count(*) AS n FROM send_log
                WHERE campaign_id = ? AND final = 1 AND player_id IS NOT NULL AND job_type <> ?
                GROUP BY status
                """,
                (campaign_id, JobType.NEED.value),
            )
        counts = {s: 0 for s in DeliveryStatus}
        for r in rows:
            counts[DeliveryStatus(r["status"])] = r["n"]
        return counts


async def _limit_that_matched(
    tx: Transaction, day: date, initiator_id: int, standing_session_id: int | None
) -> CampaignLimit:
    """Which unique index refused a campaign: a standing session's own (migration 0011), else the two of
    rule 6 (migration 0008), the promoter's own first."""
    if standing_session_id is not None:
        made = await tx.fetchone(
            "SELECT 1 FROM campaigns WHERE standing_session_id = ? AND campaign_date = ?",
            (standing_session_id, day.isoformat()),
        )
        if made is not None:
            return CampaignLimit.STANDING
    mine = await tx.fetchone(
        """
        SELECT 1 FROM campaigns
        WHERE initiator_player_id = ? AND campaign_date = ? AND dry_run = 0
          AND (status <> 'cancelled' OR delivered_at IS NOT NULL)
        """,
        (initiator_id, day.isoformat()),
    )
    if mine is not None:
        return CampaignLimit.PER_PROMOTER
    anyone = await tx.fetchone(
        """
        SELECT 1 FROM campaigns
        WHERE campaign_date = ? AND dry_run = 0 AND global_slot = 1
          AND (status <> 'cancelled' OR delivered_at IS NOT NULL)
        """,
        (day.isoformat(),),
    )
    if anyone is not None:
        return CampaignLimit.GLOBAL
    raise RuntimeError("a campaign insert was ignored, but no anti-spam index matches it")
