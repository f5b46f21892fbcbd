"""The fault and restart suite's world: a SandboxStack with a killable bot and a few hundred players.

`FaultStack` composes the sandbox (`bot.sandbox.stack.SandboxStack`) with what these tests need:
players and links created directly in SQLite through the project's own storage code, the real bot
as a child process (`kill()` is a `kill -9`), emulators that remember when each send attempt was
answered, read-only looks at the database, and bounded polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.sandbox.signal_emulator import SignalEmulator
from bot.sandbox.stack import (
    COMPRESSED_EVENING,
    FOLLOWUP_CHANNEL_ID,
    GUILD_ID,
    PROMOTER_ID,
    SIGNAL_BOT_NUMBER,
    TELEGRAM_TOKEN,
    VOICE_CHANNEL_ID,
    Member,
    SandboxStack,
)
from bot.sandbox.telegram_emulator import TelegramEmulator
from services.contacts import ContactCipher
from services.models import Channel, PlayerStatus, PreferredChannel
from services.schedule import campaign_date
from storage.db import Database, from_db_time, to_db_time
from storage.links import LinkStore
from storage.players import PlayerStore
from tests.support import opted_in

# The evening compressed: the reminder falls due 10 s after scheduling, the start 20 s after, the
# voice check 5 s after the start; a dead process's lease lapses in 5 s.
PROMOTION: dict[str, Any] = {
    **COMPRESSED_EVENING,
    "voice_check_delay_seconds": 5,
    "job_lease_seconds": 5,
}
VOICE_CHECK_DELAY = timedelta(seconds=PROMOTION["voice_check_delay_seconds"])
REMINDER_WINDOW = timedelta(seconds=60)  # reminder → start after `reminder_due_in`
# The evening is compressed to seconds: opening the first DM channels of 80 Discord players at the
# default 10 per second would take most of the 10 s between reminder and start. Their pace is
# tested on its own (test_discord_scale_e2e.py). The global pace stays further below Discord's 50/s
# than the default 45: these tests run beside others on a busy machine, whose stalls can bunch a few
# requests into one second at the emulator; the default itself is held to 50/s by
# tests/delivery/test_discord_limits.py and measured at scale by the discord_scale benchmark.
DISCORD: dict[str, Any] = {"dm_open_rate_per_second": 40.0, "global_rate_per_second": 40}
ZONE = ZoneInfo("Europe/Ljubljana")
BASE_DISCORD_ID = 830_000_000_000_000_000
TELEGRAM_CHAT_BASE = 7_300_000
SEND_CONCURRENCY = 16  # promotion.send_concurrency's default: recipients in flight at once

REMINDER, START, VOICE_CHECK = "send_reminder_2045", "send_start_2100", "voice_check_2100"
MESSAGE_JOBS = (REMINDER, START)
# What each job's text says, to tell a player's messages apart (services/messages.py).
MARKER = {REMINDER: "kicks off", START: "starting now", VOICE_CHECK: "not in voice"}
FINAL_STATUSES = frozenset({"sent", "skipped", "failed", "unknown"})


# -- emulators that remember when each send was answered ------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """A send request as it reached an emulator (before any stall): when, to whom, what text."""

    at: float
    target: str
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One send attempt as an emulator answered it: when (monotonic), to whom, with what status."""

    at: float
    target: str
    status: int


class _Stalls:
    """Hold the next n requests for a while before answering (a client timeout, then a retry)."""

    def __init__(self) -> None:
        self.pending: list[float] = []
        self.stalled = 0

    def next(self, n: int, seconds: float) -> None:
        self.pending.extend([seconds] * n)

    async def wait(self) -> None:
        if self.pending:
            self.stalled += 1
            # The emulators cancel a handler whose client went away: a stalled send never arrives.
            await asyncio.sleep(self.pending.pop(0))


