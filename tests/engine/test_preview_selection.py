"""A preview's selection (who would be promoted, who is left out) is read once per change of the database."""

from __future__ import annotations

from datetime import date

import pytest

from services.models import PlayerStatus
from tests.support import PROMOTER_ID, Harness, local, make_harness

DAY = date(2026, 11, 24)


@pytest.fixture
async def h(tmp_path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    await harness.add_player(1, "Ana")
    yield harness
    await harness.engine.db.close()


def count_candidate_reads(h: Harness) -> list[date]:
    reads: list[date] = []
    store = h.engine.player_store
    read = store.candidates

    async def counted(day, statuses):  # type: ignore[no-untyped-def]
        reads.append(day)
        return await read(day, statuses)

    store.candidates = counted  # type: ignore[method-assign]
    return reads


async def test_previews_share_one_selection_until_something_changes(h: Harness) -> None:
    reads = count_candidate_reads(h)
    first = await h.engine.promote.preview(h.actor())
    again = await h.engine.promote.preview(h.actor())
    assert [r.player.display_name for r in again.recipients] == ["Ana"] == [
        r.player.display_name for r in first.recipients
    ]
    assert len(reads) == 1

    await h.add_player(2, "Bor")  # a write: the next preview reads again and sees Bor
    after = await h.engine.promote.preview(h.actor())
    assert [r.player.display_name for r in after.recipients] == ["Ana", "Bor"]
    assert len(reads) == 2

    # Other toggles are another selection; a MAYBE player shows only where MAYBE is included.
    await h.add_player(3, "Cene", status=PlayerStatus.MAYBE)
    wider = await h.engine.promote.preview(h.actor(), include_maybe=True)
    narrow = await h.engine.promote.preview(h.actor())
    assert "Cene" in [r.player.display_name for r in wider.recipients]
    assert "Cene" not in [r.player.display_name for r in narrow.recipients]
    assert len(reads) == 4


async def test_a_new_day_is_a_new_selection(h: Harness) -> None:
    reads = count_candidate_reads(h)
    await h.engine.promote.preview(h.actor())
    h.clock.set(local(date(2026, 11, 25), 18, 0))
    tomorrow = await h.engine.promote.preview(h.actor())
    assert reads == [DAY, date(2026, 11, 25)]
    assert tomorrow.recipients == ()  # Ana said LOOKING for the 24th only
