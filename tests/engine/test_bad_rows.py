"""One bad stored row never sinks a job, and what would make a bad row is refused where it comes in."""

from __future__ import annotations

import logging
from datetime import time

import pytest

from services.errors import InvalidInput
from services.models import CampaignStatus, DeliveryStatus, JobStatus, QuietHours
from tests.engine.conftest import EVENING
from tests.support import Harness, opted_in

DAY = EVENING


@pytest.fixture
def h(evening: Harness) -> Harness:
    return evening  # 20:00 on DAY, the promoter known (tests/engine/conftest.py)


async def test_a_stored_timezone_that_no_longer_loads_falls_back_for_that_recipient(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = QuietHours(time(20, 30), time(23, 0))  # the whole evening, read in Ljubljana
    ana = await h.add_player(1, "Ana", prefs=opted_in(quiet_hours=quiet, timezone="America/New_York"))
    bor = await h.add_player(2, "Bor", prefs=opted_in(quiet_hours=quiet, timezone="America/New_York"))
    await h.add_player(3, "Cene")
    # tzdata dropped the zone after it was stored (or somebody edited the row by hand).
    async with h.engine.db.transaction() as tx:
        await tx.execute("UPDATE preferences SET timezone = 'Mars/Olympus_Mons' WHERE player_id = ?", (bor,))
    created = await h.engine.promote.create(h.actor())

    with caplog.at_level(logging.WARNING, logger="services.fanout"):
        await h.run_evening()

    jobs = await h.engine.campaign_store.jobs(created.campaign.id)
    assert {j.status for j in jobs} == {JobStatus.SENT}
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.FOLLOWUP_SENT
    assert len(h.discord.to("1")) == 3  # New York's afternoon: not quiet
    assert h.discord.to("2") == []  # quiet in the promotion timezone, the fallback
    assert len(h.discord.to("3")) == 3
    counts = await h.engine.campaign_store.delivery_counts(created.campaign.id)
    assert counts[DeliveryStatus.FAILED] == 0
    warnings = [r.getMessage() for r in caplog.records if "does not load" in r.getMessage()]
    assert warnings and all(f"player {bor}:" in w and "Europe/Ljubljana" in w for w in warnings)
    assert not any(f"player {ana}:" in w for w in warnings)


@pytest.mark.parametrize(("start", "end"), [(time(22, 0), time(22, 0)), (time(0, 0), time(0, 0))])
async def test_quiet_hours_whose_start_is_their_end_are_refused(h: Harness, start: time, end: time) -> None:
    ana = await h.add_player(1, "Ana", prefs=opted_in(quiet_hours=QuietHours(time(23, 0), time(7, 0))))
    before = await h.engine.player_store.preferences(ana)
    with pytest.raises(InvalidInput, match="start and an end that differ"):
        await h.engine.players.update_preferences(h.actor(1, "Ana"), quiet_hours=QuietHours(start, end))
    assert await h.engine.player_store.preferences(ana) == before
