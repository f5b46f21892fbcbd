"""/promote preview | schedule | status | cancel | need | standing — thin: parse → service → render."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import time
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import PoliteView, actor_from, parse_date_option, parse_time_option
from cogs.embeds import (
    created_embed,
    need_text,
    preview_embed,
    standing_embed,
    standing_list_embed,
    status_embed,
)
from services.engine import Engine
from services.errors import RallypointError
from services.models import Actor, Weekday
from services.need import MAX_NEED
from services.sessions import MAX_QUORUM, MAX_TITLE, session_label, usual_start_times

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from bot.client import RallypointBot

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_SECONDS = 120.0
WeekdayChoice = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Title = app_commands.Range[str, 1, MAX_TITLE]
Quorum = app_commands.Range[int, 1, MAX_QUORUM]
SessionId = app_commands.Range[int, 1, 2**53 - 1]  # Discord's largest integer option
TITLE_HELP = f"A name for the evening, shown in every message (up to {MAX_TITLE} characters)"


@dataclass(frozen=True, slots=True)
class Evening:
    """What a promoter asked /promote schedule for."""

    include_available: bool = False
    include_maybe: bool = False
    dry_run: bool = False
    start_at: time | None = None
    title: str | None = None


class ConfirmSchedule(PoliteView):
    """Confirm / Cancel under a schedule preview; only the caller may press, and they expire."""

    def __init__(self, cog: PromoteCog, actor: Actor, evening: Evening) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_SECONDS)
        self.cog = cog
        self.actor = actor
        self.evening = evening
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
        e = self.evening
        try:
            created = await self.cog.engine.promote.create(
                self.actor,
                include_available=e.include_available,
                include_maybe=e.include_maybe,
                dry_run=e.dry_run,
                start_at=e.start_at,
                title=e.title,
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
    standing = app_commands.Group(name="standing", description="Weekly sessions that happen without an organiser")

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
        start="When it starts, HH:MM (default: the usual start); the reminder keeps its lead",
        title=TITLE_HELP,
    )
    async def schedule(
        self,
        interaction: discord.Interaction,
        include_available: bool = False,
        include_maybe: bool = False,
        dry_run: bool | None = None,
        start: app_commands.Range[str, 1, 5] | None = None,
        title: Title | None = None,
    ) -> None:
        actor = self.actor(interaction)
        evening = Evening(
            include_available=include_available,
            include_maybe=include_maybe,
            dry_run=self.bot.settings.promotion.dry_run_default if dry_run is None else dry_run,
            start_at=parse_time_option(start),
            title=title,
        )
        preview = await self.engine.promote.preview(
            actor, include_available=evening.include_available, include_maybe=evening.include_maybe,
            dry_run=evening.dry_run, start_at=evening.start_at, title=evening.title,
        )
        view = ConfirmSchedule(self, actor, evening)
        view.origin = interaction
        await interaction.response.send_message(
            content="Schedule this campaign?",
            embed=preview_embed(preview, self.zone),
            view=view,
            ephemeral=True,
        )

    @schedule.autocomplete("start")
    async def _start_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return self._usual_times(current)

    def _usual_times(self, current: str) -> list[app_commands.Choice[str]]:
        """The configured start and the half hours around it, as the promoter types."""
        times = usual_start_times(self.bot.settings.promotion.start, current)
        return [app_commands.Choice(name=t, value=t) for t in times]

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

    # -- standing sessions ----------------------------------------------------------------------

    @standing.command(name="add", description="Add a weekly session, promoted by itself when enough are up for it")
    @app_commands.describe(
        weekday="The day, in the server's timezone",
        start="When it starts, HH:MM",
        quorum="How many players must be up for it (counted before the start)",
        include_available="Also count and promote to AVAILABLE players",
        include_maybe="Also count and promote to MAYBE players",
        title=TITLE_HELP,
    )
    async def standing_add(
        self,
        interaction: discord.Interaction,
        weekday: WeekdayChoice,
        start: app_commands.Range[str, 1, 5],
        quorum: Quorum,
        include_available: bool = False,
        include_maybe: bool = False,
        title: Title | None = None,
    ) -> None:
        start_at = parse_time_option(start)
        if start_at is None:  # a required option: Discord always sends it
            raise TypeError("start is required")
        view = await self.engine.standing.add(
            self.actor(interaction), weekday=Weekday(weekday), start_at=start_at, quorum=quorum,
            include_available=include_available, include_maybe=include_maybe, title=title,
        )
        await interaction.response.send_message(embed=standing_embed(view, self.zone), ephemeral=True)

    @standing_add.autocomplete("start")
    async def _standing_start_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self._usual_times(current)

    @standing.command(name="list", description="The weekly sessions, their next decision and their last outcome")
    async def standing_list(self, interaction: discord.Interaction) -> None:
        views = await self.engine.standing.sessions(self.actor(interaction))
        await interaction.response.send_message(embed=standing_list_embed(views, self.zone), ephemeral=True)

    @standing.command(name="remove", description="Remove a weekly session: no more decisions for it")
    @app_commands.rename(session_id="id")
    @app_commands.describe(session_id="The session's number, as /promote standing list shows it")
    async def standing_remove(self, interaction: discord.Interaction, session_id: SessionId) -> None:
        view = await self.engine.standing.remove(self.actor(interaction), session_id)
        s = view.session
        await interaction.response.send_message(
            f"Standing session {s.id} ({session_label(s.weekday, s.start_time)}) removed: it is not decided "
            "again. A campaign it already created stays as it is.",
            ephemeral=True,
        )
