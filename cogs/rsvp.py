"""Answers pressed under a Discord invitation (the reminder, the start ping, "we need N more").

One `DynamicItem` handles every press by its custom_id, `rp:rsvp:<campaign id>:<in|late|out>`: nothing
is registered per message, so invitations sent before a restart keep working. The press is
acknowledged at once (Discord allows 3 s), then the answer is stored, the DM's buttons are edited to
show it, and the player gets a private confirmation.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.delivery.discord_rsvp import rsvp_buttons
from services.engine import Engine
from services.messages import rsvp_reply_text
from services.models import RsvpAnswer, RsvpRecorded
from services.rsvp import DISCORD_TEMPLATE, RsvpService

if TYPE_CHECKING:
    from bot.client import RallypointBot

log = logging.getLogger(__name__)

COG_NAME = "rsvp"
SOMETHING_WENT_WRONG = "Something went wrong on our side, so your answer was not saved. Please try again."
_NO_PINGS = discord.AllowedMentions.none()


class RsvpButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=DISCORD_TEMPLATE):
    """Any answer button of any invitation: the campaign and the answer come from its custom_id."""

    def __init__(self, cog: RsvpCog, button: discord.ui.Button[Any], campaign_id: int, answer: RsvpAnswer) -> None:
        super().__init__(button)
        self.cog = cog
        self.campaign_id = campaign_id
        self.answer = answer

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RsvpButton:
        cog = interaction.client.get_cog(COG_NAME)
        if not isinstance(cog, RsvpCog) or not isinstance(item, discord.ui.Button):
            raise TypeError(f"no RSVP cog to answer {match.group(0)}")
        return cls(cog, item, int(match["campaign"]), RsvpAnswer(match["answer"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await self.cog.answer(interaction, self.campaign_id, self.answer)


class RsvpCog(commands.Cog, name=COG_NAME):
    def __init__(self, bot: RallypointBot, engine: Engine) -> None:
        self.bot = bot
        self.rsvp: RsvpService = engine.rsvp

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(RsvpButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(RsvpButton)

    def answered(self, campaign_id: int, chosen: RsvpAnswer) -> discord.ui.View:
        """The invitation's buttons showing the player's current answer (still pressable)."""
        view = discord.ui.View(timeout=None)
        for answer, button in zip(RsvpAnswer, rsvp_buttons(campaign_id, chosen), strict=True):
            view.add_item(RsvpButton(self, button, campaign_id, answer))
        return view

    async def answer(self, interaction: discord.Interaction[Any], campaign_id: int, answer: RsvpAnswer) -> None:
        # Acknowledged first (a deferred update of the DM): within Discord's 3 s whatever storage does.
        await interaction.response.defer()
        try:
            result = await self.rsvp.answer_on_discord(interaction.user.id, campaign_id, answer)
        except Exception:
            log.exception("an answer to campaign %d could not be stored", campaign_id)
            await interaction.followup.send(SOMETHING_WENT_WRONG, ephemeral=True, allowed_mentions=_NO_PINGS)
            return
        if isinstance(result, RsvpRecorded):
            try:
                await interaction.edit_original_response(
                    view=self.answered(campaign_id, answer), allowed_mentions=_NO_PINGS
                )
            except discord.HTTPException:
                # The answer is stored either way; only the buttons' highlight is out of date.
                log.warning("the buttons of an answered invitation (campaign %d) could not be updated", campaign_id)
        await interaction.followup.send(rsvp_reply_text(result), ephemeral=True, allowed_mentions=_NO_PINGS)
