"""Answers from the messages themselves (I'm in, running late, can't tonight) and what they change,
over a real SQLite file with the fake clock: the evening is scheduled at 18:00, the reminder goes at
20:45, the answers come in before the start at 21:00."""

from __future__ import annotations

from datetime import date

import pytest

from services.fanout_plan import DECLINED, RUNNING_LATE
from services.keys import ledger_key
from services.models import (
    CampaignStatus,
    Channel,
    DeliveryStatus,
    JobType,
    LedgerState,
    PlayerStatus,
    PreferredChannel,
    RsvpAnswer,
    RsvpRecorded,
    RsvpRefusal,
)
from services.permissions import PromoterPolicy
from tests.support import PROMOTER_ID, Harness, local, make_harness, opted_in, sample

DAY = date(2026, 11, 24)
ANA, BOR, CENE, DORA = 1, 2, 3, 4
ANA_CHAT = "5001"
BOR_NUMBER = "+38640111222"


@pytest.fixture
async def h(tmp_path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    await harness.add_player(ANA, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram=ANA_CHAT)
    await harness.add_player(BOR, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL), signal=BOR_NUMBER)
    await harness.add_player(CENE, "Cene")
    await harness.add_player(DORA, "Dora", status=PlayerStatus.AVAILABLE)  # not in the snapshot
    yield harness
    await harness.engine.db.close()


async def after_the_reminder(h: Harness) -> int:
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 20, 46))
    return created.campaign.id


async def player_id(h: Harness, discord_id: int) -> int:
    player = await h.engine.player_store.by_discord_id(discord_id)
    assert player is not None
    return player.id


async def final(h: Harness, campaign_id: int, job_type: JobType, discord_id: int) -> tuple[str, str] | None:
    pid = await player_id(h, discord_id)
    rows = [
        r for r in await h.engine.ledger_store.send_log(campaign_id)
        if r.final and r.player_id == pid and r.job_type is job_type
    ]
    return (rows[0].status.value, rows[0].reason) if rows else None


async def test_the_reminder_and_start_offer_the_answers_and_the_follow_up_does_not(h: Harness) -> None:
    created = await h.engine.promote.create(h.actor())
    await h.run_evening()
    for sender in (h.telegram, h.signal, h.discord):
        offers = [m.rsvp_campaign_id for m in sender.sent]
        assert offers == [created.campaign.id, created.campaign.id, None], sender.channel  # reminder, start, follow-up


