"""What the fan-out does with each recipient of a chunk (services.fanout_plan): a table of cases."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.fanout_plan import (
    DM_CLOSED,
    INTERRUPTED_TOO_LATE,
    INTERRUPTED_UNKNOWN,
    NO_START_PING,
    OPTED_OUT,
    PLAYER_GONE,
    QUIET_HOURS,
    TOO_LATE,
    ChunkPlan,
    FanoutJob,
    plan_chunk,
)
from services.models import (
    Channel,
    DeliveryContext,
    DeliveryStatus,
    JobType,
    LedgerEntry,
    LedgerState,
    Player,
    PlayerStatus,
    Preferences,
    PreferredChannel,
    QuietHours,
    SnapshotRecipient,
)
from tests.support import opted_in

ZONE = ZoneInfo("Europe/Ljubljana")
NO_THANKS = Preferences(allow_promotions=False, promotions_chosen=True)
NOW = datetime(2026, 11, 24, 19, 45, tzinfo=UTC)  # 20:45 in Ljubljana
SEND_BY = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # the 21:00 start
KEY = "PROMOTE:T-15:2026-11-24"
JOB_ID = 10
OTHER_JOB_ID = 20
ANA = Player(1, 1001, "Ana")
D, T, S = Channel.DISCORD, Channel.TELEGRAM, Channel.SIGNAL
ALL = {D: True, T: False, S: False}  # every channel enabled; only Discord deduplicates
DISCORD_ONLY = {D: True}

LINKED = {T: "enc-t", S: "enc-s"}
TELEGRAM_FIRST = opted_in(preferred_channel=PreferredChannel.TELEGRAM)
QUIET_NOW = opted_in(quiet_hours=QuietHours(time(20, 0), time(23, 0)))  # 20:45 local is inside
QUIET_IN_NEW_YORK = opted_in(quiet_hours=QuietHours(time(20, 0), time(23, 0)), timezone="America/New_York")


def entry(state: LedgerState, job_id: int = JOB_ID, channel: Channel | None = D, on_wire: bool = False) -> LedgerEntry:
    return LedgerEntry(ANA.id, KEY, 1 if job_id == JOB_ID else 2, job_id, state, channel, on_wire)


def what(plan: ChunkPlan) -> tuple[object, ...]:
    """The one recipient's bucket, with what matters about it."""
    found: list[tuple[object, ...]] = []
    found += [("send", s.chain) for s in plan.fresh]
    found += [("resend", s.chain) for s in plan.resend]
    found += [("skip", o.channel, o.attempts[0].reason) for o in plan.decided if o.status is DeliveryStatus.SKIPPED]
    found += [(o.status.value, o.channel, o.attempts[0].reason) for o in plan.resolved]
    found += [("note", a.channel, a.reason) for a in plan.notes]
    assert len(found) <= 1, found
    return found[0] if found else ("nothing",)


