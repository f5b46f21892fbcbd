"""Chromium for pytest-playwright (Debian's, never a downloaded one), the world it visits, and what every
page visit must respect: only this server and the emulator's sign-in page, only documented API calls, no
script errors or CSP violations, nothing wider than the screen. Screenshots go to artifacts/web/."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yarl
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, sync_playwright

from bot.api.oauth import OAUTH_PATHS
from bot.api.page import INDEX_PATH, STATIC_PREFIX
from bot.api.routes import OPERATIONS
from tests.web.world import World

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "web"
# The viewer sits in another timezone than the community (Europe/Ljubljana): the page must say both.
VIEWER_ZONE = "America/New_York"


@dataclass(frozen=True)
class Width:
    name: str
    width: int
    height: int


DESKTOP = Width("desktop", 1280, 900)
PHONE = Width("phone", 360, 740)
WIDTHS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """Debian's Chromium, headless; Playwright cannot download a browser of its own here."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package before the tests")
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    return {"executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="module")
def browser(browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    """Chromium for one module, not (as pytest-playwright's own) for the whole session.

    Playwright's synchronous API keeps an event loop running on the test thread while it is started;
    `make test` runs the suite on pytest-xdist workers, and an async test that a worker runs after
    the browser tests would otherwise find that loop and fail. Stopped with its module, it is gone.
    """
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**browser_type_launch_args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, browser_type_launch_args: dict[str, Any]) -> Iterator[World]:
    """One running bot with its emulators for all browser tests (each test signs in in a fresh context)."""
    started = World(tmp_path_factory.mktemp("web-world")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session", autouse=True)
def _fresh_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


def _documented(method: str, path: str) -> bool:
    for op in OPERATIONS:
        pattern = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(op.path))
        if op.method in (method, "GET" if method == "HEAD" else "") and re.fullmatch(pattern, path):
            return True
    return False


@dataclass
class Visit:
    """One browser context at one width, watched: requests, script errors, CSP violations, screenshots."""

    world: World
    width: Width
    context: BrowserContext
    page: Page
    shots: Path
    allowed_failures: set[str] = field(default_factory=set)  # paths whose error answers are expected
    problems: list[str] = field(default_factory=list)
    api_calls: list[tuple[str, str]] = field(default_factory=list)
    _count: int = 0

    def snap(self, state: str) -> Path:
        """Save a screenshot of the page in this state, after checking it fits the screen's width."""
        overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{state}: the page is {overflow}px wider than the {self.width.width}px screen"
        self._count += 1
        path = self.shots / f"{self._count:02d}-{state}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def on_request(self, request: Request) -> None:
        url = yarl.URL(request.url)
        ours = yarl.URL(self.world.url)
        discord = yarl.URL(self.world.stack.discord.oauth_authorize_url)
        if (url.host, url.port) == (discord.host, discord.port):
            if url.path != discord.path or not request.is_navigation_request():
                self.problems.append(f"the emulator was asked for {request.method} {url.path}")
            return
        if (url.scheme, url.host, url.port) != (ours.scheme, ours.host, ours.port):
            self.problems.append(f"a request left this server: {request.method} {request.url}")
            return
        path = url.path
        if path == INDEX_PATH or path.startswith(STATIC_PREFIX) or path in OAUTH_PATHS:
            return
        if not _documented(request.method, path):
            self.problems.append(f"an undocumented call: {request.method} {path}")
        self.api_calls.append((request.method, path))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = yarl.URL(message.location.get("url") or "/").path
        if message.text.startswith("Failed to load resource") and where in self.allowed_failures:
            return
        self.problems.append(f"console error at {where}: {message.text}")


class Visits:
    """The browser contexts of one test: each at its width, watched, closed after the test."""

    def __init__(self, browser: Browser, world: World, test_name: str) -> None:
        self.browser = browser
        self.world = world
        self.test_name = test_name
        self.opened: list[Visit] = []

    def open(self, width: Width, tab: str = "") -> Visit:
        """A fresh context (no cookies: signed out) at `width`; `tab` names it when a test opens two alike."""
        context = self.browser.new_context(
            viewport={"width": width.width, "height": width.height}, timezone_id=VIEWER_ZONE, locale="en-GB"
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        shots = ARTIFACTS / width.name / "-".join(filter(None, [self.test_name, tab]))
        shots.mkdir(parents=True, exist_ok=True)
        # Signed out, the page's first question (who am I?) is answered 401: expected, not a fault.
        watched = Visit(self.world, width, context, page, shots, allowed_failures={"/api/availability/access"})
        context.on("request", watched.on_request)
        page.on("console", watched.on_console)
        page.on("pageerror", lambda error: watched.problems.append(f"script error: {error}"))
        self.opened.append(watched)
        return watched

    def close(self) -> list[str]:
        """Close every context; answer what went wrong in any of them."""
        for opened in self.opened:
            opened.context.close()
        return [problem for opened in self.opened for problem in opened.problems]


@pytest.fixture
def visits(request: pytest.FixtureRequest, browser: Browser, world: World) -> Iterator[Visits]:
    opener = Visits(browser, world, request.node.originalname.removeprefix("test_"))
    try:
        yield opener
    finally:
        problems = opener.close()
    assert problems == []


@pytest.fixture
def visit(visits: Visits, width: Width) -> Visit:
    """One context at the test's `width`."""
    return visits.open(width)
