"""Test helpers: an engine over a real SQLite file, a fake clock and recording senders."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.clock import FakeClock
from services.contacts import ContactCipher
from services.delivery.base import OutgoingMessage, Sender, SendResult
from services.dispatcher import DispatchConfig
from services.engine import Engine, build_engine
from services.metrics import Metrics
from services.models import Actor, Channel, PlayerStatus, Preferences
from services.permissions import PromoterPolicy
from services.promote import PromotionConfig
from storage.db import Database

ZONE = ZoneInfo("Europe/Ljubljana")
PROMOTER_ID = 1000
TELEGRAM_BOT = "rallypoint_bot"
TEST_KEY = ContactCipher.generate_key()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """One value of the process's metrics (0.0 when the series was never written)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def local(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=ZONE)


def opted_in(**fields: Any) -> Preferences:
    """Preferences of a player who turned promotions on (consent is opt-in: nobody is on by default)."""
    return Preferences(allow_promotions=True, promotions_chosen=True, **fields)


@dataclass
class RecordingSender:
    """A sender that records every attempt; `script` maps an address to queued results."""

    channel: Channel
    supports_dedup: bool = False
    sent: list[OutgoingMessage] = field(default_factory=list)
    attempts: list[OutgoingMessage] = field(default_factory=list)
    script: dict[str, list[SendResult]] = field(default_factory=dict)
    always: dict[str, SendResult] = field(default_factory=dict)
    on_send: Callable[[OutgoingMessage], None] | None = None
    before_send: Callable[[OutgoingMessage], Awaitable[None]] | None = None  # awaited first, e.g. to block
    delivered_nonces: dict[str, str] = field(default_factory=dict)
    # Crash simulation: every attempt after the first `hang_after` reaches the platform and then
    # never returns (the process dies before it learns the outcome).
    hang_after: int | None = None
    stall_after: int | None = None
    hanging: int = 0

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.attempts.append(message)
        if self.before_send is not None:
            await self.before_send(message)
        if self.stall_after is not None and len(self.attempts) > self.stall_after:
            self.hanging += 1  # stuck before the request, like a send waiting for its pacing slot
            await asyncio.Event().wait()
        if message.on_wire is not None:  # as the real senders do, right before the request
            await message.on_wire()
        if self.hang_after is not None and len(self.attempts) > self.hang_after:
            if message.nonce not in self.delivered_nonces or not self.supports_dedup:
                self.sent.append(message)
                self.delivered_nonces[message.nonce] = f"{self.channel.value}-{len(self.sent)}"
            self.hanging += 1
            await asyncio.Event().wait()
        if self.on_send is not None:
            self.on_send(message)
        await asyncio.sleep(0)
        queued = self.script.get(message.address)
        if queued:
            return queued.pop(0)
        if message.address in self.always:
            return self.always[message.address]
        if self.supports_dedup and message.nonce in self.delivered_nonces:
            return SendResult.sent(self.delivered_nonces[message.nonce])
        self.sent.append(message)
        mid = f"{self.channel.value}-{len(self.sent)}"
        self.delivered_nonces[message.nonce] = mid
        return SendResult.sent(mid)

    def to(self, address: str) -> list[OutgoingMessage]:
        return [m for m in self.sent if m.address == address]


@dataclass
class RecordingPoster:
    """The channel poster (a sender whose addresses are channel ids): records (channel id, text, nonce)."""

    channel: Channel = Channel.DISCORD
    supports_dedup: bool = True
    posts: list[tuple[int, str, str]] = field(default_factory=list)
    script: list[SendResult] = field(default_factory=list)  # answers before the posts go through

    async def send(self, message: OutgoingMessage) -> SendResult:
        if self.script:
            return self.script.pop(0)
        self.posts.append((int(message.address), message.text, message.nonce))
        return SendResult.sent(f"post-{len(self.posts)}")


@dataclass
class StaticVoice:
    ids: set[int] = field(default_factory=set)

    async def discord_ids_in_voice(self) -> frozenset[int]:
        return frozenset(self.ids)


FOLLOWUP_CHANNEL = 777


def promotion_config(**overrides: object) -> PromotionConfig:
    values: dict[str, object] = {
        "zone": ZONE,
        "reminder_at": time(20, 45),
        "start_at": time(21, 0),
        "voice_check_delay": timedelta(seconds=30),
        "global_cooldown": False,
        "max_attempts": 5,
    }
    values.update(overrides)
    return PromotionConfig(**values)  # type: ignore[arg-type]


