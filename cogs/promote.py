"""/promote preview | schedule | status | cancel | need — thin: parse → service → render."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import PoliteView, actor_from, parse_date_option
from cogs.embeds import created_embed, need_text, preview_embed, status_embed
from services.engine import Engine
from services.errors import RallypointError
from services.models import Actor
from services.need import MAX_NEED

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from bot.client import RallypointBot

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_SECONDS = 120.0


class ConfirmSchedule(PoliteView):
    """Confirm / Cancel under a schedule preview; only the caller may press, and they expire."""

    def __init__(
        self, cog: PromoteCog, actor: Actor, include_available: bool, include_maybe: bool, dry_run: bool
    ) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_SECONDS)
        self.cog = cog
        self.actor = actor
        self.options = (include_available, include_maybe, dry_run)
        self.origin: discord.Interaction | None = None
        self.done = False

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.actor.discord_user_id:
            await interaction.response.send_message(
                "Only the promoter who asked can confirm.", ephemeral=True
            )
            return False
        return not self.done

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.success, custom_id="rp:schedule:confirm")
    async def confirm(self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmSchedule]) -> None:
        self.done = True
        self.stop()
        include_available, include_maybe, dry_run = self.options
        try:
            created = await self.cog.engine.promote.create(
                self.actor,
                include_available=include_available,
                include_maybe=include_maybe,
                dry_run=dry_run,
            )
        except RallypointError as exc:
            await interaction.response.edit_message(
                content=f"Not scheduled: {exc.message}", embed=None, view=None
            )
            return
        await interaction.response.edit_message(
            content=None, embed=created_embed(created, self.cog.zone), view=None
        )

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="rp:schedule:cancel")
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button[ConfirmSchedule]) -> None:
        self.done = True
        self.stop()
        await interaction.response.edit_message(content="Nothing was scheduled.", embed=None, view=None)

    async def on_timeout(self) -> None:
        if self.origin is not None and not self.done:
            try:
                await self.origin.edit_original_response(
                    content="This confirmation expired; run /promote schedule again.", embed=None, view=None
                )
            except discord.HTTPException:
                log.debug("could not mark an expired confirmation")


class PromoteCog(commands.GroupCog, name="promote", description="Promote tonight's session"):
    def __init__(self, bot: RallypointBot, engine: Engine) -> None:
        self.bot = bot
        self.engine = engine
        super().__init__()

    @property
    def zone(self) -> ZoneInfo:
        return self.bot.settings.promotion.zone

    def actor(self, interaction: discord.Interaction) -> Actor:
        return actor_from(interaction, self.bot.settings.discord.guild_id)

    @app_commands.command(name="preview", description="See who would be promoted to, and when")
    @app_commands.describe(
        include_available="Also promote to AVAILABLE players", include_maybe="Also promote to MAYBE players"
    )
    async def preview(
        self, interaction: discord.Interaction, include_available: bool = False, include_maybe: bool = False
    ) -> None:
        preview = await self.engine.promote.preview(
            self.actor(interaction), include_available=include_available, include_maybe=include_maybe
        )
        await interaction.response.send_message(embed=preview_embed(preview, self.zone), ephemeral=True)

    @app_commands.command(
        name="schedule", description="Schedule tonight's reminder, start ping and voice check"
    )
    @app_commands.describe(
        include_available="Also promote to AVAILABLE players",
        include_maybe="Also promote to MAYBE players",
        dry_run="Rehearse: only you get the messages",
    )
    async def schedule(
        self,
        interaction: discord.Interaction,
        include_available: bool = False,
        include_maybe: bool = False,
        dry_run: bool | None = None,
    ) -> None:
        actor = self.actor(interaction)
        dry = self.bot.settings.promotion.dry_run_default if dry_run is None else dry_run
        preview = await self.engine.promote.preview(
            actor, include_available=include_available, include_maybe=include_maybe, dry_run=dry
        )
        view = ConfirmSchedule(self, actor, include_available, include_maybe, dry)
        view.origin = interaction
        await interaction.response.send_message(
            content="Schedule this campaign?",
            embed=preview_embed(preview, self.zone),
            view=view,
            ephemeral=True,
        )

    @app_commands.command(name="status", description="How tonight's campaign is going (counts only)")
    @app_commands.describe(date="YYYY-MM-DD (default: today)")
    async def status(self, interaction: discord.Interaction, date: str | None = None) -> None:
        actor = self.actor(interaction)
        view = await self.engine.promote.status(actor, parse_date_option(date))
        if view is None:
            await interaction.response.send_message("No campaign for that date.", ephemeral=True)
            return
        joined = None  # who said yes to "we need N more": promoters see names, everyone else counts
        if view.need.asked and await self.engine.promote.can_promote(actor):
            joined = await self.engine.need.joined(actor, view.campaign.id)
        await interaction.response.send_message(embed=status_embed(view, self.zone, joined), ephemeral=True)

    @app_commands.command(name="need", description="We need N more: ask the AVAILABLE and MAYBE players tonight")
    @app_commands.describe(count="How many more players the session needs")
    async def need(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 1, MAX_NEED]
    ) -> None:
        asked = await self.engine.need.ask(self.actor(interaction), count)
        await interaction.response.send_message(need_text(asked), ephemeral=True)

    @app_commands.command(name="cancel", description="Cancel today's campaign; pending messages never go out")
    async def cancel(self, interaction: discord.Interaction) -> None:
        view = await self.engine.promote.cancel(self.actor(interaction))
        await interaction.response.send_message(
            content=f"Campaign {view.campaign.id} cancelled.",
            embed=status_embed(view, self.zone),
            ephemeral=True,
        )

