"""The rules of an evening's shape: its title, its start time, and when a standing session is decided.

Pure: `now` and the zone come in as arguments; nothing here reads a clock or a database.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from services.models import Occurrence, Weekday
from services.quiet_hours import format_hhmm, parse_hhmm
from services.schedule import local_datetime

MAX_TITLE: Final = 100
# Characters that would break a message's layout or hide text: C0 and C1 controls, DEL, and the
# Unicode line and paragraph separators. Written for JSON Schema (ECMA-262) and Python alike.
_UNSAFE = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029"
# At least one visible character, none of the unsafe ones (the API document states exactly this).
TITLE_PATTERN: Final = f"^[^{_UNSAFE}]*[^\\s{_UNSAFE}][^{_UNSAFE}]*$"
_TITLE = re.compile(TITLE_PATTERN)
TITLE_RULE: Final = (
    f"1 to {MAX_TITLE} characters, not only spaces, without line breaks or control characters; "
    "shown as typed (never formatted, never a mention)"
)

MAX_QUORUM: Final = 1000
# Standing sessions a server may have: more than a week can hold, and as many as one Discord list shows.
MAX_STANDING: Final = 25
AUTOCOMPLETE_STEP: Final = timedelta(minutes=30)
AUTOCOMPLETE_CHOICES: Final = 7  # the configured start and three half hours either side


def clean_title(value: str | None) -> str | None:
    """The title as it is kept (None: no title), or ValueError saying what a title may be.

    Kept exactly as typed: Discord texts escape it, Telegram and Signal send it as plain text.
    """
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TITLE or not _TITLE.fullmatch(value):
        raise ValueError(f"A title has {TITLE_RULE}.")
    return value


def occurrence(
    weekday: Weekday, start_at: time, *, after: datetime, zone: ZoneInfo, decision_lead: timedelta
) -> Occurrence:
    """The first date of a weekly session whose decision instant is later than `after`.

    Weekday and start are wall-clock values in `zone`, so the instant moves with daylight saving;
    a start that does not exist that day (spring forward) moves forward by the gap. A session just
    after midnight is decided the evening before, and its date is the date of its start.
    """
    local_today = after.astimezone(zone).date()
    day = local_today + timedelta(days=(weekday.number - local_today.weekday()) % 7)
    # Today's may be decided already; at most one week further is always later than `after`
    # (unless the decision lead is longer than a week, which the configuration refuses).
    for _ in range(3):
        start = local_datetime(day, start_at, zone)
        decide_at = start - decision_lead
        if decide_at > after:
            return Occurrence(day, start, decide_at)
        day += timedelta(days=7)
    raise ValueError(f"no decision instant after {after.isoformat()} with a lead of {decision_lead}")


def decision_deadline(start: datetime, max_lateness: timedelta) -> datetime:
    """Until when a late decision is still worth making: as long as its start ping could still go out."""
    return start + max_lateness


def session_label(weekday: Weekday, start_at: time, day: date | None = None) -> str:
    """`Tuesday 21:00`, or `Tuesday 2026-11-24 21:00` for one date."""
    when = f" {day.isoformat()}" if day is not None else ""
    return f"{weekday.label}{when} {format_hhmm(start_at)}"


def usual_start_times(configured: time, typed: str = "") -> list[str]:
    """The start times a promoter most likely wants (autocomplete): what they typed when it is a time,
    the configured start, then the half hours around it, nearest first; only those beginning with
    what was typed so far."""
    anchor = datetime.combine(date(2000, 1, 1), configured)
    offsets = [0]
    for step in range(1, AUTOCOMPLETE_CHOICES // 2 + 1):
        offsets += [step, -step]
    times = list(dict.fromkeys(format_hhmm((anchor + n * AUTOCOMPLETE_STEP).time()) for n in offsets))
    wanted = typed.strip()
    try:
        exact = [format_hhmm(parse_hhmm(wanted))]
    except ValueError:
        exact = []
    return list(dict.fromkeys([*exact, *(t for t in times if t.startswith(wanted))]))
