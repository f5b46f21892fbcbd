"""Answers from the messages themselves, end to end: the real bot as a child process (`python -m bot run`)
against the sandbox's Discord, Telegram and Signal on 127.0.0.1, answered the way players answer — a
button in a Discord DM, a button in Telegram, a digit on Signal — and killed with SIGKILL between the
answers and the start ping. What the bot stored is read from its SQLite file with our own connection."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.stack import FOLLOWUP_CHANNEL_ID, GUILD_ID, PROMOTER_ID, Member, SandboxStack
from services.messages import RSVP_CONFIRMATIONS
from services.models import RsvpAnswer
from tests.e2e.e2e_helpers import (
    ANSWER_TIMEOUT,
    BOT_START_TIMEOUT,
    PROMOTION,
    BotProcess,
    campaign_status,
    embed_field,
    job,
    link_signal,
    link_telegram,
    promotions,
    query,
    running,
    say_and_opt_in,
    schedule_campaign,
    slash,
    wait_until,
)

BASE = 830_000_000_000_000_000
ANA, BOR, CENE, DORA = BASE + 1, BASE + 2, BASE + 3, BASE + 4
BOR_CHAT = 700_102
CENE_NUMBER = "+38640123003"
NEED_MARK = "🙋"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[SandboxStack]:
    s = SandboxStack(tmp_path, promotion=PROMOTION)
    members = [
        Member(PROMOTER_ID, "rally", nick="Rally", promoter=True),
        Member(ANA, "ana", nick="Ana"),
        Member(BOR, "bor", nick="Bor"),
        Member(CENE, "cene", nick="Cene"),
        Member(DORA, "dora", nick="Dora"),
    ]
    async with running(s, members):
        yield s


def dm_texts(stack: SandboxStack, user_id: int) -> list[str]:
    return [m.get("content") or "" for m in stack.discord.dm_messages(user_id)]


async def rsvp_rows(db_path: Path) -> int:
    [row] = await query(db_path, "SELECT count(*) AS n FROM rsvps")
    return int(row["n"])


async def test_answers_on_every_channel_hold_across_a_kill_9_before_the_start_ping(
    stack: SandboxStack, tmp_path: Path
) -> None:
    db_path = tmp_path / "rallypoint.sqlite3"
    first = second = None
    try:
        async with asyncio.timeout(150):
            first = await BotProcess.spawn(stack, tmp_path / "bot-1.log")
            session = stack.discord.sessions()[-1].session_id
            await stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT)
            for uid in (ANA, BOR, CENE):
                await say_and_opt_in(stack, uid)
            await say_and_opt_in(stack, DORA, "AVAILABLE")
            await link_telegram(stack, BOR, BOR_CHAT)
            await slash(stack, BOR, "notify settings", preferred_channel="telegram")
            await link_signal(stack, CENE, CENE_NUMBER)
            await slash(stack, CENE, "notify settings", preferred_channel="signal")
            await stack.signal.wait_for_receiver(timeout=ANSWER_TIMEOUT)  # json-rpc: the bot listens for replies

            campaign_id = await schedule_campaign(stack, PROMOTER_ID)
            asked = await slash(stack, PROMOTER_ID, "promote need", count=1)
            assert asked["content"].startswith(f"Asking 1 player to join campaign {campaign_id}"), asked
            await wait_until(lambda: any(NEED_MARK in t for t in dm_texts(stack, DORA)), ANSWER_TIMEOUT, "the ask")

            # Dora, asked by "we need 1 more", says she is in (Discord, a button on the ask).
            pressed = await stack.discord.press_dm_button(DORA, f"rp:rsvp:{campaign_id}:in")
            assert (await pressed.wait_response(ANSWER_TIMEOUT)).callback_type == 6  # acknowledged in time
            await pressed.wait_for(lambda e: e.kind == "followup", ANSWER_TIMEOUT, "Dora's confirmation")
            assert pressed.ephemeral_texts() == [RSVP_CONFIRMATIONS[RsvpAnswer.IN]]

            await wait_until(
                lambda: _is(db_path, campaign_id, "send_reminder_2045", "sent"), 30, "the reminder", interval=0.05
            )
            # Ana can't tonight (a Discord button), Bor is running late (a Telegram button), Cene is in (Signal "1").
            pressed = await stack.discord.press_dm_button(ANA, f"rp:rsvp:{campaign_id}:out")
            query_id = stack.telegram.press_button(BOR_CHAT, f"rsvp:{campaign_id}:late")["callback_query"]["id"]
            stack.signal.queue_text(CENE_NUMBER, "1")
            await pressed.wait_for(lambda e: e.kind == "followup", ANSWER_TIMEOUT, "Ana's confirmation")
            assert pressed.ephemeral_texts() == [RSVP_CONFIRMATIONS[RsvpAnswer.OUT]]
            await wait_until(lambda: stack.telegram.callback_answer(query_id), ANSWER_TIMEOUT, "Bor's confirmation")
            await wait_until(
                lambda: RSVP_CONFIRMATIONS[RsvpAnswer.IN] in stack.signal.messages_to(CENE_NUMBER),
                ANSWER_TIMEOUT, "Cene's confirmation",
            )
            await wait_until(lambda: _rows_are(db_path, 4), ANSWER_TIMEOUT, "the four answers stored")

            # The process dies after the answers and before the start ping.
            await first.kill()
            assert first.proc.returncode == -signal.SIGKILL
            start = await job(db_path, campaign_id, "send_start_2100")
            assert (start["status"], start["attempts"]) == ("pending", 0)
            second = await BotProcess.spawn(stack, tmp_path / "bot-2.log", previous_session=session)
            await wait_until(
                lambda: _status_is(db_path, campaign_id, "followup_sent"), 60, "the evening's end", interval=0.1
            )

            # What each player received: Ana nothing after her answer, Bor no nudge, Cene and Dora everything.
            assert promotions(dm_texts(stack, ANA)) == (1, 0, 0)
            assert promotions([m["text"] for m in stack.telegram.messages_to(BOR_CHAT)]) == (1, 1, 0)
            assert promotions(stack.signal.messages_to(CENE_NUMBER)) == (1, 1, 1)
            assert promotions(dm_texts(stack, DORA)) == (1, 1, 1)
            assert sum(NEED_MARK in t for t in dm_texts(stack, DORA)) == 1
            [summary] = [m["content"] for m in stack.discord.channel_messages(FOLLOWUP_CHANNEL_ID)]
            assert "Running late (1): Bor" in summary and "Can't tonight (1): Ana" in summary
            assert "Waiting on (2): Cene, Dora" in summary and "Follow-ups sent: 2 of 2 missing." in summary
            [ana] = await query(
                db_path, "SELECT a.status FROM availability a JOIN players p ON p.id = a.player_id"
                " WHERE p.discord_user_id = ?", ANA,
            )
            assert ana["status"] == "NOT_PLAYING"
            skipped = await query(
                db_path, "SELECT s.job_type, s.reason FROM send_log s JOIN players p ON p.id = s.player_id"
                " WHERE p.discord_user_id = ? AND s.final = 1 ORDER BY s.id", ANA,
            )
            assert [(r["job_type"], r["reason"]) for r in skipped][1:] == [
                ("send_start_2100", "declined"), ("voice_check_2100", "declined"),
            ]

            # Each invitation shows its answer: Ana's Discord buttons, Bor's Telegram keyboard.
            reminder = next(m for m in stack.discord.dm_messages(ANA) if "kicks off" in m["content"])
            assert [(b["label"], b["style"]) for b in stack.discord.buttons(int(reminder["id"]))] == [
                ("I'm in", 2), ("Running late", 2), ("✓ Can't tonight", 4),
            ]
            bor_reminder = next(m for m in stack.telegram.messages_to(BOR_CHAT) if "kicks off" in m["text"])
            assert [b["text"] for b in bor_reminder["reply_markup"]["inline_keyboard"][0]] == [
                "I'm in", "✓ Running late", "Can't tonight",
            ]

            status = await slash(stack, PROMOTER_ID, "promote status")
            assert embed_field(status, "Answers") == "I'm in: 2 · Running late: 1 · Can't tonight: 1"
            assert embed_field(status, "We need more") == "Asked 1 · 1 said yes: Dora"
    finally:
        for bot in (first, second):
            if bot is not None:
                await bot.kill()


async def _is(db_path: Path, campaign_id: int, job_type: str, status: str) -> bool:
    return (await job(db_path, campaign_id, job_type))["status"] == status


async def _status_is(db_path: Path, campaign_id: int, status: str) -> bool:
    return await campaign_status(db_path, campaign_id) == status


async def _rows_are(db_path: Path, n: int) -> bool:
    return await rsvp_rows(db_path) == n
