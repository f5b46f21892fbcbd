"""Storage against real SQLite files: migrations, pragmas and the constraints the rules rely on."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest

from services.models import Channel, PlayerStatus, Preferences, PreferredChannel, QuietHours
from services.quiet_hours import parse_hhmm
from storage.db import Database, load_migrations
from storage.players import PlayerStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 24)


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(tmp_path / "s.sqlite3")
    yield database
    await database.close()


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
    prefs = Preferences(
        False,
        PreferredChannel.SIGNAL,
        QuietHours(parse_hhmm("23:00"), parse_hhmm("07:00")),
        "Asia/Tokyo",
    )
    await players.save_preferences(p.id, prefs, NOW)
    assert await players.preferences(p.id) == prefs


async def test_candidates_bring_verified_channels(db: Database) -> None:
    players = PlayerStore(db)
    a = await players.upsert(1, "Ana", NOW)
    b = await players.upsert(2, "Bor", NOW)
    for p in (a, b):
        await players.set_availability(p.id, DAY, PlayerStatus.LOOKING, NOW)
    await players.save_preferences(b.id, Preferences(allow_promotions=False), NOW)
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
