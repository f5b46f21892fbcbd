"""What the end-to-end tests share: a compressed evening, user actions that wait for the bot's answer,
bounded waits, and read-only looks at the bot's SQLite file from outside the bot."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import discord.gateway
import discord.http

from bot.sandbox.stack import COMPRESSED_EVENING, GUILD_ID, PROJECT_ROOT, Member, SandboxStack
from cogs.availability import CONSENT_YES

T = TypeVar("T")

# Past times shift to now + 10 s / now + 20 s (the schedule rule): a whole campaign takes ~25 s.
PROMOTION: dict[str, Any] = {
    **COMPRESSED_EVENING,
    "voice_check_delay_seconds": 3,
    "job_lease_seconds": 5,
}
ANSWER_TIMEOUT = 10.0  # seconds for the bot to answer one interaction
BOT_START_TIMEOUT = 30.0  # connect, identify and sync commands (a fresh process imports discord.py first)

REMINDER_TEXT = "kicks off in"
START_TEXT = "starting now"
FOLLOWUP_TEXT = "not in voice yet"


async def wait_until(
    predicate: Callable[[], T | Awaitable[T | None] | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.01,
) -> T:
    """Return the predicate's first value that is not None (or False); raise TimeoutError naming `what`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = predicate()
                if isinstance(value, Awaitable):
                    value = await value
                if value is not None and value is not False:
                    return value
                await asyncio.sleep(interval)
    except TimeoutError:
        raise TimeoutError(f"{what} did not happen within {timeout:g} s") from None


@contextlib.asynccontextmanager
async def running(stack: SandboxStack, members: list[Member]) -> AsyncIterator[SandboxStack]:
    """The stack's emulators serving `members`, started and stopped within bounds."""
    async with asyncio.timeout(10):
        await stack.start(members)
    try:
        yield stack
    finally:
        async with asyncio.timeout(10):
            await stack.stop()


# -- what users do -------------------------------------------------------------------------------


async def slash(
    stack: SandboxStack, user_id: int, command: str, *, guild_id: int | None = GUILD_ID, **options: Any
) -> dict[str, Any]:
    """Run a slash command as a user and return the message they finally see."""
    record = await stack.discord.invoke_slash(guild_id, user_id, command, options)
    return await record.wait_message(timeout=ANSWER_TIMEOUT)


async def click(stack: SandboxStack, user_id: int, message: dict[str, Any], custom_id: str) -> dict[str, Any]:
    """Press a button on a stored message; return the message the bot's answer touched."""
    record = await stack.discord.click_button(GUILD_ID, user_id, message, custom_id)
    await record.wait_response(timeout=ANSWER_TIMEOUT)
    answer = record.last_message()
    assert answer is not None, f"no visible answer to the click on {custom_id}"
    return answer


def custom_ids(message: dict[str, Any]) -> list[str]:
    """The custom ids of a message's buttons, row by row."""
    return [c["custom_id"] for row in message.get("components") or [] for c in row.get("components") or []]


async def say_and_opt_in(stack: SandboxStack, user_id: int, status: str = "LOOKING") -> dict[str, Any]:
    """Set a status with /available and, if the bot asks (consent is opt-in), tap "Ping me tonight"."""
    answer = await slash(stack, user_id, "available", status=status)
    if CONSENT_YES in custom_ids(answer):
        answer = await click(stack, user_id, answer, CONSENT_YES)
        assert answer["content"].startswith("Promotions are on"), answer["content"]
    return answer
async def schedule_campaign(stack: SandboxStack, promoter_id: int) -> int:
    """/promote schedule, then Confirm, as the promoter; return the new campaign's id."""
    asked = await slash(stack, promoter_id, "promote schedule")
    confirmed = await click(stack, promoter_id, asked, "rp:schedule:confirm")
    found = re.fullmatch(r"Campaign (\d+) scheduled", confirmed["embeds"][0]["title"])
    assert found, confirmed
    return int(found.group(1))


async def link_telegram(stack: SandboxStack, user_id: int, chat_id: int) -> None:
    """Link a Telegram chat the way a player does: /notify link telegram, then /start <token> in Telegram."""
    answer = await slash(stack, user_id, "notify link telegram")
    found = re.search(r"\?start=([A-Za-z0-9_-]+)", answer["content"])
    assert found, f"no Telegram deep link in {answer['content']!r}"
    stack.telegram.queue_message(chat_id, f"/start {found.group(1)}")
    await wait_until(
        lambda: any(m["text"].startswith("Linked to the Discord account") for m in stack.telegram.messages_to(chat_id)),
        ANSWER_TIMEOUT,
        f"the Telegram link confirmation to chat {chat_id}",
    )


