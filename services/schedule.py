"""Campaign date and job times (rules 3 and 4), DST-correct through zoneinfo."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.models import CampaignSchedule, JobType

PAST_REMINDER_SHIFT = timedelta(seconds=10)
PAST_START_SHIFT = timedelta(seconds=20)

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only, nothing around them
_SHOWN = 40  # how much of a bad value an error message repeats


def parse_iso_date(value: str) -> date:
    """Read a date written exactly `YYYY-MM-DD`, or raise ValueError saying so.

    The one date parser of the slash commands and the API: `date.fromisoformat` alone would also
    take `20261124` and `2026-W48-2`, and a careless strip() would take `" 2026-11-24"`.
    """
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass  # the right shape, but no such day (2026-02-30)
    shown = value[:_SHOWN] if isinstance(value, str) else value
    raise ValueError(f"{shown!r} is not a date; use YYYY-MM-DD, for example 2026-11-24.")


def load_zone(name: str) -> ZoneInfo | None:
    """The IANA zone called `name`, or None if it does not load (misspelt, a path, or dropped from tzdata)."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@functools.cache
def iana_timezones() -> frozenset[str]:
    """The zone names Rallypoint accepts: the list of the tzdata package.

    Not `zoneinfo.available_timezones()`, which adds whatever the host's zoneinfo directory holds:
    the API document publishes this list, and it must not depend on the machine. (tzdata is pinned
    in pyproject.toml for the same reason.)
    """
    return frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())


def validate_timezone(name: str) -> str:
    """Return `name` if it is an IANA timezone, else raise ValueError (never KeyError)."""
    if not isinstance(name, str) or name not in iana_timezones() or load_zone(name) is None:
        raise ValueError(f"unknown timezone {name!r}")
    return name


def campaign_date(now: datetime, zone: ZoneInfo) -> date:
    """Today's date in the promotion timezone (not the database's, not UTC's)."""
    return now.astimezone(zone).date()


def local_datetime(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant (in UTC) of wall-clock `at` on `day` in `zone`.

    A wall time that does not exist (spring forward) is moved forward by the gap; one that
    happens twice (fall back) is its first occurrence.
    """
    aware = datetime.combine(day, at).replace(tzinfo=zone, fold=0)
    # Instants are kept in UTC: a wall time in a DST gap becomes a real instant, and aware
    # datetimes in a fold would otherwise never compare equal across zones (PEP 495).
    return aware.astimezone(UTC)


def reminder_lead(reminder_at: time, start_at: time) -> timedelta:
    """How long before the start the reminder goes: the configured times' difference (15 minutes by default)."""
    return datetime.combine(date.min, start_at) - datetime.combine(date.min, reminder_at)


def compute_schedule(
    now: datetime,
    zone: ZoneInfo,
    start_at: time,
    lead: timedelta,
    voice_check_delay: timedelta,
    *,
    day: date | None = None,
) -> CampaignSchedule:
    """Compute reminder, start and voice-check instants for the campaign of `day` (default: today, rule 3),
    starting at wall-clock `start_at`, with the reminder `lead` before it (rule 4).

    Only the start is read off the wall clock; the reminder comes the lead before that instant. Read
    off the wall clock too, a reminder in a DST gap would fall after the start, and one in a fold 75
    minutes before it. Times already past move to just after `now`.
    """
    start = local_datetime(day or campaign_date(now, zone), start_at, zone)
    reminder = start - lead
    if reminder <= now:
        reminder = now + PAST_REMINDER_SHIFT
    if start <= now:
        start = now + PAST_START_SHIFT
    if start <= reminder:
        # Jobs run in order; a start configured before the reminder follows it closely instead.
        start = reminder + (PAST_START_SHIFT - PAST_REMINDER_SHIFT)
    voice_check = start + voice_check_delay
    return CampaignSchedule(reminder=reminder, start=start, voice_check=voice_check)


def send_by(job_type: JobType, start: datetime, voice_check: datetime, max_lateness: timedelta) -> datetime:
    """The instant from which a job's messages are too late to send (`start` and `voice_check` as due).

    The reminder only before the start; the start ping and the follow-up at most `max_lateness` after
    their own due time; "we need N more" no later than the start ping. "Kicks off in 1 minute" at 21:14
    is worse than no reminder at all.
    """
    if job_type is JobType.REMINDER:
        return start
    if job_type in (JobType.START, JobType.NEED):
        return start + max_lateness
    return voice_check + max_lateness
