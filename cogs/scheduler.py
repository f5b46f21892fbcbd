"""The tasks.loop that drives the dispatcher: it sleeps until the next due job, never polls."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

from services.engine import Engine

if TYPE_CHECKING:
    from bot.client import RallypointBot

log = logging.getLogger(__name__)

ERROR_PAUSE_SECONDS = 1.0


class SchedulerCog(commands.Cog):
    def __init__(self, bot: RallypointBot, engine: Engine) -> None:
        self.bot = bot
        self.dispatcher = engine.dispatcher

    async def cog_load(self) -> None:
        self.drive.start()

    async def cog_unload(self) -> None:
        self.drive.cancel()

    # seconds=0: each iteration itself waits (until the next due job or a wake-up).
    @tasks.loop(seconds=0)
    async def drive(self) -> None:
        dispatcher = self.dispatcher
        if dispatcher.closing:
            # Shutdown has begun: the producer stops first, before the running jobs are stopped.
            self.drive.stop()
            return
        try:
            await dispatcher.tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            # One bad iteration (a locked database, a storage error) must not stop the loop.
            log.exception("scheduler iteration failed; retrying")
            await asyncio.sleep(ERROR_PAUSE_SECONDS)

    @drive.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()
        log.info("scheduler running")

