"""The database file at start-up: what cannot serve is refused in words, copies are consistent."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest

from storage.backup import aside_name, backup
from storage.db import Database, StorageError, latest_version, load_migrations
from storage.facts import database_facts


def aiosqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, aiosqlite.Connection) and t.is_alive()]


def text_file(path: Path) -> Path:
    path.write_text("not a database\n", encoding="utf-8")
    return path


def future_schema(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: (p.mkdir(), p)[1], "is a directory"),
        (text_file, "is not a SQLite database"),
        (future_schema, "newer than this Rallypoint knows"),
    ],
    ids=["directory", "text file", "newer schema"],
)
async def test_a_file_that_cannot_serve_is_refused_and_leaves_no_thread(tmp_path: Path, make, words: str) -> None:
    path = make(tmp_path / "rp.sqlite3")
    before = aiosqlite_threads()
    with pytest.raises(StorageError, match=words) as caught:
        await Database.open(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    # A connection thread left running would keep the process from exiting (the hang this prevents).
    assert aiosqlite_threads() == before


async def test_migrate_refuses_a_newer_schema_without_touching_it(tmp_path: Path) -> None:
    path = future_schema(tmp_path / "rp.sqlite3")
    db = await Database.open(path, migrate=False)
    try:
        with pytest.raises(StorageError, match="restore the backup"):
            await db.migrate()
        assert await db.schema_version() == latest_version() + 1
    finally:
        await db.close()


async def test_pending_migrations_are_named(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "rp.sqlite3", migrate=False)
    try:
        assert await db.pending_migrations() == [m.name for m in load_migrations()]
        await db.migrate()
        assert await db.pending_migrations() == []
    finally:
        await db.close()


async def test_facts_of_a_database_in_use_and_of_one_at_rest(tmp_path: Path) -> None:
    path = tmp_path / "rp.sqlite3"
    assert database_facts(path).exists is False
    db = await Database.open(path)
    try:
        facts = database_facts(path)  # the bot has it open (WAL files exist)
        assert (facts.exists, facts.schema_version) == (True, latest_version())
    finally:
        await db.close()
    side_files = sorted(p.name for p in tmp_path.iterdir())
    assert database_facts(path).schema_version == latest_version()
    assert sorted(p.name for p in tmp_path.iterdir()) == side_files  # reading at rest creates no -wal/-shm


async def test_backup_copies_a_consistent_checked_database(tmp_path: Path) -> None:
    path = tmp_path / "rp.sqlite3"
    db = await Database.open(path)
    try:
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
                " VALUES (1, 42, 'Ana', 't', 't')"
            )
        result = backup(path, tmp_path / "copies" / "one.sqlite3")  # while the database is open
    finally:
        await db.close()
    assert result.schema_version == latest_version() and result.pages > 0
    conn = sqlite3.connect(result.target)
    assert conn.execute("SELECT display_name FROM players").fetchall() == [("Ana",)]
    conn.close()


def test_backup_refuses_what_would_lose_data(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="there is no database"):
        backup(tmp_path / "missing.sqlite3", tmp_path / "copy.sqlite3")
    path = future_schema(tmp_path / "rp.sqlite3")
    with pytest.raises(StorageError, match="cannot overwrite the database itself"):
        backup(path, tmp_path / "." / "rp.sqlite3")
    with pytest.raises(StorageError, match="not a SQLite database"):
        backup(text_file(tmp_path / "text.sqlite3"), tmp_path / "copy.sqlite3")


def test_the_copy_aside_is_named_by_version_and_utc_time(tmp_path: Path) -> None:
    when = datetime(2026, 11, 24, 20, 45, 3, tzinfo=UTC)
    assert aside_name(tmp_path / "rp.sqlite3", 2, when) == tmp_path / "rp.sqlite3.bak-2-20261124T204503Z"
