"""A whole campaign end to end: the real bot (in process) against the three loopback emulators.

2,000 recipients by default: 1,500 on Discord, 200 on Telegram, 300 on Signal, spread evenly over the
recipient list. Players, preferences and links are seeded in bulk (executemany, one transaction); the
campaign is created with the real `PromoteService`; the bot is started by `bot.app.started` with the sandbox
configuration, Telegram pacing on (30 msg/s, as in production): 200 Telegram messages alone take
(200 - 1) / 30 = 6.6 s, which is the floor of every figure below (use `--telegram` to change the mix).

Figures, each against a baseline from the same run:

- reminder job (first message job: every Discord DM channel is opened, then posted to): from the
  job's due time to its last message (the last `sent` send-log row, written at most 50 ms after the
  send), divided by the time a bare aiohttp client needs for the same messages — per channel at the
  same concurrency (`promotion.send_concurrency`), Telegram paced at the same 30 msg/s, the three
  channels side by side;
- start job (DM channels known: one POST per Discord message), the same way;
- per channel, the time to the channel's last message, ours / bare;
- scheduler lateness of both jobs in the real bot (started_at - due_at), against the 100 ms budget.

Run with `.venv/bin/python -m bench.e2e_campaign [--discord N] [--telegram N] [--signal N]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")

import argparse
import asyncio
import contextlib
import logging
import platform
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
from discord.http import handle_message_parameters

from bench.seed import seed_players
from bot.app import started
from bot.client import NoVoiceLibraryWarnings
from bot.sandbox.stack import (
    COMPRESSED_EVENING,
    GUILD_ID,
    PROMOTER_ID,
    PROMOTER_ROLE_ID,
    SIGNAL_BOT_NUMBER,
    TELEGRAM_TOKEN,
    Member,
    SandboxStack,
)
from services.clock import SystemClock
from services.contacts import ContactCipher
from services.messages import reminder_text, start_text
from services.models import Actor, Channel, JobType
from services.schedule import campaign_date
from storage.db import Database, to_db_time

FIRST_DISCORD_ID = 700_000_000_000_000_000
FIRST_CHAT_ID = 500_000_000
TELEGRAM_RATE = 30.0
DONE = ("sent", "failed", "skipped", "cancelled")


@dataclass(frozen=True, slots=True)
class Recipient:
    player_id: int
    discord_user_id: int
    channel: Channel
    address: str  # Discord user id, Telegram chat id or Signal number


def plan(discord: int, telegram: int, signal: int) -> list[Recipient]:
    """The recipients, their channel spread evenly (fixed seed) over the player ids 1..N."""
    channels = [Channel.DISCORD] * discord + [Channel.TELEGRAM] * telegram + [Channel.SIGNAL] * signal
    random.Random(2026).shuffle(channels)
    out = []
    for pid, channel in enumerate(channels, start=1):
        uid = FIRST_DISCORD_ID + pid
        address = {
            Channel.DISCORD: str(uid),
            Channel.TELEGRAM: str(FIRST_CHAT_ID + pid),
            Channel.SIGNAL: f"+3864{pid:07d}",
        }[channel]
        out.append(Recipient(pid, uid, channel, address))
    return out


async def seed(db: Database, recipients: list[Recipient], cipher: ContactCipher, now: datetime, zone) -> float:
    """Players LOOKING today, Telegram/Signal preferences and verified links; return the seconds taken."""
    t0 = time.perf_counter()
    day = campaign_date(now, zone)
    await seed_players(db, len(recipients), day, now, first_discord_id=FIRST_DISCORD_ID)
    at = to_db_time(now)
    linked = [r for r in recipients if r.channel is not Channel.DISCORD]
    async with db.transaction() as tx:
        await tx.executemany(
            "UPDATE preferences SET preferred_channel = ?, updated_at = ? WHERE player_id = ?",
            [(r.channel.value, at, r.player_id) for r in linked],
        )
        await tx.executemany(
            "INSERT INTO channel_links (player_id, channel, address_encrypted, address_hash, verified_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (r.player_id, r.channel.value, cipher.encrypt(r.address), cipher.address_hash(r.address), at)
                for r in linked
            ],
        )
    return time.perf_counter() - t0


class BareClient:
    """The baseline: plain aiohttp requests, per channel at `concurrency`, Telegram paced at 30 msg/s."""

    def __init__(self, stack: SandboxStack, session: aiohttp.ClientSession, concurrency: int) -> None:
        self.stack = stack
        self.session = session
        self.concurrency = concurrency
        self.discord_auth = {"Authorization": f"Bot {stack.discord.token}"}
        self.runs = 0

    async def send_all(self, recipients: list[Recipient], texts: dict[Channel, str], open_dm: bool) -> dict:
        """Send one message to each recipient, channels side by side; seconds to each channel's last."""
        self.runs += 1
        t0 = time.perf_counter()
        by_channel = {ch: [r for r in recipients if r.channel is ch] for ch in Channel}
        senders: dict[Channel, Callable[[Recipient], Awaitable[bool]]] = {
            Channel.DISCORD: lambda r: self._discord(r, texts[Channel.DISCORD], open_dm),
            Channel.TELEGRAM: self._telegram_paced(t0, texts[Channel.TELEGRAM]),
            Channel.SIGNAL: lambda r: self._signal(r, texts[Channel.SIGNAL]),
        }

        async def channel(ch: Channel) -> float:
            gate = asyncio.Semaphore(self.concurrency)

            async def one(r: Recipient) -> bool:
                async with gate:
                    return await senders[ch](r)

            results = await asyncio.gather(*(one(r) for r in by_channel[ch]))
            if not all(results):
                raise RuntimeError(f"bare client: {results.count(False)} {ch.value} sends failed")
            return time.perf_counter() - t0

        done = await asyncio.gather(*(channel(ch) for ch in Channel if by_channel[ch]))
        return dict(zip([ch for ch in Channel if by_channel[ch]], done, strict=True))

    async def _discord(self, r: Recipient, text: str, open_dm: bool) -> bool:
        api = self.stack.discord.api_base_url
        if open_dm:
            body = {"recipient_id": r.discord_user_id}
            async with self.session.post(f"{api}/users/@me/channels", json=body, headers=self.discord_auth) as a:
                channel_id = int((await a.json())["id"])
        else:  # the bot knows the DM channel from the reminder; so does the baseline
            channel_id = self.stack.discord.dm_channel_id(r.discord_user_id) or 0
        nonce = f"bare{self.runs}p{r.player_id}"
        payload = handle_message_parameters(content=text, nonce=nonce).payload
        url = f"{api}/channels/{channel_id}/messages"
        async with self.session.post(url, json=payload, headers=self.discord_auth) as a:
            await a.read()
            return a.status == 200

    def _telegram_paced(self, t0: float, text: str) -> Callable[[Recipient], Awaitable[bool]]:
        url = f"{self.stack.telegram.base_url}{TELEGRAM_TOKEN}/sendMessage"
        slots = iter(range(1_000_000))

        async def one(r: Recipient) -> bool:
            delay = t0 + next(slots) / TELEGRAM_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self.session.post(url, data={"chat_id": r.address, "text": text}) as a:
                return bool((await a.json()).get("ok"))

        return one

    async def _signal(self, r: Recipient, text: str) -> bool:
        body = {"message": text, "number": SIGNAL_BOT_NUMBER, "recipients": [r.address]}
        async with self.session.post(f"{self.stack.signal.api_url}/v2/send", json=body) as a:
            await a.read()
            return a.status == 201


