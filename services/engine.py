"""Wire storage and services together (used by bot/app.py, the demo, tests and benchmarks)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from services.clock import Clock
from services.contacts import ContactCipher
from services.delivery.base import ChannelPoster, Sender, VoiceProbe
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
    players: PlayerStore
    links: LinkStore
    campaigns: CampaignStore
    jobs: JobStore
    ledger: LedgerStore
    promote: PromoteService
    player_service: PlayerService
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
    poster: ChannelPoster | None = None,
    voice: VoiceProbe | None = None,
    cipher: ContactCipher | None = None,
    send_concurrency: int = 16,
    owner: str | None = None,
    rng: random.Random | None = None,
    flush_interval: float = FLUSH_INTERVAL_SECONDS,
) -> Engine:
    """Build every store and service over one database; senders may be added later."""
    senders = senders if senders is not None else {}
    players = PlayerStore(db)
    links = LinkStore(db)
    campaigns = CampaignStore(db)
    jobs = JobStore(db)
    ledger = LedgerStore(db)
    fanout = Fanout(
        players=players, ledger=ledger, senders=senders, cipher=cipher, clock=clock,
        concurrency=send_concurrency, rng=rng, flush_interval=flush_interval,
    )
    dispatcher = Dispatcher(
        campaigns=campaigns, jobs=jobs, ledger=ledger, fanout=fanout, senders=senders,
        poster=poster, voice=voice, config=dispatch, clock=clock, owner=owner, rng=rng,
    )
    promote = PromoteService(
        players=players, campaigns=campaigns, config=promotion, policy=policy, clock=clock,
        on_jobs_created=dispatcher.wake,
    )
    player_service = PlayerService(players=players, links=links, promote=promote, clock=clock, cipher=cipher)
    return Engine(
        db=db, players=players, links=links, campaigns=campaigns, jobs=jobs, ledger=ledger,
        promote=promote, player_service=player_service, dispatcher=dispatcher, senders=senders,
        clock=clock, cipher=cipher,
    )
