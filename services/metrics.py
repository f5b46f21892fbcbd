"""The process's Prometheus metrics: one registry of its own, built once and passed to what records.

No module-level registry: every `Metrics` is independent, so tests and the benchmarks build their
own. Labels name channels, job types, outcomes and statuses only — never a player, a Discord id or
an address — so nothing personal leaves through `GET /metrics`.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.models import Channel, JobStatus, JobType, RsvpAnswer

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Jobs should start within a second of their due time; the long tail shows outages and restarts.
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0)
FANOUT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._sends = Counter(
            "rallypoint_sends",
            "Send attempts by channel and outcome (sent, retryable, permanent, error: the sender raised).",
            ["channel", "outcome"],
            registry=r,
        )
        self._lateness = Histogram(
            "rallypoint_job_lateness_seconds",
            "How long after its due time a job's first run started.",
            ["job_type"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self._fanout = Histogram(
            "rallypoint_fanout_duration_seconds",
            "How long one run of a message job took to reach every recipient.",
            ["job_type"],
            buckets=FANOUT_BUCKETS,
            registry=r,
        )
        self._jobs = Counter(
            "rallypoint_jobs_finished", "Jobs that ended, by type and final status.", ["job_type", "status"], registry=r
        )
        self._running = Gauge("rallypoint_jobs_running", "Jobs running in this process now.", registry=r)
        self._rate_limit_wait = Counter(
            "rallypoint_rate_limit_wait_seconds",
            "Seconds sends waited because a platform answered 429 with a retry-after, by channel.",
            ["channel"],
            registry=r,
        )
        self._invalid = Counter(
            "rallypoint_discord_invalid_requests",
            "Discord answers that count toward its invalid-request limit (401, 403, 429), by status.",
            ["status"],
            registry=r,
        )
        # Discord at scale (services/delivery/discord_limits.py).
        self._discord_requests = Counter(
            "rallypoint_discord_requests",
            "Discord REST requests, each through the bot's one limiter (answers to interactions excepted).",
            registry=r,
        )
        self._discord_limiter_wait = Counter(
            "rallypoint_discord_limiter_wait_seconds",
            "Seconds Discord requests waited for a place under discord.global_rate_per_second or for a "
            "global 429 to pass.",
            registry=r,
        )
        self._discord_global = Counter(
            "rallypoint_discord_global_rate_limits",
            "Global 429s Discord answered anyway; each stops every request for its Retry-After.",
            registry=r,
        )
        self._discord_recent_invalid = Gauge(
            "rallypoint_discord_invalid_requests_recent",
            "Discord's invalid answers (401, 403, 429) within the last 10 minutes (Discord bans at 10,000).",
            registry=r,
        )
        self._discord_paused = Gauge(
            "rallypoint_discord_sends_paused",
            "1 while Discord sends pause for the invalid-request budget (discord.invalid_requests_pause_at).",
            registry=r,
        )
        self._latency = Gauge(
            "rallypoint_gateway_latency_seconds",
            "Discord gateway heartbeat latency (NaN before the first heartbeat).",
            registry=r,
        )
        self._rsvps = Counter(
            "rallypoint_rsvps",
            "Answers players gave from the messages themselves, by answer (in, late, out) and channel.",
            ["answer", "channel"],
            registry=r,
        )
        for channel in Channel:  # every series exists from the start, so rates work from the first scrape
            self._rate_limit_wait.labels(channel.value)
            for answer in RsvpAnswer:
                self._rsvps.labels(answer.value, channel.value)

    # -- recording ---------------------------------------------------------------------------------

    def send(self, channel: Channel, outcome: str) -> None:
        self._sends.labels(channel.value, outcome).inc()

    def rate_limited(self, channel: Channel, seconds: float) -> None:
        self._rate_limit_wait.labels(channel.value).inc(max(0.0, seconds))

    def job_started(self, job_type: JobType, lateness_seconds: float, *, first_run: bool) -> None:
        self._running.inc()
        if first_run:  # a resumed run is late by its lease, which says nothing about the scheduler
            self._lateness.labels(job_type.value).observe(max(0.0, lateness_seconds))

    def job_stopped(self) -> None:
        self._running.dec()

    def job_finished(self, job_type: JobType, status: JobStatus) -> None:
        self._jobs.labels(job_type.value, status.value).inc()

    def fanout_took(self, job_type: JobType, seconds: float) -> None:
        self._fanout.labels(job_type.value).observe(seconds)

    def rsvp(self, answer: RsvpAnswer, channel: Channel) -> None:
        self._rsvps.labels(answer.value, channel.value).inc()

    def discord_invalid_request(self, status: int) -> None:
        self._invalid.labels(str(status)).inc()

    def discord_request(self, waited_seconds: float) -> None:
        self._discord_requests.inc()
        if waited_seconds > 0:
            self._discord_limiter_wait.inc(waited_seconds)

    def discord_global_rate_limit(self) -> None:
        self._discord_global.inc()

    def discord_sends_paused(self, paused: bool) -> None:
        self._discord_paused.set(1 if paused else 0)

    def discord_invalid_recent_from(self, read: Callable[[], int]) -> None:
        """Read the invalid answers within Discord's window at each scrape (the bot's budget)."""
        self._discord_recent_invalid.set_function(read)

    def gateway_latency_from(self, read: Callable[[], float]) -> None:
        """Read the latency at each scrape from `read` (the Discord client, once it exists)."""
        self._latency.set_function(read)

    # -- exposition --------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
