"""/available and /availability board, including the persistent board buttons."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cogs.availability import (
    ASK_CONSENT,
    CONSENT_GIVEN,
    CONSENT_REFUSED,
    AvailabilityCog,
    BoardButton,
    BoardView,
    ConsentButton,
    ConsentView,
)
from services.errors import InvalidInput, NotLinked
from services.models import PlayerStatus
from tests.cogs.fakes import (
    DAY,
    Rig,
    interaction,
    make_rig,
    member,
    no_reply,
    only_reply,
    press,
    replies_of,
    user,
    views_of,
)

ME = 3000
BOARD_IDS = [
    "rallypoint:board:LOOKING",
    "rallypoint:board:AVAILABLE",
    "rallypoint:board:MAYBE",
    "rallypoint:board:NOT_PLAYING",
]
CONSENT_IDS = ["rp:consent:yes", "rp:consent:no"]


@pytest.fixture
async def rig(tmp_path):
    rig = await make_rig(tmp_path / "rp.sqlite3")
    yield rig
    await rig.close()


async def stored(rig: Rig, day: date = DAY, discord_id: int = ME) -> PlayerStatus | None:
    player = await rig.h.engine.player_store.by_discord_id(discord_id)
    assert player is not None
    return await rig.h.engine.player_store.availability(player.id, day)


async def available(rig: Rig, status: str, date: str | None = None, who=None):
    i = interaction(who or member(ME, "Mia"))
    await AvailabilityCog.available.callback(AvailabilityCog(rig.bot, rig.engine), i, status=status, date=date)
    return only_reply(i)


# -- /available ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(PlayerStatus))
async def test_available_stores_each_status_for_today(rig: Rig, status: PlayerStatus) -> None:
    reply = await available(rig, status.value)
    assert reply.ephemeral
    said = f"Your status for 2026-11-24 is set to **{status.value}**."
    # A player who never chose is offered the one-tap opt-in with any status a campaign could reach.
    if status is PlayerStatus.NOT_PLAYING:
        assert reply.content == said and reply.view is None
    else:
        assert reply.content == f"{said}\n{ASK_CONSENT}"
        assert isinstance(reply.view, ConsentView)
    assert await stored(rig) is status


async def test_available_clear_removes_the_status(rig: Rig) -> None:
    await available(rig, "LOOKING")
    reply = await available(rig, "clear")
    assert reply.ephemeral and reply.content == "Your status for 2026-11-24 is cleared."
    assert await stored(rig) is None


async def test_available_changes_a_status_rather_than_adding_one(rig: Rig) -> None:
    await available(rig, "LOOKING")
    await available(rig, "MAYBE")
    board = await rig.h.engine.players.board()
    assert [(e.player.display_name, e.status) for e in board.entries] == [("Mia", PlayerStatus.MAYBE)]


@pytest.mark.parametrize("offset", [-1, 6, 28])
async def test_available_for_a_date_in_range_stores_that_date_only(rig: Rig, offset: int) -> None:
    day = DAY + timedelta(days=offset)
    reply = await available(rig, "AVAILABLE", day.isoformat())
    assert reply.content.startswith(f"Your status for {day.isoformat()} is set to **AVAILABLE**.")
    assert await stored(rig, day) is PlayerStatus.AVAILABLE
    assert await stored(rig, DAY) is None


@pytest.mark.parametrize("offset", [-2, 29, 4000])
async def test_available_for_a_date_out_of_range_is_refused_and_stores_nothing(rig: Rig, offset: int) -> None:
    await available(rig, "MAYBE")  # what is already stored must stay
    day = DAY + timedelta(days=offset)
    i = interaction(member(ME, "Mia"))
    with pytest.raises(InvalidInput, match=r"date must be between 2026-11-23 and 2026-12-22"):
        await AvailabilityCog.available.callback(
            AvailabilityCog(rig.bot, rig.engine), i, status="LOOKING", date=day.isoformat()
        )
    no_reply(i)
    assert await stored(rig, day) is None
    assert await stored(rig, DAY) is PlayerStatus.MAYBE


@pytest.mark.parametrize(
    "bad", ["24.11.2026", "2026-11-31", "next friday", "2026-11-24T21:00", "٢٠٢٦-١١-٢٤", "x" * 6000]
)
async def test_available_with_a_malformed_date_is_refused_and_stores_nothing(rig: Rig, bad: str) -> None:
    i = interaction(member(ME, "Mia"))
    with pytest.raises(InvalidInput, match=r"is not a date; use YYYY-MM-DD"):
        await AvailabilityCog.available.callback(AvailabilityCog(rig.bot, rig.engine), i, status="LOOKING", date=bad)
    no_reply(i)
    assert await rig.h.engine.player_store.by_discord_id(ME) is None  # parsed before anything is stored


@pytest.mark.parametrize("bad", ["   ", " 2026-11-24", "20261124", "2026-W48-2"])
async def test_available_takes_the_date_exactly_as_the_api_does(rig: Rig, bad: str) -> None:
    i = interaction(member(ME, "Mia"))
    with pytest.raises(InvalidInput, match=r"is not a date; use YYYY-MM-DD"):
        await AvailabilityCog.available.callback(AvailabilityCog(rig.bot, rig.engine), i, status="LOOKING", date=bad)
    no_reply(i)
    assert await rig.h.engine.player_store.by_discord_id(ME) is None


async def test_available_for_a_non_member_is_not_linked_and_creates_nothing(rig: Rig) -> None:
    i = interaction(user(ME), guild_id=None)
    with pytest.raises(NotLinked):
        await AvailabilityCog.available.callback(AvailabilityCog(rig.bot, rig.engine), i, status="LOOKING", date=None)
    no_reply(i)
    assert await rig.h.engine.player_store.by_discord_id(ME) is None


# -- /availability board -------------------------------------------------------------------------


async def test_board_is_public_with_four_stable_buttons_and_no_timeout(rig: Rig) -> None:
    await rig.h.add_player(1, "Ana")
    await rig.h.add_player(2, "Bor", status=PlayerStatus.MAYBE)
    i = interaction(member(ME, "Mia"))
    await AvailabilityCog.board.callback(AvailabilityCog(rig.bot, rig.engine), i)

    reply = only_reply(i)
    assert reply.method == "send_message" and not reply.ephemeral  # everyone sees the board
    assert reply.embed.title == "Who's playing tonight? · 2026-11-24"
    assert reply.field("🟢 Looking (1)") == "Ana"
    assert reply.field("🟡 Maybe (1)") == "Bor"
    assert reply.field("🔵 Available (0)") == "—"
    assert reply.field("⚪ Not Playing (0)") == "—"
    view = reply.view
    assert isinstance(view, BoardView)
    assert view.timeout is None and view.is_persistent()
    assert [b.custom_id for b in view.children] == BOARD_IDS
    assert [b.label for b in view.children] == ["Looking", "Available", "Maybe", "Not Playing"]


async def test_cog_load_registers_the_persistent_views(rig: Rig) -> None:
    await AvailabilityCog(rig.bot, rig.engine).cog_load()
    [(board, board_message), (consent, consent_message)] = views_of(rig.bot)
    assert isinstance(board, BoardView) and board_message is None
    assert [b.custom_id for b in board.children] == BOARD_IDS
    assert isinstance(consent, ConsentView) and consent_message is None and consent.is_persistent()
    assert [b.custom_id for b in consent.children] == CONSENT_IDS


def button(view: BoardView, status: PlayerStatus) -> BoardButton:
    [item] = [b for b in view.children if isinstance(b, BoardButton) and b.status is status]
    return item


async def test_pressing_a_board_button_stores_the_status_and_updates_the_counts(rig: Rig) -> None:
    await rig.h.add_player(1, "Ana")
    cog = AvailabilityCog(rig.bot, rig.engine)
    post = interaction(member(ME, "Mia"))
    await AvailabilityCog.board.callback(cog, post)
    view = only_reply(post).view

    await rig.h.add_player(ME, "Mia", status=None)  # Mia turned promotions on before: nothing to ask
    click = interaction(member(ME, "Mia"))
    await press(view, button(view, PlayerStatus.AVAILABLE), click)
    assert await stored(rig) is PlayerStatus.AVAILABLE
    reply = only_reply(click)
    assert reply.method == "edit_message"
    assert reply.field("🔵 Available (1)") == "Mia"
    assert reply.field("🟢 Looking (1)") == "Ana"
    assert isinstance(reply.view, BoardView) and reply.view.is_persistent()

    again = interaction(member(ME, "Mia"))
    await press(reply.view, button(reply.view, PlayerStatus.LOOKING), again)
    assert await stored(rig) is PlayerStatus.LOOKING
    updated = only_reply(again)
    assert updated.field("🟢 Looking (2)") == "Ana, Mia"
    assert updated.field("🔵 Available (0)") == "—"


async def test_the_registered_view_handles_presses_on_boards_from_before_a_restart(rig: Rig) -> None:
    cog = AvailabilityCog(rig.bot, rig.engine)
    await cog.cog_load()
    [(view, _), _] = views_of(rig.bot)
    click = interaction(member(ME, "Mia"))
    await press(view, button(view, PlayerStatus.NOT_PLAYING), click)
    assert await stored(rig) is PlayerStatus.NOT_PLAYING
    assert only_reply(click).field("⚪ Not Playing (1)") == "Mia"


async def test_a_refused_board_press_gets_a_polite_ephemeral_answer(rig: Rig) -> None:
    cog = AvailabilityCog(rig.bot, rig.engine)
    view = BoardView(cog)
    click = interaction(user(ME), guild_id=None)
    await press(view, button(view, PlayerStatus.LOOKING), click)
    assert await rig.h.engine.player_store.by_discord_id(ME) is None
    reply = only_reply(click)
    assert reply.ephemeral
    assert reply.content == "You need to be a member of the community's Discord server."


# -- the one-tap opt-in ----------------------------------------------------------------------------


def consent_button(view: ConsentView, allow: bool) -> ConsentButton:
    [item] = [b for b in view.children if isinstance(b, ConsentButton) and b.allow is allow]
    return item


# (what Mia chose before, the status she sets) → whether she is asked
ASKED = [
    (None, "LOOKING", True),
    (None, "AVAILABLE", True),
    (None, "MAYBE", True),
    (None, "NOT_PLAYING", False),
    (None, "clear", False),
    (True, "LOOKING", False),  # said yes before
    (False, "LOOKING", False),  # said no before: not asked again
]


@pytest.mark.parametrize(("chose", "status", "asked"), ASKED)
async def test_only_a_player_who_never_chose_is_asked(rig: Rig, chose: bool | None, status: str, asked: bool) -> None:
    if chose is not None:
        await rig.h.engine.players.update_preferences(rig.h.actor(ME, "Mia"), allow_promotions=chose)
    reply = await available(rig, status)
    assert isinstance(reply.view, ConsentView) is asked
    assert (ASK_CONSENT in (reply.content or "")) is asked


@pytest.mark.parametrize(("allow", "answer"), [(True, CONSENT_GIVEN), (False, CONSENT_REFUSED)])
async def test_the_answer_is_stored_as_the_players_choice(rig: Rig, allow: bool, answer: str) -> None:
    asked = await available(rig, "LOOKING")
    assert isinstance(asked.view, ConsentView)
    click = interaction(member(ME, "Mia"))
    await press(asked.view, consent_button(asked.view, allow), click)

    reply = only_reply(click)
    assert reply.method == "edit_message" and reply.content == answer and reply.view is None
    player = await rig.h.engine.player_store.by_discord_id(ME)
    assert player is not None
    prefs = await rig.h.engine.player_store.preferences(player.id)
    assert prefs.allow_promotions is allow and prefs.promotions_chosen
    preview = await rig.h.engine.promote.preview(rig.h.actor())
    assert ("Mia" in [r.player.display_name for r in preview.recipients]) is allow
    assert preview.not_opted_in == 0


async def test_ping_me_tonight_works_after_a_restart(rig: Rig) -> None:
    asked = await available(rig, "LOOKING")
    assert isinstance(asked.view, ConsentView)
    # A new process: the view that answers is the one registered at start-up, not the one sent.
    cog = AvailabilityCog(rig.bot, rig.engine)
    await cog.cog_load()
    [_, (registered, _)] = views_of(rig.bot)
    assert isinstance(registered, ConsentView)
    click = interaction(member(ME, "Mia"))
    await press(registered, consent_button(registered, True), click)
    assert only_reply(click).content == CONSENT_GIVEN
    preview = await rig.h.engine.promote.preview(rig.h.actor())
    assert [r.player.display_name for r in preview.recipients] == ["Mia"]


async def test_a_board_press_asks_the_presser_alone(rig: Rig) -> None:
    cog = AvailabilityCog(rig.bot, rig.engine)
    view = BoardView(cog)
    click = interaction(member(ME, "Mia"))
    await press(view, button(view, PlayerStatus.LOOKING), click)

    [reply] = replies_of(click)
    assert reply.method == "edit_message" and isinstance(reply.view, BoardView)  # the public board
    [args] = click.followup.send.await_args_list
    assert args.args == (ASK_CONSENT,) and args.kwargs["ephemeral"] is True
    assert isinstance(args.kwargs["view"], ConsentView)
