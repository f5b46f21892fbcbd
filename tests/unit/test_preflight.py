"""What `run` and `check-config` both check before connecting (bot/preflight.py), over real files."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.preflight import check_run
from services.contacts import ContactCipher
from storage.db import Database

KEY = ContactCipher.generate_key()
RUNNABLE: dict[str, dict[str, Any]] = {
    "discord": {"token": "a-token", "guild_id": 1, "promoter_ids": [2], "followup_channel_id": 3},
    "api": {"service_tokens": ["t"]},
}


def settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    merged = {name: dict(values) for name, values in RUNNABLE.items()}
    for name, values in sections.items():
        merged[name] = {**merged.get(name, {}), **values}
    merged.setdefault("storage", {"path": str(tmp_path / "rp.sqlite3")})
    return load_settings(None, **merged)


def test_a_runnable_configuration_has_no_warnings(tmp_path: Path) -> None:
    assert check_run(settings(tmp_path), {}) == []


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"discord": {"token": ""}}, "discord.token"),
        ({"discord": {"guild_id": 0}}, "discord.guild_id"),
    ],
)
def test_what_run_cannot_start_without(tmp_path: Path, sections: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^invalid config key {re.escape(key)}:"):
        check_run(settings(tmp_path, **sections), {})


@pytest.mark.parametrize(
    ("sections", "starts"),
    [
        ({"discord": {"promoter_ids": []}}, "no promoters configured"),
        ({"discord": {"followup_channel_id": 0}}, "discord.followup_channel_id is not set"),
        ({"telegram": {"token": "1:x"}}, "security.contact_encryption_key is not set"),
        ({"signal": {"api_url": "http://127.0.0.1:8081", "number": "+38640123456"}},
         "security.contact_encryption_key is not set"),
        ({"signal": {"api_url": "http://127.0.0.1:8081"}}, "signal.api_url and signal.number are both needed"),
        ({"signal": {"number": "+38640123456"}}, "signal.api_url and signal.number are both needed"),
        ({"discord": {"oauth_client_id": "1"}}, "the website login needs"),
        ({"api": {"service_tokens": []}}, "api.service_tokens is empty"),
    ],
)
def test_each_warning(tmp_path: Path, sections: dict[str, Any], starts: str) -> None:
    [warning] = check_run(settings(tmp_path, **sections), {})
    assert warning.startswith(starts), warning


def test_no_warning_when_things_are_off_on_purpose(tmp_path: Path) -> None:
    quiet = settings(tmp_path, api={"enabled": False, "service_tokens": []}, security={"contact_encryption_key": KEY})
    assert check_run(quiet, {}) == []
    assert check_run(settings(tmp_path, api={"metrics": False, "service_tokens": []}), {}) == []


def test_unknown_environment_variables_are_warnings(tmp_path: Path) -> None:
    [warning] = check_run(settings(tmp_path), {"RALLYPOINT_DISCROD__TOKEN": "x", "HOME": "/root"})
    assert "RALLYPOINT_DISCROD__TOKEN" in warning


async def test_players_preferring_a_channel_this_server_lacks(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "rp.sqlite3")
    await db.close()
    conn = sqlite3.connect(tmp_path / "rp.sqlite3")
    for i, channel in enumerate(["telegram", "telegram", "signal", "discord", "any"], start=1):
        conn.execute(
            "INSERT INTO players (id, discord_user_id, display_name, created_at, updated_at)"
            " VALUES (?, ?, ?, 't', 't')",
            (i, 100 + i, f"P{i}"),
        )
        conn.execute(
            "INSERT INTO preferences (player_id, preferred_channel, updated_at) VALUES (?, ?, 't')", (i, channel)
        )
    conn.commit()
    conn.close()
    warnings = check_run(settings(tmp_path), {})
    assert warnings == [
        "2 player(s) prefer Telegram, which is not configured here: they are reached on their next channel",
        "1 player(s) prefer Signal, which is not configured here: they are reached on their next channel",
    ]
    configured = settings(
        tmp_path,
        telegram={"token": "1:x"},
        signal={"api_url": "http://127.0.0.1:8081", "number": "+38640123456"},
        security={"contact_encryption_key": KEY},
    )
    assert check_run(configured, {}) == []


async def test_a_promoter_tier_in_the_database_counts_as_a_promoter(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "rp.sqlite3")
    await db.close()
    conn = sqlite3.connect(tmp_path / "rp.sqlite3")
    conn.execute("INSERT INTO permissions VALUES (42, 'admin', 't')")
    conn.commit()
    conn.close()
    assert check_run(settings(tmp_path, discord={"promoter_ids": []}), {}) == []


@pytest.mark.parametrize("kind", ["directory", "text", "future", "under a file"])
def test_a_storage_path_that_cannot_serve_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "rp.sqlite3"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello", encoding="utf-8")
    elif kind == "future":
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 999")
        conn.close()
    else:
        (tmp_path / "file").write_text("", encoding="utf-8")
        path = tmp_path / "file" / "deeper" / "rp.sqlite3"
    with pytest.raises(ConfigError, match=r"^invalid config key storage\.path: "):
        check_run(settings(tmp_path, storage={"path": str(path)}), {})


def test_checking_never_creates_the_database_nor_its_side_files(tmp_path: Path) -> None:
    check_run(settings(tmp_path, storage={"path": str(tmp_path / "new" / "rp.sqlite3")}), {})
    assert not (tmp_path / "new").exists()
