"""Preview, create, status and cancel of a promotion campaign (rules 1-6, 10), at any start and with a title."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.clock import Clock
from services.errors import CampaignExists, InvalidInput, NoRecipients, NotFound, NotPromoter, TooManyRequests
from services.models import (
    Actor,
    Campaign,
    CampaignCreated,
    CampaignLimit,
    CampaignStatusView,
    Channel,
    ChannelsSummary,
    PermissionTier,
    Player,
    Preview,
    Recipient,
)
from services.permissions import PromoterPolicy, can_promote
from services.players import PlayerService
from services.recipients import dry_run_recipients, select_recipients, wanted_statuses
from services.schedule import campaign_date, compute_schedule, local_datetime, reminder_lead
from services.sessions import clean_title
from storage.campaigns import CampaignStore
from storage.changes import Changes, Memo
from storage.needs import NeedStore
from storage.players import PlayerStore
from storage.rsvps import RsvpStore
from storage.standing import StandingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PromotionConfig:
    zone: ZoneInfo
    reminder_at: time
    start_at: time
    voice_check_delay: timedelta
    global_cooldown: bool
    max_attempts: int
    dry_run_daily_limit: int = 5  # per promoter; 0 turns dry runs off
    # How long before a standing session's start its decision runs (promotion.standing_decision_minutes).
    standing_decision_lead: timedelta = timedelta(minutes=30)

    @property
    def timezone(self) -> str:
        return self.zone.key

    @property
    def lead(self) -> timedelta:
        """How long before any start its reminder goes: the configured times' difference."""
        return reminder_lead(self.reminder_at, self.start_at)


