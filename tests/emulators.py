"""Time bounds for tests: start and stop a loopback emulator within one, fail a test that overruns one."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

BOUND = 5.0  # seconds an emulator's start or stop, or a whole bounded test, may take


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


def bounded(test: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Fail a test that takes longer than BOUND seconds instead of letting it hang."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(BOUND):
            return await test(*args, **kwargs)

    return run
