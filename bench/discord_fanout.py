"""Discord DM fan-out against the loopback emulator (no added latency).

One figure, against a baseline from the same run: the time our `DiscordDMSender` (through a real
discord.py client, logged in to the emulator via `apply_discord_endpoints`) needs to DM N users,
divided by the time a bare aiohttp client needs for the same requests — POST /users/@me/channels,
then POST /channels/{id}/messages with the same JSON body and Authorization header — at the same
concurrency, against the same emulator.

Both sides open the DM channel for every user in every run (a fresh `DiscordDMSender` each time, so
its channel cache starts empty; the users are no players, so no channel is stored), and every run uses
fresh nonces, so nothing is deduplicated. Discord's limits are out of the way on both sides (the
emulator's global limit lifted, the sender's `DiscordLimits` set far above it): this figure is the
sender's own cost; bench/discord_scale.py measures the bot at Discord's limits.

Run with `.venv/bin/python -m bench.discord_fanout [--users N] [--concurrency C] [--repeats R]`.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import discord
from discord.http import handle_message_parameters

from bench.gated import run_gated
from bot.discord_endpoints import apply_discord_endpoints
from bot.sandbox.discord_emulator import DiscordEmulator
from services.clock import SystemClock
from services.delivery.base import Outcome, OutgoingMessage
from services.delivery.discord_dm import DiscordDMSender, fit_message
from services.delivery.discord_limits import DiscordLimits
from services.metrics import Metrics
from services.models import Channel
from storage.db import Database
from storage.discord_dms import DiscordDMStore

TEXT = "Kick-off in 15 minutes: <t:1795550400:t> (21:00 CET). See you in voice!"
FIRST_USER = 600_000_000_000_000_000


def _nonce(run: int, i: int) -> str:
    return f"b{run:03d}u{i:06d}"  # <= 25 characters, like the dispatcher's nonces


def _via_sender(sender: DiscordDMSender, run: int) -> Callable[[int], Awaitable[bool]]:
    async def one(i: int) -> bool:
        message = OutgoingMessage(Channel.DISCORD, str(FIRST_USER + i), TEXT, _nonce(run, i), i)
        return (await sender.send(message)).outcome is Outcome.SENT

    return one


def _via_bare_aiohttp(session: aiohttp.ClientSession, api: str, run: int) -> Callable[[int], Awaitable[bool]]:
    async def one(i: int) -> bool:
        async with session.post(f"{api}/users/@me/channels", json={"recipient_id": FIRST_USER + i}) as r:
            channel = await r.json()
        # Exactly the body discord.py sends for the sender's post (content, nonce, enforce_nonce, ...).
        body = handle_message_parameters(content=fit_message(TEXT), nonce=_nonce(run, i)).payload
        async with session.post(f"{api}/channels/{channel['id']}/messages", json=body) as r:
            message = await r.json()
        return r.status == 200 and "id" in message

    return one


async def main(users: int = 2000, concurrency: int = 16, repeats: int = 3) -> None:
    """Print the sender / bare aiohttp time ratio for a DM fan-out to `users` users."""
    print(f"machine: {platform.machine()} {platform.system()} python {platform.python_version()}")
    emulator = DiscordEmulator()
    for i in range(users):
        emulator.add_user(FIRST_USER + i, f"player{i}")
    # The emulator scans its nonce index on every post; with a zero window the index stays empty, so
    # its own cost does not grow from run to run (every nonce is fresh anyway: nothing to deduplicate).
    emulator.nonce_window = 0.0
    # This figure is the sender's overhead against a bare client that does not retry 429s, not a
    # paced fan-out: Discord's 50 requests/s global limit is lifted here (the emulator enforces it
    # by default), and so are the bot's own limits.
    emulator.global_rate_limit = None
    await emulator.start()
    apply_discord_endpoints(emulator.api_base_url, emulator.gateway_url)
    clock = SystemClock()
    limits = DiscordLimits(clock, Metrics(), global_per_second=100_000, dm_opens_per_second=100_000.0)
    # The bot's client settings (bot/client.py): max_ratelimit_timeout bounds waits on 429s.
    client = discord.Client(
        intents=discord.Intents.none(), max_ratelimit_timeout=30.0, http_trace=limits.trace_config
    )
    headers = {"Authorization": f"Bot {emulator.token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    workdir = tempfile.TemporaryDirectory(prefix="rp-dm-bench-")
    db = await Database.open(Path(workdir.name) / "rp.sqlite3")
    dms = DiscordDMStore(db)

    def new_sender() -> DiscordDMSender:
        return DiscordDMSender(client, limits, dms, clock)

    try:
        await client.login(emulator.token)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            # Warm-up: the emulator's DM channels for every user, and both connection pools.
            await run_gated(concurrency, range(users), _via_sender(new_sender(), 0))
            await run_gated(concurrency, range(4 * concurrency), _via_bare_aiohttp(session, emulator.api_base_url, 1))
            ours, bare = float("inf"), float("inf")
            for r in range(repeats):
                sender = new_sender()  # an empty DM-channel cache: open + post per user
                ours = min(ours, await run_gated(concurrency, range(users), _via_sender(sender, 10 + 2 * r)))
                run = _via_bare_aiohttp(session, emulator.api_base_url, 11 + 2 * r)
                bare = min(bare, await run_gated(concurrency, range(users), run))
        requests = 2 * users
        print(
            f"discord DM fan-out, {users} users ({requests} requests) at concurrency {concurrency}: "
            f"DiscordDMSender {ours:.3f} s ({users / ours:,.0f} DMs/s) / bare aiohttp {bare:.3f} s "
            f"({users / bare:,.0f} DMs/s) = {ours / bare:.2f} x (best of {repeats})"
        )
    finally:
        await client.close()
        await emulator.stop()
        await db.close()
        workdir.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(main(**vars(parser.parse_args())))