# (case, preferences (None: the player is gone), addresses, ledger entry, dry run, enabled channels, expected)
CASES = [
    ("never chose: consent is opt-in", Preferences(), {}, None, False, ALL, ("skip", D, OPTED_OUT)),
    ("turned promotions on", opted_in(), {}, None, False, ALL, ("send", (D,))),
    ("prefers Telegram, linked", TELEGRAM_FIRST, LINKED, None, False, ALL, ("send", (T, S, D))),
    ("prefers Telegram, Telegram not enabled", TELEGRAM_FIRST, LINKED, None, False, {D: True, S: False},
     ("send", (S, D))),
    ("prefers Telegram, only Discord enabled", TELEGRAM_FIRST, LINKED, None, False, DISCORD_ONLY, ("send", (D,))),
    ("prefers Telegram, not linked", TELEGRAM_FIRST, {}, None, False, ALL, ("send", (D,))),
    ("player deleted since the snapshot", None, {}, None, False, ALL, ("skip", D, PLAYER_GONE)),
    ("turned promotions off", NO_THANKS, {}, None, False, ALL, ("skip", D, OPTED_OUT)),
    ("in quiet hours", QUIET_NOW, {}, None, False, ALL, ("skip", D, QUIET_HOURS)),
    ("quiet hours in their own timezone", QUIET_IN_NEW_YORK, {}, None, False, ALL, ("send", (D,))),
    ("dry run ignores opt-out", NO_THANKS, LINKED, None, True, ALL, ("send", (D,))),
    ("dry run ignores quiet hours", QUIET_NOW, {}, None, True, ALL, ("send", (D,))),
    ("another job skipped them: claim again", opted_in(), {}, entry(LedgerState.SKIPPED, OTHER_JOB_ID),
     False, ALL, ("send", (D,))),
    ("another job failed them: claim again", opted_in(), {}, entry(LedgerState.FAILED, OTHER_JOB_ID),
     False, ALL, ("send", (D,))),
    ("another job failed them, quiet now", QUIET_NOW, {}, entry(LedgerState.FAILED, OTHER_JOB_ID),
     False, ALL, ("skip", D, QUIET_HOURS)),
    ("another campaign sent it", opted_in(), {}, entry(LedgerState.SENT, OTHER_JOB_ID, T), False, ALL,
     ("note", T, f"already handled for {KEY} by campaign 2 (sent)")),
    ("another campaign is sending it", opted_in(), {}, entry(LedgerState.CLAIMED, OTHER_JOB_ID, None), False, ALL,
     ("note", D, f"already handled for {KEY} by campaign 2 (claimed)")),
    ("another campaign's send is unknown", opted_in(), {}, entry(LedgerState.UNKNOWN, OTHER_JOB_ID, S), False,
     ALL, ("note", S, f"already handled for {KEY} by campaign 2 (unknown)")),
    ("this job already sent it", opted_in(), {}, entry(LedgerState.SENT), False, ALL, ("nothing",)),
    ("this job already skipped it", QUIET_NOW, {}, entry(LedgerState.SKIPPED), False, ALL, ("nothing",)),
    ("interrupted on Discord: resend, same nonce", opted_in(), {}, entry(LedgerState.CLAIMED), False, ALL,
     ("resend", (D,))),
    ("interrupted before Telegram's request", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=T),
     False, ALL, ("resend", (T, S, D))),
    ("interrupted after Telegram's request", TELEGRAM_FIRST, LINKED,
     entry(LedgerState.CLAIMED, channel=T, on_wire=True), False, ALL, ("unknown", T, INTERRUPTED_UNKNOWN)),
    ("interrupted on the fallback, before its request", TELEGRAM_FIRST, LINKED,
     entry(LedgerState.CLAIMED, channel=S), False, ALL, ("resend", (S, D))),
    ("interrupted on Discord as a fallback", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=D),
     False, ALL, ("resend", (D,))),
    ("interrupted on Telegram, since unlinked", opted_in(), {}, entry(LedgerState.CLAIMED, channel=T),
     False, ALL, ("resend", (T, D))),
    ("interrupted on Telegram, now disabled", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=T),
     False, DISCORD_ONLY, ("unknown", T, INTERRUPTED_UNKNOWN)),
    ("interrupted before the channel was noted", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=None),
     False, ALL, ("resend", (T, S, D))),
    ("interrupted, player deleted since", None, {}, entry(LedgerState.CLAIMED), False, ALL, ("resend", (D,))),
]


