"""The real bot, in this process, against the sandbox's Discord, Telegram and Signal on 127.0.0.1.

Everything goes through what users do: slash commands, button clicks, Telegram's /start, voice
channel moves. One bot serves the whole module (starting one takes seconds); the tests run in file
order and each leaves the world in a state the next ones account for. The evening is compressed
(e2e_helpers.PROMOTION): the campaign's reminder, start ping and voice check run within ~25 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import Running, started
from bot.sandbox.stack import (
    FOLLOWUP_CHANNEL_ID,
    GENERAL_CHANNEL_ID,
    GUILD_ID,
    PROMOTER_ID,
    VOICE_CHANNEL_ID,
    Member,
    SandboxStack,
)
from cogs.availability import CONSENT_NO, CONSENT_YES
from tests.e2e.e2e_helpers import (
    BOT_START_TIMEOUT,
    PROMOTION,
    board,
    campaigns,
    click,
    custom_ids,
    discord_endpoints_restored,
    embed_field,
    is_ephemeral,
    job,
    link_telegram,
    message_text,
    promotions,
    say_and_opt_in,
    slash,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MEMBER_ID = 800_000_000_000_000_002  # in the guild, not a promoter
OUTSIDER_ID = 800_000_000_000_000_003  # a Discord user who is not in the guild
BOARD_A, BOARD_B = 800_000_000_000_000_004, 800_000_000_000_000_005
BASE = 810_000_000_000_000_000

# The evening's players (all LOOKING): Ana prefers Discord but her DMs are closed, and she linked Telegram.
NAMES = ["Ana", "Bor", "Cene", "Dan", "Eva", "Fran", "Gaja", "Hugo", "Iva", "Jan", "Kaja", "Luka"]
PLAYERS = {BASE + i: name for i, name in enumerate(NAMES)}
ANA = BASE
ANA_CHAT = 700_001
IN_VOICE = {BASE + 1, BASE + 2, BASE + 3}  # Bor, Cene, Dan
MIA = BASE + 99  # MAYBE tonight: not promoted to without include_maybe

TEST_BOUND = 60.0  # seconds any one test may take


@dataclass
class World:
    stack: SandboxStack
    db_path: Path
    app: Running = field(init=False)
    starts: int = 0
    running: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start_bot(self) -> None:
        """Start a bot on this world's database and wait until it is connected with commands synced."""
        previous = [s.session_id for s in self.stack.discord.sessions()]
        self.running = contextlib.AsyncExitStack()
        self.app = await self.running.enter_async_context(started(self.stack.settings()))
        self.starts += 1  # each start syncs the guild's commands once
        await self.stack.discord.wait_for_bot(timeout=BOT_START_TIMEOUT, other_than=previous[-1] if previous else None)
        await self.stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT, min_syncs=self.starts)
        await asyncio.wait_for(self.app.bot.wait_until_ready(), timeout=BOT_START_TIMEOUT)

    async def restart_bot(self) -> None:
        """Stop the bot and start a new one on the same database and emulators (a redeploy)."""
        await self.running.aclose()
        await self.start_bot()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    workdir = tmp_path_factory.mktemp("bot-e2e")
    stack = SandboxStack(workdir, promotion=PROMOTION)
    members = [
        Member(PROMOTER_ID, "rally", nick="Rally", promoter=True),
        Member(MEMBER_ID, "nika", nick="Nika"),
        Member(BOARD_A, "zala", nick="Zala"),
        Member(BOARD_B, "tine", nick="Tine"),
        Member(MIA, "mia", nick="Mia"),
        *(Member(uid, name.lower(), nick=name) for uid, name in PLAYERS.items()),
    ]
    w = World(stack, workdir / "rallypoint.sqlite3")
    with discord_endpoints_restored():
        try:
            async with asyncio.timeout(BOT_START_TIMEOUT):
                stack.discord.add_user(OUTSIDER_ID, "stranger", global_name="Stranger")
                await stack.start(members)
                await w.start_bot()
            yield w
        finally:
            async with asyncio.timeout(15):
                await w.running.aclose()
                await stack.stop()


