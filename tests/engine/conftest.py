"""The evening most engine tests start from: 20:00 on a winter Tuesday, the promoter already known."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from tests.support import PROMOTER_ID, Harness, local, make_harness

EVENING = date(2026, 11, 24)  # Europe/Ljubljana is on CET


@pytest.fixture
async def evening(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await make_harness(tmp_path / "rp.sqlite3", local(EVENING, 20, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    yield harness
    await harness.engine.db.close()
