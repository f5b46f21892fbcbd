"""What an operator's monitoring sees of the real bot process (`python -m bot run`): GET /readyz and
GET /metrics, before, during and after an evening, and when Discord goes away."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.sandbox.stack import PROMOTER_ID, SERVICE_TOKEN, Member, SandboxStack
from tests.e2e.e2e_helpers import (
    BOT_START_TIMEOUT,
    PROMOTION,
    BotProcess,
    campaign_status,
    running,
    say_and_opt_in,
    schedule_campaign,
    wait_until,
)

PLAYERS = {830_000_000_000_000_001: "Ana", 830_000_000_000_000_002: "Bor"}
DMS_CLOSED = 830_000_000_000_000_002  # Bor: every DM to him is a 403 (50007) from Discord
READY = {"gateway": "ok", "database": "ok", "scheduler": "ok"}
JOB_TYPES = ("send_reminder_2045", "send_start_2100", "voice_check_2100")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[SandboxStack]:
    members = [Member(PROMOTER_ID, "rally", nick="Rally", promoter=True)]
    members += [Member(uid, name.lower(), nick=name) for uid, name in PLAYERS.items()]
    stack = SandboxStack(tmp_path, telegram_enabled=False, signal_enabled=False, promotion=PROMOTION)
    async with running(stack, members):
        yield stack


async def get(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, str]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_readyz_and_metrics_on_the_real_bot(stack: SandboxStack, tmp_path: Path) -> None:
    db_path = tmp_path / "rallypoint.sqlite3"
    bot = None
    try:
        async with asyncio.timeout(120), aiohttp.ClientSession() as http:
            bot = await BotProcess.spawn(stack, tmp_path / "bot.log")
            listening = await wait_until(
                lambda: re.search(r"API listening on 127\.0\.0\.1:(\d+)", bot.output()), BOT_START_TIMEOUT, "the API"
            )
            base = f"http://127.0.0.1:{listening.group(1)}"

            async def readyz(wanted: int) -> dict[str, Any] | None:
                status, body = await get(http, f"{base}/readyz")
                return json.loads(body) if status == wanted else None

            answer = await wait_until(lambda: readyz(200), BOT_START_TIMEOUT, "GET /readyz answering 200", interval=0.1)
            assert answer == {"status": "ready", "checks": READY}

            # An evening: both players are looking; Bor's DMs are closed.
            stack.discord.dm_closed_user_ids = {DMS_CLOSED}
            for uid in PLAYERS:
                await say_and_opt_in(stack, uid)
            campaign_id = await schedule_campaign(stack, PROMOTER_ID)

            async def evening_over() -> bool:
                return await campaign_status(db_path, campaign_id) == "followup_sent"

            await wait_until(evening_over, 60, "the evening", interval=0.2)

            assert (await get(http, f"{base}/metrics"))[0] == 401
            assert (await get(http, f"{base}/metrics", Authorization="Bearer not-the-token"))[0] == 401
            status, text = await get(http, f"{base}/metrics", Authorization=f"Bearer {SERVICE_TOKEN}")
            assert status == 200
            found_samples = samples(text)

            def value(name: str, **labels: str) -> float:
                return found_samples.get((name, tuple(sorted(labels.items()))), 0.0)

            # Ana gets reminder, start and follow-up (nobody is in voice), the summary is posted; Bor's DMs
            # are refused once (50007), then remembered: his later messages skip Discord, his only channel
            # (and, his start ping not sent, he gets no follow-up at all).
            assert value("rallypoint_sends_total", channel="discord", outcome="sent") == 4
            assert value("rallypoint_sends_total", channel="discord", outcome="permanent") == 1
            assert value("rallypoint_discord_invalid_requests_total", status="403") == 1
            assert value("rallypoint_discord_invalid_requests_recent") == 1
            assert value("rallypoint_discord_sends_paused") == 0
            assert value("rallypoint_discord_global_rate_limits_total") == 0
            assert value("rallypoint_discord_requests_total") > 0
            for job_type in JOB_TYPES:
                assert value("rallypoint_jobs_finished_total", job_type=job_type, status="sent") == 1
                assert value("rallypoint_job_lateness_seconds_count", job_type=job_type) == 1
            assert value("rallypoint_fanout_duration_seconds_count", job_type="send_start_2100") >= 1
            assert value("rallypoint_jobs_running") == 0
            latency = value("rallypoint_gateway_latency_seconds")
            assert latency >= 0 or math.isnan(latency) or math.isinf(latency)  # present; real once heartbeats run
            for personal in [*map(str, PLAYERS), *PLAYERS.values(), str(PROMOTER_ID), "Rally", SERVICE_TOKEN]:
                assert personal not in text

            # Discord goes away: the process still serves, but it is not ready.
            await stack.discord.stop()

            answer = await wait_until(lambda: readyz(503), 30, "GET /readyz answering 503", interval=0.1)
            assert answer["status"] == "not_ready"
            assert answer["checks"] == {**READY, "gateway": "not connected to the Discord gateway"}
            assert (await get(http, f"{base}/healthz"))[0] == 200  # alive all the same
    finally:
        if bot is not None:
            await bot.kill()


async def test_a_connection_discord_ends_for_good_exits_1_for_the_supervisor(stack: SandboxStack, tmp_path) -> None:
    bot = None
    try:
        async with asyncio.timeout(60):
            bot = await BotProcess.spawn(stack, tmp_path / "bot.log")
            # 4004 "authentication failed": discord.py does not reconnect after it.
            await stack.discord.disconnect_sessions(code=4004, reason="Authentication failed.")
            returncode = await bot.proc.wait()
            assert returncode == 1, bot.output()  # not 0: systemd's Restart=on-failure restarts it
            assert "exiting with code 1 so that a supervisor restarts the bot" in bot.output()
    finally:
        if bot is not None:
            await bot.kill()
