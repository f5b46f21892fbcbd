"""Start and stop a loopback emulator within a bound, for fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

BOUND = 5.0  # seconds a start or a stop may take


class _Emulator(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


E = TypeVar("E", bound=_Emulator)


@asynccontextmanager
async def running(emulator: E, bound: float = BOUND) -> AsyncIterator[E]:
    async with asyncio.timeout(bound):
        await emulator.start()
    try:
        yield emulator
    finally:
        async with asyncio.timeout(bound):
            await emulator.stop()
