"""Storage against real SQLite files: migrations, pragmas and the constraints the rules rely on."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest

from services.models import (
    CampaignLimit,
    CampaignSchedule,
    Channel,
    PlayerStatus,
    Preferences,
    PreferredChannel,
    QuietHours,
)
from services.quiet_hours import parse_hhmm
from storage.campaigns import CampaignStore
from storage.db import Database, load_migrations
from storage.players import PlayerStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 24)



async def test_migrations_are_numbered_and_applied_once(tmp_path) -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.startswith(f"-- {m.version:04d}:") for m in migrations)
    db = await Database.open(tmp_path / "m.sqlite3")
    assert await db.schema_version() == len(migrations)
    assert await db.migrate() == []  # idempotent
    await db.close()


async def test_wal_and_foreign_keys_are_on(db: Database) -> None:
    async with db.read() as tx:
        assert (await tx.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await tx.fetchone("PRAGMA foreign_keys"))[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO availability (player_id, date, status, updated_at)"
                " VALUES (999, ?, 'LOOKING', ?)",
                (DAY.isoformat(), NOW.isoformat()),
            )


async def test_a_failed_transaction_changes_nothing(db: Database) -> None:
    players = PlayerStore(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO players (discord_user_id, display_name, created_at, updated_at)"
                " VALUES (1, 'A', ?, ?)",
                (NOW.isoformat(), NOW.isoformat()),
            )
            raise RuntimeError("boom")
    assert await players.by_discord_id(1) is None


async def test_one_status_per_player_per_date(db: Database) -> None:
    players = PlayerStore(db)
    p = await players.upsert(1, "Ana", NOW)
    await players.set_availability(p.id, DAY, PlayerStatus.MAYBE, NOW)
    await players.set_availability(p.id, DAY, PlayerStatus.LOOKING, NOW)
    assert await players.availability(p.id, DAY) is PlayerStatus.LOOKING
    await players.set_availability(p.id, DAY, None, NOW)
    assert await players.availability(p.id, DAY) is None
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO availability (player_id, date, status, updated_at) VALUES (?, ?, 'BORED', ?)",
                (p.id, DAY.isoformat(), NOW.isoformat()),
            )


async def test_player_upsert_refreshes_the_name(db: Database) -> None:
    players = PlayerStore(db)
    first = await players.upsert(1, "Ana", NOW)
    again = await players.upsert(1, "Ana B.", NOW)
    assert first.id == again.id and again.display_name == "Ana B."


async def test_preferences_round_trip(db: Database) -> None:
    players = PlayerStore(db)
    p = await players.upsert(1, "Ana", NOW)
    assert await players.preferences(p.id) == Preferences()
    assert not Preferences().allow_promotions  # consent is opt-in
    prefs = Preferences(
        True,
        PreferredChannel.SIGNAL,
        QuietHours(parse_hhmm("23:00"), parse_hhmm("07:00")),
        "Asia/Tokyo",
        promotions_chosen=True,
    )
    await players.save_preferences(p.id, prefs, NOW)
    assert await players.preferences(p.id) == prefs


async def test_candidates_bring_verified_channels(db: Database) -> None:
    players = PlayerStore(db)
    a = await players.upsert(1, "Ana", NOW)
    b = await players.upsert(2, "Bor", NOW)
    c = await players.upsert(3, "Cene", NOW)
    for p in (a, b, c):
        await players.set_availability(p.id, DAY, PlayerStatus.LOOKING, NOW)
    await players.save_preferences(a.id, Preferences(allow_promotions=True, promotions_chosen=True), NOW)
    await players.save_preferences(b.id, Preferences(allow_promotions=False, promotions_chosen=True), NOW)
    # Cene never chose: not a candidate (consent is opt-in), and counted as not opted in.
    assert await players.not_opted_in(DAY, frozenset({PlayerStatus.LOOKING})) == 1
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO channel_links VALUES (?, 'telegram', 'ciphertext', 'hash', ?)",
            (a.id, NOW.isoformat()),
        )
    found = await players.candidates(DAY, frozenset({PlayerStatus.LOOKING}))
    assert [(c.player.id, c.verified_channels) for c in found] == [(a.id, frozenset({Channel.TELEGRAM}))]


async def test_one_ledger_row_per_player_and_key(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
            " VALUES (1, 1, 'A', ?, ?)",
            (NOW.isoformat(), NOW.isoformat()),
        )
        await tx.execute(
            """INSERT INTO campaigns (id, campaign_date, initiator_player_id, status, dry_run, include_available,
               include_maybe, timezone, recipient_count, count_discord, count_telegram, count_signal,
               created_at)
               VALUES (1, ?, 1, 'scheduled', 0, 0, 0, 'UTC', 1, 1, 0, 0, ?)""",
            (DAY.isoformat(), NOW.isoformat()),
        )
        await tx.execute(
            "INSERT INTO jobs (id, campaign_id, job_type, seq, run_at, due_at, status, max_attempts) "
            "VALUES (1, 1, 'send_start_2100', 1, ?, ?, 'pending', 5)",
            (NOW.isoformat(), NOW.isoformat()),
        )
    insert = (
        "INSERT INTO ledger (player_id, key, campaign_id, job_id, state, claimed_at) "
        "VALUES (1, 'PROMOTE:T0:2026-11-24', 1, 1, 'claimed', ?)"
    )
    async with db.transaction() as tx:
        await tx.execute(insert, (NOW.isoformat(),))
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as tx:
            await tx.execute(insert, (NOW.isoformat(),))
    with pytest.raises(sqlite3.IntegrityError):  # one job per (campaign, job type)
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts) "
                "VALUES (1, 'send_start_2100', 1, ?, ?, 'pending', 5)",
                (NOW.isoformat(), NOW.isoformat()),
            )


# Rule 6 in the database: (who created the first campaign, was the global guard on for it,
# who tries next, global guard on now, dry run) → what the store answers.
LIMIT_CASES = [
    ("ana", False, "ana", False, False, CampaignLimit.PER_PROMOTER),
    ("ana", True, "ana", True, False, CampaignLimit.PER_PROMOTER),  # the promoter's own limit wins
    ("ana", True, "bor", True, False, CampaignLimit.GLOBAL),
    ("ana", True, "bor", False, False, None),  # the guard was switched off: Bor's campaign is fine
    ("ana", False, "bor", True, False, None),  # Ana's campaign was made without the guard
    ("ana", False, "bor", False, False, None),
    ("ana", True, "ana", True, True, None),  # a dry run never counts
]


@pytest.mark.parametrize(("first", "first_global", "second", "second_global", "dry_run", "expected"), LIMIT_CASES)
async def test_the_store_names_the_guard_that_refused_a_campaign(
    db: Database, first: str, first_global: bool, second: str, second_global: bool, dry_run: bool, expected
) -> None:
    players = PlayerStore(db)
    campaigns = CampaignStore(db)
    who = {name: await players.upsert(i, name, NOW) for i, name in enumerate(("ana", "bor"), start=1)}
    schedule = CampaignSchedule(NOW, NOW, NOW)

    async def create(name: str, global_guard: bool, dry: bool):
        return await campaigns.create(
            day=DAY, initiator=who[name], dry_run=dry, global_guard=global_guard, include_available=False,
            include_maybe=False, timezone="UTC", recipients=[], schedule=schedule, max_attempts=5, now=NOW,
        )

    assert not isinstance(await create(first, first_global, False), CampaignLimit)
    answer = await create(second, second_global, dry_run)
    if expected is None:
        assert not isinstance(answer, CampaignLimit)
    else:
        assert answer is expected
        async with db.read() as tx:
            row = await tx.fetchone("SELECT count(*) FROM campaigns")
        assert row is not None and row[0] == 1  # nothing of the refused campaign was written
