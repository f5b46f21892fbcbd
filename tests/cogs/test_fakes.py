"""The fakes are strict: a cog that misuses discord.py's API fails under them, as it would live."""

from __future__ import annotations

import discord
import pytest

from cogs.promote import ConfirmSchedule, Evening
from services.linking import LinkingService
from services.models import Actor
from tests.cogs.fakes import bot_stub, interaction, member, only_reply, settings, strict, user


async def test_an_attribute_discord_py_does_not_have_fails() -> None:
    i = interaction()
    with pytest.raises(AttributeError):
        i.respond  # noqa: B018
    with pytest.raises(AttributeError):
        member().nickname  # noqa: B018
    with pytest.raises(AttributeError):
        i.response.send  # noqa: B018


async def test_a_keyword_discord_py_does_not_take_fails() -> None:
    i = interaction()
    with pytest.raises(TypeError):
        await i.response.send_message("hi", ephermal=True)
    with pytest.raises(TypeError):
        await i.response.edit_message("positional content is not accepted")
    with pytest.raises(TypeError):
        await i.edit_original_response(contents="x")
    with pytest.raises(TypeError):
        await strict(LinkingService).request_telegram_link(Actor(1, True), "extra")


async def test_an_interaction_is_answered_once() -> None:
    i = interaction()
    await i.response.send_message("first", ephemeral=True)
    assert i.response.is_done()
    with pytest.raises(discord.InteractionResponded):
        await i.response.edit_message(content="second")
    assert only_reply(i).content == "first"


async def test_an_oversized_answer_is_refused_as_discord_would() -> None:
    i = interaction()
    with pytest.raises(AssertionError, match="content is 2001 characters"):
        await i.response.send_message("x" * 2001)


async def test_members_are_members_and_users_are_not() -> None:
    assert isinstance(member(), discord.Member)
    assert not isinstance(user(1), discord.Member)


async def test_the_bot_stub_refuses_a_view_that_cannot_persist() -> None:
    bot = bot_stub(settings())
    view = ConfirmSchedule(None, Actor(1, True), Evening())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not persistent"):
        bot.add_view(view)


async def test_the_bot_stub_has_only_what_the_real_bot_has() -> None:
    bot = bot_stub(settings())
    assert bot.settings.discord.guild_id == settings().discord.guild_id
    with pytest.raises(AttributeError):
        bot.engine  # noqa: B018 - the cogs get the engine in their constructor, not from the bot
    with pytest.raises(AttributeError):
        bot.linking  # noqa: B018
    with pytest.raises(TypeError):
        await bot.wait_until_ready(timeout=1)
