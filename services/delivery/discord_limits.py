"""Rallypoint's side of Discord's limits: one proactive limiter for every REST call, a gentle pace for
new DM channels, a global 429 that stops everyone, and the invalid-request budget.

Discord allows a bot 50 requests/s across all routes (past it: 429 with `"global": true`) and bans the
bot's IP for about an hour once it has had 10,000 401/403/429 answers within 10 minutes (50007 "cannot
send messages to this user" is a 403 and counts). discord.py keeps each route's bucket but learns of
the global limit only from a 429, so Rallypoint limits itself ahead of it, in one place:

- `DiscordLimits.trace_config` goes into the client (`discord.Client(http_trace=...)`, a documented
  option of the pinned discord.py). aiohttp awaits its `on_request_start` before each request the
  client's session sends: every REST call, each try of discord.py's own retries, and the senders'
  direct `http.send_message`. There the request takes a place from one aiolimiter bucket. Interaction
  callbacks and webhooks are not bound by Discord's global limit and skip it (an interaction must be
  answered within 3 s, never behind a campaign); the gateway and CDN are not REST.
- `on_request_end` sees every answer: 401/403/429 go to the `InvalidRequestBudget`; a global 429 makes
  every request wait until its Retry-After has passed, not only the one that got it.
- Discord sends ask `send_pause()` first: while the budget holds `pause_at` answers they give way, for
  as long as the sliding window needs to fall below it.

What happens is recorded in the process's `Metrics`: requests and the seconds they waited, global
429s, invalid answers by status and within the window, and whether sends are paused.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from types import SimpleNamespace

import aiohttp
from aiolimiter import AsyncLimiter
from discord.http import Route
from yarl import URL

from services.clock import Clock
from services.metrics import Metrics

log = logging.getLogger(__name__)

INVALID_STATUSES = frozenset({401, 403, 429})
INVALID_WINDOW_SECONDS = 600.0  # Discord counts invalid requests over 10 minutes
# Paths (after the API base) that Discord does not count toward the global limit.
_UNBOUND_PREFIXES = ("/interactions/", "/webhooks/")
_NOTED_WAIT = 0.001  # seconds: shorter waits are the loop's own jitter, not the limiter's


def counts_as_invalid(status: int, scope: str | None) -> bool:
    """Whether Discord counts this answer toward the invalid-request ban (shared-scope 429s do not)."""
    return status in INVALID_STATUSES and not (status == 429 and scope == "shared")


def bound_by_global_limit(url: URL, api_base: str) -> bool:
    """Whether a request to `url` counts toward the bot's global limit: REST under `api_base`,
    except interaction callbacks and webhooks."""
    text = str(url)
    if not text.startswith(api_base.rstrip("/") + "/"):
        return False
    rest = text[len(api_base.rstrip("/")) :]
    return not rest.startswith(_UNBOUND_PREFIXES)


def global_limiter(per_second: int) -> AsyncLimiter:
    """A bucket of `burst` places that drains `per_second - burst` places a second.

    A one-second window can hold the bucket's places plus what drained meanwhile: at most
    burst + (per_second - burst) = per_second requests, however late the event loop wakes (a late
    wake-up never adds places). The burst is one place at Discord's figures (requests go at least
    1 / 44 s apart), a few at the higher limits Discord grants some bots, so that each request does
    not wait for a timer of its own.
    """
    if per_second < 2:
        raise ValueError("the global rate is at least 2 requests per second")
    burst = max(1, per_second // 40)
    return AsyncLimiter(burst, burst / (per_second - burst))


def pace(per_second: float) -> AsyncLimiter:
    """At most `per_second` acquisitions a second, one at a time (no burst)."""
    if per_second <= 0:
        raise ValueError("a pace must be positive")
    return AsyncLimiter(1, 1 / per_second)


class InvalidRequestBudget:
    """401/403/429 answers over a sliding 10 minutes; Discord sends pause while `pause_at` are in it."""

    def __init__(
        self, clock: Clock, metrics: Metrics, *, pause_at: int, window: float = INVALID_WINDOW_SECONDS
    ) -> None:
        if pause_at < 1 or window <= 0:
            raise ValueError("the budget needs pause_at >= 1 and a positive window")
        self._clock = clock
        self._metrics = metrics
        self.pause_at = pause_at
        self.window = window
        self._answers: deque[float] = deque()  # monotonic times of the answers in the window
        self.paused = False
        metrics.discord_invalid_recent_from(self.recent)
        metrics.discord_sends_paused(False)

    def record(self, status: int, scope: str | None = None) -> None:
        """Count one answer if Discord would (see `counts_as_invalid`)."""
        if not counts_as_invalid(status, scope):
            return
        now = self._clock.monotonic()
        self._answers.append(now)
        self._metrics.discord_invalid_request(status)
        self._expire(now)
        if len(self._answers) >= self.pause_at and not self.paused:
            self.paused = True
            self._metrics.discord_sends_paused(True)
            log.warning(
                "discord: %d invalid requests (401/403/429) within %.0f minutes: Discord sends pause "
                "(Discord bans at 10,000)",
                len(self._answers), self.window / 60,
            )

    def recent(self) -> int:
        """Answers within the window now."""
        self._expire(self._clock.monotonic())
        return len(self._answers)

    def pause_remaining(self) -> float:
        """Seconds until fewer than `pause_at` answers are left in the window (0.0: send now)."""
        now = self._clock.monotonic()
        self._expire(now)
        excess = len(self._answers) - self.pause_at
        if excess < 0:
            if self.paused:
                self.paused = False
                self._metrics.discord_sends_paused(False)
                log.warning("discord: invalid requests are below %d again: Discord sends resume", self.pause_at)
            return 0.0
        # Once the oldest excess + 1 answers have left the window, pause_at - 1 remain.
        return max(0.0, self._answers[excess] + self.window - now)

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._answers and self._answers[0] <= horizon:
            self._answers.popleft()


class DiscordLimits:
    """Every limit Rallypoint keeps on its own Discord traffic, owned here and nowhere else."""

    def __init__(
        self,
        clock: Clock,
        metrics: Metrics,
        *,
        global_per_second: int = 45,
        dm_opens_per_second: float = 10.0,
        invalid_requests_pause_at: int = 4000,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self.global_per_second = global_per_second
        self._global = global_limiter(global_per_second)
        self._dm_opens = pace(dm_opens_per_second)
        self.budget = InvalidRequestBudget(clock, metrics, pause_at=invalid_requests_pause_at)
        self._resume_at = -math.inf  # monotonic time a global 429 ends
        self.trace_config = aiohttp.TraceConfig()
        self.trace_config.on_request_start.append(self._on_request_start)
        self.trace_config.on_request_end.append(self._on_request_end)

    async def admit(self, url: URL) -> None:
        """Wait for the place of one request to `url` under the global limit (if it is bound by it)."""
        if not bound_by_global_limit(url, Route.BASE):
            return
        started = self._clock.monotonic()
        while True:
            while (paused := self._resume_at - self._clock.monotonic()) > 0:
                await self._clock.sleep(paused)
            await self._global.acquire()
            # A global 429 that came while this request queued for its place stops it too; it then
            # queues again, so that the requests held back do not all go at once when it is over.
            if self._resume_at <= self._clock.monotonic():
                break
        waited = self._clock.monotonic() - started
        self._metrics.discord_request(waited if waited >= _NOTED_WAIT else 0.0)

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        """Note one answer: toward the invalid-request budget, and a global 429 stops every request."""
        scope = headers.get("X-RateLimit-Scope")
        self.budget.record(status, scope)
        if status == 429 and (headers.get("X-RateLimit-Global") == "true" or scope == "global"):
            retry_after = _seconds(headers.get("Retry-After"))
            self._metrics.discord_global_rate_limit()
            self._resume_at = max(self._resume_at, self._clock.monotonic() + retry_after)
            log.warning("discord: global rate limit hit; every request waits %.1f s", retry_after)

    async def before_dm_open(self) -> None:
        """Wait for the pace of new DM channels (a first DM to many players must not look like spam)."""
        await self._dm_opens.acquire()

    def send_pause(self) -> float:
        """Seconds Discord sends must give way to the invalid-request budget (0.0: go ahead)."""
        return self.budget.pause_remaining()

    async def _on_request_start(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        await self.admit(params.url)

    async def _on_request_end(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        self.answered(params.response.status, params.response.headers)


def _seconds(value: str | None) -> float:
    """Retry-After in seconds (Discord sends whole seconds); 1 s when missing or unreadable."""
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        return 1.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 1.0
