"""What every cog needs: the acting user as the engine sees them, and option parsing."""

from __future__ import annotations

import logging
from datetime import date, time
from typing import Any

import discord

from services.errors import InvalidInput, RallypointError
from services.models import Actor
from services.quiet_hours import parse_hhmm
from services.schedule import parse_iso_date

log = logging.getLogger(__name__)


def actor_from(interaction: discord.Interaction, guild_id: int) -> Actor:
    """A linked actor is a member of the configured guild, acting inside it."""
    user = interaction.user
    member = isinstance(user, discord.Member) and interaction.guild_id == guild_id
    roles = frozenset(r.id for r in user.roles) if isinstance(user, discord.Member) else frozenset()
    # display_name is the guild nickname, else the global name, else the username.
    return Actor(user.id, member, roles, user.display_name)


def parse_time_option(value: str | None, what: str = "start") -> time | None:
    """An omitted option is None (the service's default); anything given must be HH:MM, as in the API."""
    if value is None:
        return None
    try:
        return parse_hhmm(value)
    except ValueError:
        raise InvalidInput(f"The {what} is a time as HH:MM (24-hour), for example 21:00.") from None


def parse_date_option(value: str | None) -> date | None:
    """An omitted option is None (the service's default); anything given must be YYYY-MM-DD, as in the API."""
    if value is None:
        return None
    try:
        return parse_iso_date(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


async def reply_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Answer (or follow up) privately; names in messages never ping anyone."""
    none = discord.AllowedMentions.none()
    if interaction.response.is_done():
        await interaction.followup.send(message, ephemeral=True, allowed_mentions=none)
    else:
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=none)


class PoliteView(discord.ui.View):
    """A view whose button errors get the same polite ephemeral answers as slash commands.

    Component errors never reach CommandTree.on_error, so views translate them here.
    """

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        if isinstance(error, RallypointError):
            await reply_ephemeral(interaction, error.message)
            return
        log.error("button %s failed", getattr(item, "custom_id", "?"), exc_info=error)
        await reply_ephemeral(interaction, "Something went wrong on our side. Please try again in a moment.")
