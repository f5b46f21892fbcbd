"""`python -m bench` (`make bench`): every benchmark module in sequence, each in its own process.

Each module prints its own figures (ratios against a baseline measured in the same run, plus the
absolute values); this prints a header per module and exits non-zero if any of them failed.
A module runs in a child process so that process-wide state (discord.py's endpoints, memory,
event loops) never leaks from one benchmark into the next.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

MODULES = (
    "bench.engine_bench",
    "bench.telegram_fanout",
    "bench.discord_fanout",
    "bench.e2e_campaign",
    "bench.discord_scale",
    "bench.process_footprint",
    "bench.slow_clients",
    "bench.api_load",  # optional: run when present
)
OPTIONAL = frozenset({"bench.api_load"})


def main(argv: list[str]) -> int:
    """Run the benchmarks named in argv (default: all), return the process exit code."""
    wanted = [m if m.startswith("bench.") else f"bench.{m}" for m in argv] or list(MODULES)
    env = {**os.environ, "PTB_TIMEDELTA": "1"}
    failed: list[str] = []
    ran = 0
    started = time.monotonic()
    for module in wanted:
        if importlib.util.find_spec(module) is None:
            if module in OPTIONAL:
                print(f"== {module}: not present, skipped\n", flush=True)
                continue
            print(f"== {module}: no such module", flush=True)
            failed.append(module)
            continue
        print(f"== {module}", flush=True)
        ran += 1
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, "-m", module], env=env)  # noqa: S603 - our own modules
        outcome = "ok" if code == 0 else f"FAILED (exit code {code})"
        print(f"== {module}: {outcome} in {time.monotonic() - t0:.0f} s\n", flush=True)
        if code != 0:
            failed.append(module)
    total = time.monotonic() - started
    if failed:
        print(f"benchmarks failed: {', '.join(failed)} (total {total:.0f} s)", file=sys.stderr)
        return 1
    print(f"all {ran} benchmark modules done in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
