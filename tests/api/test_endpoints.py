"""Every endpoint's answer, as the website reads it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.api.deps import package_version
from bot.api.openapi import document_json
from services.models import Channel, PlayerStatus, Preferences, PreferredChannel
from tests.api.helpers import DAY, MEMBER_ID, Api, api_client
from tests.support import PROMOTER_ID, opted_in


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        yield client


# -- availability ----------------------------------------------------------------------------


async def test_setting_a_status_answers_the_players_entry_and_shows_on_the_board(api: Api) -> None:
    status, body = await api.post("/api/availability", as_user=MEMBER_ID, json={"status": "LOOKING"})
    assert (status, body) == (200, {"date": "2026-11-24", "status": "LOOKING", "display_name": "Mia"})
    await api.post("/api/availability", json={"status": "MAYBE"})
    await api.post("/api/availability", as_user=MEMBER_ID, json={"status": "AVAILABLE", "date": "2026-11-25"})

    status, body = await api.get("/api/availability", as_user=MEMBER_ID)
    assert status == 200
    assert body == {
        "date": "2026-11-24",
        "counts": {"LOOKING": 1, "AVAILABLE": 0, "MAYBE": 1, "NOT_PLAYING": 0},
        "players": [
            {"display_name": "Mia", "status": "LOOKING"},
            {"display_name": "Promoter", "status": "MAYBE"},
        ],
        "my_status": "LOOKING",
    }
    _, promoters = await api.get("/api/availability")
    assert promoters["my_status"] == "MAYBE"
    status, body = await api.get("/api/availability", params={"date": "2026-11-25"})
    assert body["counts"]["AVAILABLE"] == 1
    assert body["players"] == [{"display_name": "Mia", "status": "AVAILABLE"}]
    assert body["my_status"] is None  # the promoter said nothing about the 25th


async def test_a_null_status_clears_it(api: Api) -> None:
    await api.post("/api/availability", json={"status": "LOOKING"})
    status, body = await api.post("/api/availability", json={"status": None})
    assert (status, body["status"]) == (200, None)
    _, board = await api.get("/api/availability")
    assert board["counts"]["LOOKING"] == 0 and board["players"] == []


async def test_the_default_date_is_today_in_the_promotion_timezone(api: Api) -> None:
    # 23:30 UTC on the 24th is already the 25th in Ljubljana.
    api.h.clock.set(datetime(2026, 11, 24, 23, 30, tzinfo=UTC))
    _, body = await api.post("/api/availability", json={"status": "LOOKING"})
    assert body["date"] == "2026-11-25"


# -- preferences -----------------------------------------------------------------------------


async def test_preferences_start_with_the_defaults(api: Api) -> None:
    status, body = await api.get("/api/availability/promotion-preferences")
    assert status == 200
    assert body == {
        "allow_promotions": False,  # consent is opt-in
        "promotions_chosen": False,
        "preferred_channel": "any",
        "quiet_hours": None,
        "timezone": None,
        "links": {
            "telegram": {"linked": False, "verified_at": None},
            "signal": {"linked": False, "verified_at": None, "number_masked": None},
        },
    }


async def test_a_preferences_update_changes_only_the_fields_given(api: Api) -> None:
    status, body = await api.post(
        "/api/availability/promotion-preferences",
        json={"preferred_channel": "telegram", "quiet_hours": {"start": "23:00", "end": "07:30"},
              "timezone": "America/New_York"},
    )
    assert status == 200
    assert (body["preferred_channel"], body["quiet_hours"], body["timezone"]) == (
        "telegram", {"start": "23:00", "end": "07:30"}, "America/New_York"
    )
    status, body = await api.post("/api/availability/promotion-preferences", json={"allow_promotions": False})
    assert status == 200
    assert body["allow_promotions"] is False
    assert body["preferred_channel"] == "telegram"
    assert body["quiet_hours"] == {"start": "23:00", "end": "07:30"}
    assert body["timezone"] == "America/New_York"

    status, body = await api.post(
        "/api/availability/promotion-preferences", json={"quiet_hours": None, "timezone": None}
    )
    assert (body["quiet_hours"], body["timezone"], body["allow_promotions"]) == (None, None, False)
    _, again = await api.get("/api/availability/promotion-preferences")
    assert again == body
    player = await api.h.engine.player_store.by_discord_id(PROMOTER_ID)
    assert player is not None
    stored = await api.h.engine.player_store.preferences(player.id)
    assert stored == Preferences(False, PreferredChannel.TELEGRAM, None, None, promotions_chosen=True)
    assert body["promotions_chosen"] is True  # "no" is a choice too


async def test_turning_promotions_on_makes_the_player_a_recipient(api: Api) -> None:
    await api.post("/api/availability", json={"status": "LOOKING"})
    _, before = await api.get("/api/availability/promotions/preview")
    assert (before["recipient_count"], before["not_opted_in"]) == (0, 1)
    status, body = await api.post("/api/availability/promotion-preferences", json={"allow_promotions": True})
    assert status == 200 and (body["allow_promotions"], body["promotions_chosen"]) == (True, True)
    _, after = await api.get("/api/availability/promotions/preview")
    assert (after["recipient_count"], after["not_opted_in"]) == (1, 0)


async def test_an_empty_preferences_update_changes_nothing(api: Api) -> None:
    await api.post("/api/availability/promotion-preferences", json={"allow_promotions": False})
    status, body = await api.post("/api/availability/promotion-preferences", json={})
    assert (status, body["allow_promotions"]) == (200, False)


async def test_linked_channels_show_as_linked_without_their_handles(api: Api) -> None:
    await api.h.add_player(MEMBER_ID, "Mia", telegram="555000111", signal="+38640123456")
    status, body = await api.get("/api/availability/promotion-preferences", as_user=MEMBER_ID)
    assert status == 200
    links = body["links"]
    assert links["telegram"] == {"linked": True, "verified_at": "2026-11-24T18:00:00+01:00"}
    assert links["signal"]["linked"] is True and links["signal"]["verified_at"] == "2026-11-24T18:00:00+01:00"
    text = json.dumps(body)
    assert "555000111" not in text and "38640123456" not in text and "gAAAA" not in text


# -- linking ---------------------------------------------------------------------------------


async def test_telegram_link_token(api: Api) -> None:
    status, body = await api.post("/api/availability/link-token", json={"channel": "telegram"})
    assert status == 200
    assert set(body) == {"token", "deep_link", "expires_at"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["token"])
    assert body["deep_link"] == f"https://t.me/rallypoint_bot?start={body['token']}"
    assert body["expires_at"] == "2026-11-24T18:30:00+01:00"


def last_code(api: Api, number: str) -> str:
    found = re.search(r"Your Rallypoint code is (\d{6})\b", api.h.signal.attempts[-1].text)
    assert found and api.h.signal.attempts[-1].address == number
    return found.group(1)


async def test_signal_link_sends_a_code_to_the_normalised_number(api: Api) -> None:
    status, body = await api.post(
        "/api/availability/link-token", json={"channel": "signal", "address": "+386 40 123-456"}
    )
    assert (status, body) == (200, {"expires_at": "2026-11-24T18:15:00+01:00"})
    code = last_code(api, "+38640123456")

    confirm = "/api/availability/link-confirm"
    wrong = "000000" if code != "000000" else "111111"
    status, body = await api.post(confirm, json={"channel": "signal", "code": wrong})
    assert status == 409
    assert body["error"] == {"code": "wrong_code", "message": "Wrong code; 4 tries left."}
    status, body = await api.post(confirm, json={"channel": "signal", "code": f"{code[:3]} {code[3:]}"})
    assert (status, body) == (200, {"linked": True})
    status, body = await api.get("/api/availability/promotion-preferences")
    assert body["links"]["signal"]["linked"] is True


async def test_unlink_removes_a_link_and_answers_the_preferences(api: Api) -> None:
    await api.post("/api/availability/link-token", json={"channel": "signal", "address": "+38640123456"})
    await api.post("/api/availability/link-confirm", json={"channel": "signal", "code": last_code(api, "+38640123456")})
    status, body = await api.post("/api/availability/unlink", json={"channel": "signal"})
    assert status == 200
    assert body["links"]["signal"] == {"linked": False, "verified_at": None, "number_masked": None}
    status, again = await api.get("/api/availability/promotion-preferences")
    assert again == body
    # Nothing left to remove is no error: the answer says how things are.
    status, body = await api.post("/api/availability/unlink", json={"channel": "signal"})
    assert (status, body["links"]["signal"]["linked"]) == (200, False)


async def test_unlink_telegram_leaves_signal_alone(api: Api) -> None:
    await api.h.add_player(PROMOTER_ID, "Promoter", telegram="5001", signal="+38640123456")
    status, body = await api.post("/api/availability/unlink", json={"channel": "telegram"})
    assert status == 200
    assert body["links"]["telegram"]["linked"] is False
    assert body["links"]["signal"]["linked"] is True and body["links"]["signal"]["number_masked"]


async def test_link_requests_are_throttled_per_player(api: Api) -> None:
    for _ in range(5):
        status, _ = await api.post("/api/availability/link-token", json={"channel": "telegram"})
        assert status == 200
    async with api.client.post(
        "/api/availability/link-token", headers=api.auth(), json={"channel": "telegram"}
    ) as response:
        assert response.status == 429
        error = (await response.json())["error"]
        assert error == {
            "code": "rate_limited",
            "message": "Too many Telegram link requests; try again in 60 minutes.",
        }
        assert response.headers["Retry-After"] == "3600"
    # Someone else is not affected.
    status, _ = await api.post(
        "/api/availability/link-token", as_user=MEMBER_ID, json={"channel": "telegram"}
    )
    assert status == 200
    api.h.clock.advance(3600)
    status, _ = await api.post("/api/availability/link-token", json={"channel": "telegram"})
    assert status == 200


async def test_wrong_codes_lock_the_code_even_against_the_right_one(api: Api) -> None:
    await api.post("/api/availability/link-token", json={"channel": "signal", "address": "+38640123456"})
    code = last_code(api, "+38640123456")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        await api.post("/api/availability/link-confirm", json={"channel": "signal", "code": wrong})
    status, body = await api.post("/api/availability/link-confirm", json={"channel": "signal", "code": wrong})
    assert (status, body["error"]) == (
        409, {"code": "code_locked", "message": "Wrong code: too many wrong codes; request a new code."}
    )
    status, body = await api.post("/api/availability/link-confirm", json={"channel": "signal", "code": code})
    assert (status, body["error"]["code"]) == (409, "code_locked")
    status, body = await api.get("/api/availability/promotion-preferences")
    assert body["links"]["signal"]["linked"] is False


async def test_without_telegram_and_signal_the_link_endpoints_are_unavailable(tmp_path) -> None:
    async with api_client(tmp_path, channels=frozenset({Channel.DISCORD})) as api:
        for path, body, message in [
            ("/api/availability/link-token", {"channel": "telegram"}, "Telegram is not set up on this server."),
            (
                "/api/availability/link-token",
                {"channel": "signal", "address": "+38640123456"},
                "Signal is not set up on this server.",
            ),
            (
                "/api/availability/link-confirm",
                {"channel": "signal", "code": "123456"},
                "Signal is not set up on this server.",
            ),
        ]:
            status, answer = await api.post(path, json=body)
            assert (status, answer["error"]) == (409, {"code": "unavailable", "message": message})


# -- promotions ------------------------------------------------------------------------------


async def seed_players(api: Api) -> None:
    await api.h.add_player(1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM),
                           telegram="5001")
    await api.h.add_player(2, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL),
                           signal="+38640111222")
    await api.h.add_player(3, "Cene")
    await api.h.add_player(4, "Dora", status=PlayerStatus.AVAILABLE)
    await api.h.add_player(5, "Eva", status=PlayerStatus.MAYBE)
    await api.h.add_player(6, "Fran", prefs=Preferences(allow_promotions=False, promotions_chosen=True))
    await api.h.add_player(7, "Gal", prefs=Preferences())  # never chose


async def test_preview_lists_who_would_be_reached_and_how(api: Api) -> None:
    await seed_players(api)
    status, body = await api.get("/api/availability/promotions/preview")
    assert status == 200
    recipients = sorted(body.pop("recipients_preview"), key=lambda r: r["display_name"])
    assert body == {
        "campaign_date": "2026-11-24",
        "timezone": "Europe/Ljubljana",
        "reminder_time": "20:45",
        "start_time": "21:00",
        "title": None,
        "recipient_count": 3,
        "not_opted_in": 1,  # Gal is LOOKING but never turned promotions on
        "channels_summary": {"discord": 1, "telegram": 1, "signal": 1},
    }
    # Only name, status and channel: no ids, no handles.
    assert recipients == [
        {"display_name": "Ana", "status": "LOOKING", "selected_channel": "telegram"},
        {"display_name": "Bor", "status": "LOOKING", "selected_channel": "signal"},
        {"display_name": "Cene", "status": "LOOKING", "selected_channel": "discord"},
    ]
    _, wider = await api.get(
        "/api/availability/promotions/preview", params={"include_available": "true", "include_maybe": "1"}
    )
    assert wider["recipient_count"] == 5
    _, narrow = await api.get(
        "/api/availability/promotions/preview", params={"include_available": "false", "include_maybe": "0"}
    )
    assert narrow["recipient_count"] == 3


async def test_create_answers_201_with_the_schedule_in_the_promotion_timezone(api: Api) -> None:
    await seed_players(api)
    status, body = await api.post("/api/availability/promotions/campaigns", json={"include_maybe": True})
    assert status == 201
    assert body == {
        "campaign_id": body["campaign_id"],
        "campaign_date": "2026-11-24",
        "status": "scheduled",
        "recipient_count": 4,
        "channels_summary": {"discord": 2, "telegram": 1, "signal": 1},
        "scheduled_times": {
            "reminder": "2026-11-24T20:45:00+01:00",
            "start": "2026-11-24T21:00:00+01:00",
            "voice_check": "2026-11-24T21:00:30+01:00",
        },
        "dry_run": False,
        "title": None,
    }
    status, again = await api.post("/api/availability/promotions/campaigns", json={})
    assert (status, again["error"]["code"]) == (409, "campaign_exists")


async def test_create_accepts_an_empty_body(api: Api) -> None:
    await seed_players(api)
    async with api.client.post("/api/availability/promotions/campaigns", headers=api.auth()) as response:
        assert response.status == 201


async def test_a_dry_run_reaches_only_the_promoter_and_does_not_use_up_the_day(api: Api) -> None:
    await seed_players(api)
    status, body = await api.post("/api/availability/promotions/campaigns", json={"dry_run": True})
    assert (status, body["dry_run"], body["recipient_count"]) == (201, True, 1)
    assert body["channels_summary"] == {"discord": 1, "telegram": 0, "signal": 0}
    status, real = await api.post("/api/availability/promotions/campaigns", json={})
    assert (status, real["dry_run"]) == (201, False)
    _, current = await api.get("/api/availability/promotions/campaign")
    assert current["campaign"]["id"] == real["campaign_id"]  # the real one wins over the dry run


async def test_a_campaign_with_nobody_looking_is_422(api: Api) -> None:
    status, body = await api.post("/api/availability/promotions/campaigns", json={})
    assert (status, body["error"]["code"]) == (422, "no_recipients")


async def test_status_is_null_without_a_campaign_and_for_other_dates(api: Api) -> None:
    await seed_players(api)
    assert await api.get("/api/availability/promotions/campaign") == (200, {"campaign": None})
    await api.post("/api/availability/promotions/campaigns", json={})
    _, today = await api.get("/api/availability/promotions/campaign", params={"date": DAY.isoformat()})
    assert today["campaign"] is not None
    assert await api.get("/api/availability/promotions/campaign", params={"date": "2026-11-23"}) == (
        200, {"campaign": None}
    )


# -- document --------------------------------------------------------------------------------


DOCUMENTED_OPERATIONS = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/availability/access"),
    ("post", "/api/availability"),
    ("get", "/api/availability"),
    ("get", "/api/availability/promotion-preferences"),
    ("post", "/api/availability/promotion-preferences"),
    ("post", "/api/availability/link-token"),
    ("post", "/api/availability/link-confirm"),
    ("post", "/api/availability/unlink"),
    ("get", "/api/availability/promotions/preview"),
    ("post", "/api/availability/promotions/campaigns"),
    ("get", "/api/availability/promotions/campaign"),
    ("get", "/api/availability/promotions/campaign/events"),
    ("post", "/api/availability/promotions/campaigns/{campaign_id}/cancel"),
    ("post", "/api/availability/promotions/campaigns/{campaign_id}/need"),
    ("get", "/api/availability/promotions/standing"),
    ("post", "/api/availability/promotions/standing"),
    ("delete", "/api/availability/promotions/standing/{session_id}"),
    ("get", "/api/openapi.json"),
}


def refs_in(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs_in(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs_in(value)]
    return []


async def test_the_committed_document_is_the_one_served(api: Api) -> None:
    """docs/openapi.json follows the code: regenerate it with `make openapi`."""
    committed = (Path(__file__).parents[2] / "docs" / "openapi.json").read_text(encoding="utf-8")
    async with api.client.get("/api/openapi.json") as response:
        served = await response.read()
    assert json.loads(committed) == json.loads(served), "docs/openapi.json is stale: run `make openapi`"
    assert committed == document_json(package_version())  # and written exactly as `make openapi` writes it


async def test_the_document_describes_every_row_of_the_design_table(api: Api) -> None:
    status, doc = await api.get("/api/openapi.json", as_user=None)
    assert status == 200
    operations = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert operations == DOCUMENTED_OPERATIONS
    schemas = doc["components"]["schemas"]
    assert "$defs" not in json.dumps(doc)
    for ref in refs_in(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    create = doc["paths"]["/api/availability/promotions/campaigns"]["post"]
    assert "201" in create["responses"] and "409" in create["responses"]
    assert schemas["PreferencesUpdate"]["additionalProperties"] is False
    assert schemas["QuietHours"]["properties"]["start"]["pattern"]
    preview = doc["paths"]["/api/availability/promotions/preview"]["get"]
    preview_params = {p["name"]: p for p in preview["parameters"]}
    assert preview_params["include_available"]["schema"]["type"] == "boolean"
    assert preview_params["include_available"]["in"] == "query"
