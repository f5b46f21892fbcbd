"""Rallypoint as a release installs it: the sdist and the wheel built from it, installed into a fresh
virtualenv away from the source tree, then `python -m bot --version` and `python -m bot migrate`.

Offline and quick: the wheel itself is installed with pip (`--no-deps`), and the fresh environment
borrows the already installed dependencies (discord.py, aiohttp, …) from the project's own virtualenv
through a path file, after its own site-packages. What this checks is our package: that the sdist holds
everything the wheel needs and the wheel everything that runs (the migrations above all).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

from bot.sandbox.stack import PROJECT_ROOT
from storage.db import load_migrations

RELEASED_FILES = ("pyproject.toml", "README.md", "LICENSE")
PACKAGES = ("bot", "cogs", "services", "storage")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - our own tools
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def source_copy(into: Path) -> Path:
    """What a release is built from, copied (a build writes build/ and *.egg-info beside its sources)."""
    root = Path(PROJECT_ROOT)
    for name in RELEASED_FILES:
        shutil.copy2(root / name, into / name)
    for name in PACKAGES:
        shutil.copytree(root / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def test_the_built_wheel_installs_and_migrates_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    source = source_copy(Path(tempfile.mkdtemp(dir=tmp_path)))
    # --no-isolation: build with the setuptools already installed instead of downloading one. The
    # wheel is built from the sdist, as a release is: a file missing from the sdist fails here.
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir", dist, ".", cwd=source)
    [wheel] = dist.glob("rallypoint-*.whl")
    [sdist] = dist.glob("rallypoint-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for migration in load_migrations():
        assert f"storage/migrations/{migration.name}" in names
    assert any(name.endswith("/licenses/LICENSE") for name in names)
    assert not any(name.startswith("tests/") for name in names)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel,
        cwd=tmp_path)
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path)
                   .stdout.strip())
    # A plain path entry, after the venv's own: the .pth files in it (our editable install) stay inert.
    (purelib / "zz-borrowed-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RALLYPOINT_", "PYTHON"))}
    where = run(python, "-c", "import bot, storage.migrations; print(bot.__file__)", cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the installed copy, not the source tree
    version = run(python, "-m", "bot", "--version", cwd=tmp_path, env=env)
    assert version.stdout.strip() == f"rallypoint {sdist.name.removeprefix('rallypoint-').removesuffix('.tar.gz')}"

    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "data" / "rallypoint.sqlite3"}"\n', encoding="utf-8")
    migrated = run(python, "-m", "bot", "migrate", "--config", config, cwd=tmp_path, env=env)
    assert f"applied {len(load_migrations())} migration(s)" in migrated.stdout
    conn = sqlite3.connect(tmp_path / "data" / "rallypoint.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(load_migrations())
    conn.close()