async def test_cant_tonight_skips_every_later_message_and_frees_the_evening(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    result = await h.engine.rsvp.answer_on_discord(CENE, campaign_id, RsvpAnswer.OUT)
    assert isinstance(result, RsvpRecorded) and result.answer is RsvpAnswer.OUT
    assert await h.engine.player_store.availability(await player_id(h, CENE), DAY) is PlayerStatus.NOT_PLAYING
    await h.run_evening()

    assert len(h.discord.to(str(CENE))) == 1  # the reminder, and nothing after the answer
    assert await final(h, campaign_id, JobType.START, CENE) == ("skipped", DECLINED)
    assert await final(h, campaign_id, JobType.VOICE_CHECK, CENE) == ("skipped", DECLINED)
    # The ledger holds the decision: a restart reads it, and never sends the start ping.
    entries = await h.engine.ledger_store.entries(ledger_key(JobType.START, DAY), [await player_id(h, CENE)])
    assert entries[await player_id(h, CENE)].state is LedgerState.SKIPPED
    [(_, summary, _)] = h.poster.posts
    assert "Can't tonight (1): Cene" in summary and "Waiting on (2): Ana, Bor" in summary
    campaign = await h.engine.campaign_store.get(campaign_id)
    assert campaign is not None and campaign.status is CampaignStatus.FOLLOWUP_SENT  # a skip fails nothing


async def test_running_late_gets_the_start_ping_but_no_follow_up(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    assert isinstance(await h.engine.rsvp.answer_on_signal(BOR_NUMBER, RsvpAnswer.LATE), RsvpRecorded)
    await h.run_evening()
    assert len(h.signal.to(BOR_NUMBER)) == 2  # reminder and start ping
    assert await final(h, campaign_id, JobType.VOICE_CHECK, BOR) == ("skipped", RUNNING_LATE)
    assert await h.engine.player_store.availability(await player_id(h, BOR), DAY) is PlayerStatus.LOOKING
    [(_, summary, _)] = h.poster.posts
    assert "Running late (1): Bor" in summary
    assert "Waiting on (2): Ana, Cene" in summary and "Follow-ups sent: 2 of 2 missing." in summary


async def test_the_last_answer_wins(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    ana = await player_id(h, ANA)
    for answer in (RsvpAnswer.OUT, RsvpAnswer.LATE, RsvpAnswer.IN):
        assert isinstance(await h.engine.rsvp.answer_on_telegram(int(ANA_CHAT), campaign_id, answer), RsvpRecorded)
    # Taking "out" back restores the status the snapshot saw; every answer stays in the audit.
    assert await h.engine.player_store.availability(ana, DAY) is PlayerStatus.LOOKING
    assert await h.engine.rsvp_store.latest(campaign_id) == {ana: RsvpAnswer.IN}
    status = await h.engine.promote.status(h.actor())
    assert status is not None and status.rsvp == {RsvpAnswer.IN: 1, RsvpAnswer.LATE: 0, RsvpAnswer.OUT: 0}
    await h.run_evening()
    assert len(h.telegram.to(ANA_CHAT)) == 3  # in again: start ping and follow-up too
    async with h.engine.db.read() as tx:
        rows = await tx.fetchall("SELECT answer, channel FROM rsvps WHERE player_id = ? ORDER BY id", (ana,))
    assert [tuple(r) for r in rows] == [("out", "telegram"), ("late", "telegram"), ("in", "telegram")]


async def test_answers_are_counted_by_answer_and_channel(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    await h.engine.rsvp.answer_on_telegram(int(ANA_CHAT), campaign_id, RsvpAnswer.IN)
    await h.engine.rsvp.answer_on_signal(BOR_NUMBER, RsvpAnswer.OUT)
    await h.engine.rsvp.answer_on_discord(CENE, campaign_id, RsvpAnswer.LATE)
    status = await h.engine.promote.status(h.actor())
    assert status is not None and status.rsvp == {RsvpAnswer.IN: 1, RsvpAnswer.LATE: 1, RsvpAnswer.OUT: 1}
    metrics = h.engine.metrics
    assert sample(metrics, "rallypoint_rsvps_total", answer="in", channel="telegram") == 1
    assert sample(metrics, "rallypoint_rsvps_total", answer="out", channel="signal") == 1
    assert sample(metrics, "rallypoint_rsvps_total", answer="late", channel="discord") == 1


async def test_only_the_invited_may_answer(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    before = h.engine.db.changes.version
    refusals = [
        await h.engine.rsvp.answer_on_discord(DORA, campaign_id, RsvpAnswer.IN),  # not in the snapshot
        await h.engine.rsvp.answer_on_discord(424242, campaign_id, RsvpAnswer.IN),  # no player at all
        await h.engine.rsvp.answer_on_discord(CENE, campaign_id + 1, RsvpAnswer.IN),  # no such campaign
        await h.engine.rsvp.answer_on_telegram(9999, campaign_id, RsvpAnswer.IN),  # a chat nobody linked
    ]
    assert refusals == [RsvpRefusal.NOT_YOURS] * 4
    assert await h.engine.rsvp.answer_on_signal("+38640999999", RsvpAnswer.IN) is None  # a stranger: silence
    assert await h.engine.rsvp.answer_on_signal("not a number", RsvpAnswer.IN) is None
    assert h.engine.db.changes.version == before  # nothing stored
    assert await h.engine.rsvp_store.latest(campaign_id) == {}


async def test_a_linked_signal_number_without_an_invitation_today_is_told_so(h: Harness) -> None:
    await h.add_player(5, "Eva", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL), signal="+38640555555",
                       status=PlayerStatus.MAYBE)
    await after_the_reminder(h)
    assert await h.engine.rsvp.answer_on_signal("+386 40 555 555", RsvpAnswer.IN) is RsvpRefusal.NO_INVITATION


async def test_a_signal_digit_answers_the_newest_invitation_of_the_day(h: Harness) -> None:
    first = await after_the_reminder(h)
    await h.add_player(PROMOTER_ID + 1, "Second", status=None)
    engine = h.engine_with(policy=PromoterPolicy(frozenset({PROMOTER_ID, PROMOTER_ID + 1}), frozenset(), frozenset()))
    second = (await engine.promote.create(h.actor(PROMOTER_ID + 1, "Second"))).campaign.id
    assert second > first
    result = await engine.rsvp.answer_on_signal(BOR_NUMBER, RsvpAnswer.LATE)
    assert isinstance(result, RsvpRecorded) and result.campaign.id == second
    await engine.promote.cancel(h.actor(PROMOTER_ID + 1, "Second"))
    result = await engine.rsvp.answer_on_signal(BOR_NUMBER, RsvpAnswer.LATE)  # a cancelled one is no invitation
    assert isinstance(result, RsvpRecorded) and result.campaign.id == first


async def test_a_cancelled_session_takes_no_answers(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    await h.engine.promote.cancel(h.actor())
    assert await h.engine.rsvp.answer_on_discord(CENE, campaign_id, RsvpAnswer.IN) is RsvpRefusal.CANCELLED
    assert await h.engine.rsvp_store.latest(campaign_id) == {}


async def test_a_restart_between_the_answer_and_the_start_ping_never_sends_it(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    await h.engine.rsvp.answer_on_discord(CENE, campaign_id, RsvpAnswer.OUT)
    await h.engine.dispatcher.shutdown()  # the process goes away; a new one runs the evening
    restarted = h.engine_with(owner="second")
    await restarted.dispatcher.run_until(local(DAY, 23, 0))
    assert len(h.discord.to(str(CENE))) == 1
    assert await final(h, campaign_id, JobType.START, CENE) == ("skipped", DECLINED)


async def test_a_rehearsal_takes_answers_without_changing_the_status(h: Harness) -> None:
    await h.engine.player_store.set_availability(
        await player_id(h, PROMOTER_ID), DAY, PlayerStatus.LOOKING, h.clock.now()
    )
    created = await h.engine.promote.create(h.actor(), dry_run=True)
    await h.engine.dispatcher.run_until(local(DAY, 20, 46))
    assert h.discord.to(str(PROMOTER_ID))[0].rsvp_campaign_id == created.campaign.id  # buttons on the rehearsal
    result = await h.engine.rsvp.answer_on_discord(PROMOTER_ID, created.campaign.id, RsvpAnswer.OUT)
    assert isinstance(result, RsvpRecorded)
    assert await h.engine.player_store.availability(await player_id(h, PROMOTER_ID), DAY) is PlayerStatus.LOOKING
    await h.run_evening()
    assert len(h.discord.to(str(PROMOTER_ID))) == 2  # the reminder and the summary DM: no start ping
    assert await final(h, created.campaign.id, JobType.START, PROMOTER_ID) == ("skipped", DECLINED)


async def test_the_delivery_counts_keep_to_the_three_messages(h: Harness) -> None:
    campaign_id = await after_the_reminder(h)
    await h.engine.rsvp.answer_on_discord(CENE, campaign_id, RsvpAnswer.OUT)
    await h.run_evening()
    counts = await h.engine.campaign_store.delivery_counts(campaign_id)
    # 3 reminders; 2 start pings and Cene's skip; 2 follow-ups and Cene's skip.
    assert counts[DeliveryStatus.SENT] == 7 and counts[DeliveryStatus.SKIPPED] == 2
    assert Channel.DISCORD in {m.channel for m in h.discord.sent}
