"""Answer buttons under a Discord invitation, and /promote need and status, called as discord.py would call
them: the strict fakes of discord.py's own classes, the real engine over a real SQLite file."""

from __future__ import annotations

import re
from typing import Any

import discord
import pytest

from cogs.promote import PromoteCog
from cogs.rsvp import COG_NAME, SOMETHING_WENT_WRONG, RsvpButton, RsvpCog
from services.delivery.discord_rsvp import rsvp_buttons
from services.errors import InvalidInput, NotPromoter, TooLate
from services.messages import RSVP_CONFIRMATIONS, RSVP_REFUSALS
from services.models import PlayerStatus, PreferredChannel, RsvpAnswer, RsvpRefusal
from services.rsvp import DISCORD_TEMPLATE, discord_custom_id
from tests.cogs.fakes import DAY, Rig, interaction, make_rig, member, only_reply, replies_of, user
from tests.support import PROMOTER_ID, local, opted_in

ANA, BOR, DORA, EVA = 1, 2, 4, 5
PLAYER_ID = 2000


@pytest.fixture
async def rig(tmp_path):
    rig = await make_rig(tmp_path / "rp.sqlite3")
    await rig.h.add_player(PROMOTER_ID, "Promoter", status=None)
    await rig.h.add_player(ANA, "Ana")
    await rig.h.add_player(BOR, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram="5002")
    await rig.h.add_player(DORA, "Dora", status=PlayerStatus.AVAILABLE)
    await rig.h.add_player(EVA, "Eva", status=PlayerStatus.MAYBE)
    await rig.h.add_player(PLAYER_ID, "Player", status=None)
    yield rig
    await rig.close()


async def loaded(rig: Rig) -> RsvpCog:
    """The cog as the app adds it: its one DynamicItem registered with the bot, found by name."""
    cog = RsvpCog(rig.bot, rig.engine)
    await cog.cog_load()
    rig.bot.add_dynamic_items.assert_called_once_with(RsvpButton)
    rig.bot.get_cog.side_effect = lambda name: cog if name == COG_NAME else None
    return cog


def dm_press(who: int, name: str, rig: Rig) -> Any:
    """A press in a DM: the user is a plain discord.User and there is no guild."""
    i = interaction(user(who, name), guild_id=None)
    i.client = rig.bot
    return i


async def press(rig: Rig, i: Any, campaign_id: int, answer: RsvpAnswer) -> None:
    """What discord.py's view store does with a press whose custom_id matches the template."""
    custom_id = discord_custom_id(campaign_id, answer)
    match = re.fullmatch(DISCORD_TEMPLATE, custom_id)
    assert match is not None
    base = next(b for b in rsvp_buttons(campaign_id) if b.custom_id == custom_id)
    item = await RsvpButton.from_custom_id(i, base, match)
    await item.callback(i)


async def campaign_after_the_reminder(rig: Rig) -> int:
    created = await rig.engine.promote.create(rig.h.actor())
    await rig.engine.dispatcher.run_until(local(DAY, 20, 46))
    return created.campaign.id


def followups(i: Any) -> list[Any]:
    return i.followup.send.await_args_list


async def test_a_press_is_acknowledged_first_then_stored_shown_on_the_buttons_and_confirmed(rig: Rig) -> None:
    await loaded(rig)
    campaign_id = await campaign_after_the_reminder(rig)
    i = dm_press(ANA, "Ana", rig)
    await press(rig, i, campaign_id, RsvpAnswer.LATE)

    [ack] = replies_of(i)
    assert ack.method == "defer"  # within Discord's 3 s whatever the database does
    [edit] = i.edit_original_response.await_args_list
    view = edit.kwargs["view"]
    assert edit.kwargs["allowed_mentions"].to_dict() == {"parse": []}
    assert [(b.item.custom_id, b.item.label, b.item.style) for b in view.children] == [
        (f"rp:rsvp:{campaign_id}:in", "I'm in", discord.ButtonStyle.secondary),
        (f"rp:rsvp:{campaign_id}:late", "✓ Running late", discord.ButtonStyle.primary),
        (f"rp:rsvp:{campaign_id}:out", "Can't tonight", discord.ButtonStyle.secondary),
    ]
    # Dynamic items: discord.py keeps no view for the message, so the one DynamicItem answers the next press too.
    assert all(isinstance(item, RsvpButton) for item in view.children) and view.timeout is None
    [confirmation] = followups(i)
    assert confirmation.args == (RSVP_CONFIRMATIONS[RsvpAnswer.LATE],)
    assert confirmation.kwargs["ephemeral"] is True
    assert confirmation.kwargs["allowed_mentions"].to_dict() == {"parse": []}
    assert await rig.engine.rsvp_store.latest(campaign_id) == {
        (await rig.engine.player_store.by_discord_id(ANA)).id: RsvpAnswer.LATE  # type: ignore[union-attr]
    }


async def test_the_buttons_as_first_sent_have_their_colours(rig: Rig) -> None:
    styles = [b.style for b in rsvp_buttons(7)]
    assert styles == [discord.ButtonStyle.success, discord.ButtonStyle.primary, discord.ButtonStyle.danger]
    assert [b.label for b in rsvp_buttons(7)] == ["I'm in", "Running late", "Can't tonight"]


async def test_a_press_on_someone_elses_invitation_is_told_politely_and_stores_nothing(rig: Rig) -> None:
    await loaded(rig)
    campaign_id = await campaign_after_the_reminder(rig)
    i = dm_press(DORA, "Dora", rig)  # not in the snapshot (AVAILABLE, not asked)
    await press(rig, i, campaign_id, RsvpAnswer.IN)
    assert [r.method for r in replies_of(i)] == ["defer"]
    i.edit_original_response.assert_not_awaited()
    [refusal] = followups(i)
    assert refusal.args == (RSVP_REFUSALS[RsvpRefusal.NOT_YOURS],) and refusal.kwargs["ephemeral"] is True
    assert await rig.engine.rsvp_store.latest(campaign_id) == {}


