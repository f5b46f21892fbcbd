"""The whole offline world on loopback: the three emulators plus a config that points the bot at them.

Used by `python -m bot demo` and by the end-to-end tests, which run the real bot either in this
process (`start_bot_in_process`) or as a child process that can be killed (`spawn_bot_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.sandbox.discord_emulator import DiscordEmulator
from bot.sandbox.signal_emulator import SignalEmulator
from bot.sandbox.telegram_emulator import TelegramEmulator
from services.contacts import ContactCipher

GUILD_ID = 900_000_000_000_000_001
GENERAL_CHANNEL_ID = 900_000_000_000_000_010
FOLLOWUP_CHANNEL_ID = 900_000_000_000_000_011
VOICE_CHANNEL_ID = 900_000_000_000_000_020
AFK_VOICE_CHANNEL_ID = 900_000_000_000_000_021
PROMOTER_ROLE_ID = 900_000_000_000_000_100
PROMOTER_ID = 800_000_000_000_000_001
TELEGRAM_TOKEN = "123456:sandbox"
SERVICE_TOKEN = "sandbox-service-token"  # the website backend's bearer token in the sandbox
SIGNAL_BOT_NUMBER = "+15550000001"
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
# An evening compressed into seconds: times already past when a campaign is scheduled move to now + 10 s
# (reminder) and now + 20 s (start). The start must come after the reminder; in the one minute after
# midnight local time the start waits for 00:01.
COMPRESSED_EVENING: dict[str, Any] = {"reminder_time": "00:00", "start_time": "00:01"}


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    username: str
    nick: str | None = None
    promoter: bool = False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for a server whose address must be known before it starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class SandboxStack:
    """The emulators and the bot's configuration against them.

    With `login`, the bot's page can be signed in to: Discord OAuth is configured against the Discord
    emulator's authorize page, so the API listens on a port chosen up front (the redirect URI names it).
    """

    workdir: Path
    telegram_enabled: bool = True
    signal_enabled: bool = True
    promotion: dict[str, Any] = field(default_factory=dict)
    discord_settings: dict[str, Any] = field(default_factory=dict)  # more [discord] keys, e.g. its limits
    login: bool = False
    api_port: int = 0  # 0: any free port (with `login`: one picked now)
    discord: DiscordEmulator = field(init=False)
    telegram: TelegramEmulator = field(init=False)
    signal: SignalEmulator = field(init=False)
    encryption_key: str = field(default_factory=ContactCipher.generate_key)
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __post_init__(self) -> None:
        self.discord = DiscordEmulator()
        self.telegram = TelegramEmulator(token=TELEGRAM_TOKEN, bot_username="rallypoint_sandbox_bot")
        self.signal = SignalEmulator(number=SIGNAL_BOT_NUMBER)
        if self.login and not self.api_port:
            self.api_port = free_port()

    @property
    def page_url(self) -> str:
        """Where the bot serves its page (known before the start only with `login` or a set `api_port`)."""
        return f"http://127.0.0.1:{self.api_port}/"

    async def start(self, members: list[Member], *, discord_port: int = 0) -> None:
        """Build the world and start the emulators (Discord on `discord_port`; 0: any free port)."""
        d = self.discord
        d.add_guild(GUILD_ID, "Rallypoint Sandbox")
        d.add_role(GUILD_ID, PROMOTER_ROLE_ID, "Promoter")
        d.add_text_channel(GUILD_ID, GENERAL_CHANNEL_ID, "general")
        d.add_text_channel(GUILD_ID, FOLLOWUP_CHANNEL_ID, "game-night")
        d.add_voice_channel(GUILD_ID, VOICE_CHANNEL_ID, "Lobby")
        d.add_voice_channel(GUILD_ID, AFK_VOICE_CHANNEL_ID, "AFK")
        for m in members:
            d.add_member(
                GUILD_ID, m.user_id, m.username, nick=m.nick, roles=(PROMOTER_ROLE_ID,) if m.promoter else ()
            )
        await d.start(port=discord_port)
        if self.telegram_enabled:
            await self.telegram.start()
        if self.signal_enabled:
            await self.signal.start()

    async def stop(self) -> None:
        for emulator in (self.signal, self.telegram, self.discord):
            with contextlib.suppress(Exception):
                await emulator.stop()

    def config(self) -> dict[str, dict[str, Any]]:
        promotion = {
            "timezone": "Europe/Ljubljana",
            "voice_check_delay_seconds": 10,
            "job_lease_seconds": 10,
        }
        promotion.update(self.promotion)
        return {
            "discord": {
                "token": self.discord.token,
                "guild_id": GUILD_ID,
                "promoter_role_ids": [PROMOTER_ROLE_ID],
                "followup_channel_id": FOLLOWUP_CHANNEL_ID,
                "voice_channel_ids": [VOICE_CHANNEL_ID],
                "api_base_url": self.discord.api_base_url,
                "gateway_url": self.discord.gateway_url,
                **(self._login_settings() if self.login else {}),
                **self.discord_settings,
            },
            "promotion": promotion,
            "storage": {"path": str(self.workdir / "rallypoint.sqlite3")},
            "api": {"enabled": True, "host": "127.0.0.1", "port": self.api_port, "service_tokens": [SERVICE_TOKEN]},
            "telegram": {
                "token": TELEGRAM_TOKEN if self.telegram_enabled else "",
                "api_base_url": self.telegram.base_url if self.telegram_enabled else "",
                "bot_username": "rallypoint_sandbox_bot",
            },
            "signal": {
                "api_url": self.signal.api_url if self.signal_enabled else "",
                "number": SIGNAL_BOT_NUMBER if self.signal_enabled else "",
            },
            "security": {
                "contact_encryption_key": self.encryption_key,
                "session_secret": self.session_secret if self.login else "",
            },
        }

    def _login_settings(self) -> dict[str, str]:
        return {
            "oauth_client_id": self.discord.oauth_client_id,
            "oauth_client_secret": self.discord.oauth_client_secret,
            "oauth_redirect_uri": f"{self.page_url}auth/callback",
        }

    def settings(self) -> Settings:
        return load_settings(None, **self.config())

    def write_config(self) -> Path:
        path = self.workdir / "config.toml"
        path.write_text(to_toml(self.config()), encoding="utf-8")
        return path

    async def spawn_bot_process(self, log_path: Path, config: Path | None = None) -> asyncio.subprocess.Process:
        """Start `python -m bot run` on `config` (default: this stack's), as a process a test may kill -9."""
        config = config or self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RALLYPOINT_")}
        env["PTB_TIMEDELTA"] = "1"
        log = log_path.open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(config),
                stdout=log,
                stderr=log,
                env=env,
                cwd=PROJECT_ROOT,
            )
        finally:
            log.close()


def to_toml(config: dict[str, dict[str, Any]]) -> str:
    """Write the flat two-level config as TOML (strings, ints, bools and lists of them)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    lines: list[str] = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value(v)}" for key, v in values.items()]
        lines.append("")
    return "\n".join(lines)
