"""`GET /readyz`: ready when the gateway is connected with the guild available, the database answers
and the scheduler loop keeps time. `GET /healthz` only says the process serves HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.client import RallypointBot
from services.clock import Clock
from services.dispatcher import Dispatcher
from storage.db import Database

OK = "ok"
# The loop wakes within milliseconds of its due time; this much later, something holds it up (a
# database lock, a blocked event loop).
SCHEDULER_BOUND = timedelta(seconds=10)
DATABASE_TIMEOUT_SECONDS = 5.0


class Readiness:
    def __init__(self, *, bot: RallypointBot, db: Database, dispatcher: Dispatcher, clock: Clock) -> None:
        self._bot = bot
        self._db = db
        self._dispatcher = dispatcher
        self._clock = clock

    async def checks(self) -> dict[str, str]:
        """Each check's name → "ok" or what is wrong, in words."""
        return {
            "gateway": self._bot.gateway_problem() or OK,
            "database": await self._database(),
            "scheduler": self._scheduler(),
        }

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
                await self._db.ping()
        except TimeoutError:
            return f"no answer within {DATABASE_TIMEOUT_SECONDS:g} s"
        except Exception as exc:  # any failure to answer is the answer
            return f"cannot query the database ({type(exc).__name__})"
        return OK

    def _scheduler(self) -> str:
        pulse = self._dispatcher.pulse
        if pulse is None:
            return "not started yet (it starts once the gateway is ready)"
        return pulse.problem(self._clock.now(), SCHEDULER_BOUND) or OK
