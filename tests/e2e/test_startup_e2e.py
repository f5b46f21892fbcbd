"""Start-up as an operator meets it: the real `python -m bot run|migrate|check-config` as child processes,
against the Discord emulator and against bad files.

Every refusal: exit code 2, the key in the last line, no traceback anywhere, done within 30 s; and
`check-config` refuses exactly what `run` refuses, with the same line. An unreachable Discord is not
a refusal: the bot waits it out, one log line per try.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.stack import GUILD_ID, PROJECT_ROOT, PROMOTER_ID, Member, SandboxStack, to_toml
from storage.db import latest_version, load_migrations
from tests.e2e.e2e_helpers import (
    BOT_START_TIMEOUT,
    PROMOTION,
    BotProcess,
    CliResult,
    run_cli,
    running,
    wait_until,
)

REFUSE_WITHIN = 30.0  # seconds: a refusal never hangs
Config = dict[str, dict[str, Any]]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[SandboxStack]:
    stack = SandboxStack(tmp_path, telegram_enabled=False, signal_enabled=False, promotion=PROMOTION)
    async with running(stack, [Member(PROMOTER_ID, "rally", nick="Rally", promoter=True)]):
        yield stack


def write(tmp_path: Path, config: Config, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(to_toml(config), encoding="utf-8")
    return path


def assert_refused(result: CliResult, key: str) -> str:
    """Exit code 2, no traceback, the last line names `key`; return that line."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("rallypoint: ") and key in last, output
    return last


# -- what only Discord can tell: run alone -----------------------------------------------------------


def rejected_token(config: Config, tmp_path: Path) -> None:
    config["discord"]["token"] = "MTIz.not-the-token.of-this-bot"


def invisible_guild(config: Config, tmp_path: Path) -> None:
    config["discord"]["guild_id"] = GUILD_ID + 999  # a guild the bot was never invited to


@pytest.mark.parametrize(
    ("break_config", "key"),
    [(rejected_token, "discord.token"), (invisible_guild, "discord.guild_id")],
    ids=["rejected token", "bot not in the guild"],
)
async def test_what_discord_refuses_stops_run_with_one_line(
    stack: SandboxStack, tmp_path: Path, break_config: Callable[[Config, Path], None], key: str
) -> None:
    config = stack.config()
    break_config(config, tmp_path)
    result = await run_cli("run", "--config", str(write(tmp_path, config)), timeout=REFUSE_WITHIN)
    line = assert_refused(result, key)
    assert config["discord"]["token"] not in result.stdout + result.stderr  # the secret stays out of it
    if key == "discord.guild_id":
        assert str(GUILD_ID + 999) in line and "applications.commands" in line


# -- what the shared checks refuse: run, migrate and check-config alike -------------------------------


