"""Load on the HTTP API over a 10,000-player database, against a constant-JSON aiohttp baseline.

The API (and, beside it, a trivial aiohttp app answering a constant JSON body) runs in a child
process on 127.0.0.1 port 0; this process drives both with one aiohttp client at a fixed
concurrency and prints, per endpoint, requests/s and p50/p99 latency, each as a ratio against the
baseline measured in the same run.

What a polling page costs: the campaign status (answered from the cache of answers, and as 304 to
If-None-Match), and the preview with `limit=50` over 2,000 eligible players — from the cache; a new
page each time (a new `offset` per request: every answer is built anew, from the one selection of
recipients kept until the next change); and with a change before every request (each client has a
player set their status, then asks the preview: the selection is read and chosen anew after every
change, and the previews that fall between the same two changes share it).

Run with `.venv/bin/python -m bench.api_load [--players N] [--requests N] [--concurrency C]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.api import ApiDeps, bound_port, create_app, start_api, stop_api
from bot.app import engine_for
from bot.config import ApiSettings, DiscordSettings, Settings
from services.clock import SystemClock
from services.models import Actor
from services.schedule import campaign_date
from storage.db import Database, to_db_time

TOKEN = "bench-service-token"
PROMOTER_ID = 1
OTHER_STATUSES = ("AVAILABLE", "MAYBE", "NOT_PLAYING")
CHANNELS = ("any", "discord", "telegram", "signal")
LOOKING_EVERY = 5  # of 10,000 players, 2,000 look tonight (all open to promotions)
PAGE = 50
STATUS_TARGET = 0.5  # of the constant handler's throughput (issue 17)
PREVIEW_TARGET = 200.0  # requests/s with limit=50 at 2,000 eligible
AFTER_CHANGE_REQUESTS = 200  # each pays for a full selection: fewer, or the run takes minutes


def looking(player_id: int) -> bool:
    return player_id % LOOKING_EVERY == 0


def player_name(discord_id: int) -> str:
    return f"Player {discord_id:06d}"


async def seed(path: Path, players: int, settings: Settings) -> int:
    """Bulk-insert players, statuses, preferences and links in one transaction; return how many look."""
    now = datetime.now(UTC)
    at = to_db_time(now)
    day = campaign_date(now, settings.promotion.zone).isoformat()
    ids = range(1, players + 1)
    db = await Database.open(path)
    try:
        async with db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i, i, player_name(i), at, at) for i in ids],
            )
            # Every fifth LOOKING tonight; the others AVAILABLE / MAYBE / NOT_PLAYING.
            await tx.executemany(
                "INSERT INTO availability (player_id, date, status, updated_at) VALUES (?, ?, ?, ?)",
                [(i, day, "LOOKING" if looking(i) else OTHER_STATUSES[i % 3], at) for i in ids],
            )
            await tx.executemany(
                "INSERT INTO preferences (player_id, allow_promotions, promotions_chosen_at, preferred_channel,"
                " updated_at) VALUES (?, ?, ?, ?, ?)",
                # Everyone LOOKING said yes to promotions; of the others, one in ten never chose.
                [
                    (i, int(on), at if on else None, CHANNELS[i % 3], at)
                    for i in ids
                    for on in [looking(i) or i % 10 != 3]
                ],
            )
            # Placeholder ciphertexts: the API never decrypts, selection only needs the link rows.
            await tx.executemany(
                "INSERT INTO channel_links (player_id, channel, address_encrypted, address_hash, verified_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i, "telegram", f"enc-t{i}", f"hash-t{i}", at) for i in ids if i % 2 == 0]
                + [(i, "signal", f"enc-s{i}", f"hash-s{i}", at) for i in ids if i % 5 == 0],
            )
            row = await tx.fetchone(
                "SELECT count(*) FROM availability a JOIN preferences p USING (player_id)"
                " WHERE a.status = 'LOOKING' AND p.allow_promotions = 1"
            )
    finally:
        await db.close()
    return int(row[0]) if row else 0


class EveryoneIsAMember:
    """Membership as the gateway cache would answer it for a seeded player."""

    async def resolve(self, discord_user_id: int) -> Actor:
        return Actor(discord_user_id, True, frozenset(), player_name(discord_user_id))


class NoGateway:
    """Readiness for an API served without a Discord bot: never ready (the benchmark never asks)."""

    async def checks(self) -> dict[str, str]:
        return {"gateway": "no Discord bot in this benchmark", "database": "ok", "scheduler": "not running"}


def bench_settings() -> Settings:
    return Settings(
        discord=DiscordSettings(promoter_ids=[PROMOTER_ID]),
        api=ApiSettings(service_tokens=[SecretStr(TOKEN)]),
    )


def baseline_app() -> web.Application:
    body = b'{"campaign": null}'

    async def constant(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/constant", constant)
    return app


async def start_baseline() -> web.AppRunner:
    """The baseline on aiohttp's own server (start_api is for the API app alone)."""
    runner = web.AppRunner(baseline_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def serve(db_path: Path, conn: Connection) -> None:
    """Child process: serve the API and the baseline until the parent says stop."""
    settings = bench_settings()
    db = await Database.open(db_path)
    # No channel is started: the API never sends (the bench settings enable Discord alone).
    engine = engine_for(settings, db, SystemClock(), senders={})
    deps = ApiDeps(
        promote=engine.promote,
        standing=engine.standing,
        need=engine.need,
        players=engine.players,
        linking=engine.linking,
        sessions=engine.web_sessions,
        membership=EveryoneIsAMember(),
        clock=engine.clock,
        readiness=NoGateway(),
        metrics=engine.metrics,
        changes=db.changes,
    )
    api = await start_api(create_app(deps, settings), "127.0.0.1", 0)
    baseline = await start_baseline()
    try:
        conn.send((bound_port(api), bound_port(baseline)))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    finally:
        await stop_api(baseline)
        await stop_api(api)
        await db.close()


def serve_process(db_path: str, conn: Connection) -> None:
    asyncio.run(serve(Path(db_path), conn))


@dataclass(frozen=True)
class Figures:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def drive(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    count: int,
    concurrency: int,
    *,
    params: Callable[[int], dict[str, str]] = lambda i: {},
    expect: int = 200,
    before: Callable[[int], Awaitable[None]] | None = None,
) -> Figures:
    """Send `count` GETs (the i-th with `params(i)`, after `before(i)`) with `concurrency` in flight; each
    must answer `expect`. Throughput counts the GETs alone over the whole time, `before` included."""
    latencies: list[float] = []
    pending = iter(range(count))

    async def worker() -> None:
        for i in pending:
            if before is not None:
                await before(i)
            started = time.perf_counter()
            async with session.get(url, headers=headers, params=params(i)) as response:
                await response.read()
                if response.status != expect:
                    raise RuntimeError(f"{url} answered {response.status}, not {expect}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Figures(count, elapsed, cuts[49] * 1000, cuts[98] * 1000)


async def change_a_status(session: aiohttp.ClientSession, api: str, i: int) -> None:
    """A player who is not looking flips between AVAILABLE and MAYBE: a write, as any status change is."""
    player = LOOKING_EVERY * i + 1  # never one of the looking players (every fifth)
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Discord-User-Id": str(player)}
    body = {"status": ("AVAILABLE", "MAYBE")[i % 2]}
    async with session.post(f"{api}/api/availability", headers=headers, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"status change answered {response.status}: {await response.text()}")


def line(name: str, figures: Figures, baseline: Figures | None) -> str:
    text = (
        f"{name}: {figures.rate:,.0f} req/s, p50 {figures.p50_ms:.1f} ms, p99 {figures.p99_ms:.1f} ms"
        f" ({figures.requests} requests)"
    )
    if baseline is not None:
        text += (
            f"; vs baseline: throughput x{figures.rate / baseline.rate:.3f},"
            f" p50 x{figures.p50_ms / baseline.p50_ms:.1f}, p99 x{figures.p99_ms / baseline.p99_ms:.1f}"
        )
    return text


def verdict(name: str, value: float, target: float, unit: str) -> str:
    outcome = "meets" if value >= target else "MISSES"
    return f"{name}: {value:,.3f}{unit} ({outcome} the target of {target:,.3f}{unit}; ratio x{value / target:.2f})"


async def measure(api_port: int, baseline_port: int, requests: int, preview_requests: int, concurrency: int) -> None:
    api = f"http://127.0.0.1:{api_port}"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Discord-User-Id": str(PROMOTER_ID)}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        create_url = f"{api}/api/availability/promotions/campaigns"
        async with session.post(create_url, headers=headers, json={}) as response:
            created = await response.json()
            if response.status != 201:
                raise RuntimeError(f"could not create the campaign: {created}")
        print(f"campaign {created['campaign_id']}: {created['recipient_count']} recipients")
        status_url = f"{api}/api/availability/promotions/campaign"
        preview_url = f"{api}/api/availability/promotions/preview"
        constant_url = f"http://127.0.0.1:{baseline_port}/constant"
        page = {"limit": str(PAGE)}
        async with session.get(status_url, headers=headers) as response:
            tagged = {**headers, "If-None-Match": response.headers["ETag"]}
        async with session.get(preview_url, headers=headers, params=page) as response:
            eligible = (await response.json())["recipient_count"]
        # Warm up connections and caches before anything is timed.
        for url in (constant_url, status_url, preview_url):
            await drive(session, url, headers, concurrency * 2, concurrency)

        baseline = await drive(session, constant_url, headers, requests, concurrency)
        print(line("baseline (constant JSON, bare aiohttp handler)", baseline, None))
        status = await drive(session, status_url, headers, requests, concurrency)
        print(line("GET /api/availability/promotions/campaign", status, baseline))
        unchanged = await drive(session, status_url, tagged, requests, concurrency, expect=304)
        print(line("GET /api/availability/promotions/campaign, If-None-Match (304)", unchanged, baseline))
        cached = await drive(session, preview_url, headers, preview_requests, concurrency, params=lambda i: page)
        print(line(f"GET /api/availability/promotions/preview?limit={PAGE} ({eligible:,} eligible)", cached, baseline))
        # A new offset each time: every answer is built anew, from the selection kept since the last change.
        paged = await drive(
            session, preview_url, headers, preview_requests, concurrency,
            params=lambda i: {"limit": str(PAGE), "offset": str(i)},
        )
        print(line(f"GET /api/availability/promotions/preview?limit={PAGE}, a new page each time", paged, baseline))
        # A change before every request: the worst case, each preview reads and chooses anew.
        changed = await drive(
            session, preview_url, headers, AFTER_CHANGE_REQUESTS, concurrency, params=lambda i: page,
            before=lambda i: change_a_status(session, api, i),
        )
        after_change = f"GET /api/availability/promotions/preview?limit={PAGE}, after a change each time"
        print(line(after_change, changed, baseline))
        full = await drive(session, preview_url, headers, preview_requests, concurrency)
        print(line(f"GET /api/availability/promotions/preview (all {eligible:,} entries)", full, baseline))

        print(verdict("status / constant handler", status.rate / baseline.rate, STATUS_TARGET, ""))
        print(verdict("304 status / constant handler", unchanged.rate / baseline.rate, STATUS_TARGET, ""))
        print(verdict(f"preview limit={PAGE}, req/s", cached.rate, PREVIEW_TARGET, ""))
        print(verdict(f"preview limit={PAGE} a new page each time, req/s", paged.rate, PREVIEW_TARGET, ""))
        print(verdict(f"preview limit={PAGE} after a change each time, req/s", changed.rate, PREVIEW_TARGET, ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000, help="per endpoint")
    parser.add_argument("--preview-requests", type=int, default=None, help="default: --requests")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()} {platform.system()} python {platform.python_version()},"
        f" {multiprocessing.cpu_count()} cpus; concurrency {args.concurrency}"
    )
    with tempfile.TemporaryDirectory(prefix="rallypoint-bench-") as tmp:
        db_path = Path(tmp) / "bench.sqlite3"
        started = time.perf_counter()
        looking = asyncio.run(seed(db_path, args.players, bench_settings()))
        print(
            f"seeded {args.players:,} players ({looking:,} looking and open to promotions)"
            f" in {time.perf_counter() - started:.2f} s"
        )

        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        server = context.Process(target=serve_process, args=(str(db_path), child), name="api-server")
        server.start()
        try:
            if not parent.poll(60):
                raise RuntimeError("the API process did not start within 60 s")
            api_port, baseline_port = parent.recv()
            asyncio.run(
                measure(
                    api_port,
                    baseline_port,
                    args.requests,
                    args.preview_requests or args.requests,
                    args.concurrency,
                )
            )
        finally:
            if server.is_alive():
                parent.send("stop")
            server.join(30)
            if server.is_alive():
                server.terminate()
                server.join()


if __name__ == "__main__":
    main()
