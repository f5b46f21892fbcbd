"""What the fan-out does with each recipient of a chunk (services.fanout_plan): a table of cases."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.fanout_plan import (
    DM_CLOSED,
    INTERRUPTED_UNKNOWN,
    OPTED_OUT,
    PLAYER_GONE,
    QUIET_HOURS,
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

ZONE = ZoneInfo("Europe/Ljubljana")
NOW = datetime(2026, 11, 24, 19, 45, tzinfo=UTC)  # 20:45 in Ljubljana
KEY = "PROMOTE:T-15:2026-11-24"
JOB_ID = 10
OTHER_JOB_ID = 20
ANA = Player(1, 1001, "Ana")
D, T, S = Channel.DISCORD, Channel.TELEGRAM, Channel.SIGNAL
ALL = {D: True, T: False, S: False}  # every channel enabled; only Discord deduplicates
DISCORD_ONLY = {D: True}

LINKED = {T: "enc-t", S: "enc-s"}
TELEGRAM_FIRST = Preferences(preferred_channel=PreferredChannel.TELEGRAM)
QUIET_NOW = Preferences(quiet_hours=QuietHours(time(20, 0), time(23, 0)))  # 20:45 local is inside
QUIET_IN_NEW_YORK = Preferences(quiet_hours=QuietHours(time(20, 0), time(23, 0)), timezone="America/New_York")


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
    ("new recipient, defaults", Preferences(), {}, None, False, ALL, ("send", (D,))),
    ("prefers Telegram, linked", TELEGRAM_FIRST, LINKED, None, False, ALL, ("send", (T, S, D))),
    ("prefers Telegram, Telegram not enabled", TELEGRAM_FIRST, LINKED, None, False, {D: True, S: False},
     ("send", (S, D))),
    ("prefers Telegram, only Discord enabled", TELEGRAM_FIRST, LINKED, None, False, DISCORD_ONLY, ("send", (D,))),
    ("prefers Telegram, not linked", TELEGRAM_FIRST, {}, None, False, ALL, ("send", (D,))),
    ("player deleted since the snapshot", None, {}, None, False, ALL, ("skip", D, PLAYER_GONE)),
    ("turned promotions off", Preferences(allow_promotions=False), {}, None, False, ALL, ("skip", D, OPTED_OUT)),
    ("in quiet hours", QUIET_NOW, {}, None, False, ALL, ("skip", D, QUIET_HOURS)),
    ("quiet hours in their own timezone", QUIET_IN_NEW_YORK, {}, None, False, ALL, ("send", (D,))),
    ("dry run ignores opt-out", Preferences(allow_promotions=False), LINKED, None, True, ALL, ("send", (D,))),
    ("dry run ignores quiet hours", QUIET_NOW, {}, None, True, ALL, ("send", (D,))),
    ("another job skipped them: claim again", Preferences(), {}, entry(LedgerState.SKIPPED, OTHER_JOB_ID),
     False, ALL, ("send", (D,))),
    ("another job failed them: claim again", Preferences(), {}, entry(LedgerState.FAILED, OTHER_JOB_ID),
     False, ALL, ("send", (D,))),
    ("another job failed them, quiet now", QUIET_NOW, {}, entry(LedgerState.FAILED, OTHER_JOB_ID),
     False, ALL, ("skip", D, QUIET_HOURS)),
    ("another campaign sent it", Preferences(), {}, entry(LedgerState.SENT, OTHER_JOB_ID, T), False, ALL,
     ("note", T, f"already handled for {KEY} by campaign 2 (sent)")),
    ("another campaign is sending it", Preferences(), {}, entry(LedgerState.CLAIMED, OTHER_JOB_ID, None), False, ALL,
     ("note", D, f"already handled for {KEY} by campaign 2 (claimed)")),
    ("another campaign's send is unknown", Preferences(), {}, entry(LedgerState.UNKNOWN, OTHER_JOB_ID, S), False,
     ALL, ("note", S, f"already handled for {KEY} by campaign 2 (unknown)")),
    ("this job already sent it", Preferences(), {}, entry(LedgerState.SENT), False, ALL, ("nothing",)),
    ("this job already skipped it", QUIET_NOW, {}, entry(LedgerState.SKIPPED), False, ALL, ("nothing",)),
    ("interrupted on Discord: resend, same nonce", Preferences(), {}, entry(LedgerState.CLAIMED), False, ALL,
     ("resend", (D,))),
    ("interrupted before Telegram's request", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=T),
     False, ALL, ("resend", (T, S, D))),
    ("interrupted after Telegram's request", TELEGRAM_FIRST, LINKED,
     entry(LedgerState.CLAIMED, channel=T, on_wire=True), False, ALL, ("unknown", T, INTERRUPTED_UNKNOWN)),
    ("interrupted on the fallback, before its request", TELEGRAM_FIRST, LINKED,
     entry(LedgerState.CLAIMED, channel=S), False, ALL, ("resend", (S, D))),
    ("interrupted on Discord as a fallback", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=D),
     False, ALL, ("resend", (D,))),
    ("interrupted on Telegram, since unlinked", Preferences(), {}, entry(LedgerState.CLAIMED, channel=T),
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
    job = FanoutJob(1, JOB_ID, JobType.REMINDER, KEY, dry_run, ZONE)
    recipient = SnapshotRecipient(ANA, PlayerStatus.LOOKING, D)
    contexts = {} if prefs is None else {ANA.id: DeliveryContext(ANA, prefs, addresses)}
    entries = {} if ledger is None else {ANA.id: ledger}
    assert what(plan_chunk(job, [recipient], contexts, entries, enabled, NOW)) == expected


def test_every_recipient_lands_in_one_bucket_in_order() -> None:
    job = FanoutJob(1, JOB_ID, JobType.START, KEY, False, ZONE)
    players = [Player(i, 1000 + i, f"P{i}") for i in range(1, 7)]
    recipients = [SnapshotRecipient(p, PlayerStatus.LOOKING, D) for p in players]
    contexts = {p.id: DeliveryContext(p, Preferences(), {}) for p in players if p.id != 6}
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


# Discord answered 50007 to this player and they have not interacted since: (case, preferences,
# addresses, ledger entry, dry run, expected, whether the send notes that Discord was left out).
CLOSED_CASES = [
    ("Discord is their only link", Preferences(), {}, None, False, ("skip", D, DM_CLOSED), False),
    ("prefers Telegram: Discord left off the end", TELEGRAM_FIRST, LINKED, None, False, ("send", (T, S)), True),
    ("prefers Discord: straight to the fallback", Preferences(preferred_channel=PreferredChannel.DISCORD), LINKED,
     None, False, ("send", (T, S)), True),
    ("in quiet hours as well", QUIET_NOW, {}, None, False, ("skip", D, QUIET_HOURS), False),
    ("promotions turned off as well", Preferences(allow_promotions=False), {}, None, False, ("skip", D, OPTED_OUT),
     False),
    ("a dry run is on Discord alone", Preferences(), LINKED, None, True, ("skip", D, DM_CLOSED), False),
    ("interrupted on Discord, refused since, no fallback", Preferences(), {}, entry(LedgerState.CLAIMED), False,
     ("skipped", D, DM_CLOSED), False),
    ("interrupted on Discord, refused since, with a fallback", Preferences(preferred_channel=PreferredChannel.DISCORD),
     LINKED, entry(LedgerState.CLAIMED), False, ("resend", (T, S)), True),
    ("interrupted before Telegram's request", TELEGRAM_FIRST, LINKED, entry(LedgerState.CLAIMED, channel=T), False,
     ("resend", (T, S)), True),
    ("another campaign sent it", Preferences(), {}, entry(LedgerState.SENT, OTHER_JOB_ID, D), False,
     ("note", D, f"already handled for {KEY} by campaign 2 (sent)"), False),
]


@pytest.mark.parametrize(("case", "prefs", "addresses", "ledger", "dry_run", "expected", "noted"), CLOSED_CASES,
                         ids=[c[0] for c in CLOSED_CASES])
def test_plan_while_discord_dms_are_closed(case, prefs, addresses, ledger, dry_run, expected, noted) -> None:
    job = FanoutJob(1, JOB_ID, JobType.REMINDER, KEY, dry_run, ZONE)
    recipient = SnapshotRecipient(ANA, PlayerStatus.LOOKING, D)
    contexts = {ANA.id: DeliveryContext(ANA, prefs, addresses, discord_dms_closed=True)}
    entries = {} if ledger is None else {ANA.id: ledger}
    plan = plan_chunk(job, [recipient], contexts, entries, ALL, NOW)
    assert what(plan) == expected
    assert [s.dm_closed for s in (*plan.fresh, *plan.resend)] == ([noted] if expected[0] in ("send", "resend") else [])
