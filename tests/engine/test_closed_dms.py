"""Closed Discord DMs: after a 50007 a player is skipped on Discord until they next use Rallypoint."""

from __future__ import annotations

from datetime import date

import pytest

from services.fanout_plan import DM_CLOSED, NO_START_PING
from services.models import Channel, DeliveryStatus, JobType, PreferredChannel
from tests.support import PROMOTER_ID, Harness, local, make_harness, opted_in

DAY = date(2026, 11, 24)
ANA, BOR, CENE = 1, 2, 3  # Discord user ids


@pytest.fixture
async def h(tmp_path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    yield harness
    await harness.engine.db.close()


async def test_closed_dms_skip_discord_straight_to_the_fallback_or_skip_when_it_is_the_last(h: Harness) -> None:
    ana = await h.add_player(ANA, "Ana")  # Discord is her only link
    bor = await h.add_player(BOR, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.DISCORD), telegram="52")
    await h.add_player(CENE, "Cene")
    for user_id in (ANA, BOR):
        assert await h.engine.discord_dm_store.mark_closed(user_id, h.clock.now())

    created = await h.engine.promote.create(h.actor())
    await h.run_evening()

    # Not one request to them on Discord; Cene gets all three messages there, Bor on Telegram.
    assert {m.address for m in h.discord.attempts} == {str(CENE)}
    assert len(h.discord.to(str(CENE))) == 3
    assert len(h.telegram.to("52")) == 3
    rows = await h.engine.ledger_store.send_log(created.campaign.id)
    finals = {(r.player_id, r.job_type): r for r in rows if r.final}
    # Her start ping never went out, so she gets no follow-up either (it would say "we started").
    assert (finals[ana, JobType.VOICE_CHECK].status, finals[ana, JobType.VOICE_CHECK].reason) == (
        DeliveryStatus.SKIPPED, NO_START_PING,
    )
    for job_type in (JobType.REMINDER, JobType.START):
        assert (finals[ana, job_type].status, finals[ana, job_type].reason) == (DeliveryStatus.SKIPPED, DM_CLOSED)
        assert (finals[bor, job_type].status, finals[bor, job_type].channel) == (DeliveryStatus.SENT, Channel.TELEGRAM)
    # Bor's send log says why Discord, his first choice, was not tried.
    bor_notes = [r for r in rows if r.player_id == bor and not r.final]
    skipped_discord = (Channel.DISCORD, DeliveryStatus.SKIPPED, DM_CLOSED)
    assert {(r.channel, r.status, r.reason) for r in bor_notes} == {skipped_discord}
    status = await h.engine.promote.status(h.actor())
    assert status is not None and status.delivery[DeliveryStatus.SKIPPED] == 3  # Ana: the three


async def test_using_rallypoint_reopens_discord_and_tells_the_player_once(h: Harness) -> None:
    ana = await h.add_player(ANA, "Ana")
    marked_at = h.clock.now()
    await h.engine.discord_dm_store.mark_closed(ANA, marked_at)
    assert (await h.engine.player_store.delivery_contexts([ana]))[ana].discord_dms_closed

    h.clock.advance(3600)
    first = await h.engine.players.preferences(h.actor(ANA, "Ana"))  # /notify show, or any other call
    assert first.discord_dms_closed_at == marked_at  # what she is told: Discord refused her then
    assert not (await h.engine.player_store.delivery_contexts([ana]))[ana].discord_dms_closed
    again = await h.engine.players.preferences(h.actor(ANA, "Ana"))
    assert again.discord_dms_closed_at is None


@pytest.mark.parametrize(
    "call",
    ["set_status", "update_preferences", "player_for", "a_new_nickname"],
)
async def test_every_entry_point_of_a_player_clears_the_mark(h: Harness, call: str) -> None:
    ana = await h.add_player(ANA, "Ana")
    await h.engine.discord_dm_store.mark_closed(ANA, h.clock.now())
    players = h.engine.players
    if call == "set_status":
        await players.set_status(h.actor(ANA, "Ana"), None)
    elif call == "update_preferences":
        view = await players.update_preferences(h.actor(ANA, "Ana"), allow_promotions=True)
        assert view.discord_dms_closed_at is not None  # the answer says what was found
    elif call == "player_for":
        await players.player_for(h.actor(ANA, "Ana"))
    else:  # arriving under a new nickname: the profile is written anyway, the mark is cleared too
        await players.player_for(h.actor(ANA, "Ana the Great"))
    assert not (await h.engine.player_store.delivery_contexts([ana]))[ana].discord_dms_closed


async def test_a_mark_on_someone_who_is_no_player_changes_nothing(h: Harness) -> None:
    assert not await h.engine.discord_dm_store.mark_closed(424242, h.clock.now())
