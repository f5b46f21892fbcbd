"""/healthz while a crowd of slow clients trickles request headers at the API (the connection guard at work).

The API runs in a child process on 127.0.0.1 port 0 with the default limits (256 connections,
10 s for headers). This process times sequential `GET /healthz` requests, each on a new connection,
first alone (the baseline), then while 1,000 connections each send a header byte every 100 ms, and
prints the latency under attack as a ratio against the baseline, how many requests were answered,
and the most connections the server held open at once.

Run with `.venv/bin/python -m bench.slow_clients [--tricklers N] [--requests N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import platform
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

from bench.api_load import NoGateway
from bot.api import ApiDeps, StaticMembership, bound_port, create_app, start_api, stop_api
from bot.api.connections import CONNECTIONS
from bot.app import engine_for
from bot.config import Settings
from services.clock import SystemClock
from storage.db import Database

HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def serve(db_path: Path, conn: Connection) -> None:
    """Child process: serve the API until the parent says stop, then report the guard's figures."""
    settings = Settings()
    db = await Database.open(db_path)
    engine = engine_for(settings, db, SystemClock(), senders={})
    deps = ApiDeps(
        promote=engine.promote, standing=engine.standing, need=engine.need, players=engine.players,
        linking=engine.linking, sessions=engine.web_sessions, membership=StaticMembership(), clock=engine.clock,
        readiness=NoGateway(), metrics=engine.metrics, changes=db.changes,
    )
    app = create_app(deps, settings)
    runner = await start_api(app, "127.0.0.1", 0)
    try:
        conn.send(bound_port(runner))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        guard = app[CONNECTIONS]
        conn.send((guard.peak, guard.displaced, guard.refused, guard.limits.max_connections))
    finally:
        await stop_api(runner)
        await db.close()


def serve_process(db_path: str, conn: Connection) -> None:
    asyncio.run(serve(Path(db_path), conn))


async def trickle(port: int, stop: asyncio.Event) -> int:
    """Hold a connection open with one header byte every 100 ms, reconnecting when closed; return reconnects."""
    reconnects = 0
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD)
            while not stop.is_set() and not writer.is_closing():
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
            writer.close()
        except (ConnectionError, OSError):
            reconnects += 1
            await asyncio.sleep(0.1)
    return reconnects


async def healthz_latencies(port: int, count: int) -> tuple[list[float], int]:
    """Sequential requests, a new connection each; the latencies of the 200s and how many were not 200."""
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(count):
            started = time.perf_counter()
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1
    return latencies, failures


def percentile_ms(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1] * 1000 if len(values) > 1 else float("nan")


async def measure(port: int, tricklers: int, requests: int) -> None:
    await healthz_latencies(port, 20)  # warm up
    alone, alone_failed = await healthz_latencies(port, requests)
    stop = asyncio.Event()
    crowd = [asyncio.create_task(trickle(port, stop)) for _ in range(tricklers)]
    await asyncio.sleep(2)  # let the crowd connect and fill the server up
    attacked, attacked_failed = await healthz_latencies(port, requests)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*crowd), 10)
    p50, p99 = percentile_ms(alone, 50), percentile_ms(alone, 99)
    a50, a99 = percentile_ms(attacked, 50), percentile_ms(attacked, 99)
    print(f"/healthz alone: {len(alone)}/{requests} answered 200, p50 {p50:.2f} ms, p99 {p99:.2f} ms"
          f" ({alone_failed} not answered)")
    print(
        f"/healthz with {tricklers} trickling connections: {len(attacked)}/{requests} answered 200"
        f" ({attacked_failed} not), p50 {a50:.2f} ms (x{a50 / p50:.1f} of alone), p99 {a99:.2f} ms"
        f" (x{a99 / p99:.1f} of alone)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tricklers", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.system()} python {platform.python_version()},"
          f" {multiprocessing.cpu_count()} cpus")
    with tempfile.TemporaryDirectory(prefix="rallypoint-bench-") as tmp:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        server = context.Process(target=serve_process, args=(str(Path(tmp) / "b.sqlite3"), child), name="api")
        server.start()
        try:
            if not parent.poll(60):
                raise RuntimeError("the API process did not start within 60 s")
            port = parent.recv()
            asyncio.run(measure(port, args.tricklers, args.requests))
            parent.send("stop")
            if parent.poll(30):
                peak, displaced, refused, cap = parent.recv()
                print(f"server: at most {peak} connections open (cap {cap}, {peak / cap:.2f} of it);"
                      f" {displaced} slow connections displaced, {refused} refused")
        finally:
            server.join(30)
            if server.is_alive():
                server.terminate()
                server.join()


if __name__ == "__main__":
    main()
