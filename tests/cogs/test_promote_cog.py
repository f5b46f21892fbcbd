"""/promote preview | schedule | status | cancel, called as discord.py would call them."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest

from cogs.promote import CONFIRM_TIMEOUT_SECONDS, ConfirmSchedule, PromoteCog
from services.errors import InvalidInput, NotFound, NotLinked, NotPromoter
from services.models import (
    CampaignStatus,
    Channel,
    JobStatus,
    JobType,
    PlayerStatus,
    Preferences,
    PreferredChannel,
)
from tests.cogs.fakes import (
    DAY,
    GUILD_ID,
    MISSING,
    OTHER_GUILD_ID,
    PLAIN_ROLE_ID,
    PROMOTER_ROLE_ID,
    Rig,
    interaction,
    make_rig,
    member,
    no_reply,
    only_reply,
    press,
    replies_of,
    user,
)
from tests.support import PROMOTER_ID, opted_in

PLAYER_ID = 2000  # a linked member who is not a promoter
RECIPIENTS = ("Ana", "Bor", "Cene")


@pytest.fixture
async def rig(tmp_path):
    rig = await make_rig(tmp_path / "rp.sqlite3")
    yield rig
    await rig.close()


async def add_community(rig: Rig) -> None:
    h = rig.h
    await h.add_player(
        1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram="5001"
    )
    await h.add_player(
        2, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL), signal="+38640111222"
    )
    await h.add_player(3, "Cene")
    await h.add_player(4, "Dora", status=PlayerStatus.AVAILABLE)
    await h.add_player(5, "Eva", status=PlayerStatus.MAYBE)
    await h.add_player(6, "Fin", prefs=Preferences(allow_promotions=False))


async def preview(cog: PromoteCog, who=None, *, include_available=False, include_maybe=False, **kw):
    i = interaction(who, **kw)
    await PromoteCog.preview.callback(
        cog, i, include_available=include_available, include_maybe=include_maybe
    )
    return only_reply(i)


async def schedule(cog: PromoteCog, who=None, *, dry_run=None, **options):
    i = interaction(who)
    await PromoteCog.schedule.callback(
        cog,
        i,
        include_available=options.get("include_available", False),
        include_maybe=options.get("include_maybe", False),
        dry_run=dry_run,
    )
    reply = only_reply(i)
    assert isinstance(reply.view, ConfirmSchedule)
    return i, reply, reply.view


# -- preview -------------------------------------------------------------------------------------


async def test_preview_by_a_listed_promoter_shows_date_local_times_counts_and_recipients(rig: Rig) -> None:
    await add_community(rig)
    reply = await preview(PromoteCog(rig.bot, rig.engine), member(PROMOTER_ID, "Promoter"))

    assert reply.method == "send_message" and reply.ephemeral
    assert reply.embed.title == "Promotion preview"
    assert reply.field("Date") == "2026-11-24"
    assert reply.field("Reminder").startswith("20:45 CET (<t:")
    assert reply.field("Start").startswith("21:00 CET (<t:")
    assert reply.field("Recipients") == "3"
    assert reply.field("Channels") == "discord: 1 · telegram: 1 · signal: 1"
    assert reply.field("Who").splitlines() == ["🟢 Ana → telegram", "🟢 Bor → signal", "🟢 Cene → discord"]
    assert await rig.h.engine.campaign_store.for_date(DAY) is None  # a preview stores nothing


async def test_preview_with_available_and_maybe_adds_them(rig: Rig) -> None:
    await add_community(rig)
    reply = await preview(PromoteCog(rig.bot, rig.engine), include_available=True, include_maybe=True)
    assert reply.field("Recipients") == "5"
    who = reply.field("Who")
    assert "🔵 Dora → discord" in who and "🟡 Eva → discord" in who
    assert "Fin" not in who  # allow_promotions is off


async def test_preview_by_promoter_role_on_the_member(rig: Rig) -> None:
    await add_community(rig)
    reply = await preview(
        PromoteCog(rig.bot, rig.engine), member(PLAYER_ID, "Roley", roles=(PLAIN_ROLE_ID, PROMOTER_ROLE_ID))
    )
    assert reply.ephemeral and reply.field("Recipients") == "3"


async def test_preview_with_only_other_roles_is_not_a_promoter(rig: Rig) -> None:
    i = interaction(member(PLAYER_ID, "Roley", roles=(PLAIN_ROLE_ID,)))
    with pytest.raises(NotPromoter):
        await PromoteCog.preview.callback(
            PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False
        )
    no_reply(i)


@pytest.mark.parametrize(
    ("who", "guild_id"),
    [
        (member(PROMOTER_ID), OTHER_GUILD_ID),  # a member of another guild
        (member(PROMOTER_ID), None),  # in a DM
        (user(PROMOTER_ID), GUILD_ID),  # not a Member at all
    ],
    ids=["other-guild", "dm", "not-a-member"],
)
async def test_preview_by_a_non_member_is_not_linked_and_creates_no_profile(rig: Rig, who, guild_id) -> None:
    i = interaction(who, guild_id=guild_id)
    with pytest.raises(NotLinked):
        await PromoteCog.preview.callback(
            PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False
        )
    no_reply(i)
    assert await rig.h.engine.player_store.by_discord_id(PROMOTER_ID) is None


async def test_preview_in_summer_shows_cest(tmp_path) -> None:
    rig = await make_rig(tmp_path / "rp.sqlite3", day=date(2026, 7, 14))
    try:
        await rig.h.add_player(1, "Ana")
        reply = await preview(PromoteCog(rig.bot, rig.engine))
        assert reply.field("Reminder").startswith("20:45 CEST")
        assert reply.field("Start").startswith("21:00 CEST")
    finally:
        await rig.close()


async def test_preview_after_the_reminder_time_shows_the_real_moved_times(tmp_path) -> None:
    rig = await make_rig(tmp_path / "rp.sqlite3", hour=20, minute=50)
    try:
        await rig.h.add_player(1, "Ana")
        reply = await preview(PromoteCog(rig.bot, rig.engine))
        assert reply.field("Reminder").startswith("20:50 CET")  # now + 10 s, not a stale 20:45
        assert reply.field("Start").startswith("21:00 CET")
    finally:
        await rig.close()


async def test_preview_with_nobody_looking_says_so(rig: Rig) -> None:
    reply = await preview(PromoteCog(rig.bot, rig.engine))
    assert reply.field("Recipients") == "0"
    assert reply.field("Who") == "Nobody is looking yet."


# -- schedule ------------------------------------------------------------------------------------


async def test_schedule_asks_for_confirmation_and_stores_nothing_yet(rig: Rig) -> None:
    await add_community(rig)
    _, reply, view = await schedule(PromoteCog(rig.bot, rig.engine))
    assert reply.ephemeral and reply.content == "Schedule this campaign?"
    assert reply.embed.title == "Promotion preview" and reply.field("Recipients") == "3"
    assert [(b.label, b.custom_id) for b in view.children] == [
        ("Confirm", "rp:schedule:confirm"),
        ("Cancel", "rp:schedule:cancel"),
    ]
    assert view.timeout == CONFIRM_TIMEOUT_SECONDS
    assert await rig.h.engine.campaign_store.for_date(DAY) is None


async def test_confirm_creates_the_campaign_and_edits_the_message(rig: Rig) -> None:
    await add_community(rig)
    _, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    click = interaction(member(PROMOTER_ID))
    await press(view, view.confirm, click)

    campaign = await rig.h.engine.campaign_store.for_date(DAY)
    assert campaign is not None and campaign.status is CampaignStatus.SCHEDULED
    assert campaign.recipient_count == 3 and not campaign.dry_run
    jobs = await rig.h.engine.campaign_store.jobs(campaign.id)
    assert [(j.job_type, j.status) for j in jobs] == [
        (JobType.REMINDER, JobStatus.PENDING),
        (JobType.START, JobStatus.PENDING),
        (JobType.VOICE_CHECK, JobStatus.PENDING),
    ]
    reply = only_reply(click)
    assert reply.method == "edit_message"
    assert reply.content is None and reply.view is None  # the question and its buttons are gone
    assert reply.embed.title == f"Campaign {campaign.id} scheduled"
    assert reply.field("Reminder").startswith("20:45 CET")
    assert reply.field("Start").startswith("21:00 CET")
    assert reply.field("Voice check").startswith("21:00 CET")
    assert reply.field("Recipients") == "3"
    assert view.is_finished()


async def test_confirm_from_another_user_is_refused_and_the_promoter_can_still_confirm(rig: Rig) -> None:
    await add_community(rig)
    _, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    intruder = interaction(member(PLAYER_ID, "Intruder", roles=(PROMOTER_ROLE_ID,)))
    await press(view, view.confirm, intruder)

    reply = only_reply(intruder)
    assert reply.ephemeral and reply.content == "Only the promoter who asked can confirm."
    assert await rig.h.engine.campaign_store.for_date(DAY) is None

    await press(view, view.confirm, interaction(member(PROMOTER_ID)))
    campaign = await rig.h.engine.campaign_store.for_date(DAY)
    assert campaign is not None and campaign.initiator.discord_user_id == PROMOTER_ID


async def test_cancel_schedules_nothing_and_the_buttons_stop_working(rig: Rig) -> None:
    await add_community(rig)
    _, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    click = interaction(member(PROMOTER_ID))
    await press(view, view.cancel, click)

    reply = only_reply(click)
    assert reply.method == "edit_message"
    assert reply.content == "Nothing was scheduled." and reply.embed is None and reply.view is None
    await press(view, view.confirm, interaction(member(PROMOTER_ID)))  # a late click on a stale copy
    assert await rig.h.engine.campaign_store.for_date(DAY) is None


async def test_confirm_when_already_promoted_today_is_refused_in_the_message(rig: Rig) -> None:
    await add_community(rig)
    existing = await rig.h.engine.promote.create(rig.h.actor())
    _, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    click = interaction(member(PROMOTER_ID))
    await press(view, view.confirm, click)

    reply = only_reply(click)
    assert reply.method == "edit_message"
    assert reply.content == "Not scheduled: You have already promoted a session today."
    assert reply.embed is None and reply.view is None
    assert (await rig.h.engine.campaign_store.for_date(DAY)).id == existing.campaign.id


async def test_confirm_with_nobody_looking_is_refused_in_the_message(rig: Rig) -> None:
    _, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    click = interaction(member(PROMOTER_ID))
    await press(view, view.confirm, click)
    assert only_reply(click).content == "Not scheduled: Nobody is looking yet: there is no one to promote to."
    assert await rig.h.engine.campaign_store.for_date(DAY) is None


async def test_dry_run_option_schedules_a_rehearsal_for_the_initiator_only(rig: Rig) -> None:
    await add_community(rig)
    _, reply, view = await schedule(PromoteCog(rig.bot, rig.engine), dry_run=True)
    assert reply.embed.title == "Promotion preview (dry run)"
    assert reply.field("Recipients") == "1" and "Promoter" in reply.field("Who")
    click = interaction(member(PROMOTER_ID))
    await press(view, view.confirm, click)

    campaign = await rig.h.engine.campaign_store.for_date(DAY)
    assert campaign.dry_run and campaign.recipient_count == 1
    assert only_reply(click).embed.title == f"Campaign {campaign.id} scheduled (dry run: only you)"


@pytest.mark.parametrize(
    ("default", "option", "expect_dry"),
    [
        (True, None, True),
        (True, False, False),
        (False, None, False),
        (False, True, True),
    ],
)
async def test_dry_run_default_applies_only_when_the_option_is_left_out(
    tmp_path, default, option, expect_dry
) -> None:
    rig = await make_rig(tmp_path / "rp.sqlite3", dry_run_default=default)
    try:
        await add_community(rig)
        _, reply, view = await schedule(PromoteCog(rig.bot, rig.engine), dry_run=option)
        assert reply.embed.title.endswith("(dry run)") is expect_dry
        await press(view, view.confirm, interaction(member(PROMOTER_ID)))
        assert (await rig.h.engine.campaign_store.for_date(DAY)).dry_run is expect_dry
    finally:
        await rig.close()


async def test_a_dry_run_is_allowed_after_the_real_campaign(rig: Rig) -> None:
    await add_community(rig)
    await rig.h.engine.promote.create(rig.h.actor())
    _, _, view = await schedule(PromoteCog(rig.bot, rig.engine), dry_run=True)
    click = interaction(member(PROMOTER_ID))
    await press(view, view.confirm, click)
    assert only_reply(click).embed.title.endswith("(dry run: only you)")


async def test_schedule_by_a_non_promoter_is_refused_before_any_question(rig: Rig) -> None:
    i = interaction(member(PLAYER_ID, "Player"))
    with pytest.raises(NotPromoter):
        await PromoteCog.schedule.callback(
            PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False, dry_run=None
        )
    no_reply(i)


async def test_an_expired_confirmation_edits_the_original_message(rig: Rig) -> None:
    await add_community(rig)
    origin, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    await view.on_timeout()
    origin.edit_original_response.assert_awaited_once_with(
        content="This confirmation expired; run /promote schedule again.", embed=None, view=None
    )
    assert await rig.h.engine.campaign_store.for_date(DAY) is None


async def test_a_confirmed_view_does_not_claim_to_have_expired(rig: Rig) -> None:
    await add_community(rig)
    origin, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    await press(view, view.confirm, interaction(member(PROMOTER_ID)))
    await view.on_timeout()
    origin.edit_original_response.assert_not_awaited()


# -- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["2026-13-01", "tomorrow", "24.11.2026", "2026-02-30", "9" * 5000, " 2026-11-24 ", "20261124"]
)
async def test_status_with_a_bad_date_explains_the_format(rig: Rig, bad: str) -> None:
    i = interaction(member(PLAYER_ID, "Player"))
    with pytest.raises(InvalidInput) as caught:
        await PromoteCog.status.callback(PromoteCog(rig.bot, rig.engine), i, date=bad)
    assert "is not a date; use YYYY-MM-DD, for example 2026-11-24." in caught.value.message
    assert len(caught.value.message) < 120  # an oversized value is not echoed back in full
    no_reply(i)


async def test_status_without_a_campaign(rig: Rig) -> None:
    i = interaction(member(PLAYER_ID, "Player"))
    await PromoteCog.status.callback(PromoteCog(rig.bot, rig.engine), i, date=None)
    reply = only_reply(i)
    assert reply.ephemeral and reply.content == "No campaign for that date." and reply.embed is None


async def test_status_shows_aggregates_and_no_recipient_names(rig: Rig) -> None:
    await add_community(rig)
    created = await rig.h.engine.promote.create(rig.h.actor())
    i = interaction(member(PLAYER_ID, "Player"))  # any linked player may look
    await PromoteCog.status.callback(PromoteCog(rig.bot, rig.engine), i, date="2026-11-24")

    reply = only_reply(i)
    assert reply.ephemeral
    assert reply.embed.title == f"Campaign {created.campaign.id} · 2026-11-24"
    assert reply.embed.description == "Status: **scheduled** · started by Promoter"
    assert reply.field("Recipients") == "3"
    assert reply.field("Delivery") == "sent: 0 · skipped: 0 · failed: 0 · unknown: 0"
    assert reply.field("Jobs").splitlines() == [
        "`send_reminder_2045` 20:45 CET — pending (0/5)",
        "`send_start_2100` 21:00 CET — pending (0/5)",
        "`voice_check_2100` 21:00 CET — pending (0/5)",
    ]
    text = "\n".join(reply.texts())
    for name in RECIPIENTS:
        assert name not in text


async def test_status_after_the_evening_counts_deliveries(rig: Rig) -> None:
    await add_community(rig)
    await rig.h.engine.promote.create(rig.h.actor())
    rig.h.voice.ids = {3}
    await rig.h.run_evening()
    i = interaction(member(PLAYER_ID, "Player"))
    await PromoteCog.status.callback(PromoteCog(rig.bot, rig.engine), i, date=None)

    reply = only_reply(i)
    assert reply.embed.description.startswith("Status: **followup_sent**")
    # 3 reminders + 3 starts + follow-ups for the 2 not in voice.
    assert reply.field("Delivery") == "sent: 8 · skipped: 0 · failed: 0 · unknown: 0"
    assert all(line.endswith("(1/5)") for line in reply.field("Jobs").splitlines())


async def test_status_of_another_date(rig: Rig) -> None:
    await add_community(rig)
    await rig.h.engine.promote.create(rig.h.actor())
    i = interaction(member(PLAYER_ID, "Player"))
    await PromoteCog.status.callback(PromoteCog(rig.bot, rig.engine), i, date=(DAY - timedelta(days=1)).isoformat())
    assert only_reply(i).content == "No campaign for that date."


async def test_status_for_a_non_member_is_not_linked(rig: Rig) -> None:
    i = interaction(user(PLAYER_ID))
    with pytest.raises(NotLinked):
        await PromoteCog.status.callback(PromoteCog(rig.bot, rig.engine), i, date=None)
    no_reply(i)


# -- cancel --------------------------------------------------------------------------------------


async def test_cancel_cancels_the_campaign_and_its_pending_jobs(rig: Rig) -> None:
    await add_community(rig)
    created = await rig.h.engine.promote.create(rig.h.actor())
    i = interaction(member(PROMOTER_ID))
    await PromoteCog.cancel.callback(PromoteCog(rig.bot, rig.engine), i)

    reply = only_reply(i)
    assert reply.ephemeral and reply.content == f"Campaign {created.campaign.id} cancelled."
    assert reply.embed.description.startswith("Status: **cancelled**")
    assert all(" — cancelled " in line for line in reply.field("Jobs").splitlines())
    campaign = await rig.h.engine.campaign_store.get(created.campaign.id)
    assert campaign.status is CampaignStatus.CANCELLED
    assert {j.status for j in await rig.h.engine.campaign_store.jobs(campaign.id)} == {JobStatus.CANCELLED}

    await rig.h.run_evening()
    assert rig.h.discord.sent == [] and rig.h.telegram.sent == [] and rig.h.signal.sent == []
    assert rig.h.poster.posts == []


async def test_cancel_without_a_campaign_is_not_found(rig: Rig) -> None:
    i = interaction(member(PROMOTER_ID))
    with pytest.raises(NotFound, match=r"There is no campaign to cancel\."):
        await PromoteCog.cancel.callback(PromoteCog(rig.bot, rig.engine), i)
    no_reply(i)


async def test_cancel_by_a_non_promoter_changes_nothing(rig: Rig) -> None:
    await add_community(rig)
    created = await rig.h.engine.promote.create(rig.h.actor())
    i = interaction(member(PLAYER_ID, "Player"))
    with pytest.raises(NotPromoter):
        await PromoteCog.cancel.callback(PromoteCog(rig.bot, rig.engine), i)
    no_reply(i)
    assert (await rig.h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.SCHEDULED


async def test_cancel_twice_says_it_is_already_over(rig: Rig) -> None:
    await add_community(rig)
    await rig.h.engine.promote.create(rig.h.actor())
    await PromoteCog.cancel.callback(PromoteCog(rig.bot, rig.engine), interaction(member(PROMOTER_ID)))
    with pytest.raises(NotFound, match="already over"):
        await PromoteCog.cancel.callback(PromoteCog(rig.bot, rig.engine), interaction(member(PROMOTER_ID)))


async def test_edit_message_leaves_nothing_stale(rig: Rig) -> None:
    """Every edit of the confirmation states content, embed and view, so nothing of the question stays."""
    await add_community(rig)
    for button in ("confirm", "cancel"):
        _, _, view = await schedule(PromoteCog(rig.bot, rig.engine), dry_run=True)
        click = interaction(member(PROMOTER_ID))
        await press(view, getattr(view, button), click)
        reply = only_reply(click)
        assert MISSING not in (reply.content, reply.embed, reply.view)


async def test_preview_names_channels_that_are_not_configured(tmp_path) -> None:
    rig = await make_rig(tmp_path / "rp.sqlite3", channels=frozenset({Channel.DISCORD}))
    try:
        await add_community(rig)
        reply = await preview(PromoteCog(rig.bot, rig.engine))
        assert reply.field("Channels") == "discord: 3 · telegram: 0 · signal: 0"
        assert reply.embed.footer.text == (
            "Not configured here: signal, telegram (those players are reached on Discord)."
        )
    finally:
        await rig.close()


async def test_a_double_click_on_confirm_schedules_once(rig: Rig) -> None:
    await add_community(rig)
    _, _, view = await schedule(PromoteCog(rig.bot, rig.engine))
    first, second = interaction(member(PROMOTER_ID)), interaction(member(PROMOTER_ID))
    await asyncio.gather(press(view, view.confirm, first), press(view, view.confirm, second))
    campaign = await rig.h.engine.campaign_store.for_date(DAY)
    assert campaign is not None
    assert only_reply(first).embed.title == f"Campaign {campaign.id} scheduled"
    assert replies_of(second) == []  # the stale click is ignored, not answered twice
