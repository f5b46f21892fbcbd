"""Copies of the live database through SQLite's online backup API (`python -m bot backup`, `migrate`).

The backup API copies a consistent snapshot page by page while the bot keeps running (a plain `cp`
of a WAL database can miss recent transactions); the copy is one self-contained file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage.db import StorageError, describe_sqlite_error


@dataclass(frozen=True, slots=True)
class BackupResult:
    target: Path
    pages: int
    schema_version: int


def backup(source: Path, target: Path) -> BackupResult:
    """Copy `source` into `target` (replacing it) and verify the copy; StorageError says what went wrong."""
    if not source.is_file():
        raise StorageError(f"there is no database at {source}")
    if target.resolve() == source.resolve():
        raise StorageError(f"the backup cannot overwrite the database itself ({source})")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the directory {target.parent}: {exc.strerror}") from None
    try:
        with _connection(source) as src, _connection(target) as dst:
            src.backup(dst)
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            version = int(dst.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise describe_sqlite_error(source, exc) from None
    if check != "ok":
        raise StorageError(f"the copy at {target} failed its integrity check: {check}")
    return BackupResult(target, pages, version)


def aside_name(database: Path, schema_version: int, now: datetime) -> Path:
    """Where `migrate` keeps the copy it takes first: `<file>.bak-<version>-<UTC time>` beside it."""
    return database.with_name(f"{database.name}.bak-{schema_version}-{now:%Y%m%dT%H%M%SZ}")


@contextlib.contextmanager
def _connection(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path)
    try:
        yield conn
    finally:
        conn.close()
