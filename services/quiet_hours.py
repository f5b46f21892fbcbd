"""Quiet hours (rule 8): a daily window in the recipient's own timezone."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from services.models import QuietHours


def parse_hhmm(value: str) -> time:
    """Parse a 24-hour "HH:MM" string, or raise ValueError naming the expected form."""
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise ValueError(f"expected a time as HH:MM (24-hour), got {value!r}")
    hours, minutes = value[:2], value[3:]
    if not (hours.isdigit() and minutes.isdigit() and hours.isascii() and minutes.isascii()):
        raise ValueError(f"expected a time as HH:MM (24-hour), got {value!r}")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"expected a time as HH:MM (24-hour), got {value!r}")
    return time(h, m)


def format_hhmm(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def in_quiet_hours(quiet: QuietHours | None, zone: ZoneInfo, now: datetime) -> bool:
    """Tell whether `now` falls in the window; start inclusive, end exclusive, wrapping midnight.

    A window whose start equals its end is empty: it never silences anyone (a player who wants no
    promotions at all turns `allow_promotions` off).
    """
    if quiet is None:
        return False
    local = now.astimezone(zone).time().replace(second=0, microsecond=0, tzinfo=None)
    start, end = quiet.start, quiet.end
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end
