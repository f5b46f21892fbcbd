"""The API's small parts on their own: membership cache, throttle, cookie signing, start/stop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.api import CachedMembership, StaticMembership, bound_port, create_app, start_api, stop_api
from bot.api.deps import DEPS
from bot.api.sessions import CookieSigner
from services.clock import FakeClock
from services.models import Actor
from tests.api.helpers import api_client

T0 = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


class CountingResolver:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail = False

    async def resolve(self, discord_user_id: int) -> Actor:
        self.calls.append(discord_user_id)
        if self.fail:
            raise ConnectionError("discord is down")
        return Actor(discord_user_id, True, frozenset(), f"user {len(self.calls)}")


async def test_static_membership_knows_its_members_and_no_one_else() -> None:
    members = StaticMembership({1: Actor(1, True, frozenset({9}), "Ana")})
    assert await members.resolve(1) == Actor(1, True, frozenset({9}), "Ana")
    assert await members.resolve(2) == Actor(2, False)


async def test_cached_membership_answers_from_the_cache_until_the_ttl_runs_out() -> None:
    clock = FakeClock(T0)
    inner = CountingResolver()
    cached = CachedMembership(inner, clock, ttl_seconds=30)
    first = await cached.resolve(7)
    clock.advance(29.9)
    assert await cached.resolve(7) == first
    assert inner.calls == [7]
    clock.advance(0.2)
    assert (await cached.resolve(7)).display_name == "user 2"
    assert inner.calls == [7, 7]


async def test_cached_membership_does_not_cache_failures_and_can_forget() -> None:
    inner = CountingResolver()
    cached = CachedMembership(inner, FakeClock(T0), ttl_seconds=30)
    inner.fail = True
    with pytest.raises(ConnectionError):
        await cached.resolve(7)
    inner.fail = False
    await cached.resolve(7)
    cached.invalidate(7)
    await cached.resolve(7)
    assert inner.calls == [7, 7, 7]


async def test_cached_membership_stays_bounded() -> None:
    inner = CountingResolver()
    cached = CachedMembership(inner, FakeClock(T0), ttl_seconds=30, max_entries=2)
    for user in (1, 2, 3):
        await cached.resolve(user)
    await cached.resolve(1)  # evicted as the oldest: asked again
    await cached.resolve(3)  # still cached
    assert inner.calls == [1, 2, 3, 1]


def test_a_signed_cookie_round_trips_and_resists_tampering_and_time() -> None:
    clock = FakeClock(T0)
    signer = CookieSigner("secret", clock)
    hour = timedelta(hours=1)
    value = signer.sign("session", {"uid": "42"}, hour)
    assert signer.verify("session", value, hour) == {"uid": "42"}
    assert signer.verify("oauth_state", value, hour) is None  # another purpose
    assert CookieSigner("other secret", clock).verify("session", value, hour) is None
    payload, mac = value.split(".")
    assert signer.verify("session", f"{payload}x.{mac}", hour) is None
    # A cookie claiming a longer life than the server grants is not one it signed for that use.
    assert signer.verify("session", value, timedelta(minutes=59)) is None
    clock.advance(3600)
    assert signer.verify("session", value, hour) is None
    opened = signer.open("session", value, hour)
    assert opened is not None and opened.expired and opened.data == {"uid": "42"}
    with pytest.raises(ValueError, match="session_secret"):
        CookieSigner("", clock)


async def test_start_api_serves_on_a_free_port_until_stopped(tmp_path) -> None:
    async with api_client(tmp_path) as api:
        app = create_app(api.client.app[DEPS], api.settings)
        runner = await start_api(app, "127.0.0.1", 0)
        port = bound_port(runner)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
        finally:
            await stop_api(runner)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"http://127.0.0.1:{port}/healthz")
