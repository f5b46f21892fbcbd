"""Rallypoint's own side of Discord's limits (services.delivery.discord_limits): rules as tables of cases,
the budget and the global-429 wait on a fake clock, the limiter's windows on the real event loop."""

from __future__ import annotations

import asyncio
import bisect
import itertools
from datetime import UTC, datetime

import discord
import pytest
from discord.http import Route, handle_message_parameters
from yarl import URL

from services.clock import FakeClock, SystemClock
from services.delivery.discord_limits import (
    DiscordLimits,
    InvalidRequestBudget,
    bound_by_global_limit,
    counts_as_invalid,
    global_limiter,
    pace,
)
from services.metrics import Metrics
from tests.sandbox.discord_fixtures import GENERAL, STEP, client_options, intents, logged_in, running_emulator
from tests.support import sample

REQUESTS = "rallypoint_discord_requests_total"
WAITED = "rallypoint_discord_limiter_wait_seconds_total"
INVALID = "rallypoint_discord_invalid_requests_total"

START = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
API = "https://discord.com/api/v10"
SANDBOX = "http://127.0.0.1:8123/api/v10"


@pytest.mark.parametrize(
    ("status", "scope", "counts"),
    [
        (200, None, False),
        (204, None, False),
        (400, None, False),
        (401, None, True),
        (403, None, True),  # 50007 "cannot send messages to this user" among them
        (404, None, False),
        (429, "user", True),
        (429, "global", True),
        (429, None, True),  # Cloudflare's answer during a ban has no scope
        (429, "shared", False),  # Discord does not count shared-resource limits
        (500, None, False),
    ],
)
def test_which_answers_count_as_invalid(status: int, scope: str | None, counts: bool) -> None:
    assert counts_as_invalid(status, scope) is counts


@pytest.mark.parametrize(
    ("url", "base", "bound"),
    [
        (f"{API}/channels/1/messages", API, True),
        (f"{API}/users/@me/channels", API, True),
        (f"{API}/applications/5/guilds/6/commands", API, True),
        (f"{API}/users/@me", API + "/", True),
        (f"{SANDBOX}/channels/1/messages", SANDBOX, True),
        (f"{API}/interactions/9/tok/callback", API, False),  # not bound by the global limit on Discord
        (f"{API}/webhooks/5/tok", API, False),
        (f"{API}/webhooks/5/tok/messages/@original", API, False),
        ("wss://gateway.discord.gg/?v=10&encoding=json", API, False),  # the gateway is no REST call
        ("https://cdn.discordapp.com/avatars/1/abc.png", API, False),
        (f"{API}0/channels/1/messages", API, False),  # another API version is another base
        (f"{SANDBOX}/channels/1/messages", API, False),
    ],
)
def test_which_requests_the_global_limit_binds(url: str, base: str, bound: bool) -> None:
    assert bound_by_global_limit(URL(url), base) is bound


def test_the_budget_pauses_at_its_threshold_until_the_window_lets_go() -> None:
    clock, metrics = FakeClock(START), Metrics()
    budget = InvalidRequestBudget(clock, metrics, pause_at=3, window=600.0)

    def paused() -> float:
        return sample(metrics, "rallypoint_discord_sends_paused")

    budget.record(403)  # t = 0
    clock.advance(1)
    budget.record(429, "shared")  # not counted
    budget.record(200)
    clock.advance(99)
    budget.record(401)  # t = 100
    assert (budget.recent(), budget.pause_remaining(), budget.paused) == (2, 0.0, False)
    clock.advance(100)
    budget.record(429, "user")  # t = 200: the third
    assert budget.paused and paused() == 1
    assert sample(metrics, "rallypoint_discord_invalid_requests_recent") == 3
    assert budget.pause_remaining() == pytest.approx(400.0)  # until the answer of t = 0 leaves
    clock.advance(399)
    assert budget.pause_remaining() == pytest.approx(1.0) and budget.paused
    clock.advance(1)
    assert (budget.recent(), budget.pause_remaining(), budget.paused, paused()) == (2, 0.0, False, 0)
    budget.record(403)  # at the threshold again: a second pause
    assert budget.paused and paused() == 1
    assert (sample(metrics, INVALID, status="403"), sample(metrics, INVALID, status="401")) == (2, 1)
    assert sample(metrics, INVALID, status="429") == 1  # the shared-scope one not counted


def test_the_budget_refuses_a_threshold_below_one() -> None:
    with pytest.raises(ValueError):
        InvalidRequestBudget(FakeClock(START), Metrics(), pause_at=0)


