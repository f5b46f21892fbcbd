"""Job claims with leases: the heart of "a dead process's work is resumed, never doubled"."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from services.models import Job, JobStatus
from storage.campaigns import job_from_row
from storage.db import Database, from_db_time, json_ids, to_db_time

# A job may run once every earlier job of its campaign is over (the voice check never starts before
# the start job has finished) and its campaign is not cancelled. A job with a negative seq ("we need N
# more") stands outside that order: it waits for nothing and holds nothing up. A standing decision has
# no campaign.
_IN_TURN = """
    NOT EXISTS (SELECT 1 FROM jobs e
                 WHERE e.campaign_id = j.campaign_id AND e.seq >= 0 AND e.seq < j.seq
                   AND e.status IN ('pending', 'running'))
    AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = j.campaign_id AND c.status = 'cancelled')
"""
# A job is runnable when it is due (or its lease expired) and in turn.
_RUNNABLE = f"""
    (   (j.status = 'pending' AND j.run_at <= :now)
     OR (j.status = 'running' AND j.lease_until <= :now))
    AND {_IN_TURN}
"""
# Real campaigns' jobs (and standing decisions, which may create one) are claimed before dry runs',
# so a pile of rehearsals never holds a real job back by a claim round.
_CLAIM_ORDER = "coalesce((SELECT dry_run FROM campaigns c WHERE c.id = j.campaign_id), 0), j.run_at, j.seq, j.id"


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim_due(
        self,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int = 16,
        exclude: Collection[int] = (),
    ) -> list[Job]:
        """Atomically lease due jobs (and jobs whose lease expired) to `owner`, real campaigns' first.

        `exclude` names jobs this process is still running: even if their lease lapsed (an event
        loop stalled), the same process must not start them a second time.
        """
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                f"""
                UPDATE jobs SET status = 'running', lease_owner = :owner, lease_until = :until,
                                attempts = attempts + 1, started_at = coalesce(started_at, :now)
                WHERE id IN (SELECT j.id FROM jobs j WHERE {_RUNNABLE}
                               AND j.id NOT IN (SELECT value FROM json_each(:exclude))
                             ORDER BY {_CLAIM_ORDER} LIMIT :limit)
                RETURNING *
                """,  # noqa: S608 - a constant fragment, values are bound
                {
                    "owner": owner,
                    "until": to_db_time(now + lease),
                    "now": to_db_time(now),
                    "limit": limit,
                    "exclude": json_ids(exclude),
                },
            )
        return sorted((job_from_row(r) for r in rows), key=lambda j: (j.run_at, j.seq))

    async def next_wakeup(self, exclude: Collection[int] = ()) -> datetime | None:
        """The earliest instant at which a claim could find work (a due time or a lease expiry).

        Jobs this process runs (`exclude`) are left out: their leases are ours to extend.
        """
        async with self.db.read() as tx:
            row = await tx.fetchone(
                f"""
                SELECT min(t) AS t FROM (
                    SELECT min(j.run_at) AS t FROM jobs j
                     WHERE j.status = 'pending' AND {_IN_TURN}
                    UNION ALL
                    SELECT min(j.lease_until) FROM jobs j
                     WHERE j.status = 'running'
                       AND j.id NOT IN (SELECT value FROM json_each(:exclude))
                )
                """,  # noqa: S608 - a constant fragment, values are bound
                {"exclude": json_ids(exclude)},
            )
        return from_db_time(row["t"]) if row and row["t"] else None

    async def extend_lease(self, job_id: int, owner: str, until: datetime) -> bool:
        """Keep a long fan-out's lease; False means another process took the job over."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                """
                UPDATE jobs SET lease_until = ?
                WHERE id = ? AND lease_owner = ? AND status = 'running'
                """,
                (to_db_time(until), job_id, owner),
            )
        return changed == 1

    async def finish(
        self, job_id: int, owner: str, status: JobStatus, now: datetime, error: str | None = None
    ) -> bool:
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                """
                UPDATE jobs SET status = ?, finished_at = ?, last_error = ?, lease_owner = NULL,
                                lease_until = NULL
                WHERE id = ? AND lease_owner = ? AND status = 'running'
                """,
                (status.value, to_db_time(now), error, job_id, owner),
            )
        return changed == 1

    async def retry_later(self, job_id: int, owner: str, run_at: datetime, error: str) -> bool:
        """Put a failed attempt back to pending for a later try."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                """
                UPDATE jobs SET status = 'pending', run_at = ?, last_error = ?, lease_owner = NULL,
                                lease_until = NULL
                WHERE id = ? AND lease_owner = ? AND status = 'running'
                """,
                (to_db_time(run_at), error, job_id, owner),
            )
        return changed == 1

    async def get(self, job_id: int) -> Job | None:
        async with self.db.read() as tx:
            row = await tx.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return job_from_row(row) if row else None
