"""Timezones that do not exist: TZif data built in memory, read by the real zoneinfo.

No real zone moves its clocks between 20:45 and 21:00 in 2015-2035, yet the schedule rule must be
total. These zones put a gap or a fold exactly where a test wants one.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def synthetic_zone(
    key: str, first: tuple[timedelta, str], changes: Sequence[tuple[datetime, timedelta, str]]
) -> ZoneInfo:
    """A zone at UTC offset `first` until each change (an instant, the new offset, its abbreviation).

    A change to a larger offset opens a gap in the wall clock; one to a smaller offset, a fold.
    """
    offsets = [first, *((offset, abbr) for _, offset, abbr in changes)]
    kinds = list(dict.fromkeys(offsets))  # one ttinfo per distinct (offset, abbreviation)
    names = b""
    name_at: dict[str, int] = {}
    for _, abbr in kinds:
        if abbr not in name_at:
            name_at[abbr] = len(names)
            names += abbr.encode() + b"\0"
    base = first[0]
    infos = b"".join(
        struct.pack(">lBB", int(offset.total_seconds()), int(offset > base), name_at[abbr]) for offset, abbr in kinds
    )
    moments = [int(at.astimezone(UTC).timestamp()) for at, _, _ in changes]
    indices = bytes(kinds.index((offset, abbr)) for _, offset, abbr in changes)
    counts = struct.pack(">6l", 0, 0, 0, len(changes), len(kinds), len(names))

    def block(time_format: str) -> bytes:
        return b"".join(struct.pack(time_format, m) for m in moments) + indices + infos + names

    data = (
        b"TZif2" + b"\0" * 15 + counts + block(">l")
        + b"TZif2" + b"\0" * 15 + counts + block(">q")
        + b"\n\n"  # no TZ rule: after the last change, its offset holds
    )
    return ZoneInfo.from_file(io.BytesIO(data), key=key)
