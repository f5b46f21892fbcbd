"""Composition root: each part is built in order, complete, and closed in the exact reverse order.

database → Discord bot → Telegram bot → senders → engine (services, linking) → cogs → Telegram side
→ API → gateway. Every start registers its own close on one `AsyncExitStack`; the scheduler, which
the gateway sets going, is stopped first of all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import telegram
from aiohttp import web

from bot.api import ApiDeps, CachedMembership, OAuthConfig, create_app, start_api
from bot.client import RallypointBot
from bot.config import ConfigError, Settings
from bot.discord_endpoints import apply_discord_endpoints
from bot.guild_membership import GuildMembership
from bot.telegram_side import TelegramSide, deep_link_username
from cogs.availability import AvailabilityCog
from cogs.notify import NotifyCog
from cogs.promote import PromoteCog
from cogs.scheduler import SchedulerCog
from services.clock import Clock, SystemClock
from services.contacts import ContactCipher
from services.delivery.base import Sender, VoiceProbe
from services.delivery.discord_dm import DiscordChannelPoster, DiscordDMSender, GatewayVoiceProbe
from services.delivery.discord_limits import DiscordLimits
from services.delivery.signal import SignalClient, SignalSender
from services.delivery.telegram import Pacer, TelegramSender, build_telegram_bot
from services.dispatcher import DispatchConfig
from services.engine import Engine, build_engine
from services.models import Channel
from services.permissions import PromoterPolicy
from services.promote import PromotionConfig
from storage.db import Database
from storage.discord_dms import DiscordDMStore

log = logging.getLogger(__name__)

MEMBERSHIP_CACHE_SECONDS = 30.0
GATEWAY_CLOSE_SECONDS = 10.0


# -- settings → parts ------------------------------------------------------------------------


def promotion_config(settings: Settings) -> PromotionConfig:
    p = settings.promotion
    return PromotionConfig(
        zone=p.zone,
        reminder_at=p.reminder,
        start_at=p.start,
        voice_check_delay=timedelta(seconds=p.voice_check_delay_seconds),
        global_cooldown=p.global_cooldown,
        max_attempts=p.max_attempts,
        dry_run_daily_limit=p.dry_run_daily_limit,
    )


def promoter_policy(settings: Settings) -> PromoterPolicy:
    d = settings.discord
    return PromoterPolicy(frozenset(d.promoter_ids), frozenset(d.admin_ids), frozenset(d.promoter_role_ids))


def dispatch_config(settings: Settings) -> DispatchConfig:
    p = settings.promotion
    return DispatchConfig(
        zone=p.zone,
        lease=timedelta(seconds=p.job_lease_seconds),
        max_lateness=timedelta(minutes=p.max_lateness_minutes),
        followup_channel_id=settings.discord.followup_channel_id,
    )


def discord_limits(settings: Settings, clock: Clock) -> DiscordLimits:
    d = settings.discord
    return DiscordLimits(
        clock,
        global_per_second=d.global_rate_per_second,
        dm_opens_per_second=d.dm_open_rate_per_second,
        invalid_requests_pause_at=d.invalid_requests_pause_at,
    )


def contact_cipher(settings: Settings) -> ContactCipher | None:
    keys = settings.security.contact_encryption_key.get_secret_value()
    if not keys:
        return None
    try:
        return ContactCipher(keys)
    except ValueError as exc:
        raise ConfigError(f"invalid config key security.contact_encryption_key: {exc}") from None


def engine_for(
    settings: Settings,
    db: Database,
    clock: Clock,
    *,
    senders: Mapping[Channel, Sender],
    poster: Sender | None = None,
    voice: VoiceProbe | None = None,
    telegram_bot_username: str | None = None,
    community_name: Callable[[], str | None] = lambda: None,
) -> Engine:
    """The engine for these settings over `db`, sending through `senders` (the app, rotate-keys, benchmarks)."""
    return build_engine(
        db=db,
        promotion=promotion_config(settings),
        policy=promoter_policy(settings),
        dispatch=dispatch_config(settings),
        clock=clock,
        senders=senders,
        poster=poster,
        voice=voice,
        cipher=contact_cipher(settings),
        telegram_bot_username=telegram_bot_username,
        community_name=community_name,
        send_concurrency=settings.promotion.send_concurrency,
    )


# -- the running process ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Running:
    """Everything `started()` built, complete (tests, the demo and benchmarks look inside)."""

    settings: Settings
    clock: Clock
    db: Database
    bot: RallypointBot
    engine: Engine
    telegram: TelegramSide | None  # None: Telegram is not configured (or no contact key)
    api: web.AppRunner | None  # None: api.enabled is false
    gateway: asyncio.Task[None]  # the Discord connection; it ends only on a fatal error or at close


@contextlib.asynccontextmanager
async def started(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Running]:
    """Start the whole process in order; leaving the block closes it in the exact reverse order."""
    clock = clock or SystemClock()
    _require_discord(settings)
    cipher = contact_cipher(settings)
    if cipher is None and (settings.telegram.enabled or settings.signal.enabled):
        log.warning("security.contact_encryption_key is not set: Telegram and Signal are disabled")
    apply_discord_endpoints(settings.discord.api_base_url, settings.discord.gateway_url)
    async with contextlib.AsyncExitStack() as stack:
        db = await Database.open(settings.storage.path)
        stack.push_async_callback(db.close)
        log.info("database ready at %s (schema version %d)", settings.storage.path, await db.schema_version())

        # Entering the client readies it for cogs before any login; leaving it closes it (its cogs,
        # the scheduler loop with them, and its HTTP session). On a normal shutdown the gateway step
        # has closed it already, and this finds it closed.
        bot = await stack.enter_async_context(RallypointBot(settings=settings, limits=discord_limits(settings, clock)))

        telegram_bot = await _telegram_bot(stack, settings) if cipher is not None else None
        senders = await _senders(stack, settings, db, bot, telegram_bot, cipher, clock)
        engine = engine_for(
            settings, db, clock,
            senders=senders,
            poster=DiscordChannelPoster(bot, bot.limits),
            voice=GatewayVoiceProbe(bot, settings.discord.guild_id, settings.discord.voice_channel_ids),
            telegram_bot_username=(
                deep_link_username(settings.telegram.bot_username, telegram_bot) if telegram_bot else None
            ),
            community_name=functools.partial(_guild_name, bot, settings.discord.guild_id),
        )
        for cog in (
            PromoteCog(bot, engine), AvailabilityCog(bot, engine), NotifyCog(bot, engine), SchedulerCog(bot, engine)
        ):
            await bot.add_cog(cog)

        side = None
        if telegram_bot is not None:
            side = TelegramSide(telegram_bot, engine.linking)
            await stack.enter_async_context(side)
        api = await _api(stack, settings, engine, bot, clock) if settings.api.enabled else None
        gateway = await _gateway(stack, settings, bot, engine)
        try:
            yield Running(settings, clock, db, bot, engine, side, api, gateway)
        finally:
            log.info("shutting down")


def _guild_name(bot: RallypointBot, guild_id: int) -> str | None:
    """The community's server name as the gateway knows it (None before the guild arrives)."""
    guild = bot.get_guild(guild_id)
    return guild.name if guild is not None else None


