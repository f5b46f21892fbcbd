"""Malformed, oversized and hostile input: a clear 4xx naming the problem, and nothing stored changes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.api.errors import MAX_BODY_BYTES
from bot.api.routes import OPERATIONS
from services.models import Preferences, QuietHours
from services.quiet_hours import parse_hhmm
from tests.api.helpers import Api, api_client
from tests.support import PROMOTER_ID

AV = "/api/availability"
PREFS = f"{AV}/promotion-preferences"
LINK = f"{AV}/link-token"
CONFIRM = f"{AV}/link-confirm"
UNLINK = f"{AV}/unlink"
PREVIEW = f"{AV}/promotions/preview"
CREATE = f"{AV}/promotions/campaigns"
STATUS = f"{AV}/promotions/campaign"
CANCEL = f"{AV}/promotions/campaigns/1/cancel"
STANDING = f"{AV}/promotions/standing"
SESSION = {"weekday": "tue", "start_time": "21:00", "quorum": 3}
NEED = f"{AV}/promotions/campaigns/1/need"
BAD = "invalid_input"
JSON = "invalid_json"
OUT_OF_RANGE = "date_out_of_range"


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        h = client.h
        player = await h.engine.player_store.by_discord_id(PROMOTER_ID)
        assert player is not None
        await h.engine.player_store.save_preferences(
            player.id, Preferences(quiet_hours=QuietHours(parse_hhmm("23:00"), parse_hhmm("07:00"))),
            h.clock.now(),
        )
        await h.add_player(1, "Ana")
        await h.add_player(2, "Bor", telegram="5001")
        # A dry run, so that a real create is still possible and a cancel has something to find.
        await h.engine.promote.create(h.actor(), dry_run=True)
        yield client


def case(method: str, path: str, status: int, code: str, fragment: str = "", **kwargs: Any) -> Any:
    label = f"{method} {path.removeprefix(AV)} {json.dumps(kwargs, default=repr)[:60]}"
    return pytest.param(method, path, kwargs, status, code, fragment, id=label)


CASES = [
    # -- POST /api/availability
    case("POST", AV, 400, BAD, "body.status", json={"status": "PLAYING"}),
    case("POST", AV, 400, BAD, "body.status", json={"status": 1}),
    case("POST", AV, 400, BAD, "body.status", json={"status": "looking"}),
    case("POST", AV, 400, BAD, "body.status", json={}),
    case("POST", AV, 400, BAD, "body.date", json={"status": "LOOKING", "date": "2026-13-01"}),
    case("POST", AV, 400, BAD, "body.date", json={"status": "LOOKING", "date": "24.11.2026"}),
    case("POST", AV, 400, BAD, "body.date", json={"status": "LOOKING", "date": 20261124}),
    case("POST", AV, 400, BAD, "body.date",
         json={"status": "LOOKING", "date": "2026-11-24T00:00:00"}),
    case("POST", AV, 400, OUT_OF_RANGE, "date must be between", json={"status": "LOOKING", "date": "2027-01-01"}),
    case("POST", AV, 400, OUT_OF_RANGE, "date must be between", json={"status": "LOOKING", "date": "2026-11-22"}),
    case("POST", AV, 400, OUT_OF_RANGE, "date must be between", json={"status": "LOOKING", "date": "2026-12-23"}),
    case("POST", AV, 400, BAD, "body.date", json={"status": "LOOKING", "date": "0000-01-01"}),
    case("POST", AV, 400, BAD, "body.extra", json={"status": "LOOKING", "extra": 1}),
    case("POST", AV, 400, BAD, "body", json=["LOOKING"]),
    case("POST", AV, 400, BAD, "body", data=b"null"),
    case("POST", AV, 400, JSON, "not valid JSON", data=b'{"status": "LOOKING"'),
    case("POST", AV, 400, JSON, "not valid JSON", data=b""),
    case("POST", AV, 400, JSON, "not valid JSON", data=b'{"status": "\xff\xfe"}'),
    case("POST", AV, 400, JSON, "not valid JSON", data=b"[" * 5000 + b"]" * 5000),
    case("POST", AV, 400, JSON, "not valid JSON", data=b"{'status': 'LOOKING'}"),
    # -- GET /api/availability
    case("GET", AV, 400, BAD, "query.date", params={"date": "tomorrow"}),
    case("GET", AV, 400, BAD, "query.date", params={"date": "2026-02-30"}),
    case("GET", AV, 400, BAD, "query.date", params={"date": "2026-11-24 "}),
    case("GET", AV, 400, OUT_OF_RANGE, "date must be between", params={"date": "1999-01-01"}),
    case("GET", AV, 400, BAD, "query.day", params={"day": "2026-11-24"}),
    case("GET", AV, 400, BAD, "more than once", params=[("date", "2026-11-24"), ("date", "2026-11-25")]),
    # -- POST /api/availability/promotion-preferences
    case("POST", PREFS, 400, BAD, "body.allow_promotions", json={"allow_promotions": "yes"}),
    case("POST", PREFS, 400, BAD, "body.allow_promotions", json={"allow_promotions": 1}),
    case("POST", PREFS, 400, BAD, "body.allow_promotions", json={"allow_promotions": "true"}),
    case("POST", PREFS, 400, BAD, "body.allow_promotions", json={"allow_promotions": None}),
    case("POST", PREFS, 400, BAD, "body.preferred_channel", json={"preferred_channel": "email"}),
    case("POST", PREFS, 400, BAD, "body.preferred_channel", json={"preferred_channel": None}),
    case("POST", PREFS, 400, BAD, "body.quiet_hours.start",
         json={"quiet_hours": {"start": "25:00", "end": "07:00"}}),
    case("POST", PREFS, 400, BAD, "body.quiet_hours.end",
         json={"quiet_hours": {"start": "23:00", "end": "7:00"}}),
    case("POST", PREFS, 400, BAD, "body.quiet_hours.end", json={"quiet_hours": {"start": "23:00"}}),
    case("POST", PREFS, 400, "quiet_hours_empty", "a start and an end that differ",
         json={"quiet_hours": {"start": "22:00", "end": "22:00"}}),
    case("POST", PREFS, 400, "quiet_hours_empty", "a start and an end that differ",
         json={"allow_promotions": False, "quiet_hours": {"start": "00:00", "end": "00:00"}}),
    case("POST", PREFS, 400, BAD, "body.quiet_hours.start",
         json={"quiet_hours": {"start": "٢٣:٠٠", "end": "07:00"}}),
    case("POST", PREFS, 400, BAD, "body.quiet_hours", json={"quiet_hours": "23:00-07:00"}),
    case("POST", PREFS, 400, BAD, "body.quiet_hours.days",
         json={"quiet_hours": {"start": "23:00", "end": "07:00", "days": 5}}),
    case("POST", PREFS, 400, BAD, "body.timezone", json={"timezone": "Mars/Olympus"}),
    case("POST", PREFS, 400, BAD, "body.timezone", json={"timezone": "../../etc/passwd"}),
    case("POST", PREFS, 400, BAD, "body.timezone", json={"timezone": "/etc/localtime"}),
    case("POST", PREFS, 400, BAD, "body.timezone", json={"timezone": ""}),
    case("POST", PREFS, 400, BAD, "body.timezone", json={"timezone": "Europe/" + "x" * 200}),
    case("POST", PREFS, 400, BAD, "body.timezone", json={"timezone": 5}),
    case("POST", PREFS, 400, BAD, "body.nickname", json={"allow_promotions": False, "nickname": "x"}),
    case("POST", PREFS, 400, BAD, "body." + "k" * 40, json={"k" * 5000: 1}),
    # -- link-token / link-confirm
    case("POST", LINK, 400, BAD, "'channel' does not match any of the expected tags", json={"channel": "email"}),
    case("POST", LINK, 400, BAD, "discriminator 'channel'", json={}),
    case("POST", LINK, 400, BAD, "body.signal.address: Field required", json={"channel": "signal"}),
    case("POST", LINK, 400, BAD, "body.signal.address", json={"channel": "signal", "address": "040123456"}),
    case("POST", LINK, 400, BAD, "body.signal.address", json={"channel": "signal", "address": "+1 (555) x"}),
    case("POST", LINK, 400, BAD, "body.signal.address", json={"channel": "signal", "address": 38640123456}),
    case("POST", LINK, 400, BAD, "body.signal.address",
         json={"channel": "signal", "address": "+38640123456\n"}),
    case("POST", LINK, 400, BAD, "body.telegram.address: Extra inputs are not permitted",
         json={"channel": "telegram", "address": "+38640123456"}),
    case("POST", LINK, 400, BAD, "body.telegram.address", json={"channel": "telegram", "address": None}),
    case("POST", CONFIRM, 400, BAD, "body.channel", json={"channel": "telegram", "code": "123456"}),
    case("POST", CONFIRM, 400, BAD, "body.code", json={"channel": "signal"}),
    case("POST", CONFIRM, 400, BAD, "body.code", json={"channel": "signal", "code": "   "}),
    case("POST", CONFIRM, 400, BAD, "body.code", json={"channel": "signal", "code": "1" * 1000}),
    case("POST", CONFIRM, 400, BAD, "body.code", json={"channel": "signal", "code": 123456}),
    case("POST", CONFIRM, 400, BAD, "body.code", json={"channel": "signal", "code": "12345"}),
    case("POST", CONFIRM, 400, BAD, "body.code", json={"channel": "signal", "code": "123456\n"}),
    case("POST", CONFIRM, 400, BAD, "body.code", json={"channel": "signal", "code": "１２３４５６"}),
    case("POST", UNLINK, 400, BAD, "body.channel", json={"channel": "discord"}),
    case("POST", UNLINK, 400, BAD, "body.channel", json={}),
    case("POST", UNLINK, 400, BAD, "body.channel", json={"channel": ["telegram"]}),
    case("POST", UNLINK, 400, BAD, "body.address", json={"channel": "signal", "address": "+38640123456"}),
    # -- preview
    case("GET", PREVIEW, 400, BAD, "query.include_available", params={"include_available": "yes"}),
    case("GET", PREVIEW, 400, BAD, "query.include_available", params={"include_available": "TRUE"}),
    case("GET", PREVIEW, 400, BAD, "query.include_maybe", params={"include_maybe": "2"}),
    case("GET", PREVIEW, 400, BAD, "query.include_maybe", params={"include_maybe": ""}),
    case("GET", PREVIEW, 400, BAD, "query.dry_run", params={"dry_run": "true"}),
    case("GET", PREVIEW, 400, BAD, "query.limit", params={"limit": "0"}),
    case("GET", PREVIEW, 400, BAD, "query.limit", params={"limit": "1001"}),
    case("GET", PREVIEW, 400, BAD, "query.limit", params={"limit": "5_0"}),
    case("GET", PREVIEW, 400, BAD, "query.limit", params={"limit": " 50"}),
    case("GET", PREVIEW, 400, BAD, "query.limit", params={"limit": "50.0"}),
    case("GET", PREVIEW, 400, BAD, "query.offset", params={"offset": "-1"}),
    case("GET", PREVIEW, 400, BAD, "query.offset", params={"offset": "9" * 30}),
    case("GET", PREVIEW, 400, BAD, "query.start_time", params={"start_time": "24:00"}),
    case("GET", PREVIEW, 400, BAD, "query.start_time", params={"start_time": "9:30"}),
    case("GET", PREVIEW, 400, BAD, "query.title", params={"title": "a\nb"}),
    case("GET", PREVIEW, 400, BAD, "query.title", params={"title": "x" * 101}),
    # -- create
    case("POST", CREATE, 400, BAD, "body.dry_run", json={"dry_run": "true"}),
    case("POST", CREATE, 400, BAD, "body.include_maybe", json={"include_maybe": 1}),
    case("POST", CREATE, 400, BAD, "body.dry_run", json={"dry_run": None}),
    case("POST", CREATE, 400, BAD, "body.force", json={"force": True}),
    case("POST", CREATE, 400, BAD, "body", json=[]),
    case("POST", CREATE, 400, BAD, "body.start_time", json={"start_time": "21:60"}),
    case("POST", CREATE, 400, BAD, "body.start_time", json={"start_time": "21:00 "}),
    case("POST", CREATE, 400, BAD, "body.start_time", json={"start_time": 2100}),
    case("POST", CREATE, 400, BAD, "body.start_time", json={"start_time": None}),
    case("POST", CREATE, 400, BAD, "body.start_time", json={"start_time": "２１:００"}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": ""}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": "   "}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": "x" * 101}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": "two\nlines"}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": "zero\u0000byte"}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": "line\u2028separator"}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": 5}),
    case("POST", CREATE, 400, BAD, "body.title", json={"title": None}),
    case("POST", CREATE, 400, JSON, "not valid JSON", data=b"{,}"),
    # -- status
    case("GET", STATUS, 400, BAD, "query.date", params={"date": "yesterday"}),
    case("GET", STATUS, 400, BAD, "query.date", params={"date": "+02026-11-24"}),
    case("GET", STATUS, 400, BAD, "query.date", params={"date": "1732406400"}),
    # -- cancel
    case("POST", f"{AV}/promotions/campaigns/abc/cancel", 404, "not_found"),
    case("POST", f"{AV}/promotions/campaigns/-1/cancel", 404, "not_found"),
    case("POST", f"{AV}/promotions/campaigns/0/cancel", 400, BAD, "path.campaign_id"),
    case("POST", f"{AV}/promotions/campaigns/{10**30}/cancel", 400, BAD, "path.campaign_id"),
    case("POST", CANCEL, 400, BAD, "body.reason", json={"reason": "x"}),
    case("POST", CANCEL, 400, JSON, "not valid JSON", data=b"please"),
    # -- standing sessions
    case("POST", STANDING, 400, BAD, "body.weekday", json={**SESSION, "weekday": "tuesday"}),
    case("POST", STANDING, 400, BAD, "body.weekday", json={**SESSION, "weekday": 1}),
    case("POST", STANDING, 400, BAD, "body.weekday", json={"start_time": "21:00", "quorum": 3}),
    case("POST", STANDING, 400, BAD, "body.start_time", json={**SESSION, "start_time": "7pm"}),
    case("POST", STANDING, 400, BAD, "body.start_time", json={"weekday": "tue", "quorum": 3}),
    case("POST", STANDING, 400, BAD, "body.quorum", json={**SESSION, "quorum": 0}),
    case("POST", STANDING, 400, BAD, "body.quorum", json={**SESSION, "quorum": 1001}),
    case("POST", STANDING, 400, BAD, "body.quorum", json={**SESSION, "quorum": 2.5}),
    case("POST", STANDING, 400, BAD, "body.quorum", json={**SESSION, "quorum": True}),
    case("POST", STANDING, 400, BAD, "body.quorum", json={**SESSION, "quorum": "3"}),
    case("POST", STANDING, 400, BAD, "body.quorum", json={**SESSION, "quorum": 10**30}),
    case("POST", STANDING, 400, BAD, "body.include_maybe", json={**SESSION, "include_maybe": "yes"}),
    case("POST", STANDING, 400, BAD, "body.title", json={**SESSION, "title": "\t"}),
    case("POST", STANDING, 400, BAD, "body.title", json={**SESSION, "title": "x" * 101}),
    case("POST", STANDING, 400, BAD, "body.creator", json={**SESSION, "creator": "someone else"}),
    case("POST", STANDING, 400, JSON, "not valid JSON", data=b""),
    case("DELETE", f"{STANDING}/0", 400, BAD, "path.session_id"),
    case("DELETE", f"{STANDING}/{10**30}", 400, BAD, "path.session_id"),
    case("DELETE", f"{STANDING}/abc", 404, "not_found"),
    case("DELETE", f"{STANDING}/7", 404, "not_found", "There is no standing session 7."),
    case("DELETE", STANDING, 405, "method_not_allowed"),
    # -- need
    case("POST", NEED, 400, BAD, "body.count", json={"count": 0}),
    case("POST", NEED, 400, BAD, "body.count", json={"count": 51}),
    case("POST", NEED, 400, BAD, "body.count", json={"count": -3}),
    case("POST", NEED, 400, BAD, "body.count", json={"count": "2"}),
    case("POST", NEED, 400, BAD, "body.count", json={"count": True}),
    case("POST", NEED, 400, BAD, "body.count", json={"count": 2.5}),
    case("POST", NEED, 400, BAD, "body.count", json={"count": 10**30}),
    case("POST", NEED, 400, BAD, "body.count", json={}),
    case("POST", NEED, 400, BAD, "body.who", json={"count": 2, "who": "everyone"}),
    case("POST", NEED, 400, BAD, "body", json=[2]),
    case("POST", NEED, 400, JSON, "not valid JSON", data=b"count=2"),
    case("POST", f"{AV}/promotions/campaigns/0/need", 400, BAD, "path.campaign_id", json={"count": 2}),
    case("POST", f"{AV}/promotions/campaigns/x/need", 404, "not_found", json={"count": 2}),
    case("POST", f"{AV}/promotions/campaigns/99/need", 404, "not_found", "no campaign 99", json={"count": 2}),
    case("POST", NEED, 409, "dry_run", "nobody to ask", json={"count": 2}),  # campaign 1 is a rehearsal
    # -- routing
    case("GET", f"{AV}/nope", 404, "not_found"),
    case("DELETE", AV, 405, "method_not_allowed"),
    case("PUT", PREFS, 405, "method_not_allowed"),
    case("GET", CREATE, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code", "fragment"), CASES)
async def test_bad_input_is_refused_and_nothing_changes(
    api: Api, method: str, path: str, kwargs: dict[str, Any], status: int, code: str, fragment: str
) -> None:
    before = await api.dump()
    answered, body = await api.call(method, path, **kwargs)
    assert answered == status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"]
    assert await api.dump() == before
    assert api.h.signal.attempts == []  # no code went out


POSTS = [op for op in OPERATIONS if op.method == "POST"]


@pytest.mark.parametrize("op", POSTS, ids=lambda op: op.operation_id)
async def test_a_body_over_64_kib_is_413(api: Api, op) -> None:
    before = await api.dump()
    path = re.sub(r"\{\w+\}", "1", op.path)
    padding = "x" * (MAX_BODY_BYTES + 1)
    status, body = await api.post(path, data=json.dumps({"status": "LOOKING", "pad": padding}))
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert await api.dump() == before


async def test_an_oversized_chunked_body_is_413_too(api: Api) -> None:
    async def chunks():
        for _ in range(20):
            yield b" " * 8192
        yield b'{"status": "LOOKING"}'

    before = await api.dump()
    status, body = await api.post(AV, data=chunks())
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert await api.dump() == before


async def test_a_405_says_which_methods_are_allowed(api: Api) -> None:
    async with api.client.delete(AV, headers=api.auth()) as response:
        assert response.status == 405
        assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


async def test_a_crash_is_a_logged_500_with_a_generic_message(api: Api, caplog) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail from deep inside")

    api.h.engine.players.board = broken  # type: ignore[method-assign]
    with caplog.at_level("ERROR", logger="bot.api.errors"):
        status, body = await api.get(AV)
    assert status == 500
    assert body["error"]["code"] == "internal"
    assert "secret detail" not in body["error"]["message"]
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)
