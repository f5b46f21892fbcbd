"""Read-only facts about a database file, for the checks before start-up (`run` and `check-config`).

Synchronous and stdlib-only on purpose: it runs before anything else opens the file, and it never
creates or changes it (a missing file is reported as missing; `run` creates it later).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from storage.db import StorageError, describe_sqlite_error, latest_version, newer_schema

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    exists: bool
    schema_version: int = 0
    # Players with a permission tier that may promote (admin, root), whatever the configuration says.
    promoter_tiers: int = 0
    # How many players prefer each channel ("any", "discord", "telegram", "signal").
    preferred_channels: dict[str, int] = field(default_factory=dict)


def database_facts(path: Path) -> DatabaseFacts:
    """What is stored at `path`; StorageError if it cannot be Rallypoint's database."""
    if path.is_dir():
        raise StorageError(f"{path} is a directory, not a database file")
    if not path.exists():
        _check_creatable(path)
        return DatabaseFacts(exists=False)
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None
    if header and header != SQLITE_HEADER:  # an empty file is an empty database to SQLite
        raise StorageError(f"{path} is not a SQLite database (it does not start with the SQLite header)")
    try:
        with _read_only(path) as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > latest_version():
                raise newer_schema(path, version)
            if version == 0:
                return DatabaseFacts(exists=True)
            tiers = conn.execute("SELECT count(*) FROM permissions WHERE tier IN ('admin', 'root')").fetchone()[0]
            preferred = conn.execute(
                "SELECT preferred_channel, count(*) FROM preferences GROUP BY preferred_channel"
            ).fetchall()
    except sqlite3.Error as exc:
        raise describe_sqlite_error(path, exc) from None
    return DatabaseFacts(
        exists=True, schema_version=version, promoter_tiers=int(tiers), preferred_channels=dict(preferred)
    )


def _check_creatable(path: Path) -> None:
    """The file does not exist yet: its nearest existing ancestor must be a directory."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise StorageError(f"cannot create {path}: {ancestor} is not a directory")


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    # mode=ro never creates the file nor takes a write lock, so a running bot is not disturbed. Without
    # a -wal file beside it (no bot has it open) SQLite would create -wal and -shm files owned by
    # whoever runs this, which the bot's user might then be unable to write: immutable=1 creates none,
    # and with no -wal there is nothing it could miss.
    wal = path.with_name(path.name + "-wal")
    immutable = "" if wal.exists() else "&immutable=1"
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{immutable}", uri=True)
    try:
        yield conn
    finally:
        conn.close()
