"""What every cog needs: the acting user as the engine sees them, and option parsing."""

from __future__ import annotations

from datetime import date

import discord

from services.errors import InvalidInput
from services.permissions import Actor


def actor_from(interaction: discord.Interaction, guild_id: int) -> Actor:
    """A linked actor is a member of the configured guild, acting inside it."""
    user = interaction.user
    member = isinstance(user, discord.Member) and interaction.guild_id == guild_id
    roles = frozenset(r.id for r in user.roles) if isinstance(user, discord.Member) else frozenset()
    # display_name is the guild nickname, else the global name, else the username.
    return Actor(user.id, member, roles, user.display_name)


def parse_date_option(value: str | None) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{value[:40]!r} is not a date; use YYYY-MM-DD, for example 2026-11-24.") from None
