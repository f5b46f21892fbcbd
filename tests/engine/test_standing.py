"""Standing weekly sessions end to end over a real SQLite file, with recording senders and a fake clock."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from services.errors import InvalidInput, NotFound, NotPromoter, StandingExists, TooManyStanding
from services.models import (
    CampaignStatus,
    Channel,
    DecisionOutcome,
    DeliveryOutcome,
    DeliveryStatus,
    JobStatus,
    JobType,
    PlayerStatus,
    Preferences,
    StandingView,
    Weekday,
)
from tests.support import FOLLOWUP_CHANNEL, PROMOTER_ID, ZONE, Harness, local, make_harness

DAY = date(2026, 11, 24)  # a Tuesday; Europe/Ljubljana is on CET
NEXT_WEEK = date(2026, 12, 1)
PLAYER_ID = 2000  # a linked member who is not a promoter


@pytest.fixture
async def h(tmp_path: Path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    yield harness
    await harness.engine.db.close()


async def add(h: Harness, **options: object) -> StandingView:
    wanted: dict[str, object] = {"weekday": Weekday.TUE, "start_at": time(21, 0), "quorum": 3, **options}
    return await h.engine.standing.add(h.actor(), **wanted)  # type: ignore[arg-type]


async def looking(h: Harness, n: int, *, first: int = 1, day: date | None = None,
                  status: PlayerStatus = PlayerStatus.LOOKING) -> None:
    for i in range(first, first + n):
        await h.add_player(i, f"P{i:02d}", status=status, day=day)


async def listed(h: Harness) -> StandingView:
    [view] = await h.engine.standing.sessions(h.actor())
    return view


async def count(h: Harness, sql: str, *params: object) -> int:
    async with h.engine.db.read() as tx:
        row = await tx.fetchone(sql, params)
    assert row is not None
    return int(row[0])


# -- quorum met and not met -------------------------------------------------------------------------


async def test_at_quorum_the_session_creates_its_campaign_on_its_own(h: Harness) -> None:
    view = await add(h, quorum=3, title="Tuesday raid")
    assert (view.next.session_date, view.next.due_at) == (DAY, local(DAY, 20, 30))
    await looking(h, 3)

    await h.engine.dispatcher.run_until(local(DAY, 20, 31))

    campaign = await h.engine.campaign_store.for_date(DAY)
    assert campaign is not None and campaign.standing_session_id == view.session.id
    assert campaign.initiator.discord_user_id == PROMOTER_ID  # as the session's creator would have
    assert (campaign.title, campaign.start_time, campaign.recipient_count) == ("Tuesday raid", time(21, 0), 3)
    assert campaign.created_at == local(DAY, 20, 30)
    jobs = await h.engine.campaign_store.jobs(campaign.id)
    assert [j.due_at for j in jobs] == [local(DAY, 20, 45), local(DAY, 21, 0), local(DAY, 21, 0, 30)]

    await h.run_evening()
    for i in (1, 2, 3):
        texts = [m.text for m in h.discord.to(str(i))]
        assert texts[0].startswith("⏰ Tuesday raid kicks off in 15 minutes, at 21:00 CET")
        assert texts[1].startswith("🎮 Tuesday raid: we are starting now")
    [(channel, summary, _)] = h.poster.posts  # the summary, and no note
    assert channel == FOLLOWUP_CHANNEL and summary.startswith("📋 Voice check for Tuesday raid, the 21:00 CET start")

    after = await listed(h)
    assert after.last is not None and after.last.outcome is DecisionOutcome.CREATED
    assert (after.last.eligible, after.last.campaign_id, after.last.job_status) == (3, campaign.id, JobStatus.SENT)
    assert after.last.detail == f"campaign {campaign.id} created (3 of 3)"
    assert after.next is not None
    assert (after.next.session_date, after.next.due_at) == (NEXT_WEEK, local(NEXT_WEEK, 20, 30))
    status = await h.engine.promote.status(h.actor())
    assert status is not None and status.standing is not None and status.standing.id == view.session.id


async def test_below_quorum_one_note_goes_to_the_follow_up_channel_and_nothing_else(h: Harness) -> None:
    await add(h, quorum=6)
    await looking(h, 3)

    await h.run_evening()

    assert await h.engine.campaign_store.for_date(DAY) is None
    assert h.discord.sent == h.telegram.sent == h.signal.sent == []
    [(channel, note, _)] = h.poster.posts
    assert channel == FOLLOWUP_CHANNEL
    assert note.startswith("Not enough players for Tuesday 21:00: 3 of 6 looking")
    after = await listed(h)
    assert after.last is not None and after.last.outcome is DecisionOutcome.BELOW_QUORUM
    assert (after.last.eligible, after.last.detail) == (3, "not enough players: 3 of 6")
    assert after.next is not None and after.next.session_date == NEXT_WEEK


@pytest.mark.parametrize(
    ("include_available", "include_maybe", "created"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
async def test_the_count_is_of_whom_the_campaign_would_reach(
    h: Harness, include_available: bool, include_maybe: bool, created: bool
) -> None:
    await add(h, quorum=3, include_available=include_available, include_maybe=include_maybe)
    await looking(h, 2)
    await looking(h, 1, first=10, status=PlayerStatus.AVAILABLE if include_available else PlayerStatus.MAYBE)
    await looking(h, 2, first=20, status=PlayerStatus.NOT_PLAYING)
    await h.add_player(30, "Never said yes", prefs=Preferences())  # consent is opt-in: not counted
    await h.engine.dispatcher.run_until(local(DAY, 20, 31))
    campaign = await h.engine.campaign_store.for_date(DAY)
    assert (campaign is not None) is created
    if campaign is not None:
        assert campaign.recipient_count == 3
        assert (campaign.include_available, campaign.include_maybe) == (include_available, include_maybe)


async def _player_id(h: Harness, discord_id: int) -> int:
    player = await h.engine.player_store.by_discord_id(discord_id)
    assert player is not None
    return player.id


# -- when the first decision is ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("added_at", "first"),
    [
        (time(18, 0), DAY),
        (time(20, 45), NEXT_WEEK),  # its decision passed already, its start not yet: next week
        (time(21, 30), NEXT_WEEK),  # its start is past
    ],
)
async def test_a_session_added_after_its_time_today_is_first_decided_next_week(
    h: Harness, added_at: time, first: date
) -> None:
    h.clock.set(local(DAY, added_at.hour, added_at.minute))
    view = await add(h)
    assert view.next is not None and view.next.session_date == first
    await looking(h, 3)
    await h.run_evening()
    assert (await h.engine.campaign_store.for_date(DAY) is None) is (first == NEXT_WEEK)


async def test_a_session_just_after_midnight_is_decided_the_evening_before_for_its_own_date(h: Harness) -> None:
    view = await add(h, weekday=Weekday.WED, start_at=time(0, 10), quorum=2)
    wednesday = DAY + timedelta(days=1)
    assert view.next is not None and (view.next.session_date, view.next.due_at) == (wednesday, local(DAY, 23, 40))
    await looking(h, 3, first=1)  # tonight, Tuesday: not that session's date
    await looking(h, 2, first=10, day=wednesday)

    await h.engine.dispatcher.run_until(local(DAY, 23, 41))

    assert await h.engine.campaign_store.for_date(DAY) is None
    campaign = await h.engine.campaign_store.for_date(wednesday)
    assert campaign is not None and campaign.recipient_count == 2
    jobs = await h.engine.campaign_store.jobs(campaign.id)
    assert [j.due_at for j in jobs] == [local(DAY, 23, 55), local(wednesday, 0, 10), local(wednesday, 0, 10, 30)]
    await h.run_evening()
    assert h.discord.to("10")[1].text.startswith("🎮 We are starting now, at 00:10 CET")


async def test_a_weekly_session_keeps_its_wall_time_across_the_spring_change(tmp_path: Path) -> None:
    before = date(2026, 3, 22)  # the Sunday before clocks go forward
    spring = date(2026, 3, 29)
    h = await make_harness(tmp_path / "dst.sqlite3", local(before, 12, 0))
    try:
        await h.add_player(PROMOTER_ID, "Promoter", status=None)
        await add(h, weekday=Weekday.SUN, quorum=1)
        await looking(h, 1, day=before)
        await h.engine.dispatcher.run_until(local(before, 22, 0))
        first = await h.engine.campaign_store.for_date(before)
        assert first is not None
        after = await listed(h)
        assert after.next is not None and after.next.session_date == spring
        assert after.next.due_at == datetime(2026, 3, 29, 18, 30, tzinfo=UTC)  # 20:30 CEST

        h.clock.set(local(spring, 12, 0))
        await looking(h, 1, first=2, day=spring)
        await h.engine.dispatcher.run_until(local(spring, 20, 31))
        second = await h.engine.campaign_store.for_date(spring)
        assert second is not None and second.created_at == datetime(2026, 3, 29, 18, 30, tzinfo=UTC)
        start = next(j for j in await h.engine.campaign_store.jobs(second.id) if j.job_type is JobType.START)
        assert start.due_at == datetime(2026, 3, 29, 19, 0, tzinfo=UTC)  # 21:00 CEST
        assert start.due_at.astimezone(ZONE).tzname() == "CEST"
    finally:
        await h.engine.db.close()


# -- restarts ---------------------------------------------------------------------------------------


async def _restart(tmp_path: Path, old: Harness, at: datetime) -> Harness:
    """Another process over the same database (the old one is gone without a word)."""
    await old.engine.db.close()
    return await make_harness(tmp_path / "rp.sqlite3", at, owner="second")


async def test_a_restart_before_the_decision_decides_once(tmp_path: Path, h: Harness) -> None:
    await add(h)
    await looking(h, 3)
    h2 = await _restart(tmp_path, h, local(DAY, 20, 0))
    try:
        await h2.engine.dispatcher.run_until(local(DAY, 20, 31))
        assert await count(h2, "SELECT count(*) FROM campaigns") == 1
        assert await count(h2, "SELECT count(*) FROM standing_decisions WHERE outcome IS NOT NULL") == 1
    finally:
        await h2.engine.db.close()


async def _crash_after_deciding(h: Harness, *, forget_outcome: bool) -> int:
    """Decide, then put the rows back as a process killed before it finished the job left them."""
    await h.engine.dispatcher.run_until(local(DAY, 20, 31))
    job_id = await count(h, "SELECT job_id FROM standing_decisions WHERE session_date = ?", DAY.isoformat())
    next_job = await count(h, "SELECT coalesce(max(job_id), 0) FROM standing_decisions WHERE session_date = ?",
                           NEXT_WEEK.isoformat())
    lease_until = (local(DAY, 20, 31)).astimezone(UTC).isoformat(timespec="microseconds")
    async with h.engine.db.transaction() as tx:
        await tx.execute(
            "UPDATE jobs SET status = 'running', lease_owner = 'dead', lease_until = ?, finished_at = NULL"
            " WHERE id = ?",
            (lease_until, job_id),
        )
        if forget_outcome:  # killed between creating the campaign and writing the outcome
            await tx.execute(
                "UPDATE standing_decisions SET outcome = NULL, eligible = NULL, campaign_id = NULL, detail = '',"
                " decided_at = NULL WHERE job_id = ?",
                (job_id,),
            )
            await tx.execute("DELETE FROM standing_decisions WHERE job_id = ?", (next_job,))
            await tx.execute("DELETE FROM jobs WHERE id = ?", (next_job,))
    return job_id


async def test_a_restart_after_the_campaign_was_created_does_not_create_another(tmp_path: Path, h: Harness) -> None:
    view = await add(h)
    await looking(h, 3)
    job_id = await _crash_after_deciding(h, forget_outcome=True)
    h2 = await _restart(tmp_path, h, local(DAY, 20, 32))
    try:
        await h2.engine.dispatcher.run_until(local(DAY, 20, 33))
        assert await count(h2, "SELECT count(*) FROM campaigns") == 1
        decision = await h2.engine.standing_store.decision(job_id)
        assert decision is not None and decision.outcome is DecisionOutcome.CREATED
        assert decision.job_status is JobStatus.SENT
        assert decision.campaign_id == (await h2.engine.campaign_store.of_standing(view.session.id, DAY)).id
        assert await count(h2, "SELECT count(*) FROM standing_decisions WHERE session_date = ?",
                           NEXT_WEEK.isoformat()) == 1
    finally:
        await h2.engine.db.close()


async def test_a_restart_after_the_note_went_out_does_not_post_it_again(tmp_path: Path, h: Harness) -> None:
    await add(h, quorum=6)
    await looking(h, 3)
    job_id = await _crash_after_deciding(h, forget_outcome=False)
    assert len(h.poster.posts) == 1
    h2 = await _restart(tmp_path, h, local(DAY, 20, 32))
    try:
        await h2.engine.dispatcher.run_until(local(DAY, 20, 33))
        assert h2.poster.posts == []  # the post ledger holds it: sent
        assert (await h2.engine.job_store.get(job_id)).status is JobStatus.SENT
        assert await count(h2, "SELECT count(*) FROM post_ledger WHERE key LIKE 'STANDING:NOTE:%'") == 1
        assert await count(h2, "SELECT count(*) FROM standing_decisions") == 2  # this week's and the next
    finally:
        await h2.engine.db.close()


async def test_a_decision_killed_at_every_attempt_fails_tells_its_creator_and_keeps_the_week_after(
    h: Harness,
) -> None:
    await add(h)
    job_id = await count(h, "SELECT job_id FROM standing_decisions")
    lease_until = local(DAY, 20, 29).astimezone(UTC).isoformat(timespec="microseconds")
    async with h.engine.db.transaction() as tx:  # five runs began and none came back
        await tx.execute(
            "UPDATE jobs SET status = 'running', attempts = max_attempts, lease_owner = 'dead', lease_until = ?"
            " WHERE id = ?",
            (lease_until, job_id),
        )
    await h.engine.dispatcher.run_until(local(DAY, 20, 31))
    decision = await h.engine.standing_store.decision(job_id)
    assert decision is not None and decision.outcome is DecisionOutcome.FAILED
    assert decision.job_status is JobStatus.FAILED
    assert decision.detail == "the decision failed: the bot was stopped or crashed during every attempt"
    [dm] = h.discord.to(str(PROMOTER_ID))
    assert dm.text.startswith("⚠️ The decision whether to promote your game night at 21:00 CET failed after 6 attempts")
    assert (await listed(h)).next.session_date == NEXT_WEEK


# -- what takes precedence, and what is refused ------------------------------------------------------


async def test_a_campaign_made_by_hand_that_day_takes_precedence(h: Harness) -> None:
    await add(h)
    await looking(h, 3)
    by_hand = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 20, 31))
    assert await count(h, "SELECT count(*) FROM campaigns") == 1
    last = (await listed(h)).last
    assert last is not None and last.outcome is DecisionOutcome.TAKEN
    assert last.campaign_id == by_hand.campaign.id
    assert last.detail == f"campaign {by_hand.campaign.id} was already scheduled that day and takes precedence"
    assert h.poster.posts == []


async def test_a_refusal_is_logged_and_shown_in_the_list(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    await add(h)
    await looking(h, 3)
    # The creator promoted by hand; a message went out; then they cancelled: it still counts (rule 6).
    by_hand = await h.engine.promote.create(h.actor())
    job = (await h.engine.campaign_store.jobs(by_hand.campaign.id))[0]
    player = await _player_id(h, 1)
    key = "PROMOTE:T-15:2026-11-24"
    await h.engine.ledger_store.claim(
        key=key, campaign_id=by_hand.campaign.id, job_id=job.id, first_channels={player: Channel.DISCORD},
        now=h.clock.now(),
    )
    await h.engine.ledger_store.record(
        key=key, campaign_id=by_hand.campaign.id, job_id=job.id, job_type=JobType.REMINDER,
        outcomes=[DeliveryOutcome(player, DeliveryStatus.SENT, Channel.DISCORD, "m-1", ())], now=h.clock.now(),
    )
    await h.engine.promote.cancel(h.actor(), by_hand.campaign.id)

    with caplog.at_level(logging.WARNING, logger="services.standing"):
        await h.engine.dispatcher.run_until(local(DAY, 20, 31))

    assert await count(h, "SELECT count(*) FROM campaigns") == 1
    last = (await listed(h)).last
    assert last is not None and last.outcome is DecisionOutcome.REFUSED
    assert last.detail == "refused: You have already promoted a session today."
    assert "was refused: You have already promoted a session today." in caplog.text


@pytest.mark.parametrize(
    ("bot_back_at", "outcome", "job_status"),
    [
        (time(21, 20), DecisionOutcome.CREATED, JobStatus.SENT),  # late, but its start ping can still go out
        (time(21, 31), DecisionOutcome.TOO_LATE, JobStatus.SKIPPED),
    ],
)
async def test_a_decision_the_bot_was_down_for(
    h: Harness, bot_back_at: time, outcome: DecisionOutcome, job_status: JobStatus
) -> None:
    await add(h)
    await looking(h, 3)
    back = local(DAY, bot_back_at.hour, bot_back_at.minute)
    h.clock.set(back)
    await h.engine.dispatcher.run_until(back + timedelta(seconds=1))
    view = await listed(h)
    assert view.last is not None and (view.last.outcome, view.last.job_status) == (outcome, job_status)
    assert view.next is not None and view.next.session_date == NEXT_WEEK
    campaign = await h.engine.campaign_store.for_date(DAY)
    if outcome is DecisionOutcome.CREATED:
        assert campaign is not None
        jobs = await h.engine.campaign_store.jobs(campaign.id)
        # Rule 4: a past reminder and start move to just after now.
        assert [j.due_at for j in jobs][:2] == [back + timedelta(seconds=10), back + timedelta(seconds=20)]
    else:
        assert campaign is None and h.poster.posts == []


# -- adding, listing and removing ----------------------------------------------------------------------


async def test_removing_a_session_cancels_its_decision(h: Harness) -> None:
    view = await add(h)
    await looking(h, 3)
    removed = await h.engine.standing.remove(h.actor(), view.session.id)
    assert removed.session.removed_at == h.clock.now() and removed.next is None
    assert await h.engine.standing.sessions(h.actor()) == []
    await h.run_evening()
    assert await h.engine.campaign_store.for_date(DAY) is None and h.poster.posts == []
    assert await count(h, "SELECT count(*) FROM jobs WHERE status = 'cancelled'") == 1
    with pytest.raises(NotFound, match=rf"There is no standing session {view.session.id}\.$"):
        await h.engine.standing.remove(h.actor(), view.session.id)
    again = await add(h)  # the slot is free again
    assert again.session.id != view.session.id


async def test_one_session_per_weekday_and_time(h: Harness) -> None:
    await add(h)
    with pytest.raises(StandingExists, match=r"There is already a standing session on Tuesday 21:00\.$"):
        await add(h, quorum=5)
    await add(h, start_at=time(21, 30))
    await add(h, weekday=Weekday.WED)
    assert [(v.session.weekday, v.session.start_time) for v in await h.engine.standing.sessions(h.actor())] == [
        (Weekday.TUE, time(21, 0)), (Weekday.TUE, time(21, 30)), (Weekday.WED, time(21, 0)),
    ]


async def test_a_server_has_at_most_25_sessions(h: Harness) -> None:
    for n in range(25):
        await add(h, weekday=list(Weekday)[n % 7], start_at=time(n // 7, 0))
    with pytest.raises(TooManyStanding, match="This server has 25 standing sessions"):
        await add(h, start_at=time(23, 59))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quorum": 0}, "A quorum is a number of players from 1 to 1000."),
        ({"quorum": 1001}, "A quorum is a number of players from 1 to 1000."),
        ({"title": "x" * 101}, "A title has 1 to 100 characters"),
        ({"title": "two\nlines"}, "A title has 1 to 100 characters"),
        ({"title": "   "}, "A title has 1 to 100 characters"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(h: Harness, options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await add(h, **options)
    assert await count(h, "SELECT count(*) FROM standing_sessions") == 0
    assert await count(h, "SELECT count(*) FROM jobs") == 0


async def test_only_promoters_add_list_and_remove(h: Harness) -> None:
    view = await add(h)
    await h.add_player(PLAYER_ID, "Player", status=None)
    player = h.actor(PLAYER_ID, "Player")
    with pytest.raises(NotPromoter):
        await h.engine.standing.add(player, weekday=Weekday.WED, start_at=time(21, 0), quorum=3)
    with pytest.raises(NotPromoter):
        await h.engine.standing.sessions(player)
    with pytest.raises(NotPromoter):
        await h.engine.standing.remove(player, view.session.id)
    assert [v.session.id for v in await h.engine.standing.sessions(h.actor())] == [view.session.id]


async def test_a_cancelled_standing_campaign_is_not_made_again_that_day(h: Harness) -> None:
    view = await add(h)
    await looking(h, 3)
    await h.engine.dispatcher.run_until(local(DAY, 20, 31))
    made = await h.engine.campaign_store.of_standing(view.session.id, DAY)
    assert made is not None
    await h.engine.promote.cancel(h.actor(), made.id)
    await h.run_evening()
    assert (await h.engine.campaign_store.get(made.id)).status is CampaignStatus.CANCELLED
    assert await count(h, "SELECT count(*) FROM campaigns") == 1