async def player_ids(w: World) -> set[int]:
    async with w.app.engine.db.read() as tx:
        rows = await tx.fetchall("SELECT discord_user_id FROM players")
    return {int(r["discord_user_id"]) for r in rows}


# -- who may do what ------------------------------------------------------------------------------


async def test_preview_is_for_promoters_and_members_only(world: World) -> None:
    async with asyncio.timeout(TEST_BOUND):
        stack = world.stack
        asked = await slash(stack, BOARD_A, "available", status="LOOKING")
        assert custom_ids(asked) == [CONSENT_YES, CONSENT_NO]  # Zala never chose: asked, privately
        assert is_ephemeral(asked)

        # Consent is opt-in: until Zala says yes, she is left out, and the preview says so.
        preview = await slash(stack, PROMOTER_ID, "promote preview")
        assert embed_field(preview, "Recipients") == "0"
        assert embed_field(preview, "Left out").startswith("1 player with that status never turned promotions on")

        await click(stack, BOARD_A, asked, CONSENT_YES)
        preview = await slash(stack, PROMOTER_ID, "promote preview")
        assert is_ephemeral(preview)
        assert preview["embeds"][0]["title"] == "Promotion preview"
        assert embed_field(preview, "Recipients") == "1"
        assert "Zala → discord" in embed_field(preview, "Who")
        assert "Left out" not in [f["name"] for f in preview["embeds"][0]["fields"]]

        refused = await slash(stack, MEMBER_ID, "promote preview")
        assert is_ephemeral(refused)
        assert refused["content"] == "Only promoters can do that."
        assert not refused["embeds"]

        # A user outside the guild only sees the commands once they are global (an operator synced
        # them globally), and then only from a DM with the bot: still refused, and no profile made.
        await world.app.bot.tree.sync()
        outsider = await slash(stack, OUTSIDER_ID, "promote preview", guild_id=None)
        assert is_ephemeral(outsider)
        assert outsider["content"] == "You need to be a member of the community's Discord server."
        outsider = await slash(stack, OUTSIDER_ID, "available", guild_id=None, status="LOOKING")
        assert outsider["content"] == "You need to be a member of the community's Discord server."
        known = await player_ids(world)
        assert OUTSIDER_ID not in known
        assert {PROMOTER_ID, MEMBER_ID, BOARD_A} <= known

        await slash(stack, BOARD_A, "available", status="clear")  # Zala is not playing after all


async def test_cancel_on_the_confirmation_schedules_nothing(world: World) -> None:
    async with asyncio.timeout(TEST_BOUND):
        stack = world.stack
        await say_and_opt_in(stack, PROMOTER_ID, "MAYBE")  # somebody to promote to, if asked
        before = await campaigns(world.db_path)

        asked = await slash(stack, PROMOTER_ID, "promote schedule", include_maybe=True)
        assert is_ephemeral(asked) and asked["content"] == "Schedule this campaign?"
        assert embed_field(asked, "Recipients") == "1"
        answer = await click(stack, PROMOTER_ID, asked, "rp:schedule:cancel")

        assert answer["content"] == "Nothing was scheduled."
        assert answer["components"] == [] and answer["embeds"] == []
        assert await campaigns(world.db_path) == before == []
        status = await slash(stack, PROMOTER_ID, "promote status")
        assert status["content"] == "No campaign for that date."

        await slash(stack, PROMOTER_ID, "available", status="clear")


# -- the availability board -----------------------------------------------------------------------


