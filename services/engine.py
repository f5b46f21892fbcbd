"""Wire storage and services together (used by bot/app.py, the demo, tests and benchmarks)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from services.clock import Clock
from services.contacts import ContactCipher
from services.delivery.base import Sender, VoiceProbe
from services.dispatcher import DispatchConfig, Dispatcher
from services.fanout import FLUSH_INTERVAL_SECONDS, Fanout
from services.models import Channel
from services.permissions import PromoterPolicy
from services.players import PlayerService
from services.promote import PromoteService, PromotionConfig
from storage.campaigns import CampaignStore
from storage.db import Database
from storage.jobs import JobStore
from storage.ledger import LedgerStore
from storage.links import LinkStore
from storage.players import PlayerStore


@dataclass(slots=True)
class Engine:
    db: Database
    player_store: PlayerStore
    link_store: LinkStore
    campaign_store: CampaignStore
    job_store: JobStore
    ledger_store: LedgerStore
    players: PlayerService
    promote: PromoteService
    dispatcher: Dispatcher
    senders: dict[Channel, Sender]
    clock: Clock
    cipher: ContactCipher | None


def build_engine(
    *,
    db: Database,
    promotion: PromotionConfig,
    policy: PromoterPolicy,
    dispatch: DispatchConfig,
    clock: Clock,
    senders: dict[Channel, Sender] | None = None,
    poster: Sender | None = None,
    voice: VoiceProbe | None = None,
    cipher: ContactCipher | None = None,
    send_concurrency: int = 16,
    owner: str | None = None,
    rng: random.Random | None = None,
    flush_interval: float = FLUSH_INTERVAL_SECONDS,
) -> Engine:
    """Build every store and service over one database; senders may be added later."""
    senders = senders if senders is not None else {}
    player_store = PlayerStore(db)
    link_store = LinkStore(db)
    campaign_store = CampaignStore(db)
    job_store = JobStore(db)
    ledger_store = LedgerStore(db)
    fanout = Fanout(
        player_store=player_store, ledger_store=ledger_store, senders=senders, cipher=cipher, clock=clock,
        concurrency=send_concurrency, rng=rng, flush_interval=flush_interval,
    )
    dispatcher = Dispatcher(
        campaign_store=campaign_store, job_store=job_store, ledger_store=ledger_store, fanout=fanout,
        senders=senders, poster=poster, voice=voice, config=dispatch, clock=clock, owner=owner, rng=rng,
    )
    players = PlayerService(
        player_store=player_store, link_store=link_store, zone=promotion.zone, clock=clock, cipher=cipher
    )
    promote = PromoteService(
        players=players, player_store=player_store, campaign_store=campaign_store, config=promotion,
        policy=policy, clock=clock, on_jobs_created=dispatcher.wake,
    )
    return Engine(
        db=db, player_store=player_store, link_store=link_store, campaign_store=campaign_store,
        job_store=job_store, ledger_store=ledger_store, players=players, promote=promote,
        dispatcher=dispatcher, senders=senders, clock=clock, cipher=cipher,
    )
