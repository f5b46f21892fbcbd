"""/promote schedule start: title:, /promote standing add | list | remove, and the evening on the board,
called as discord.py would call them."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from cogs.availability import AvailabilityCog
from cogs.promote import ConfirmSchedule, PromoteCog
from services.errors import InvalidInput, NotFound, NotPromoter, StandingExists
from services.models import DecisionOutcome, Weekday
from tests.cogs.fakes import (
    DAY,
    EMBED_LIMITS,
    Reply,
    Rig,
    check_discord_limits,
    interaction,
    make_rig,
    member,
    no_reply,
    only_reply,
    press,
)
from tests.support import PROMOTER_ID, local

PLAYER_ID = 2000
HOSTILE = "@everyone **Raid** <@&876543210987654321> ||x||"


@pytest.fixture
async def rig(tmp_path):
    rig = await make_rig(tmp_path / "rp.sqlite3")
    await rig.h.add_player(1, "Ana")
    await rig.h.add_player(2, "Bor")
    yield rig
    await rig.close()


def inert(reply: Reply) -> None:
    text = "\n".join(reply.texts())
    for raw in ("@everyone", "**Raid**", "<@&876543210987654321>", "||x||"):
        assert raw not in text, f"{raw!r} is not escaped in {text!r}"


async def schedule(cog: PromoteCog, *, start: str | None = None, title: str | None = None, who=None) -> Reply:
    i = interaction(who or member(PROMOTER_ID))
    await PromoteCog.schedule.callback(
        cog, i, include_available=False, include_maybe=False, dry_run=None, start=start, title=title
    )
    return only_reply(i)


# -- /promote schedule start: title: ----------------------------------------------------------------


async def test_schedule_at_a_start_with_a_title_previews_then_creates_it(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    reply = await schedule(cog, start="22:30", title="Raid night")
    assert reply.field("Start").startswith("22:30 CET")
    assert reply.field("Reminder").startswith("22:15 CET")
    assert reply.field("Title") == "Raid night"
    view = reply.view
    assert isinstance(view, ConfirmSchedule)
    click = interaction(member(PROMOTER_ID))
    await press(view, view.confirm, click)

    created = only_reply(click)
    assert created.field("Start").startswith("22:30 CET") and created.field("Title") == "Raid night"
    campaign = await rig.h.engine.campaign_store.for_date(DAY)
    assert campaign is not None and (campaign.start_time, campaign.title) == (time(22, 30), "Raid night")


@pytest.mark.parametrize("start", ["25:00", "9pm", "21:00 ", "2100", "21.00", "٢١:٠٠"])
async def test_a_start_that_is_not_hh_mm_is_refused_politely(rig: Rig, start: str) -> None:
    i = interaction(member(PROMOTER_ID))
    with pytest.raises(InvalidInput, match=r"The start is a time as HH:MM \(24-hour\), for example 21:00\.$"):
        await PromoteCog.schedule.callback(
            PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False, dry_run=None,
            start=start, title=None,
        )
    no_reply(i)
    assert await rig.h.engine.campaign_store.for_date(DAY) is None


@pytest.mark.parametrize("title", ["two\nlines", "   ", "bell\x07"])
async def test_a_title_that_would_break_a_message_is_refused_politely(rig: Rig, title: str) -> None:
    i = interaction(member(PROMOTER_ID))
    with pytest.raises(InvalidInput, match="A title has 1 to 100 characters"):
        await PromoteCog.schedule.callback(
            PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False, dry_run=None,
            start=None, title=title,
        )
    no_reply(i)


async def test_a_hostile_title_is_shown_inert_in_the_preview_the_confirmation_and_the_status(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    reply = await schedule(cog, title=HOSTILE)
    inert(reply)
    click = interaction(member(PROMOTER_ID))
    assert isinstance(reply.view, ConfirmSchedule)
    await press(reply.view, reply.view.confirm, click)
    inert(only_reply(click))
    i = interaction(member(PLAYER_ID, "Player"))
    await PromoteCog.status.callback(cog, i, date=None)
    status = only_reply(i)
    inert(status)
    assert "Raid" in status.field("Title")


async def test_the_start_autocomplete_offers_the_usual_times(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    i = interaction(member(PROMOTER_ID))
    assert [c.value for c in await cog._start_choices(i, "")] == [
        "21:00", "21:30", "20:30", "22:00", "20:00", "22:30", "19:30",
    ]
    assert [c.value for c in await cog._start_choices(i, "22")] == ["22:00", "22:30"]
    assert [c.value for c in await cog._standing_start_choices(i, "18:45")] == ["18:45"]
    assert await cog._start_choices(i, "x" * 500) == []
    no_reply(i)


async def test_the_status_names_the_start_and_the_standing_session(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    await rig.h.engine.standing.add(rig.h.actor(), weekday=Weekday.TUE, start_at=time(21, 0), quorum=2,
                                    title="Tuesday raid")
    await rig.h.engine.dispatcher.run_until(local(DAY, 20, 31))
    i = interaction(member(PLAYER_ID, "Player"))
    await PromoteCog.status.callback(cog, i, date=None)
    reply = only_reply(i)
    assert reply.field("Starts") == "21:00 CET"
    assert reply.field("Title") == "Tuesday raid"
    assert reply.field("From") == "standing session 1 (Tuesday 21:00)"


# -- /promote standing ------------------------------------------------------------------------------


async def standing_add(cog: PromoteCog, who=None, **options) -> Reply:
    i = interaction(who or member(PROMOTER_ID))
    values = {"weekday": "tue", "start": "21:00", "quorum": 3, "include_available": False, "include_maybe": False,
              "title": None, **options}
    await PromoteCog.standing_add.callback(cog, i, **values)
    return only_reply(i)


async def standing_list(cog: PromoteCog, who=None) -> Reply:
    i = interaction(who or member(PROMOTER_ID))
    await PromoteCog.standing_list.callback(cog, i)
    return only_reply(i)


async def test_standing_add_answers_when_it_is_first_decided(rig: Rig) -> None:
    reply = await standing_add(PromoteCog(rig.bot, rig.engine), quorum=6, include_available=True, title="Raid")
    assert reply.ephemeral
    assert reply.embed.title == "Standing session 1: Tuesday 21:00 every week"
    lines = reply.embed.description.splitlines()
    assert lines[0] == "“Raid”"
    assert lines[1] == "Quorum 6 · counts LOOKING + AVAILABLE · added by Promoter"
    assert lines[2].startswith("Next: 2026-11-24, decided at 20:30 CET (<t:")
    assert lines[3] == "Last decision: none yet"


async def test_standing_list_shows_the_next_decision_and_the_last_outcome(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    await standing_add(cog, quorum=5)
    await standing_add(cog, weekday="mon", start="20:00", quorum=2)
    await rig.h.run_evening()  # Tuesday's decision: 2 of 5
    reply = await standing_list(cog)
    assert [f.name for f in reply.embed.fields] == ["#2 · Monday 20:00", "#1 · Tuesday 21:00"]
    tuesday = reply.field("#1 · Tuesday 21:00").splitlines()
    assert tuesday[1].startswith("Next: 2026-12-01, decided at 20:30 CET")
    assert tuesday[2] == "Last decision (2026-11-24): not enough players: 2 of 5"
    [(_, note, _)] = rig.h.poster.posts
    assert note.startswith("Not enough players for Tuesday 21:00: 2 of 5 looking")


async def test_a_session_just_after_midnight_is_listed_as_decided_the_evening_before(rig: Rig) -> None:
    reply = await standing_add(PromoteCog(rig.bot, rig.engine), weekday="wed", start="00:15")
    assert reply.embed.description.splitlines()[1].startswith("Next: 2026-11-25, decided 2026-11-24 at 23:45 CET")


async def test_standing_list_without_sessions_says_how_to_add_one(rig: Rig) -> None:
    reply = await standing_list(PromoteCog(rig.bot, rig.engine))
    assert reply.embed.description == "None yet: `/promote standing add` adds one."


async def test_standing_list_of_25_sessions_with_the_longest_hostile_titles_fits_discord(rig: Rig) -> None:
    title = (HOSTILE * 5)[:100]
    for n in range(25):
        await rig.h.engine.standing.add(
            rig.h.actor(), weekday=list(Weekday)[n % 7], start_at=time(n // 7, 0), quorum=1000, title=title,
        )
    reply = await standing_list(PromoteCog(rig.bot, rig.engine))
    assert not check_discord_limits(None, [reply.embed])
    assert len(reply.embed.fields) <= EMBED_LIMITS["fields"]
    shown = len(reply.embed.fields)
    assert shown == 25 or reply.embed.footer.text == f"… and {25 - shown} more (the API lists them all)."
    inert(reply)


async def test_standing_remove_stops_its_decisions(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    await standing_add(cog)
    i = interaction(member(PROMOTER_ID))
    await PromoteCog.standing_remove.callback(cog, i, session_id=1)
    assert only_reply(i).content == (
        "Standing session 1 (Tuesday 21:00) removed: it is not decided again. A campaign it already created "
        "stays as it is."
    )
    await rig.h.run_evening()
    assert await rig.h.engine.campaign_store.for_date(DAY) is None and rig.h.poster.posts == []
    again = interaction(member(PROMOTER_ID))
    with pytest.raises(NotFound, match=r"There is no standing session 1\.$"):
        await PromoteCog.standing_remove.callback(cog, again, session_id=1)
    no_reply(again)


async def test_standing_commands_are_for_promoters(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    player = member(PLAYER_ID, "Player")
    for call, kwargs in (
        (PromoteCog.standing_add, {"weekday": "tue", "start": "21:00", "quorum": 3, "include_available": False,
                                   "include_maybe": False, "title": None}),
        (PromoteCog.standing_list, {}),
        (PromoteCog.standing_remove, {"session_id": 1}),
    ):
        i = interaction(player)
        with pytest.raises(NotPromoter):
            await call.callback(cog, i, **kwargs)
        no_reply(i)
    assert await rig.h.engine.standing_store.active() == []


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"start": "21:60"}, InvalidInput, r"The start is a time as HH:MM"),
        ({"title": "a\nb"}, InvalidInput, "A title has 1 to 100 characters"),
        ({"quorum": 0}, InvalidInput, "A quorum is a number of players from 1 to 1000."),
    ],
)
async def test_standing_add_refuses_bad_options_and_stores_nothing(
    rig: Rig, options: dict[str, object], error: type[Exception], message: str
) -> None:
    i = interaction(member(PROMOTER_ID))
    values = {"weekday": "tue", "start": "21:00", "quorum": 3, "include_available": False, "include_maybe": False,
              "title": None, **options}
    with pytest.raises(error, match=message):
        await PromoteCog.standing_add.callback(PromoteCog(rig.bot, rig.engine), i, **values)
    no_reply(i)
    assert await rig.h.engine.standing_store.active() == []


async def test_a_second_session_in_the_same_slot_is_refused(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    await standing_add(cog)
    with pytest.raises(StandingExists):
        await standing_add(cog, quorum=2)


# -- the evening on the board -----------------------------------------------------------------------


async def board(rig: Rig) -> Reply:
    i = interaction(member(PLAYER_ID, "Player"))
    await AvailabilityCog.board.callback(AvailabilityCog(rig.bot, rig.engine), i)
    return only_reply(i)


async def test_the_board_names_tonight_s_campaign_and_its_start(rig: Rig) -> None:
    assert (await board(rig)).embed.description is None
    await rig.h.engine.promote.create(rig.h.actor(), start_at=time(21, 30), title=HOSTILE)
    reply = await board(rig)
    assert reply.embed.description.endswith("starts at 21:30 CET: it is promoted.")
    inert(reply)


async def test_the_board_names_a_standing_session_still_to_be_decided_today(rig: Rig) -> None:
    await rig.h.engine.standing.add(rig.h.actor(), weekday=Weekday.TUE, start_at=time(21, 0), quorum=4,
                                    title="Tuesday raid")
    await rig.h.engine.standing.add(rig.h.actor(), weekday=Weekday.WED, start_at=time(21, 0), quorum=4)
    reply = await board(rig)
    assert reply.embed.description == "**Tuesday raid** (21:00) happens if 4 players are up for it at 20:30 CET."
    rig.h.clock.set(local(DAY, 20, 0) + timedelta(minutes=40))  # decided (below quorum): nothing to come today
    await rig.h.engine.dispatcher.run_until(rig.h.clock.now())
    assert (await board(rig)).embed.description is None
    [view, _] = await rig.h.engine.standing.sessions(rig.h.actor())
    assert view.last is not None and view.last.outcome is DecisionOutcome.BELOW_QUORUM
