"""Campaign date and job times (rules 3 and 4), DST-correct through zoneinfo."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.models import CampaignSchedule

PAST_REMINDER_SHIFT = timedelta(seconds=10)
PAST_START_SHIFT = timedelta(seconds=20)


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
    if not isinstance(name, str) or name not in iana_timezones():
        raise ValueError(f"unknown timezone {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ZoneInfoNotFoundError is a KeyError; callers expect a ValueError for bad input.
        raise ValueError(f"unknown timezone {name!r}") from None
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


def compute_schedule(
    now: datetime,
    zone: ZoneInfo,
    reminder_at: time,
    start_at: time,
    voice_check_delay: timedelta,
) -> CampaignSchedule:
    """Compute reminder, start and voice-check instants for today's campaign (rule 4)."""
    day = campaign_date(now, zone)
    reminder = local_datetime(day, reminder_at, zone)
    start = local_datetime(day, start_at, zone)
    if reminder <= now:
        reminder = now + PAST_REMINDER_SHIFT
    if start <= now:
        start = now + PAST_START_SHIFT
    if start <= reminder:
        # Jobs run in order; a start configured before the reminder follows it closely instead.
        start = reminder + (PAST_START_SHIFT - PAST_REMINDER_SHIFT)
    voice_check = start + voice_check_delay
    return CampaignSchedule(reminder=reminder, start=start, voice_check=voice_check)
