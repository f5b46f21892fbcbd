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


class AvailabilityCog(commands.Cog):
    availability = app_commands.Group(name="availability", description="Tonight's availability board")

    def __init__(self, bot: RallypointBot, engine: Engine) -> None:
        self.bot = bot
        self.players: PlayerService = engine.players

    async def cog_load(self) -> None:
        self.bot.add_view(BoardView(self))

    @app_commands.command(name="available", description="Tell the community whether you play tonight")
    @app_commands.describe(status="Your status", date="YYYY-MM-DD (default: today)")
    async def available(
        self, interaction: discord.Interaction, status: StatusChoice, date: str | None = None
    ) -> None:
        value = None if status == "clear" else PlayerStatus(status)
        entry = await self.players.set_status(
            actor_from(interaction, self.bot.settings.discord.guild_id), value, parse_date_option(date)
        )
        said = "cleared" if value is None else f"set to **{value.value}**"
        await interaction.response.send_message(
            f"Your status for {entry.date.isoformat()} is {said}.", ephemeral=True
        )

    @availability.command(name="board", description="Post tonight's board with one button per status")
    async def board(self, interaction: discord.Interaction) -> None:
        board = await self.players.board()
        await interaction.response.send_message(embed=board_embed(board), view=BoardView(self))

    async def press(self, interaction: discord.Interaction, status: PlayerStatus) -> None:
        await self.players.set_status(actor_from(interaction, self.bot.settings.discord.guild_id), status)
        board = await self.players.board()
        await interaction.response.edit_message(embed=board_embed(board), view=BoardView(self))

