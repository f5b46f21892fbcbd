"""Midnight: `/promote status` and `/promote cancel` without a date reach the campaign still running."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.errors import NotFound
from services.models import CampaignStatus, JobStatus, PermissionTier
from tests.support import Harness, local, make_harness

DAY = date(2026, 11, 24)
NEXT = DAY + timedelta(days=1)
OTHER_PROMOTER = 2000


@pytest.fixture
async def h(tmp_path):
    # 23:59:40: the configured times are past, so the jobs run at 23:59:50, 00:00:00 and 00:00:30.
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 23, 59, 40))
    await harness.add_player(1000, "Promoter", status=None)
    await harness.add_player(1, "Ana")
    yield harness
    await harness.engine.db.close()


# (case, what has run of the 23:59:40 campaign, when we look, whether "no date" reaches it)
CASES = [
    ("nothing ran yet", None, local(NEXT, 0, 0, 5), True),
    ("the reminder ran, the start is due", local(DAY, 23, 59, 55), local(NEXT, 0, 0, 5), True),
    ("the start ran, the voice check is due", local(NEXT, 0, 0, 10), local(NEXT, 0, 0, 20), True),
    ("the evening is over", local(NEXT, 0, 5), local(NEXT, 0, 10), False),
    # Left pending while the bot was down for two days: stale, not "tonight's".
    ("two days later, never run", None, local(NEXT + timedelta(days=1), 0, 0, 5), False),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("case", "ran_until", "now", "reached"), CASES, ids=IDS)
async def test_status_without_a_date(h: Harness, case, ran_until, now, reached) -> None:
    created = await h.engine.promote.create(h.actor())
    assert created.campaign.campaign_date == DAY
    if ran_until is not None:
        await h.engine.dispatcher.run_until(ran_until)
    h.clock.set(now)

    view = await h.engine.promote.status(h.actor(1, "Ana"))

    assert (view is not None and view.campaign.id == created.campaign.id) is reached
    dated = await h.engine.promote.status(h.actor(1, "Ana"), DAY)  # a date always names its campaign
    assert dated is not None and dated.campaign.id == created.campaign.id


@pytest.mark.parametrize(("case", "ran_until", "now", "reached"), CASES, ids=IDS)
async def test_cancel_without_a_date(h: Harness, case, ran_until, now, reached) -> None:
    created = await h.engine.promote.create(h.actor())
    if ran_until is not None:
        await h.engine.dispatcher.run_until(ran_until)
    h.clock.set(now)
    if not reached:
        with pytest.raises(NotFound):
            await h.engine.promote.cancel(h.actor())
        return

    view = await h.engine.promote.cancel(h.actor())

    assert view.campaign.id == created.campaign.id
    assert view.campaign.status is CampaignStatus.CANCELLED
    assert JobStatus.PENDING not in {j.status for j in view.jobs}
    before = len(h.discord.sent)
    await h.run_evening()
    assert len(h.discord.sent) == before  # nothing went out after the cancel


async def test_yesterdays_running_campaign_comes_before_a_newer_dry_run(h: Harness) -> None:
    late = await h.engine.promote.create(h.actor())  # 23:59:40, runs past midnight
    h.clock.set(local(NEXT, 0, 0, 5))
    await h.add_player(OTHER_PROMOTER, "Other", status=None)
    await h.engine.player_store.set_tier(OTHER_PROMOTER, PermissionTier.ADMIN, h.clock.now())
    rehearsal = await h.engine.promote.create(h.actor(OTHER_PROMOTER, "Other"), dry_run=True)
    assert rehearsal.campaign.campaign_date == NEXT

    view = await h.engine.promote.status(h.actor(1, "Ana"))
    assert view is not None and view.campaign.id == late.campaign.id  # a real campaign before a dry run
    # The other promoter's cancel reaches their own running campaign first.
    cancelled = await h.engine.promote.cancel(h.actor(OTHER_PROMOTER, "Other"))
    assert cancelled.campaign.id == rehearsal.campaign.id
