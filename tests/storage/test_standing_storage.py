"""Standing sessions, their decisions and campaign titles as database rules (migrations 0010 and 0011)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.models import (
    Campaign,
    CampaignLimit,
    CampaignSchedule,
    Channel,
    DecisionOutcome,
    Occurrence,
    Player,
    PlayerStatus,
    Recipient,
    StandingLimit,
    StandingSession,
    Weekday,
)
from storage.campaigns import CampaignStore
from storage.db import Database
from storage.players import PlayerStore
from storage.standing import StandingStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 24)
FIRST = Occurrence(DAY, datetime(2026, 11, 24, 20, 0, tzinfo=UTC), datetime(2026, 11, 24, 19, 30, tzinfo=UTC))




async def _promoter(db: Database) -> Player:
    return await PlayerStore(db).upsert(1, "Rally", NOW)


async def _session(db: Database, creator: Player, **changes: object) -> StandingSession | StandingLimit:
    values: dict[str, object] = {
        "weekday": Weekday.TUE, "start_time": time(21, 0), "quorum": 3, "include_available": False,
        "include_maybe": False, "title": None, "creator": creator, "first": FIRST, "max_attempts": 5, "now": NOW,
        "max_sessions": 50, **changes,
    }
    return await StandingStore(db).add(**values)  # type: ignore[arg-type]


async def _create(db: Database, who: Player, *, standing_session_id: int | None = None, title: str | None = None,
                  start_time: time | None = None) -> Campaign | CampaignLimit:
    created = await CampaignStore(db).create(
        day=DAY, initiator=who, dry_run=False, global_guard=False, include_available=False, include_maybe=False,
        timezone="UTC", recipients=[Recipient(who, PlayerStatus.LOOKING, Channel.DISCORD, ())],
        schedule=CampaignSchedule(NOW, NOW, NOW), max_attempts=5, now=NOW, standing_session_id=standing_session_id,
        title=title, start_time=start_time,
    )
    return created if isinstance(created, CampaignLimit) else created[0]


async def _rows(db: Database, sql: str, *params: object) -> list[tuple[object, ...]]:
    async with db.read() as tx:
        return [tuple(r) for r in await tx.fetchall(sql, params)]


# -- migration 0011 rebuilds three tables: nothing is lost, every reference holds ----------------------


async def test_migration_0011_keeps_every_job_ledger_row_post_and_send_log_row(unmigrated: Database) -> None:
    db = unmigrated
    await db.migrate(up_to=10)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
            " VALUES (1, 11, 'Ana', ?, ?)",
            (NOW.isoformat(), NOW.isoformat()),
        )
        await tx.execute(
            "INSERT INTO campaigns (id, campaign_date, initiator_player_id, status, dry_run, include_available,"
            " include_maybe, timezone, recipient_count, count_discord, count_telegram, count_signal, created_at,"
            " start_time, title) VALUES (7, ?, 1, 'followup_sent', 0, 0, 0, 'UTC', 1, 1, 0, 0, ?, '21:00', 'Raid')",
            (DAY.isoformat(), NOW.isoformat()),
        )
        for job_id, job_type, seq in ((21, "send_reminder_2045", 0), (22, "send_start_2100", 1),
                                      (23, "voice_check_2100", 2)):
            await tx.execute(
                "INSERT INTO jobs (id, campaign_id, job_type, seq, run_at, due_at, status, attempts, max_attempts,"
                " started_at, finished_at) VALUES (?, 7, ?, ?, ?, ?, 'sent', 1, 5, ?, ?)",
                (job_id, job_type, seq, NOW.isoformat(), NOW.isoformat(), NOW.isoformat(), NOW.isoformat()),
            )
        await tx.execute(
            "INSERT INTO ledger (player_id, key, campaign_id, job_id, state, channel, claimed_at, finished_at)"
            " VALUES (1, 'PROMOTE:T0:2026-11-24', 7, 22, 'sent', 'discord', ?, ?)",
            (NOW.isoformat(), NOW.isoformat()),
        )
        await tx.execute(
            "INSERT INTO send_log (id, at, campaign_id, job_id, job_type, player_id, channel, status, reason, final)"
            " VALUES (31, ?, 7, 22, 'send_start_2100', 1, 'discord', 'sent', '', 1),"
            " (32, ?, 7, 23, 'voice_check_2100', NULL, 'discord', 'sent', 'summary', 0)",
            (NOW.isoformat(), NOW.isoformat()),
        )
        await tx.execute(
            "INSERT INTO post_ledger (key, campaign_id, state, provider_message_id, claimed_at, finished_at)"
            " VALUES ('PROMOTE:SUMMARY:5:2026-11-24', 7, 'sent', 'm-9', ?, ?)",
            (NOW.isoformat(), NOW.isoformat()),
        )
    tables = ("jobs", "ledger", "send_log", "post_ledger", "campaigns")
    before = {t: await _rows(db, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}  # noqa: S608

    assert await db.migrate() == ["0011_standing_sessions.sql"]

    after = {t: await _rows(db, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}  # noqa: S608
    assert {t: after[t] for t in tables if t != "campaigns"} == {t: before[t] for t in tables if t != "campaigns"}
    assert [row[:-1] for row in after["campaigns"]] == before["campaigns"]  # a new column, NULL
    assert after["campaigns"][0][-1] is None
    assert await _rows(db, "PRAGMA foreign_key_check") == []
    # The rebuilt tables keep their indexes.
    indexes = {r[0] for r in await _rows(db, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_pending_by_time", "jobs_running_by_lease", "send_log_by_campaign",
            "send_log_one_final_per_pair"} <= indexes
    # … and the rules: one final outcome per (job, player) in the send log.
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO send_log (at, campaign_id, job_id, job_type, player_id, channel, status, final)"
                " VALUES (?, 7, 22, 'send_start_2100', 1, 'discord', 'sent', 1)",
                (NOW.isoformat(),),
            )


@pytest.mark.parametrize(
    ("campaign_id", "job_type"),
    [(None, "send_start_2100"), (None, "voice_check_2100"), (7, "standing_decision")],
)
async def test_only_a_standing_decision_is_a_job_without_a_campaign(
    db: Database, campaign_id: int | None, job_type: str
) -> None:
    who = await _promoter(db)
    made = await _create(db, who)
    assert isinstance(made, Campaign)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts)"
                " VALUES (?, ?, 0, ?, ?, 'pending', 5)",
                (made.id if campaign_id else None, job_type, NOW.isoformat(), NOW.isoformat()),
            )


# -- one decision per session and date; one campaign per session and date --------------------------------


async def test_one_decision_per_session_and_date(db: Database) -> None:
    session = await _session(db, await _promoter(db))
    assert isinstance(session, StandingSession)
    store = StandingStore(db)
    [first] = await _rows(db, "SELECT job_id FROM standing_decisions")
    # Scheduling the same date again (the next week is scheduled with every outcome) adds nothing.
    decided = await store.record(int(first[0]), outcome=DecisionOutcome.TAKEN,
                                 eligible=None, campaign_id=None, detail="", now=NOW, then=FIRST, max_attempts=5)
    assert decided.session_date == DAY
    assert len(await _rows(db, "SELECT * FROM standing_decisions")) == 1
    assert len(await _rows(db, "SELECT * FROM jobs")) == 1
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        async with db.transaction() as tx:
            job = await tx.insert(
                "INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts)"
                " VALUES (NULL, 'standing_decision', 0, ?, ?, 'pending', 5)",
                (NOW.isoformat(), NOW.isoformat()),
            )
            await tx.execute(
                "INSERT INTO standing_decisions (job_id, session_id, session_date) VALUES (?, ?, ?)",
                (job, session.id, DAY.isoformat()),
            )


async def test_the_first_outcome_written_stays(db: Database) -> None:
    session = await _session(db, await _promoter(db))
    assert isinstance(session, StandingSession)
    store = StandingStore(db)
    [(job_id,)] = await _rows(db, "SELECT job_id FROM standing_decisions")
    later = Occurrence(DAY + timedelta(days=7), FIRST.start + timedelta(days=7), FIRST.decide_at + timedelta(days=7))
    one = await store.record(int(job_id), outcome=DecisionOutcome.BELOW_QUORUM, eligible=2, campaign_id=None,
                             detail="not enough players: 2 of 3", now=NOW, then=later, max_attempts=5)
    two = await store.record(int(job_id), outcome=DecisionOutcome.FAILED, eligible=None, campaign_id=None,
                             detail="the decision failed", now=NOW + timedelta(hours=1), then=later, max_attempts=5)
    assert one == two and two.outcome is DecisionOutcome.BELOW_QUORUM and two.decided_at == NOW
    assert len(await _rows(db, "SELECT * FROM standing_decisions WHERE session_date = ?",
                           later.day.isoformat())) == 1


async def test_a_standing_session_makes_one_campaign_per_date(db: Database) -> None:
    who = await _promoter(db)
    session = await _session(db, who)
    assert isinstance(session, StandingSession)
    made = await _create(db, who, standing_session_id=session.id, title="Raid", start_time=time(21, 0))
    assert isinstance(made, Campaign)
    assert (made.standing_session_id, made.title, made.start_time) == (session.id, "Raid", time(21, 0))
    assert await _create(db, who, standing_session_id=session.id) is CampaignLimit.STANDING
    assert (await CampaignStore(db).of_standing(session.id, DAY)) == made


async def test_one_session_per_weekday_and_time_until_it_is_removed(db: Database) -> None:
    who = await _promoter(db)
    first = await _session(db, who)
    assert isinstance(first, StandingSession)
    assert await _session(db, who, quorum=7) is StandingLimit.SLOT
    assert await StandingStore(db).remove(first.id, NOW)
    assert not await StandingStore(db).remove(first.id, NOW)
    again = await _session(db, who)
    assert isinstance(again, StandingSession) and again.id != first.id
    assert [s.id for s in await StandingStore(db).active()] == [again.id]
    removed = await StandingStore(db).get(first.id)
    assert removed is not None and removed.removed_at == NOW  # kept: its campaigns still name it


@pytest.mark.parametrize(
    ("column", "value"),
    [("title", "x" * 101), ("title", ""), ("start_time", "25:00"), ("start_time", "9:00"), ("quorum", 0),
     ("weekday", "tuesday")],
)
async def test_the_database_refuses_what_the_services_refuse(db: Database, column: str, value: object) -> None:
    who = await _promoter(db)
    row = {"weekday": "tue", "start_time": "21:00", "quorum": 3, "title": None, column: value}
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO standing_sessions (weekday, start_time, quorum, include_available, include_maybe,"
                " title, creator_player_id, created_at) VALUES (?, ?, ?, 0, 0, ?, ?, ?)",
                (row["weekday"], row["start_time"], row["quorum"], row["title"], who.id, NOW.isoformat()),
            )


@pytest.mark.parametrize(("title", "start_time"), [("x" * 101, "21:00"), (None, "21.00"), (None, "24:00")])
async def test_a_campaign_title_and_start_are_checked_too(db: Database, title: str | None, start_time: str) -> None:
    who = await _promoter(db)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO campaigns (campaign_date, initiator_player_id, status, dry_run, include_available,"
                " include_maybe, timezone, recipient_count, count_discord, count_telegram, count_signal,"
                " created_at, title, start_time) VALUES (?, ?, 'scheduled', 0, 0, 0, 'UTC', 0, 0, 0, 0, ?, ?, ?)",
                (DAY.isoformat(), who.id, NOW.isoformat(), title, start_time),
            )
