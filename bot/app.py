"""Composition root: config → storage + migrations → services → bot + API, closed in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp

from bot.config import ConfigError, Settings
from bot.discord_endpoints import apply_discord_endpoints
from services.clock import Clock, SystemClock
from services.contacts import ContactCipher, ContactKeyMissing
from services.dispatcher import DispatchConfig
from services.engine import Engine, build_engine
from services.models import Channel
from services.permissions import PromoterPolicy
from services.promote import PromotionConfig
from storage.db import Database

log = logging.getLogger(__name__)


def promotion_config(settings: Settings) -> PromotionConfig:
    enabled = {Channel.DISCORD}
    if settings.telegram.enabled:
        enabled.add(Channel.TELEGRAM)
    if settings.signal.enabled:
        enabled.add(Channel.SIGNAL)
    if not settings.security.contact_encryption_key.get_secret_value():
        # Without a key no Telegram/Signal address can be stored or read: Discord only.
        enabled = {Channel.DISCORD}
    p = settings.promotion
    return PromotionConfig(
        zone=p.zone,
        reminder_at=p.reminder,
        start_at=p.start,
        voice_check_delay=timedelta(seconds=p.voice_check_delay_seconds),
        global_cooldown=p.global_cooldown,
        max_attempts=p.max_attempts,
        enabled_channels=frozenset(enabled),
    )


def promoter_policy(settings: Settings) -> PromoterPolicy:
    d = settings.discord
    return PromoterPolicy(frozenset(d.promoter_ids), frozenset(d.admin_ids), frozenset(d.promoter_role_ids))


def contact_cipher(settings: Settings) -> ContactCipher | None:
    keys = settings.security.contact_encryption_key.get_secret_value()
    if not keys:
        return None
    try:
        return ContactCipher(keys)
    except ValueError as exc:
        raise ConfigError(f"invalid config key security.contact_encryption_key: {exc}") from None


def build(settings: Settings, db: Database, clock: Clock, **parts: Any) -> Engine:
    """Build the engine for these settings (senders are added once their clients exist)."""
    p = settings.promotion
    return build_engine(
        db=db,
        promotion=promotion_config(settings),
        policy=promoter_policy(settings),
        dispatch=DispatchConfig(
            zone=p.zone,
            lease=timedelta(seconds=p.job_lease_seconds),
            max_lateness=timedelta(minutes=p.max_lateness_minutes),
            followup_channel_id=settings.discord.followup_channel_id,
        ),
        clock=clock,
        cipher=contact_cipher(settings),
        send_concurrency=p.send_concurrency,
        **parts,
    )


async def migrate(settings: Settings) -> list[str]:
    db = await Database.open(settings.storage.path, migrate=False)
    try:
        return await db.migrate()
    finally:
        await db.close()


async def rotate_contact_keys(settings: Settings) -> int:
    """Re-encrypt every stored address with the primary key (after adding a new key in front)."""
    if contact_cipher(settings) is None:
        raise ConfigError("security.contact_encryption_key is not set: nothing to rotate")
    db = await Database.open(settings.storage.path)
    try:
        from services.linking import LinkingService
        from storage.link_requests import LinkRequestStore

        engine = build(settings, db, SystemClock())
        linking = LinkingService(
            players=engine.players,
            link_store=engine.link_store,
            link_request_store=LinkRequestStore(db),
            cipher=engine.cipher,
            clock=engine.clock,
            telegram_bot_username=None,
            signal=None,
        )
        try:
            return await linking.rotate_keys()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    finally:
        await db.close()


@dataclass
class Application:
    """The running process: everything started in `start()` is closed by `stop()` in reverse."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    db: Database | None = None
    engine: Engine | None = None
    bot: Any = None
    api_runner: Any = None
    telegram: Any = None
    linking: Any = None
    http: aiohttp.ClientSession | None = None
    _bot_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        if not s.discord.token.get_secret_value():
            raise ConfigError("invalid config key discord.token: the bot token is required to run")
        if not s.discord.guild_id:
            raise ConfigError("invalid config key discord.guild_id: the community's guild id is required")
        apply_discord_endpoints(s.discord.api_base_url, s.discord.gateway_url)
        self.db = await Database.open(s.storage.path)
        log.info("database ready at %s (schema version %d)", s.storage.path, await self.db.schema_version())

        from bot.client import RallypointBot
        from services.delivery.discord_dm import (
            DiscordChannelPoster,
            DiscordDMSender,
            GatewayVoiceProbe,
        )

        self.bot = RallypointBot(settings=s)
        self.engine = build(
            s,
            self.db,
            self.clock,
            poster=DiscordChannelPoster(self.bot),
            voice=GatewayVoiceProbe(self.bot, s.discord.guild_id, s.discord.voice_channel_ids),
        )
        self.engine.senders[Channel.DISCORD] = DiscordDMSender(self.bot)
        self.bot.engine = self.engine
        await self._start_telegram_and_signal()
        await self._start_api()
        await self.bot.login(s.discord.token.get_secret_value())
        self._bot_task = asyncio.create_task(self.bot.connect(reconnect=True), name="discord-gateway")
        self._bot_task.add_done_callback(_log_task_failure)

    async def _start_telegram_and_signal(self) -> None:
        """Signal client, Telegram side and the linking service, when configured (and a key is set)."""
        s = self.settings
        engine = self.engine
        if engine is None:
            raise RuntimeError("engine must be built before the channels")
        if engine.cipher is None:
            if s.telegram.enabled or s.signal.enabled:
                log.warning("security.contact_encryption_key is not set: Telegram and Signal are disabled")
            return
        from bot.telegram_side import TelegramSide
        from services.delivery.signal import SignalClient, SignalSender
        from services.delivery.telegram import Pacer, TelegramSender
        from services.linking import LinkingService
        from storage.link_requests import LinkRequestStore

        signal_client = None
        if s.signal.enabled:
            self.http = aiohttp.ClientSession()
            signal_client = SignalClient(self.http, s.signal.api_url, s.signal.number)
            engine.senders[Channel.SIGNAL] = SignalSender(signal_client)
        self.linking = LinkingService(
            players=engine.players,
            link_store=engine.link_store,
            link_request_store=LinkRequestStore(engine.db),
            cipher=engine.cipher,
            clock=self.clock,
            telegram_bot_username=s.telegram.bot_username or None if s.telegram.enabled else None,
            signal=signal_client,
        )
        self.bot.linking = self.linking
        if s.telegram.enabled:
            self.telegram = TelegramSide(
                s.telegram.token.get_secret_value(),
                s.telegram.api_base_url or None,
                self.linking,
                s.telegram.bot_username,
            )
            await self.telegram.start()
            engine.senders[Channel.TELEGRAM] = TelegramSender(self.telegram.bot, Pacer(self.clock))

    async def _start_api(self) -> None:
        if not self.settings.api.enabled:
            return
        from bot.api_wiring import start_api_for

        self.api_runner = await start_api_for(self)

    async def wait(self) -> None:
        if self._bot_task is not None:
            await self._bot_task

    async def stop(self) -> None:
        log.info("shutting down")
        if self.engine is not None:
            await self.engine.dispatcher.shutdown()
        if self.api_runner is not None:
            await self.api_runner.cleanup()
        if self.bot is not None:
            await self.bot.close()
        if self._bot_task is not None:
            self._bot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._bot_task
        if self.telegram is not None:
            await self.telegram.stop()
        if self.http is not None:
            await self.http.close()
        if self.db is not None:
            await self.db.close()


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("discord connection ended", exc_info=task.exception())


async def run(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; a hard kill is safe too (job leases expire and resume)."""
    app = Application(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        waiter = asyncio.create_task(app.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for t in (waiter, stopper):
            t.cancel()
    finally:
        await app.stop()


__all__ = ["Application", "ContactKeyMissing", "migrate", "rotate_contact_keys", "run"]
