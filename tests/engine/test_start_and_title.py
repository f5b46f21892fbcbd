"""A campaign at a start of its own and with a title, over a real SQLite file and the fake clock."""

from __future__ import annotations

from datetime import date, time

import pytest

from services.errors import InvalidInput
from services.models import PreferredChannel
from tests.support import FOLLOWUP_CHANNEL, Harness, local, make_harness, opted_in, promotion_config

DAY = date(2026, 11, 24)
HOSTILE = "@everyone **Raid** night"


async def _community(h: Harness) -> None:
    await h.add_player(1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram="5001")
    await h.add_player(2, "Bor")


async def test_a_campaign_at_its_own_start_keeps_the_configured_lead(evening: Harness) -> None:
    h = evening  # 20:00
    await _community(h)
    created = await h.engine.promote.create(h.actor(), start_at=time(22, 30), title="Raid night")
    assert (created.campaign.start_time, created.campaign.title) == (time(22, 30), "Raid night")
    assert (created.schedule.reminder, created.schedule.start, created.schedule.voice_check) == (
        local(DAY, 22, 15), local(DAY, 22, 30), local(DAY, 22, 30, 30),
    )
    stored = await h.engine.campaign_store.get(created.campaign.id)
    assert stored == created.campaign

    await h.run_evening()
    reminder, start, followup = (m.text for m in h.telegram.to("5001"))
    assert reminder.startswith("⏰ Raid night kicks off in 15 minutes, at 22:30 CET")
    assert start.startswith("🎮 Raid night: we are starting now, at 22:30 CET")
    assert followup.startswith("👋 Raid night: we started at 22:30 CET")
    [(channel, summary, _)] = h.poster.posts
    assert channel == FOLLOWUP_CHANNEL and summary.startswith("📋 Voice check for Raid night, the 22:30 CET start")


async def test_a_hostile_title_is_escaped_on_discord_and_plain_elsewhere(evening: Harness) -> None:
    h = evening
    await _community(h)
    await h.engine.promote.create(h.actor(), title=HOSTILE)
    await h.run_evening()
    for message in h.discord.to("2"):
        assert "@everyone" not in message.text and "**Raid**" not in message.text
        assert "@\u200beveryone \\*\\*Raid\\*\\* night" in message.text
    assert all(HOSTILE in m.text for m in h.telegram.to("5001"))
    assert "@everyone" not in h.poster.posts[0][1]


async def test_a_start_already_past_moves_as_rule_4_says(evening: Harness) -> None:
    h = evening  # 20:00: 19:30 is past
    await _community(h)
    created = await h.engine.promote.create(h.actor(), start_at=time(19, 30))
    assert (created.schedule.reminder, created.schedule.start) == (local(DAY, 20, 0, 10), local(DAY, 20, 0, 20))
    assert created.campaign.start_time == time(19, 30)  # as asked; the jobs say when it really starts


async def test_the_preview_shows_the_start_and_the_title(evening: Harness) -> None:
    preview = await evening.engine.promote.preview(evening.actor(), start_at=time(23, 0), title="Late one")
    assert (preview.start_time, preview.reminder_time, preview.title) == (time(23, 0), time(22, 45), "Late one")
    default = await evening.engine.promote.preview(evening.actor())
    assert (default.start_time, default.reminder_time, default.title) == (time(21, 0), time(20, 45), None)


async def test_the_lead_comes_from_the_configuration(tmp_path) -> None:
    h = await make_harness(
        tmp_path / "lead.sqlite3", local(DAY, 18, 0), config=promotion_config(reminder_at=time(20, 30))
    )
    try:
        await _community(h)
        created = await h.engine.promote.create(h.actor(), start_at=time(22, 0))
        assert created.schedule.reminder == local(DAY, 21, 30)  # 30 minutes, as 20:30 → 21:00 says
    finally:
        await h.engine.db.close()


@pytest.mark.parametrize("title", ["", "   ", "x" * 101, "two\nlines", "bell\x07"])
async def test_a_bad_title_is_refused_and_nothing_is_stored(evening: Harness, title: str) -> None:
    h = evening
    await _community(h)
    with pytest.raises(InvalidInput, match="A title has 1 to 100 characters"):
        await h.engine.promote.create(h.actor(), title=title)
    with pytest.raises(InvalidInput, match="A title has 1 to 100 characters"):
        await h.engine.promote.preview(h.actor(), title=title)
    assert await h.engine.campaign_store.for_date(DAY) is None


async def test_the_evening_of_the_day_is_its_live_real_campaign(evening: Harness) -> None:
    h = evening
    await _community(h)
    assert (await h.engine.standing.evening(DAY)).campaign is None
    await h.engine.promote.create(h.actor(), dry_run=True)
    assert (await h.engine.standing.evening(DAY)).campaign is None  # a rehearsal is nobody's evening
    real = await h.engine.promote.create(h.actor(), title="Raid night", start_at=time(21, 30))
    tonight = await h.engine.standing.evening(DAY)
    assert (tonight.campaign, tonight.start) == (real.campaign, local(DAY, 21, 30))
    await h.engine.promote.cancel(h.actor(), real.campaign.id)
    assert (await h.engine.standing.evening(DAY)).campaign is None
