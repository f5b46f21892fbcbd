"""RSVP from the message itself: the answers, how each channel names them, and what an answer changes.

The reminder, the start ping and the "we need N more" message offer three answers — I'm in, running
late, can't tonight — as Discord buttons, a Telegram inline keyboard, or (Signal has no buttons) a
reply of 1, 2 or 3. Every answer is a row; the last one counts:

- `out`: the player is NOT_PLAYING that date, and every later message of the campaign to them is
  skipped (`declined`) — the dispatcher reads the answers when each job runs, so a restart too;
- `late`: no follow-up, and the voice-check summary lists them as running late;
- `in`: recorded (and, from a player "we need N more" asked, a seat in the snapshot, so that the
  later messages reach them; `late` takes a seat too: they are coming).

Only the campaign's recipients, and the players its "need" asked, may answer; anyone else is told
politely that the invitation is not theirs. A rehearsal (dry run) records answers but never changes
the initiator's status.
"""

from __future__ import annotations

import logging
import re
from typing import Final
from zoneinfo import ZoneInfo

from services.clock import Clock
from services.contacts import ContactCipher
from services.metrics import Metrics
from services.models import (
    CampaignStatus,
    Channel,
    Invitation,
    Player,
    PlayerStatus,
    RsvpAnswer,
    RsvpRecorded,
    RsvpRefusal,
)
from services.phone import normalize_e164
from services.schedule import campaign_date
from storage.campaigns import CampaignStore
from storage.links import LinkStore
from storage.players import PlayerStore
from storage.rsvps import RsvpStore

log = logging.getLogger(__name__)

# Signal has no buttons: a bare digit answers the player's newest invitation of the day.
SIGNAL_DIGITS: Final = {"1": RsvpAnswer.IN, "2": RsvpAnswer.LATE, "3": RsvpAnswer.OUT}

_ANSWER = "(?P<answer>in|late|out)"
_CAMPAIGN = "(?P<campaign>[1-9][0-9]{0,17})"
# A Discord button's custom_id and a Telegram button's callback_data (both well under their limits).
DISCORD_TEMPLATE: Final = f"rp:rsvp:{_CAMPAIGN}:{_ANSWER}"
TELEGRAM_TEMPLATE: Final = f"rsvp:{_CAMPAIGN}:{_ANSWER}"


def discord_custom_id(campaign_id: int, answer: RsvpAnswer) -> str:
    return f"rp:rsvp:{campaign_id}:{answer.value}"


def telegram_callback_data(campaign_id: int, answer: RsvpAnswer) -> str:
    return f"rsvp:{campaign_id}:{answer.value}"


def parse_answer(template: str, value: str) -> tuple[int, RsvpAnswer] | None:
    """(campaign id, answer) from a button's custom_id or callback_data written with `template`, else None."""
    found = re.fullmatch(template, value)
    if found is None:
        return None
    return int(found["campaign"]), RsvpAnswer(found["answer"])


def signal_answer(text: str) -> RsvpAnswer | None:
    """The answer a Signal text gives: a bare 1, 2 or 3 (surrounding blanks ignored), else None."""
    return SIGNAL_DIGITS.get(text.strip())


def status_after(answer: RsvpAnswer, previous: RsvpAnswer | None, invitation: Invitation) -> PlayerStatus | None:
    """The player's status for the campaign date after this answer (None: left as it is).

    `out` is NOT_PLAYING; a later `in` or `late` takes that back to the status the snapshot (or the
    ask) saw. A dry run is a rehearsal: it never changes anybody's status.
    """
    if invitation.campaign.dry_run:
        return None
    if answer is RsvpAnswer.OUT:
        return PlayerStatus.NOT_PLAYING
    if previous is RsvpAnswer.OUT:
        return invitation.status
    return None


def takes_a_seat(answer: RsvpAnswer, invitation: Invitation) -> bool:
    """Whether the answer adds a player asked by "we need N more" to the snapshot: they are coming."""
    return not invitation.in_snapshot and answer in (RsvpAnswer.IN, RsvpAnswer.LATE)


class RsvpService:
    """Record answers from whichever channel they come, for the player that channel is linked to."""

    def __init__(
        self,
        *,
        campaign_store: CampaignStore,
        player_store: PlayerStore,
        link_store: LinkStore,
        rsvp_store: RsvpStore,
        cipher: ContactCipher | None,
        zone: ZoneInfo,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.campaign_store = campaign_store
        self.player_store = player_store
        self.link_store = link_store
        self.rsvp_store = rsvp_store
        self.cipher = cipher
        self.zone = zone
        self.clock = clock
        self.metrics = metrics

    async def answer_on_discord(
        self, discord_user_id: int, campaign_id: int, answer: RsvpAnswer
    ) -> RsvpRecorded | RsvpRefusal:
        """A button pressed on a Discord DM by this Discord user."""
        player = await self.player_store.by_discord_id(discord_user_id)
        return await self._answer(player, campaign_id, answer, Channel.DISCORD)

    async def answer_on_telegram(
        self, chat_id: int, campaign_id: int, answer: RsvpAnswer
    ) -> RsvpRecorded | RsvpRefusal:
        """A button pressed in a Telegram chat: the player that chat is linked to answers."""
        player = await self._linked(Channel.TELEGRAM, str(chat_id))
        return await self._answer(player, campaign_id, answer, Channel.TELEGRAM)

    async def answer_on_signal(self, number: str, answer: RsvpAnswer) -> RsvpRecorded | RsvpRefusal | None:
        """A 1, 2 or 3 from a Signal number: the linked player's newest invitation of today.

        None when no player linked that number (nothing is answered: the bot stays silent to strangers).
        """
        try:
            address = normalize_e164(number)
        except ValueError:
            return None
        player = await self._linked(Channel.SIGNAL, address)
        if player is None:
            return None
        campaign_id = await self.rsvp_store.newest_invited(player.id, campaign_date(self.clock.now(), self.zone))
        if campaign_id is None:
            return RsvpRefusal.NO_INVITATION
        return await self._answer(player, campaign_id, answer, Channel.SIGNAL)

    async def _linked(self, channel: Channel, address: str) -> Player | None:
        if self.cipher is None:
            return None
        player_id = await self.link_store.player_for_address(channel, self.cipher.address_hashes(address))
        return await self.player_store.get(player_id) if player_id is not None else None

    async def _answer(
        self, player: Player | None, campaign_id: int, answer: RsvpAnswer, channel: Channel
    ) -> RsvpRecorded | RsvpRefusal:
        campaign = await self.campaign_store.get(campaign_id)
        invitation = (
            await self.rsvp_store.invitation(campaign, player) if campaign is not None and player is not None else None
        )
        if invitation is None:
            log.info("an answer on %s to campaign %d came from someone it does not invite", channel.value, campaign_id)
            return RsvpRefusal.NOT_YOURS
        if invitation.campaign.status is CampaignStatus.CANCELLED:
            return RsvpRefusal.CANCELLED
        previous = await self.rsvp_store.latest_of(invitation.campaign.id, invitation.player.id)
        joined = await self.rsvp_store.record(
            invitation,
            answer,
            channel,
            self.clock.now(),
            status=status_after(answer, previous, invitation),
            join=takes_a_seat(answer, invitation),
        )
        self.metrics.rsvp(answer, channel)
        log.info(
            "player %d answered %s to campaign %d on %s%s",
            invitation.player.id, answer.value, invitation.campaign.id, channel.value,
            " and joined its snapshot" if joined else "",
        )
        return RsvpRecorded(invitation.campaign, invitation.player, answer, joined)

