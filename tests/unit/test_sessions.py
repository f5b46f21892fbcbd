"""The rules of an evening's shape (services/sessions.py) as tables: titles, start times, weekly dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.messages import (
    below_quorum_text,
    followup_text,
    need_text,
    reminder_text,
    start_text,
    summary_text,
)
from services.models import Channel, Weekday
from services.schedule import compute_schedule
from services.sessions import (
    MAX_TITLE,
    TITLE_PATTERN,
    clean_title,
    decision_deadline,
    occurrence,
    session_label,
    usual_start_times,
)

LJ = ZoneInfo("Europe/Ljubljana")
LEAD = timedelta(minutes=30)


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=LJ)


# -- titles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    ["Raid night", "x", "x" * MAX_TITLE, "  padded  ", "@everyone **bold** <@123456789012345678>", "Ščuka 🎮"],
)
def test_a_title_is_kept_exactly_as_typed(title: str) -> None:
    assert clean_title(title) == title


@pytest.mark.parametrize(
    "title",
    [
        "",
        " ",
        "\t \u3000",  # only (Unicode) spaces
        "x" * (MAX_TITLE + 1),
        "two\nlines",
        "a\tb",
        "carriage\rreturn",
        "nul\x00",
        "del\x7f",
        "c1\x85",  # NEL, a C1 control
        "line\u2028separator",
        "para\u2029separator",
    ],
)
def test_a_title_that_would_break_a_message_is_refused(title: str) -> None:
    with pytest.raises(ValueError, match="A title has 1 to 100 characters"):
        clean_title(title)


def test_no_title_is_none() -> None:
    assert clean_title(None) is None


def test_the_title_pattern_is_plain_ecma_and_python() -> None:
    # The API document states this very pattern: it must not use Python-only syntax.
    for construct in ("(?P", "(?<", "\\A", "\\Z", "(?i"):
        assert construct not in TITLE_PATTERN


# -- start times offered by autocomplete -------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "typed", "offered"),
    [
        (time(21, 0), "", ["21:00", "21:30", "20:30", "22:00", "20:00", "22:30", "19:30"]),
        (time(21, 0), "2", ["21:00", "21:30", "20:30", "22:00", "20:00", "22:30"]),
        (time(21, 0), "21:", ["21:00", "21:30"]),
        (time(21, 0), "21:15", ["21:15"]),  # a time of one's own is offered back as typed
        (time(21, 0), "22:30", ["22:30"]),
        (time(21, 0), "9", []),
        (time(23, 30), "", ["23:30", "00:00", "23:00", "00:30", "22:30", "01:00", "22:00"]),  # across midnight
        (time(0, 0), "0", ["00:00", "00:30", "01:00", "01:30"]),
    ],
)
def test_usual_start_times(configured: time, typed: str, offered: list[str]) -> None:
    assert usual_start_times(configured, typed) == offered


# -- a standing session's dates ----------------------------------------------------------------------

TUESDAY = date(2026, 11, 24)


@pytest.mark.parametrize(
    ("case", "weekday", "start", "after", "day", "decide_at"),
    [
        ("later today", Weekday.TUE, time(21, 0), at(TUESDAY, 18, 0), TUESDAY, at(TUESDAY, 20, 30)),
        ("decided a second ago: next week", Weekday.TUE, time(21, 0), at(TUESDAY, 20, 30),
         date(2026, 12, 1), at(date(2026, 12, 1), 20, 30)),
        ("its decision passed, its start not yet", Weekday.TUE, time(21, 0), at(TUESDAY, 20, 45),
         date(2026, 12, 1), at(date(2026, 12, 1), 20, 30)),
        ("its start is past", Weekday.TUE, time(21, 0), at(TUESDAY, 22, 0), date(2026, 12, 1),
         at(date(2026, 12, 1), 20, 30)),
        ("tomorrow", Weekday.WED, time(21, 0), at(TUESDAY, 22, 0), date(2026, 11, 25), at(date(2026, 11, 25), 20, 30)),
        ("yesterday's weekday", Weekday.MON, time(21, 0), at(TUESDAY, 9, 0), date(2026, 11, 30),
         at(date(2026, 11, 30), 20, 30)),
        # Just after midnight: decided the evening before; its date is the date of its start.
        ("after midnight", Weekday.WED, time(0, 10), at(TUESDAY, 18, 0), date(2026, 11, 25), at(TUESDAY, 23, 40)),
        ("after midnight, decided already", Weekday.WED, time(0, 10), at(TUESDAY, 23, 45), date(2026, 12, 2),
         at(date(2026, 12, 1), 23, 40)),
        ("at midnight, on its own weekday", Weekday.TUE, time(0, 0), at(TUESDAY, 0, 0), date(2026, 12, 1),
         at(date(2026, 11, 30), 23, 30)),
    ],
)
def test_the_next_date_of_a_standing_session(
    case: str, weekday: Weekday, start: time, after: datetime, day: date, decide_at: datetime
) -> None:
    found = occurrence(weekday, start, after=after, zone=LJ, decision_lead=LEAD)
    assert found.day == day
    assert found.decide_at == decide_at
    assert found.start == decide_at + LEAD
    assert found.day.weekday() == weekday.number


SPRING = date(2026, 3, 29)  # clocks go forward at 02:00 CET to 03:00 CEST
AUTUMN = date(2026, 10, 25)  # back at 03:00 CEST to 02:00 CET


@pytest.mark.parametrize(
    ("case", "weekday", "start", "after", "start_utc"),
    [
        ("the Sunday before spring", Weekday.SUN, time(21, 0), datetime(2026, 3, 21, 12, tzinfo=UTC),
         datetime(2026, 3, 22, 20, 0, tzinfo=UTC)),
        ("spring forward: the same wall time, an hour earlier in UTC", Weekday.SUN, time(21, 0),
         datetime(2026, 3, 22, 21, tzinfo=UTC), datetime(2026, 3, 29, 19, 0, tzinfo=UTC)),
        ("a start in the spring gap moves forward by the gap", Weekday.SUN, time(2, 30),
         datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("fall back: the same wall time, an hour later in UTC", Weekday.SUN, time(21, 0),
         datetime(2026, 10, 19, 12, tzinfo=UTC), datetime(2026, 10, 25, 20, 0, tzinfo=UTC)),
        ("a start in the autumn fold is its first occurrence", Weekday.SUN, time(2, 30),
         datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_a_standing_session_keeps_its_wall_time_across_daylight_saving(
    case: str, weekday: Weekday, start: time, after: datetime, start_utc: datetime
) -> None:
    found = occurrence(weekday, start, after=after, zone=LJ, decision_lead=LEAD)
    assert found.start == start_utc
    assert found.decide_at == start_utc - LEAD


def test_a_weekly_chain_across_the_spring_change_is_one_week_less_an_hour() -> None:
    first = occurrence(Weekday.SUN, time(21, 0), after=at(date(2026, 3, 22), 12, 0), zone=LJ, decision_lead=LEAD)
    second = occurrence(Weekday.SUN, time(21, 0), after=first.decide_at, zone=LJ, decision_lead=LEAD)
    assert second.day == SPRING
    assert second.decide_at - first.decide_at == timedelta(days=7, hours=-1)
    assert second.decide_at.astimezone(LJ).time() == time(20, 30)


def test_a_late_decision_is_worth_making_while_its_start_ping_could_go_out() -> None:
    start = at(TUESDAY, 21, 0)
    assert decision_deadline(start, timedelta(minutes=30)) == at(TUESDAY, 21, 30)


@pytest.mark.parametrize(
    ("weekday", "start", "day", "label"),
    [
        (Weekday.TUE, time(21, 0), None, "Tuesday 21:00"),
        (Weekday.SUN, time(0, 5), date(2026, 11, 29), "Sunday 2026-11-29 00:05"),
        (Weekday.MON, time(9, 30), None, "Monday 09:30"),
    ],
)
def test_session_labels(weekday: Weekday, start: time, day: date | None, label: str) -> None:
    assert session_label(weekday, start, day) == label


@pytest.mark.parametrize(("day", "weekday"), [(date(2026, 11, 23), Weekday.MON), (date(2026, 11, 29), Weekday.SUN)])
def test_weekday_of_a_date(day: date, weekday: Weekday) -> None:
    assert Weekday.of(day) is weekday


# -- a campaign at its own start, with its title ------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "now", "start", "reminder_utc", "start_utc"),
    [
        ("a later start keeps the configured lead", at(TUESDAY, 18, 0), time(22, 30),
         datetime(2026, 11, 24, 21, 15, tzinfo=UTC), datetime(2026, 11, 24, 21, 30, tzinfo=UTC)),
        ("an earlier start too", at(TUESDAY, 18, 0), time(19, 0),
         datetime(2026, 11, 24, 17, 45, tzinfo=UTC), datetime(2026, 11, 24, 18, 0, tzinfo=UTC)),
        ("a past start moves (rule 4)", at(TUESDAY, 19, 30), time(19, 0),
         datetime(2026, 11, 24, 18, 30, 10, tzinfo=UTC), datetime(2026, 11, 24, 18, 30, 20, tzinfo=UTC)),
        ("a reminder already past moves, the start stays", at(TUESDAY, 22, 20), time(22, 30),
         datetime(2026, 11, 24, 21, 20, 10, tzinfo=UTC), datetime(2026, 11, 24, 21, 30, tzinfo=UTC)),
    ],
)
def test_a_campaign_at_its_own_start(
    case: str, now: datetime, start: time, reminder_utc: datetime, start_utc: datetime
) -> None:
    schedule = compute_schedule(now, LJ, start, timedelta(minutes=15), timedelta(seconds=30))
    assert (schedule.reminder, schedule.start) == (reminder_utc, start_utc)


def test_a_campaign_of_another_day_is_scheduled_on_that_day() -> None:
    # A standing session just after midnight is created the evening before, for the next date.
    schedule = compute_schedule(
        at(TUESDAY, 23, 40), LJ, time(0, 10), timedelta(minutes=15), timedelta(seconds=30), day=date(2026, 11, 25)
    )
    assert schedule.start == at(date(2026, 11, 25), 0, 10)
    assert schedule.reminder == at(TUESDAY, 23, 55)


HOSTILE = "@everyone **Raid** <@&876543210987654321>"
START = at(TUESDAY, 21, 0)


@pytest.mark.parametrize("channel", list(Channel))
def test_the_title_is_in_every_message_escaped_on_discord_as_typed_elsewhere(channel: Channel) -> None:
    texts = [
        reminder_text(START, START - timedelta(minutes=15), LJ, channel, False, HOSTILE),
        start_text(START, LJ, channel, False, HOSTILE),
        followup_text(START, LJ, channel, False, HOSTILE),
        need_text(2, START, LJ, channel, False, HOSTILE),
    ]
    for text in texts:
        if channel is Channel.DISCORD:
            assert "@\u200beveryone \\*\\*Raid\\*\\* <@\u200b&876543210987654321\\>" in text
            assert "@everyone" not in text and "**Raid**" not in text
        else:
            assert HOSTILE in text  # plain text: nothing formats there


def test_without_a_title_the_messages_read_as_before() -> None:
    assert start_text(START, LJ, Channel.TELEGRAM, False).startswith("🎮 We are starting now, at 21:00 CET")
    assert followup_text(START, LJ, Channel.TELEGRAM, False).startswith("👋 We started at 21:00 CET")
    assert need_text(2, START, LJ, Channel.TELEGRAM, False).startswith("🙋 Tonight's game needs 2 more players")
    assert reminder_text(START, START - timedelta(minutes=15), LJ, Channel.SIGNAL, False).startswith(
        "⏰ Game night kicks off in 15 minutes"
    )


def test_the_summary_and_the_note_carry_the_title_escaped() -> None:
    summary = summary_text(
        start=START, zone=LJ, in_voice=["Ana"], missing=[], followups_sent=0, dry_run=False, title=HOSTILE
    )
    assert summary.startswith("📋 Voice check for @\u200beveryone \\*\\*Raid\\*\\*")
    note = below_quorum_text("Tuesday 21:00", 3, 6, HOSTILE)
    assert note.startswith("Not enough players for @\u200beveryone \\*\\*Raid\\*\\*")
    assert "(Tuesday 21:00): 3 of 6 looking" in note


def test_the_note_without_a_title() -> None:
    assert below_quorum_text("Tuesday 21:00", 3, 6).startswith("Not enough players for Tuesday 21:00: 3 of 6 looking")
