""""We need N more": a promoter asks the AVAILABLE and MAYBE players outside a campaign's snapshot.

One message, with the answers (I'm in, running late, can't tonight), to each player who allows
promotions and was not asked yet that day; it goes out through a durable job (the fan-out of every
other message: quiet hours, consent, fallback and send-by deadline as everywhere, resumed after a
crash). A player who answers that they are coming joins the snapshot and gets the later messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from services.clock import Clock
from services.errors import DryRunOnly, InvalidInput, NotFound, TooLate
from services.models import Actor, CampaignStatus, Channel, JobStatus, JobType, NeedAsked
from services.promote import PromoteService
from services.recipients import NEED_STATUSES, select_need_recipients
from storage.campaigns import CampaignStore
from storage.needs import NeedStore
from storage.players import PlayerStore

log = logging.getLogger(__name__)

MAX_NEED: Final = 50  # "we need 51 more" is not a pick-up game any more


class NeedService:
    def __init__(
        self,
        *,
        promote: PromoteService,
        player_store: PlayerStore,
        campaign_store: CampaignStore,
        need_store: NeedStore,
        channels: frozenset[Channel],
        max_attempts: int,
        clock: Clock,
        on_jobs_created: Callable[[], None] = lambda: None,
    ) -> None:
        """`channels`: the channels with a sender on this server (Discord always counts)."""
        self.promote = promote
        self.player_store = player_store
        self.campaign_store = campaign_store
        self.need_store = need_store
        self.channels = channels | {Channel.DISCORD}
        self.max_attempts = max_attempts
        self.clock = clock
        self._on_jobs_created = on_jobs_created

    async def ask(self, actor: Actor, count: int, campaign_id: int | None = None) -> NeedAsked:
        """Ask for `count` more players for a campaign (default: the one in the promoter's reach).

        Allowed once the campaign exists and until its voice check begins; not for a dry run.
        """
        if not 1 <= count <= MAX_NEED:  # the slash option and the API document say so too
            raise InvalidInput(f"count must be between 1 and {MAX_NEED}")
        promoter = await self.promote.promoter(actor)
        campaign = await self.promote.in_reach(promoter, campaign_id)
        if campaign is None:
            raise NotFound("There is no campaign to find players for." if campaign_id is None
                           else f"There is no campaign {campaign_id}.")
        if campaign.dry_run:
            raise DryRunOnly("A dry run reaches only you: there is nobody to ask for more.")
        jobs = {j.job_type: j for j in await self.campaign_store.jobs(campaign.id)}
        if campaign.status is CampaignStatus.CANCELLED or jobs[JobType.VOICE_CHECK].status is not JobStatus.PENDING:
            raise TooLate(f"Campaign {campaign.id} is past its voice check ({campaign.status.value}): "
                          "it is too late to ask for more players.")
        day = campaign.campaign_date
        snapshot = {r.player.id for r in await self.campaign_store.recipients(campaign.id)}
        left_out = snapshot | await self.need_store.asked_on(day)
        chosen = select_need_recipients(
            await self.player_store.candidates(day, NEED_STATUSES), left_out=left_out, enabled_channels=self.channels
        )
        messaged = await self.need_store.ask(
            campaign_id=campaign.id, day=day, promoter_id=promoter.id, count=count, recipients=chosen,
            max_attempts=self.max_attempts, now=self.clock.now(),
        )
        log.info("campaign %d: player %d needs %d more; %d players asked", campaign.id, promoter.id, count, messaged)
        if messaged:
            self._on_jobs_created()
        return NeedAsked(campaign, count, messaged)

    async def joined(self, actor: Actor, campaign_id: int) -> list[str]:
        """Who of those asked said they are coming (names: promoters only)."""
        await self.promote.promoter(actor)
        return await self.need_store.joined(campaign_id)
