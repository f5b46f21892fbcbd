"""What Discord enforces on a bot's REST traffic as a whole, beyond each route's own bucket.

- **Global rate limit**: a bot token may make `global_per_second` requests (50 on Discord) in any
  one-second window, whatever the route; interaction callbacks and webhooks are not bound by it.
  The request past it is answered 429 with `"global": true` and never reaches the route.
- **Invalid requests** (Discord's "Cloudflare bans"): every 401, 403 and 429 answer counts, except
  429s with `X-RateLimit-Scope: shared`; more than `invalid_request_limit` (10,000 on Discord) within
  `invalid_request_window` seconds (10 minutes) bans the caller for `ban_seconds` (about an hour):
  every request is then refused by Cloudflare, with none of Discord's headers.

https://discord.com/developers/docs/topics/rate-limits (Global Rate Limit; Invalid Request Limit).
Pure bookkeeping over an injected clock: `discord_rest` asks and answers, tests drive the clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

GLOBAL_WINDOW = 1.0  # seconds: "50 requests per second"
INVALID_STATUSES = frozenset({401, 403, 429})


class RestLimits:
    """The global rate limit and the invalid-request ban of one bot, with counters for tests."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        global_per_second: int | None = 50,
        invalid_request_limit: int = 10_000,
        invalid_request_window: float = 600.0,
        ban_seconds: float = 3600.0,
    ) -> None:
        self._clock = clock
        self.global_per_second = global_per_second  # None: no global limit (a test measuring something else)
        self.invalid_request_limit = invalid_request_limit
        self.invalid_request_window = invalid_request_window
        self.ban_seconds = ban_seconds
        self._admitted: deque[float] = deque()  # when the requests of the last window were admitted
        self._invalid: deque[float] = deque()  # when the invalid answers of the last window were sent
        self._banned_until = -math.inf
        self.global_rate_limited = 0  # requests answered with a global 429
        self.global_rate_limited_at: list[float] = []  # when each of them arrived
        self.invalid_requests = 0  # 401/403/429 answers counted since the start
        self.bans = 0  # how many times the invalid-request threshold was crossed
        self.banned_requests = 0  # requests refused while banned

    # ---- the ban --------------------------------------------------------------------------------

    def ban_remaining(self) -> float:
        """Return the seconds left of a ban (0.0 when not banned)."""
        return max(0.0, self._banned_until - self._clock())

    def refuse_banned(self) -> bool:
        """Whether a request must be refused because of a ban (and count it if so)."""
        if self.ban_remaining() <= 0:
            return False
        self.banned_requests += 1
        return True

    def lift_ban(self) -> None:
        """End a ban and forget the invalid requests that led to it."""
        self._banned_until = -math.inf
        self._invalid.clear()

    # ---- the global rate limit ------------------------------------------------------------------

    def admit(self) -> float | None:
        """Admit one request under the global limit; return None, or the retry_after of a global 429."""
        if self.global_per_second is None:
            return None
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - GLOBAL_WINDOW:
            self._admitted.popleft()
        if len(self._admitted) >= self.global_per_second:
            self.global_rate_limited += 1
            self.global_rate_limited_at.append(now)
            # A refused request takes no place in the window: the next free place is when the oldest leaves.
            return max(0.001, round(self._admitted[0] + GLOBAL_WINDOW - now, 3))
        self._admitted.append(now)
        return None

    # ---- invalid requests -----------------------------------------------------------------------

    def record_answer(self, status: int, *, shared_scope: bool = False) -> None:
        """Count an answer toward the invalid-request limit; ban once the limit is exceeded."""
        if status not in INVALID_STATUSES or (status == 429 and shared_scope):
            return
        now = self._clock()
        self.invalid_requests += 1
        self._invalid.append(now)
        self._expire_invalid(now)
        if len(self._invalid) > self.invalid_request_limit and self.ban_remaining() <= 0:
            self._banned_until = now + self.ban_seconds
            self.bans += 1

    def invalid_requests_recent(self) -> int:
        """Return how many invalid requests fall within the sliding window now."""
        self._expire_invalid(self._clock())
        return len(self._invalid)

    def _expire_invalid(self, now: float) -> None:
        horizon = now - self.invalid_request_window
        while self._invalid and self._invalid[0] <= horizon:
            self._invalid.popleft()
