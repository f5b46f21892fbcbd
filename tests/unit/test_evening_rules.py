"""The rules an evening tests (issue 10), as tables of cases: dates, deadlines, zones, DST."""

from __future__ import annotations

from datetime import date

import pytest

from services.schedule import parse_iso_date


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
