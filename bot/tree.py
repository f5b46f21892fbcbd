"""The bot's command tree, with the one error handler for every slash command (as Red's `core/tree.py`)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from cogs.common import reply_ephemeral
from services.errors import RallypointError

log = logging.getLogger(__name__)

GENERIC_ERROR = "Something went wrong on our side. Please try again in a moment."


class RallypointTree(app_commands.CommandTree[discord.Client]):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Turn domain errors into a polite ephemeral reply; log anything unexpected."""
        original = getattr(error, "original", error)
        if isinstance(original, RallypointError):
            message = original.message
        elif isinstance(error, app_commands.CheckFailure):
            message = "You can't use this command here."
        elif isinstance(error, app_commands.TransformerError):
            message = f"That value is not valid: {error.value!r}."
        else:
            command = interaction.command.qualified_name if interaction.command is not None else "?"
            log.error("command %s failed", command, exc_info=original)
            message = GENERIC_ERROR
        await reply_ephemeral(interaction, message)
