"""A standing session end to end: the real bot, in this process, against the sandbox's emulators on 127.0.0.1.

The promoter adds a weekly session with `/promote standing add`; nobody schedules anything, and at
the session's minute the bot decides by itself: three players are up for it, so the campaign is
created as the promoter would have, and the compressed evening runs (reminder, start ping, voice
check, summary). The next day a second session finds nobody and posts its one note.

A standing session starts on a whole minute. So that the test need not wait for the wall clock to
reach one, the bot runs on the real clock moved forward (`LeapingClock`): just before a session is
added, the clock leaps to a few seconds before the next whole minute, as if the test had waited.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bot.api import bound_port
from bot.app import Running, started
from bot.sandbox.stack import FOLLOWUP_CHANNEL_ID, GUILD_ID, PROMOTER_ID, SERVICE_TOKEN, Member, SandboxStack
from services.clock import LeapingClock
from services.models import Weekday
from tests.e2e.e2e_helpers import (
    BOT_START_TIMEOUT,
    PROMOTION,
    START_TEXT,
    discord_endpoints_restored,
    embed_field,
    is_ephemeral,
    message_text,
    query,
    say_and_opt_in,
    slash,
    wait_until,
)

BASE = 840_000_000_000_000_000
PLAYERS = {BASE + 1: "Ana", BASE + 2: "Bor", BASE + 3: "Cene"}
TITLE = "E2E **raid** @everyone"
SHOWN_TITLE = "E2E \\*\\*raid\\*\\* @\u200beveryone"  # as Discord receives it: formats nothing, pings nobody
AHEAD_OF_THE_MINUTE = timedelta(seconds=6)
EVENING_BOUND = 60.0  # decision, reminder (+10 s), start ping (+20 s), voice check (+3 s), with room


async def test_a_standing_session_decides_by_itself_and_its_evening_runs(tmp_path: Path) -> None:
    stack = SandboxStack(tmp_path, promotion={**PROMOTION, "standing_decision_minutes": 0})
    members = [Member(PROMOTER_ID, "rally", nick="Rally", promoter=True)]
    members += [Member(uid, name.lower(), nick=name) for uid, name in PLAYERS.items()]
    clock = LeapingClock()
    with discord_endpoints_restored():
        await stack.start(members)
        try:
            await _the_evening(stack, clock, tmp_path / "rallypoint.sqlite3")
        finally:
            await stack.stop()


async def _the_evening(stack: SandboxStack, clock: LeapingClock, db_path: Path) -> None:
    zone = stack.settings().promotion.zone
    async with asyncio.timeout(BOT_START_TIMEOUT + 3 * EVENING_BOUND), started(stack.settings(), clock) as app:
        await stack.discord.wait_for_commands(GUILD_ID, timeout=BOT_START_TIMEOUT)
        await asyncio.wait_for(app.bot.wait_until_ready(), timeout=BOT_START_TIMEOUT)
        for uid in PLAYERS:
            await say_and_opt_in(stack, uid)

        minute = clock.leap_before_a_minute(AHEAD_OF_THE_MINUTE).astimezone(zone)
        weekday = Weekday.of(minute.date())
        added = await slash(
            stack, PROMOTER_ID, "promote standing add", weekday=weekday.value, start=f"{minute:%H:%M}", quorum=3,
            title=TITLE,
        )
        assert is_ephemeral(added)
        assert added["embeds"][0]["title"] == f"Standing session 1: {weekday.label} {minute:%H:%M} every week"
        assert f"Next: {minute.date().isoformat()}, decided at {minute:%H:%M} " in message_text(added)

        # Nobody schedules anything: at its minute the session decides, and the evening runs.
        campaign = await wait_until(
            lambda: _campaign_of_session(db_path, 1), EVENING_BOUND, "the campaign of the standing session"
        )
        assert (campaign["title"], campaign["start_time"]) == (TITLE, f"{minute:%H:%M}")
        await wait_until(
            lambda: _status_is(db_path, campaign["id"], "followup_sent"), EVENING_BOUND, "the end of the evening"
        )
        for uid in PLAYERS:
            texts = [m["content"] for m in stack.discord.dm_messages(uid)]
            assert any(t.startswith(f"⏰ {SHOWN_TITLE} kicks off in") for t in texts), texts
            assert any(START_TEXT in t and t.startswith(f"🎮 {SHOWN_TITLE}: we are") for t in texts), texts
        [summary] = stack.discord.channel_messages(FOLLOWUP_CHANNEL_ID)
        assert summary["content"].startswith(f"📋 Voice check for {SHOWN_TITLE}, the ")
        assert stack.discord.allowed_mentions(int(summary["id"])) == [{"parse": []}]

        listed = await slash(stack, PROMOTER_ID, "promote standing list")
        value = embed_field(listed, f"#1 · {weekday.label} {minute:%H:%M}")
        assert f"Last decision ({minute.date().isoformat()}): campaign {campaign['id']} created (3 of 3)" in value
        assert f"Next: {(minute.date() + timedelta(days=7)).isoformat()}" in value
        status = await slash(stack, BASE + 1, "promote status")  # any player may look
        assert embed_field(status, "From") == f"standing session 1 ({weekday.label} {minute:%H:%M})"
        assert embed_field(status, "Title") == SHOWN_TITLE
        website = await _website_status(app)
        assert website["standing_session"] == {
            "id": 1, "weekday": weekday.value, "start_time": f"{minute:%H:%M}", "removed": False,
        }
        assert (website["title"], website["initiator"]) == (TITLE, "Rally")

        # The next day a second session finds nobody up for it: one note, and nothing else.
        clock.leap(timedelta(days=1))
        tomorrow = clock.leap_before_a_minute(AHEAD_OF_THE_MINUTE).astimezone(zone)
        tomorrow_weekday = Weekday.of(tomorrow.date())
        await slash(
            stack, PROMOTER_ID, "promote standing add", weekday=tomorrow_weekday.value,
            start=f"{tomorrow:%H:%M}", quorum=2,
        )
        note = await wait_until(
            lambda: _posts_after(stack, summary), EVENING_BOUND, "the note of the second standing session"
        )
        assert note["content"] == (
            f"Not enough players for {tomorrow_weekday.label} {tomorrow:%H:%M}: 0 of 2 looking. "
            "No pings go out for it."
        )
        assert stack.discord.allowed_mentions(int(note["id"])) == [{"parse": []}]
        assert len(await query(db_path, "SELECT id FROM campaigns")) == 1


async def _campaign_of_session(db_path: Path, session_id: int) -> dict[str, Any] | None:
    rows = await query(
        db_path, "SELECT id, title, start_time FROM campaigns WHERE standing_session_id = ?", session_id
    )
    return rows[0] if rows else None


async def _status_is(db_path: Path, campaign_id: int, status: str) -> bool:
    [row] = await query(db_path, "SELECT status FROM campaigns WHERE id = ?", campaign_id)
    return row["status"] == status


def _posts_after(stack: SandboxStack, first: dict[str, Any]) -> dict[str, Any] | None:
    later = [m for m in stack.discord.channel_messages(FOLLOWUP_CHANNEL_ID) if m["id"] != first["id"]]
    return later[0] if later else None


async def _website_status(app: Running) -> dict[str, Any]:
    assert app.api is not None
    url = f"http://127.0.0.1:{bound_port(app.api)}/api/availability/promotions/campaign"
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Discord-User-Id": str(PROMOTER_ID)}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        assert response.status == 200
        body = await response.json()
    campaign: dict[str, Any] = body["campaign"]
    assert re.fullmatch(r"\d\d:\d\d", campaign["start_time"])
    return campaign