def text_file(config: Config, tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    path.write_text("these are my notes, not a database\n", encoding="utf-8")
    config["storage"]["path"] = str(path)


def directory(config: Config, tmp_path: Path) -> None:
    path = tmp_path / "a-directory"
    path.mkdir()
    config["storage"]["path"] = str(path)


def newer_schema(config: Config, tmp_path: Path) -> None:
    path = tmp_path / "from-the-future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    config["storage"]["path"] = str(path)


def not_a_fernet_key(config: Config, tmp_path: Path) -> None:
    config["security"]["contact_encryption_key"] = "notakey"


def reminder_after_start(config: Config, tmp_path: Path) -> None:
    config["promotion"].update(reminder_time="21:30", start_time="21:00")


def no_token(config: Config, tmp_path: Path) -> None:
    config["discord"]["token"] = ""


STORAGE_CASES = [text_file, directory, newer_schema]
SHARED_CASES = [
    (text_file, "storage.path"),
    (directory, "storage.path"),
    (newer_schema, "storage.path"),
    (not_a_fernet_key, "security.contact_encryption_key"),
    (reminder_after_start, "promotion.start_time"),
    (no_token, "discord.token"),
]


@pytest.mark.parametrize(("break_config", "key"), SHARED_CASES, ids=[f.__name__ for f, _ in SHARED_CASES])
async def test_run_and_check_config_refuse_alike(
    stack: SandboxStack, tmp_path: Path, break_config: Callable[[Config, Path], None], key: str
) -> None:
    config = stack.config()
    break_config(config, tmp_path)
    path = str(write(tmp_path, config))
    run = await run_cli("run", "--config", path, timeout=REFUSE_WITHIN)
    check = await run_cli("check-config", "--config", path, timeout=REFUSE_WITHIN)
    assert assert_refused(run, key) == assert_refused(check, key)
    assert check.stdout == ""  # nothing half-printed before the refusal
    if break_config in STORAGE_CASES:
        migrate = await run_cli("migrate", "--config", path, timeout=REFUSE_WITHIN)
        assert_refused(migrate, key)
    if break_config is newer_schema:
        assert "newer than this Rallypoint" in run.stderr


async def test_the_untouched_example_is_refused_by_check_config_as_by_run() -> None:
    example = str(Path(PROJECT_ROOT) / "config.example.toml")
    run = await run_cli("run", "--config", example, timeout=REFUSE_WITHIN)
    check = await run_cli("check-config", "--config", example, timeout=REFUSE_WITHIN)
    assert assert_refused(run, "discord.token") == assert_refused(check, "discord.token")


@pytest.mark.parametrize("command", ["run", "check-config"])
async def test_an_environment_list_that_is_not_json_names_the_variable(
    stack: SandboxStack, tmp_path: Path, command: str
) -> None:
    path = str(write(tmp_path, stack.config()))
    result = await run_cli(
        command, "--config", path, env={"RALLYPOINT_DISCORD__ADMIN_IDS": "1,2"}, timeout=REFUSE_WITHIN
    )
    line = assert_refused(result, "RALLYPOINT_DISCORD__ADMIN_IDS")
    assert "[1, 2]" in line


async def test_a_bad_log_level_is_one_line() -> None:
    result = await run_cli("run", "--log-level", "verbose", timeout=REFUSE_WITHIN)
    assert_refused(result, "--log-level")
    assert len(result.stderr.strip().splitlines()) == 1


async def test_check_config_warns_about_what_runs_but_not_as_meant(stack: SandboxStack, tmp_path: Path) -> None:
    config = stack.config()
    config["discord"].update(promoter_role_ids=[], followup_channel_id=0)
    config["telegram"] = {"token": "123456:not-used", "api_base_url": "", "bot_username": ""}
    config["security"]["contact_encryption_key"] = ""
    path = str(write(tmp_path, config))
    result = await run_cli(
        "check-config", "--config", path, env={"RALLYPOINT_DISCROD__TOKEN": "typo"}, timeout=REFUSE_WITHIN
    )
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # the configuration, as JSON, alone on stdout
    warnings = [line.removeprefix("rallypoint: warning: ") for line in result.stderr.strip().splitlines()]
    assert len(warnings) == 4, warnings
    assert any(w.startswith("no promoters configured") and "Only promoters can do that" in w for w in warnings)
    assert any(w.startswith("discord.followup_channel_id is not set") for w in warnings)
    assert any(w.startswith("security.contact_encryption_key is not set") for w in warnings)
    assert any("RALLYPOINT_DISCROD__TOKEN" in w and "RALLYPOINT_DISCORD__TOKEN" in w for w in warnings)


# -- migrate and backup ------------------------------------------------------------------------------


async def test_migrate_copies_the_database_aside_before_applying(tmp_path: Path) -> None:
    db_path = tmp_path / "rallypoint.sqlite3"
    migrations = load_migrations()
    conn = sqlite3.connect(db_path)  # a database one migration behind, with a player in it
    for migration in migrations[:-1]:
        conn.executescript(migration.sql)
    conn.execute(f"PRAGMA user_version = {migrations[-2].version}")
    conn.execute(
        "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
        " VALUES (1, 42, 'Ana', '2026-01-01', '2026-01-01')"
    )
    conn.commit()
    conn.close()
    path = str(write(tmp_path, {"storage": {"path": str(db_path)}}))

    result = await run_cli("migrate", "--config", path)
    assert result.returncode == 0, result.stderr
    found = re.search(r"copied the database to (\S+) first", result.stdout)
    assert found, result.stdout
    copy = Path(found.group(1))
    assert copy.parent == tmp_path and copy.name.startswith(f"rallypoint.sqlite3.bak-{migrations[-2].version}-")
    assert f"applied 1 migration(s): {migrations[-1].name}" in result.stdout
    for path_, version in ((copy, migrations[-2].version), (db_path, migrations[-1].version)):
        conn = sqlite3.connect(path_)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == version
        assert conn.execute("SELECT display_name FROM players").fetchall() == [("Ana",)]
        conn.close()

    again = await run_cli("migrate", "--config", path)
    assert again.returncode == 0 and "none pending" in again.stdout and "copied" not in again.stdout


async def test_backup_writes_a_checked_copy(tmp_path: Path) -> None:
    db_path = tmp_path / "rallypoint.sqlite3"
    path = str(write(tmp_path, {"storage": {"path": str(db_path)}}))
    assert (await run_cli("migrate", "--config", path)).returncode == 0
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
        " VALUES (1, 42, 'Ana', '2026-01-01', '2026-01-01')"
    )
    conn.commit()
    # Left open on purpose: a running bot holds its connection (WAL mode) while the backup copies.
    try:
        backups = tmp_path / "backups"
        backups.mkdir()
        result = await run_cli("backup", str(backups), "--config", path)
        assert result.returncode == 0, result.stderr
        [copy] = backups.iterdir()
        assert f"backed up to {copy}" in result.stdout and "integrity ok" in result.stdout
        named = tmp_path / "monday.sqlite3"
        assert (await run_cli("backup", str(named), "--config", path)).returncode == 0
        for made in (copy, named):
            check = sqlite3.connect(made)
            assert check.execute("SELECT display_name FROM players").fetchall() == [("Ana",)]
            check.close()
    finally:
        conn.close()
    missing = str(write(tmp_path, {"storage": {"path": str(tmp_path / "none.sqlite3")}}, "missing.toml"))
    assert_refused(await run_cli("backup", str(tmp_path / "x.sqlite3"), "--config", missing), "storage.path")