def _require_discord(settings: Settings) -> None:
    if not settings.discord.token.get_secret_value():
        raise ConfigError("invalid config key discord.token: the bot token is required to run")
    if not settings.discord.guild_id:
        raise ConfigError("invalid config key discord.guild_id: the community's guild id is required")


async def _telegram_bot(stack: contextlib.AsyncExitStack, settings: Settings) -> telegram.Bot | None:
    if not settings.telegram.enabled:
        return None
    bot = await build_telegram_bot(settings.telegram.token.get_secret_value(), settings.telegram.api_base_url or None)
    stack.push_async_callback(bot.shutdown)
    return bot


async def _senders(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    db: Database,
    bot: RallypointBot,
    telegram_bot: telegram.Bot | None,
    cipher: ContactCipher | None,
    clock: Clock,
) -> dict[Channel, Sender]:
    """One sender per configured channel: the channels a campaign may use are exactly these.

    Telegram and Signal need the contact key (no address can be read without it).
    """
    senders: dict[Channel, Sender] = {Channel.DISCORD: DiscordDMSender(bot, bot.limits, DiscordDMStore(db), clock)}
    if telegram_bot is not None:
        senders[Channel.TELEGRAM] = TelegramSender(telegram_bot, Pacer(clock))
    if settings.signal.enabled and cipher is not None:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        senders[Channel.SIGNAL] = SignalSender(SignalClient(http, settings.signal.api_url, settings.signal.number))
    return senders


async def _api(
    stack: contextlib.AsyncExitStack, settings: Settings, engine: Engine, bot: RallypointBot, clock: Clock
) -> web.AppRunner:
    membership = CachedMembership(
        GuildMembership(bot, settings.discord.guild_id), clock, ttl_seconds=MEMBERSHIP_CACHE_SECONDS
    )
    deps = ApiDeps(
        promote=engine.promote,
        players=engine.players,
        linking=engine.linking,
        sessions=engine.web_sessions,
        membership=membership,
        clock=clock,
        oauth=OAuthConfig.from_settings(settings),
    )
    runner = await start_api(create_app(deps, settings), settings.api.host, settings.api.port)
    stack.push_async_callback(runner.cleanup)
    return runner


async def _gateway(
    stack: contextlib.AsyncExitStack, settings: Settings, bot: RallypointBot, engine: Engine
) -> asyncio.Task[None]:
    """Log in and connect; once the gateway is ready the scheduler cog starts claiming jobs."""
    await bot.login(settings.discord.token.get_secret_value())
    gateway = asyncio.create_task(bot.connect(reconnect=True), name="discord-gateway")
    gateway.add_done_callback(_log_gateway_end)
    stack.push_async_callback(_disconnect, bot, gateway)
    # Registered last, so it runs first: nothing is claimed once shutdown begins, and the jobs in
    # flight stop before the clients they send through close.
    stack.push_async_callback(engine.dispatcher.shutdown)
    return gateway


async def _disconnect(bot: RallypointBot, gateway: asyncio.Task[None]) -> None:
    await bot.close()
    gateway.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        async with asyncio.timeout(GATEWAY_CLOSE_SECONDS):
            await gateway


def _log_gateway_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("discord connection ended", exc_info=task.exception())


async def run(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; a hard kill is safe too (job leases expire and resume)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with started(settings) as app:
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({app.gateway, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()


# -- one-shot commands -----------------------------------------------------------------------


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
        # Built as `run` builds it, without any channel: nothing is sent.
        engine = engine_for(settings, db, SystemClock(), senders={})
        try:
            return await engine.linking.rotate_keys()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    finally:
        await db.close()


__all__ = ["Running", "engine_for", "migrate", "rotate_contact_keys", "run", "started"]
