"""Build storage and services over one database (used by bot/app.py, rotate-keys, the demo, tests and benchmarks)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from services.clock import Clock
from services.contacts import ContactCipher
from services.delivery.base import Sender, VoiceProbe
from services.dispatcher import DispatchConfig, Dispatcher
from services.fanout import FLUSH_INTERVAL_SECONDS, Fanout
from services.linking import LinkingService
from services.metrics import Metrics
from services.models import Channel
from services.need import NeedService
from services.permissions import PromoterPolicy
from services.players import PlayerService
from services.promote import PromoteService, PromotionConfig
from services.rsvp import RsvpService
from services.standing import StandingConfig, StandingService
from services.web_sessions import WebSessionService
from storage.campaigns import CampaignStore
from storage.db import Database
from storage.discord_dms import DiscordDMStore
from storage.jobs import JobStore
from storage.ledger import LedgerStore
from storage.link_requests import LinkRequestStore
from storage.links import LinkStore
from storage.needs import NeedStore
from storage.players import PlayerStore
from storage.rsvps import RsvpStore
from storage.standing import StandingStore
from storage.web_sessions import WebSessionStore


@dataclass(frozen=True, slots=True)
class Engine:
    """Every store (`*_store`) and service over one database, wired once."""

    db: Database
    player_store: PlayerStore
    link_store: LinkStore
    discord_dm_store: DiscordDMStore
    link_request_store: LinkRequestStore
    campaign_store: CampaignStore
    job_store: JobStore
    ledger_store: LedgerStore
    rsvp_store: RsvpStore
    need_store: NeedStore
    web_session_store: WebSessionStore
    standing_store: StandingStore
    players: PlayerService
    promote: PromoteService
    rsvp: RsvpService
    need: NeedService
    standing: StandingService
    linking: LinkingService
    web_sessions: WebSessionService
    dispatcher: Dispatcher
    senders: Mapping[Channel, Sender]
    clock: Clock
    cipher: ContactCipher | None
    metrics: Metrics


def build_engine(
    *,
    db: Database,
    promotion: PromotionConfig,
    policy: PromoterPolicy,
    dispatch: DispatchConfig,
    clock: Clock,
    senders: Mapping[Channel, Sender],
    poster: Sender | None = None,
    voice: VoiceProbe | None = None,
    cipher: ContactCipher | None = None,
    telegram_bot_username: str | None = None,
    community_name: Callable[[], str | None] = lambda: None,
    send_concurrency: int = 16,
    metrics: Metrics | None = None,
    owner: str | None = None,
    rng: random.Random | None = None,
    flush_interval: float = FLUSH_INTERVAL_SECONDS,
) -> Engine:
    """Build every store and service; the channels a campaign may use are the senders' channels.

    `poster` posts the voice-check summary to a text channel (its addresses are channel ids);
    `telegram_bot_username` is what Telegram deep links open (needed to link Telegram);
    `community_name` names the Discord server in Signal code messages; `metrics` is the process's (a
    fresh one when the caller does not expose any).
    """
    metrics = metrics or Metrics()
    if cipher is None and set(senders) - {Channel.DISCORD}:
        raise ValueError("Telegram and Signal need the contact encryption key: no address can be read without it")
    senders = MappingProxyType(dict(senders))
    player_store = PlayerStore(db)
    link_store = LinkStore(db)
    discord_dm_store = DiscordDMStore(db)
    link_request_store = LinkRequestStore(db)
    campaign_store = CampaignStore(db)
    job_store = JobStore(db)
    ledger_store = LedgerStore(db)
    rsvp_store = RsvpStore(db)
    need_store = NeedStore(db)
    web_session_store = WebSessionStore(db)
    standing_store = StandingStore(db)
    fanout = Fanout(
        player_store=player_store, ledger_store=ledger_store, senders=senders, cipher=cipher, clock=clock,
        concurrency=send_concurrency, metrics=metrics, rng=rng, flush_interval=flush_interval,
    )
    players = PlayerService(
        player_store=player_store, link_store=link_store, discord_dm_store=discord_dm_store, zone=promotion.zone,
        clock=clock, changes=db.changes, cipher=cipher,
    )
    # Set when a job is created: the services that create jobs are built before the dispatcher they wake.
    jobs_created = asyncio.Event()
    promote = PromoteService(
        players=players, player_store=player_store, campaign_store=campaign_store, rsvp_store=rsvp_store,
        need_store=need_store, standing_store=standing_store, config=promotion, policy=policy,
        channels=frozenset(senders), clock=clock, changes=db.changes, on_jobs_created=jobs_created.set,
    )
    rsvp = RsvpService(
        campaign_store=campaign_store, player_store=player_store, link_store=link_store, rsvp_store=rsvp_store,
        cipher=cipher, zone=promotion.zone, clock=clock, metrics=metrics,
    )
    need = NeedService(
        promote=promote, player_store=player_store, campaign_store=campaign_store, need_store=need_store,
        channels=frozenset(senders), max_attempts=promotion.max_attempts, clock=clock,
        on_jobs_created=jobs_created.set,
    )
    standing = StandingService(
        promote=promote, standing_store=standing_store, campaign_store=campaign_store, clock=clock,
        config=StandingConfig(
            zone=promotion.zone, decision_lead=promotion.standing_decision_lead, max_lateness=dispatch.max_lateness,
            max_attempts=promotion.max_attempts,
        ),
        on_jobs_created=jobs_created.set,
    )
    dispatcher = Dispatcher(
        campaign_store=campaign_store, job_store=job_store, ledger_store=ledger_store, rsvp_store=rsvp_store,
        need_store=need_store, fanout=fanout, senders=senders, poster=poster, voice=voice, config=dispatch,
        clock=clock, metrics=metrics, owner=owner, rng=rng, standing=standing, wakeup=jobs_created,
    )
    linking = LinkingService(
        players=players, link_store=link_store, link_request_store=link_request_store, cipher=cipher, clock=clock,
        telegram_bot_username=telegram_bot_username if Channel.TELEGRAM in senders else None,
        signal=senders.get(Channel.SIGNAL), discord=senders.get(Channel.DISCORD), community_name=community_name,
    )
    return Engine(
        db=db, player_store=player_store, link_store=link_store, discord_dm_store=discord_dm_store,
        link_request_store=link_request_store, campaign_store=campaign_store, job_store=job_store,
        ledger_store=ledger_store, rsvp_store=rsvp_store, need_store=need_store, web_session_store=web_session_store,
        standing_store=standing_store, players=players, promote=promote, rsvp=rsvp, need=need, standing=standing,
        linking=linking, web_sessions=WebSessionService(store=web_session_store, clock=clock, changes=db.changes),
        dispatcher=dispatcher,
        senders=senders, clock=clock, cipher=cipher, metrics=metrics,
    )
