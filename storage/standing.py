"""Standing weekly sessions and their decisions (one `standing_decision` job per session and date)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, time

from services.models import (
    DecisionOutcome,
    JobStatus,
    JobType,
    Occurrence,
    Player,
    StandingDecision,
    StandingLimit,
    StandingSession,
    Weekday,
)
from storage.db import Database, Transaction, from_db_time, json_ids, to_db_hhmm, to_db_time

_SESSION_SELECT = """
    SELECT s.*, p.id AS p_id, p.discord_user_id AS p_discord_user_id, p.display_name AS p_display_name
    FROM standing_sessions s JOIN players p ON p.id = s.creator_player_id
"""
_DECISION_SELECT = """
    SELECT d.*, j.due_at, j.status AS job_status
    FROM standing_decisions d JOIN jobs j ON j.id = d.job_id
"""


def _session(row: sqlite3.Row) -> StandingSession:
    return StandingSession(
        id=row["id"],
        weekday=Weekday(row["weekday"]),
        start_time=time.fromisoformat(row["start_time"]),
        quorum=row["quorum"],
        include_available=bool(row["include_available"]),
        include_maybe=bool(row["include_maybe"]),
        title=row["title"],
        creator=Player(row["p_id"], row["p_discord_user_id"], row["p_display_name"]),
        created_at=from_db_time(row["created_at"]),
        removed_at=from_db_time(row["removed_at"]) if row["removed_at"] else None,
    )


def _decision(row: sqlite3.Row) -> StandingDecision:
    return StandingDecision(
        job_id=row["job_id"],
        session_id=row["session_id"],
        session_date=date.fromisoformat(row["session_date"]),
        due_at=from_db_time(row["due_at"]),
        job_status=JobStatus(row["job_status"]),
        outcome=DecisionOutcome(row["outcome"]) if row["outcome"] else None,
        eligible=row["eligible"],
        campaign_id=row["campaign_id"],
        detail=row["detail"],
        decided_at=from_db_time(row["decided_at"]) if row["decided_at"] else None,
    )


class StandingStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        weekday: Weekday,
        start_time: time,
        quorum: int,
        include_available: bool,
        include_maybe: bool,
        title: str | None,
        creator: Player,
        first: Occurrence,
        max_attempts: int,
        now: datetime,
        max_sessions: int,
    ) -> StandingSession | StandingLimit:
        """Insert the session and its first decision in one transaction.

        One session per weekday and time is the database's rule (a unique index); the number of
        sessions is counted in the same write transaction, so concurrent adds cannot pass it together.
        """
        async with self.db.transaction() as tx:
            row = await tx.fetchone("SELECT count(*) AS n FROM standing_sessions WHERE removed_at IS NULL")
            if row is not None and int(row["n"]) >= max_sessions:
                return StandingLimit.COUNT
            row = await tx.fetchone(
                """
                INSERT INTO standing_sessions (weekday, start_time, quorum, include_available, include_maybe,
                                               title, creator_player_id, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                RETURNING id
                """,
                (
                    weekday.value, to_db_hhmm(start_time), quorum, int(include_available), int(include_maybe),
                    title, creator.id, to_db_time(now),
                ),
            )
            if row is None:
                return StandingLimit.SLOT
            session_id = int(row["id"])
            await _schedule(tx, session_id, first, max_attempts)
        session = await self.get(session_id)
        if session is None:
            raise RuntimeError("row vanished right after being written")
        return session

    async def get(self, session_id: int) -> StandingSession | None:
        """The session, removed or not."""
        async with self.db.read() as tx:
            row = await tx.fetchone(_SESSION_SELECT + " WHERE s.id = ?", (session_id,))
        return _session(row) if row else None

    async def active(self) -> list[StandingSession]:
        """The sessions not removed, in week order (Monday first), then by time."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(_SESSION_SELECT + " WHERE s.removed_at IS NULL")
        sessions = [_session(r) for r in rows]
        return sorted(sessions, key=lambda s: (s.weekday.number, s.start_time, s.id))

    async def remove(self, session_id: int, now: datetime) -> bool:
        """Mark the session removed and cancel its pending decisions; False if there is no such active session.

        A decision already running finishes as it began.
        """
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE standing_sessions SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                (to_db_time(now), session_id),
            )
            if changed:
                await tx.execute(
                    """
                    UPDATE jobs SET status = 'cancelled', finished_at = ?
                    WHERE status = 'pending'
                      AND id IN (SELECT job_id FROM standing_decisions WHERE session_id = ? AND outcome IS NULL)
                    """,
                    (to_db_time(now), session_id),
                )
        return changed == 1

    # -- decisions ---------------------------------------------------------------------------

    async def decision(self, job_id: int) -> StandingDecision | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(_DECISION_SELECT + " WHERE d.job_id = ?", (job_id,))
        return _decision(row) if row else None

    async def upcoming(self, session_ids: Sequence[int]) -> dict[int, StandingDecision]:
        """Each session's next decision still to run (pending, or running now)."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                _DECISION_SELECT  # noqa: S608 - constant fragments, values are bound
                + """ WHERE d.session_id IN (SELECT value FROM json_each(?)) AND d.outcome IS NULL
                      AND j.status IN ('pending', 'running')
                      ORDER BY d.session_date DESC""",
                (json_ids(session_ids),),
            )
        return {r["session_id"]: _decision(r) for r in rows}  # the earliest date wins (read last)

    async def latest(self, session_ids: Sequence[int]) -> dict[int, StandingDecision]:
        """Each session's latest decision that has an outcome."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                _DECISION_SELECT  # noqa: S608 - constant fragments, values are bound
                + """ WHERE d.session_id IN (SELECT value FROM json_each(?)) AND d.outcome IS NOT NULL
                      AND d.session_date = (SELECT max(x.session_date) FROM standing_decisions x
                                             WHERE x.session_id = d.session_id AND x.outcome IS NOT NULL)""",
                (json_ids(session_ids),),
            )
        return {r["session_id"]: _decision(r) for r in rows}

    async def record(
        self,
        job_id: int,
        *,
        outcome: DecisionOutcome,
        eligible: int | None,
        campaign_id: int | None,
        detail: str,
        now: datetime,
        then: Occurrence | None,
        max_attempts: int,
    ) -> StandingDecision:
        """Write the decision's outcome (the first one written stays) and schedule `then`, the session's
        next date, in one transaction: a crash leaves either both or neither."""
        async with self.db.transaction() as tx:
            await tx.execute(
                """
                UPDATE standing_decisions SET outcome = ?, eligible = ?, campaign_id = ?, detail = ?, decided_at = ?
                WHERE job_id = ? AND outcome IS NULL
                """,
                (outcome.value, eligible, campaign_id, detail, to_db_time(now), job_id),
            )
            row = await tx.fetchone(_DECISION_SELECT + " WHERE d.job_id = ?", (job_id,))
            if row is None:
                raise RuntimeError(f"job {job_id} is not a standing decision")
            if then is not None:
                await _schedule(tx, row["session_id"], then, max_attempts)
        return _decision(row)


async def _schedule(tx: Transaction, session_id: int, when: Occurrence, max_attempts: int) -> None:
    """Create the decision job of `session_id` for `when.day`, unless the session is removed or that
    date has one already (the unique key of standing_decisions stands behind this check)."""
    row = await tx.fetchone(
        """
        INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts)
        SELECT NULL, ?, 0, ?, ?, 'pending', ?
        WHERE EXISTS (SELECT 1 FROM standing_sessions WHERE id = ? AND removed_at IS NULL)
          AND NOT EXISTS (SELECT 1 FROM standing_decisions WHERE session_id = ? AND session_date = ?)
        RETURNING id
        """,
        (
            JobType.STANDING_DECISION.value, to_db_time(when.decide_at), to_db_time(when.decide_at), max_attempts,
            session_id, session_id, when.day.isoformat(),
        ),
    )
    if row is not None:
        await tx.execute(
            "INSERT INTO standing_decisions (job_id, session_id, session_date) VALUES (?, ?, ?)",
            (row["id"], session_id, when.day.isoformat()),
        )
