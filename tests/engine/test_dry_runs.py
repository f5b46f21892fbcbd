"""Dry runs: a few per promoter per day, and never in a real campaign's way (real SQLite, fake clock)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest

from services.delivery.base import OutgoingMessage
from services.errors import TooManyRequests
from services.models import CampaignLimit, JobStatus, JobType
from services.permissions import PromoterPolicy
from tests.emulators import bounded
from tests.support import PROMOTER_ID, Harness, local, make_harness, promotion_config

DAY = date(2026, 11, 24)
OTHER_PROMOTER = 1001


@pytest.fixture
async def h(tmp_path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 20, 50), concurrency=1)
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    await harness.add_player(1, "Ana")
    await harness.add_player(2, "Bor")
    yield harness
    await harness.engine.db.close()


@bounded
async def test_five_dry_runs_a_day_per_promoter_then_429_until_midnight(h: Harness) -> None:
    promote = h.engine.promote
    for _ in range(5):
        await promote.create(h.actor(), dry_run=True)
    with pytest.raises(TooManyRequests) as refused:
        await promote.create(h.actor(), dry_run=True)
    assert "today's 5 dry runs" in refused.value.message
    assert refused.value.retry_after == (local(DAY + timedelta(days=1), 0, 0) - local(DAY, 20, 50)).total_seconds()
    # The real campaign of the day is still there to be had.
    created = await promote.create(h.actor())
    assert not created.campaign.dry_run
    async with h.engine.db.read() as tx:
        row = await tx.fetchone("SELECT count(*) AS n FROM campaigns WHERE dry_run = 1")
    assert row is not None and row["n"] == 5
    h.clock.set(local(DAY + timedelta(days=1), 0, 0, 1))
    await promote.create(h.actor(), dry_run=True)  # a new day


@bounded
async def test_cancelled_dry_runs_count_and_the_limit_is_per_promoter(h: Harness) -> None:
    engine = h.engine_with(promotion=promotion_config(dry_run_daily_limit=2))
    for _ in range(2):
        created = await engine.promote.create(h.actor(), dry_run=True)
        await engine.promote.cancel(h.actor(), created.campaign.id)
    with pytest.raises(TooManyRequests):
        await engine.promote.create(h.actor(), dry_run=True)
    await h.add_player(OTHER_PROMOTER, "Other", status=None)
    other = h.engine_with(
        promotion=promotion_config(dry_run_daily_limit=2),
        policy=PromoterPolicy(frozenset({PROMOTER_ID, OTHER_PROMOTER}), frozenset(), frozenset()),
    )
    await other.promote.create(h.actor(OTHER_PROMOTER, "Other"), dry_run=True)


@bounded
async def test_a_limit_of_zero_turns_dry_runs_off(h: Harness) -> None:
    engine = h.engine_with(promotion=promotion_config(dry_run_daily_limit=0))
    with pytest.raises(TooManyRequests, match="turned off"):
        await engine.promote.create(h.actor(), dry_run=True)


@bounded
async def test_concurrent_dry_runs_cannot_slip_past_the_limit(h: Harness) -> None:
    results = await asyncio.gather(
        *(h.engine.promote.create(h.actor(), dry_run=True) for _ in range(12)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 5
    assert all(isinstance(r, TooManyRequests) for r in results if isinstance(r, BaseException))


@bounded
async def test_the_store_names_the_limit_that_refused(h: Harness) -> None:
    promoter = await h.engine.player_store.by_discord_id(PROMOTER_ID)
    assert promoter is not None
    preview = await h.engine.promote.preview(h.actor(), dry_run=True)
    store = h.engine.campaign_store

    async def dry_run() -> object:
        return await store.create(
            day=DAY, initiator=promoter, dry_run=True, global_guard=False, include_available=False,
            include_maybe=False, timezone="Europe/Ljubljana", recipients=list(preview.recipients),
            schedule=preview.schedule, max_attempts=5, now=h.clock.now(), dry_run_limit=1,
        )

    assert not isinstance(await dry_run(), CampaignLimit)
    assert await dry_run() is CampaignLimit.DRY_RUNS


@bounded
async def test_real_jobs_are_claimed_before_dry_runs(h: Harness) -> None:
    for _ in range(5):  # due at 20:50:10 (a past reminder time moves to now + 10 s)
        await h.engine.promote.create(h.actor(), dry_run=True)
    h.clock.set(local(DAY, 20, 50, 5))
    real = await h.engine.promote.create(h.actor())  # due at 20:50:15: later than every dry run
    h.clock.set(local(DAY, 20, 50, 20))
    [claimed] = await h.engine.job_store.claim_due(h.clock.now(), "test", timedelta(seconds=60), limit=1)
    assert (claimed.campaign_id, claimed.job_type) == (real.campaign.id, JobType.REMINDER)


async def reminder_of(h: Harness, campaign_id: int) -> int:
    return next(j.id for j in await h.engine.campaign_store.jobs(campaign_id) if j.job_type is JobType.REMINDER)


@bounded
async def test_a_stuck_dry_run_send_never_holds_a_real_campaign_back(h: Harness) -> None:
    # One Discord send at a time (concurrency=1), and the dry run's DM hangs for as long as it likes.
    release = asyncio.Event()

    async def hold(message: OutgoingMessage) -> None:
        if message.address == str(PROMOTER_ID):
            await release.wait()

    h.discord.before_send = hold
    dispatcher = h.engine.dispatcher
    dry = await h.engine.promote.create(h.actor(), dry_run=True)  # its reminder is due first
    h.clock.set(local(DAY, 20, 50, 5))
    real = await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 20, 50, 10))
    started = await dispatcher.start_due()
    while not any(m.address == str(PROMOTER_ID) for m in h.discord.attempts):
        await asyncio.sleep(0)  # the dry run's send has the slot, and hangs
    h.clock.set(local(DAY, 20, 50, 15))
    started += await dispatcher.start_due()

    real_reminder = await reminder_of(h, real.campaign.id)
    while (job := await h.engine.job_store.get(real_reminder)) is None or job.status is not JobStatus.SENT:
        await asyncio.sleep(0.001)
    assert sorted(m.address for m in h.discord.sent) == ["1", "2"]
    dry_job = await h.engine.job_store.get(await reminder_of(h, dry.campaign.id))
    assert dry_job is not None and dry_job.status is JobStatus.RUNNING  # still hanging, and no matter

    release.set()
    await asyncio.gather(*started)
    await dispatcher.shutdown()
