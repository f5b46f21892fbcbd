"""The commands.Bot subclass: intents, command sync, one error handler (the command tree)."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.ext import commands

from bot.config import Settings
from bot.tree import RallypointTree
from services.delivery.discord_limits import DiscordLimits
from services.metrics import Metrics

log = logging.getLogger(__name__)


class NoVoiceLibraryWarnings(logging.Filter):
    """Drop discord.py's "PyNaCl / davey is not installed, voice will NOT be supported" warnings.

    Rallypoint reads voice states from the gateway but never joins a voice channel, so it needs
    neither library; the warnings would only worry an operator.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().endswith("voice will NOT be supported")


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
    """The Discord client. Its cogs are added by the app once the engine they drive exists."""

    def __init__(self, *, settings: Settings, limits: DiscordLimits, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            help_command=None,
            tree_cls=RallypointTree,
            # Nothing the bot says pings anyone unless a message names whom (a player called
            # "@everyone" must not page the server). The DM sender sets it on its own requests too.
            allowed_mentions=discord.AllowedMentions.none(),
            # A 429 longer than this surfaces as RateLimited to the DM sender instead of stalling.
            max_ratelimit_timeout=30.0,
            # Every request of the client's HTTP session (discord.py's own REST calls, each retry, the
            # senders' direct ones) passes the one global limiter first, and every answer is seen by
            # the invalid-request budget; see DiscordLimits.
            http_trace=limits.trace_config,
            **kwargs,
        )
        self._settings = settings
        self._limits = limits
        metrics.gateway_latency_from(lambda: self.latency)

    @property
    def settings(self) -> Settings:
        return self._settings

    def gateway_problem(self) -> str | None:
        """Why the bot is not connected with its guild available (None when it is), for /readyz."""
        if self.is_closed():
            return "the client is closed"
        if not self.is_ready() or self.ws is None or not self.ws.open:
            return "not connected to the Discord gateway"
        guild = self.get_guild(self._settings.discord.guild_id)
        if guild is None:
            return f"guild {self._settings.discord.guild_id} is not among the bot's guilds"
        if guild.unavailable:
            return f"guild {guild.id} is unavailable (a Discord outage)"
        return None

    @property
    def limits(self) -> DiscordLimits:
        """The limits every Discord request of this bot keeps (their counters feed the metrics)."""
        return self._limits

    @property
    def guild_object(self) -> discord.Object:
        """The community's guild, where the slash commands live."""
        return discord.Object(id=self._settings.discord.guild_id)

    async def setup_hook(self) -> None:
        # Guild commands appear at once (global ones can take an hour to propagate).
        self.tree.copy_global_to(guild=self.guild_object)
        synced = await self.tree.sync(guild=self.guild_object)
        log.info("synced %d application commands to guild %d", len(synced), self.guild_object.id)

    async def on_ready(self) -> None:
        log.info("connected as %s (%s)", self.user, self.user.id if self.user is not None else "?")
