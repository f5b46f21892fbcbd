""""We need N more" over a real SQLite file with the fake clock: whom it asks, once a day, through a
durable job outside the campaign's order, and how an "I'm in" turns into a start ping."""

from __future__ import annotations

import asyncio
from datetime import date, time, timedelta

import pytest

from services.errors import DryRunOnly, InvalidInput, NotFound, NotPromoter, TooLate
from services.fanout_plan import QUIET_HOURS
from services.keys import ledger_key
from services.models import (
    CampaignStatus,
    Channel,
    JobStatus,
    JobType,
    LedgerState,
    NeedCounts,
    PlayerStatus,
    Preferences,
    PreferredChannel,
    QuietHours,
    RsvpAnswer,
    RsvpRecorded,
)
from services.permissions import PromoterPolicy
from tests.support import PROMOTER_ID, Harness, local, make_harness, opted_in

DAY = date(2026, 11, 24)
ANA, DORA, EVA, FIN, GAJA, HANA = 1, 4, 5, 6, 7, 8
EVA_CHAT = "5005"
NEED_MARK = "🙋"


@pytest.fixture
async def h(tmp_path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    await harness.add_player(ANA, "Ana")  # LOOKING: the snapshot
    await harness.add_player(DORA, "Dora", status=PlayerStatus.AVAILABLE)
    await harness.add_player(
        EVA, "Eva", status=PlayerStatus.MAYBE, prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM),
        telegram=EVA_CHAT,
    )
    await harness.add_player(FIN, "Fin", status=PlayerStatus.AVAILABLE, prefs=Preferences())  # never said yes
    await harness.add_player(GAJA, "Gaja", status=PlayerStatus.NOT_PLAYING)
    yield harness
    await harness.engine.db.close()


def asks(h: Harness, address: str) -> list[str]:
    return [m.text for m in [*h.discord.to(address), *h.telegram.to(address)] if NEED_MARK in m.text]


async def pid(h: Harness, discord_id: int) -> int:
    player = await h.engine.player_store.by_discord_id(discord_id)
    assert player is not None
    return player.id


async def test_need_asks_available_and_maybe_players_who_said_yes_once_with_the_answers(h: Harness) -> None:
    created = await h.engine.promote.create(h.actor())
    asked = await h.engine.need.ask(h.actor(), 2)
    assert (asked.campaign.id, asked.count, asked.messaged) == (created.campaign.id, 2, 2)
    await h.engine.dispatcher.run_until(local(DAY, 18, 1))

    [dora] = [m for m in h.discord.to(str(DORA)) if NEED_MARK in m.text]
    [eva] = [m for m in h.telegram.to(EVA_CHAT) if NEED_MARK in m.text]
    assert dora.rsvp_campaign_id == eva.rsvp_campaign_id == created.campaign.id
    assert eva.text == "🙋 Tonight's game needs 2 more players: it starts at 21:00 CET. Can you join?"
    assert asks(h, str(ANA)) == [] and asks(h, str(FIN)) == [] and asks(h, str(GAJA)) == []
    entries = await h.engine.ledger_store.entries(ledger_key(JobType.NEED, DAY), [await pid(h, DORA)])
    assert entries[await pid(h, DORA)].state is LedgerState.SENT
    jobs = {j.job_type: j for j in await h.engine.campaign_store.jobs(created.campaign.id)}
    assert jobs[JobType.NEED].status is JobStatus.SENT
    status = await h.engine.promote.status(h.actor())
    assert status is not None and status.need == NeedCounts(asked=2, joined=0)
    # The asks are not part of the evening's delivery counts (reminder, start, follow-up).
    assert sum((await h.engine.campaign_store.delivery_counts(created.campaign.id)).values()) == 0


async def test_need_twice_in_a_day_reaches_only_those_not_asked_yet(h: Harness) -> None:
    await h.engine.promote.create(h.actor())
    assert (await h.engine.need.ask(h.actor(), 2)).messaged == 2
    await h.engine.dispatcher.run_until(local(DAY, 18, 1))
    await h.add_player(HANA, "Hana", status=PlayerStatus.MAYBE)  # says she might play, after the first ask
    h.clock.set(local(DAY, 19, 0))
    second = await h.engine.need.ask(h.actor(), 1)
    assert second.messaged == 1
    await h.engine.dispatcher.run_until(local(DAY, 19, 1))
    assert len(asks(h, str(DORA))) == 1 and len(asks(h, EVA_CHAT)) == 1
    [hana] = asks(h, str(HANA))  # on Discord, with the time in the reader's own zone too
    assert hana.startswith("🙋 Tonight's game needs 1 more player: it starts at 21:00 CET (<t:")
    # A third call finds nobody new: no job runs, nobody is asked again.
    assert (await h.engine.need.ask(h.actor(), 1)).messaged == 0
    await h.engine.dispatcher.run_until(local(DAY, 19, 30))
    assert len(asks(h, str(DORA))) == 1 and len(asks(h, str(HANA))) == 1


