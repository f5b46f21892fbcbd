"""RSVP answers and "we need N more" as stored (migration 0009), on real SQLite files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.models import (
    Campaign,
    CampaignSchedule,
    Channel,
    Invitation,
    JobStatus,
    JobType,
    NeedCounts,
    Player,
    PlayerStatus,
    Recipient,
    RsvpAnswer,
)
from storage.campaigns import CampaignStore
from storage.db import Database
from storage.jobs import JobStore
from storage.needs import NeedStore
from storage.players import PlayerStore
from storage.rsvps import RsvpStore

NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
DAY = date(2026, 11, 24)


@pytest.fixture
async def db(tmp_path: Path):
    database = await Database.open(tmp_path / "s.sqlite3")
    yield database
    await database.close()


async def player(db: Database, discord_id: int, status: PlayerStatus | None = PlayerStatus.LOOKING) -> Player:
    players = PlayerStore(db)
    p = await players.upsert(discord_id, f"P{discord_id}", NOW)
    if status is not None:
        await players.set_availability(p.id, DAY, status, NOW)
    return p


async def campaign(db: Database, initiator: Player, recipients: list[Player]) -> Campaign:
    start = NOW + timedelta(hours=3)
    created = await CampaignStore(db).create(
        day=DAY, initiator=initiator, dry_run=False, global_guard=False, include_available=False,
        include_maybe=False, timezone="Europe/Ljubljana",
        recipients=[Recipient(p, PlayerStatus.LOOKING, Channel.DISCORD, (Channel.DISCORD,)) for p in recipients],
        schedule=CampaignSchedule(start - timedelta(minutes=15), start, start + timedelta(seconds=30)),
        max_attempts=5, now=NOW,
    )
    assert not isinstance(created, str)
    return created[0]


def asked(p: Player, channel: Channel = Channel.TELEGRAM) -> Recipient:
    return Recipient(p, PlayerStatus.AVAILABLE, channel, (channel,))


async def test_every_answer_is_a_row_and_the_newest_counts(db: Database) -> None:
    promoter, ana, bor = await player(db, 1, None), await player(db, 2), await player(db, 3)
    c = await campaign(db, promoter, [ana, bor])
    store = RsvpStore(db)
    ana_seat = await store.invitation(c, ana)
    assert ana_seat == Invitation(c, ana, PlayerStatus.LOOKING, Channel.DISCORD, in_snapshot=True)
    await store.record(ana_seat, RsvpAnswer.OUT, Channel.DISCORD, NOW, status=PlayerStatus.NOT_PLAYING, join=False)
    await store.record(ana_seat, RsvpAnswer.LATE, Channel.DISCORD, NOW, status=PlayerStatus.LOOKING, join=False)
    bor_seat = await store.invitation(c, bor)
    assert bor_seat is not None
    await store.record(bor_seat, RsvpAnswer.OUT, Channel.SIGNAL, NOW, status=PlayerStatus.NOT_PLAYING, join=False)
    assert await store.latest(c.id) == {ana.id: RsvpAnswer.LATE, bor.id: RsvpAnswer.OUT}
    assert await store.latest_of(c.id, ana.id) is RsvpAnswer.LATE
    assert await store.counts(c.id) == {RsvpAnswer.IN: 0, RsvpAnswer.LATE: 1, RsvpAnswer.OUT: 1}
    assert await PlayerStore(db).availability(bor.id, DAY) is PlayerStatus.NOT_PLAYING
    assert await PlayerStore(db).availability(ana.id, DAY) is PlayerStatus.LOOKING


async def test_the_database_refuses_answers_that_are_none_of_the_three(db: Database) -> None:
    promoter, ana = await player(db, 1, None), await player(db, 2)
    c = await campaign(db, promoter, [ana])
    for answer, channel in (("maybe", "discord"), ("in", "email")):
        with pytest.raises(sqlite3.IntegrityError):
            async with db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO rsvps (campaign_id, player_id, answer, channel, at) VALUES (?, ?, ?, ?, ?)",
                    (c.id, ana.id, answer, channel, NOW.isoformat()),
                )


async def test_an_asked_player_who_comes_takes_a_seat_once(db: Database) -> None:
    promoter, ana, dora = await player(db, 1, None), await player(db, 2), await player(db, 4, PlayerStatus.AVAILABLE)
    c = await campaign(db, promoter, [ana])
    needs, rsvps = NeedStore(db), RsvpStore(db)
    assert await needs.ask(
        campaign_id=c.id, day=DAY, promoter_id=promoter.id, count=1, recipients=[asked(dora)], max_attempts=5,
        now=NOW,
    ) == 1
    seat = await rsvps.invitation(c, dora)
    assert seat == Invitation(c, dora, PlayerStatus.AVAILABLE, Channel.TELEGRAM, in_snapshot=False)
    assert await rsvps.newest_invited(dora.id, DAY) == c.id
    assert await rsvps.record(seat, RsvpAnswer.IN, Channel.TELEGRAM, NOW, status=None, join=True) is True
    assert await rsvps.record(seat, RsvpAnswer.IN, Channel.TELEGRAM, NOW, status=None, join=True) is False
    updated = await CampaignStore(db).get(c.id)
    assert updated is not None and updated.recipient_count == 2
    assert updated.channels_summary.as_dict() == {"discord": 1, "telegram": 1, "signal": 0}
    assert [r.player.id for r in await CampaignStore(db).recipients(c.id)] == [ana.id, dora.id]
    assert await rsvps.invitation(c, dora) == Invitation(c, dora, PlayerStatus.AVAILABLE, Channel.TELEGRAM, True)
    assert await needs.counts(c.id) == NeedCounts(asked=1, joined=1)
    assert await needs.joined(c.id) == ["P4"]


async def test_a_player_is_asked_once_a_day_whichever_campaign_asks(db: Database) -> None:
    promoter, other, ana = await player(db, 1, None), await player(db, 9, None), await player(db, 2)
    dora, eva = await player(db, 4, PlayerStatus.AVAILABLE), await player(db, 5, PlayerStatus.MAYBE)
    first, second = await campaign(db, promoter, [ana]), await campaign(db, other, [ana])
    needs = NeedStore(db)
    common = {"day": DAY, "max_attempts": 5, "now": NOW, "count": 2}
    assert await needs.ask(campaign_id=first.id, promoter_id=promoter.id, recipients=[asked(dora)], **common) == 1
    assert await needs.ask(
        campaign_id=second.id, promoter_id=other.id, recipients=[asked(dora), asked(eva)], **common
    ) == 1  # Eva only: the database keeps Dora to one ask today
    assert await needs.asked_on(DAY) == {dora.id, eva.id}
    assert [r.player.id for r in await needs.recipients(second.id)] == [eva.id]
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO need_recipients (campaign_id, player_id, need_id, campaign_date, status, selected_channel)"
                " VALUES (?, ?, 1, ?, 'AVAILABLE', 'discord')",
                (second.id, dora.id, DAY.isoformat()),
            )


async def test_each_ask_arms_the_one_need_job_again(db: Database) -> None:
    promoter, ana = await player(db, 1, None), await player(db, 2)
    dora, eva = await player(db, 4, PlayerStatus.AVAILABLE), await player(db, 5, PlayerStatus.MAYBE)
    c = await campaign(db, promoter, [ana])
    needs, jobs = NeedStore(db), JobStore(db)
    common = {"campaign_id": c.id, "day": DAY, "promoter_id": promoter.id, "max_attempts": 5}
    await needs.ask(count=2, recipients=[], now=NOW, **common)  # nobody to ask: no job
    assert JobType.NEED not in {j.job_type for j in await CampaignStore(db).jobs(c.id)}
    await needs.ask(count=2, recipients=[asked(dora)], now=NOW, **common)
    [claimed] = await jobs.claim_due(NOW, "worker", timedelta(seconds=60))
    assert (claimed.job_type, claimed.seq, claimed.attempts) == (JobType.NEED, -1, 1)
    later = NOW + timedelta(minutes=5)
    await needs.ask(count=1, recipients=[asked(eva)], now=later, **common)  # while the first run still runs
    assert not await jobs.extend_lease(claimed.id, "worker", later + timedelta(seconds=60))  # that run stops
    assert not await jobs.finish(claimed.id, "worker", JobStatus.SENT, later)  # and cannot close the job
    [again] = await jobs.claim_due(later, "worker", timedelta(seconds=60))
    assert (again.id, again.attempts, again.due_at) == (claimed.id, 1, later)
    assert await needs.latest_count(c.id) == 1
    assert [r.player.id for r in await needs.recipients(c.id)] == [dora.id, eva.id]