async def job_figures(db: Database, job_id: int) -> tuple[float, float, dict[Channel, float], int]:
    """(lateness s, due -> last sent s, per channel due -> last sent s, messages sent) from the database."""
    async with db.read() as tx:
        job = await tx.fetchone("SELECT due_at, started_at FROM jobs WHERE id = ?", (job_id,))
        rows = await tx.fetchall(
            "SELECT channel, max(at) AS last, count(*) AS n FROM send_log"
            " WHERE job_id = ? AND status = 'sent' GROUP BY channel",
            (job_id,),
        )
    if job is None:
        raise RuntimeError(f"job {job_id} vanished")
    due = datetime.fromisoformat(job["due_at"])
    lateness = (datetime.fromisoformat(job["started_at"]) - due).total_seconds()
    per_channel = {Channel(r["channel"]): (datetime.fromisoformat(r["last"]) - due).total_seconds() for r in rows}
    return lateness, max(per_channel.values()), per_channel, sum(r["n"] for r in rows)


async def wait_for_job(db: Database, job_id: int, within: float) -> str:
    """Poll (every 100 ms) until the job is over; return its status."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with db.read() as tx:
            row = await tx.fetchone("SELECT status FROM jobs WHERE id = ?", (job_id,))
        if row is not None and row["status"] in DONE:
            return str(row["status"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish within {within:.0f} s")


def _ratio_line(label: str, ours: float, bare: float, per_ours: dict, per_bare: dict) -> str:
    channels = ", ".join(
        f"{ch.value} {per_ours[ch]:.2f}/{per_bare[ch]:.2f} s = {per_ours[ch] / per_bare[ch]:.2f} x"
        for ch in Channel
        if ch in per_bare
    )
    return (
        f"{label}: due -> last message {ours:.2f} s / bare client {bare:.2f} s = {ours / bare:.2f} x"
        f"\n    per channel, ours/bare: {channels}"
    )


async def main(discord: int = 1500, telegram: int = 200, signal: int = 300) -> None:
    print(f"machine: {platform.machine()} {platform.system()} python {platform.python_version()}")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("discord.client").addFilter(NoVoiceLibraryWarnings())
    recipients = plan(discord, telegram, signal)
    with tempfile.TemporaryDirectory(prefix="rp-e2e-bench-") as tmp:
        # Past times shift to now + 10 s / now + 20 s (the schedule rule); the voice check an hour
        # later, so that it never starts: the campaign is cancelled once the start job is over.
        stack = SandboxStack(
            Path(tmp),
            promotion={**COMPRESSED_EVENING, "voice_check_delay_seconds": 3600},
            # The bot's own Discord limits far above what this machine can send (see below).
            discord_settings={"global_rate_per_second": 10_000, "dm_open_rate_per_second": 10_000.0},
        )
        members = [Member(PROMOTER_ID, "rally", nick="Rally", promoter=True)]
        members += [Member(r.discord_user_id, f"player{r.player_id}") for r in recipients]
        # Every nonce in this run is fresh; a zero window keeps the emulator's nonce index (scanned
        # on every post) empty, so its cost is the same for the bot and for the baseline.
        stack.discord.nonce_window = 0.0
        # This figure compares the bot's fan-out with a bare client's, which neither paces itself nor
        # retries 429s: Discord's global limit is lifted here, and the bot's own limits are out of the
        # way. bench/discord_scale.py measures the bot at Discord's limits.
        stack.discord.global_rate_limit = None
        await stack.start(members)
        settings = stack.settings()
        zone = settings.promotion.zone
        concurrency = settings.promotion.send_concurrency
        clock = SystemClock()
        running = contextlib.AsyncExitStack()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=3 * concurrency))
        try:
            db = await Database.open(settings.storage.path)
            seeded = await seed(db, recipients, ContactCipher(stack.encryption_key), clock.now(), zone)
            await db.close()
            print(
                f"seeded {len(recipients):,} players ({discord} Discord, {telegram} Telegram, "
                f"{signal} Signal) with preferences and links in {seeded:.2f} s"
            )
            app = await running.enter_async_context(started(settings, clock))
            await stack.discord.wait_for_commands(GUILD_ID, timeout=30)
            await asyncio.wait_for(app.bot.wait_until_ready(), timeout=30)
            engine = app.engine

            actor = Actor(PROMOTER_ID, True, frozenset({PROMOTER_ROLE_ID}), "Rally")
            t0 = time.perf_counter()
            created = await engine.promote.create(actor)
            create_s = time.perf_counter() - t0
            jobs = {j.job_type: j for j in created.jobs}
            due_in = (jobs[JobType.REMINDER].due_at - clock.now()).total_seconds()
            print(
                f"campaign {created.campaign.id}: {created.campaign.recipient_count:,} recipients, "
                f"created in {create_s * 1000:.0f} ms; reminder due in {due_in:.1f} s"
            )
            start = created.schedule.start
            reminder_texts = {
                ch: reminder_text(start, jobs[JobType.REMINDER].due_at, zone, ch, False) for ch in Channel
            }
            start_texts = {ch: start_text(start, zone, ch, False) for ch in Channel}

            bare = BareClient(stack, session, concurrency)
            await bare.send_all(recipients[: 3 * concurrency], start_texts, open_dm=True)  # warm the pool
            # The reminder-shaped baseline runs while the bot waits for the reminder, if it surely ends
            # well before it is due (the bot is idle meanwhile); else after the campaign.
            bare_reminder: dict[Channel, float] | None = None
            if telegram / TELEGRAM_RATE + 3.0 < (jobs[JobType.REMINDER].due_at - clock.now()).total_seconds():
                bare_reminder = await bare.send_all(recipients, reminder_texts, open_dm=True)
                if clock.now() >= jobs[JobType.REMINDER].due_at:
                    raise RuntimeError("the baseline overlapped the reminder job; use fewer Telegram recipients")

            results = {}
            for job_type in (JobType.REMINDER, JobType.START):
                job = jobs[job_type]
                status = await wait_for_job(engine.db, job.id, within=120)
                results[job_type] = await job_figures(engine.db, job.id)
                if status != "sent" or results[job_type][3] != len(recipients):
                    raise RuntimeError(f"{job_type.value}: {status}, {results[job_type][3]} messages sent")
            await engine.promote.cancel(actor, created.campaign.id)  # the voice check never runs
            _check_texts(stack, recipients, start_texts)

            if bare_reminder is None:
                bare_reminder = await bare.send_all(recipients, reminder_texts, open_dm=True)
            bare_start = await bare.send_all(recipients, start_texts, open_dm=False)
        finally:
            await session.close()
            await running.aclose()
            await stack.stop()

    for label, (_lateness, ours, per_ours, sent), per_bare in (
        ("reminder job (open DM + post)", results[JobType.REMINDER], bare_reminder),
        ("start job (post)", results[JobType.START], bare_start),
    ):
        line = _ratio_line(
            f"e2e campaign, {sent:,} messages, {label}", ours, max(per_bare.values()), per_ours, per_bare
        )
        print(line)
    late = [results[t][0] * 1000 for t in (JobType.REMINDER, JobType.START)]
    print(
        f"e2e scheduler lateness in the real bot: reminder {late[0]:.1f} ms, start {late[1]:.1f} ms "
        f"(target p99 < 100 ms) = {max(late) / 100:.2f} of the budget"
    )


def _check_texts(stack: SandboxStack, recipients: list[Recipient], texts: dict[Channel, str]) -> None:
    """The baseline sends what the bot sent: compare with the start messages the emulators received."""
    first = {
        ch: next(r for r in recipients if r.channel is ch) for ch in Channel if any(r.channel is ch for r in recipients)
    }
    got = {}
    if Channel.DISCORD in first:
        got[Channel.DISCORD] = stack.discord.dm_messages(first[Channel.DISCORD].discord_user_id)[-1]["content"]
    if Channel.TELEGRAM in first:
        got[Channel.TELEGRAM] = stack.telegram.messages_to(int(first[Channel.TELEGRAM].address))[-1]["text"]
    if Channel.SIGNAL in first:
        got[Channel.SIGNAL] = stack.signal.messages_to(first[Channel.SIGNAL].address)[-1]
    for ch, text in got.items():
        if text != texts[ch]:
            raise RuntimeError(f"{ch.value}: the bot sent {text!r}, the baseline would send {texts[ch]!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--discord", type=int, default=1500)
    parser.add_argument("--telegram", type=int, default=200)
    parser.add_argument("--signal", type=int, default=300)
    asyncio.run(main(**vars(parser.parse_args())))
