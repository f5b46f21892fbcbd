"""The campaign and the preview as a polling page reads them: ETag, 304, paging, and no database read
while nothing changed (counted with SQLite's own statement trace)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from multidict import CIMultiDict

from bot.api.auth import SESSION_COOKIE, SESSION_PURPOSE
from bot.api.conditional import etag_matches
from bot.api.deps import SIGNER
from services.models import Actor, PlayerStatus
from tests.api.helpers import DAY, MEMBER_ID, OUTSIDER_ID, Api, FakeDiscordOAuth, api_client
from tests.support import PROMOTER_ID

STATUS = "/api/availability/promotions/campaign"
PREVIEW = "/api/availability/promotions/preview"
CREATE = "/api/availability/promotions/campaigns"
NEWCOMER = 4000


@pytest.fixture
async def api(tmp_path) -> AsyncIterator[Api]:
    async with api_client(tmp_path) as client:
        for i, name in enumerate(["Ana", "Bor", "Cene", "Dora", "Eva"], start=1):
            await client.h.add_player(i, name)
        yield client


@asynccontextmanager
async def statements(api: Api) -> AsyncIterator[list[str]]:
    """Every SQL statement the app runs inside the block."""
    seen: list[str] = []
    conn = api.h.engine.db.conn
    await conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        await conn.set_trace_callback(None)


async def fetch(
    api: Api, path: str, *, etag: str | None = None, as_user: int = PROMOTER_ID, **params: Any
) -> tuple[int, CIMultiDict[str], bytes]:
    headers = api.auth(as_user)
    if etag is not None:
        headers["If-None-Match"] = etag
    async with api.client.get(path, headers=headers, params=params) as response:
        return response.status, response.headers.copy(), await response.read()


@pytest.mark.parametrize("path", [STATUS, PREVIEW])
async def test_an_unchanged_answer_is_304_without_a_database_read(api: Api, path: str) -> None:
    status, headers, body = await fetch(api, path)
    assert status == 200 and body
    etag = headers["ETag"]
    assert headers["Cache-Control"] == "private, no-cache"
    async with statements(api) as seen:
        status, again, body = await fetch(api, path, etag=etag)
        assert (status, body, again["ETag"]) == (304, b"", etag)
        # Without If-None-Match the answer comes from the cache too.
        status, _, fresh = await fetch(api, path)
        assert status == 200 and fresh
    assert seen == []


async def test_a_write_that_changes_the_campaign_changes_its_etag(api: Api) -> None:
    _, headers, body = await fetch(api, STATUS)
    assert body == b'{"campaign":null}'
    status, created = await api.post(CREATE, json={})
    assert status == 201
    status, changed, body = await fetch(api, STATUS, etag=headers["ETag"])
    assert status == 200 and changed["ETag"] != headers["ETag"]
    assert b'"status":"scheduled"' in body
    await api.post(f"{CREATE}/{created['campaign_id']}/cancel")
    status, _, body = await fetch(api, STATUS, etag=changed["ETag"])
    assert status == 200 and b'"status":"cancelled"' in body


async def test_a_write_that_changes_nothing_shown_keeps_the_etag(api: Api) -> None:
    await api.post(CREATE, json={})
    _, headers, _ = await fetch(api, STATUS)
    version = api.h.engine.db.changes.version
    # A player's status does not show in the campaign: the answer is read again, and is the same.
    await api.post("/api/availability", as_user=MEMBER_ID, json={"status": "MAYBE"})
    assert api.h.engine.db.changes.version > version
    async with statements(api) as seen:
        status, again, _ = await fetch(api, STATUS, etag=headers["ETag"])
    assert (status, again["ETag"]) == (304, headers["ETag"])
    assert seen  # it was read again


async def test_the_answer_without_a_date_turns_over_at_midnight_in_the_promotion_timezone(api: Api) -> None:
    await api.post(CREATE, json={})
    _, headers, body = await fetch(api, STATUS)
    assert b'"campaign_date":"2026-11-24"' in body
    api.h.clock.set(datetime(2026, 11, 24, 22, 59, 59, tzinfo=UTC))  # 23:59:59 in Ljubljana
    assert (await fetch(api, STATUS, etag=headers["ETag"]))[0] == 304
    api.h.clock.set(datetime(2026, 11, 24, 23, 0, 0, tzinfo=UTC))  # midnight: no write happened
    status, _, body = await fetch(api, STATUS, etag=headers["ETag"])
    assert (status, body) == (200, b'{"campaign":null}')
    # With the date given, the answer is the same on either side of midnight.
    status, _, body = await fetch(api, STATUS, date=DAY.isoformat())
    assert status == 200 and b'"campaign_date":"2026-11-24"' in body


async def test_the_preview_follows_the_players_who_look(api: Api) -> None:
    _, headers, body = await fetch(api, PREVIEW)
    assert b'"recipient_count":5' in body
    await api.h.add_player(6, "Fran")
    status, changed, body = await fetch(api, PREVIEW, etag=headers["ETag"])
    assert status == 200 and b'"recipient_count":6' in body and changed["ETag"] != headers["ETag"]
    await api.h.add_player(7, "Gal", status=PlayerStatus.MAYBE)
    assert (await fetch(api, PREVIEW, etag=changed["ETag"]))[0] == 304  # MAYBE is not asked for
    status, _, body = await fetch(api, PREVIEW, etag=changed["ETag"], include_maybe="true")
    assert status == 200 and b'"recipient_count":7' in body


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({}, ["Ana", "Bor", "Cene", "Dora", "Eva"]),
        ({"limit": "2"}, ["Ana", "Bor"]),
        ({"limit": "2", "offset": "2"}, ["Cene", "Dora"]),
        ({"offset": "3"}, ["Dora", "Eva"]),
        ({"limit": "10", "offset": "4"}, ["Eva"]),
        ({"limit": "1", "offset": "5"}, []),
    ],
)
async def test_preview_pages_through_recipients_and_counts_them_all(
    api: Api, params: dict[str, str], names: list[str]
) -> None:
    status, body = await api.get(PREVIEW, params=params)
    assert status == 200
    assert body["recipient_count"] == 5
    assert body["channels_summary"] == {"discord": 5, "telegram": 0, "signal": 0}
    assert [r["display_name"] for r in body["recipients_preview"]] == names


async def test_pages_have_etags_of_their_own(api: Api) -> None:
    _, first, _ = await fetch(api, PREVIEW, limit="2")
    _, second, _ = await fetch(api, PREVIEW, limit="2", offset="2")
    assert first["ETag"] != second["ETag"]
    assert (await fetch(api, PREVIEW, etag=first["ETag"], limit="2", offset="2"))[0] == 200


async def test_a_cached_answer_is_still_refused_to_whoever_may_not_see_it(api: Api) -> None:
    _, headers, _ = await fetch(api, PREVIEW)
    status, _, body = await fetch(api, PREVIEW, etag=headers["ETag"], as_user=MEMBER_ID)
    assert status == 403 and b"not_promoter" in body
    _, headers, _ = await fetch(api, STATUS)
    status, _, body = await fetch(api, STATUS, etag=headers["ETag"], as_user=OUTSIDER_ID)
    assert status == 403 and b"not_linked" in body
    assert (await fetch(api, STATUS, etag=headers["ETag"], as_user=MEMBER_ID))[0] == 304


async def test_a_new_member_reading_a_cached_answer_still_gets_a_profile(api: Api) -> None:
    _, headers, _ = await fetch(api, STATUS)
    api.membership.members[NEWCOMER] = Actor(NEWCOMER, True, frozenset(), "Nika")
    assert (await fetch(api, STATUS, etag=headers["ETag"], as_user=NEWCOMER))[0] == 304
    profile = await api.h.engine.player_store.by_discord_id(NEWCOMER)
    assert profile is not None and profile.display_name == "Nika"


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
        ("", False),
        (None, False),
    ],
)
def test_if_none_match_is_compared_weakly(header: str | None, matches: bool) -> None:
    assert etag_matches(header, '"abc"') is matches


async def test_a_browser_session_also_gets_its_304_without_a_database_read(tmp_path) -> None:
    async with FakeDiscordOAuth().running() as oauth, api_client(tmp_path, oauth=oauth) as api:
        session_id, _ = await api.h.engine.web_sessions.open(PROMOTER_ID)
        cookie = api.client.app[SIGNER].sign(SESSION_PURPOSE, {"sid": session_id}, timedelta(days=1))
        cookies = {SESSION_COOKIE: cookie}
        async with api.client.get(STATUS, cookies=cookies) as response:
            assert response.status == 200
            etag = response.headers["ETag"]
        tagged = {"If-None-Match": etag}
        async with statements(api) as seen, api.client.get(STATUS, cookies=cookies, headers=tagged) as response:
            assert response.status == 304
        assert seen == []
        # Logging out is a change: the session is read again, and refused.
        await api.h.engine.web_sessions.close(session_id)
        async with api.client.get(STATUS, cookies=cookies, headers={"If-None-Match": etag}) as response:
            assert response.status == 401
