"""The database's change version (storage/changes.py) against a real SQLite file, and the memo kept per version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime

import pytest

from services.models import PlayerStatus
from storage.changes import Changes, Memo
from storage.db import Database
from storage.players import PlayerStore
from tests.emulators import BOUND

T0 = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
DAY = date(2026, 11, 24)
INSERT = "INSERT INTO players (discord_user_id, display_name, created_at, updated_at) VALUES (?, 'P', 'x', 'x')"


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    async with asyncio.timeout(BOUND):
        database = await Database.open(tmp_path / "changes.sqlite3")
    yield database
    await database.close()


async def read_only(db: Database) -> None:
    async with db.read() as tx:
        await tx.fetchall("SELECT * FROM players")


async def empty_write(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("UPDATE players SET display_name = 'x' WHERE id = -1")


async def one_insert(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute(INSERT, (1,))


async def write_inside_a_read(db: Database) -> None:
    async with db.read() as tx:
        await tx.execute(INSERT, (2,))


async def rolled_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute(INSERT, (3,))
            raise RuntimeError("changed my mind")


async def status_through_a_store(db: Database) -> None:
    store = PlayerStore(db)
    player = await store.upsert(4, "Ana", T0)
    await store.set_availability(player.id, DAY, PlayerStatus.LOOKING, T0)


@pytest.mark.parametrize(
    ("access", "bumps"),
    [
        (read_only, 0),
        (empty_write, 0),  # the dispatcher's claim that finds nothing due, say
        (one_insert, 1),
        (write_inside_a_read, 1),  # no way to write without the version moving
        (rolled_back, 1),  # a needless refresh, never a stale answer
        (status_through_a_store, 2),  # two transactions
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
async def test_the_version_moves_exactly_when_rows_changed(
    db: Database, access: Callable[[Database], Awaitable[None]], bumps: int
) -> None:
    before = db.changes.version
    await access(db)
    assert db.changes.version - before == bumps


async def test_watchers_are_woken_by_a_committed_change_and_forgotten_after(db: Database) -> None:
    with db.changes.watching() as wake:
        await read_only(db)
        assert not wake.is_set()
        await one_insert(db)
        assert wake.is_set()
        assert db.changes.watchers == 1
    assert db.changes.watchers == 0


class Loads:
    def __init__(self) -> None:
        self.count = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> int:
        self.count += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.count


async def test_a_memo_loads_once_per_version() -> None:
    changes = Changes()
    memo: Memo[str, int] = Memo(changes)
    load = Loads()
    assert await memo.get_or_load("a", load) == 1
    assert await memo.get_or_load("a", load) == 1
    assert memo.get("a") == (1,)
    changes.bump()
    assert memo.get("a") is None and len(memo) == 0
    assert await memo.get_or_load("a", load) == 2
    assert load.count == 2


async def test_a_value_loaded_while_something_changed_is_not_kept() -> None:
    changes = Changes()
    memo: Memo[str, int] = Memo(changes)
    load = Loads()
    load.gate = asyncio.Event()
    loading = asyncio.create_task(memo.get_or_load("a", load))
    await asyncio.sleep(0)
    changes.bump()  # a write commits while the value is being read
    load.gate.set()
    assert await loading == 1  # the caller still gets what it read ...
    assert memo.get("a") is None  # ... but nobody after it
    load.gate = None
    assert await memo.get_or_load("a", load) == 2


async def test_requests_that_miss_together_share_one_load() -> None:
    memo: Memo[str, int] = Memo(Changes())
    load = Loads()
    load.gate = asyncio.Event()
    waiting = [asyncio.create_task(memo.get_or_load("a", load)) for _ in range(5)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert load.count == 1


async def test_a_memo_stays_bounded_and_keeps_none_values() -> None:
    memo: Memo[int, int | None] = Memo(Changes(), max_entries=2)

    async def nothing() -> None:
        return None

    for key in (1, 2, 3):
        await memo.get_or_load(key, nothing)
    assert memo.get(1) is None  # evicted as the oldest
    assert memo.get(3) == (None,)  # a kept None is a hit, not a miss
    assert len(memo) == 2
    with pytest.raises(ValueError, match="max_entries"):
        Memo(Changes(), max_entries=0)