async def test_another_campaign_of_the_day_does_not_ask_again(h: Harness) -> None:
    await h.engine.promote.create(h.actor())
    await h.engine.need.ask(h.actor(), 2)
    await h.engine.dispatcher.run_until(local(DAY, 18, 1))
    await h.add_player(PROMOTER_ID + 1, "Other", status=None)
    other = h.engine_with(policy=PromoterPolicy(frozenset({PROMOTER_ID, PROMOTER_ID + 1}), frozenset(), frozenset()))
    await other.promote.create(h.actor(PROMOTER_ID + 1, "Other"))
    assert (await other.need.ask(h.actor(PROMOTER_ID + 1, "Other"), 3)).messaged == 0


async def test_an_answer_in_turns_into_a_start_ping_and_a_follow_up(h: Harness) -> None:
    created = await h.engine.promote.create(h.actor())
    await h.engine.need.ask(h.actor(), 1)
    await h.engine.dispatcher.run_until(local(DAY, 18, 1))
    joined = await h.engine.rsvp.answer_on_telegram(int(EVA_CHAT), created.campaign.id, RsvpAnswer.IN)
    assert isinstance(joined, RsvpRecorded) and joined.joined
    said_no = await h.engine.rsvp.answer_on_discord(DORA, created.campaign.id, RsvpAnswer.OUT)
    assert isinstance(said_no, RsvpRecorded) and not said_no.joined
    assert await h.engine.player_store.availability(await pid(h, DORA), DAY) is PlayerStatus.NOT_PLAYING

    campaign = await h.engine.campaign_store.get(created.campaign.id)
    assert campaign is not None and campaign.recipient_count == 2
    assert campaign.channels_summary.as_dict() == {"discord": 1, "telegram": 1, "signal": 0}
    assert await h.engine.need.joined(h.actor(), created.campaign.id) == ["Eva"]
    with pytest.raises(NotPromoter):
        await h.engine.need.joined(h.actor(ANA, "Ana"), created.campaign.id)

    await h.run_evening()
    texts = [m.text for m in h.telegram.to(EVA_CHAT)]
    assert [t[0] for t in texts] == ["🙋", "⏰", "🎮", "👋"]  # asked, then the evening's messages
    assert [m.text[0] for m in h.discord.to(str(DORA))] == ["🙋"]
    [(_, summary, _)] = h.poster.posts
    assert "Waiting on (2): Ana, Eva" in summary
    status = await h.engine.promote.status(h.actor())
    assert status is not None and status.need == NeedCounts(asked=2, joined=1)
    assert status.rsvp[RsvpAnswer.IN] == 1 and status.rsvp[RsvpAnswer.OUT] == 1


async def test_quiet_hours_and_consent_hold_for_the_ask(h: Harness) -> None:
    quiet = opted_in(quiet_hours=QuietHours(time(17, 0), time(23, 0)), timezone="Europe/Ljubljana")
    await h.engine.player_store.save_preferences(await pid(h, DORA), quiet, h.clock.now())
    created = await h.engine.promote.create(h.actor())
    await h.engine.need.ask(h.actor(), 2)
    await h.engine.dispatcher.run_until(local(DAY, 18, 1))
    assert asks(h, str(DORA)) == [] and len(asks(h, EVA_CHAT)) == 1
    log = await h.engine.ledger_store.send_log(created.campaign.id)
    dora = [r for r in log if r.player_id == await pid(h, DORA) and r.job_type is JobType.NEED]
    assert [(r.status.value, r.reason) for r in dora] == [("skipped", QUIET_HOURS)]