async def link_signal(stack: SandboxStack, user_id: int, number: str) -> None:
    """Link a Signal number the way a player does: /notify link signal, then /notify verify with the code."""
    await slash(stack, user_id, "notify link signal", number=number)
    code = re.search(r"\b(\d{6})\b", (stack.signal.messages_to(number) or [""])[-1])
    assert code, f"no Signal code reached {number}"
    answer = await slash(stack, user_id, "notify verify", code=code.group(1))
    assert "linked" in (answer.get("content") or "").lower(), answer


# -- reading what the bot answered ---------------------------------------------------------------


def is_ephemeral(message: dict[str, Any]) -> bool:
    return bool(int(message.get("flags", 0)) & discord.MessageFlags.ephemeral.flag)


def message_text(message: dict[str, Any]) -> str:
    """Everything a reader sees in a message: content, embed titles, descriptions, fields, footers."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        for field in embed.get("fields") or []:
            parts += [field["name"], field["value"]]
        parts.append((embed.get("footer") or {}).get("text") or "")
    return "\n".join(p for p in parts if p)


def embed_field(message: dict[str, Any], name: str) -> str:
    """The value of the embed field called `name` (exactly one must exist)."""
    values = [f["value"] for e in message.get("embeds") or [] for f in e.get("fields") or [] if f["name"] == name]
    assert len(values) == 1, f"expected one field {name!r} in {message_text(message)!r}"
    return str(values[0])


def board(message: dict[str, Any]) -> dict[str, tuple[int, list[str]]]:
    """{"Looking": (count, names), "Available": ..., "Maybe": ..., "Not Playing": ...} from a board embed."""
    rows = {}
    for field in message["embeds"][0]["fields"]:
        found = re.fullmatch(r"\S+ (.+) \((\d+)\)", field["name"])
        assert found, f"unexpected board field {field['name']!r}"
        names = [] if field["value"] == "—" else field["value"].split(", ")
        rows[found.group(1)] = (int(found.group(2)), names)
    return rows


def texts_with(messages: list[dict[str, Any]], needle: str) -> list[str]:
    return [m["content"] for m in messages if needle in (m.get("content") or "")]


def promotions(texts: list[str]) -> tuple[int, int, int]:
    """How many reminders, start pings and follow-ups are among these texts."""
    return (
        sum(REMINDER_TEXT in t for t in texts),
        sum(START_TEXT in t for t in texts),
        sum(FOLLOWUP_TEXT in t for t in texts),
    )


# -- the bot's database, read from outside ------------------------------------------------------


async def query(db_path: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Run a read-only query on the bot's SQLite file with a connection of our own."""
    async with aiosqlite.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
        db.row_factory = aiosqlite.Row
        async with db.execute(sql, params) as cursor:
            return [dict(row) for row in await cursor.fetchall()]


async def campaigns(db_path: Path) -> list[dict[str, Any]]:
    if not db_path.exists():
        return []
    return await query(db_path, "SELECT id, status, dry_run, recipient_count FROM campaigns ORDER BY id")


async def job(db_path: Path, campaign_id: int, job_type: str) -> dict[str, Any]:
    [row] = await query(
        db_path,
        "SELECT id, status, attempts, lease_owner, lease_until FROM jobs WHERE campaign_id = ? AND job_type = ?",
        campaign_id,
        job_type,
    )
    return row


async def campaign_status(db_path: Path, campaign_id: int) -> str:
    [row] = await query(db_path, "SELECT status FROM campaigns WHERE id = ?", campaign_id)
    return str(row["status"])


# -- processes and process-wide state ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0) -> CliResult:
    """Run `python -m bot ARGS` to completion (no RALLYPOINT_* variables from our environment leak in)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RALLYPOINT_")}
    clean.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean,
        cwd=PROJECT_ROOT,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


@contextlib.contextmanager
def discord_endpoints_restored() -> Iterator[None]:
    """The in-process bot points discord.py (process-wide) at the emulator; put it back afterwards."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


class BotProcess:
    """One `python -m bot run` child, with its own log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def spawn(cls, stack: SandboxStack, log: Path, *, previous_session: str | None = None) -> BotProcess:
        """Start the bot and wait until it is on the gateway (a fresh process identifies at once)."""
        proc = await stack.spawn_bot_process(log)
        bot = cls(proc, log)
        try:
            await stack.discord.wait_for_bot(timeout=BOT_START_TIMEOUT, other_than=previous_session)
        except TimeoutError:
            await bot.kill()
            raise AssertionError(f"the bot did not connect; its log:\n{bot.output()}") from None
        return bot

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.started
