from __future__ import annotations

import os
from pathlib import Path

import pytest

# python-telegram-bot gives retry_after as a timedelta without a deprecation warning only with this.
os.environ.setdefault("PTB_TIMEDELTA", "1")

BROWSER_TESTS = Path(__file__).parent / "web"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last. Playwright's synchronous API keeps its event loop marked as running in
    the main thread for as long as pytest-playwright's session-wide browser is open, so no asyncio test
    can run after the first browser test (pytest-asyncio refuses to start a loop inside a running one)."""
    items.sort(key=lambda item: item.path.is_relative_to(BROWSER_TESTS))
