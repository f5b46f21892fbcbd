"""/notify settings | show | link | verify | unlink — how and when a player is reached."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import actor_from
from cogs.embeds import preferences_embed
from services.engine import Engine
from services.errors import InvalidInput
from services.models import UNSET, Actor, Channel, PreferredChannel, QuietHours
from services.quiet_hours import parse_hhmm
from services.schedule import iana_timezones

if TYPE_CHECKING:
    from bot.client import RallypointBot

ChannelChoice = Literal["any", "discord", "telegram", "signal"]


@functools.cache
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(iana_timezones()))


def parse_quiet_hours(value: str) -> QuietHours | None:
    """`23:00-07:00`, or `off` to remove the window."""
    text = value.strip().lower()
    if text in {"off", "none", "clear"}:
        return None
    parts = text.replace("–", "-").split("-")
    if len(parts) != 2:
        raise InvalidInput("Quiet hours look like 23:00-07:00 (or 'off').")
    try:
        window = QuietHours(parse_hhmm(parts[0].strip()), parse_hhmm(parts[1].strip()))
    except ValueError as exc:
        raise InvalidInput(f"Quiet hours: {exc}.") from None
    if window.start == window.end:
        raise InvalidInput("Quiet hours need a different start and end (or 'off' for none).")
    return window


def parse_timezone_option(value: str) -> str | None:
    """An IANA name, or `server` / `default` to go back to the server's timezone."""
    text = value.strip()
    return None if text.lower() in {"server", "default", "off"} else text


class NotifyCog(commands.GroupCog, name="notify", description="How Rallypoint reaches you"):
    link = app_commands.Group(name="link", description="Link Telegram or Signal")

    def __init__(self, bot: RallypointBot, engine: Engine) -> None:
        self.bot = bot
        self.players = engine.players
        self.linking = engine.linking  # refuses politely when Telegram or Signal is not set up
        super().__init__()

    def actor(self, interaction: discord.Interaction) -> Actor:
        return actor_from(interaction, self.bot.settings.discord.guild_id)

    @app_commands.command(name="settings", description="Change how and when you get promotions")
    @app_commands.describe(
        allow_promotions="Get promotion messages at all",
        preferred_channel="Where to reach you first",
        quiet_hours="Never message me between, e.g. 23:00-07:00 (or 'off')",
        timezone="Your timezone for quiet hours, e.g. Europe/Ljubljana ('server' for the server's)",
    )
    async def settings(
        self,
        interaction: discord.Interaction,
        allow_promotions: bool | None = None,
        preferred_channel: ChannelChoice | None = None,
        quiet_hours: app_commands.Range[str, 1, 20] | None = None,
        timezone: app_commands.Range[str, 1, 64] | None = None,
    ) -> None:
        view = await self.players.update_preferences(
            self.actor(interaction),
            allow_promotions=UNSET if allow_promotions is None else allow_promotions,
            preferred_channel=UNSET if preferred_channel is None else PreferredChannel(preferred_channel),
            quiet_hours=UNSET if quiet_hours is None else parse_quiet_hours(quiet_hours),
            timezone=UNSET if timezone is None else parse_timezone_option(timezone),
        )
        await interaction.response.send_message("Saved.", embed=preferences_embed(view), ephemeral=True)

    @settings.autocomplete("timezone")
    async def _timezone_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        needle = current.strip().lower().replace(" ", "_")
        matches = [tz for tz in _timezones() if needle in tz.lower()][:25]
        return [app_commands.Choice(name=tz, value=tz) for tz in matches]

    @app_commands.command(name="show", description="Show your promotion settings and linked channels")
    async def show(self, interaction: discord.Interaction) -> None:
        view = await self.players.preferences(self.actor(interaction))
        await interaction.response.send_message(embed=preferences_embed(view), ephemeral=True)

    @link.command(name="telegram", description="Get a one-time link that connects your Telegram")
    async def link_telegram(self, interaction: discord.Interaction) -> None:
        _token, deep_link, expires_at = await self.linking.request_telegram_link(self.actor(interaction))
        await interaction.response.send_message(
            f"Open {deep_link} and press **Start** in Telegram. "
            f"The link works once and expires <t:{int(expires_at.timestamp())}:R>.",
            ephemeral=True,
        )

    @link.command(name="signal", description="Get a code on Signal to connect your number")
    @app_commands.describe(number="Your number in international form, e.g. +38640123456")
    async def link_signal(
        self, interaction: discord.Interaction, number: app_commands.Range[str, 4, 20]
    ) -> None:
        expires_at = await self.linking.request_signal_link(self.actor(interaction), number)
        await interaction.response.send_message(
            "A 6-digit code is on its way to your Signal. Confirm it with `/notify verify code:` "
            f"before <t:{int(expires_at.timestamp())}:t>.",
            ephemeral=True,
        )

    @app_commands.command(name="verify", description="Confirm the Signal code you received")
    async def verify(self, interaction: discord.Interaction, code: app_commands.Range[str, 1, 12]) -> None:
        await self.linking.confirm_signal_link(self.actor(interaction), code.strip())
        await interaction.response.send_message("Signal linked. ✅", ephemeral=True)

    @app_commands.command(name="unlink", description="Remove a linked Telegram or Signal")
    async def unlink(self, interaction: discord.Interaction, channel: Literal["telegram", "signal"]) -> None:
        removed = await self.linking.unlink(self.actor(interaction), Channel(channel))
        await interaction.response.send_message(
            f"{channel.title()} unlinked." if removed else f"You had no {channel.title()} link.",
            ephemeral=True,
        )

