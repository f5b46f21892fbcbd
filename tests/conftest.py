from __future__ import annotations

import os
from pathlib import Path

import pytest

# python-telegram-bot gives retry_after as a timedelta without a deprecation warning only with this.
os.environ.setdefault("PTB_TIMEDELTA", "1")

WEB_TESTS = Path(__file__).parent / "web"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last. Playwright's synchronous API keeps its event loop running in the main
    thread for the rest of the session (its fixture is session-wide), so an async test after them cannot
    start its own loop. pytest moves them forward when it groups tests by Playwright's browser parameter."""
    items.sort(key=lambda item: item.path.is_relative_to(WEB_TESTS))  # a stable sort keeps every other order
