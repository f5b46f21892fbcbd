"""Shutdown stops the producer first: once it begins nothing is claimed, then running jobs are stopped."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from services.delivery.base import OutgoingMessage
from services.dispatcher import Dispatcher
from services.models import JobStatus, JobType
from tests.support import PROMOTER_ID, Harness, local, make_harness

DAY = date(2026, 11, 24)
BOUND = 5.0


async def drive(dispatcher: Dispatcher) -> None:
    """What the scheduler cog's loop does."""
    while not dispatcher.closing:
        await dispatcher.tick()


@pytest.fixture
async def h(tmp_path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 20, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    await harness.add_player(1, "Ana")
    yield harness
    await harness.engine.db.close()


async def test_a_job_falling_due_during_shutdown_is_not_claimed_and_never_meets_a_closed_database(
    h: Harness,
) -> None:
    # The reminder is out when shutdown begins, and takes a while to stop (a send unwinding).
    unwinding = asyncio.Event()
    release = asyncio.Event()

    async def slow_to_stop(message: object) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            unwinding.set()
            await release.wait()
            raise

    h.discord.before_send = slow_to_stop
    await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 20, 45))
    dispatcher = h.engine.dispatcher
    async with asyncio.timeout(BOUND):
        [running] = await dispatcher.start_due()
        loop = asyncio.create_task(drive(dispatcher))
        while not h.discord.attempts:
            await asyncio.sleep(0)

        stopping = asyncio.create_task(dispatcher.shutdown())
        await unwinding.wait()
        # Meanwhile a rehearsal is scheduled: its reminder falls due 10 s later, while shutdown goes on.
        rehearsal = await h.engine.promote.create(h.actor(), dry_run=True)
        await loop  # the producer stopped, before the job it runs was allowed to stop
        release.set()
        await stopping

    assert running.done() and dispatcher.closing
    reminder = next(j for j in rehearsal.jobs if j.job_type is JobType.REMINDER)
    assert reminder.due_at > local(DAY, 20, 45)
    job = await h.engine.job_store.get(reminder.id)
    assert job is not None and (job.status, job.attempts, job.lease_owner) == (JobStatus.PENDING, 0, None)
    assert await dispatcher.start_due() == []  # closed for good: nothing is claimed later either
    assert [m.address for m in h.discord.attempts] == ["1"]  # the rehearsal's DM never went out


async def test_shutdown_wakes_an_idle_loop_and_claims_nothing(h: Harness) -> None:
    dispatcher = h.engine.dispatcher
    async with asyncio.timeout(BOUND):
        loop = asyncio.create_task(drive(dispatcher))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not loop.done()  # asleep: nothing is due
        await dispatcher.shutdown()
        await loop
    created = await h.engine.promote.create(h.actor())  # due in 45 minutes, in a process going down
    h.clock.set(local(DAY, 23, 0))
    await dispatcher.run_until(local(DAY, 23, 30))
    assert [j.status for j in await h.engine.campaign_store.jobs(created.campaign.id)] == [JobStatus.PENDING] * 3


async def test_a_send_deaf_to_its_cancellation_ends_before_shutdown_does(h: Harness) -> None:
    # asyncio.wait_for in Python 3.11 can lose a cancellation that races with its result, so a send
    # may go on after it was cancelled. Shutdown waits for it: the database closes right after.
    started = asyncio.Event()
    finished: list[str] = []

    async def deaf_to_cancel(message: OutgoingMessage) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            for _ in range(200):  # still busy for a while, as a send finishing its request would be
                await asyncio.sleep(0)
        finished.append(message.address)

    h.discord.before_send = deaf_to_cancel
    await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 20, 45))
    dispatcher = h.engine.dispatcher
    async with asyncio.timeout(BOUND):
        await dispatcher.start_due()
        await started.wait()
        await dispatcher.shutdown()
        assert finished == ["1"]