async def test_board_counts_follow_clicks_and_old_boards_survive_a_restart(world: World) -> None:
    async with asyncio.timeout(TEST_BOUND):
        stack = world.stack
        for uid in (BOARD_A, BOARD_B):
            await slash(stack, uid, "available", status="clear")
        posted = await slash(stack, MEMBER_ID, "availability board")
        assert not is_ephemeral(posted) and posted["channel_id"] == str(GENERAL_CHANNEL_ID)
        board_id = int(posted["id"])
        before = board(posted)
        assert not any({"Zala", "Tine"} & set(names) for _, names in before.values())

        def now_showing() -> dict[str, tuple[int, list[str]]]:
            message = stack.discord.message(board_id)
            assert message is not None
            return board(message)

        def expected(**added: str) -> dict[str, tuple[int, list[str]]]:
            rows = {label: (count, list(names)) for label, (count, names) in before.items()}
            for name, label in added.items():
                count, names = rows[label]
                rows[label] = (count + 1, sorted([*names, name]))
            return rows

        def sorted_names(rows: dict[str, tuple[int, list[str]]]) -> dict[str, tuple[int, list[str]]]:
            return {label: (count, sorted(names)) for label, (count, names) in rows.items()}

        answer = await click(stack, BOARD_A, posted, "rallypoint:board:LOOKING")
        assert int(answer["id"]) == board_id  # the board itself is updated, not a new message
        assert sorted_names(now_showing()) == expected(Zala="Looking")

        await click(stack, BOARD_B, posted, "rallypoint:board:MAYBE")
        assert sorted_names(now_showing()) == expected(Zala="Looking", Tine="Maybe")

        await world.restart_bot()

        # A button on the board posted by the previous process still works (a persistent view).
        answer = await click(stack, BOARD_A, posted, "rallypoint:board:NOT_PLAYING")
        assert int(answer["id"]) == board_id
        assert sorted_names(now_showing()) == expected(Zala="Not Playing", Tine="Maybe")


# -- a whole evening ------------------------------------------------------------------------------


