"""The bot as a process: memory and idle CPU, against a bare discord.py client in the same run.

The real bot runs as a child process (`python -m bot run`, via `SandboxStack.spawn_bot_process`)
against the three loopback emulators, with Telegram and Signal enabled, over a database of 2,000
players and a 2,000-recipient campaign scheduled for later today (the promotion timezone is chosen
so that it is about noon there: the reminder is due hours later). Beside it, as the baseline, a bare
`discord.Client` with the same intents connects to the same emulator and does nothing.

Once both are connected and settled, for `--idle` seconds (default 60) it reads `/proc/<pid>/stat`
(utime + stime), `/proc/<pid>/task/*/schedstat` (ns on a CPU) and `/proc/<pid>/status` (VmRSS,
VmHWM, context switches) of each, and counts the requests the emulators receive. Printed, each as
bot / bare client:

- idle CPU: CPU seconds per minute and % of one core;
- wake-ups: context switches per second; and those of the bot's database thread (aiosqlite runs
  the connection in a thread of its own, woken by every query: 0 means no query while idle);
- RSS while idle, and the peak RSS (VmHWM) since start.

Run with `.venv/bin/python -m bench.process_footprint [--idle SECONDS] [--players N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.e2e_campaign import plan, seed
from bot.app import engine_for
from bot.sandbox.stack import PROMOTER_ID, PROMOTER_ROLE_ID, Member, SandboxStack
from services.clock import SystemClock
from services.contacts import ContactCipher
from services.models import Actor
from storage.db import Database

TICKS = os.sysconf("SC_CLK_TCK")

# The baseline: a discord.py client with the bot's intents, connected to the same emulator, idle.
BARE_CLIENT = """
import sys
import discord, discord.gateway, discord.http, yarl
api, gateway, token = sys.argv[1:4]
discord.http.Route.BASE = api
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
intents = discord.Intents.none()
intents.guilds = True
intents.voice_states = True
client = discord.Client(intents=intents)

@client.event
async def on_ready():
    print("ready", flush=True)

