"""The one CommandTree error handler: domain errors become polite ephemeral replies, the rest is logged."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from discord import AppCommandOptionType, app_commands

from bot.tree import RallypointTree
from cogs.promote import PromoteCog
from services.errors import InvalidInput, NotLinked, NotPromoter, TooManyRequests
from tests.cogs.fakes import OTHER_GUILD_ID, Rig, interaction, make_rig, member, only_reply, strict

GENERIC = "Something went wrong on our side. Please try again in a moment."


@pytest.fixture
async def rig(tmp_path):
    rig = await make_rig(tmp_path / "rp.sqlite3")
    yield rig
    await rig.close()


async def handle(rig: Rig, i, error: Exception, cog: PromoteCog | None = None) -> None:
    """What discord.py does with an exception from a callback: wrap it, then call tree.on_error."""
    command = (cog or PromoteCog(rig.bot, rig.engine)).preview
    wrapped = (
        error
        if isinstance(error, app_commands.AppCommandError)
        else (app_commands.CommandInvokeError(command, error))
    )
    await RallypointTree.on_error(strict(RallypointTree), i, wrapped)


async def test_a_non_promoter_gets_a_polite_ephemeral_refusal(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    i = interaction(member(2000, "Player"), command=cog.preview)
    with pytest.raises(NotPromoter) as caught:
        await PromoteCog.preview.callback(cog, i, include_available=False, include_maybe=False)
    await handle(rig, i, caught.value, cog)

    reply = only_reply(i)
    assert reply.ephemeral and reply.content == "Only promoters can do that."


async def test_a_non_member_is_told_to_join_the_server(rig: Rig) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    i = interaction(member(2000, "Visitor"), guild_id=OTHER_GUILD_ID, command=cog.preview)
    with pytest.raises(NotLinked) as caught:
        await PromoteCog.preview.callback(cog, i, include_available=False, include_maybe=False)
    await handle(rig, i, caught.value, cog)

    reply = only_reply(i)
    assert reply.ephemeral
    assert reply.content == "You need to be a member of the community's Discord server."


@pytest.mark.parametrize(
    "error",
    [InvalidInput("date must be between 2026-11-23 and 2026-12-22"), TooManyRequests("Slow down.", 30.0)],
)
async def test_every_domain_error_shows_its_own_message(rig: Rig, error: Exception, caplog) -> None:
    i = interaction()
    with caplog.at_level(logging.ERROR):
        await handle(rig, i, error)
    reply = only_reply(i)
    assert reply.ephemeral and reply.content == error.message
    assert caplog.records == []  # expected refusals are not errors


async def test_an_unexpected_error_is_logged_and_answered_generically(rig: Rig, caplog) -> None:
    cog = PromoteCog(rig.bot, rig.engine)
    i = interaction(command=cog.preview)
    with caplog.at_level(logging.ERROR, logger="bot.tree"):
        await handle(rig, i, RuntimeError("database is locked: /srv/secret/path"), cog)

    reply = only_reply(i)
    assert reply.ephemeral and reply.content == GENERIC
    assert "database" not in reply.content
    [record] = [r for r in caplog.records if r.name == "bot.tree"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "command promote preview failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


ANY_ALLOWED_MENTIONS = mock.ANY  # always AllowedMentions.none(); checked in test_fakes


async def test_when_the_command_already_answered_the_error_goes_to_a_followup(rig: Rig) -> None:
    i = interaction()
    await i.response.defer(ephemeral=True, thinking=True)
    await handle(rig, i, NotPromoter())
    i.followup.send.assert_awaited_once_with(
        "Only promoters can do that.", ephemeral=True, allowed_mentions=ANY_ALLOWED_MENTIONS
    )


async def test_a_failed_check_is_answered(rig: Rig) -> None:
    i = interaction()
    await handle(rig, i, app_commands.CheckFailure("nope"))
    reply = only_reply(i)
    assert reply.ephemeral and reply.content == "You can't use this command here."


async def test_a_value_that_cannot_be_converted_is_named(rig: Rig) -> None:
    class Digits(app_commands.Transformer):
        async def transform(self, interaction, value):  # pragma: no cover - never called
            return value

    i = interaction()
    await handle(rig, i, app_commands.TransformerError("12ab", AppCommandOptionType.string, Digits()))
    reply = only_reply(i)
    assert reply.ephemeral and reply.content == "That value is not valid: '12ab'."
