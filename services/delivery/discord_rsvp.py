"""The row of answers under a Discord invitation: I'm in, running late, can't tonight.

Each button's custom_id names the campaign and the answer (`rp:rsvp:<campaign id>:<answer>`), so the
bot's one `DynamicItem` (cogs/rsvp.py) handles a press on any invitation, sent before a restart or
after, without a view registered per message. The DM sender posts the row as plain components; the
cog edits it to show the player's current answer.
"""

from __future__ import annotations

from typing import Any

import discord

from services.messages import rsvp_label
from services.models import RsvpAnswer
from services.rsvp import discord_custom_id

# Before an answer each button has its colour; after one, the chosen answer keeps it (ticked) and
# the others turn grey.
_STYLES = {
    RsvpAnswer.IN: discord.ButtonStyle.success,
    RsvpAnswer.LATE: discord.ButtonStyle.primary,
    RsvpAnswer.OUT: discord.ButtonStyle.danger,
}


def rsvp_buttons(campaign_id: int, chosen: RsvpAnswer | None = None) -> list[discord.ui.Button[Any]]:
    """The three buttons, in reading order, showing `chosen` as the current answer (None: none yet)."""
    return [
        discord.ui.Button(
            label=rsvp_label(answer, chosen),
            style=_STYLES[answer] if chosen in (None, answer) else discord.ButtonStyle.secondary,
            custom_id=discord_custom_id(campaign_id, answer),
        )
        for answer in RsvpAnswer
    ]


def rsvp_row(campaign_id: int) -> discord.ui.View:
    """The buttons as a view to post with a message (never stored: presses go to the DynamicItem)."""
    view = discord.ui.View(timeout=None)
    for button in rsvp_buttons(campaign_id):
        view.add_item(button)
    return view