async def test_the_ask_waits_for_nothing_and_holds_nothing_up(h: Harness) -> None:
    created = await h.engine.promote.create(h.actor())
    h.clock.set(local(DAY, 20, 44, 59))
    release = asyncio.Event()

    async def stuck(message) -> None:  # the need fan-out hangs at its first send
        if NEED_MARK in message.text:
            await release.wait()

    h.discord.before_send = stuck
    await h.engine.need.ask(h.actor(), 2)
    [need_run] = await h.engine.dispatcher.start_due()
    h.clock.set(local(DAY, 20, 45))
    [reminder_run] = await h.engine.dispatcher.start_due()  # on time, while the ask still runs
    await reminder_run
    assert len(h.discord.to(str(ANA))) == 1
    release.set()
    await need_run
    assert len(asks(h, str(DORA))) == 1 and len(asks(h, EVA_CHAT)) == 1
    jobs = {j.job_type: j.status for j in await h.engine.campaign_store.jobs(created.campaign.id)}
    assert jobs[JobType.NEED] is JobStatus.SENT and jobs[JobType.REMINDER] is JobStatus.SENT


async def test_a_second_ask_while_the_first_still_sends_is_not_lost(h: Harness) -> None:
    await h.engine.promote.create(h.actor())
    release = asyncio.Event()

    async def slow(message) -> None:
        await release.wait()

    h.telegram.before_send = slow
    await h.engine.need.ask(h.actor(), 2)
    [first_run] = await h.engine.dispatcher.start_due()
    async with asyncio.timeout(5):
        while not h.telegram.attempts:
            await asyncio.sleep(0)
    await h.add_player(HANA, "Hana", status=PlayerStatus.MAYBE)
    assert (await h.engine.need.ask(h.actor(), 1)).messaged == 1  # the job is due again, its lease withdrawn
    h.clock.advance(30)  # the running fan-out checks in, finds its lease gone, claims nobody more
    release.set()
    await first_run
    await h.engine.dispatcher.run_until(local(DAY, 18, 5))
    assert len(asks(h, EVA_CHAT)) == 1 and len(asks(h, str(DORA))) == 1 and len(asks(h, str(HANA))) == 1


async def test_a_crash_mid_ask_resumes_without_asking_twice(h: Harness) -> None:
    for i in range(10, 30):
        await h.add_player(i, f"P{i}", status=PlayerStatus.AVAILABLE)
    await h.engine.promote.create(h.actor())
    await h.engine.need.ask(h.actor(), 5)
    h.discord.hang_after = 5
    tasks = await h.engine.dispatcher.start_due()
    async with asyncio.timeout(5):
        while h.discord.hanging == 0:
            await asyncio.sleep(0)
    await h.engine.dispatcher.shutdown()  # the process dies mid-fan-out
    h.discord.hang_after = None
    await asyncio.gather(*tasks, return_exceptions=True)
    h.clock.advance(61)  # the lease expires
    restarted = h.engine_with(owner="second")
    await restarted.dispatcher.run_until(h.clock.now() + timedelta(minutes=1))
    asked = [m.address for m in h.discord.sent if NEED_MARK in m.text]
    assert sorted(asked) == sorted({str(i) for i in range(10, 30)} | {str(DORA)})  # each once (nonce dedup)


async def test_need_is_refused_when_it_cannot_help(h: Harness) -> None:
    with pytest.raises(NotFound):
        await h.engine.need.ask(h.actor(), 1)  # no campaign yet
    created = await h.engine.promote.create(h.actor())
    before = h.engine.db.changes.version
    with pytest.raises(InvalidInput):
        await h.engine.need.ask(h.actor(), 0)
    with pytest.raises(InvalidInput):
        await h.engine.need.ask(h.actor(), 51)
    with pytest.raises(NotPromoter):
        await h.engine.need.ask(h.actor(ANA, "Ana"), 1)
    with pytest.raises(NotFound):
        await h.engine.need.ask(h.actor(), 1, created.campaign.id + 1)
    assert h.engine.db.changes.version == before  # nothing stored
    await h.run_evening()  # past the voice check
    with pytest.raises(TooLate):
        await h.engine.need.ask(h.actor(), 1, created.campaign.id)
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.FOLLOWUP_SENT


async def test_a_rehearsal_asks_nobody(h: Harness) -> None:
    created = await h.engine.promote.create(h.actor(), dry_run=True)
    with pytest.raises(DryRunOnly):
        await h.engine.need.ask(h.actor(), 1, created.campaign.id)


async def test_a_cancelled_campaign_asks_nobody(h: Harness) -> None:
    created = await h.engine.promote.create(h.actor())
    await h.engine.promote.cancel(h.actor())
    with pytest.raises(TooLate):
        await h.engine.need.ask(h.actor(), 1, created.campaign.id)
    assert Channel.DISCORD not in {m.channel for m in h.discord.sent}