async def test_a_press_on_a_cancelled_session_says_so(rig: Rig) -> None:
    await loaded(rig)
    campaign_id = await campaign_after_the_reminder(rig)
    await rig.engine.promote.cancel(rig.h.actor())
    i = dm_press(ANA, "Ana", rig)
    await press(rig, i, campaign_id, RsvpAnswer.IN)
    assert followups(i)[0].args == (RSVP_REFUSALS[RsvpRefusal.CANCELLED],)


async def test_a_failure_to_store_is_answered_politely(rig: Rig) -> None:
    await loaded(rig)
    campaign_id = await campaign_after_the_reminder(rig)
    await rig.engine.db.close()  # the database is gone
    i = dm_press(ANA, "Ana", rig)
    await press(rig, i, campaign_id, RsvpAnswer.IN)
    assert [r.method for r in replies_of(i)] == ["defer"]
    i.edit_original_response.assert_not_awaited()
    assert followups(i)[0].args == (SOMETHING_WENT_WRONG,)


async def test_the_answer_is_confirmed_even_when_the_buttons_cannot_be_updated(rig: Rig) -> None:
    await loaded(rig)
    campaign_id = await campaign_after_the_reminder(rig)
    i = dm_press(ANA, "Ana", rig)

    def gone(*args: Any, **kwargs: Any) -> None:
        raise discord.NotFound(_response(404), {"code": 10008, "message": "Unknown Message"})

    i.edit_original_response.effect = gone
    await press(rig, i, campaign_id, RsvpAnswer.OUT)
    assert followups(i)[0].args == (RSVP_CONFIRMATIONS[RsvpAnswer.OUT],)


def _response(status: int) -> Any:
    class Response:
        reason = "Not Found"

    response = Response()
    response.status = status  # type: ignore[attr-defined]
    return response


async def test_without_the_cog_a_press_is_not_handled(rig: Rig) -> None:
    rig.bot.get_cog.side_effect = lambda name: None
    match = re.fullmatch(DISCORD_TEMPLATE, "rp:rsvp:7:in")
    assert match is not None
    with pytest.raises(TypeError):
        await RsvpButton.from_custom_id(dm_press(ANA, "Ana", rig), rsvp_buttons(7)[0], match)


# -- /promote need and status ----------------------------------------------------------------


async def test_need_asks_and_says_how_many(rig: Rig) -> None:
    created = await rig.engine.promote.create(rig.h.actor())
    i = interaction(member(PROMOTER_ID, "Promoter"))
    await PromoteCog.need.callback(PromoteCog(rig.bot, rig.engine), i, count=2)
    reply = only_reply(i)
    assert reply.ephemeral
    assert reply.content == (
        f"Asking 2 players to join campaign {created.campaign.id} (you need 2 more). "
        "Those who say they are in get the start ping; `/promote status` shows who said yes."
    )
    i = interaction(member(PROMOTER_ID, "Promoter"))
    await PromoteCog.need.callback(PromoteCog(rig.bot, rig.engine), i, count=1)
    assert only_reply(i).content.startswith(f"Nobody else can be asked for campaign {created.campaign.id}")


async def test_need_by_a_player_or_out_of_range_is_refused_before_anything(rig: Rig) -> None:
    await rig.engine.promote.create(rig.h.actor())
    cog = PromoteCog(rig.bot, rig.engine)
    with pytest.raises(NotPromoter):
        await PromoteCog.need.callback(cog, interaction(member(PLAYER_ID, "Player")), count=1)
    with pytest.raises(InvalidInput):
        await PromoteCog.need.callback(cog, interaction(member(PROMOTER_ID, "Promoter")), count=0)
    assert (await rig.engine.need_store.counts(1)).asked == 0


async def test_need_after_the_voice_check_is_too_late(rig: Rig) -> None:
    await rig.engine.promote.create(rig.h.actor())
    await rig.h.run_evening()
    with pytest.raises(TooLate):
        await PromoteCog.need.callback(PromoteCog(rig.bot, rig.engine), interaction(member(PROMOTER_ID)), count=1)


async def test_status_shows_the_answers_and_who_said_yes_to_the_promoter_alone(rig: Rig) -> None:
    await loaded(rig)
    created = await rig.engine.promote.create(rig.h.actor())
    await rig.engine.need.ask(rig.h.actor(), 2)
    await rig.engine.dispatcher.run_until(local(DAY, 18, 1))
    await press(rig, dm_press(DORA, "Dora", rig), created.campaign.id, RsvpAnswer.IN)
    await press(rig, dm_press(ANA, "Ana", rig), created.campaign.id, RsvpAnswer.OUT)

    cog = PromoteCog(rig.bot, rig.engine)
    i = interaction(member(PROMOTER_ID, "Promoter"))
    await PromoteCog.status.callback(cog, i, date=None)
    promoter = only_reply(i)
    assert promoter.field("Answers") == "I'm in: 1 · Running late: 0 · Can't tonight: 1"
    assert promoter.field("We need more") == "Asked 2 · 1 said yes: Dora"
    assert promoter.field("Recipients") == "3"  # Dora took a seat

    i = interaction(member(PLAYER_ID, "Player"))
    await PromoteCog.status.callback(cog, i, date=None)
    player = only_reply(i)
    assert player.field("We need more") == "Asked 2 · 1 said yes"  # counts only
    assert "Dora" not in "\n".join(player.texts())
