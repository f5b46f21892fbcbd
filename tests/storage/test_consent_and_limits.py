"""Consent and the anti-spam limits as database rules (migrations 0007 and 0008), on real SQLite files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest

from services.models import (
    Campaign,
    CampaignLimit,
    CampaignSchedule,
    Channel,
    DeliveryOutcome,
    DeliveryStatus,
    JobType,
    Player,
    PlayerStatus,
    Preferences,
    QuietHours,
    Recipient,
)
from services.quiet_hours import parse_hhmm
from storage.campaigns import CampaignStore
from storage.db import Database
from storage.ledger import LedgerStore
from storage.players import PlayerStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 24)
KEY = "PROMOTE:T-15:2026-11-24"




# -- consent and quiet hours: what the preferences table accepts --------------------------------


@pytest.mark.parametrize(
    ("allow", "chosen", "quiet", "stored"),
    [
        (False, False, None, True),  # never chose: off
        (False, True, None, True),  # said no
        (True, True, None, True),  # said yes
        (True, False, None, False),  # on without a choice: nobody is promoted to without saying yes
        (False, False, ("22:00", "06:00"), True),
        (False, False, ("22:00", "22:00"), False),  # a window that silences nobody
    ],
)
async def test_the_preferences_table_keeps_consent_and_quiet_hours_honest(
    db: Database, allow: bool, chosen: bool, quiet: tuple[str, str] | None, stored: bool
) -> None:
    players = PlayerStore(db)
    ana = await players.upsert(1, "Ana", NOW)
    window = QuietHours(parse_hhmm(quiet[0]), parse_hhmm(quiet[1])) if quiet else None
    prefs = Preferences(allow_promotions=allow, quiet_hours=window, promotions_chosen=chosen)
    if stored:
        await players.save_preferences(ana.id, prefs, NOW)
        assert await players.preferences(ana.id) == prefs
    else:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            await players.save_preferences(ana.id, prefs, NOW)
        assert await players.preferences(ana.id) == Preferences()


async def test_migration_0007_turns_off_everyone_who_never_chose(unmigrated: Database) -> None:
    db = unmigrated
    await db.migrate(up_to=6)
    async with db.transaction() as tx:
        for pid in (1, 2, 3, 4):
            await tx.execute(
                "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (pid, 100 + pid, f"P{pid}", NOW.isoformat(), NOW.isoformat()),
            )
        rows = [
            (1, 1, "telegram", None, None, "Asia/Tokyo", "2026-10-01T10:00:00+00:00"),  # "on": the old default
            (2, 0, "any", "23:00", "07:00", None, "2026-10-02T10:00:00+00:00"),  # "off": their own choice
            (3, 1, "any", "22:00", "22:00", None, "2026-10-03T10:00:00+00:00"),  # an empty quiet window
        ]  # player 4 never saved anything
        await tx.executemany(
            "INSERT INTO preferences (player_id, allow_promotions, preferred_channel, quiet_start, quiet_end,"
            " timezone, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    assert await db.migrate() != []
    players = PlayerStore(db)
    one, two, three, four = [await players.preferences(pid) for pid in (1, 2, 3, 4)]
    assert (one.allow_promotions, one.promotions_chosen, one.preferred_channel, one.timezone) == (
        False, False, "telegram", "Asia/Tokyo",
    )
    assert (two.allow_promotions, two.promotions_chosen) == (False, True)
    async with db.read() as tx:
        row = await tx.fetchone("SELECT promotions_chosen_at FROM preferences WHERE player_id = 2")
    assert row is not None and row[0] == "2026-10-02T10:00:00+00:00"  # "off" was chosen when it was saved
    assert two.quiet_hours == QuietHours(parse_hhmm("23:00"), parse_hhmm("07:00"))
    assert (three.allow_promotions, three.promotions_chosen, three.quiet_hours) == (False, False, None)
    assert four == Preferences()
    assert await players.not_opted_in(DAY, frozenset({PlayerStatus.LOOKING})) == 0  # nobody LOOKING yet


# -- a campaign that delivered anything keeps counting after a cancel -----------------------------


async def _setup(db: Database) -> tuple[CampaignStore, LedgerStore, dict[str, Player]]:
    players = PlayerStore(db)
    who = {name: await players.upsert(i, name, NOW) for i, name in enumerate(("ana", "bor", "eve"), start=1)}
    return CampaignStore(db), LedgerStore(db), who


async def _create(
    campaigns: CampaignStore, who: Player, *, global_guard: bool = False, dry_run: bool = False, to: Player
) -> Campaign | CampaignLimit:
    created = await campaigns.create(
        day=DAY, initiator=who, dry_run=dry_run, global_guard=global_guard, include_available=False,
        include_maybe=False, timezone="UTC", recipients=[Recipient(to, PlayerStatus.LOOKING, Channel.DISCORD, ())],
        schedule=CampaignSchedule(NOW, NOW, NOW), max_attempts=5, now=NOW,
    )
    return created if isinstance(created, CampaignLimit) else created[0]


async def _deliver(ledger: LedgerStore, campaign: Campaign, to: Player, status: DeliveryStatus, db: Database) -> None:
    """Claim the reminder for `to` and record its outcome, as the fan-out does."""
    async with db.read() as tx:
        row = await tx.fetchone("SELECT id FROM jobs WHERE campaign_id = ? AND seq = 0", (campaign.id,))
    assert row is not None
    job_id = int(row["id"])
    key = KEY if not campaign.dry_run else f"DRYRUN:{campaign.id}:{KEY}"
    claimed = await ledger.claim(key=key, campaign_id=campaign.id, job_id=job_id,
                                 first_channels={to.id: Channel.DISCORD}, now=NOW)
    assert claimed == {to.id}
    outcome = DeliveryOutcome(to.id, status, Channel.DISCORD, "m-1" if status is DeliveryStatus.SENT else None, ())
    await ledger.record(key=key, campaign_id=campaign.id, job_id=job_id, job_type=JobType.REMINDER,
                        outcomes=[outcome], now=NOW)


# (what the cancelled campaign delivered, global guard, who tries again) → what the store answers
CANCEL_CASES = [
    ("nothing went out", None, False, "ana", None),
    ("the reminder was skipped", DeliveryStatus.SKIPPED, False, "ana", None),
    ("the reminder failed", DeliveryStatus.FAILED, False, "ana", None),
    ("the reminder was sent", DeliveryStatus.SENT, False, "ana", CampaignLimit.PER_PROMOTER),
    ("sent, global cooldown, another promoter", DeliveryStatus.SENT, True, "bor", CampaignLimit.GLOBAL),
    ("sent, no global cooldown, another promoter", DeliveryStatus.SENT, False, "bor", None),
]


@pytest.mark.parametrize(("case", "delivered", "global_guard", "again", "expected"), CANCEL_CASES,
                         ids=[c[0] for c in CANCEL_CASES])
async def test_cancelling_after_a_delivery_keeps_the_limits(
    db: Database, case: str, delivered: DeliveryStatus | None, global_guard: bool, again: str, expected
) -> None:
    campaigns, ledger, who = await _setup(db)
    first = await _create(campaigns, who["ana"], global_guard=global_guard, to=who["eve"])
    assert isinstance(first, Campaign)
    if delivered is not None:
        await _deliver(ledger, first, who["eve"], delivered, db)
    assert await campaigns.cancel(first.id, NOW)

    answer = await _create(campaigns, who[again], global_guard=global_guard, to=who["eve"])

    if expected is None:
        assert isinstance(answer, Campaign)
    else:
        assert answer is expected


async def test_a_delivered_dry_run_never_counts(db: Database) -> None:
    campaigns, ledger, who = await _setup(db)
    rehearsal = await _create(campaigns, who["ana"], dry_run=True, to=who["ana"])
    assert isinstance(rehearsal, Campaign)
    await _deliver(ledger, rehearsal, who["ana"], DeliveryStatus.SENT, db)
    await campaigns.cancel(rehearsal.id, NOW)
    assert isinstance(await _create(campaigns, who["ana"], to=who["eve"]), Campaign)


async def test_a_send_recorded_after_its_campaign_was_cancelled_and_replaced_is_still_recorded(db: Database) -> None:
    campaigns, ledger, who = await _setup(db)
    first = await _create(campaigns, who["ana"], to=who["eve"])
    assert isinstance(first, Campaign)
    async with db.read() as tx:
        row = await tx.fetchone("SELECT id FROM jobs WHERE campaign_id = ? AND seq = 0", (first.id,))
    assert row is not None
    await ledger.claim(key=KEY, campaign_id=first.id, job_id=row["id"], first_channels={who["eve"].id: Channel.DISCORD},
                       now=NOW)
    # The send is in flight when the campaign is cancelled and a new one takes its place …
    await campaigns.cancel(first.id, NOW)
    second = await _create(campaigns, who["ana"], to=who["bor"])
    assert isinstance(second, Campaign)
    # … then it comes back sent: recorded all the same (the mark gives way to the campaign that holds the place).
    outcome = DeliveryOutcome(who["eve"].id, DeliveryStatus.SENT, Channel.DISCORD, "m-1", ())
    await ledger.record(key=KEY, campaign_id=first.id, job_id=row["id"], job_type=JobType.REMINDER,
                        outcomes=[outcome], now=NOW)
    assert (await ledger.entries(KEY, [who["eve"].id]))[who["eve"].id].state == "sent"


async def _campaign_of_0007(db: Database, initiator: Player, to: Player) -> tuple[int, int]:
    """A campaign with its recipient and reminder job as the schema before 0008 held it: (campaign id, job id).

    Written as rows: today's CampaignStore writes columns later migrations added.
    """
    async with db.transaction() as tx:
        campaign_id = await tx.insert(
            "INSERT INTO campaigns (campaign_date, initiator_player_id, status, dry_run, include_available,"
            " include_maybe, timezone, recipient_count, count_discord, count_telegram, count_signal, created_at)"
            " VALUES (?, ?, 'scheduled', 0, 0, 0, 'UTC', 1, 1, 0, 0, ?)",
            (DAY.isoformat(), initiator.id, NOW.isoformat()),
        )
        await tx.execute(
            "INSERT INTO campaign_recipients (campaign_id, player_id, status, selected_channel)"
            " VALUES (?, ?, 'LOOKING', 'discord')",
            (campaign_id, to.id),
        )
        job_id = await tx.insert(
            "INSERT INTO jobs (campaign_id, job_type, seq, run_at, due_at, status, max_attempts)"
            " VALUES (?, 'send_reminder_2045', 0, ?, ?, 'pending', 5)",
            (campaign_id, NOW.isoformat(), NOW.isoformat()),
        )
    return campaign_id, job_id


async def test_migration_0008_counts_cancelled_campaigns_that_delivered(unmigrated: Database) -> None:
    db = unmigrated
    await db.migrate(up_to=7)
    campaigns, _, who = await _setup(db)
    # Ana's campaign delivered, then was cancelled; Bor's delivered and was cancelled, then he made another.
    for name in ("ana", "bor"):
        campaign_id, job_id = await _campaign_of_0007(db, who[name], who["eve"])
        async with db.transaction() as tx:  # the old schema had no trigger: write what it wrote
            await tx.execute(
                "INSERT INTO ledger (player_id, key, campaign_id, job_id, state, channel, claimed_at, finished_at)"
                " VALUES (?, ?, ?, ?, 'sent', 'discord', ?, ?)",
                (who["eve"].id, f"{KEY}:{campaign_id}", campaign_id, job_id, NOW.isoformat(), NOW.isoformat()),
            )
        await campaigns.cancel(campaign_id, NOW)
    await _campaign_of_0007(db, who["bor"], who["eve"])

    await db.migrate()  # must not trip over Bor's two campaigns

    assert await _create(campaigns, who["ana"], to=who["eve"]) is CampaignLimit.PER_PROMOTER
    assert await _create(campaigns, who["bor"], to=who["eve"]) is CampaignLimit.PER_PROMOTER
