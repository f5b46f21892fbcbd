"""The commands.Bot subclass: intents, extensions, command sync, one error handler."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import reply_ephemeral
from services.errors import RallypointError

if TYPE_CHECKING:
    from bot.config import Settings
    from services.engine import Engine

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.promote", "cogs.availability", "cogs.notify", "cogs.scheduler")


def bot_intents() -> discord.Intents:
    """Guilds (channels, roles, the guild itself) and voice states (who is in voice at the check).

    No privileged intents: slash interactions carry the member's roles and names, voice states
    arrive with GUILD_CREATE / VOICE_STATE_UPDATE, and non-cached members are looked up by REST.
    """
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return intents


class RallypointBot(commands.Bot):
    engine: Engine

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            help_command=None,
            # A 429 longer than this surfaces as RateLimited to the DM sender instead of stalling.
            max_ratelimit_timeout=30.0,
            **kwargs,
        )
        self.settings = settings
        self.guild_object = discord.Object(id=settings.discord.guild_id)
        self.linking: Any = None  # set by the app when Telegram or Signal is configured
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        for name in EXTENSIONS:
            try:
                await self.load_extension(name)
            except Exception:
                log.exception("failed to load extension %s", name)
        # Guild commands appear at once (global ones can take an hour to propagate).
        self.tree.copy_global_to(guild=self.guild_object)
        synced = await self.tree.sync(guild=self.guild_object)
        log.info("synced %d application commands to guild %d", len(synced), self.guild_object.id)

    async def on_ready(self) -> None:
        log.info("connected as %s (%s)", self.user, getattr(self.user, "id", "?"))

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Turn domain errors into a polite ephemeral reply; log anything unexpected."""
        original = getattr(error, "original", error)
        if isinstance(original, RallypointError):
            message = original.message
        elif isinstance(error, app_commands.CheckFailure):
            message = "You can't use this command here."
        elif isinstance(error, app_commands.TransformerError):
            message = f"That value is not valid: {error.value!r}."
        else:
            log.error(
                "command %s failed", getattr(interaction.command, "qualified_name", "?"), exc_info=original
            )
            message = "Something went wrong on our side. Please try again in a moment."
        await reply_ephemeral(interaction, message)
