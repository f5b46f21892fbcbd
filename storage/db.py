"""One SQLite database: WAL, foreign keys, numbered migrations, serialized transactions.

aiosqlite runs every statement on one background thread over one connection, so two tasks that
interleave statements would share a transaction. Every access therefore goes through `read()` or
`transaction()`, which hold one asyncio lock: a transaction is never entered by another task.
Leaving either bumps `changes` (storage/changes.py) when rows changed, so no write can forget to.

A file that cannot serve as the database (a directory, not SQLite, read-only, a schema newer than
this code) raises `StorageError` with a one-line reason, and leaves no connection thread behind.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from storage.changes import Changes

log = logging.getLogger(__name__)

# Another process (a backup, an operator's sqlite3 shell) may hold the write lock for a while;
# waiting is better than failing a job.
BUSY_TIMEOUT_MS = 30_000

Params = Sequence[Any] | dict[str, Any]


class StorageError(Exception):
    """The database file cannot be used; the message says why in one line (the caller names the key)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Read `storage/migrations/NNNN_name.sql` in order."""
    found: list[Migration] = []
    for entry in resources.files("storage.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        prefix = name.split("_", 1)[0]
        if not prefix.isdigit():
            raise RuntimeError(f"migration file without a number: {name}")
        found.append(Migration(int(prefix), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def latest_version() -> int:
    """The schema version this code migrates to."""
    return len(load_migrations())


def newer_schema(path: Path, version: int) -> StorageError:
    return StorageError(
        f"{path} has schema version {version}, newer than this Rallypoint knows ({latest_version()}): "
        "run the newer Rallypoint, or restore the backup taken before the upgrade"
    )


def describe_sqlite_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """One line saying why SQLite refused `path`."""
    text = str(exc)
    if "not a database" in text:
        return StorageError(f"{path} is not a SQLite database ({text})")
    if "readonly" in text or "read-only" in text:
        return StorageError(f"{path} is read-only for this user ({text})")
    return StorageError(f"cannot use {path}: {text}")


def to_db_time(value: datetime) -> str:
    """Store instants as fixed-width UTC ISO strings so that text order is time order."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to storage")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def to_db_hhmm(value: time) -> str:
    """Store a wall-clock time as "HH:MM" text (`time.fromisoformat` reads it back)."""
    return value.strftime("%H:%M")


def json_ids(ids: Iterable[int]) -> str:
    """Pass a list of ids as one JSON parameter (read with json_each) instead of N placeholders."""
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


class Transaction:
    """The statements of one open transaction (only valid inside `Database.transaction()`)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows changed."""
        cursor = await self._conn.execute(sql, params)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT; return the new rowid."""
        cursor = await self._conn.execute(sql, params)
        rowid = cursor.lastrowid
        await cursor.close()
        if rowid is None:
            raise RuntimeError("INSERT produced no rowid")
        return rowid

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        cursor = await self._conn.execute(sql, params)
        rows = await cursor.fetchall()
        await cursor.close()
        return list(rows)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        cursor = await self._conn.execute(sql, params)
        row = await cursor.fetchone()
        await cursor.close()
        return row


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self.changes = Changes()

    @classmethod
    async def open(cls, path: Path, *, migrate: bool = True) -> Database:
        db = cls(path)
        await db.connect()
        try:
            if migrate:
                await db.migrate()
        except BaseException:
            await db.close()
            raise
        return db

    async def connect(self) -> None:
        if self.path.is_dir():
            raise StorageError(f"{self.path} is a directory, not a database file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the directory {self.path.parent}: {exc.strerror}") from None
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing opens a transaction behind
        # our back.
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise describe_sqlite_error(self.path, exc) from None
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = NORMAL")
            # Take and drop the write lock once: a file we cannot write fails now, not at the first job.
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # Closing ends aiosqlite's thread, which would otherwise keep the process from exiting.
            await conn.close()
            raise describe_sqlite_error(self.path, exc) from None
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    async def ping(self) -> None:
        """Run the cheapest query (the readiness check): it raises if the database cannot answer."""
        async with self.read() as tx:
            await tx.fetchone("SELECT 1")

    async def schema_version(self) -> int:
        async with self.read() as tx:
            row = await tx.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def pending_migrations(self) -> list[str]:
        """The migrations `migrate()` would apply; StorageError if the schema is newer than this code."""
        current = await self.schema_version()
        migrations = load_migrations()
        if current > len(migrations):
            raise newer_schema(self.path, current)
        return [m.name for m in migrations if m.version > current]

    async def migrate(self, *, up_to: int | None = None) -> list[str]:
        """Apply pending migrations (up to version `up_to`), each in its own transaction; return the names applied.

        `up_to` lets the test of a migration start from the schema just before it.
        """
        applied: list[str] = []
        await self.pending_migrations()  # refuses a schema newer than this code
        current = await self.schema_version()
        for migration in load_migrations():
            if migration.version <= current or (up_to is not None and migration.version > up_to):
                continue
            async with self._lock, self._bumping_on_change() as conn:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    # executescript() would COMMIT first; run statement by statement instead.
                    for statement in _split_sql(migration.sql):
                        await conn.execute(statement)
                    await conn.execute(f"PRAGMA user_version = {migration.version}")
                    await conn.execute("COMMIT")
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
            log.info("applied migration %s", migration.name)
            applied.append(migration.name)
        return applied

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction (BEGIN IMMEDIATE): committed on success, rolled back on error."""
        async with self._lock, self._bumping_on_change() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Transaction]:
        """Consistent reads outside any other task's transaction (autocommit statements)."""
        # A write slipped into a read block still bumps the version: cached answers never go stale.
        async with self._lock, self._bumping_on_change() as conn:
            yield Transaction(conn)

    @asynccontextmanager
    async def _bumping_on_change(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection (the lock held); on the way out, bump `changes` if any row changed.

        A rolled-back change bumps it too: a needless refresh, never a stale answer.
        """
        conn = self.conn
        before = conn.total_changes
        try:
            yield conn
        finally:
            if self._conn is conn and conn.total_changes != before:
                self.changes.bump()


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (no semicolons inside literals; a trigger's body stays whole)."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        buffer.append(line)
        if stripped.endswith(";") and sqlite3.complete_statement("\n".join(buffer)):
            statements.append("\n".join(buffer))
            buffer = []
    if buffer:
        statements.append("\n".join(buffer))
    return statements
