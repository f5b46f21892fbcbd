"""Send-by deadlines, follow-ups only after a real start, one public summary per channel and day.

Over a real SQLite file with recording senders and a fake clock (tests/support).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from services.delivery.base import SendResult
from services.fanout_plan import NO_START_PING, START_FAILED, TOO_LATE
from services.models import (
    CampaignStatus,
    DeliveryStatus,
    JobStatus,
    JobType,
    PermissionTier,
    QuietHours,
    SendLogEntry,
)
from tests.engine.conftest import EVENING
from tests.support import FOLLOWUP_CHANNEL, PROMOTER_ID, Harness, local, make_harness, opted_in, promotion_config

DAY = EVENING
OTHER_PROMOTER = 2000
REMINDER, START, FOLLOWUP = JobType.REMINDER, JobType.START, JobType.VOICE_CHECK


@pytest.fixture
def h(evening: Harness) -> Harness:
    return evening  # 20:00 on DAY, the promoter known (tests/engine/conftest.py)


async def finals(h: Harness, campaign_id: int, player_id: int) -> dict[JobType, tuple[str, str]]:
    """Each job's final (status, reason) for one player."""
    log: list[SendLogEntry] = await h.engine.ledger_store.send_log(campaign_id)
    return {r.job_type: (r.status.value, r.reason) for r in log if r.final and r.player_id == player_id}


SENT = ("sent", "")
LATE = ("skipped", TOO_LATE)

# (case, when the bot comes up (it was down since 20:00), reminder, start, follow-up, jobs, campaign status)
# The reminder is due 20:45 and may go until the 21:00 start; the start ping until 21:30; the voice
# check is due 21:00:30, its follow-ups until 21:30:30 (promotion.max_lateness_minutes = 30).
RESTARTS = [
    ("on time", local(DAY, 20, 0), SENT, SENT, SENT, "sent sent sent", CampaignStatus.FOLLOWUP_SENT),
    ("a minute before the start", local(DAY, 20, 59), SENT, SENT, SENT, "sent sent sent",
     CampaignStatus.FOLLOWUP_SENT),
    ("at the start", local(DAY, 21, 0), LATE, SENT, SENT, "skipped sent sent", CampaignStatus.FOLLOWUP_SENT),
    # The reminder would have said "kicks off in 1 minute" at 21:14.
    ("14 minutes into the session", local(DAY, 21, 14), LATE, SENT, SENT, "skipped sent sent",
     CampaignStatus.FOLLOWUP_SENT),
    ("just before the start ping's limit", local(DAY, 21, 29, 59), LATE, SENT, SENT, "skipped sent sent",
     CampaignStatus.FOLLOWUP_SENT),
    ("past the start ping's limit", local(DAY, 21, 30, 10), LATE, LATE, ("skipped", NO_START_PING),
     "skipped skipped sent", CampaignStatus.FOLLOWUP_SENT),
    ("after the evening", local(DAY, 23, 30), LATE, LATE, LATE, "skipped skipped skipped", CampaignStatus.SENT),
]


@pytest.mark.parametrize(
    ("case", "up_at", "reminder", "start", "followup", "jobs", "status"), RESTARTS, ids=[r[0] for r in RESTARTS]
)
async def test_each_message_goes_only_before_its_send_by_time(
    h: Harness, case, up_at: datetime, reminder, start, followup, jobs: str, status: CampaignStatus
) -> None:
    ana = await h.add_player(1, "Ana")
    created = await h.engine.promote.create(h.actor())
    h.clock.set(up_at)
    await h.run_evening()

    outcomes = await finals(h, created.campaign.id, ana)
    assert outcomes == {REMINDER: reminder, START: start, FOLLOWUP: followup}
    stored = await h.engine.campaign_store.jobs(created.campaign.id)
    assert " ".join(j.status.value for j in stored) == jobs
    # Skipping is never failing: not a job, not the campaign.
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is status


async def test_a_reminder_fan_out_that_reaches_the_start_stops_there(h: Harness) -> None:
    ana = await h.add_player(1, "Ana")
    bor = await h.add_player(2, "Bor")

    async def slow_first_send(message) -> None:
        if not h.discord.attempts[:-1]:
            h.clock.advance(16 * 60)  # the first reminder takes until after the 21:00 start

    h.discord.before_send = slow_first_send
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 21, 0, 1))

    log = await h.engine.ledger_store.send_log(created.campaign.id)
    reminder = {r.player_id: (r.status.value, r.reason) for r in log if r.final and r.job_type is REMINDER}
    assert reminder == {ana: SENT, bor: LATE}
    jobs = {j.job_type: j.status for j in await h.engine.campaign_store.jobs(created.campaign.id)}
    assert jobs[REMINDER] is JobStatus.SENT


async def test_no_retry_is_made_past_the_send_by_time(h: Harness) -> None:
    ana = await h.add_player(1, "Ana")
    # Discord asks for 20 minutes: the retry would come at 21:05, after the start.
    h.discord.script["1"] = [SendResult.retryable("discord: rate limited", retry_after=20 * 60)]
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 20, 59))

    assert [m.address for m in h.discord.attempts] == ["1"]  # tried once, not again at 21:05
    outcomes = await finals(h, created.campaign.id, ana)
    assert outcomes[REMINDER] == LATE
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is not CampaignStatus.FAILED


