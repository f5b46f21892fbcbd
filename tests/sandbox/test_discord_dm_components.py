"""Buttons on DMs: a user presses a button on a message the bot sent them, with the real discord.py client.

The bot handles `rp:rsvp:<campaign>:<answer>` with a `discord.ui.DynamicItem` (nothing registered per
message, so it survives restarts) and answers in each of the ways Discord allows: an ephemeral reply
(type 4, flags 64), an update of the message (type 7), a deferred update then an edit (type 6).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot.sandbox.discord_emulator import DiscordEmulator
from tests.sandbox.discord_fixtures import (
    ALICE,
    BOB,
    CAROL,
    GENERAL,
    STEP,
    TOKEN,
    client_options,
    connected,
    intents,
    running_emulator,
)

ANSWERS = {"in": "I'm in", "late": "Running late", "out": "Can't tonight"}


def rsvp_row(campaign: int, chosen: str | None = None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for answer in ANSWERS:
        view.add_item(RsvpButton(campaign, answer, chosen=answer == chosen))
    return view


RSVP_TEMPLATE = r"rp:rsvp:(?P<campaign>\d+):(?P<answer>in|late|out)"


class RsvpButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=RSVP_TEMPLATE):
    def __init__(self, campaign: int, answer: str, *, chosen: bool = False) -> None:
        style = discord.ButtonStyle.success if chosen else discord.ButtonStyle.secondary
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=ANSWERS[answer], style=style, custom_id=f"rp:rsvp:{campaign}:{answer}"
        )
        super().__init__(button)
        self.campaign = campaign
        self.answer = answer

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RsvpButton:
        return cls(int(match["campaign"]), match["answer"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        assert isinstance(bot, RsvpBot)
        bot.seen.append(interaction)
        try:
            await self._answer(interaction, bot.mode)
        except discord.HTTPException as exc:
            bot.failures.append(exc)

    async def _answer(self, interaction: discord.Interaction, mode: str) -> None:
        if mode == "ephemeral":
            await interaction.response.send_message(f"Noted: {ANSWERS[self.answer]}", ephemeral=True)
        elif mode == "update":
            await interaction.response.edit_message(view=rsvp_row(self.campaign, self.answer))
            await interaction.followup.send(f"Noted: {ANSWERS[self.answer]}", ephemeral=True)
        else:  # "deferred": acknowledge at once, edit the message afterwards
            await interaction.response.defer()
            await interaction.edit_original_response(view=rsvp_row(self.campaign, self.answer))


class RsvpBot(commands.Bot):
    def __init__(self, mode: str = "ephemeral") -> None:
        super().__init__(command_prefix="!", intents=intents(), **client_options())
        self.mode = mode
        self.seen: list[discord.Interaction] = []
        self.failures: list[discord.HTTPException] = []

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RsvpButton)

    async def invite(self, user_id: int, campaign: int = 7) -> discord.Message:
        user = await self.fetch_user(user_id)
        return await user.send("Kick-off in 15 minutes. Are you in?", view=rsvp_row(campaign))


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with running_emulator() as emu:
        yield emu


async def test_a_press_in_a_dm_is_a_dm_interaction_and_gets_an_ephemeral_answer(emulator: DiscordEmulator) -> None:
    async with connected(RsvpBot()) as bot:
        sent = await bot.invite(ALICE)
        record = await emulator.press_dm_button(ALICE, "rp:rsvp:7:late")
        event = await record.wait_response(STEP)
        assert (event.callback_type, event.data["data"]["flags"]) == (4, 64)
        assert record.ephemeral_texts() == ["Noted: Running late"]
        # What Discord sends for a DM: `user`, never `member` or `guild_id`; the DM channel; the message.
        payload = record.payload
        assert payload["type"] == 3 and payload["context"] == 1
        assert "member" not in payload and "guild_id" not in payload
        assert payload["user"]["id"] == str(ALICE)
        assert payload["channel"]["type"] == 1 and payload["channel_id"] == str(sent.channel.id)
        assert payload["authorizing_integration_owners"] == {"0": "0"}
        assert payload["message"]["id"] == str(sent.id)
        assert [c["custom_id"] for c in emulator.buttons(sent.id)] == [f"rp:rsvp:7:{a}" for a in ANSWERS]
        interaction = bot.seen[0]
        assert interaction.guild_id is None and isinstance(interaction.user, discord.User)
        assert isinstance(interaction.channel, discord.DMChannel)
    # The user sees only the invitation in the DM; the ephemeral answer is theirs alone.
    assert [m["content"] for m in emulator.dm_messages(ALICE)] == ["Kick-off in 15 minutes. Are you in?"]


async def test_update_message_shows_the_answer_on_the_dms_buttons(emulator: DiscordEmulator) -> None:
    async with connected(RsvpBot(mode="update")) as bot:
        sent = await bot.invite(BOB)
        record = await emulator.press_dm_button(BOB, "rp:rsvp:7:in")
        assert (await record.wait_response(STEP)).callback_type == 7
        await record.wait_for(lambda e: e.kind == "followup", STEP, "the ephemeral follow-up")
        assert record.ephemeral_texts() == ["Noted: I'm in"]
        styles = {b["custom_id"]: b["style"] for b in emulator.buttons(sent.id)}
        assert styles == {"rp:rsvp:7:in": 3, "rp:rsvp:7:late": 2, "rp:rsvp:7:out": 2}
        # GET the message through the API: the components are kept as they are now.
        fetched = await sent.channel.fetch_message(sent.id)
        assert [c.custom_id for c in fetched.components[0].children] == [f"rp:rsvp:7:{a}" for a in ANSWERS]  # type: ignore[union-attr]
        # The last answer wins: pressing another button moves the highlight.
        again = await emulator.press_dm_button(BOB, "rp:rsvp:7:out")
        await again.wait_for(lambda e: e.kind == "followup", STEP, "the second follow-up")
        assert emulator.buttons(sent.id)[2]["style"] == 3 and emulator.buttons(sent.id)[0]["style"] == 2


async def test_a_deferred_update_then_an_edit_changes_the_dm(emulator: DiscordEmulator) -> None:
    async with connected(RsvpBot(mode="deferred")) as bot:
        sent = await bot.invite(CAROL, campaign=12)
        record = await emulator.press_dm_button(CAROL, "rp:rsvp:12:out", message_id=sent.id)
        assert (await record.wait_response(STEP)).callback_type == 6
        await record.wait_for(lambda e: e.kind == "edit", STEP, "the edit")
        assert record.ephemeral_texts() == []
        assert [b["style"] for b in emulator.buttons(sent.id)] == [2, 2, 3]
        assert emulator.message(sent.id)["content"] == "Kick-off in 15 minutes. Are you in?"  # type: ignore[index]


async def test_an_answer_after_three_seconds_is_unknown_interaction(emulator: DiscordEmulator) -> None:
    async with connected(RsvpBot()) as bot:
        await bot.invite(ALICE)
        emulator.interaction_response_deadline = 0.0  # every answer is now too late
        record = await emulator.press_dm_button(ALICE, "rp:rsvp:7:in")
        async with asyncio.timeout(STEP):
            while not bot.failures:  # the bot's own state: the emulator is not told when it changes
                await asyncio.sleep(0.01)
        failure = bot.failures[0]
        assert isinstance(failure, discord.NotFound) and failure.code == 10062
        assert record.responses == [] and record.ephemeral_texts() == []


async def test_presses_must_name_a_real_button_in_the_users_own_dm(emulator: DiscordEmulator) -> None:
    async with connected(RsvpBot()) as bot:
        with pytest.raises(ValueError, match="never opened a DM"):
            await emulator.press_dm_button(ALICE, "rp:rsvp:7:in")
        alices = await bot.invite(ALICE)
        await bot.invite(BOB)
        with pytest.raises(ValueError, match="carries a component"):
            await emulator.press_dm_button(ALICE, "rp:rsvp:8:in")
        with pytest.raises(ValueError, match="is in channel"):
            await emulator.press_dm_button(BOB, "rp:rsvp:7:in", message_id=alices.id)
        with pytest.raises(ValueError, match="another user's DM"):
            await emulator.click_button(None, BOB, (alices.id, alices.channel.id), "rp:rsvp:7:in")
        # The newest message carrying the button is the one pressed.
        newer = await bot.invite(ALICE)
        record = await emulator.press_dm_button(ALICE, "rp:rsvp:7:in")
        assert record.component_message_id == newer.id


def row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


def button(custom_id: str | None = "c", *, style: int = 1, label: str = "x", **extra: Any) -> dict[str, Any]:
    data = {"type": 2, "style": style, "label": label, **extra}
    return data if custom_id is None else {**data, "custom_id": custom_id}


@pytest.mark.parametrize(
    ("components", "code"),
    [
        ([row(*(button(f"b{i}") for i in range(6)))], "COMPONENT_LAYOUT_WIDTH_EXCEEDED"),
        ([row(button("same"), button("same", style=2))], "COMPONENT_CUSTOM_ID_DUPLICATED"),
        ([row(button(None))], "BASE_TYPE_REQUIRED"),
        ([row(button("c" * 101))], "BASE_TYPE_BAD_LENGTH"),
        ([row(button(label="l" * 81))], "BASE_TYPE_MAX_LENGTH"),
        ([button()], "UNION_TYPE_CHOICES"),  # a button outside an action row
        ([row(button(f"r{i}")) for i in range(6)], "BASE_TYPE_MAX_LENGTH"),
        ([row()], "COMPONENT_LAYOUT_WIDTH_EXCEEDED"),
        ([row(button(style=5, url="https://example.org"))], "BUTTON_COMPONENT_INVALID"),  # link + custom_id
    ],
)
async def test_components_discord_refuses(emulator: DiscordEmulator, components: list[Any], code: str) -> None:
    url = f"{emulator.api_base_url}/channels/{GENERAL}/messages"
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {TOKEN}"}) as session,
        asyncio.timeout(STEP),
        session.post(url, json={"content": "buttons", "components": components}) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400 and body["code"] == 50035
    assert code in str(body["errors"])
    assert emulator.channel_messages(GENERAL) == []
