"""Discord at scale, against the emulator's Discord: the bot as a child process (`python -m bot run`).

The emulator enforces Discord's global limit (50 requests/s, `"global": true` 429s past it) and counts
invalid requests; the bot keeps its own limits below them (services/delivery/discord_limits.py). One
campaign of 240 recipients (80 on Discord), an evening compressed to seconds (fault_helpers.py).
"""

from __future__ import annotations

import asyncio
import bisect
import re
from pathlib import Path

from bot.sandbox.stack import GUILD_ID
from services.fanout_plan import NO_START_PING
from services.models import Channel
from tests.e2e.fault_helpers import (
    MARKER,
    REMINDER,
    SEND_CONCURRENCY,
    START,
    VOICE_CHECK,
    FaultStack,
    fault_stack,
    wait_until,
)
from tests.e2e.test_faults_e2e import EVENING, assert_evening_done, wait_evening_done

RECIPIENTS = 240
OPENS = "POST /users/@me/channels"


def busiest_second(times: list[float]) -> int:
    ordered = sorted(times)
    return max((bisect.bisect_right(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def discord_players(stack: FaultStack) -> list[int]:
    """The Discord user ids of the players who are reached on Discord (a third of them), in order."""
    return [p.discord_id for p in stack.players if p.channel is Channel.DISCORD]


def everyone_else_reminded(stack: FaultStack) -> bool:
    received = stack.received(REMINDER)
    return all(sum(received[p.player_id].values()) == 1 for p in stack.players if p.channel is not Channel.DISCORD)


async def test_closed_dms_cost_one_request_then_none_until_the_player_is_back(tmp_path: Path) -> None:
    async with asyncio.timeout(150), fault_stack(tmp_path, RECIPIENTS) as stack:
        by_discord_id = {p.discord_id: p for p in stack.players}
        closed = [uid for uid in discord_players(stack) if not by_discord_id[uid].in_voice][:6]
        stack.discord.dm_closed_user_ids = set(closed)
        await stack.start_bot()
        campaign_id = await stack.schedule()
        await stack.reminder_due_in(campaign_id)
        await wait_until(lambda: stack.jobs(campaign_id)[REMINDER]["status"] == "sent", EVENING, "the reminder")
        after_reminder = {uid: stack.discord.requests_to_user(uid) for uid in closed}
        assert set(after_reminder.values()) == {2}  # the DM channel opened, one post refused with 50007
        await stack.start_due_now(campaign_id)
        await wait_evening_done(stack, campaign_id)

        assert_evening_done(stack, campaign_id)
        # Not one more request to them all evening: the start ping and the follow-up skipped Discord.
        assert {uid: stack.discord.requests_to_user(uid) for uid in closed} == after_reminder
        assert {uid: stack.discord.dm_closed_refusals[uid] for uid in closed} == dict.fromkeys(closed, 1)
        for uid in closed:
            pid = by_discord_id[uid].player_id
            reminder = stack.finals(campaign_id, REMINDER)[pid]
            assert reminder["status"] == "failed" and "50007" in reminder["reason"]
            start = stack.finals(campaign_id, START)[pid]
            assert (start["status"], start["reason"]) == ("skipped", "dm_closed")
            # No start ping reached them, so no follow-up says "we started" (and none was tried).
            followup = stack.finals(campaign_id, VOICE_CHECK).get(pid)
            assert followup is None or (followup["status"], followup["reason"]) == ("skipped", NO_START_PING)
        assert stack.discord.global_rate_limited == 0

        # One of them uses Rallypoint: /notify show tells them, and their Discord counts as open again.
        back = closed[0]
        record = await stack.discord.invoke_slash(GUILD_ID, back, "notify show", {})
        shown = await record.wait_message(timeout=15)
        [notice] = [f["value"] for e in shown["embeds"] for f in e["fields"] if f["name"] == "Discord DMs"]
        assert "Discord refused our DM" in notice
        rows = stack.query("SELECT discord_user_id, discord_dms_closed_at FROM players")
        marks = {int(r["discord_user_id"]): r["discord_dms_closed_at"] for r in rows}
        assert marks[back] is None
        assert all(marks[uid] is not None for uid in closed[1:])


async def test_a_restart_reopens_no_dm_channel_and_new_ones_open_at_their_pace(tmp_path: Path) -> None:
    pace = {"dm_open_rate_per_second": 10.0}  # the default, which the other fault tests raise
    async with asyncio.timeout(150), fault_stack(tmp_path, RECIPIENTS, discord=pace) as stack:
        await stack.start_bot()
        campaign_id = await stack.schedule()
        await stack.reminder_due_in(campaign_id)
        await wait_until(lambda: stack.jobs(campaign_id)[REMINDER]["status"] == "sent", EVENING, "the reminder")
        opened = dict(stack.discord.dm_channel_opens)
        assert sorted(opened) == sorted(discord_players(stack)) and set(opened.values()) == {1}
        open_times = [t for t, route in stack.discord.arrivals if route == OPENS]
        # 10 a second as they leave the bot, 0.1 s apart. Seen at the emulator, a busy machine can bunch a
        # few that were delayed on their way, so the checks leave room for that and still fail at any
        # pace much above 10/s: the whole run of opens takes its time, and no second holds many more.
        assert max(open_times) - min(open_times) >= 0.9 * (len(open_times) - 1) / 10
        assert busiest_second(open_times) <= 15

        await stack.kill()  # after the reminder: every DM channel is known
        await stack.start_due_now(campaign_id)  # the new process starts with the start ping due
        await wait_evening_done(stack, campaign_id)
        assert_evening_done(stack, campaign_id)
        assert stack.discord.dm_channel_opens == opened  # the new process opened none again
        assert stack.discord.global_rate_limited == 0


async def test_a_global_429_makes_every_request_wait(tmp_path: Path) -> None:
    async with asyncio.timeout(150), fault_stack(tmp_path, RECIPIENTS) as stack:
        await stack.start_bot()
        campaign_id = await stack.schedule()
        await stack.reminder_due_in(campaign_id)
        # Discord's limit falls below the bot's 45/s (another process sharing the token, say): the bot
        # meets global 429s, and each of them stops all its requests, not only the one that got it.
        stack.discord.global_rate_limit = 15
        await wait_until(lambda: stack.jobs(campaign_id)[REMINDER]["status"] == "sent", EVENING, "the reminder")
        await stack.start_due_now(campaign_id)
        await wait_evening_done(stack, campaign_id)
        assert_evening_done(stack, campaign_id)

        refused = stack.discord.global_rate_limited_at
        assert refused, "the bot never met a global 429"
        arrivals = sorted(t for t, _ in stack.discord.arrivals)
        for at in refused:
            # Requests already on their way arrive within milliseconds; then nothing until Retry-After
            # (1 s) has passed.
            during = [t - at for t in arrivals if at + 0.05 < t < at + 0.9]
            assert not during, f"requests {during[:5]} s after a global 429"
        assert "global rate limit hit; every request waits" in stack.log_text()


async def test_discord_sends_pause_before_the_invalid_request_budget_runs_out(tmp_path: Path) -> None:
    pause_at = 5
    async with asyncio.timeout(150), fault_stack(
        tmp_path, RECIPIENTS, discord={"invalid_requests_pause_at": pause_at}
    ) as stack:
        on_discord = discord_players(stack)
        closed = on_discord[: len(on_discord) // 2]
        stack.discord.dm_closed_user_ids = set(closed)
        await stack.start_bot()
        campaign_id = await stack.schedule()
        await stack.reminder_due_in(campaign_id)
        await wait_until(lambda: "Discord sends pause" in stack.log_text(), EVENING, "the pause")
        paused_log = re.compile(r"discord DM for player (\d+): retryable: discord: sends paused for \d+ s")
        await wait_until(lambda: paused_log.search(stack.log_text()), EVENING, "a paused send")
        # Telegram and Signal do not pause.
        await wait_until(lambda: everyone_else_reminded(stack), EVENING, "the Telegram and Signal reminders")

        # Without the pause all 40 refusals would have come; with it, those in flight when it began.
        assert stack.discord.invalid_requests <= pause_at + SEND_CONCURRENCY < len(closed)
        assert stack.discord.bans == 0
        by_player = {p.player_id: p for p in stack.players}
        paused = {int(pid) for pid in paused_log.findall(stack.log_text())}
        for pid in paused:  # given way before any request to them
            assert stack.discord.requests_to_user(by_player[pid].discord_id) == 0
            assert not any(MARKER[REMINDER] in (m.get("content") or "") for m in stack.discord.dm_messages(
                by_player[pid].discord_id))
        # The pause outlasts the reminder's send-by time (the start): rather than wait it out and go
        # late, the paused reminders end skipped, too_late, and still nothing more reaches Discord.
        await wait_until(lambda: stack.jobs(campaign_id)[REMINDER]["status"] == "sent", EVENING, "the reminder job")
        finals = stack.finals(campaign_id, REMINDER)
        assert {(finals[pid]["status"], finals[pid]["reason"]) for pid in paused} == {("skipped", "too_late")}
        assert stack.discord.invalid_requests <= pause_at + SEND_CONCURRENCY