class _Recording:
    """What both recording emulators keep: arrivals, answers, and sends to hold back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hits: list[Hit] = []
        self.arrivals: list[Arrival] = []
        self.stalls = _Stalls()

    def stall_next(self, n: int, seconds: float) -> None:
        """Answer the next n sends only after `seconds` (past the client's timeout)."""
        self.stalls.next(n, seconds)


class RecordingTelegram(_Recording, TelegramEmulator):
    """The Telegram emulator, noting every answered `sendMessage` (timing checks for retry-after)."""

    async def _send_message(self, params: dict[str, Any]) -> Any:
        target = str(params.get("chat_id"))
        self.arrivals.append(Arrival(time.monotonic(), target, str(params.get("text"))))
        await self.stalls.wait()
        try:
            result = await super()._send_message(params)
        except Exception as exc:  # the emulator's API errors carry the HTTP status
            self.hits.append(Hit(time.monotonic(), target, int(getattr(exc, "status", 0))))
            raise
        self.hits.append(Hit(time.monotonic(), target, 200))
        return result


class RecordingSignal(_Recording, SignalEmulator):
    """The Signal emulator, noting every answered `/v2/send`."""

    async def _send(self, request: web.Request) -> web.Response:
        target, text = "?", ""
        with contextlib.suppress(ValueError):
            body = await request.json()  # read once here; aiohttp keeps the body for the handler
            if isinstance(body, dict) and body.get("recipients"):
                target, text = str(body["recipients"][0]), str(body.get("message"))
        self.arrivals.append(Arrival(time.monotonic(), target, text))
        await self.stalls.wait()
        response = await super()._send(request)
        self.hits.append(Hit(time.monotonic(), target, response.status))
        return response


def _record_discord_posts(stack: SandboxStack, hits: list[Hit]) -> None:
    """Note every answered message POST of the Discord emulator (per channel), before it starts."""
    rest = stack.discord._rest  # the routes are bound when the emulator starts, so wrap before that
    original = rest.post_message

    async def post_message(request: web.Request) -> web.Response:
        target = request.match_info.get("channel_id", "?")
        try:
            response = await original(request)
        except Exception as exc:  # ApiError (403 closed DMs, ...), answered by the middleware
            hits.append(Hit(time.monotonic(), target, int(getattr(exc, "status", 0))))
            raise
        hits.append(Hit(time.monotonic(), target, response.status))
        return response

    rest.post_message = post_message  # type: ignore[method-assign]


# -- the players -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seeded:
    """A recipient created in the database: where their messages should arrive."""

    index: int
    player_id: int
    discord_id: int
    channel: Channel  # the preferred one; Telegram and Signal players have that link verified
    in_voice: bool


def telegram_chat(i: int) -> int:
    return TELEGRAM_CHAT_BASE + i


def signal_number(i: int) -> str:
    return f"+38641{i:06d}"


def address_of(index: int, channel: Channel) -> str:
    """Player `index`'s address on `channel` (the emulators' key for what they received)."""
    if channel is Channel.TELEGRAM:
        return str(telegram_chat(index))
    if channel is Channel.SIGNAL:
        return signal_number(index)
    return str(BASE_DISCORD_ID + index)


async def seed_players(db_path: Path, key: str, count: int, *, in_voice_every: int = 4) -> list[Seeded]:
    """Create `count` LOOKING players through the storage layer, a third each on Discord, Telegram, Signal.

    Player i prefers Discord (i % 3 == 0), Telegram (1, linked chat) or Signal (2, linked number);
    every `in_voice_every`-th player will be in voice at the check.
    """
    cipher = ContactCipher(key)
    db = await Database.open(db_path)
    try:
        players, links = PlayerStore(db), LinkStore(db)
        now = datetime.now(UTC)
        day = campaign_date(now, ZONE)
        seeded: list[Seeded] = []
        for i in range(count):
            discord_id = BASE_DISCORD_ID + i
            player = await players.upsert(discord_id, f"Player {i:03d}", now)
            await players.set_availability(player.id, day, PlayerStatus.LOOKING, now)
            channel = (Channel.DISCORD, Channel.TELEGRAM, Channel.SIGNAL)[i % 3]
            await players.save_preferences(
                player.id, opted_in(preferred_channel=PreferredChannel(channel.value)), now
            )
            if channel is not Channel.DISCORD:
                address = str(telegram_chat(i)) if channel is Channel.TELEGRAM else signal_number(i)
                await links.save(player.id, channel, cipher.encrypt(address), cipher.address_hash(address), now)
            seeded.append(Seeded(i, player.id, discord_id, channel, i % in_voice_every == 0))
    finally:
        await db.close()
    return seeded


# -- the stack -------------------------------------------------------------------------------------


@dataclass
class FaultStack(SandboxStack):
    """The sandbox plus a killable bot process, seeded players and inspection helpers."""

    players: list[Seeded] = field(default_factory=list, init=False)
    process: asyncio.subprocess.Process | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)
    discord_hits: list[Hit] = field(default_factory=list, init=False)
    _session_id: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.telegram = RecordingTelegram(token=TELEGRAM_TOKEN, bot_username="rallypoint_sandbox_bot")
        self.signal = RecordingSignal(number=SIGNAL_BOT_NUMBER)
        _record_discord_posts(self, self.discord_hits)

    @property
    def db_path(self) -> Path:
        return self.workdir / "rallypoint.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bot.log"

    # -- life cycle --------------------------------------------------------------------------

    async def open(self, count: int) -> None:
        """Seed `count` players, start the emulators (every player a guild member), voice states."""
        self.players = await seed_players(self.db_path, self.encryption_key, count)
        members = [Member(PROMOTER_ID, "rally", nick="Rally (promoter)", promoter=True)]
        members += [Member(p.discord_id, f"player{p.index:03d}") for p in self.players]
        await self.start(members)
        for p in self.players:
            if p.in_voice:
                await self.discord.set_voice_state(GUILD_ID, p.discord_id, VOICE_CHANNEL_ID)

    async def start_bot(self, timeout: float = 30.0) -> None:
        """Spawn `python -m bot run` and wait until it is on the gateway with its scheduler running."""
        if self.process is not None and self.process.returncode is None:
            raise RuntimeError("the bot is already running")
        self.starts += 1
        self.process = await self.spawn_bot_process(self.log_path)
        async with asyncio.timeout(timeout):
            session = await self.discord.wait_for_bot(timeout, other_than=self._session_id)
            self._session_id = session.session_id
            await self.discord.wait_for_commands(GUILD_ID, timeout, min_syncs=self.starts)
        await wait_until(self._scheduler_running, timeout, "the scheduler to run")

    def _scheduler_running(self) -> bool:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(f"the bot exited with code {self.process.returncode} while starting")
        return self.log_text().count("scheduler running") >= self.starts

    async def kill(self) -> None:
        """kill -9 the bot: no shutdown code runs, leases stay with the dead process."""
        process = self.process
        if process is None or process.returncode is not None:
            raise AssertionError(f"the bot was not running (exit code {process and process.returncode})")
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)

    async def stop_bot(self) -> None:
        """Stop the bot if it runs: SIGTERM (graceful), then kill -9 if it lingers."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(process.wait(), 10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- what the promoter does --------------------------------------------------------------

    async def schedule(self) -> int:
        """`/promote schedule`, then Confirm, as the promoter; return the new campaign's id."""
        record = await self.discord.invoke_slash(GUILD_ID, PROMOTER_ID, "promote schedule", {})
        message = await record.wait_message(timeout=15)
        click = await self.discord.click_button(GUILD_ID, PROMOTER_ID, message, "rp:schedule:confirm")
        await click.wait_response(timeout=15)
        titles = [e.get("title") or "" for e in click.last_embeds()]
        found = [int(m.group(1)) for t in titles if (m := re.match(r"Campaign (\d+) scheduled", t))]
        if not found:
            raise AssertionError(f"the promoter's Confirm did not schedule a campaign: {click.last_content()!r}")
        return found[0]

    # -- the database, read from outside the bot ---------------------------------------------

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def shift_jobs(self, campaign_id: int, delta: timedelta) -> None:
        """Move every job of the campaign by `delta` (run and due time), as if scheduled then."""
        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            with conn:
                for row in conn.execute("SELECT id, due_at FROM jobs WHERE campaign_id = ?", (campaign_id,)):
                    when = to_db_time(from_db_time(row[1]) + delta)
                    conn.execute("UPDATE jobs SET run_at = ?, due_at = ? WHERE id = ?", (when, when, row[0]))
        finally:
            conn.close()

    async def reminder_due_in(self, campaign_id: int, seconds: float = 0.0) -> None:
        """Skip the wait for the reminder: stop the bot, bring the evening forward, start it again.

        The start comes REMINDER_WINDOW after the reminder, not the compressed evening's 10 s: the
        reminder may go out only before the start, and a reminder under kills and fault storms needs
        longer than that. A test that waits for the start brings it forward with `start_due_now`.
        """
        await self.stop_bot()
        reminder = datetime.now(UTC) + timedelta(seconds=seconds)
        self.move_job(campaign_id, REMINDER, reminder)
        self.move_job(campaign_id, START, reminder + REMINDER_WINDOW)
        self.move_job(campaign_id, VOICE_CHECK, reminder + REMINDER_WINDOW + VOICE_CHECK_DELAY)
        await self.start_bot()

    async def start_due_now(self, campaign_id: int) -> None:
        """Skip the wait for the start once the reminder is over: a graceful restart with the start due now."""
        await self.stop_bot()
        start = datetime.now(UTC)
        self.move_job(campaign_id, START, start)
        self.move_job(campaign_id, VOICE_CHECK, start + VOICE_CHECK_DELAY)
        await self.start_bot()

    def move_job(self, campaign_id: int, job_type: str, when: datetime) -> None:
        """Make one job of the campaign due at `when` (run and due time), as if scheduled for then."""
        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            with conn:
                conn.execute(
                    "UPDATE jobs SET run_at = ?, due_at = ? WHERE campaign_id = ? AND job_type = ?",
                    (to_db_time(when), to_db_time(when), campaign_id, job_type),
                )
        finally:
            conn.close()

    def campaign_status(self, campaign_id: int) -> str:
        return str(self.query("SELECT status FROM campaigns WHERE id = ?", (campaign_id,))[0]["status"])

    def jobs(self, campaign_id: int) -> dict[str, sqlite3.Row]:
        rows = self.query("SELECT * FROM jobs WHERE campaign_id = ? ORDER BY seq", (campaign_id,))
        return {r["job_type"]: r for r in rows}

    def finals(self, campaign_id: int, job_type: str) -> dict[int, sqlite3.Row]:
        """The final send-log row of each recipient for one job."""
        rows = self.query(
            """
            SELECT * FROM send_log
            WHERE campaign_id = ? AND job_type = ? AND final = 1 AND player_id IS NOT NULL
            """,
            (campaign_id, job_type),
        )
        return {r["player_id"]: r for r in rows}

    def recipient_ids(self, campaign_id: int) -> set[int]:
        rows = self.query("SELECT player_id FROM campaign_recipients WHERE campaign_id = ?", (campaign_id,))
        return {r["player_id"] for r in rows}

    # -- what the players received -----------------------------------------------------------

    def received(self, job_type: str) -> dict[int, Counter[Channel]]:
        """Per player id: how many messages of this job's kind arrived, per channel."""
        marker = MARKER[job_type]
        out: dict[int, Counter[Channel]] = {}
        for p in self.players:
            got: Counter[Channel] = Counter()
            got[Channel.DISCORD] = sum(
                marker in (m.get("content") or "") for m in self.discord.dm_messages(p.discord_id)
            )
            got[Channel.TELEGRAM] = sum(
                marker in str(m.get("text")) for m in self.telegram.messages_to(telegram_chat(p.index))
            )
            got[Channel.SIGNAL] = sum(marker in t for t in self.signal.messages_to(signal_number(p.index)))
            out[p.player_id] = got
        return out

    def received_total(self, job_type: str) -> int:
        return sum(sum(c.values()) for c in self.received(job_type).values())

    def summary_posts(self) -> list[dict[str, Any]]:
        return self.discord.channel_messages(FOLLOWUP_CHANNEL_ID)

    def set_latency(self, seconds: float) -> None:
        self.discord.latency = seconds
        self.telegram.latency = seconds
        self.signal.latency = seconds


