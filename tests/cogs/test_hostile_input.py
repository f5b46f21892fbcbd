"""Hostile display names and option values: nothing formats, pings or breaks Discord's limits."""

from __future__ import annotations

import pytest

from cogs.availability import AvailabilityCog, BoardButton
from cogs.promote import PromoteCog
from services.models import PlayerStatus
from tests.cogs.fakes import (
    EMBED_LIMITS,
    Reply,
    Rig,
    check_discord_limits,
    interaction,
    make_rig,
    member,
    only_reply,
    press,
    views_of,
)
from tests.support import PROMOTER_ID

HOSTILE = (
    "@everyone **Boss** <@123456789012345678> <@&876543210987654321> @here `x` ||spoiler|| "
    "[site](https://evil.example)"
)
ME = 3000
# Discord display names (nickname or global name) are at most 32 characters.
LONGEST_NAME = 32


@pytest.fixture
async def rig(tmp_path):
    rig = await make_rig(tmp_path / "rp.sqlite3")
    yield rig
    await rig.close()


def assert_inert(reply: Reply) -> None:
    """No raw mention or markdown of a hostile name reaches the user."""
    text = "\n".join(reply.texts())
    for raw in (
        "@everyone",
        "@here",
        "<@123456789012345678>",
        "<@&876543210987654321>",
        "**Boss**",
        "||spoiler||",
        "`x`",
    ):
        assert raw not in text, f"{raw!r} is not escaped in {text!r}"


async def test_hostile_names_are_escaped_in_the_preview(rig: Rig) -> None:
    await rig.h.add_player(1, HOSTILE[:100])
    i = interaction(member(PROMOTER_ID, HOSTILE))
    await PromoteCog.preview.callback(PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False)
    reply = only_reply(i)
    assert "Boss" in reply.field("Who")  # shown, but inert
    assert_inert(reply)


async def test_hostile_initiator_name_is_escaped_in_the_status(rig: Rig) -> None:
    await rig.h.add_player(1, "Ana")
    await rig.h.add_player(PROMOTER_ID, HOSTILE[:100], status=None)
    await rig.h.engine.promote.create(rig.h.actor(name=HOSTILE))
    i = interaction(member(ME, "Mia"))
    await PromoteCog.status.callback(PromoteCog(rig.bot, rig.engine), i, date=None)
    reply = only_reply(i)
    assert "started by" in reply.embed.description
    assert_inert(reply)


async def test_hostile_names_are_escaped_on_the_board_and_after_a_press(rig: Rig) -> None:
    await rig.h.add_player(1, HOSTILE[:100])
    cog = AvailabilityCog(rig.bot, rig.engine)
    post = interaction(member(ME, "Mia"))
    await AvailabilityCog.board.callback(cog, post)
    assert_inert(only_reply(post))

    view = only_reply(post).view
    [looking] = [b for b in view.children if isinstance(b, BoardButton) and b.status is PlayerStatus.LOOKING]
    await rig.h.add_player(ME, HOSTILE[:100], status=None)  # opted in: the press gets no consent question
    click = interaction(member(ME, HOSTILE))
    await press(view, looking, click)
    reply = only_reply(click)
    assert reply.field("🟢 Looking (2)").count("Boss") == 2
    assert_inert(reply)


async def test_an_overlong_display_name_is_cut_to_100_characters(rig: Rig) -> None:
    await rig.h.add_player(1, "Ana")
    i = interaction(member(PROMOTER_ID, "N" * 5000))
    await PromoteCog.schedule.callback(
        PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False, dry_run=True
    )
    reply = only_reply(i)
    assert reply.field("Who") == "🟢 " + "N" * 100 + " → discord"  # the dry run: the initiator alone
    player = await rig.h.engine.player_store.by_discord_id(PROMOTER_ID)
    assert player.display_name == "N" * 100


async def test_a_blank_display_name_falls_back_to_the_user_id(rig: Rig) -> None:
    i = interaction(member(ME, "   "))
    await AvailabilityCog.available.callback(AvailabilityCog(rig.bot, rig.engine), i, status="LOOKING", date=None)
    player = await rig.h.engine.player_store.by_discord_id(ME)
    assert player.display_name == str(ME)