async def test_a_whole_campaign(world: World) -> None:
    async with asyncio.timeout(TEST_BOUND + 30):
        stack = world.stack
        for uid in PLAYERS:
            await say_and_opt_in(stack, uid)
        await say_and_opt_in(stack, MIA, "MAYBE")
        saved = await slash(stack, ANA, "notify settings", preferred_channel="discord")
        assert embed_field(saved, "Preferred channel") == "discord"
        await link_telegram(stack, ANA, ANA_CHAT)
        stack.discord.dm_closed_user_ids = {ANA}
        for uid in IN_VOICE:
            await stack.discord.set_voice_state(GUILD_ID, uid, VOICE_CHANNEL_ID)

        # Schedule, confirm.
        asked = await slash(stack, PROMOTER_ID, "promote schedule")
        assert embed_field(asked, "Recipients") == str(len(PLAYERS))
        assert "Ana → telegram" not in embed_field(asked, "Who")  # she prefers Discord...
        assert "Ana → discord" in embed_field(asked, "Who")
        confirmed = await click(stack, PROMOTER_ID, asked, "rp:schedule:confirm")
        title = confirmed["embeds"][0]["title"]
        found = re.fullmatch(r"Campaign (\d+) scheduled", title)
        assert found, title
        campaign_id = int(found.group(1))
        assert embed_field(confirmed, "Recipients") == str(len(PLAYERS))

        # During: after the reminder, before the start. Anyone linked may look; counts only.
        assert (await job(world.db_path, campaign_id, "send_reminder_2045"))["status"] == "pending"
        await wait_until(
            lambda: _job_done(world, campaign_id, "send_reminder_2045"), 20, "the reminder job", interval=0.1
        )
        during = await slash(stack, MEMBER_ID, "promote status")
        assert is_ephemeral(during)
        assert "Status: **running**" in during["embeds"][0]["description"]
        assert embed_field(during, "Recipients") == str(len(PLAYERS))
        assert embed_field(during, "Delivery") == f"sent: {len(PLAYERS)} · skipped: 0 · failed: 0 · unknown: 0"
        assert_aggregate_only(during)

        # The evening runs to its end: start ping, then the voice check and follow-ups.
        await wait_until(lambda: _campaign_is(world, campaign_id, "followup_sent"), 30, "followup_sent", interval=0.1)
        after = await slash(stack, PROMOTER_ID, "promote status")
        missing = [uid for uid in PLAYERS if uid not in IN_VOICE]
        sent = 2 * len(PLAYERS) + len(missing)
        assert "Status: **followup_sent**" in after["embeds"][0]["description"]
        assert embed_field(after, "Delivery") == f"sent: {sent} · skipped: 0 · failed: 0 · unknown: 0"
        assert_aggregate_only(after)

        # What each player saw: one of each promotion, on Discord, except for Ana (on Telegram).
        for uid, name in PLAYERS.items():
            dms = [m["content"] for m in stack.discord.dm_messages(uid)]
            expected = (0, 0, 0) if uid == ANA else (1, 1, 0) if uid in IN_VOICE else (1, 1, 1)
            assert promotions(dms) == expected, name
            assert len(dms) == sum(expected), name
        assert stack.discord.dm_messages(MIA) == []
        assert stack.discord.dm_messages(PROMOTER_ID) == []
        telegram = [m["text"] for m in stack.telegram.messages_to(ANA_CHAT)]
        assert telegram[0].startswith("Linked to the Discord account")
        assert promotions(telegram[1:]) == (1, 1, 1) and len(telegram) == 4
        ana_id = await _pid(world, ANA)
        ana_rows = [r for r in await world.app.engine.ledger_store.send_log(campaign_id) if r.player_id == ana_id]
        # Discord refused her once (50007); from then on it is skipped, straight to Telegram.
        assert [(r.channel, r.status, r.reason) for r in ana_rows if r.channel == "discord"] == [
            ("discord", "failed", "discord: cannot send messages to this user (50007)"),
            ("discord", "skipped", "dm_closed"),
            ("discord", "skipped", "dm_closed"),
        ]
        assert [(r.channel, r.status) for r in ana_rows if r.channel == "telegram"] == [("telegram", "sent")] * 3
        assert stack.discord.dm_closed_refusals[ANA] == 1
        assert stack.discord.global_rate_limited == 0

        # The summary in the follow-up channel.
        [summary] = stack.discord.channel_messages(FOLLOWUP_CHANNEL_ID)
        lines = summary["content"].splitlines()
        in_voice_line = next(line for line in lines if line.startswith("In voice"))
        waiting_line = next(line for line in lines if line.startswith("Waiting on"))
        assert _names(in_voice_line, "In voice") == {PLAYERS[uid] for uid in IN_VOICE}
        assert _names(waiting_line, "Waiting on") == {PLAYERS[uid] for uid in missing}
        assert lines[-1] == f"Follow-ups sent: {len(missing)} of {len(missing)} missing."

        # One campaign per promoter per day: a second one is refused at Confirm.
        again = await slash(stack, PROMOTER_ID, "promote schedule")
        refused = await click(stack, PROMOTER_ID, again, "rp:schedule:confirm")
        assert refused["content"] == "Not scheduled: You have already promoted a session today."
        assert [c["id"] for c in await campaigns(world.db_path)] == [campaign_id]


def assert_aggregate_only(message: dict[str, Any]) -> None:
    """Rule 10: a status answer names no recipient and shows no contact handle."""
    text = message_text(message)
    for name in (*NAMES, "Mia", "Nika"):
        assert name not in text
    assert str(ANA_CHAT) not in text and str(ANA) not in text
    assert "started by Rally" in text


async def _job_done(w: World, campaign_id: int, job_type: str) -> bool:
    return (await job(w.db_path, campaign_id, job_type))["status"] == "sent"


async def _campaign_is(w: World, campaign_id: int, status: str) -> bool:
    return any(c["id"] == campaign_id and c["status"] == status for c in await campaigns(w.db_path))


async def _pid(w: World, discord_user_id: int) -> int:
    player = await w.app.engine.player_store.by_discord_id(discord_user_id)
    assert player is not None
    return player.id


def _names(line: str, label: str) -> set[str]:
    found = re.fullmatch(rf"{label} \((\d+)\): (.*)", line)
    assert found, line
    names = set(found.group(2).split(", "))
    assert len(names) == int(found.group(1)), line
    return names