client.run(token, log_handler=None)
"""


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    cpu: float  # seconds, user + system, from /proc/<pid>/stat (10 ms ticks)
    run_ns: int  # nanoseconds on a CPU, summed over the live threads' /proc/<pid>/task/*/schedstat
    rss_kib: int
    hwm_kib: int
    switches: int
    db_thread_switches: int  # context switches of the first thread the process started (see below)


def _switches(status_text: str) -> int:
    fields = dict(line.split(":", 1) for line in status_text.splitlines() if ":" in line)
    return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])


def sample(pid: int) -> Sample:
    at = time.monotonic()
    # Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / TICKS
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kib = {k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM")}
    switches = int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])
    run_ns = 0
    threads: list[tuple[int, int]] = []  # (start time, context switches) of each thread but the main one
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread may end between listing and reading
            run_ns += int((task / "schedstat").read_text().split()[0])
            if task.name != str(pid):
                started = int((task / "stat").read_text().rsplit(")", 1)[1].split()[19])
                threads.append((started, _switches((task / "status").read_text())))
    # Application.start() opens the database (aiosqlite: one thread per connection, woken by every
    # query) before it starts any client, so the bot's first thread is the database's.
    first = min(threads)[1] if threads else 0
    return Sample(at, cpu, run_ns, kib["VmRSS"], kib["VmHWM"], switches, first)


def midday_zone(now: datetime) -> str:
    """A fixed-offset IANA zone where it is about noon now, so that 20:45 is hours away."""
    offset = max(-12, min(14, 12 - now.hour))
    return f"Etc/GMT{-offset:+d}"  # Etc/GMT-5 is UTC+5: POSIX signs are inverted


def _contains(path: Path, needle: str) -> bool:
    return path.exists() and needle in path.read_text(errors="replace")


async def _wait_for_line(path: Path, needle: str, proc: asyncio.subprocess.Process, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"the bot exited with {proc.returncode}; see {path}")
        if _contains(path, needle):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{needle!r} did not appear in {path} within {within:.0f} s")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def main(idle: float = 60.0, players: int = 2000, settle: float = 3.0) -> None:
    print(f"machine: {platform.machine()} {platform.system()} python {platform.python_version()}")
    recipients = plan(players, 0, 0)
    zone_name = midday_zone(datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="rp-footprint-") as tmp:
        work = Path(tmp)
        stack = SandboxStack(work, promotion={"timezone": zone_name})
        members = [Member(PROMOTER_ID, "rally", nick="Rally", promoter=True)]
        members += [Member(r.discord_user_id, f"player{r.player_id}") for r in recipients]
        await stack.start(members)
        settings = stack.settings()
        bot: asyncio.subprocess.Process | None = None
        bare: asyncio.subprocess.Process | None = None
        try:
            db = await Database.open(settings.storage.path)
            clock = SystemClock()
            await seed(db, recipients, ContactCipher(stack.encryption_key), clock.now(), settings.promotion.zone)
            # The campaign is created here, the bot process sends it: this engine needs no sender.
            engine = engine_for(settings, db, clock, senders={})
            created = await engine.promote.create(Actor(PROMOTER_ID, True, frozenset({PROMOTER_ROLE_ID}), "Rally"))
            await db.close()
            first_due = min(j.due_at for j in created.jobs)
            print(
                f"campaign of {created.campaign.recipient_count:,} recipients scheduled; first job due in "
                f"{(first_due - clock.now()).total_seconds() / 3600:.1f} h ({zone_name})"
            )

            log = work / "bot.log"
            bot = await stack.spawn_bot_process(log)
            bare = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                BARE_CLIENT,
                stack.discord.api_base_url,
                stack.discord.gateway_url,
                stack.discord.token,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            started = time.monotonic()
            await _wait_for_line(log, "scheduler running", bot, within=60)
            assert bare.stdout is not None
            await asyncio.wait_for(bare.stdout.readline(), timeout=60)
            ready_s = time.monotonic() - started
            await asyncio.sleep(settle)  # let start-up work (command sync, first long poll) finish

            d, t, s = stack.discord, stack.telegram, stack.signal
            before = (sample(bot.pid), sample(bare.pid))
            calls_before = (sum(d.requests.values()), sum(t.method_calls.values()), s.requests_total)
            await asyncio.sleep(idle)
            after = (sample(bot.pid), sample(bare.pid))
            calls = (
                sum(d.requests.values()) - calls_before[0],
                sum(t.method_calls.values()) - calls_before[1],
                s.requests_total - calls_before[2],
            )
            db = await Database.open(settings.storage.path)
            try:
                async with db.read() as tx:
                    row = await tx.fetchone(
                        "SELECT count(*) AS n FROM jobs WHERE campaign_id = ? AND status = 'pending'",
                        (created.campaign.id,),
                    )
                pending = row["n"] if row else 0
            finally:
                await db.close()
        finally:
            for proc in (bot, bare):
                if proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        await _stop(proc)
            await stack.stop()

    (b0, r0), (b1, r1) = before, after
    span = b1.at - b0.at
    per_min = 60 / span
    bot_cpu, bare_cpu = (b1.cpu - b0.cpu) * per_min, (r1.cpu - r0.cpu) * per_min
    bot_ns, bare_ns = (b1.run_ns - b0.run_ns) * per_min, (r1.run_ns - r0.run_ns) * per_min
    bot_wake, bare_wake = (b1.switches - b0.switches) / span, (r1.switches - r0.switches) / span
    print(f"both connected in {ready_s:.1f} s; idle for {span:.0f} s; jobs still pending: {pending} of 3")
    # utime/stime count 10 ms ticks: below a few ticks a ratio says nothing (schedstat has ns).
    coarse = min(b1.cpu - b0.cpu, r1.cpu - r0.cpu) * TICKS < 10
    tick_ratio = "(too few 10 ms ticks for a ratio: see schedstat)" if coarse else _ratio(bot_cpu, bare_cpu)
    print(
        f"idle CPU (utime+stime): bot {bot_cpu:.3f} CPU s/min ({bot_cpu / 60 * 100:.3f} % of one core) / "
        f"bare discord.py client {bare_cpu:.3f} CPU s/min = {tick_ratio}"
    )
    print(
        f"idle CPU (schedstat, ns): bot {bot_ns / 1e6:.1f} ms/min ({bot_ns / 60e9 * 100:.3f} % of one "
        f"core) / bare {bare_ns / 1e6:.1f} ms/min ({bare_ns / 60e9 * 100:.3f} %) = {_ratio(bot_ns, bare_ns)}"
    )
    print(
        f"idle wake-ups: bot {bot_wake:.2f} context switches/s / bare {bare_wake:.2f}/s = {_ratio(bot_wake, bare_wake)}"
    )
    print(
        f"database queries while idle: the bot's database thread woke {b1.db_thread_switches - b0.db_thread_switches}"
        " times (aiosqlite wakes it for every query; target 0)"
    )
    print(
        f"RSS while idle: bot {b1.rss_kib / 1024:.1f} MiB / bare {r1.rss_kib / 1024:.1f} MiB = "
        f"{b1.rss_kib / r1.rss_kib:.2f} x; peak (VmHWM): bot {b1.hwm_kib / 1024:.1f} MiB / "
        f"bare {r1.hwm_kib / 1024:.1f} MiB = {b1.hwm_kib / r1.hwm_kib:.2f} x"
    )
    print(
        f"requests while idle: Discord REST {calls[0]}, Telegram {calls[1]} (getUpdates long polls of "
        f"10 s), Signal {calls[2]}"
    )


def _ratio(ours: float, bare: float) -> str:
    return f"{ours / bare:.2f} x" if bare > 0 else "n/a (baseline used no measurable CPU)"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=3.0)
    asyncio.run(main(**vars(parser.parse_args())))
