"""No accidental pings, no formatting by player names: what the emulators received from the real bot.

Players called "@everyone" and "**x**" take part in a whole (compressed) evening. Every message the
bot posted or edited on Discord — replies, the board, DMs, the summary — must carry
`allowed_mentions: {"parse": []}`, ping nobody, and show the names as typed; Telegram and Signal
texts must be plain.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bot.app import started
from bot.sandbox.stack import FOLLOWUP_CHANNEL_ID, GUILD_ID, PROMOTER_ID, Member, SandboxStack
from tests.e2e.e2e_helpers import (
    BOT_START_TIMEOUT,
    PROMOTION,
    campaigns,
    click,
    discord_endpoints_restored,
    link_telegram,
    say_and_opt_in,
    slash,
    wait_until,
)

BASE = 830_000_000_000_000_000
EVERYONE, BOLD, ANA = BASE + 1, BASE + 2, BASE + 3
ANA_CHAT = 700_301
NO_PINGS = {"parse": []}


def shown(content: str) -> str:
    """What Discord shows for `content`: a backslash before punctuation is dropped, and so is a zero-width space."""
    return re.sub(r"\\([^0-9A-Za-z\s])", r"\1", content).replace("\u200b", "")


async def test_nothing_the_bot_sends_pings_or_formats_by_a_players_name(tmp_path: Path) -> None:
    stack = SandboxStack(tmp_path, promotion=PROMOTION)
    members = [
        Member(PROMOTER_ID, "rally", nick="Rally", promoter=True),
        Member(EVERYONE, "pinger", nick="@everyone"),
        Member(BOLD, "bolder", nick="**x**"),
        Member(ANA, "ana", nick="Ana"),
    ]
    with discord_endpoints_restored():
        await stack.start(members)
        try:
            async with asyncio.timeout(BOT_START_TIMEOUT + 60), started(stack.settings()) as app:
                await stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT)
                await asyncio.wait_for(app.bot.wait_until_ready(), timeout=BOT_START_TIMEOUT)
                await _an_evening(stack, tmp_path / "rallypoint.sqlite3")
        finally:
            await stack.stop()

    messages = stack.discord.bot_messages()
    assert len(messages) > 10  # replies, the board, DMs, the summary
    for message in messages:
        said = stack.discord.allowed_mentions(int(message["id"]))
        assert said and all(a == NO_PINGS for a in said), (message.get("content"), said)
        assert message["mention_everyone"] is False and message["mentions"] == [] == message["mention_roles"]

    [summary] = stack.discord.channel_messages(FOLLOWUP_CHANNEL_ID)
    waiting = next(line for line in summary["content"].splitlines() if line.startswith("Waiting on"))
    assert shown(waiting) == "Waiting on (3): @everyone, **x**, Ana"
    assert "**x**" not in summary["content"]  # escaped, so it does not turn bold

    board = next(m for m in messages if m.get("embeds") and m["embeds"][0]["title"].startswith("Who's playing"))
    looking = next(f for f in board["embeds"][0]["fields"] if f["name"].startswith("🟢"))
    assert shown(looking["value"]) == "@everyone"

    # Telegram and Signal texts are plain: no parse mode, no styled text.
    assert [m["text"] for m in stack.telegram.messages_to(ANA_CHAT)][1:]  # Ana got her pings there
    assert stack.telegram.parse_modes == []
    assert stack.signal.styled_sends == 0


async def _an_evening(stack: SandboxStack, db_path: Path) -> None:
    posted = await slash(stack, ANA, "availability board")
    await click(stack, EVERYONE, posted, "rallypoint:board:LOOKING")  # an edit of the public board
    for uid in (EVERYONE, BOLD, ANA, PROMOTER_ID):
        await say_and_opt_in(stack, uid)
    await link_telegram(stack, ANA, ANA_CHAT)
    await slash(stack, ANA, "notify settings", preferred_channel="telegram")
    await slash(stack, PROMOTER_ID, "available", status="NOT_PLAYING")  # promoting, not playing

    asked = await slash(stack, PROMOTER_ID, "promote schedule")
    confirmed = await click(stack, PROMOTER_ID, asked, "rp:schedule:confirm")
    found = re.fullmatch(r"Campaign (\d+) scheduled", confirmed["embeds"][0]["title"])
    assert found, confirmed
    campaign_id = int(found.group(1))

    async def over() -> bool:
        return any(c["id"] == campaign_id and c["status"] == "followup_sent" for c in await campaigns(db_path))

    await wait_until(over, 40, "the evening to end", interval=0.1)
