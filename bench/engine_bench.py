"""Promote engine figures: dispatch throughput, create/preview latency, scheduler lateness.

Run: python -m bench.engine_bench
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.seed import seed_players
from services.clock import FakeClock, SystemClock
from services.delivery.base import OutgoingMessage, SendResult
from services.dispatcher import DispatchConfig
from services.engine import build_engine
from services.models import Actor, Channel, JobType
from services.permissions import PromoterPolicy
from services.promote import PromotionConfig
from storage.db import Database, to_db_time

ZONE = ZoneInfo("Europe/Ljubljana")
DAY = date(2026, 11, 24)
PROMOTER = 1


class InstantSender:
    channel = Channel.DISCORD
    supports_dedup = True

    def __init__(self) -> None:
        self.count = 0

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.count += 1
        return SendResult.sent(str(self.count))


def _engine(db: Database, clock, sender: InstantSender | None = None, concurrency: int = 64):
    return build_engine(
        db=db,
        promotion=PromotionConfig(ZONE, dtime(20, 45), dtime(21, 0), timedelta(seconds=30), False, 5),
        policy=PromoterPolicy(frozenset({10_000_000 + PROMOTER}), frozenset(), frozenset()),
        dispatch=DispatchConfig(ZONE, timedelta(seconds=60), timedelta(minutes=30), 0),
        clock=clock,
        senders={Channel.DISCORD: sender or InstantSender()},
        send_concurrency=concurrency,
    )


def _actor() -> Actor:
    return Actor(10_000_000 + PROMOTER, True, frozenset(), "Player 000001")


async def bench_dispatch(workdir: Path, recipients: int = 10_000) -> None:
    db = await Database.open(workdir / "dispatch.sqlite3")
    clock = FakeClock(datetime.combine(DAY, dtime(18, 0), tzinfo=ZONE).astimezone(UTC))
    await seed_players(db, recipients, DAY, clock.now())
    sender = InstantSender()
    engine = _engine(db, clock, sender)
    created = await engine.promote.create(_actor())
    reminder = next(j for j in created.jobs if j.job_type is JobType.REMINDER)
    clock.set(reminder.run_at)
    t0 = time.perf_counter()
    tasks = await engine.dispatcher.start_due()
    await asyncio.gather(*tasks)
    ours = time.perf_counter() - t0
    assert sender.count == created.campaign.recipient_count, (sender.count, created.campaign.recipient_count)

    # Baseline: the same ledger and send-log rows written with bare executemany, one transaction each.
    conn_rows = [
        (i, f"BASE:{i}", created.campaign.id, reminder.id, "sent", "discord", to_db_time(clock.now()))
        for i in range(1, recipients + 1)
    ]
    t0 = time.perf_counter()
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO ledger (player_id, key, campaign_id, job_id, state, channel, claimed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            conn_rows,
        )
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO send_log (at, campaign_id, job_id, job_type, player_id, channel, status, reason, final)"
            " VALUES (?, ?, ?, 'bench', ?, 'discord', 'sent', '', 0)",
            [(r[6], r[2], r[3], r[0]) for r in conn_rows],
        )
    bare = time.perf_counter() - t0
    rate = recipients / ours
    print(f"dispatch: {recipients} recipients in {ours:.3f}s = {rate:,.0f} recipients/s (target >= 5,000)")
    print(
        "dispatch: storage+dispatch time per recipient / bare executemany per recipient = "
        f"{ours / bare:.1f}x "
        f"({ours / recipients * 1e6:.0f} us vs {bare / recipients * 1e6:.0f} us)"
    )
    await db.close()


async def bench_create_preview(workdir: Path, players: int = 100_000, eligible: int = 10_000) -> None:
    db = await Database.open(workdir / "create.sqlite3")
    clock = FakeClock(datetime.combine(DAY, dtime(18, 0), tzinfo=ZONE).astimezone(UTC))
    await seed_players(db, players, DAY, clock.now(), looking_every=players // eligible)
    engine = _engine(db, clock)
    previews, kept = [], []
    for _ in range(5):
        # A write first: the selection kept per database version is read and chosen anew, as after
        # any status change (the figure the target is about).
        await touch(db)
        t0 = time.perf_counter()
        p = await engine.promote.preview(_actor())
        previews.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await engine.promote.preview(_actor())  # nothing changed since: the kept selection
        kept.append(time.perf_counter() - t0)
    await touch(db)
    t0 = time.perf_counter()
    created = await engine.promote.create(_actor())
    create = time.perf_counter() - t0
    print(
        f"preview: {p.recipient_count} of {players} players, median {statistics.median(previews) * 1000:.0f} ms "
        f"(target < 100 ms) = {statistics.median(previews) / 0.100:.2f} of the budget; "
        f"unchanged since the last one {statistics.median(kept) * 1000:.1f} ms"
    )
    print(
        f"create: {created.campaign.recipient_count} recipients of {players} players in "
        f"{create * 1000:.0f} ms "
        f"(target < 250 ms) = {create / 0.250:.2f} of the budget"
    )
    await db.close()


async def touch(db: Database) -> None:
    """A write that changes nothing but still counts as a change of the database."""
    async with db.transaction() as tx:
        await tx.execute("UPDATE players SET display_name = display_name WHERE id = 1")


class CountingDatabase(Database):
    calls = 0

    def read(self):  # type: ignore[override]
        CountingDatabase.calls += 1
        return super().read()

    def transaction(self):  # type: ignore[override]
        CountingDatabase.calls += 1
        return super().transaction()


async def bench_scheduler(workdir: Path, jobs: int = 200, spread: float = 8.0) -> None:
    db = CountingDatabase(workdir / "sched.sqlite3")
    await db.connect()
    await db.migrate()
    clock = SystemClock()
    now = clock.now()
    await seed_players(db, 1, DAY, now)
    # One campaign per job so that job order never delays a job: each has one due job, its reminder;
    # its start and voice check (which set the reminder's send-by time) are due an hour later.
    async with db.transaction() as tx:
        for i in range(jobs):
            cid = await tx.insert(
                "INSERT INTO campaigns (campaign_date, initiator_player_id, status, dry_run, include_available,"
                " include_maybe, timezone, recipient_count, count_discord, count_telegram, count_signal,"
                " created_at) VALUES (?, 1, 'scheduled', 1, 0, 0, 'Europe/Ljubljana', 1, 1, 0, 0, ?)",
                (DAY.isoformat(), to_db_time(now)),
            )
            await tx.execute("INSERT INTO campaign_recipients VALUES (?, 1, 'LOOKING', 'discord')", (cid,))
            due = now + timedelta(seconds=1 + spread * i / jobs)
            later = now + timedelta(hours=1)
            await tx.executemany(
                "INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts)"
                " VALUES (?, ?, ?, ?, ?, 'pending', 5)",
                [
                    (cid, job_type, seq, to_db_time(at), to_db_time(at))
                    for seq, job_type, at in (
                        (0, "send_reminder_2045", due),
                        (1, "send_start_2100", later),
                        (2, "voice_check_2100", later + timedelta(seconds=30)),
                    )
                ],
            )
    engine = _engine(db, clock)
    loop_task = asyncio.create_task(_drive(engine))
    await asyncio.sleep(spread + 2.5)
    # Idle: the starts an hour away; count queries while nothing is due.
    CountingDatabase.calls = 0
    idle_for = 3.0
    await asyncio.sleep(idle_for)
    idle_calls = CountingDatabase.calls
    loop_task.cancel()
    await asyncio.gather(loop_task, return_exceptions=True)
    await engine.dispatcher.shutdown()
    async with db.read() as tx:
        rows = await tx.fetchall("SELECT due_at, started_at FROM jobs WHERE started_at IS NOT NULL")
    late = sorted(
        (datetime.fromisoformat(r["started_at"]) - datetime.fromisoformat(r["due_at"])).total_seconds() * 1000
        for r in rows
    )
    p50 = statistics.median(late)
    p99 = late[int(len(late) * 0.99) - 1]
    print(
        f"scheduler: {len(late)} jobs, lateness p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 100 ms) "
        f"= {p99 / 100:.2f} of the budget"
    )
    print(f"scheduler: {idle_calls} database calls in {idle_for:.0f}s while nothing was due (target 0)")
    await db.close()


async def _drive(engine) -> None:
    while True:
        await engine.dispatcher.tick()


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rp-bench-") as tmp:
        work = Path(tmp)
        await bench_dispatch(work)
        await bench_create_preview(work)
        await bench_scheduler(work)


if __name__ == "__main__":
    asyncio.run(main())
