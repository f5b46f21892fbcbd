"""The rules an evening tests (issue 10), as tables of cases: dates, deadlines, zones, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.messages import discord_literal, reminder_text, summary_text
from services.models import Channel, JobType
from services.quiet_hours import parse_hhmm
from services.schedule import compute_schedule, parse_iso_date, reminder_lead, send_by
from tests.synthetic_zones import synthetic_zone


@pytest.mark.parametrize(
    ("text", "day"),
    [("2026-11-24", date(2026, 11, 24)), ("2024-02-29", date(2024, 2, 29)), ("0001-01-01", date(1, 1, 1))],
)
def test_the_one_date_parser_reads_yyyy_mm_dd(text: str, day: date) -> None:
    assert parse_iso_date(text) == day


@pytest.mark.parametrize(
    "text",
    [
        "20261124",  # date.fromisoformat takes the compact form
        "2026-W48-2",  # … and ISO week dates
        " 2026-11-24",  # the slash command used to strip() spaces the API refuses
        "2026-11-24 ",
        "2026-11-24\n",
        "",
        "   ",
        "2026-11-24T21:00",
        "2026-1-5",
        "+2026-11-24",
        "2026-02-30",  # the right shape, no such day
        "2025-02-29",
        "２０２６-11-24",  # full-width digits
        "٢٠٢٦-١١-٢٤",
        "x" * 5000,
    ],
)
def test_the_one_date_parser_refuses_everything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a date; use YYYY-MM-DD, for example 2026-11-24\.$") as caught:
        parse_iso_date(text)
    assert len(str(caught.value)) < 120  # an oversized value is not echoed back in full


# -- wall clocks that jump: the reminder precedes the start by the lead, whatever the zone does -------

DST_DAY = date(2026, 3, 29)
H = timedelta(hours=1)


def _change(local_hh: int, local_mm: int, before: timedelta, after: timedelta) -> tuple[datetime, timedelta, str]:
    """A change of UTC offset at the wall-clock time `local_hh:local_mm` (read at the old offset)."""
    at = datetime.combine(DST_DAY, time(local_hh, local_mm)) - before
    return (at.replace(tzinfo=UTC), after, "B" if after > before else "A")


def _utc(hh: int, mm: int) -> datetime:
    return datetime.combine(DST_DAY, time(hh, mm), tzinfo=UTC)


# (case, first offset, the change that day, configured reminder, configured start, the start instant)
DST_CASES = [
    ("no change that day", H, None, "20:45", "21:00", _utc(20, 0)),
    ("reminder in a gap, start after it", H, _change(20, 0, H, 2 * H), "20:45", "21:00", _utc(19, 0)),
    ("both in a gap", H, _change(20, 30, H, 2 * H), "20:45", "21:00", _utc(20, 0)),
    ("start in a gap", H, _change(20, 50, H, 2 * H), "20:45", "21:00", _utc(20, 0)),
    ("start where a gap opens", H, _change(21, 0, H, 2 * H), "20:45", "21:00", _utc(20, 0)),
    ("a 30-minute gap", H, _change(20, 50, H, 90 * timedelta(minutes=1)), "20:45", "21:00", _utc(20, 0)),
    ("reminder in a fold, start after it", 2 * H, _change(21, 0, 2 * H, H), "20:45", "21:00", _utc(20, 0)),
    ("start in a fold: its first occurrence", 2 * H, _change(21, 30, 2 * H, H), "20:45", "21:00", _utc(19, 0)),
    ("both in a fold", 2 * H, _change(22, 0, 2 * H, H), "20:45", "21:00", _utc(19, 0)),
    ("a longer lead across a gap", H, _change(20, 40, H, 2 * H), "20:30", "21:00", _utc(20, 0)),
    ("west of Greenwich", -5 * H, _change(20, 50, -5 * H, -4 * H), "20:45", "21:00", _utc(2, 0) + 24 * H),
]


@pytest.mark.parametrize(
    ("case", "first", "change", "reminder_at", "start_at", "start"), DST_CASES, ids=[c[0] for c in DST_CASES]
)
def test_the_reminder_precedes_the_start_by_the_lead_in_any_zone(
    case: str, first: timedelta, change, reminder_at: str, start_at: str, start: datetime
) -> None:
    zone = synthetic_zone("Synthetic/Evening", (first, "A"), [change] if change else [])
    now = datetime.combine(DST_DAY, time(9, 0), tzinfo=zone)
    lead = reminder_lead(parse_hhmm(reminder_at), parse_hhmm(start_at))

    schedule = compute_schedule(now, zone, parse_hhmm(start_at), lead, timedelta(seconds=30))

    assert schedule.start == start
    assert schedule.start - schedule.reminder == lead
    assert schedule.voice_check == start + timedelta(seconds=30)
    minutes = int(lead.total_seconds() // 60)
    assert f"in {minutes} minutes" in reminder_text(schedule.start, schedule.reminder, zone, Channel.TELEGRAM, False)


def test_a_past_reminder_still_shifts_to_now_in_a_jumping_zone() -> None:
    zone = synthetic_zone("Synthetic/Evening", (H, "A"), [_change(20, 0, H, 2 * H)])
    now = _utc(18, 50)  # 19:50 local: the reminder (18:45 UTC) is past, the start (19:00 UTC) is not
    lead = reminder_lead(time(20, 45), time(21, 0))
    schedule = compute_schedule(now, zone, time(21, 0), lead, timedelta(seconds=30))
    assert schedule.reminder == now + timedelta(seconds=10)
    assert schedule.start == _utc(19, 0)


# -- send-by deadlines ------------------------------------------------------------------------------

START_AT = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # 21:00 CET
VOICE_AT = START_AT + timedelta(seconds=30)
LATENESS = timedelta(minutes=30)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("job_type", "now", "in_time"),
    [
        (JobType.REMINDER, START_AT - 15 * 60 * S, True),
        (JobType.REMINDER, START_AT - S, True),
        (JobType.REMINDER, START_AT, False),  # only before the start
        (JobType.REMINDER, START_AT + 14 * 60 * S, False),
        (JobType.START, START_AT, True),
        (JobType.START, START_AT + LATENESS - S, True),
        (JobType.START, START_AT + LATENESS, False),
        (JobType.VOICE_CHECK, VOICE_AT, True),
        (JobType.VOICE_CHECK, VOICE_AT + LATENESS - S, True),  # measured from the voice check
        (JobType.VOICE_CHECK, START_AT + LATENESS, True),
        (JobType.VOICE_CHECK, VOICE_AT + LATENESS, False),
    ],
)
def test_send_by(job_type: JobType, now: datetime, in_time: bool) -> None:
    assert (now < send_by(job_type, START_AT, VOICE_AT, LATENESS)) is in_time


# -- names as typed, on Discord ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("Ana", "Ana"),
        ("**x**", r"\*\*x\*\*"),
        ("__u__ ~~s~~ ||sp|| `c`", r"\_\_u\_\_ \~\~s\~\~ \|\|sp\|\| \`c\`"),
        ("> quote", r"\> quote"),
        ("[site](https://evil.example)", r"\[site\](https://evil.example)"),
        ("# Big", r"\# Big"),
        ("- item", r"\- item"),
        ("Rally (promoter)", "Rally (promoter)"),
        ("back\\slash", r"back\\slash"),
        ("@everyone", "@\u200beveryone"),
        ("@here", "@\u200bhere"),
        ("<@123456789012345678>", "<@\u200b123456789012345678\\>"),
        ("<@&876543210987654321>", "<@\u200b&876543210987654321\\>"),
        ("ana@home", "ana@home"),  # not a mention
    ],
)
def test_discord_literal(name: str, escaped: str) -> None:
    assert discord_literal(name) == escaped


def test_the_summary_shows_names_as_typed() -> None:
    text = summary_text(
        start=START_AT, zone=ZoneInfo("Europe/Ljubljana"), in_voice=["**x**"], missing=["@everyone", "Ana"],
        followups_sent=2, dry_run=False,
    )
    assert "In voice (1): \\*\\*x\\*\\*" in text
    assert "Waiting on (2): @\u200beveryone, Ana" in text
    assert "@everyone" not in text and "**x**" not in text
