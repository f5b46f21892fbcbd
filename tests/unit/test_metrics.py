"""The metrics object (services/metrics.py) and the scheduler's pulse that readiness reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.dispatcher import Pulse
from services.metrics import Metrics
from services.models import Channel, JobStatus, JobType, RsvpAnswer

T0 = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
BOUND = timedelta(seconds=10)

FAMILIES = {
    "rallypoint_sends",
    "rallypoint_job_lateness_seconds",
    "rallypoint_fanout_duration_seconds",
    "rallypoint_jobs_finished",
    "rallypoint_jobs_running",
    "rallypoint_rate_limit_wait_seconds",
    "rallypoint_discord_invalid_requests",
    "rallypoint_discord_requests",
    "rallypoint_discord_limiter_wait_seconds",
    "rallypoint_discord_global_rate_limits",
    "rallypoint_discord_invalid_requests_recent",
    "rallypoint_discord_sends_paused",
    "rallypoint_gateway_latency_seconds",
    "rallypoint_rsvps",
}
ALLOWED_LABELS = {"channel", "outcome", "job_type", "status", "answer", "le"}  # never a player, an id or an address


def parsed(metrics: Metrics) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(metrics.render().decode())
    }


def test_every_family_is_exposed_with_labels_that_name_nobody() -> None:
    m = Metrics()
    m.send(Channel.TELEGRAM, "sent")
    m.rate_limited(Channel.DISCORD, 2.5)
    m.job_started(JobType.START, 0.2, first_run=True)
    m.job_finished(JobType.START, JobStatus.SENT)
    m.fanout_took(JobType.START, 1.5)
    m.discord_invalid_request(403)
    m.discord_request(0.5)
    m.discord_global_rate_limit()
    m.discord_sends_paused(True)
    m.discord_invalid_recent_from(lambda: 7)
    m.gateway_latency_from(lambda: 0.042)
    m.rsvp(RsvpAnswer.LATE, Channel.SIGNAL)
    families = parsed(m)
    assert set(families) >= FAMILIES
    labels = {name for samples in families.values() for _, found, _ in samples for name in found}
    assert labels <= ALLOWED_LABELS


def test_recorded_values_come_back() -> None:
    m = Metrics()
    for _ in range(3):
        m.send(Channel.DISCORD, "sent")
    m.send(Channel.DISCORD, "permanent")
    m.job_started(JobType.REMINDER, 0.05, first_run=True)
    m.job_started(JobType.REMINDER, 65.0, first_run=False)  # resumed after a crash: late by its lease
    m.job_stopped()
    m.rate_limited(Channel.TELEGRAM, 3.0)
    m.rate_limited(Channel.TELEGRAM, -1.0)  # never negative
    m.gateway_latency_from(lambda: 0.25)
    m.rsvp(RsvpAnswer.OUT, Channel.TELEGRAM)
    m.rsvp(RsvpAnswer.OUT, Channel.TELEGRAM)
    values = {
        (name, tuple(sorted(labels.items()))): value
        for samples in parsed(m).values()
        for name, labels, value in samples
    }
    assert values[("rallypoint_sends_total", (("channel", "discord"), ("outcome", "sent")))] == 3
    assert values[("rallypoint_rsvps_total", (("answer", "out"), ("channel", "telegram")))] == 2
    assert values[("rallypoint_rsvps_total", (("answer", "in"), ("channel", "discord")))] == 0  # there from the start
    assert values[("rallypoint_sends_total", (("channel", "discord"), ("outcome", "permanent")))] == 1
    assert values[("rallypoint_job_lateness_seconds_count", (("job_type", "send_reminder_2045"),))] == 1
    assert values[("rallypoint_job_lateness_seconds_sum", (("job_type", "send_reminder_2045"),))] == pytest.approx(0.05)
    assert values[("rallypoint_jobs_running", ())] == 1
    assert values[("rallypoint_rate_limit_wait_seconds_total", (("channel", "telegram"),))] == 3
    assert values[("rallypoint_rate_limit_wait_seconds_total", (("channel", "signal"),))] == 0  # exists from the start
    assert values[("rallypoint_gateway_latency_seconds", ())] == 0.25


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.send(Channel.SIGNAL, "sent")
    assert b"rallypoint_sends_total{" not in b.render()
    assert b'rallypoint_sends_total{channel="signal",outcome="sent"} 1.0' in a.render()


@pytest.mark.parametrize(
    ("pulse", "now", "problem"),
    [
        (Pulse(T0, busy=True, wake_at=None), T0 + timedelta(seconds=1), None),
        (Pulse(T0, busy=True, wake_at=None), T0 + BOUND, None),
        (Pulse(T0, busy=True, wake_at=None), T0 + timedelta(seconds=42), "stuck reading the schedule for 42 s"),
        (Pulse(T0, busy=False, wake_at=None), T0 + timedelta(days=3), None),  # idle until a job is created
        (Pulse(T0, busy=False, wake_at=T0 + timedelta(hours=2)), T0 + timedelta(hours=1), None),
        (Pulse(T0, busy=False, wake_at=T0 + timedelta(hours=2)), T0 + timedelta(hours=2, seconds=10), None),
        (Pulse(T0, busy=False, wake_at=T0), T0 + timedelta(seconds=95), "overslept its wake-up by 95 s"),
    ],
)
def test_the_scheduler_keeps_time_or_says_how_not(pulse: Pulse, now: datetime, problem: str | None) -> None:
    assert pulse.problem(now, BOUND) == problem
