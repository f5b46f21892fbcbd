"""/available and /availability board — players say whether they play tonight."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import PoliteView, actor_from, parse_date_option
from cogs.embeds import board_embed
from services.engine import Engine
from services.models import PlayerStatus
from services.players import PlayerService

if TYPE_CHECKING:
    from bot.client import RallypointBot

log = logging.getLogger(__name__)

StatusChoice = Literal["LOOKING", "AVAILABLE", "MAYBE", "NOT_PLAYING", "clear"]
BOARD_PREFIX = "rallypoint:board:"
CONSENT_YES = "rp:consent:yes"
CONSENT_NO = "rp:consent:no"

ASK_CONSENT = (
    "Rallypoint won't ping you when tonight's session is called: you have not turned promotions on. "
    "Want the reminder and the start ping?"
)
CONSENT_GIVEN = (
    "Promotions are on: you'll get the reminder and the start ping when a session you're up for is called. "
    "They stay on until you turn them off with `/notify settings allow_promotions:False`."
)
CONSENT_REFUSED = (
    "No pings, then. You won't be asked again; `/notify settings allow_promotions:True` turns them on."
)


class BoardButton(discord.ui.Button["BoardView"]):
    def __init__(self, status: PlayerStatus, style: discord.ButtonStyle) -> None:
        super().__init__(
            label=status.value.replace("_", " ").title(), style=style, custom_id=BOARD_PREFIX + status.value
        )
        self.status = status

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.view is not None:
            await self.view.cog.press(interaction, self.status)


class BoardView(PoliteView):
    """Persistent: registered at start-up with fixed custom ids, so old boards keep working."""

    def __init__(self, cog: AvailabilityCog) -> None:
        super().__init__(timeout=None)
        self.cog = cog
        self.add_item(BoardButton(PlayerStatus.LOOKING, discord.ButtonStyle.success))
        self.add_item(BoardButton(PlayerStatus.AVAILABLE, discord.ButtonStyle.primary))
        self.add_item(BoardButton(PlayerStatus.MAYBE, discord.ButtonStyle.secondary))
        self.add_item(BoardButton(PlayerStatus.NOT_PLAYING, discord.ButtonStyle.danger))


class ConsentButton(discord.ui.Button["ConsentView"]):
    def __init__(self, allow: bool) -> None:
        super().__init__(
            label="Ping me tonight" if allow else "No thanks",
            style=discord.ButtonStyle.success if allow else discord.ButtonStyle.secondary,
            custom_id=CONSENT_YES if allow else CONSENT_NO,
        )
        self.allow = allow

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.view is not None:
            await self.view.cog.choose(interaction, self.allow)


class ConsentView(PoliteView):
    """The one-tap opt-in under an ephemeral reply. Persistent (fixed custom ids, registered at
    start-up), so a button pressed after a restart still works."""

    def __init__(self, cog: AvailabilityCog) -> None:
        super().__init__(timeout=None)
        self.cog = cog
        self.add_item(ConsentButton(allow=True))
        self.add_item(ConsentButton(allow=False))


class AvailabilityCog(commands.Cog):
    availability = app_commands.Group(name="availability", description="Tonight's availability board")

    def __init__(self, bot: RallypointBot, engine: Engine) -> None:
        self.bot = bot
        self.players: PlayerService = engine.players
        self.standing = engine.standing

    async def cog_load(self) -> None:
        self.bot.add_view(BoardView(self))
        self.bot.add_view(ConsentView(self))

    @app_commands.command(name="available", description="Tell the community whether you play tonight")
    @app_commands.describe(status="Your status", date="YYYY-MM-DD (default: today)")
    async def available(
        self, interaction: discord.Interaction, status: StatusChoice, date: str | None = None
    ) -> None:
        value = None if status == "clear" else PlayerStatus(status)
        result = await self.players.set_status(
            actor_from(interaction, self.bot.settings.discord.guild_id), value, parse_date_option(date)
        )
        said = "cleared" if value is None else f"set to **{value.value}**"
        text = f"Your status for {result.entry.date.isoformat()} is {said}."
        if result.ask_consent:
            await interaction.response.send_message(f"{text}\n{ASK_CONSENT}", view=ConsentView(self), ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    @availability.command(name="board", description="Post tonight's board with one button per status")
    async def board(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=await self._board(), view=BoardView(self))

    async def _board(self) -> discord.Embed:
        """Today's board, with what is on tonight: the evening promoted, or a standing session to come."""
        board = await self.players.board()
        evening = await self.standing.evening(board.day)
        return board_embed(board, evening, self.bot.settings.promotion.zone)

    async def press(self, interaction: discord.Interaction, status: PlayerStatus) -> None:
        result = await self.players.set_status(actor_from(interaction, self.bot.settings.discord.guild_id), status)
        await interaction.response.edit_message(embed=await self._board(), view=BoardView(self))
        if result.ask_consent:  # the board is public: the question goes to the presser alone
            await interaction.followup.send(ASK_CONSENT, view=ConsentView(self), ephemeral=True)

    async def choose(self, interaction: discord.Interaction, allow: bool) -> None:
        """The player's answer to "Ping me tonight": their choice, stored, whichever way it goes."""
        await self.players.update_preferences(
            actor_from(interaction, self.bot.settings.discord.guild_id), allow_promotions=allow
        )
        await interaction.response.edit_message(content=CONSENT_GIVEN if allow else CONSENT_REFUSED, view=None)

