"""The scheduler loop: one failing iteration is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import pytest

import cogs.scheduler
from cogs.scheduler import SchedulerCog


class ScriptedDispatcher:
    """`tick` raises the scripted errors in turn, then idles (as the real one waits for work)."""

    def __init__(self, *script: BaseException) -> None:
        self.script = list(script)
        self.calls = 0
        self.idle = asyncio.Event()
        self.closing = False

    async def tick(self) -> None:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        self.idle.set()
        await asyncio.Event().wait()


@dataclass
class EngineStub:
    dispatcher: ScriptedDispatcher


@dataclass
class SchedulerBot:
    """What SchedulerCog uses of the bot: wait_until_ready."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_until_ready(self) -> None:
        await self.ready.wait()


@pytest.fixture(autouse=True)
def no_pause(monkeypatch) -> None:
    monkeypatch.setattr(cogs.scheduler, "ERROR_PAUSE_SECONDS", 0)


def cog_with(*script: BaseException) -> tuple[SchedulerCog, ScriptedDispatcher]:
    dispatcher = ScriptedDispatcher(*script)
    return SchedulerCog(SchedulerBot(), EngineStub(dispatcher)), dispatcher  # type: ignore[arg-type]


def failures(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cogs.scheduler" and r.levelno == logging.ERROR]


async def test_an_iteration_that_raises_is_logged_and_returns(caplog) -> None:
    cog, dispatcher = cog_with(RuntimeError("database is locked"))
    with caplog.at_level(logging.ERROR, logger="cogs.scheduler"):
        assert await SchedulerCog.drive.coro(cog) is None
    assert dispatcher.calls == 1
    [record] = failures(caplog)
    assert record.getMessage() == "scheduler iteration failed; retrying"
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_cancellation_is_not_swallowed(caplog) -> None:
    cog, _ = cog_with(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await SchedulerCog.drive.coro(cog)
    assert failures(caplog) == []


async def test_the_running_loop_waits_for_ready_and_survives_failing_iterations(caplog) -> None:
    cog, dispatcher = cog_with(RuntimeError("one"), OSError("two"))
    bot: SchedulerBot = cog.bot  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="cogs.scheduler"):
        await cog.cog_load()
        task = cog.drive.get_task()
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            assert dispatcher.calls == 0  # not before the gateway is ready
            bot.ready.set()
            await asyncio.wait_for(dispatcher.idle.wait(), timeout=5)
            assert dispatcher.calls == 3  # two failures, then a third iteration
            assert cog.drive.is_running()
        finally:
            await cog.cog_unload()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert not cog.drive.is_running()
    assert [type(r.exc_info[1]) for r in failures(caplog)] == [RuntimeError, OSError]


async def test_the_loop_stops_without_another_tick_once_the_dispatcher_is_closing() -> None:
    cog, dispatcher = cog_with()
    bot: SchedulerBot = cog.bot  # type: ignore[assignment]
    bot.ready.set()
    dispatcher.closing = True
    await cog.cog_load()
    task = cog.drive.get_task()
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=5)
    finally:
        await cog.cog_unload()
    assert dispatcher.calls == 0
    assert not cog.drive.is_running()
