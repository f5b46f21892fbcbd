"""What operators and promoters see of the engine: the DM about a failed job, the metrics, the pulse."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from services.delivery.base import SendResult
from services.keys import job_failed_key
from services.messages import INTERRUPTED_ATTEMPTS
from services.models import JobStatus, JobType, LedgerState
from storage.db import to_db_time
from tests.support import PROMOTER_ID, Harness, local, make_harness

DAY = date(2026, 11, 24)

async def evening_with_a_broken_voice_check(
    tmp_path, *, dry_run: bool = False, promoter_dms: SendResult | None = None
) -> tuple[Harness, int]:
    """An evening whose voice check raises every time; `promoter_dms`: how Discord answers DMs to the promoter."""
    h = await make_harness(tmp_path / "ops.sqlite3", local(DAY, 20, 0))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")

    async def broken_probe() -> frozenset[int]:
        raise RuntimeError("gateway not ready: guild 900000000000000001 has no voice states")

    h.voice.discord_ids_in_voice = broken_probe  # type: ignore[method-assign]
    if promoter_dms is not None:
        h.discord.always[str(PROMOTER_ID)] = promoter_dms
    created = await h.engine.promote.create(h.actor(), dry_run=dry_run)
    await h.run_evening()
    return h, created.campaign.id


def failed_dms(h: Harness) -> list[str]:
    return [m.text for m in h.discord.to(str(PROMOTER_ID)) if m.text.removeprefix("[dry run] ").startswith("⚠️")]


async def test_the_initiator_is_told_once_with_the_reason_in_words(tmp_path) -> None:
    h, campaign_id = await evening_with_a_broken_voice_check(tmp_path)
    voice = next(j for j in await h.engine.campaign_store.jobs(campaign_id) if j.job_type is JobType.VOICE_CHECK)
    assert voice.status is JobStatus.FAILED and voice.attempts == 5
    assert failed_dms(h) == [
        "⚠️ The voice check of your game night at 21:00 CET failed after 5 attempts: an unexpected error "
        "(RuntimeError); the bot's log has the details. Please tell whoever runs the bot."
    ]
    # The exception's text (ids, internals) stays in the job's record and the log, not in the DM.
    assert "gateway not ready" in voice.last_error
    log = await h.engine.ledger_store.send_log(campaign_id)
    [row] = [r for r in log if r.player_id is None and r.job_type is JobType.VOICE_CHECK]
    assert (row.status, row.reason) == ("sent", "job failed")
    await h.engine.db.close()


async def test_a_restart_after_the_dm_never_repeats_it(tmp_path) -> None:
    h, campaign_id = await evening_with_a_broken_voice_check(tmp_path)
    voice = next(j for j in await h.engine.campaign_store.jobs(campaign_id) if j.job_type is JobType.VOICE_CHECK)
    # The process died after the DM but before the job was marked failed: the job is still running
    # with its lease lapsed, and the next process gives it up again.
    async with h.engine.db.transaction() as tx:
        await tx.execute(
            "UPDATE jobs SET status = 'running', lease_owner = 'dead', lease_until = ?, finished_at = NULL"
            " WHERE id = ?",
            (to_db_time(h.clock.now() - timedelta(minutes=1)), voice.id),
        )
    restarted = h.engine_with(owner="second")
    sent_before = len(h.discord.sent)
    await restarted.dispatcher.run_until(h.clock.now() + timedelta(hours=1))
    again = await restarted.job_store.get(voice.id)
    assert again.status is JobStatus.FAILED and again.last_error == INTERRUPTED_ATTEMPTS
    assert len(h.discord.sent) == sent_before  # no second DM: its key was already sent
    assert len(failed_dms(h)) == 1
    await h.engine.db.close()


async def test_a_dm_that_could_not_go_out_is_recorded_failed(tmp_path) -> None:
    closed = SendResult.permanent("discord: cannot send messages to this user (50007)")
    h, campaign_id = await evening_with_a_broken_voice_check(tmp_path, promoter_dms=closed)
    voice = next(j for j in await h.engine.campaign_store.jobs(campaign_id) if j.job_type is JobType.VOICE_CHECK)
    assert voice.status is JobStatus.FAILED  # the job's end does not wait on the DM
    state = await h.engine.ledger_store.claim_post(job_failed_key(voice.id), campaign_id, h.clock.now())
    assert state is LedgerState.FAILED
    await h.engine.db.close()


async def test_a_dry_run_says_so(tmp_path) -> None:
    h, _ = await evening_with_a_broken_voice_check(tmp_path, dry_run=True)
    [dm] = failed_dms(h)
    assert dm.startswith("[dry run] ⚠️ The voice check")
    await h.engine.db.close()


async def test_an_evening_is_counted_in_the_metrics(tmp_path) -> None:
    h = await make_harness(tmp_path / "ops.sqlite3", local(DAY, 20, 0))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    for i in range(1, 4):
        await h.add_player(i, f"P{i}")
    await h.engine.promote.create(h.actor())
    await h.run_evening()
    text = h.engine.metrics.render().decode()
    # Three players × reminder, start and follow-up (nobody is in voice), and the summary post.
    assert 'rallypoint_sends_total{channel="discord",outcome="sent"} 10.0' in text
    for job_type in ("send_reminder_2045", "send_start_2100", "voice_check_2100"):
        assert f'rallypoint_jobs_finished_total{{job_type="{job_type}",status="sent"}} 1.0' in text
        assert f'rallypoint_job_lateness_seconds_count{{job_type="{job_type}"}} 1.0' in text
    assert 'rallypoint_fanout_duration_seconds_count{job_type="send_start_2100"} 1.0' in text
    assert "rallypoint_jobs_running 0.0" in text
    await h.engine.db.close()


async def test_the_scheduler_loop_leaves_a_pulse(tmp_path) -> None:
    h = await make_harness(tmp_path / "ops.sqlite3", local(DAY, 20, 0))
    dispatcher = h.engine.dispatcher
    assert dispatcher.pulse is None  # not started: readiness says so
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")
    created = await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 20, 0))
    await dispatcher.tick()  # the FakeClock jumps to the reminder's due time instead of sleeping
    pulse = dispatcher.pulse
    reminder = next(j for j in created.jobs if j.job_type is JobType.REMINDER)
    assert pulse is not None and not pulse.busy and pulse.wake_at == reminder.run_at
    assert pulse.problem(h.clock.now(), timedelta(seconds=10)) is None
    await dispatcher.shutdown()
    await asyncio.sleep(0)
    await h.engine.db.close()
