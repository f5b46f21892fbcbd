"""Run many sends with bounded concurrency and time them (shared by the fan-out benchmarks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable


async def run_gated(concurrency: int, ids: Iterable[int], one: Callable[[int], Awaitable[bool]]) -> float:
    """Run `one(i)` for every id with at most `concurrency` in flight; return the seconds taken."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(i: int) -> bool:
        async with gate:
            return await one(i)

    wanted = list(ids)
    started = time.perf_counter()
    results = await asyncio.gather(*(gated(i) for i in wanted))
    elapsed = time.perf_counter() - started
    if not all(results):
        raise RuntimeError(f"{results.count(False)} of {len(wanted)} sends failed")
    return elapsed
