"""Discord's limits on a bot's REST traffic as a whole: the global rate limit, invalid requests, the ban.

The rules are checked on `RestLimits` with a fake clock (tables of cases), then end to end: the real
discord.py client against the emulator, and raw HTTP for the exact answer shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest

from bot.sandbox.discord_emulator import DiscordEmulator
from bot.sandbox.discord_limits import RestLimits
from tests.sandbox.discord_fixtures import (
    ALICE,
    BOB,
    CAROL,
    GENERAL,
    STEP,
    TOKEN,
    client_options,
    intents,
    logged_in,
    running_emulator,
)

BOT_AUTH = {"Authorization": f"Bot {TOKEN}"}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _params(content: str) -> discord.http.MultipartParameters:
    return discord.http.handle_message_parameters(content=content)


# ---- the rules, on a fake clock ---------------------------------------------------------------


def test_the_global_limit_admits_n_per_sliding_second() -> None:
    clock = FakeClock()
    limits = RestLimits(clock, global_per_second=3)
    for _ in range(3):  # at 0, 0.25 and 0.5 s
        assert limits.admit() is None
        clock.now += 0.25
    assert limits.admit() == 0.25  # at 0.75 s: full until the first leaves at 1.0 s
    clock.now += 0.25
    assert limits.admit() is None  # at 1.0 s the first has left
    assert limits.admit() == 0.25  # full again until the one of 0.25 s leaves
    assert limits.global_rate_limited == 2


def test_refused_requests_take_no_place_in_the_window() -> None:
    clock = FakeClock()
    limits = RestLimits(clock, global_per_second=1)
    assert limits.admit() is None
    for _ in range(10):
        clock.now += 0.0625
        assert limits.admit() is not None
    clock.now += 0.375  # one second after the admitted request
    assert limits.admit() is None


def test_no_global_limit_when_lifted() -> None:
    limits = RestLimits(FakeClock(), global_per_second=None)
    assert all(limits.admit() is None for _ in range(1000))
    assert limits.global_rate_limited == 0


@pytest.mark.parametrize(
    ("status", "shared", "counted"),
    [
        (200, False, False),
        (204, False, False),
        (400, False, False),
        (401, False, True),
        (403, False, True),
        (404, False, False),
        (429, False, True),
        (429, True, False),  # "429 errors returned with X-RateLimit-Scope: shared are not counted"
        (500, False, False),
    ],
)
def test_which_answers_are_invalid_requests(status: int, shared: bool, counted: bool) -> None:
    limits = RestLimits(FakeClock())
    limits.record_answer(status, shared_scope=shared)
    assert limits.invalid_requests == int(counted)
    assert limits.invalid_requests_recent() == int(counted)


def test_more_invalid_requests_than_the_limit_within_ten_minutes_ban() -> None:
    clock = FakeClock()
    limits = RestLimits(clock, invalid_request_limit=3, ban_seconds=60.0)
    for _ in range(3):
        limits.record_answer(403)
        clock.now += 1
    assert limits.ban_remaining() == 0 and not limits.refuse_banned()
    limits.record_answer(401)  # the fourth within the window
    assert limits.ban_remaining() == pytest.approx(60.0) and limits.bans == 1
    assert limits.refuse_banned() and limits.banned_requests == 1
    clock.now += 60.0
    assert limits.ban_remaining() == 0 and not limits.refuse_banned()


def test_the_invalid_request_window_slides() -> None:
    clock = FakeClock()
    limits = RestLimits(clock, invalid_request_limit=2)
    limits.record_answer(429)
    clock.now += 300
    limits.record_answer(429)
    clock.now += 301  # the first is now older than 10 minutes
    limits.record_answer(429)
    assert limits.invalid_requests_recent() == 2 and limits.bans == 0
    assert limits.invalid_requests == 3


def test_lifting_a_ban_forgets_its_invalid_requests() -> None:
    limits = RestLimits(FakeClock(), invalid_request_limit=1)
    limits.record_answer(403)
    limits.record_answer(403)
    assert limits.ban_remaining() > 0
    limits.lift_ban()
    assert limits.ban_remaining() == 0 and limits.invalid_requests_recent() == 0
    assert limits.invalid_requests == 2  # the running total stays


# ---- end to end -------------------------------------------------------------------------------


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with running_emulator() as emu:
        yield emu


async def test_a_global_429_has_discords_shape_and_counts_as_invalid() -> None:
    clock = FakeClock()  # frozen: every request falls in the same second
    async with running_emulator(clock=clock, global_rate_limit=2) as emulator:
        url = f"{emulator.api_base_url}/channels/{GENERAL}"
        async with aiohttp.ClientSession(headers=BOT_AUTH) as session, asyncio.timeout(STEP):
            for _ in range(2):
                async with session.get(url) as resp:
                    assert resp.status == 200
            async with session.get(url) as resp:
                assert resp.status == 429
                assert resp.headers["Content-Type"] == "application/json"
                assert resp.headers["X-RateLimit-Global"] == "true"
                assert resp.headers["X-RateLimit-Scope"] == "global"
                assert resp.headers["Retry-After"] == "1"
                assert "Via" in resp.headers  # Discord's own answer, not Cloudflare's
                body = await resp.json()
            # Interaction callbacks are not bound by the global limit: an unknown one is a 404, not a 429.
            async with session.post(f"{emulator.api_base_url}/interactions/1/x/callback", json={}) as resp:
                assert resp.status == 404
        assert body == {"message": "You are being rate limited.", "retry_after": 1.0, "global": True}
        assert emulator.global_rate_limited == 1 and emulator.global_rate_limited_at == [1000.0]
        assert emulator.invalid_requests == 1
        assert emulator.requests["GET /channels/{channel_id}"] == 3  # the refused one was a request too
        assert emulator.requests_to_channel(GENERAL) == 3
        callback = "POST /interactions/{interaction_id}/{token}/callback"
        assert emulator.arrivals[-4:] == [(1000.0, "GET /channels/{channel_id}")] * 3 + [(1000.0, callback)]


async def test_discord_py_waits_out_global_429s_and_sends_everything_once() -> None:
    async with running_emulator(global_rate_limit=5) as emulator:
        async with logged_in(discord.Client(intents=intents(), **client_options())) as client:
            async with asyncio.timeout(4 * STEP):
                sent = await asyncio.gather(
                    *(client.http.send_message(GENERAL, params=_params(f"ping {i}")) for i in range(12))
                )
        assert sorted(m["content"] for m in emulator.channel_messages(GENERAL)) == sorted(
            f"ping {i}" for i in range(12)
        )
        assert len({m["id"] for m in sent}) == 12
        assert emulator.global_rate_limited > 0
        assert emulator.invalid_requests == emulator.global_rate_limited  # nothing else was invalid
        assert not emulator.banned


async def test_the_global_limit_can_be_lifted_and_set_again(emulator: DiscordEmulator) -> None:
    assert emulator.global_rate_limit == 50  # Discord's figure, on by default
    emulator.global_rate_limit = None
    async with logged_in(discord.Client(intents=intents(), **client_options())) as client, asyncio.timeout(STEP):
        await asyncio.gather(*(client.http.send_message(GENERAL, params=_params("x")) for _ in range(120)))
    assert emulator.global_rate_limited == 0
    with pytest.raises(ValueError, match="at least 1"):
        emulator.global_rate_limit = 0
    emulator.global_rate_limit = 50
    assert emulator.global_rate_limit == 50


async def test_closed_dms_count_as_invalid_and_past_the_limit_cloudflare_bans() -> None:
    clock = FakeClock()
    async with running_emulator(clock=clock, invalid_request_limit=3, ban_seconds=600.0) as emulator:
        emulator.dm_closed_user_ids = {BOB}
        async with logged_in(discord.Client(intents=intents(), **client_options())) as client:
            channel = await client.http.start_private_message(BOB)
            for _ in range(4):
                with pytest.raises(discord.Forbidden) as closed:
                    await client.http.send_message(int(channel["id"]), params=_params("hi"))
                assert closed.value.code == 50007
            assert emulator.banned and emulator.bans == 1
            # Banned: Cloudflare answers, without Discord's headers; discord.py raises instead of retrying.
            with pytest.raises(discord.HTTPException) as banned:
                await client.http.send_message(GENERAL, params=_params("still there?"))
            assert banned.value.status == 429
            assert banned.value.response.headers.get("Via") is None
            assert "X-RateLimit-Scope" not in banned.value.response.headers
            assert emulator.banned_requests == 1
            assert emulator.channel_messages(GENERAL) == []
            clock.now += 600.0  # the ban is over
            await client.http.send_message(GENERAL, params=_params("back"))
        assert emulator.dm_closed_refusals == {BOB: 4}
        assert emulator.invalid_requests == 4  # the ban's own answer is Cloudflare's, not counted
        assert [m["content"] for m in emulator.channel_messages(GENERAL)] == ["back"]


async def test_a_ban_can_be_lifted_by_a_test() -> None:
    async with running_emulator(invalid_request_limit=1) as emulator:
        url = f"{emulator.api_base_url}/users/@me"
        async with aiohttp.ClientSession() as session, asyncio.timeout(STEP):
            for _ in range(2):
                async with session.get(url, headers={"Authorization": "Bot wrong"}) as resp:
                    assert resp.status == 401
            async with session.get(url, headers=BOT_AUTH) as resp:
                assert resp.status == 429 and await resp.text() == "error code: 1015"
            emulator.lift_ban()
            async with session.get(url, headers=BOT_AUTH) as resp:
                assert resp.status == 200
        assert emulator.invalid_requests == 2 and emulator.invalid_requests_recent() == 0


async def test_dm_channels_are_stable_and_every_open_is_counted(emulator: DiscordEmulator) -> None:
    async with logged_in(discord.Client(intents=intents(), **client_options())) as client:
        first = await client.http.start_private_message(ALICE)
        again = await client.http.start_private_message(ALICE)
        await client.http.send_message(int(first["id"]), params=_params("kick-off"))
        await client.http.start_private_message(CAROL)
    assert first["id"] == again["id"] == str(emulator.dm_channel_id(ALICE))
    assert emulator.dm_channel_opens == {ALICE: 2, CAROL: 1}
    assert emulator.requests_to_user(ALICE) == 3  # two opens and one message on the channel
    assert emulator.requests_to_user(CAROL) == 1
    assert emulator.requests_to_user(BOB) == 0
    assert emulator.dm_closed_refusals == {}
    assert emulator.invalid_requests == 0


async def test_a_refused_dm_open_still_counts_as_a_request_to_that_user() -> None:
    clock = FakeClock()
    async with running_emulator(clock=clock, global_rate_limit=1) as emulator:
        url = f"{emulator.api_base_url}/users/@me/channels"
        async with aiohttp.ClientSession(headers=BOT_AUTH) as session, asyncio.timeout(STEP):
            for expected in (200, 429):
                async with session.post(url, json={"recipient_id": str(ALICE)}) as resp:
                    assert resp.status == expected
        assert emulator.requests_to_user(ALICE) == 2
        assert emulator.dm_channel_opens == {ALICE: 1}  # only the answered open


async def test_wait_until_rechecks_on_every_request(emulator: DiscordEmulator) -> None:
    async with logged_in(discord.Client(intents=intents(), **client_options())) as client:
        waiter = asyncio.create_task(emulator.wait_until(lambda: emulator.dm_channel_opens[BOB] >= 1, STEP))
        await client.http.start_private_message(BOB)
        assert await waiter is True
        with pytest.raises(TimeoutError, match="nobody opened"):
            await emulator.wait_until(lambda: emulator.dm_channel_opens[CAROL] >= 1, 0.05, "nobody opened")
