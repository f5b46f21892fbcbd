"""Composition root: each part is built in order, complete, and closed in the exact reverse order.

checks → database → Discord bot → Telegram bot → Signal client → senders → engine (services, linking)
→ cogs → Telegram side → Signal side → API → gateway. Every start registers its own close on one `AsyncExitStack`; the
scheduler, which the gateway sets going, is stopped first of all.

What stops start-up is a `ConfigError` naming the key (exit code 2, never a traceback): the checks
`check-config` shares, a database file that cannot serve, a token Discord rejects, a guild the bot
cannot see. An unreachable Discord is waited out instead, with one log line per try.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import aiohttp
import discord
import discord.http
import telegram
import telegram.error
from aiohttp import web

from bot.api import ApiDeps, CachedMembership, OAuthConfig, create_app, start_api
from bot.client import RallypointBot
from bot.config import ConfigError, Settings
from bot.discord_endpoints import apply_discord_endpoints
from bot.guild_membership import GuildMembership
from bot.preflight import check_run
from bot.readiness import Readiness
from bot.signal_side import SignalSide
from bot.telegram_side import TelegramSide, deep_link_username
from cogs.availability import AvailabilityCog
from cogs.notify import NotifyCog
from cogs.promote import PromoteCog
from cogs.rsvp import RsvpCog
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
from services.metrics import Metrics
from services.models import Channel
from services.permissions import PromoterPolicy
from services.promote import PromotionConfig
from storage.backup import BackupResult, aside_name, backup
from storage.db import Database, StorageError
from storage.discord_dms import DiscordDMStore

log = logging.getLogger(__name__)
T = TypeVar("T")

MEMBERSHIP_CACHE_SECONDS = 30.0
GATEWAY_CLOSE_SECONDS = 10.0
REACH_RETRY_FIRST_SECONDS = 1.0
REACH_RETRY_CAP_SECONDS = 60.0
DISCORD_PROBE_TIMEOUT_SECONDS = 10.0
_UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)
# Discord's answers when the bot cannot see the guild: Missing Access, Unknown Guild.
_GUILD_NOT_VISIBLE = frozenset({50001, 10004})


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
        standing_decision_lead=timedelta(minutes=p.standing_decision_minutes),
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


def discord_limits(settings: Settings, clock: Clock, metrics: Metrics) -> DiscordLimits:
    d = settings.discord
    return DiscordLimits(
        clock,
        metrics,
        global_per_second=d.global_rate_per_second,
        dm_opens_per_second=d.dm_open_rate_per_second,
        invalid_requests_pause_at=d.invalid_requests_pause_at,
    )


def contact_cipher(settings: Settings) -> ContactCipher | None:
    """The cipher for the configured key(s) (checked when the settings were loaded); None without a key."""
    keys = settings.security.contact_encryption_key.get_secret_value()
    return ContactCipher(keys) if keys.strip() else None


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
    metrics: Metrics | None = None,
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
        metrics=metrics,
    )


@dataclass(frozen=True, slots=True)
class OpenedDatabase:
    db: Database
    applied: list[str]  # the migrations applied on opening
    copy: BackupResult | None  # the copy taken aside before they were applied


async def open_database(settings: Settings, clock: Clock) -> OpenedDatabase:
    """Open (or create) the database and apply pending migrations, copying the file aside first.

    A file that cannot serve (a directory, not SQLite, read-only, a schema newer than this code) is
    a ConfigError naming `storage.path`.
    """
    path = settings.storage.path
    try:
        db = await Database.open(path, migrate=False)
        try:
            pending = await db.pending_migrations()
            version = await db.schema_version()
            copy = None
            if pending and version > 0:  # an empty new database has nothing worth a copy
                copy = await asyncio.to_thread(backup, path, aside_name(path, version, clock.now()))
                log.info("copied the database to %s before applying %d migration(s)", copy.target, len(pending))
            return OpenedDatabase(db, await db.migrate(), copy)
        except BaseException:
            await db.close()
            raise
    except StorageError as exc:
        raise ConfigError(f"invalid config key storage.path: {exc}") from None


# -- the running process ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Running:
    """Everything `started()` built, complete (tests, the demo and benchmarks look inside)."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    db: Database
    bot: RallypointBot
    engine: Engine
    telegram: TelegramSide | None  # None: Telegram is not configured (or no contact key)
    signal: SignalSide | None  # None: Signal is not configured (or no contact key)
    api: web.AppRunner | None  # None: api.enabled is false
    gateway: asyncio.Task[None]  # the Discord connection; it ends only on a fatal error or at close


