"""LinkRequestStore against a real SQLite file: single use, expiry, throttles, the wrong-code lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.models import SignalCodeLimits, SignalVerification, TelegramLinkToken, Throttle, Throttled
from storage.db import Database
from storage.link_requests import LinkRequestStore
from storage.players import PlayerStore
from tests.emulators import BOUND, bounded

T0 = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
LOOSE = Throttle(limit=100, window=timedelta(hours=1))
LOOSE_CODES = SignalCodeLimits(LOOSE, LOOSE, LOOSE)


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    async with asyncio.timeout(BOUND):
        database = await Database.open(tmp_path / "links.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def store(db: Database) -> LinkRequestStore:
    return LinkRequestStore(db)


async def player(db: Database, discord_id: int) -> int:
    return (await PlayerStore(db).upsert(discord_id, f"P{discord_id}", T0)).id


async def token(
    store: LinkRequestStore, pid: int, hash_: str, now: datetime = T0, throttle: Throttle = LOOSE
) -> TelegramLinkToken | Throttled:
    return await store.create_telegram_token(pid, hash_, now=now, expires_at=now + TTL, throttle=throttle)


async def code(
    store: LinkRequestStore,
    pid: int,
    number_hash: str = "n1",
    now: datetime = T0,
    limits: SignalCodeLimits = LOOSE_CODES,
) -> SignalVerification | Throttled:
    return await store.create_signal_verification(
        pid,
        number_encrypted="enc",
        number_hashes=[number_hash],
        code_salt="salt",
        code_hash="ch",
        now=now,
        expires_at=now + timedelta(minutes=15),
        limits=limits,
    )


@bounded
async def test_migration_creates_both_tables(db: Database) -> None:
    assert await db.schema_version() >= 2
    async with db.read() as tx:
        names = {r["name"] for r in await tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"telegram_link_tokens", "signal_verifications"} <= names


def test_throttle_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Throttle(limit=0)
    with pytest.raises(ValueError):
        Throttle(window=timedelta(0))


# -- Telegram tokens ---------------------------------------------------------------------------


@bounded
async def test_token_is_single_use(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    created = await token(store, pid, "h1")
    assert isinstance(created, TelegramLinkToken) and created.used_at is None
    assert await store.use_telegram_token("h1", T0 + timedelta(minutes=1)) == pid
    assert await store.use_telegram_token("h1", T0 + timedelta(minutes=2)) is None
    stored = await store.telegram_token("h1")
    assert stored is not None and stored.used_at == T0 + timedelta(minutes=1)


@bounded
async def test_token_expires(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    await token(store, pid, "h1")
    assert await store.use_telegram_token("h1", T0 + TTL) is None  # expiry is exclusive
    assert await store.use_telegram_token("unknown", T0) is None
    stored = await store.telegram_token("h1")
    assert stored is not None and stored.used_at is None


@bounded
async def test_concurrent_uses_of_one_token_link_once(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    await token(store, pid, "h1")
    results = await asyncio.gather(*(store.use_telegram_token("h1", T0) for _ in range(8)))
    assert results.count(pid) == 1 and results.count(None) == 7


@bounded
async def test_token_hashes_are_unique(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    await token(store, pid, "h1")
    with pytest.raises(Exception, match="UNIQUE"):
        await token(store, pid, "h1")


@bounded
async def test_token_throttle_counts_the_window_per_player(db: Database, store: LinkRequestStore) -> None:
    ana, bor = await player(db, 1), await player(db, 2)
    two_per_hour = Throttle(limit=2, window=timedelta(hours=1))
    assert isinstance(await token(store, ana, "a1", T0, two_per_hour), TelegramLinkToken)
    assert isinstance(
        await token(store, ana, "a2", T0 + timedelta(minutes=10), two_per_hour), TelegramLinkToken
    )
    refused = await token(store, ana, "a3", T0 + timedelta(minutes=20), two_per_hour)
    assert refused == Throttled(T0 + timedelta(hours=1))
    assert isinstance(
        await token(store, bor, "b1", T0 + timedelta(minutes=20), two_per_hour), TelegramLinkToken
    )
    # Once the first request has left the window, one more is accepted, then the second one blocks.
    later = T0 + timedelta(hours=1, seconds=1)
    assert isinstance(await token(store, ana, "a4", later, two_per_hour), TelegramLinkToken)
    assert await token(store, ana, "a5", later, two_per_hour) == Throttled(
        T0 + timedelta(hours=1, minutes=10)
    )


@bounded
async def test_concurrent_requests_cannot_pass_the_throttle(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    three = Throttle(limit=3, window=timedelta(hours=1))
    results = await asyncio.gather(*(token(store, pid, f"h{i}", T0, three) for i in range(10)))
    assert sum(isinstance(r, TelegramLinkToken) for r in results) == 3


# -- Signal verifications ----------------------------------------------------------------------


@bounded
async def test_verification_round_trip(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    created = await code(store, pid)
    assert isinstance(created, SignalVerification)
    latest = await store.latest_signal_verification(pid)
    assert latest == created
    assert (latest.failed_attempts, latest.locked, latest.used_at, latest.cancelled_at) == (
        0,
        False,
        None,
        None,
    )
    assert not latest.expired(T0 + timedelta(minutes=14)) and latest.expired(T0 + timedelta(minutes=15))
    assert await store.use_signal_verification(created.id, T0 + timedelta(minutes=1))
    assert not await store.use_signal_verification(created.id, T0 + timedelta(minutes=2))


@bounded
async def test_newest_verification_is_the_latest(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    await code(store, pid, "n1")
    newer = await code(store, pid, "n2")
    assert await store.latest_signal_verification(pid) == newer
    assert await store.latest_signal_verification(await player(db, 2)) is None


@bounded
async def test_wrong_codes_lock_at_the_limit(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    created = await code(store, pid)
    assert isinstance(created, SignalVerification)
    counts = [await store.record_wrong_code(created.id, 3) for _ in range(4)]
    assert [(c.failed_attempts, c.locked) for c in counts[:3] if c] == [(1, False), (2, False), (3, True)]
    assert counts[3] is None  # locked: no longer counted
    assert not await store.use_signal_verification(created.id, T0)


@bounded
async def test_concurrent_wrong_codes_stop_at_the_limit(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    created = await code(store, pid)
    assert isinstance(created, SignalVerification)
    results = await asyncio.gather(*(store.record_wrong_code(created.id, 5) for _ in range(12)))
    assert sum(r is not None for r in results) == 5
    latest = await store.latest_signal_verification(pid)
    assert latest is not None and latest.failed_attempts == 5 and latest.locked


@bounded
async def test_expired_or_cancelled_verification_cannot_be_used(
    db: Database, store: LinkRequestStore
) -> None:
    pid = await player(db, 1)
    first = await code(store, pid)
    assert isinstance(first, SignalVerification)
    assert not await store.use_signal_verification(first.id, first.expires_at)
    second = await code(store, pid)
    assert isinstance(second, SignalVerification)
    await store.cancel_signal_verification(second.id, T0)
    assert not await store.use_signal_verification(second.id, T0)
    counted = await store.record_wrong_code(second.id, 5)  # a code typed for it counts as wrong, like any
    assert counted is not None and counted.failed_attempts == 1
    latest = await store.latest_signal_verification(pid)
    assert latest is not None and latest.cancelled_at == T0


@bounded
async def test_signal_codes_are_limited_per_player_per_player_and_number_and_per_number(
    db: Database, store: LinkRequestStore
) -> None:
    ana, bor, cene, dana = [await player(db, i) for i in range(1, 5)]
    limits = SignalCodeLimits(
        per_player=Throttle(limit=3, window=timedelta(hours=1)),
        per_player_and_number=Throttle(limit=2, window=timedelta(days=1)),
        per_number=Throttle(limit=4, window=timedelta(days=1)),
    )

    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    # Ana: two codes to n1, then n1 is over her share of it, but another number is fine...
    assert isinstance(await code(store, ana, "n1", at(0), limits), SignalVerification)
    assert isinstance(await code(store, ana, "n1", at(1), limits), SignalVerification)
    assert await code(store, ana, "n1", at(2), limits) == Throttled(T0 + timedelta(days=1))
    assert isinstance(await code(store, ana, "n2", at(3), limits), SignalVerification)
    # ... until her hourly allowance, whatever the number, is used up.
    assert await code(store, ana, "n3", at(4), limits) == Throttled(T0 + timedelta(hours=1))
    # Ana's refusals locked nobody else out of n1: Bor may still ask for it, up to the number's day.
    assert isinstance(await code(store, bor, "n1", at(5), limits), SignalVerification)
    assert isinstance(await code(store, cene, "n1", at(6), limits), SignalVerification)
    assert await code(store, dana, "n1", at(7), limits) == Throttled(T0 + timedelta(days=1))
    refused = await store.create_signal_verification(
        dana,
        number_encrypted="enc",
        number_hashes=["new-key-hash", "n1"],
        code_salt="s",
        code_hash="c",
        now=at(8),
        expires_at=at(23),
        limits=limits,
    )
    assert refused == Throttled(T0 + timedelta(days=1))  # matched under the old key's hash
    # A day later n1 takes codes again.
    assert isinstance(await code(store, dana, "n1", T0 + timedelta(days=1, minutes=1), limits), SignalVerification)


@bounded
async def test_rewrite_and_purge(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    old = await code(store, pid, "n1", T0 - timedelta(hours=3))
    new = await code(store, pid, "n1", T0)
    await token(store, pid, "old", T0 - timedelta(hours=3))
    await token(store, pid, "new", T0)
    assert isinstance(old, SignalVerification) and isinstance(new, SignalVerification)
    await store.rewrite_signal_numbers([(new.id, "enc2", "n1b")])
    assert await store.signal_numbers() == [(old.id, "enc"), (new.id, "enc2")]
    assert await store.purge(T0 - timedelta(hours=1)) == 2
    assert await store.signal_numbers() == [(new.id, "enc2")]
    assert await store.telegram_token("old") is None and await store.telegram_token("new") is not None
    latest = await store.latest_signal_verification(pid)
    assert latest is not None and latest.number_hash == "n1b"


@bounded
async def test_requests_go_with_their_player(db: Database, store: LinkRequestStore) -> None:
    pid = await player(db, 1)
    await token(store, pid, "h1")
    await code(store, pid)
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM players WHERE id = ?", (pid,))
    assert await store.telegram_token("h1") is None
    assert await store.signal_numbers() == []
