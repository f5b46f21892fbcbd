"""Discord at real scale: 5,000 recipients through the emulator with Discord's global limit on.

The real bot as a child process (`python -m bot run`, Discord only, its default limits: 45 requests/s,
10 new DM channels/s) against the Discord emulator, which enforces Discord's 50 requests/s per bot (a
`"global": true` 429 past it) and its invalid-request ban. 5,000 players are LOOKING, Discord only;
30 % of them (fixed seed) have their DMs closed (the emulator answers 50007); 90 % were DMed on earlier
evenings (their DM channels are open on the emulator and stored in the database, as the bot leaves
them), 10 % are new.

1. Campaign A (one promoter), the reminder: one request per recipient, plus a DM-channel open for each
   new one. Half-way through, the bot is killed with SIGKILL and started again; the new process resumes
   the job once its lease (5 s) has lapsed. The campaign is cancelled when the reminder is done.
2. Campaign B (another promoter, the same evening): its reminder finds every key taken by A's and sends
   nothing; its start ping goes to every recipient whose DMs are open.

Figures, side by side from the one run (the emulator's own arrival log and counters):
- achieved request rate while the bot was up / the configured limit (target >= 0.9), and the busiest
  second of the run against the limit;
- global 429s (target 0) and invalid requests besides the injected 50007s (target 0);
- DM channels opened again after the restart (target 0), and the pace of new ones against its limit;
- requests to the players whose DMs are closed during campaign B (target 0).

Run with `.venv/bin/python -m bench.discord_scale [--players N] [--closed 0.3] [--new 0.1]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")

import argparse
import asyncio
import bisect
import contextlib
import platform
import random
import re
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bench.seed import seed_players
from bot.sandbox.stack import GUILD_ID, PROMOTER_ID, Member, SandboxStack
from services.schedule import campaign_date
from storage.db import Database, to_db_time

FIRST_DISCORD_ID = 710_000_000_000_000_000
SECOND_PROMOTER_ID = PROMOTER_ID + 1
POSTS = "POST /channels/{channel_id}/messages"
OPENS = "POST /users/@me/channels"
LIMIT = 45  # discord.global_rate_per_second's default, which the bot runs with here
OPEN_PACE = 10.0  # discord.dm_open_rate_per_second's default
WAIT = 600.0  # seconds any one phase may take before the benchmark gives up
# Campaign A's start: its reminder (the lead of 15 minutes before, so already past: due at once) has
# until then, minutes more than 5,000 DMs at 45/s and a restart need.
A_START_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Players:
    ids: list[int]  # Discord user ids, player i + 1 at index i
    closed: set[int]
    new: set[int]  # no stored DM channel


def choose(count: int, closed_share: float, new_share: float) -> Players:
    ids = [FIRST_DISCORD_ID + i for i in range(1, count + 1)]
    rng = random.Random(2026)
    closed = set(rng.sample(ids, round(count * closed_share)))
    return Players(ids, closed, set(rng.sample(ids, round(count * new_share))))


async def open_earlier_channels(stack: SandboxStack, db_path: Path, players: Players) -> None:
    """The DM channels of earlier evenings: opened on the emulator (global limit lifted meanwhile, as
    this is no bot traffic) and stored with the players, as the bot stores them."""
    old = [uid for uid in players.ids if uid not in players.new]
    api = stack.discord.api_base_url
    headers = {"Authorization": f"Bot {stack.discord.token}"}
    gate = asyncio.Semaphore(32)
    stack.discord.global_rate_limit = None

    async def one(uid: int) -> tuple[int, int]:
        async with gate, session.post(f"{api}/users/@me/channels", json={"recipient_id": uid}) as answer:
            return int((await answer.json())["id"]), uid

    async with aiohttp.ClientSession(headers=headers) as session:
        rows = await asyncio.gather(*(one(uid) for uid in old))
    stack.discord.global_rate_limit = 50  # Discord's, from here on
    db = await Database.open(db_path)
    try:
        async with db.transaction() as tx:
            await tx.executemany("UPDATE players SET discord_dm_channel_id = ? WHERE discord_user_id = ?", rows)
    finally:
        await db.close()


class Bot:
    """The bot as a child process on the stack's config."""

    def __init__(self, stack: SandboxStack, log: Path) -> None:
        self.stack = stack
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.session: str | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        self.process = await self.stack.spawn_bot_process(self.log)
        info = await self.stack.discord.wait_for_bot(60, other_than=self.session)
        self.session = info.session_id
        await self.stack.discord.wait_for_commands(GUILD_ID, 60, min_syncs=self.starts)
        await until(lambda: self.log.read_text(errors="replace").count("scheduler running") >= self.starts, 60,
                    "the scheduler")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.kill()


