"""`python -m bot demo` tells the story players see: each text once and rendered, one line per outcome.

With `--serve` the world stays up afterwards: its page is signed in to through the Discord emulator,
the Signal codes the bot sends are printed, and Ctrl-C ends it cleanly. One demo run serves every test
here (it takes about a minute).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import IO

import pytest
import requests
import yarl

from bot.api.page import CONTENT_SECURITY_POLICY
from bot.sandbox.stack import PROJECT_ROOT
from tests.e2e.e2e_helpers import CliResult

JOBS = ("reminder", "start ping", "follow-up")
DEMO_TIMEOUT = 150.0
SERVING = re.compile(r"== the world keeps running: open (http://127\.0\.0\.1:\d+/)")
XHR = {"X-Requested-With": "XMLHttpRequest"}


class ServedDemo:
    """`python -m bot demo --serve` as a child process, its output read as it comes."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RALLYPOINT_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "demo", "--serve"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, sink in ((self.proc.stdout, self._lines.put), (self.proc.stderr, self.err.append)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        self.url = self.wait_for(SERVING, DEMO_TIMEOUT).group(1)
        self._served_at = len(self.out)

    @staticmethod
    def _pump(stream: IO[str], sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first line from now on that matches, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    break
                continue
            self.out.append(line)
            if found := pattern.search(line):
                return found
        raise AssertionError(f"no line matching {pattern.pattern!r}; stderr: {''.join(self.err)[-2000:]}")

    def transcript(self) -> str:
        """What the demo printed up to the point where it began to serve."""
        return "".join(self.out[: self._served_at])

    def errors(self) -> str:
        return "".join(self.err)

    def stop(self) -> CliResult:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        while not self._lines.empty():
            self.out.append(self._lines.get())
        return CliResult(code, "".join(self.out), self.errors())


@pytest.fixture(scope="module")
def demo() -> Iterator[ServedDemo]:
    served = ServedDemo()
    try:
        yield served
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


def section(out: str, title: str) -> list[str]:
    """The indented lines under the `-- title…` heading."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"-- {title}"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("   "):
            break
        body.append(line)
    return body


def test_the_demo_tells_the_evening_once_and_plainly(demo: ServedDemo) -> None:
    out = demo.transcript()
    everything = out + demo.errors()
    for noise in ("Traceback", "PyNaCl", "davey", "voice will NOT be supported", "<t:"):
        assert noise not in everything, noise
    assert sum("compressed" in line for line in out.splitlines()) == 1

    # Nobody schedules the evening: a standing session decides at its minute, and its title is in every text.
    standing = section(out, "waiting for")
    assert "enough players are up for it, so the bot created campaign 1 by itself" in standing[0]
    decided = r"Last decision \(\d{4}-\d\d-\d\d\): campaign 1 created \(\d+ of 5\)"
    assert any(re.search(decided, line) for line in standing)
    assert any(re.search(r"Next: \d{4}-\d\d-\d\d, decided at .* \(in 7 days\)", line) for line in standing)

    received = section(out, "what the players received")
    texts = [line.split(": ", 1)[1] for line in received if line.strip().startswith(tuple(f"{j}: “" for j in JOBS))]
    assert texts and len(texts) == len(set(texts))  # each text once
    assert all("Raid night" in text for text in texts), texts
    for job in JOBS:
        assert any(line.strip().startswith(f"{job}: “") for line in received), job
    readers = [r for line in received if line.strip().startswith("to ") for r in line.strip()[3:].split(", ")]
    assert "Ana (Telegram)" in readers and "Bor (Signal)" in readers and "Cene (Discord)" in readers
    assert any("the summary in #game-night" in line for line in received)

    outcomes = section(out, "outcomes of campaign")
    pairs: Counter[tuple[str, str]] = Counter()
    for line in outcomes:
        found = re.match(r"\s+(\S.*?)\s{2,}(reminder|start ping|follow-up|summary)\s+(\S.*)$", line)
        if found:
            pairs[(found.group(1), found.group(2))] += 1
    assert pairs and max(pairs.values()) == 1  # one line per outcome
    hugo = [line for line in outcomes if line.strip().startswith("Hugo")]
    # Discord refuses Hugo once (50007); Rallypoint remembers it and skips Discord for him afterwards;
    # his start ping never went out, so no follow-up says "we started" to him.
    assert len(hugo) == 3 and "failed: discord: cannot send messages to this user (50007)" in hugo[0]
    assert hugo[1].endswith("skipped: dm_closed")
    assert hugo[2].endswith("skipped: no follow-up: their start ping was not sent")
    # Consent is opt-in: Mia never said yes and is left out, and the preview says so.
    assert not any(line.strip().startswith("Mia") for line in outcomes)
    assert any("Left out: 1 player" in line for line in out.splitlines())
    # One answer on each channel, from the message itself: confirmed, and it changes what follows.
    answers = section(out, "the reminder goes out")
    assert [line.split()[0] for line in answers] == ["Ana", "Bor", "Luka"]
    assert "Telegram" in answers[0] and "Signal" in answers[1] and "Discord" in answers[2]
    assert all("→ “" in line for line in answers)
    luka = [re.split(r"\s{2,}", line.strip()) for line in outcomes if line.strip().startswith("Luka")]
    assert [outcome for _, _, outcome in luka] == ["sent on discord", "skipped: declined", "skipped: declined"]
    assert any(line.strip().endswith("follow-up   skipped: no follow-up: running late") for line in outcomes
               if line.strip().startswith("Bor"))
    assert any("Running late (1): Bor" in line for line in received)
    assert any("Can't tonight (1): Luka" in line for line in received)
    assert any("answers {'in': 1, 'late': 1, 'out': 1}" in line for line in out.splitlines())
    iva = [line for line in outcomes if line.strip().startswith("Iva")]
    assert all("sent on discord (after telegram: Forbidden: bot was blocked by the user)" in line for line in iva)


class MemberLinks(HTMLParser):
    """The emulator's sign-in page: each member's link, by the name it shows."""

    def __init__(self) -> None:
        super().__init__()
        self.by_name: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = dict(attrs)
        self._href = data.get("href") if tag == "a" and data.get("data-user-id") else None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.by_name[data] = self._href
            self._href = None


def sign_in(demo: ServedDemo, name: str) -> requests.Session:
    """A browser's sign-in: our /auth/login, the emulator's page, the member picked, our callback."""
    browser = requests.Session()
    page = browser.get(demo.url, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert 'data-login="on"' in page.text
    to_discord = browser.get(f"{demo.url}auth/login", allow_redirects=False, timeout=10)
    assert to_discord.status_code == 302
    chooser = browser.get(to_discord.headers["Location"], timeout=10)
    links = MemberLinks()
    links.feed(chooser.text)
    chosen = yarl.URL(to_discord.headers["Location"]).join(yarl.URL(links.by_name[name]))
    back = browser.get(str(chosen), allow_redirects=False, timeout=10)
    assert back.status_code == 302
    home = browser.get(back.headers["Location"], allow_redirects=False, timeout=10)
    assert (home.status_code, home.headers["Location"]) == (302, "/")
    return browser


def test_the_served_page_signs_in_the_promoter_and_any_player(demo: ServedDemo) -> None:
    promoter = sign_in(demo, "Rally (promoter)")
    access = promoter.get(f"{demo.url}api/availability/access", timeout=10).json()
    assert access["linked"] and access["can_promote"] and access["display_name"] == "Rally (promoter)"
    campaign = promoter.get(f"{demo.url}api/availability/promotions/campaign", timeout=10).json()["campaign"]
    assert campaign["status"] == "followup_sent"  # the rehearsal's evening, as the page shows it

    newcomer = sign_in(demo, "Mia")
    access = newcomer.get(f"{demo.url}api/availability/access", timeout=10).json()
    assert access["linked"] and not access["can_promote"] and access["display_name"] == "Mia"


def test_the_served_demo_prints_the_signal_codes_its_visitors_are_sent(demo: ServedDemo) -> None:
    visitor = sign_in(demo, "Eva")
    answer = visitor.post(
        f"{demo.url}api/availability/link-token", json={"channel": "signal", "address": "+386 40 555 123"},
        headers=XHR, timeout=10,
    )
    assert answer.status_code == 200, answer.text
    code = demo.wait_for(re.compile(r"Signal to \+38640555123: .*\b(\d{6})\b"), 10).group(1)
    confirmed = visitor.post(
        f"{demo.url}api/availability/link-confirm", json={"channel": "signal", "code": code}, headers=XHR, timeout=10
    )
    assert confirmed.json() == {"linked": True}


def test_ctrl_c_ends_the_served_demo(demo: ServedDemo) -> None:
    result = demo.stop()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.rstrip().splitlines()[-1].startswith("== done in")
