"""The databases storage tests start from: a migrated one, and one with no schema yet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "s.sqlite3")
    yield database
    await database.close()


@pytest.fixture
async def unmigrated(tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no schema yet: the test of a migration applies those before it first."""
    database = await Database.open(tmp_path / "old.sqlite3", migrate=False)
    yield database
    await database.close()
