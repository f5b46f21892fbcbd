"""The real bot as a child process (`python -m bot run`): killed with SIGKILL mid-fan-out, stopped with
SIGTERM, refused a bad config. Driven through the sandbox emulators on 127.0.0.1; what it stored is
read from its SQLite file with a connection of our own."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.stack import FOLLOWUP_CHANNEL_ID, GUILD_ID, PROMOTER_ID, Member, SandboxStack, to_toml
from services.contacts import ContactCipher
from tests.e2e.e2e_helpers import (
    BOT_START_TIMEOUT,
    PROMOTION,
    REMINDER_TEXT,
    START_TEXT,
    BotProcess,
    campaign_status,
    job,
    promotions,
    query,
    run_cli,
    running,
    say_and_opt_in,
    schedule_campaign,
    slash,
    texts_with,
    wait_until,
)

log = logging.getLogger(__name__)

BASE = 820_000_000_000_000_000
RECIPIENTS = [BASE + i for i in range(60)]
LEASE = float(PROMOTION["job_lease_seconds"])
# Seconds per REST call while the start ping fans out: ~16 sends in flight, so 60 take a second or so.
SLOW_DISCORD = 0.25
RESUME_GRACE = 3.0  # "resumed within job_lease_seconds plus a few seconds" of the kill
POST_MESSAGE = "POST /channels/{channel_id}/messages"  # the emulator's request counter for message posts


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[SandboxStack]:
    s = SandboxStack(tmp_path, promotion=PROMOTION)  # Discord's global limit on, as on Discord
    members = [Member(PROMOTER_ID, "rally", nick="Rally", promoter=True)]
    members += [Member(uid, f"player{i}", nick=f"Player {i}") for i, uid in enumerate(RECIPIENTS)]
    async with running(s, members):
        yield s


async def test_kill_9_mid_fanout_then_restart_resumes_without_double_pings(stack: SandboxStack, tmp_path: Path) -> None:
    db_path = tmp_path / "rallypoint.sqlite3"
    first = second = None
    try:
        async with asyncio.timeout(120):
            first = await BotProcess.spawn(stack, tmp_path / "bot-1.log")
            session = stack.discord.sessions()[-1].session_id
            await stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT)

            # Players exist once they use Rallypoint: everyone says they are looking for a game.
            for uid in RECIPIENTS:
                await say_and_opt_in(stack, uid)
            campaign_id = await schedule_campaign(stack, PROMOTER_ID)
            await wait_until(
                lambda: _job_matches(db_path, campaign_id, "send_reminder_2045", lambda r: r["status"] == "sent"),
                30,
                "the reminder",
                interval=0.05,
            )
            posts_before_start = stack.discord.requests[POST_MESSAGE]
            stack.discord.latency = SLOW_DISCORD

            # Kill -9 in the middle of the start ping, at the worst moment: Discord has received sends and
            # creates the messages, but the bot dies before it reads the answers. To get there for sure,
            # freeze the bot (SIGSTOP) while its first sends wait at Discord (SLOW_DISCORD s per request),
            # let them land, then SIGKILL it.
            def start_dms() -> int:
                return sum(len(texts_with(stack.discord.dm_messages(uid), START_TEXT)) for uid in RECIPIENTS)

            def sends_waiting_at_discord() -> bool:
                return stack.discord.requests[POST_MESSAGE] - posts_before_start > start_dms()

            await wait_until(sends_waiting_at_discord, 40, "the start ping", interval=0.002)
            first.proc.send_signal(signal.SIGSTOP)
            stack.discord.latency = 0.0
            await asyncio.sleep(SLOW_DISCORD + 0.25)
            reached_before_kill = start_dms()
            assert 0 < reached_before_kill < len(RECIPIENTS)
            await first.kill()
            killed_at = time.monotonic()
            assert first.proc.returncode == -signal.SIGKILL
            start_job = await job(db_path, campaign_id, "send_start_2100")
            assert (start_job["status"], start_job["attempts"]) == ("running", 1)
            in_flight = await claimed_players(db_path, campaign_id)
            landed_unrecorded = {uid for uid in in_flight if texts_with(stack.discord.dm_messages(uid), START_TEXT)}
            assert landed_unrecorded  # the sends that were waiting at Discord when the bot froze
            posts_before_restart = stack.discord.message_posts_total
            created_before_restart = messages_created(stack)

            second = await BotProcess.spawn(stack, tmp_path / "bot-2.log", previous_session=session)

            # The new process takes the abandoned job over once its lease has expired.
            def resumed(row: dict[str, Any]) -> bool:
                return row["attempts"] == 2 and row["lease_owner"] != start_job["lease_owner"]

            await wait_until(
                lambda: _job_matches(db_path, campaign_id, "send_start_2100", resumed),
                LEASE + 30,
                "the start job's takeover by the new process",
                interval=0.05,
            )
            resumed_after = time.monotonic() - killed_at
            assert resumed_after <= LEASE + RESUME_GRACE, f"resumed {resumed_after:.1f} s after the kill"
            await wait_until(
                lambda: _status_is(db_path, campaign_id, "followup_sent"), 30, "followup_sent", interval=0.1
            )

            # Discord shows exactly one of each message per recipient: resends were deduplicated by nonce.
            for uid in RECIPIENTS:
                dms = [m["content"] for m in stack.discord.dm_messages(uid)]
                assert promotions(dms) == (1, 1, 1) and len(dms) == 3, uid
            assert messages_created(stack) == 3 * len(RECIPIENTS) + 1  # and the summary
            # Each post of the new process created a message or was answered with the original (nonce
            # dedup); the deduplicated ones are exactly the resends of sends that had landed unrecorded.
            # (Counted from the restart on: a post the kill cuts off counts as a post without a message.)
            posts = stack.discord.message_posts_total - posts_before_restart
            created = messages_created(stack) - created_before_restart
            assert posts - created == len(landed_unrecorded) > 0
            assert "with the same nonce after an interrupted run" in second.output()

            # The ledger and the send log agree with what Discord shows: one final outcome per recipient
            # and message, all `sent` (an interrupted Discord send is resent, so never `unknown`).
            start_job = await job(db_path, campaign_id, "send_start_2100")
            assert (start_job["status"], start_job["attempts"]) == ("sent", 2)
            final = await query(
                db_path,
                "SELECT s.job_type, p.discord_user_id AS uid, s.status, s.provider_message_id FROM send_log s"
                " JOIN players p ON p.id = s.player_id WHERE s.campaign_id = ? AND s.final = 1",
                campaign_id,
            )
            for job_type in ("send_reminder_2045", "send_start_2100", "voice_check_2100"):
                rows = [r for r in final if r["job_type"] == job_type]
                assert sorted(int(r["uid"]) for r in rows) == RECIPIENTS, job_type
                assert Counter(r["status"] for r in rows) == {"sent": len(RECIPIENTS)}, job_type
            for row in (r for r in final if r["job_type"] == "send_start_2100"):
                [start_dm] = [m for m in stack.discord.dm_messages(int(row["uid"])) if START_TEXT in m["content"]]
                assert row["provider_message_id"] == start_dm["id"]
            assert await campaign_status(db_path, campaign_id) == "followup_sent"
            assert {r["state"] for r in await query(db_path, "SELECT state FROM ledger")} == {"sent"}
            # Each DM channel was opened once, by the first process: the second read them from storage.
            assert sorted(stack.discord.dm_channel_opens) == RECIPIENTS
            assert set(stack.discord.dm_channel_opens.values()) == {1}
            assert stack.discord.global_rate_limited == 0  # Discord's global limit was on throughout
            log.info(
                "killed after %d/%d start pings with %d in flight, %d of them landed; resumed after %.1f s",
                reached_before_kill,
                len(RECIPIENTS),
                len(in_flight),
                len(landed_unrecorded),
                resumed_after,
            )
    finally:
        for bot in (first, second):
            if bot is not None:
                await bot.kill()


def messages_created(stack: SandboxStack) -> int:
    """Messages the bot created by posting: DMs to the recipients and the summary."""
    dms = sum(len(stack.discord.dm_messages(uid)) for uid in RECIPIENTS)
    return dms + len(stack.discord.channel_messages(FOLLOWUP_CHANNEL_ID))


async def claimed_players(db_path: Path, campaign_id: int) -> set[int]:
    """Discord user ids whose start-ping ledger row is claimed with no outcome (a send in flight)."""
    rows = await query(
        db_path,
        "SELECT p.discord_user_id AS uid FROM ledger l JOIN players p ON p.id = l.player_id"
        " WHERE l.campaign_id = ? AND l.key LIKE 'PROMOTE:T0:%' AND l.state = 'claimed'",
        campaign_id,
    )
    return {int(r["uid"]) for r in rows}


async def _job_matches(db_path: Path, campaign_id: int, job_type: str, check: Callable[[dict[str, Any]], bool]) -> bool:
    return check(await job(db_path, campaign_id, job_type))


async def _status_is(db_path: Path, campaign_id: int, status: str) -> bool:
    return await campaign_status(db_path, campaign_id) == status


async def test_sigterm_shuts_down_gracefully(stack: SandboxStack, tmp_path: Path) -> None:
    bot = None
    try:
        async with asyncio.timeout(60):
            bot = await BotProcess.spawn(stack, tmp_path / "bot.log")
            await stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT)
            answer = await slash(stack, PROMOTER_ID, "available", status="LOOKING")
            assert "LOOKING" in answer["content"]

            bot.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                returncode = await bot.proc.wait()
            assert returncode == 0, bot.output()
            assert "shutting down" in bot.output()
            await wait_until(lambda: stack.discord.sessions() == [], 5, "the gateway session to close")
    finally:
        if bot is not None:
            await bot.kill()


async def test_bad_config_exits_2_naming_the_key_and_check_config_masks_secrets(tmp_path: Path) -> None:
    secrets = {
        "discord": "MTIzNDU2Nzg5.discord-secret-token",
        "oauth": "oauth-client-secret-value",
        "telegram": "987654:telegram-secret-token",
        "key": ContactCipher.generate_key(),  # check-config, like run, refuses a key that is not a Fernet key
        "service": "service-token-for-the-website",
        "env": "env-override-secret-token",
    }
    config = {
        "discord": {
            "token": secrets["discord"],
            "guild_id": GUILD_ID,
            "oauth_client_secret": secrets["oauth"],
        },
        "promotion": {"timezone": "Europe/Ljubljana"},
        "storage": {"path": str(tmp_path / "rp.sqlite3")},
        "api": {"enabled": False, "service_tokens": [secrets["service"]]},
        "telegram": {"token": secrets["telegram"]},
        "security": {"contact_encryption_key": secrets["key"]},
    }
    async with asyncio.timeout(60):
        bad = tmp_path / "bad.toml"
        bad.write_text(to_toml({**config, "promotion": {"timezone": "Mars/Olympus"}}), encoding="utf-8")
        result = await run_cli("run", "--config", str(bad))
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("rallypoint: invalid config key promotion.timezone")
        assert "Mars/Olympus" in line
        assert not (tmp_path / "rp.sqlite3").exists()  # refused before touching storage

        good = tmp_path / "good.toml"
        good.write_text(to_toml(config), encoding="utf-8")
        result = await run_cli("check-config", "--config", str(good), env={"RALLYPOINT_SIGNAL__NUMBER": "+38640123456"})
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["discord"]["guild_id"] == GUILD_ID and shown["signal"]["number"] == "+38640123456"
        assert shown["discord"]["token"] == shown["telegram"]["token"] == "********"
        assert shown["security"]["contact_encryption_key"] == "********"
        for secret in secrets.values():
            assert secret not in result.stdout and secret not in result.stderr

        result = await run_cli("check-config", "--config", str(good), env={"RALLYPOINT_DISCORD__TOKEN": secrets["env"]})
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["discord"]["token"] == "********"
        assert secrets["env"] not in result.stdout + result.stderr


async def test_outcomes_are_recorded_while_another_send_is_still_slow(stack: SandboxStack, tmp_path: Path) -> None:
    db_path = tmp_path / "rallypoint.sqlite3"
    players = RECIPIENTS[:16]  # one window of sends (promotion.send_concurrency)
    bot = None
    try:
        async with asyncio.timeout(60):
            bot = await BotProcess.spawn(stack, tmp_path / "bot.log")
            await stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT)
            for uid in players:
                await say_and_opt_in(stack, uid)
            await schedule_campaign(stack, PROMOTER_ID)
            # The reminder's first post is rate limited for 5 s (discord.py waits it out in the send).
            stack.discord.rate_limit_next(1, 5.0)

            def reminded() -> list[int]:
                return [uid for uid in players if texts_with(stack.discord.dm_messages(uid), REMINDER_TEXT)]

            await wait_until(lambda: len(reminded()) == len(players) - 1, 30, "the fast reminders")
            delivered = reminded()

            async def recorded() -> bool:
                rows = await query(
                    db_path,
                    "SELECT p.discord_user_id AS uid, l.state FROM ledger l JOIN players p ON p.id = l.player_id"
                    " WHERE l.key LIKE 'PROMOTE:T-15:%'",
                )
                states = {int(r["uid"]): r["state"] for r in rows}
                return all(states.get(uid) == "sent" for uid in delivered)

            # Well inside the 5 s the rate-limited send is held: outcomes are recorded every 50 ms.
            await wait_until(recorded, 3, "the delivered reminders recorded as sent")
            assert stack.discord.message_posts_total == len(players)  # the rate-limited one is still waiting
    finally:
        if bot is not None:
            await bot.kill()