@pytest.mark.parametrize(("case", "prefs", "addresses", "ledger", "dry_run", "enabled", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_plan(case, prefs, addresses, ledger, dry_run, enabled, expected) -> None:
    job = FanoutJob(1, JOB_ID, JobType.REMINDER, KEY, dry_run, ZONE, SEND_BY)
    recipient = SnapshotRecipient(ANA, PlayerStatus.LOOKING, D)
    contexts = {} if prefs is None else {ANA.id: DeliveryContext(ANA, prefs, addresses)}
    entries = {} if ledger is None else {ANA.id: ledger}
    assert what(plan_chunk(job, [recipient], contexts, entries, enabled, NOW)) == expected


def test_every_recipient_lands_in_one_bucket_in_order() -> None:
    job = FanoutJob(1, JOB_ID, JobType.START, KEY, False, ZONE, SEND_BY)
    players = [Player(i, 1000 + i, f"P{i}") for i in range(1, 7)]
    recipients = [SnapshotRecipient(p, PlayerStatus.LOOKING, D) for p in players]
    contexts = {p.id: DeliveryContext(p, opted_in(), {}) for p in players if p.id != 6}
    entries = {
        2: LedgerEntry(2, KEY, 1, JOB_ID, LedgerState.SENT, D),
        3: LedgerEntry(3, KEY, 1, JOB_ID, LedgerState.CLAIMED, D),
        4: LedgerEntry(4, KEY, 2, OTHER_JOB_ID, LedgerState.SENT, D),
        5: LedgerEntry(5, KEY, 2, OTHER_JOB_ID, LedgerState.SKIPPED, D),
    }
    plan = plan_chunk(job, recipients, contexts, entries, ALL, NOW)
    assert [s.recipient.player.id for s in plan.fresh] == [1, 5]
    assert [s.recipient.player.id for s in plan.resend] == [3]
    assert [a.player_id for a in plan.notes] == [4]
    assert [o.player_id for o in plan.decided] == [6]
    assert plan.resolved == ()
    # Every outcome decided here carries exactly one final send-log row.
    assert all(len(o.attempts) == 1 and o.attempts[0].final for o in plan.decided)
    assert all(a.final and a.status is DeliveryStatus.SKIPPED for a in plan.notes)


# -- past the send-by time ------------------------------------------------------------------------

LATE = SEND_BY  # the first instant at which nothing of the job may go out

# (case, preferences, addresses, ledger entry, dry run, expected)
LATE_CASES = [
    ("new recipient", opted_in(), {}, None, False, ("skip", D, TOO_LATE)),
    ("new recipient of a dry run", opted_in(), {}, None, True, ("skip", D, TOO_LATE)),
    ("quiet as well", QUIET_NOW, {}, None, False, ("skip", D, TOO_LATE)),
    ("another job skipped them", opted_in(), {}, entry(LedgerState.SKIPPED, OTHER_JOB_ID), False,
     ("skip", D, TOO_LATE)),
    ("interrupted on Discord: may have arrived", opted_in(), {}, entry(LedgerState.CLAIMED), False,
     ("unknown", D, INTERRUPTED_TOO_LATE)),
    ("interrupted before Telegram's request: never left", TELEGRAM_FIRST, LINKED,
     entry(LedgerState.CLAIMED, channel=T), False, ("skipped", T, TOO_LATE)),
    ("interrupted after Telegram's request", TELEGRAM_FIRST, LINKED,
     entry(LedgerState.CLAIMED, channel=T, on_wire=True), False, ("unknown", T, INTERRUPTED_TOO_LATE)),
    ("this job already sent it", opted_in(), {}, entry(LedgerState.SENT), False, ("nothing",)),
    ("another campaign sent it", opted_in(), {}, entry(LedgerState.SENT, OTHER_JOB_ID, T), False,
     ("note", T, f"already handled for {KEY} by campaign 2 (sent)")),
]


@pytest.mark.parametrize(("case", "prefs", "addresses", "ledger", "dry_run", "expected"), LATE_CASES,
                         ids=[c[0] for c in LATE_CASES])
def test_plan_past_the_send_by_time(case, prefs, addresses, ledger, dry_run, expected) -> None:
    job = FanoutJob(1, JOB_ID, JobType.REMINDER, KEY, dry_run, ZONE, SEND_BY)
    recipient = SnapshotRecipient(ANA, PlayerStatus.LOOKING, D)
    contexts = {ANA.id: DeliveryContext(ANA, prefs, addresses)}
    entries = {} if ledger is None else {ANA.id: ledger}
    assert what(plan_chunk(job, [recipient], contexts, entries, ALL, LATE)) == expected


def test_withheld_recipients_get_nothing_whatever_their_preferences() -> None:
    job = FanoutJob(1, JOB_ID, JobType.VOICE_CHECK, KEY, False, ZONE, SEND_BY, {ANA.id: NO_START_PING})
    recipient = SnapshotRecipient(ANA, PlayerStatus.LOOKING, D)
    plan = plan_chunk(job, [recipient], {ANA.id: DeliveryContext(ANA, opted_in(), {})}, {}, ALL, NOW)
    assert what(plan) == ("skip", D, NO_START_PING)


# -- a stored timezone that no longer loads ---------------------------------------------------------

QUIET_20_23 = QuietHours(time(20, 0), time(23, 0))  # 20:45 in Ljubljana is inside; 14:45 in New York is not


@pytest.mark.parametrize(
    ("stored", "quiet", "expected", "falls_back"),
    [
        ("America/New_York", QUIET_20_23, ("send", (D,)), False),
        ("Europe/Ljubljana", QUIET_20_23, ("skip", D, QUIET_HOURS), False),
        ("Mars/Olympus_Mons", QUIET_20_23, ("skip", D, QUIET_HOURS), True),  # read in the promotion timezone
        ("America/Not_A_City", QUIET_20_23, ("skip", D, QUIET_HOURS), True),
        ("Europe", QUIET_20_23, ("skip", D, QUIET_HOURS), True),  # a directory of tzdata
        ("../../etc/passwd", QUIET_20_23, ("skip", D, QUIET_HOURS), True),
        ("Europe/\x00", QUIET_20_23, ("skip", D, QUIET_HOURS), True),
        ("", QUIET_20_23, ("skip", D, QUIET_HOURS), True),
        ("x" * 300, QUIET_20_23, ("skip", D, QUIET_HOURS), True),
        ("Mars/Olympus_Mons", None, ("send", (D,)), False),  # no quiet hours: the zone is never read
    ],
)
def test_a_stored_timezone_that_does_not_load_falls_back_for_that_recipient(
    stored: str, quiet: QuietHours | None, expected: tuple[object, ...], falls_back: bool
) -> None:
    job = FanoutJob(1, JOB_ID, JobType.REMINDER, KEY, False, ZONE, SEND_BY)
    prefs = opted_in(quiet_hours=quiet, timezone=stored)
    bor = Player(2, 1002, "Bor")  # a neighbour with a good row is planned as usual
    recipients = [SnapshotRecipient(ANA, PlayerStatus.LOOKING, D), SnapshotRecipient(bor, PlayerStatus.LOOKING, D)]
    contexts = {ANA.id: DeliveryContext(ANA, prefs, {}), bor.id: DeliveryContext(bor, opted_in(), {})}
    plan = plan_chunk(job, recipients, contexts, {}, ALL, NOW)
    assert bor.id in {s.recipient.player.id for s in plan.fresh}
    plan_for_ana = ChunkPlan(
        tuple(s for s in plan.fresh if s.recipient.player.id == ANA.id), (), plan.decided, plan.resolved, plan.notes
    )
    assert what(plan_for_ana) == expected
    assert plan.bad_zones == (((ANA.id, stored),) if falls_back else ())
# Discord answered 50007 to this player and they have not interacted since: (case, preferences,
# addresses, ledger entry, dry run, expected, whether the send notes that Discord was left out).
CLOSED_CASES = [
    ("Discord is their only link", opted_in(), {}, None, False, ("skip", D, DM_CLOSED), False),
    ("prefers Telegram: Discord left off the end", TELEGRAM_FIRST, LINKED, None, False, ("send", (T, S)), True),
    ("prefers Discord: straight to the fallback", opted_in(preferred_channel=PreferredChannel.DISCORD), LINKED,
     None, False, ("send", (T, S)), True),
    ("in quiet hours as well", QUIET_NOW, {}, None, False, ("skip", D, QUIET_HOURS), False),
    ("promotions turned off as well", NO_THANKS, {}, None, False, ("skip", D, OPTED_OUT),
     False),
    ("a dry run is on Discord alone", opted_in(), LINKED, None, True, ("skip", D, DM_CLOSED), False),
    ("interrupted on Discord, refused since, no fallback", opted_in(), {}, entry(LedgerState.CLAIMED), False,
     ("skipped", D, DM_CLOSED), False),
    ("interrupted on Discord, refused since, with a fallback", opted_in(preferred_channel=PreferredChannel.DISCORD),
     LINKED, entry(LedgerState.CLAIMED), False, ("resend", (T, S)), True),
    ("interrupted before Telegram's request", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=T), False,
     ("resend", (T, S)), True),
    ("another campaign sent it", opted_in(), {}, entry(LedgerState.SENT, OTHER_JOB_ID, D), False,
     ("note", D, f"already handled for {KEY} by campaign 2 (sent)"), False),
]


@pytest.mark.parametrize(("case", "prefs", "addresses", "ledger", "dry_run", "expected", "noted"), CLOSED_CASES,
                         ids=[c[0] for c in CLOSED_CASES])
def test_plan_while_discord_dms_are_closed(case, prefs, addresses, ledger, dry_run, expected, noted) -> None:
    job = FanoutJob(1, JOB_ID, JobType.REMINDER, KEY, dry_run, ZONE, SEND_BY)
    recipient = SnapshotRecipient(ANA, PlayerStatus.LOOKING, D)
    contexts = {ANA.id: DeliveryContext(ANA, prefs, addresses, discord_dms_closed=True)}
    entries = {} if ledger is None else {ANA.id: ledger}
    plan = plan_chunk(job, [recipient], contexts, entries, ALL, NOW)
    assert what(plan) == expected
    assert [s.dm_closed for s in (*plan.fresh, *plan.resend)] == ([noted] if expected[0] in ("send", "resend") else [])


def test_a_send_refused_by_discord_since_its_claim_is_skipped_when_too_late() -> None:
    # The 50007 was noted, the outcome was not: nothing arrived, and it is too late for the fallback.
    job = FanoutJob(1, JOB_ID, JobType.REMINDER, KEY, False, ZONE, SEND_BY)
    recipient = SnapshotRecipient(ANA, PlayerStatus.LOOKING, D)
    contexts = {ANA.id: DeliveryContext(ANA, TELEGRAM_FIRST, LINKED, discord_dms_closed=True)}
    plan = plan_chunk(job, [recipient], contexts, {ANA.id: entry(LedgerState.CLAIMED)}, ALL, LATE)
    assert what(plan) == ("skipped", D, TOO_LATE)