class PromoteService:
    def __init__(
        self,
        *,
        players: PlayerService,
        player_store: PlayerStore,
        campaign_store: CampaignStore,
        rsvp_store: RsvpStore,
        need_store: NeedStore,
        standing_store: StandingStore,
        config: PromotionConfig,
        policy: PromoterPolicy,
        channels: frozenset[Channel],
        clock: Clock,
        changes: Changes,
        on_jobs_created: Callable[[], None] = lambda: None,
    ) -> None:
        """`channels`: the channels with a sender on this server (Discord always counts)."""
        self.players = players
        self.player_store = player_store
        self.campaign_store = campaign_store
        self.rsvp_store = rsvp_store
        self.need_store = need_store
        self.standing_store = standing_store
        self.config = config
        self.policy = policy
        self.channels = channels | {Channel.DISCORD}
        self.clock = clock
        self._on_jobs_created = on_jobs_created
        self._tiers: Memo[int, PermissionTier | None] = Memo(changes)
        # Who would be promoted (and how many are left out), per day and include toggles: the costly
        # part of a preview, shared by every page of it and every client until the next change.
        self._selections: Memo[tuple[date, bool, bool], tuple[tuple[Recipient, ...], int]] = Memo(changes, 16)

    async def can_promote(self, actor: Actor) -> bool:
        if not actor.is_member:
            return False
        tier = await self._tiers.get_or_load(
            actor.discord_user_id, lambda: self.player_store.tier(actor.discord_user_id)
        )
        return can_promote(actor, tier, self.policy)

    async def promoter(self, actor: Actor) -> Player:
        player = await self.players.player_for(actor)
        if not await self.can_promote(actor):
            raise NotPromoter()
        return player

    async def preview(
        self, actor: Actor, *, include_available: bool = False, include_maybe: bool = False,
        dry_run: bool = False, start_at: time | None = None, title: str | None = None,
    ) -> Preview:
        initiator = await self.promoter(actor)
        return await self.preview_for(
            initiator, include_available=include_available, include_maybe=include_maybe, dry_run=dry_run,
            start_at=start_at, title=_title(title),
        )

    async def preview_for(
        self, initiator: Player, *, include_available: bool = False, include_maybe: bool = False,
        dry_run: bool = False, start_at: time | None = None, title: str | None = None, day: date | None = None,
    ) -> Preview:
        """The campaign `initiator` would create for `day` (default today), starting at `start_at` (default
        the configured start); the caller has checked who the initiator may be."""
        now = self.clock.now()
        day = day or campaign_date(now, self.config.zone)
        start_at = start_at or self.config.start_at
        not_opted_in = 0
        if dry_run:
            recipients = tuple(dry_run_recipients(initiator, await self.player_store.availability(initiator.id, day)))
        else:
            recipients, not_opted_in = await self._selections.get_or_load(
                (day, include_available, include_maybe),
                lambda: self._select(day, include_available, include_maybe),
            )
        schedule = compute_schedule(
            now, self.config.zone, start_at, self.config.lead, self.config.voice_check_delay, day=day
        )
        planned_reminder = local_datetime(day, start_at, self.config.zone) - self.config.lead
        return Preview(
            campaign_date=day,
            timezone=self.config.timezone,
            schedule=schedule,
            reminder_time=planned_reminder.astimezone(self.config.zone).time(),
            start_time=start_at,
            recipients=recipients,
            channels_summary=ChannelsSummary.of(recipients),
            unavailable_channels=frozenset(Channel) - self.channels,
            dry_run=dry_run,
            not_opted_in=not_opted_in,
            title=title,
            include_available=include_available,
            include_maybe=include_maybe,
        )

    async def _select(
        self, day: date, include_available: bool, include_maybe: bool
    ) -> tuple[tuple[Recipient, ...], int]:
        statuses = wanted_statuses(include_available, include_maybe)
        candidates = await self.player_store.candidates(day, statuses)
        recipients = select_recipients(
            candidates,
            include_available=include_available,
            include_maybe=include_maybe,
            enabled_channels=self.channels,
        )
        return tuple(recipients), await self.player_store.not_opted_in(day, statuses)

    async def create(
        self, actor: Actor, *, include_available: bool = False, include_maybe: bool = False,
        dry_run: bool = False, start_at: time | None = None, title: str | None = None,
    ) -> CampaignCreated:
        """Snapshot recipients and schedule the three jobs in one transaction."""
        initiator = await self.promoter(actor)
        preview = await self.preview_for(
            initiator, include_available=include_available, include_maybe=include_maybe, dry_run=dry_run,
            start_at=start_at, title=_title(title),
        )
        return await self.create_from(initiator, preview)

    async def create_from(
        self, initiator: Player, preview: Preview, *, standing_session_id: int | None = None
    ) -> CampaignCreated:
        """Create the campaign `preview` describes, as `initiator` (rules 5 and 6 apply); the caller has
        checked who the initiator may be. A standing session's decision creates its campaigns here."""
        if not preview.recipients:
            raise NoRecipients()
        created = await self.campaign_store.create(
            day=preview.campaign_date,
            initiator=initiator,
            dry_run=preview.dry_run,
            global_guard=self.config.global_cooldown,
            include_available=preview.include_available,
            include_maybe=preview.include_maybe,
            timezone=self.config.timezone,
            recipients=list(preview.recipients),
            schedule=preview.schedule,
            max_attempts=self.config.max_attempts,
            now=self.clock.now(),
            dry_run_limit=self.config.dry_run_daily_limit,
            start_time=preview.start_time,
            title=preview.title,
            standing_session_id=standing_session_id,
        )
        if created is CampaignLimit.DRY_RUNS:
            limit = self.config.dry_run_daily_limit
            message = (
                f"You have used today's {limit} dry run{'s' if limit != 1 else ''}; try again tomorrow."
                if limit else "Dry runs are turned off on this server."
            )
            raise TooManyRequests(message, self._seconds_to_midnight())
        if created is CampaignLimit.STANDING:
            raise CampaignExists(f"That standing session already has its campaign on {preview.campaign_date}.")
        if created is CampaignLimit.GLOBAL:
            raise CampaignExists("Tonight's session has already been promoted (one campaign per day).")
        if created is CampaignLimit.PER_PROMOTER:
            raise CampaignExists("You have already promoted a session today.")
        campaign, jobs = created
        log.info(
            "campaign %d created by player %d for %s: %d recipients%s%s",
            campaign.id, initiator.id, campaign.campaign_date, campaign.recipient_count,
            " (dry run)" if preview.dry_run else "",
            f" (standing session {standing_session_id})" if standing_session_id is not None else "",
        )
        self._on_jobs_created()
        return CampaignCreated(campaign, preview.schedule, tuple(jobs))

    def _seconds_to_midnight(self) -> float:
        """Until the next campaign date begins (local midnight in the promotion timezone)."""
        now = self.clock.now()
        tomorrow = campaign_date(now, self.config.zone) + timedelta(days=1)
        midnight = datetime.combine(tomorrow, time(0, 0), tzinfo=self.config.zone)
        return max(1.0, (midnight - now).total_seconds())

    async def status(self, actor: Actor, day: date | None = None) -> CampaignStatusView | None:
        """The campaign of `day`: the newest real one, else the newest dry run.

        Without a day: the campaign whose jobs are not all finished, else today's.
        """
        await self.players.player_for(actor)
        if day is None:
            campaign = await self._unfinished() or await self.campaign_store.for_date(self.players.today())
        else:
            campaign = await self.campaign_store.for_date(day)
        if campaign is None:
            return None
        return await self._view(campaign)

    async def _unfinished(self, prefer_initiator: int | None = None) -> Campaign | None:
        # Yesterday's too: after midnight the evening that began before it is still running. Older
        # ones are not looked at (a campaign left pending while the bot was down for days is stale).
        since = self.players.today() - timedelta(days=1)
        return await self.campaign_store.unfinished(since, prefer_initiator)

    async def _view(self, campaign: Campaign) -> CampaignStatusView:
        delivery = await self.campaign_store.delivery_counts(campaign.id)
        jobs = await self.campaign_store.jobs(campaign.id)
        standing = None
        if campaign.standing_session_id is not None:
            standing = await self.standing_store.get(campaign.standing_session_id)
        rsvp = await self.rsvp_store.counts(campaign.id)
        need = await self.need_store.counts(campaign.id)
        return CampaignStatusView(campaign, delivery, tuple(jobs), standing=standing, rsvp=rsvp, need=need)

    async def in_reach(self, initiator: Player, campaign_id: int | None = None) -> Campaign | None:
        """The campaign a promoter acts on: `campaign_id`'s, else the one whose jobs are not all
        finished (their own first), else their own of today, else today's."""
        if campaign_id is not None:
            return await self.campaign_store.get(campaign_id)
        today = self.players.today()
        return (
            await self._unfinished(prefer_initiator=initiator.id)
            or await self.campaign_store.active_for_initiator(initiator.id, today)
            or await self.campaign_store.for_date(today)
        )

    async def cancel(self, actor: Actor, campaign_id: int | None = None) -> CampaignStatusView:
        """Cancel a campaign; its pending jobs never run.

        Without an id: the campaign whose jobs are not all finished (the promoter's own first), else today's.
        """
        initiator = await self.promoter(actor)
        campaign = await self.in_reach(initiator, campaign_id)
        if campaign is None:
            raise NotFound("There is no campaign to cancel.")
        if not await self.campaign_store.cancel(campaign.id, self.clock.now()):
            raise NotFound(f"Campaign {campaign.id} is already over ({campaign.status.value}).")
        log.info("campaign %d cancelled by player %d", campaign.id, initiator.id)
        updated = await self.campaign_store.get(campaign.id)
        if updated is None:
            raise RuntimeError("row vanished right after being written")
        return await self._view(updated)


def _title(value: str | None) -> str | None:
    try:
        return clean_title(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
