"""Who is a member of the community's guild: the gateway cache first, else a REST member lookup."""

from __future__ import annotations

import logging
from typing import Any

import discord

from services.errors import Unavailable
from services.models import Actor

log = logging.getLogger(__name__)


class GuildMembership:
    """Resolve a Discord user id to an Actor for the API (wrap in CachedMembership)."""

    def __init__(self, client: discord.Client, guild_id: int) -> None:
        self.client = client
        self.guild_id = guild_id

    async def resolve(self, discord_user_id: int) -> Actor:
        guild = self.client.get_guild(self.guild_id)
        member = guild.get_member(discord_user_id) if guild is not None else None
        if member is not None:
            return _actor(member.id, member.display_name, [r.id for r in member.roles])
        # Without the privileged members intent the cache holds few members: ask Discord.
        try:
            payload: Any = await self.client.http.get_member(self.guild_id, discord_user_id)
        except discord.NotFound:
            return Actor(discord_user_id, is_member=False)
        except discord.HTTPException as exc:
            log.warning("member lookup failed with HTTP %s", exc.status)
            raise Unavailable("Discord could not be asked who you are; try again shortly.") from None
        user = payload.get("user", {})
        name = payload.get("nick") or user.get("global_name") or user.get("username") or str(discord_user_id)
        return _actor(discord_user_id, name, [int(r) for r in payload.get("roles", [])])


def _actor(user_id: int, display_name: str, role_ids: list[int]) -> Actor:
    return Actor(user_id, True, frozenset(role_ids), display_name)