# -- waiting ---------------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> Any:
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def fault_stack(
    workdir: Path, count: int, *, discord: dict[str, Any] | None = None, **promotion: Any
) -> AsyncIterator[FaultStack]:
    """A seeded, started FaultStack; on failure the bot's log is written to stderr; always torn down.

    `discord` holds [discord] settings beyond DISCORD's (the limits, for example).
    """
    stack = FaultStack(workdir, promotion={**PROMOTION, **promotion}, discord_settings={**DISCORD, **(discord or {})})
    try:
        await stack.open(count)
        yield stack
    except BaseException:
        sys.stderr.write(f"\n----- bot log ({stack.log_path}) -----\n{stack.log_text()[-60_000:]}\n")
        raise
    finally:
        stack.set_latency(0.0)  # a quick goodbye
        try:
            await stack.stop_bot()
        finally:
            await stack.stop()


def retry_gaps(hits: list[Hit], status: int) -> list[float]:
    """Seconds between an answer with `status` and the next attempt to the same target."""
    by_target: dict[str, list[Hit]] = {}
    for h in hits:
        by_target.setdefault(h.target, []).append(h)
    gaps = []
    for seq in by_target.values():
        for earlier, later in itertools.pairwise(seq):
            if earlier.status == status:
                gaps.append(later.at - earlier.at)
    return gaps