@dataclass
class Harness:
    engine: Engine
    clock: FakeClock
    discord: RecordingSender
    telegram: RecordingSender
    signal: RecordingSender
    poster: RecordingPoster
    voice: StaticVoice
    cipher: ContactCipher
    path: Path
    build: Callable[..., Engine]  # build_engine with this harness's parts; keywords replace them

    def engine_with(self, **changes: Any) -> Engine:
        """Another engine over the same database and clock, e.g. after a restart with other settings."""
        return self.build(**changes)

    async def add_player(
        self,
        discord_id: int,
        name: str,
        status: PlayerStatus | None = PlayerStatus.LOOKING,
        prefs: Preferences | None = None,
        telegram: str | None = None,
        signal: str | None = None,
        day: date | None = None,
    ) -> int:
        """Add a player; unless `prefs` says otherwise, one who turned promotions on."""
        now = self.clock.now()
        player = await self.engine.player_store.upsert(discord_id, name, now)
        if status is not None:
            await self.engine.player_store.set_availability(
                player.id, day or now.astimezone(ZONE).date(), status, now
            )
        await self.engine.player_store.save_preferences(player.id, prefs or opted_in(), now)
        for channel, address in ((Channel.TELEGRAM, telegram), (Channel.SIGNAL, signal)):
            if address:
                await self.engine.link_store.save(
                    player.id,
                    channel,
                    self.cipher.encrypt(address),
                    self.cipher.address_hash(address),
                    now,
                )
        return player.id

    def actor(self, discord_id: int = PROMOTER_ID, name: str = "Promoter", member: bool = True) -> Actor:
        return Actor(discord_id, member, frozenset(), name)

    async def run_evening(self) -> None:
        """Run every job up to the end of the campaign date."""
        await self.engine.dispatcher.run_until(self.clock.now() + timedelta(hours=6))


async def make_harness(
    path: Path,
    start: datetime,
    *,
    config: PromotionConfig | None = None,
    lease_seconds: int = 60,
    max_lateness: timedelta = timedelta(minutes=30),
    owner: str | None = None,
    concurrency: int = 8,
    channels: frozenset[Channel] = frozenset(Channel),
    senders: Mapping[Channel, Sender] | None = None,
    policy: PromoterPolicy | None = None,
    telegram_bot_username: str | None = TELEGRAM_BOT,
    clock: FakeClock | None = None,
) -> Harness:
    """An engine over a fresh database at `start` (fake clock), with recording senders on `channels`.

    `senders` replace the recording senders of their channels (a test that sends through the emulators);
    `clock` replaces the fake clock (a kind of FakeClock of the test's own; `start` is then ignored).
    """
    clock = clock or FakeClock(start.astimezone(UTC))
    db = await Database.open(path)
    cipher = ContactCipher(TEST_KEY)
    discord = RecordingSender(Channel.DISCORD, supports_dedup=True)
    telegram = RecordingSender(Channel.TELEGRAM)
    signal = RecordingSender(Channel.SIGNAL)
    poster = RecordingPoster()
    voice = StaticVoice()
    recording: dict[Channel, Sender] = {Channel.DISCORD: discord, Channel.TELEGRAM: telegram, Channel.SIGNAL: signal}
    build = functools.partial(
        build_engine,
        db=db,
        promotion=config or promotion_config(),
        policy=policy or PromoterPolicy(frozenset({PROMOTER_ID}), frozenset(), frozenset()),
        dispatch=DispatchConfig(
            zone=ZONE,
            lease=timedelta(seconds=lease_seconds),
            max_lateness=max_lateness,
            followup_channel_id=FOLLOWUP_CHANNEL,
        ),
        clock=clock,
        senders={**{c: s for c, s in recording.items() if c in channels}, **(senders or {})},
        poster=poster,
        voice=voice,
        cipher=cipher,
        telegram_bot_username=telegram_bot_username,
        send_concurrency=concurrency,
        owner=owner,
        flush_interval=0.0,  # record every completion at once, so crash tests see exact windows
    )
    return Harness(build(), clock, discord, telegram, signal, poster, voice, cipher, path, build)
