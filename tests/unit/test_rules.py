"""The pure rules, as tables of cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.keys import NONCE_MAX_LENGTH, ledger_key, message_nonce, summary_key
from services.messages import local_time_label, summary_text
from services.models import (
    Actor,
    Candidate,
    Channel,
    JobType,
    PermissionTier,
    Player,
    PlayerStatus,
    Preferences,
    PreferredChannel,
    QuietHours,
)
from services.permissions import PromoterPolicy, can_promote
from services.quiet_hours import in_quiet_hours, parse_hhmm
from services.recipients import dry_run_recipients, select_recipients
from services.routing import fallback_chain
from services.schedule import campaign_date, compute_schedule, reminder_lead, validate_timezone

LJ = ZoneInfo("Europe/Ljubljana")
T, S, D = Channel.TELEGRAM, Channel.SIGNAL, Channel.DISCORD


@pytest.mark.parametrize(
    ("preferred", "verified", "enabled", "chain"),
    [
        (PreferredChannel.TELEGRAM, {T, S}, {T, S, D}, (T, S, D)),
        (PreferredChannel.SIGNAL, {T, S}, {T, S, D}, (S, T, D)),
        (PreferredChannel.DISCORD, {T, S}, {T, S, D}, (D, T, S)),
        (PreferredChannel.ANY, {T, S}, {T, S, D}, (T, S, D)),
        (PreferredChannel.TELEGRAM, set(), {T, S, D}, (D,)),  # unverified channels never count
        (PreferredChannel.TELEGRAM, {S}, {T, S, D}, (S, D)),
        (PreferredChannel.SIGNAL, {T, S}, {T, D}, (T, D)),  # Signal not configured here
        (PreferredChannel.ANY, set(), set(), (D,)),  # Discord always counts
    ],
)
def test_fallback_chain(preferred, verified, enabled, chain) -> None:
    assert fallback_chain(preferred, verified, enabled) == chain


def _candidate(
    pid: int, status: PlayerStatus, allow: bool = True, pref=PreferredChannel.ANY, links=()
) -> Candidate:
    return Candidate(
        Player(pid, 100 + pid, f"P{pid}"),
        status,
        Preferences(allow_promotions=allow, preferred_channel=pref),
        frozenset(links),
    )


@pytest.mark.parametrize(
    ("include_available", "include_maybe", "expected"),
    [(False, False, [1]), (True, False, [1, 2]), (False, True, [1, 3]), (True, True, [1, 2, 3])],
)
def test_recipient_selection_by_status(include_available, include_maybe, expected) -> None:
    candidates = [
        _candidate(1, PlayerStatus.LOOKING),
        _candidate(2, PlayerStatus.AVAILABLE),
        _candidate(3, PlayerStatus.MAYBE),
        _candidate(4, PlayerStatus.NOT_PLAYING),
        _candidate(5, PlayerStatus.LOOKING, allow=False),
    ]
    chosen = select_recipients(candidates, include_available=include_available, include_maybe=include_maybe)
    assert [r.player.id for r in chosen] == expected


def test_recipient_channel_comes_from_the_chain() -> None:
    [r] = select_recipients(
        [_candidate(1, PlayerStatus.LOOKING, pref=PreferredChannel.SIGNAL, links={T})],
        include_available=False,
        include_maybe=False,
    )
    assert r.selected_channel is T and r.chain == (T, D)


def test_dry_run_recipients_are_the_initiator_on_discord() -> None:
    [r] = dry_run_recipients(Player(1, 101, "Me"), None)
    assert r.player.id == 1 and r.selected_channel is D and r.chain == (D,)


POLICY = PromoterPolicy(frozenset({1}), frozenset({2}), frozenset({50}))


@pytest.mark.parametrize(
    ("actor", "tier", "allowed"),
    [
        (Actor(1, True), None, True),  # promoter_ids
        (Actor(2, True), None, True),  # admin_ids
        (Actor(3, True, frozenset({50})), None, True),  # promoter role
        (Actor(3, True, frozenset({51})), None, False),
        (Actor(4, True), PermissionTier.ADMIN, True),
        (Actor(4, True), PermissionTier.ROOT, True),
        (Actor(4, True), PermissionTier.PROMOTER, False),
        (Actor(4, True), None, False),
        (Actor(1, False), PermissionTier.ROOT, False),  # not a guild member: never
    ],
)
def test_who_may_promote(actor, tier, allowed) -> None:
    assert can_promote(actor, tier, POLICY) is allowed


@pytest.mark.parametrize(
    ("start", "end", "local_time", "quiet"),
    [
        ("22:00", "07:00", "21:59", False),
        ("22:00", "07:00", "22:00", True),  # start inclusive
        ("22:00", "07:00", "03:00", True),  # wraps midnight
        ("22:00", "07:00", "07:00", False),  # end exclusive
        ("13:00", "15:00", "14:30", True),
        ("13:00", "15:00", "15:00", False),
        ("13:00", "15:00", "12:59", False),
        ("20:00", "20:00", "20:00", False),  # start == end: an empty window
    ],
)
def test_quiet_hours(start, end, local_time, quiet) -> None:
    window = QuietHours(parse_hhmm(start), parse_hhmm(end))
    now = datetime.combine(date(2026, 11, 24), parse_hhmm(local_time), tzinfo=LJ)
    assert in_quiet_hours(window, LJ, now) is quiet


def test_quiet_hours_are_read_in_the_recipients_timezone() -> None:
    window = QuietHours(time(22, 0), time(7, 0))
    now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # 21:00 in Ljubljana, 05:00 in Tokyo
    assert not in_quiet_hours(window, LJ, now)
    assert in_quiet_hours(window, ZoneInfo("Asia/Tokyo"), now)
    assert not in_quiet_hours(None, LJ, now)


@pytest.mark.parametrize("bad", ["24:00", "7:00", "07:60", "0700", "aa:bb", "", "07:00:00", "٠٧:٠٠"])
def test_bad_times_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_hhmm(bad)


# posixrules and localtime load from the host's zoneinfo directory, but are no IANA zone names.
@pytest.mark.parametrize(
    "bad",
    ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "x" * 100, "posixrules", "localtime", "europe/ljubljana"],
)
def test_unknown_timezones_are_value_errors(bad) -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        validate_timezone(bad)


DELAY = timedelta(seconds=30)


@pytest.mark.parametrize(
    ("now_utc", "reminder_utc", "start_utc"),
    [
        # An ordinary winter evening: CET is UTC+1.
        (
            datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
            datetime(2026, 11, 24, 19, 45, tzinfo=UTC),
            datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
        ),
        # Spring-forward day (29 March 2026): CEST is UTC+2 by the evening.
        (
            datetime(2026, 3, 29, 12, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 18, 45, tzinfo=UTC),
            datetime(2026, 3, 29, 19, 0, tzinfo=UTC),
        ),
        # Fall-back day (25 October 2026): back to UTC+1 by the evening.
        (
            datetime(2026, 10, 25, 12, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 19, 45, tzinfo=UTC),
            datetime(2026, 10, 25, 20, 0, tzinfo=UTC),
        ),
    ],
)
def test_schedule_is_local_and_dst_correct(now_utc, reminder_utc, start_utc) -> None:
    s = compute_schedule(now_utc, LJ, time(21, 0), reminder_lead(time(20, 45), time(21, 0)), DELAY)
    assert (s.reminder, s.start, s.voice_check) == (reminder_utc, start_utc, start_utc + DELAY)


def test_schedule_across_a_dst_gap_at_the_configured_time() -> None:
    # 02:30 does not exist on spring-forward night in Ljubljana: it becomes 03:30 CEST (01:30 UTC).
    now = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 local on the 29th
    s = compute_schedule(now, LJ, time(2, 30), reminder_lead(time(2, 15), time(2, 30)), DELAY)
    assert s.start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # On fall-back night 02:30 happens twice; the first occurrence (CEST, UTC+2) wins.
    now = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # 00:30 local on the 25th
    s = compute_schedule(now, LJ, time(2, 30), reminder_lead(time(2, 15), time(2, 30)), DELAY)
    assert s.start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now_local", "reminder_shift", "start_shift"),
    [
        (time(20, 50), 10, 20 * 60 - 50 * 60 + 10 * 60),  # reminder past: now+10 s; start at 21:00
        (time(21, 5), 10, 20),  # both past
    ],
)
def test_past_times_shift(now_local, reminder_shift, start_shift) -> None:
    now = datetime.combine(date(2026, 11, 24), now_local, tzinfo=LJ)
    s = compute_schedule(now, LJ, time(21, 0), reminder_lead(time(20, 45), time(21, 0)), DELAY)
    assert s.reminder == now + timedelta(seconds=reminder_shift)
    if now_local >= time(21, 0):
        assert s.start == now + timedelta(seconds=start_shift)
    else:
        assert s.start == datetime.combine(date(2026, 11, 24), time(21, 0), tzinfo=LJ)
    assert s.voice_check >= s.start + DELAY


@pytest.mark.parametrize(
    ("now_utc", "expected"),
    [
        (datetime(2026, 11, 24, 22, 59, tzinfo=UTC), date(2026, 11, 24)),
        (datetime(2026, 11, 24, 23, 0, tzinfo=UTC), date(2026, 11, 25)),  # midnight in Ljubljana
        (datetime(2026, 7, 1, 21, 59, tzinfo=UTC), date(2026, 7, 1)),
        (datetime(2026, 7, 1, 22, 0, tzinfo=UTC), date(2026, 7, 2)),  # CEST
    ],
)
def test_campaign_date_is_in_the_promotion_timezone(now_utc, expected) -> None:
    assert campaign_date(now_utc, LJ) == expected


def test_ledger_keys() -> None:
    day = date(2026, 11, 24)
    assert ledger_key(JobType.REMINDER, day) == "PROMOTE:T-15:2026-11-24"
    assert ledger_key(JobType.START, day) == "PROMOTE:T0:2026-11-24"
    assert ledger_key(JobType.VOICE_CHECK, day) == "PROMOTE:FOLLOWUP:2026-11-24"
    dry = ledger_key(JobType.REMINDER, day, dry_run_campaign_id=7)
    assert dry != ledger_key(JobType.REMINDER, day) and "7" in dry
    # One public summary per channel and day, whichever campaign (rule 7); a dry run's is its own.
    assert summary_key(day, "777") == "PROMOTE:SUMMARY:777:2026-11-24"
    assert summary_key(day, "dm:2", dry_run_campaign_id=7) == "DRYRUN:7:PROMOTE:SUMMARY:dm:2:2026-11-24"


def test_nonce_is_deterministic_short_and_distinct() -> None:
    a = message_nonce(1, "PROMOTE:T0:2026-11-24", 5)
    assert a == message_nonce(1, "PROMOTE:T0:2026-11-24", 5)
    assert len(a) <= NONCE_MAX_LENGTH
    assert (
        len(
            {
                a,
                message_nonce(2, "PROMOTE:T0:2026-11-24", 5),
                message_nonce(1, "PROMOTE:T0:2026-11-24", 6),
                message_nonce(1, "PROMOTE:T-15:2026-11-24", 5),
            }
        )
        == 4
    )


def test_time_labels_show_the_real_zone() -> None:
    assert local_time_label(datetime(2026, 11, 24, 20, 0, tzinfo=UTC), LJ) == "21:00 CET"
    assert local_time_label(datetime(2026, 7, 1, 19, 0, tzinfo=UTC), LJ) == "21:00 CEST"


def test_summary_fits_discord_and_says_how_many_more() -> None:
    names = [f"Player number {i:04d}" for i in range(500)]
    text = summary_text(
        start=datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
        zone=LJ,
        in_voice=names[:250],
        missing=names[250:],
        followups_sent=240,
        dry_run=False,
    )
    assert len(text) <= 2000
    assert "more" in text and "Follow-ups sent: 240 of 250 missing." in text
    small = summary_text(
        start=datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
        zone=LJ,
        in_voice=["Ana"],
        missing=[],
        followups_sent=0,
        dry_run=True,
    )
    assert small.startswith("[dry run]") and "Waiting on (0): nobody" in small