# -- Discord down, then up ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_discord_is_waited_out_then_the_bot_connects(tmp_path: Path) -> None:
    stack = SandboxStack(tmp_path, telegram_enabled=False, signal_enabled=False, promotion=PROMOTION)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v10"
    config = {
        "discord": {
            "token": stack.discord.token,
            "guild_id": GUILD_ID,
            "promoter_ids": [PROMOTER_ID],
            "api_base_url": api,
            "gateway_url": f"ws://127.0.0.1:{port}/gateway",
        },
        "storage": {"path": str(tmp_path / "rallypoint.sqlite3")},
        "api": {"enabled": False},
    }
    log = tmp_path / "bot.log"
    bot = None
    try:
        async with asyncio.timeout(60):
            config_path = write(tmp_path, config)
            bot = BotProcess(await stack.spawn_bot_process(log, config_path), log)

            def tries() -> list[str]:
                return [line for line in bot.output().splitlines() if "cannot reach Discord" in line]

            await wait_until(lambda: len(tries()) >= 2, 20, "two tries to reach Discord")
            assert bot.proc.returncode is None  # still waiting, not exited
            await stack.start([Member(PROMOTER_ID, "rally", promoter=True)], discord_port=port)
            await stack.discord.wait_for_bot(timeout=BOT_START_TIMEOUT)
            await stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT)
            output = bot.output()
            assert "Traceback" not in output
            lines = tries()
            for n, line in enumerate(lines[:2], start=1):
                assert f"(try {n})" in line and api in line
            assert "retrying in 1 s (try 1)" in lines[0] and "retrying in 2 s (try 2)" in lines[1]  # backing off
            assert re.search(r"reached Discord at \S+ after \d+ tries", output)
    finally:
        if bot is not None:
            await bot.kill()
        await stack.stop()


async def test_a_rejected_telegram_token_stops_run_with_one_line(tmp_path: Path) -> None:
    stack = SandboxStack(tmp_path, promotion=PROMOTION)  # Telegram on
    async with running(stack, [Member(PROMOTER_ID, "rally", promoter=True)]):
        config = stack.config()
        config["telegram"]["token"] = "654321:revoked-in-botfather"
        result = await run_cli("run", "--config", str(write(tmp_path, config)), timeout=REFUSE_WITHIN)
    assert_refused(result, "telegram.token")
    assert "revoked-in-botfather" not in result.stdout + result.stderr
