"""`python -m bot demo` tells the story players see: each text once and rendered, one line per outcome."""

from __future__ import annotations

import re
from collections import Counter

from tests.e2e.e2e_helpers import run_cli

JOBS = ("reminder", "start ping", "follow-up")


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


async def test_the_demo_tells_the_evening_once_and_plainly() -> None:
    result = await run_cli("demo", timeout=150)
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, out + err
    everything = out + err
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
    iva = [line for line in outcomes if line.strip().startswith("Iva")]
    assert all("sent on discord (after telegram: Forbidden: bot was blocked by the user)" in line for line in iva)
