"""Players' Discord DM state in SQLite: the stored DM channel, the closed mark, and what reads it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from storage.db import Database
from storage.discord_dms import DiscordDMStore
from storage.players import PlayerStore

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
ANA, BOR = 501, 502


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(tmp_path / "dms.sqlite3")
    players = PlayerStore(database)
    await players.upsert(ANA, "Ana", NOW)
    await players.upsert(BOR, "Bor", NOW)
    yield database
    await database.close()


async def test_a_dm_channel_is_kept_until_forgotten(db: Database) -> None:
    dms = DiscordDMStore(db)
    assert await dms.channel_id(ANA) is None
    assert await dms.remember_channel(ANA, 9001)
    assert await DiscordDMStore(db).channel_id(ANA) == 9001  # another store, as after a restart
    assert await dms.channel_id(BOR) is None
    await dms.forget_channel(ANA)
    assert await dms.channel_id(ANA) is None


async def test_a_user_who_is_no_player_has_nothing_stored(db: Database) -> None:
    dms = DiscordDMStore(db)
    assert not await dms.remember_channel(777, 9003)
    assert not await dms.mark_closed(777, NOW)
    assert await dms.channel_id(777) is None


async def test_one_dm_channel_belongs_to_one_user(db: Database) -> None:
    dms = DiscordDMStore(db)
    await dms.remember_channel(ANA, 9001)
    with pytest.raises(sqlite3.IntegrityError):
        await dms.remember_channel(BOR, 9001)
    assert await dms.channel_id(BOR) is None


async def test_the_closed_mark_reaches_the_profile_and_the_fan_out_until_reopened(db: Database) -> None:
    dms, players = DiscordDMStore(db), PlayerStore(db)
    ana = await players.profile(ANA)
    assert ana is not None and ana.discord_dms_closed_at is None
    assert await dms.mark_closed(ANA, NOW)
    ana = await players.profile(ANA)
    assert ana is not None and ana.discord_dms_closed_at == NOW
    contexts = await players.delivery_contexts([ana.player.id])
    assert contexts[ana.player.id].discord_dms_closed
    await dms.reopen(ana.player.id)
    assert not (await players.delivery_contexts([ana.player.id]))[ana.player.id].discord_dms_closed
    assert await players.profile(999) is None