async def test_a_global_429_makes_every_request_wait_its_retry_after() -> None:
    clock, metrics = FakeClock(START), Metrics()
    limits = DiscordLimits(clock, metrics)
    rest = URL(f"{Route.BASE}/channels/1/messages")
    await limits.admit(rest)
    assert clock.slept == [] and (sample(metrics, REQUESTS), sample(metrics, WAITED)) == (1, 0)

    # A 429 on one route only: nobody else waits for it (discord.py keeps that route's bucket).
    limits.answered(429, {"X-RateLimit-Scope": "user", "Retry-After": "5"})
    await limits.admit(URL(f"{Route.BASE}/users/@me/channels"))
    assert clock.slept == []

    limits.answered(429, {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", "Retry-After": "2"})
    assert sample(metrics, "rallypoint_discord_global_rate_limits_total") == 1
    # An interaction callback is not bound by the global limit: it goes at once.
    await limits.admit(URL(f"{Route.BASE}/interactions/9/tok/callback"))
    assert clock.slept == []
    # Every other request, on any route, waits until the global limit has passed.
    await limits.admit(URL(f"{Route.BASE}/channels/2/messages"))
    assert clock.slept == [2.0]
    await limits.admit(rest)
    assert clock.slept == [2.0]  # over: the next goes at once
    assert (sample(metrics, REQUESTS), sample(metrics, WAITED)) == (4, pytest.approx(2.0))  # not the callback
    assert sample(metrics, INVALID, status="429") == 2


async def test_a_global_429_stops_the_requests_already_queued_for_a_place() -> None:
    clock, metrics = FakeClock(START), Metrics()
    limits = DiscordLimits(clock, metrics, global_per_second=11)  # a place every 0.1 s
    rest = URL(f"{Route.BASE}/channels/1/messages")
    await limits.admit(rest)
    queued = asyncio.create_task(limits.admit(rest))  # waits about 0.1 s for its place
    await asyncio.sleep(0)
    limits.answered(429, {"X-RateLimit-Global": "true", "Retry-After": "3"})
    await queued
    # It got its place while the global limit was on: it waited that out, then queued again.
    assert clock.slept == [3.0] and sample(metrics, REQUESTS) == 2


async def test_a_retry_after_that_cannot_be_read_is_waited_as_one_second() -> None:
    clock = FakeClock(START)
    limits = DiscordLimits(clock, Metrics())
    limits.answered(429, {"X-RateLimit-Global": "true", "Retry-After": "soon"})
    await limits.admit(URL(f"{Route.BASE}/channels/2/messages"))
    assert clock.slept == [1.0]


async def acquisition_times(limiter_rate: int, count: int) -> list[float]:
    limiter = global_limiter(limiter_rate)
    loop = asyncio.get_running_loop()
    times = []

    async def one() -> None:
        await limiter.acquire()
        times.append(loop.time())

    async with asyncio.TaskGroup() as group:  # all at once, as a fan-out asks
        for _ in range(count):
            group.create_task(one())
    return sorted(times)


async def test_the_global_limiter_admits_at_most_its_rate_in_any_one_second_window() -> None:
    assert busiest_second(await acquisition_times(100, 150)) <= 100
    # Not a speed figure: a slow machine only spreads them out further.


def test_a_global_rate_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        global_limiter(1)


async def test_the_dm_open_pace_never_bursts() -> None:
    limiter = pace(20.0)
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(5):
        await limiter.acquire()
        times.append(loop.time())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 20 - 1e-6


def busiest_second(times: list[float]) -> int:
    """The most requests within any one-second window (closed at both ends)."""
    ordered = sorted(times)
    return max((bisect.bisect_right(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


async def test_the_bot_keeps_discord_pys_traffic_under_discords_global_limit() -> None:
    """A burst of 130 posts through a client built with the limits meets Discord's 50/s without a 429."""
    metrics = Metrics()
    limits = DiscordLimits(SystemClock(), metrics, global_per_second=45)
    async with running_emulator() as emulator:
        assert emulator.global_rate_limit == 50
        client = discord.Client(intents=intents(), http_trace=limits.trace_config, **client_options())
        async with logged_in(client), asyncio.timeout(8 * STEP):
            params = handle_message_parameters(content="ping")
            await asyncio.gather(*(client.http.send_message(GENERAL, params=params) for _ in range(130)))
        assert emulator.global_rate_limited == 0 and emulator.invalid_requests == 0
        assert len(emulator.channel_messages(GENERAL)) == 130
        # 45 as they leave the limiter (see the test above); one more for a request delayed on the way
        # to the emulator. Without the limiter, 50 a second arrive and the rest are refused.
        assert busiest_second([t for t, _ in emulator.arrivals]) <= 46
        assert sample(metrics, REQUESTS) == len(emulator.arrivals) == 132  # and the login's two
        assert sample(metrics, WAITED) > 0