async def until(predicate: Callable[[], object], within: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {within:.0f} s")
        await asyncio.sleep(interval)


def job_status(db_path: Path, campaign_id: int, job_type: str) -> str:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(
            "SELECT status FROM jobs WHERE campaign_id = ? AND job_type = ?", (campaign_id, job_type)
        ).fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else "?"


async def schedule(stack: SandboxStack, promoter: int, start: str | None = None) -> int:
    """`/promote schedule` (starting at `start`, HH:MM, else the configured start), then Confirm; return the
    campaign id."""
    options = {} if start is None else {"start": start}
    record = await stack.discord.invoke_slash(GUILD_ID, promoter, "promote schedule", options)
    message = await record.wait_message(timeout=60)
    click = await stack.discord.click_button(GUILD_ID, promoter, message, "rp:schedule:confirm")
    await click.wait_response(timeout=60)
    titles = [e.get("title") or "" for e in click.last_embeds()]
    found = [int(m.group(1)) for t in titles if (m := re.match(r"Campaign (\d+) scheduled", t))]
    if not found:
        raise RuntimeError(f"no campaign scheduled: {click.last_content()!r}")
    return found[0]


async def cancel(stack: SandboxStack, promoter: int) -> None:
    record = await stack.discord.invoke_slash(GUILD_ID, promoter, "promote cancel", {})
    await record.wait_message(timeout=60)


def bound_by_global_limit(route: str) -> bool:
    """Interaction callbacks and webhooks (answers to slash commands) are not bound on Discord."""
    return not route.split(" ", 1)[1].startswith(("/interactions/", "/webhooks/"))


def busiest_second(times: list[float]) -> int:
    return max((bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def sending_rate(times: list[float], gaps: list[tuple[float, float]]) -> tuple[int, float]:
    """(requests, seconds of sending) over `times`, leaving out the gaps (kill → first request after)."""
    seconds = times[-1] - times[0] - sum(end - start for start, end in gaps)
    return len(times), seconds


async def main(players_count: int = 5000, closed_share: float = 0.3, new_share: float = 0.1) -> None:
    print(f"machine: {platform.machine()} {platform.system()} python {platform.python_version()}")
    players = choose(players_count, closed_share, new_share)
    with tempfile.TemporaryDirectory(prefix="rp-scale-bench-") as tmp:
        workdir = Path(tmp)
        # Past times shift to now + 10 s / now + 20 s; the voice check never comes (an hour later).
        stack = SandboxStack(
            workdir,
            telegram_enabled=False,
            signal_enabled=False,
            promotion={
                # Both past (but just after midnight): the reminder and the start come seconds after
                # scheduling; the reminder's lead is the default 15 minutes (see A_START_AFTER).
                "reminder_time": "00:00",
                "start_time": "00:15",
                "voice_check_delay_seconds": 3600,
                "job_lease_seconds": 5,
            },
        )
        stack.discord.nonce_window = 0.0  # every nonce is fresh: keep the emulator's index empty
        members = [
            Member(PROMOTER_ID, "rally", nick="Rally", promoter=True),
            Member(SECOND_PROMOTER_ID, "rally2", nick="Rally 2", promoter=True),
        ]
        members += [Member(uid, f"player{uid - FIRST_DISCORD_ID}") for uid in players.ids]
        await stack.start(members)
        bot = Bot(stack, workdir / "bot.log")
        discord = stack.discord
        try:
            settings = stack.settings()
            db_path = settings.storage.path
            db = await Database.open(db_path)
            now = datetime.now(UTC)
            await seed_players(db, players_count, campaign_date(now, settings.promotion.zone), now,
                               first_discord_id=FIRST_DISCORD_ID)
            async with db.transaction() as tx:  # they opted in, on Discord
                await tx.executemany(
                    "INSERT INTO preferences (player_id, allow_promotions, promotions_chosen_at, preferred_channel,"
                    " updated_at) VALUES (?, 1, ?, 'discord', ?) ON CONFLICT (player_id) DO UPDATE SET"
                    " allow_promotions = 1, promotions_chosen_at = excluded.promotions_chosen_at,"
                    " preferred_channel = 'discord', updated_at = excluded.updated_at",
                    [(pid, to_db_time(now), to_db_time(now)) for pid in range(1, players_count + 1)],
                )
            await db.close()
            await open_earlier_channels(stack, db_path, players)
            discord.dm_closed_user_ids = players.closed
            opens_seeded = Counter(discord.dm_channel_opens)
            global_429_before, invalid_before = discord.global_rate_limited, discord.invalid_requests
            refusals_before = sum(discord.dm_closed_refusals.values())

            # -- campaign A: the reminder, killed half-way ------------------------------------------
            await bot.start()
            first = len(discord.arrivals)
            # A reminder may go out only before its start: A starts well after its reminder can end.
            a_start = (datetime.now(UTC) + A_START_AFTER).astimezone(settings.promotion.zone)
            a = await schedule(stack, PROMOTER_ID, start=a_start.strftime("%H:%M"))
            posts_before = discord.requests[POSTS]
            await until(lambda: discord.requests[POSTS] - posts_before >= players_count // 2, WAIT, "half the reminder")
            await bot.kill()
            killed_at = time.monotonic()
            opens_at_kill = Counter(discord.dm_channel_opens)
            await bot.start()
            await until(lambda: job_status(db_path, a, "send_reminder_2045") == "sent", WAIT, "the reminder", 0.2)
            reminder_done = len(discord.arrivals)
            await cancel(stack, PROMOTER_ID)
            a_arrivals = discord.arrivals[first:reminder_done]
            resumed_at = next(t for t, route in a_arrivals if t > killed_at and route in (POSTS, OPENS))
            fanout = [t for t, route in a_arrivals if route in (POSTS, OPENS)]
            # The fan-out's requests while the bot was up: from its first to its last, without the gap
            # from the kill to the first fan-out request of the new process (its start-up included).
            a_count, a_seconds = sending_rate(fanout, [(killed_at, resumed_at)])
            reopened = sum(1 for n in discord.dm_channel_opens.values() if n > 1)
            opened_before_kill = sum(opens_at_kill.values()) - sum(opens_seeded.values())
            new_opens = sum(discord.dm_channel_opens.values()) - sum(opens_seeded.values())
            open_times = [t for t, route in a_arrivals if route == OPENS]

            # -- campaign B: the same evening, another promoter ------------------------------------
            to_closed_before = sum(discord.requests_to_user(uid) for uid in players.closed)
            b = await schedule(stack, SECOND_PROMOTER_ID)
            # Its reminder finds every key taken (by A's), its start ping is the one that sends.
            await until(lambda: job_status(db_path, b, "send_start_2100") == "running", WAIT, "B's start ping", 0.02)
            b_first = len(discord.arrivals)
            await until(lambda: job_status(db_path, b, "send_start_2100") == "sent", WAIT, "B's start ping", 0.2)
            b_arrivals = [t for t, route in discord.arrivals[b_first:] if route == POSTS]
            to_closed = sum(discord.requests_to_user(uid) for uid in players.closed) - to_closed_before
            b_count, b_seconds = sending_rate(b_arrivals, [])

            everything = sorted(t for t, route in discord.arrivals[first:] if bound_by_global_limit(route))
            global_429s = discord.global_rate_limited - global_429_before
            refusals = sum(discord.dm_closed_refusals.values()) - refusals_before
            invalid_besides = discord.invalid_requests - invalid_before - refusals
        finally:
            await bot.stop()
            await stack.stop()

    closed, new = len(players.closed), len(players.new)
    print(
        f"discord at scale: {players_count:,} recipients ({closed:,} with DMs closed, {new:,} new), Discord's "
        f"global limit on (50/s), the bot's limit {LIMIT}/s"
    )
    print(
        f"  campaign A reminder, kill -9 after {players_count // 2:,} posts and a restart: {a_count:,} requests "
        f"in {a_seconds:.1f} s of sending (the {resumed_at - killed_at:.1f} s from the kill to the resumed fan-out "
        f"left out) = {a_count / a_seconds:.1f} req/s = "
        f"{a_count / a_seconds / LIMIT:.3f} x the configured limit"
    )
    print(
        f"  campaign B start ping (same evening, another promoter): {b_count:,} posts in {b_seconds:.1f} s = "
        f"{b_count / b_seconds:.1f} req/s = {b_count / b_seconds / LIMIT:.3f} x the configured limit"
    )
    print(
        f"  busiest second of the whole run: {busiest_second(everything)} requests = "
        f"{busiest_second(everything) / LIMIT:.2f} x the limit (Discord allows 50)"
    )
    print(f"  global 429s: {global_429s}; invalid requests besides the injected 50007s: {invalid_besides} "
          f"(50007 answers: {refusals:,} = {refusals / closed:.2f} x the players with DMs closed)")
    print(
        f"  DM channels opened again after the restart: {reopened} (of {players_count - new:,} stored from "
        f"earlier evenings and {opened_before_kill} opened before the kill); new channels opened: {new_opens} = "
        f"{new_opens / new:.2f} x the new players, busiest second {busiest_second(open_times)} = "
        f"{busiest_second(open_times) / OPEN_PACE:.1f} x the {OPEN_PACE:g}/s pace"
    )
    print(f"  campaign B: requests to the {closed:,} players with DMs closed: {to_closed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--players", dest="players_count", type=int, default=5000)
    parser.add_argument("--closed", dest="closed_share", type=float, default=0.3)
    parser.add_argument("--new", dest="new_share", type=float, default=0.1)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(**vars(parser.parse_args())))
