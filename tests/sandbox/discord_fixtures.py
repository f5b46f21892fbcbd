"""Shared pieces for tests that run real discord.py clients against the Discord emulator.

Imported explicitly (no conftest): a small world, an emulator context manager that points discord.py
at it and restores the process-wide endpoints afterwards, and helpers to run a client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import discord
import discord.gateway
import discord.http

from bot.discord_endpoints import apply_discord_endpoints
from bot.sandbox.discord_emulator import DiscordEmulator

TOKEN = "sandbox-token"
GUILD = 1_300_000_000_000_000_001
OTHER_GUILD = 1_300_000_000_000_000_002
ALICE = 1_400_000_000_000_000_001  # member, promoter role, not in voice
BOB = 1_400_000_000_000_000_002  # member, in the lounge
CAROL = 1_400_000_000_000_000_003  # member, in the stage
MUSIC_BOT = 1_400_000_000_000_000_004  # another bot, in the lounge
DAVE = 1_400_000_000_000_000_005  # a Discord user who is not a member
PROMOTER_ROLE = 1_500_000_000_000_000_001
GENERAL = 1_600_000_000_000_000_001  # text
LOUNGE = 1_600_000_000_000_000_002  # voice
AFK = 1_600_000_000_000_000_003  # voice, empty
STAGE = 1_600_000_000_000_000_004  # stage
ANNOUNCEMENTS = 1_600_000_000_000_000_005  # text

STEP = 5.0  # upper bound for any single wait in these tests

ClientT = TypeVar("ClientT", bound=discord.Client)


def build_world(emulator: DiscordEmulator) -> None:
    """Populate a guild with members, roles, text/voice/stage channels and nobody in voice yet."""
    emulator.add_guild(GUILD, "Night Owls", owner_id=ALICE)
    emulator.add_role(GUILD, PROMOTER_ROLE, "Promoter")
    emulator.add_member(GUILD, ALICE, "alice", global_name="Alice A.", nick="Ali", roles=[PROMOTER_ROLE])
    emulator.add_member(GUILD, BOB, "bob", global_name="Bob")
    emulator.add_member(GUILD, CAROL, "carol")
    emulator.add_member(GUILD, MUSIC_BOT, "tunes", bot=True)
    emulator.add_user(DAVE, "dave")
    emulator.add_text_channel(GUILD, GENERAL, "general")
    emulator.add_text_channel(GUILD, ANNOUNCEMENTS, "announcements")
    emulator.add_voice_channel(GUILD, LOUNGE, "Lounge")
    emulator.add_voice_channel(GUILD, AFK, "AFK")
    emulator.add_stage_channel(GUILD, STAGE, "Stage")


@contextlib.asynccontextmanager
async def running_emulator(**kwargs: Any) -> AsyncIterator[DiscordEmulator]:
    """Start an emulator on 127.0.0.1:0 with the test world; point discord.py at it meanwhile."""
    emulator = DiscordEmulator(TOKEN, **kwargs)
    build_world(emulator)
    saved_base = discord.http.Route.BASE
    saved_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    await emulator.start("127.0.0.1", 0)
    try:
        apply_discord_endpoints(emulator.api_base_url, emulator.gateway_url)
        yield emulator
    finally:
        discord.http.Route.BASE = saved_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved_gateway
        await emulator.stop()


def intents(*, members: bool = False, presences: bool = False) -> discord.Intents:
    """Return the intents the bot runs with: guilds + voice states (+ guild messages, DMs)."""
    chosen = discord.Intents.none()
    chosen.guilds = True
    chosen.voice_states = True
    chosen.guild_messages = True
    chosen.dm_messages = True
    chosen.members = members
    chosen.presences = presences
    return chosen


def client_options() -> dict[str, Any]:
    """Client options for tests: fast READY (the default waits 2 s for more guilds), bounded 429 waits."""
    return {"guild_ready_timeout": 0.05, "max_ratelimit_timeout": 30.0}


@contextlib.asynccontextmanager
async def connected(client: ClientT) -> AsyncIterator[ClientT]:
    """Log a client in, connect it to the gateway, wait until READY; close it afterwards."""
    await client.login(TOKEN)
    task = asyncio.create_task(client.connect(reconnect=False), name="discord-client")
    try:
        async with asyncio.timeout(STEP):
            ready = asyncio.ensure_future(client.wait_until_ready())
            done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                task.result()  # surfaces why the connection ended
                raise RuntimeError("discord client stopped before READY")
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(STEP):
                await task


@contextlib.asynccontextmanager
async def logged_in(client: ClientT) -> AsyncIterator[ClientT]:
    """Log a client in over REST only (enough for sending messages); close it afterwards."""
    await client.login(TOKEN)
    try:
        yield client
    finally:
        await client.close()