@contextlib.asynccontextmanager
async def started(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Running]:
    """Start the whole process in order; leaving the block closes it in the exact reverse order."""
    clock = clock or SystemClock()
    for warning in check_run(settings, os.environ):  # what check-config checks, the same way
        log.warning("%s", warning)
    cipher = contact_cipher(settings)
    apply_discord_endpoints(settings.discord.api_base_url, settings.discord.gateway_url)
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        db = (await open_database(settings, clock)).db
        stack.push_async_callback(db.close)
        log.info("database ready at %s (schema version %d)", settings.storage.path, await db.schema_version())
        # No network, or an outage: waited out here, before anything depends on Discord.
        timeout = aiohttp.ClientTimeout(total=DISCORD_PROBE_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await until_reachable(
                f"Discord at {discord.http.Route.BASE}",
                functools.partial(_probe_discord, http),
                (*_UNREACHABLE, _DiscordUnavailable),
                clock,
            )

        # Entering the client readies it for cogs before any login; leaving it closes it (its cogs,
        # the scheduler loop with them, and its HTTP session). On a normal shutdown the gateway step
        # has closed it already, and this finds it closed.
        bot = await stack.enter_async_context(
            RallypointBot(settings=settings, limits=discord_limits(settings, clock, metrics), metrics=metrics)
        )

        telegram_bot = await _telegram_bot(stack, settings, clock) if cipher is not None else None
        # One HTTP session for signal-cli-rest-api: sends (promotions, codes, confirmations) and receives.
        signal_http = signal_client = None
        if settings.signal.enabled and cipher is not None:
            signal_http = await stack.enter_async_context(aiohttp.ClientSession())
            signal_client = SignalClient(signal_http, settings.signal.api_url, settings.signal.number)
        senders = _senders(settings, db, bot, telegram_bot, signal_client, clock)
        engine = engine_for(
            settings, db, clock,
            senders=senders,
            poster=DiscordChannelPoster(bot, bot.limits),
            voice=GatewayVoiceProbe(bot, settings.discord.guild_id, settings.discord.voice_channel_ids),
            telegram_bot_username=(
                deep_link_username(settings.telegram.bot_username, telegram_bot) if telegram_bot else None
            ),
            community_name=functools.partial(_guild_name, bot, settings.discord.guild_id),
            metrics=metrics,
        )
        for cog in (
            PromoteCog(bot, engine), AvailabilityCog(bot, engine), NotifyCog(bot, engine), RsvpCog(bot, engine),
            SchedulerCog(bot, engine),
        ):
            await bot.add_cog(cog)

        side = None
        if telegram_bot is not None:
            side = TelegramSide(telegram_bot, engine.linking, engine.rsvp)
            await stack.enter_async_context(side)
        replies = None
        if signal_http is not None and signal_client is not None:
            replies = SignalSide(
                signal_http, settings.signal.api_url, settings.signal.number, engine.rsvp, signal_client, clock
            )
            await stack.enter_async_context(replies)
        readiness = Readiness(bot=bot, db=db, dispatcher=engine.dispatcher, clock=clock)
        api = await _api(stack, settings, engine, bot, clock, readiness) if settings.api.enabled else None
        gateway = await _gateway(stack, settings, bot, engine, clock)
        try:
            yield Running(settings, clock, metrics, db, bot, engine, side, replies, api, gateway)
        finally:
            log.info("shutting down")


def _guild_name(bot: RallypointBot, guild_id: int) -> str | None:
    """The community's server name as the gateway knows it (None before the guild arrives)."""
    guild = bot.get_guild(guild_id)
    return guild.name if guild is not None else None


async def _telegram_bot(stack: contextlib.AsyncExitStack, settings: Settings, clock: Clock) -> telegram.Bot | None:
    if not settings.telegram.enabled:
        return None
    build = functools.partial(
        build_telegram_bot, settings.telegram.token.get_secret_value(), settings.telegram.api_base_url or None
    )
    try:
        bot = await until_reachable("Telegram", build, (telegram.error.NetworkError,), clock)
    except telegram.error.InvalidToken:
        raise ConfigError(
            "invalid config key telegram.token: Telegram rejected the token; ask @BotFather for the current one"
        ) from None
    stack.push_async_callback(bot.shutdown)
    return bot


def _senders(
    settings: Settings,
    db: Database,
    bot: RallypointBot,
    telegram_bot: telegram.Bot | None,
    signal_client: SignalClient | None,
    clock: Clock,
) -> dict[Channel, Sender]:
    """One sender per configured channel: the channels a campaign may use are exactly these.

    Telegram and Signal need the contact key (no address can be read without it): without it their
    clients are never built.
    """
    senders: dict[Channel, Sender] = {Channel.DISCORD: DiscordDMSender(bot, bot.limits, DiscordDMStore(db), clock)}
    if telegram_bot is not None:
        senders[Channel.TELEGRAM] = TelegramSender(telegram_bot, Pacer(clock))
    if signal_client is not None:
        senders[Channel.SIGNAL] = SignalSender(signal_client)
    return senders


async def _api(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    engine: Engine,
    bot: RallypointBot,
    clock: Clock,
    readiness: Readiness,
) -> web.AppRunner:
    membership = CachedMembership(
        GuildMembership(bot, settings.discord.guild_id), clock, ttl_seconds=MEMBERSHIP_CACHE_SECONDS
    )
    deps = ApiDeps(
        promote=engine.promote,
        standing=engine.standing,
        need=engine.need,
        players=engine.players,
        linking=engine.linking,
        sessions=engine.web_sessions,
        membership=membership,
        clock=clock,
        readiness=readiness,
        metrics=engine.metrics,
        changes=engine.db.changes,
        oauth=OAuthConfig.from_settings(settings),
    )
    runner = await start_api(create_app(deps, settings), settings.api.host, settings.api.port)
    stack.push_async_callback(runner.cleanup)
    return runner


async def _gateway(
    stack: contextlib.AsyncExitStack, settings: Settings, bot: RallypointBot, engine: Engine, clock: Clock
) -> asyncio.Task[None]:
    """Log in and connect; once the gateway is ready the scheduler cog starts claiming jobs."""
    await _login(bot, settings)
    gateway = asyncio.create_task(bot.connect(reconnect=True), name="discord-gateway")
    gateway.add_done_callback(_log_gateway_end)
    stack.push_async_callback(_disconnect, bot, gateway)
    # Registered last, so it runs first: nothing is claimed once shutdown begins, and the jobs in
    # flight stop before the clients they send through close.
    stack.push_async_callback(engine.dispatcher.shutdown)
    return gateway


class _DiscordUnavailable(Exception):
    """Discord answered with a server error (an outage): wait, as for no answer at all."""


async def _probe_discord(http: aiohttp.ClientSession) -> None:
    # GET /gateway needs no token; discord.py's own login is not retried because each failed call
    # leaves an HTTP session behind.
    async with http.get(f"{discord.http.Route.BASE}/gateway") as response:
        if response.status >= 500:
            raise _DiscordUnavailable(f"HTTP {response.status}")


async def until_reachable(
    what: str, attempt: Callable[[], Awaitable[T]], transient: tuple[type[BaseException], ...], clock: Clock
) -> T:
    """Retry `attempt` with backoff while it fails with `transient` (no network, an outage), one log line per try."""
    delay, tries = REACH_RETRY_FIRST_SECONDS, 0
    while True:
        tries += 1
        try:
            result = await attempt()
        except transient as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("cannot reach %s (%s); retrying in %g s (try %d)", what, problem, delay, tries)
            await clock.sleep(delay)
            delay = min(REACH_RETRY_CAP_SECONDS, delay * 2)
            continue
        if tries > 1:
            log.info("reached %s after %d tries", what, tries)
        return result


async def _login(bot: RallypointBot, settings: Settings) -> None:
    """Log in and sync the slash commands to the guild; what Discord refuses is a ConfigError naming the key."""
    try:
        await bot.login(settings.discord.token.get_secret_value())
    except discord.LoginFailure:
        raise ConfigError(
            "invalid config key discord.token: Discord rejected the token (401); copy a new one from the "
            "Developer Portal (Bot → Reset Token)"
        ) from None
    except discord.HTTPException as exc:
        if exc.status in (403, 404) and exc.code in _GUILD_NOT_VISIBLE:
            raise ConfigError(
                f"invalid config key discord.guild_id: the bot cannot see guild {settings.discord.guild_id} "
                f"(Discord: {exc.status} {exc.text or 'Missing Access'}); invite it to that server with the bot "
                "and applications.commands scopes"
            ) from None
        raise


async def _disconnect(bot: RallypointBot, gateway: asyncio.Task[None]) -> None:
    await bot.close()
    gateway.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        async with asyncio.timeout(GATEWAY_CLOSE_SECONDS):
            await gateway


def _log_gateway_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("discord connection ended", exc_info=task.exception())


async def run(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; a hard kill is safe too (job leases expire and resume).

    A signal during start-up (waiting for Discord, say) cancels the start: what was opened is closed.
    Returns the exit code: 0 after a signal, 1 when the Discord connection ended by itself (a
    supervisor such as systemd then restarts the bot).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    up = asyncio.Event()
    serving = asyncio.create_task(_serve(settings, up, stop), name="rallypoint")
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done() and not up.is_set():
            serving.cancel()
        try:
            return await serving
        except asyncio.CancelledError:
            return 0
    finally:
        stopper.cancel()


async def _serve(settings: Settings, up: asyncio.Event, stop: asyncio.Event) -> int:
    async with started(settings) as app:
        up.set()
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({app.gateway, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        lost = app.gateway.done()
    if lost:  # its error is logged already (_log_gateway_end)
        log.error("the Discord connection ended; exiting with code 1 so that a supervisor restarts the bot")
        return 1
    return 0


# -- one-shot commands -----------------------------------------------------------------------


async def migrate(settings: Settings) -> OpenedDatabase:
    """Apply pending migrations (after copying the file aside); the returned database is closed."""
    opened = await open_database(settings, SystemClock())
    await opened.db.close()
    return opened


def backup_database(settings: Settings, target: Path) -> BackupResult:
    """Copy the database to `target` with SQLite's online backup API (safe while the bot runs)."""
    try:
        return backup(settings.storage.path, target)
    except StorageError as exc:
        raise ConfigError(f"invalid config key storage.path: {exc}") from None


async def rotate_contact_keys(settings: Settings) -> int:
    """Re-encrypt every stored address with the primary key (after adding a new key in front)."""
    if contact_cipher(settings) is None:
        raise ConfigError("security.contact_encryption_key is not set: nothing to rotate")
    db = (await open_database(settings, SystemClock())).db
    try:
        # Built as `run` builds it, without any channel: nothing is sent.
        engine = engine_for(settings, db, SystemClock(), senders={})
        try:
            return await engine.linking.rotate_keys()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    finally:
        await db.close()


__all__ = [
    "OpenedDatabase",
    "Running",
    "backup_database",
    "engine_for",
    "migrate",
    "open_database",
    "rotate_contact_keys",
    "run",
    "started",
    "until_reachable",
]