async def test_many_recipients_are_listed_while_they_fit_then_counted(rig: Rig) -> None:
    for n in range(120):
        await rig.h.add_player(100 + n, f"P{n:03d}")
    i = interaction(member(PROMOTER_ID))
    await PromoteCog.preview.callback(PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False)
    who = only_reply(i).field("Who")
    lines = who.splitlines()
    assert len(who) <= 1024
    shown = len(lines) - 1
    assert 0 < shown < 120 and lines[-1] == f"… and {120 - shown} more"
    assert only_reply(i).field("Recipients") == "120"


async def test_a_long_board_ends_with_a_count(rig: Rig) -> None:
    for n in range(300):
        await rig.h.add_player(100 + n, f"P{n:03d}")
    i = interaction(member(ME, "Mia"))
    await AvailabilityCog.board.callback(AvailabilityCog(rig.bot, rig.engine), i)
    field = only_reply(i).field("🟢 Looking (300)")
    assert len(field) <= 1024
    shown = field.count("P")
    assert field.startswith("P000, P001") and field.endswith(f", … and {300 - shown} more")


# -- Discord's embed limits with long (but legal) names ------------------------------------------


def long_name(n: int) -> str:
    """A legal 32-character Discord display name, unique per n."""
    return f"{n:02d}" + "abcdefghijklmnopqrstuvwxyz0123"[: LONGEST_NAME - 2]


async def test_preview_with_25_long_names_stays_within_discord_limits(rig: Rig) -> None:
    for n in range(25):
        await rig.h.add_player(100 + n, long_name(n))
    i = interaction(member(PROMOTER_ID))
    await PromoteCog.preview.callback(PromoteCog(rig.bot, rig.engine), i, include_available=False, include_maybe=False)
    reply = only_reply(i)  # the fake refuses an oversized embed, as Discord's HTTP 400 would
    assert len(reply.field("Who")) <= EMBED_LIMITS["field.value"]
    assert reply.field("Recipients") == "25"


async def test_board_with_31_long_names_stays_within_discord_limits(rig: Rig) -> None:
    for n in range(31):
        await rig.h.add_player(100 + n, long_name(n))
    i = interaction(member(ME, "Mia"))
    await AvailabilityCog.board.callback(AvailabilityCog(rig.bot, rig.engine), i)
    reply = only_reply(i)
    field = reply.field("🟢 Looking (31)")
    shown = field.count("abcdefghijklmnopqrstuvwxyz0123")
    assert len(field) <= EMBED_LIMITS["field.value"]
    assert field.endswith(f"… and {31 - shown} more") and shown >= 25


async def test_pressing_a_big_board_still_updates_it(rig: Rig) -> None:
    for n in range(31):
        await rig.h.add_player(100 + n, long_name(n))
    cog = AvailabilityCog(rig.bot, rig.engine)
    await cog.cog_load()
    [(view, _), _] = views_of(rig.bot)
    [maybe] = [b for b in view.children if isinstance(b, BoardButton) and b.status is PlayerStatus.MAYBE]
    await rig.h.add_player(ME, "Mia", status=None)  # opted in: the press gets no consent question
    click = interaction(member(ME, "Mia"))
    await press(view, maybe, click)
    player = await rig.h.engine.player_store.by_discord_id(ME)
    assert (
        await rig.h.engine.player_store.availability(player.id, rig.h.engine.players.today()) is PlayerStatus.MAYBE
    )
    assert only_reply(click).field("🟡 Maybe (1)") == "Mia"


async def test_the_limit_checker_itself_catches_an_oversized_field() -> None:
    import discord

    embed = discord.Embed(title="t").add_field(name="Who", value="x" * 1025)
    assert check_discord_limits(None, [embed]) == ["field 'Who' value is 1025 characters (limit 1024)"]
    assert check_discord_limits("y" * 2001, []) == ["content is 2001 characters (limit 2000)"]
    assert check_discord_limits("ok", [discord.Embed(title="t").add_field(name="a", value="b")]) == []