# -- follow-ups go only to those whose start ping was sent ---------------------------------------


# (case, preferences, how their start ping ends, in voice at the check, the follow-up's (status, reason) or None)
FOLLOWUPS = [
    ("start sent, missing from voice", None, None, False, SENT),
    ("start sent, in voice", None, None, True, None),
    ("start skipped for quiet hours", opted_in(quiet_hours=QuietHours(time(21, 0), time(21, 1))), None, False,
     ("skipped", NO_START_PING)),
    ("start failed on every channel", None, SendResult.permanent("discord: 50007"), False,
     ("skipped", NO_START_PING)),
]


@pytest.mark.parametrize(
    ("case", "prefs", "start_result", "in_voice", "followup"), FOLLOWUPS, ids=[f[0] for f in FOLLOWUPS]
)
async def test_a_follow_up_needs_a_start_ping(tmp_path, case, prefs, start_result, in_voice, followup) -> None:
    # The voice check two minutes after the start, out of a one-minute quiet window.
    config = promotion_config(voice_check_delay=timedelta(minutes=2))
    h = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 20, 0), config=config)
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    ana = await h.add_player(1, "Ana", prefs=prefs)
    await h.add_player(2, "Bor")  # a control: always reached
    if in_voice:
        h.voice.ids = {1}
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 20, 50))
    if start_result is not None:
        h.discord.always["1"] = start_result
    await h.run_evening()

    outcomes = await finals(h, created.campaign.id, ana)
    assert outcomes.get(FOLLOWUP) == followup
    followups = [m for m in h.discord.sent if m.text.startswith("👋")]
    assert ("1" in {m.address for m in followups}) is (followup == SENT)
    assert "2" in {m.address for m in followups}
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.FOLLOWUP_SENT
    await h.engine.db.close()


async def test_after_a_failed_start_job_no_follow_ups_and_the_campaign_stays_failed(h: Harness) -> None:
    ana = await h.add_player(1, "Ana")
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 20, 50))  # the reminder went out
    store = h.engine.player_store
    working = store.delivery_contexts
    failures = iter(range(5))  # promotion.max_attempts: every attempt of the start job raises

    async def broken(player_ids):
        if next(failures, None) is not None:
            raise RuntimeError("database is locked")
        return await working(player_ids)

    store.delivery_contexts = broken  # type: ignore[method-assign]
    await h.run_evening()

    jobs = {j.job_type: j.status for j in await h.engine.campaign_store.jobs(created.campaign.id)}
    assert jobs == {REMINDER: JobStatus.SENT, START: JobStatus.FAILED, FOLLOWUP: JobStatus.SENT}
    assert [m.text[:1] for m in h.discord.to("1")] == ["⏰"]  # no "we started at 21:00" follow-up
    assert (await finals(h, created.campaign.id, ana))[FOLLOWUP] == ("skipped", START_FAILED)
    [(_, summary, _)] = h.poster.posts
    assert "The start ping failed, so no follow-ups were sent." in summary
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.FAILED


# -- one public summary per channel and day -------------------------------------------------------


async def test_a_second_campaign_of_the_day_posts_no_second_summary(h: Harness) -> None:
    await h.add_player(OTHER_PROMOTER, "Other", status=None)
    await h.engine.player_store.set_tier(OTHER_PROMOTER, PermissionTier.ADMIN, h.clock.now())
    await h.add_player(1, "Ana")
    await h.add_player(2, "Bor")
    first = await h.engine.promote.create(h.actor())
    h.clock.advance(60)
    second = await h.engine.promote.create(h.actor(OTHER_PROMOTER, "Other"))
    await h.run_evening()

    [(channel, summary, _)] = h.poster.posts
    assert channel == FOLLOWUP_CHANNEL
    assert "Follow-ups sent: 2 of 2 missing." in summary  # whichever campaign sent them
    assert len([m for m in h.discord.sent if m.text.startswith("👋")]) == 2
    for campaign in (first.campaign, second.campaign):
        assert (await h.engine.campaign_store.get(campaign.id)).status is CampaignStatus.FOLLOWUP_SENT
    counts = [await h.engine.campaign_store.delivery_counts(c.id) for c in (first.campaign, second.campaign)]
    assert sum(c[DeliveryStatus.FAILED] for c in counts) == 0


async def test_a_dry_run_summary_goes_to_its_initiator_whatever_the_day_holds(h: Harness) -> None:
    await h.add_player(1, "Ana")
    await h.engine.promote.create(h.actor())
    await h.engine.promote.create(h.actor(), dry_run=True)
    await h.run_evening()
    assert len(h.poster.posts) == 1  # the public one
    assert len([m for m in h.discord.to(str(PROMOTER_ID)) if m.text.startswith("[dry run] 📋")]) == 1
