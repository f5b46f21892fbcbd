"""Crash, restart and retry behaviour of the delivery protocol, over a real SQLite file."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import date, timedelta

import pytest

from services.delivery.base import SendResult
from services.models import (
    CampaignStatus,
    Channel,
    DeliveryStatus,
    JobStatus,
    JobType,
    PreferredChannel,
)
from tests.support import PROMOTER_ID, Harness, local, make_harness, opted_in

DAY = date(2026, 11, 24)
N = 40


async def _crashed_run(
    tmp_path, channel: Channel, hang_after: int | None = None, stall_after: int | None = None
) -> tuple[Harness, int]:
    """Start the reminder fan-out, let `hang_after` messages through, then kill the 'process'."""
    h = await make_harness(tmp_path / "crash.sqlite3", local(DAY, 20, 0), owner="first", lease_seconds=60)
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    prefs = opted_in(preferred_channel=PreferredChannel(channel.value))
    for i in range(1, N + 1):
        await h.add_player(i, f"P{i:02d}", prefs=prefs, telegram=str(9000 + i))
    created = await h.engine.promote.create(h.actor())
    sender = h.discord if channel is Channel.DISCORD else h.telegram
    sender.hang_after = hang_after
    sender.stall_after = stall_after
    h.clock.set(local(DAY, 20, 45))
    tasks = await h.engine.dispatcher.start_due()
    assert len(tasks) == 1
    async with asyncio.timeout(10):
        while sender.hanging == 0:
            await asyncio.sleep(0.001)
    for _ in range(50):  # let the other in-flight sends reach the platform too
        await asyncio.sleep(0)
    await h.engine.dispatcher.shutdown()  # the process dies: no outcome recorded for the window
    await h.engine.db.close()
    return h, created.campaign.id


async def _restart(tmp_path, old: Harness, minutes_later: float) -> Harness:
    h = await make_harness(
        tmp_path / "crash.sqlite3", old.clock.now() + timedelta(minutes=minutes_later), owner="second"
    )
    # The platforms remember what they delivered across our crash.
    for name in ("discord", "telegram"):
        new, before = getattr(h, name), getattr(old, name)
        new.sent, new.delivered_nonces = before.sent, before.delivered_nonces
    return h


async def test_discord_fanout_resumes_after_a_crash_without_a_second_message(tmp_path) -> None:
    first, campaign_id = await _crashed_run(tmp_path, Channel.DISCORD, hang_after=10)
    # Before the lease expires, a new process must not take the job over.
    early = await _restart(tmp_path, first, minutes_later=0.5)
    assert await early.engine.dispatcher.start_due() == []
    await early.engine.db.close()

    h = await _restart(tmp_path, first, minutes_later=1.1)
    await h.engine.dispatcher.run_until(local(DAY, 20, 50))
    delivered = Counter(m.address for m in h.discord.sent if m.text.startswith("⏰"))
    assert set(delivered) == {str(i) for i in range(1, N + 1)}
    assert set(delivered.values()) == {1}  # Discord's nonce dedup: nobody sees two reminders
    counts = await h.engine.ledger_store.final_counts(
        next(j.id for j in await h.engine.campaign_store.jobs(campaign_id) if j.job_type is JobType.REMINDER)
    )
    assert counts[DeliveryStatus.SENT] == N
    await h.run_evening()
    assert (await h.engine.campaign_store.get(campaign_id)).status is CampaignStatus.FOLLOWUP_SENT
    await h.engine.db.close()


async def test_telegram_fanout_marks_the_in_flight_sends_unknown_and_never_resends(tmp_path) -> None:
    first, campaign_id = await _crashed_run(tmp_path, Channel.TELEGRAM, hang_after=10)
    h = await _restart(tmp_path, first, minutes_later=1.1)
    await h.engine.dispatcher.run_until(local(DAY, 20, 50))
    delivered = Counter(m.address for m in h.telegram.sent)
    assert set(delivered.values()) == {1}  # at most one message per player for the key
    reminder = next(j for j in await h.engine.campaign_store.jobs(campaign_id) if j.job_type is JobType.REMINDER)
    counts = await h.engine.ledger_store.final_counts(reminder.id)
    assert counts[DeliveryStatus.SENT] + counts[DeliveryStatus.UNKNOWN] == N
    # Only sends that were really in flight are unknown: at most one window of them.
    assert 0 < counts[DeliveryStatus.UNKNOWN] <= h.engine.dispatcher.fanout.window
    assert counts[DeliveryStatus.SENT] == N - counts[DeliveryStatus.UNKNOWN]
    # Every recorded `sent` arrived; an `unknown` may or may not have (the crash hid which).
    assert counts[DeliveryStatus.SENT] <= len(delivered) <= N
    log = await h.engine.ledger_store.send_log(campaign_id)
    assert all("not resent" in r.reason for r in log if r.status == "unknown")
    await h.engine.db.close()


async def test_a_failing_job_is_retried_with_backoff_then_failed(tmp_path) -> None:
    h = await make_harness(tmp_path / "retry.sqlite3", local(DAY, 20, 0))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")

    calls: list[object] = []

    async def broken_probe() -> frozenset[int]:
        calls.append(h.clock.now())
        raise RuntimeError("gateway not ready")

    h.voice.discord_ids_in_voice = broken_probe  # type: ignore[method-assign]
    created = await h.engine.promote.create(h.actor())
    await h.run_evening()
    jobs = {j.job_type: j for j in await h.engine.campaign_store.jobs(created.campaign.id)}
    voice = jobs[JobType.VOICE_CHECK]
    assert voice.status is JobStatus.FAILED and voice.attempts == 5 == len(calls)
    assert "gateway not ready" in voice.last_error
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(calls)]
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps))  # backing off
    assert jobs[JobType.START].status is JobStatus.SENT
    await h.engine.db.close()


async def test_a_job_that_recovers_on_retry_completes(tmp_path) -> None:
    h = await make_harness(tmp_path / "recover.sqlite3", local(DAY, 20, 0))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")
    failures = iter([True, True])

    async def flaky_probe() -> frozenset[int]:
        if next(failures, False):
            raise RuntimeError("gateway not ready")
        return frozenset()

    h.voice.discord_ids_in_voice = flaky_probe  # type: ignore[method-assign]
    created = await h.engine.promote.create(h.actor())
    await h.run_evening()
    campaign = await h.engine.campaign_store.get(created.campaign.id)
    assert campaign.status is CampaignStatus.FOLLOWUP_SENT
    assert len(h.poster.posts) == 1
    await h.engine.db.close()


async def test_a_restart_after_the_evening_skips_what_is_too_late(tmp_path) -> None:
    h = await make_harness(tmp_path / "late.sqlite3", local(DAY, 20, 0))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")
    created = await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 23, 30))  # the bot was down all evening
    await h.run_evening()
    assert h.discord.sent == []
    jobs = {j.job_type: j.status for j in await h.engine.campaign_store.jobs(created.campaign.id)}
    assert jobs == {
        JobType.REMINDER: JobStatus.SKIPPED,
        JobType.START: JobStatus.SKIPPED,
        JobType.VOICE_CHECK: JobStatus.SKIPPED,
    }
    log = await h.engine.ledger_store.send_log(created.campaign.id)
    assert {r.reason for r in log} == {"too_late"}
    # Skipped, not failed: nothing went wrong with the sends, it was simply too late for them.
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.SENT
    await h.engine.db.close()


@pytest.mark.parametrize("late_minutes", [5, 29])
async def test_a_short_outage_still_sends(tmp_path, late_minutes: int) -> None:
    h = await make_harness(tmp_path / "short.sqlite3", local(DAY, 20, 0))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")
    await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 20, 45) + timedelta(minutes=late_minutes))
    await h.run_evening()
    assert len(h.discord.sent) >= 2
    await h.engine.db.close()


async def test_cancelling_a_campaign_whose_job_died_mid_run_does_not_resume_it(tmp_path) -> None:
    first, campaign_id = await _crashed_run(tmp_path, Channel.DISCORD, hang_after=5)
    h = await _restart(tmp_path, first, minutes_later=2)
    await h.engine.promote.cancel(h.actor())
    assert await h.engine.dispatcher.start_due() == []
    assert await h.engine.job_store.next_wakeup() is None  # nothing left to wake for: no busy loop
    jobs = await h.engine.campaign_store.jobs(campaign_id)
    assert {j.status for j in jobs} == {JobStatus.CANCELLED}
    await h.engine.db.close()


async def test_a_long_retry_after_keeps_the_lease_and_is_not_run_twice(tmp_path) -> None:
    h = await make_harness(tmp_path / "lease.sqlite3", local(DAY, 20, 0), lease_seconds=60)
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")
    h.discord.script["1"] = [SendResult.retryable("429", retry_after=150.0)]
    created = await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 20, 45))
    [task] = await h.engine.dispatcher.start_due()
    reminder_id = next(j.id for j in created.jobs if j.job_type is JobType.REMINDER)
    while h.clock.now() < local(DAY, 20, 45) + timedelta(seconds=100):
        await asyncio.sleep(0)
        # Mid-wait the lease stays current (no other process may take over) and this process
        # does not start the job a second time.
        assert (await h.engine.job_store.get(reminder_id)).lease_until > h.clock.now()
        assert await h.engine.dispatcher.start_due() == []
    await task
    reminder = await h.engine.job_store.get(reminder_id)
    assert reminder.status is JobStatus.SENT and reminder.attempts == 1
    assert len(h.discord.to("1")) == 1
    await h.engine.db.close()


async def test_sends_that_never_reached_telegram_are_resent_after_a_crash(tmp_path) -> None:
    # The process dies while claimed Telegram sends wait for their pacing slot: nothing of them
    # reached Telegram, so they are sent after the restart instead of being written off.
    first, campaign_id = await _crashed_run(tmp_path, Channel.TELEGRAM, stall_after=10)
    assert first.telegram.hanging > 0
    h = await _restart(tmp_path, first, minutes_later=1.1)
    await h.engine.dispatcher.run_until(local(DAY, 20, 50))
    delivered = Counter(m.address for m in h.telegram.sent)
    assert set(delivered.values()) == {1}
    stalled = {m.address for m in first.telegram.attempts[10:]}
    assert stalled and stalled <= set(delivered)  # every stalled send went out after the restart
    reminder = next(j for j in await h.engine.campaign_store.jobs(campaign_id) if j.job_type is JobType.REMINDER)
    counts = await h.engine.ledger_store.final_counts(reminder.id)
    assert counts[DeliveryStatus.SENT] + counts[DeliveryStatus.UNKNOWN] == N
    # Written off are only sends that had been handed to Telegram when the process died.
    assert counts[DeliveryStatus.UNKNOWN] <= 10
    await h.engine.db.close()
