"""Who may call what: service tokens, the acting user header, members, non-members and promoters."""

from __future__ import annotations

import re

import pytest

from bot.api.routes import OPERATIONS
from services.models import Actor, PermissionTier
from tests.api.helpers import HASHED_TOKEN, MEMBER_ID, OUTSIDER_ID, TOKEN, Api, api_client
from tests.support import PROMOTER_ID

PROTECTED = [op for op in OPERATIONS if not op.public]


def concrete(path: str) -> str:
    """The path with every parameter filled in (`{campaign_id}`, `{session_id}`, …)."""
    return re.sub(r"\{\w+\}", "1", path)


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        yield client


@pytest.mark.parametrize("op", PROTECTED, ids=lambda op: op.operation_id)
async def test_every_api_operation_refuses_a_caller_without_credentials(api: Api, op) -> None:
    before = await api.dump()
    status, body = await api.call(op.method, concrete(op.path), as_user=None, json={})
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert await api.dump() == before


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", "", f"Token {TOKEN}",
     f"Bearer sha256:{HASHED_TOKEN}"],
)
async def test_a_wrong_or_malformed_token_is_401(api: Api, authorization: str) -> None:
    headers = {"Authorization": authorization, "X-Discord-User-Id": str(PROMOTER_ID)}
    async with api.client.get("/api/availability/access", headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_token_configured_as_its_sha256_digest_is_accepted(api: Api) -> None:
    status, body = await api.get(
        "/api/availability/access", headers=api.auth(MEMBER_ID, token=HASHED_TOKEN)
    )
    assert status == 200
    assert (body["discord_user_id"], body["display_name"]) == (str(MEMBER_ID), "Mia")


async def test_the_bearer_scheme_is_case_insensitive(api: Api) -> None:
    headers = {"Authorization": f"bearer {TOKEN}", "X-Discord-User-Id": str(MEMBER_ID)}
    status, _ = await api.get("/api/availability/access", as_user=None, headers=headers)
    assert status == 200


@pytest.mark.parametrize(
    "user_id", [None, "", "abc", "12a", "-5", "0", "1.5", "10 00", "1" * 21, str(2**64), "0x10"]
)
async def test_a_missing_or_malformed_acting_user_is_400(api: Api, user_id: str | None) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if user_id is not None:
        headers["X-Discord-User-Id"] = user_id
    before = await api.dump()
    async with api.client.post("/api/availability", headers=headers, json={"status": "LOOKING"}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["code"] == "invalid_input"
    assert "X-Discord-User-Id" in error["message"]
    assert await api.dump() == before


async def test_a_non_member_is_told_so_and_never_gets_a_profile(api: Api) -> None:
    status, body = await api.get("/api/availability/access", as_user=OUTSIDER_ID)
    assert (status, body) == (
        200,
        {
            "authenticated": True, "linked": False, "can_promote": False, "discord_user_id": str(OUTSIDER_ID),
            "display_name": None,
        },
    )
    for method, path, kwargs in [
        ("POST", "/api/availability", {"json": {"status": "LOOKING"}}),
        ("GET", "/api/availability/promotion-preferences", {}),
        ("POST", "/api/availability/promotion-preferences", {"json": {"allow_promotions": False}}),
        ("POST", "/api/availability/link-token", {"json": {"channel": "telegram"}}),
        ("GET", "/api/availability/promotions/preview", {}),
        ("POST", "/api/availability/promotions/campaigns", {"json": {}}),
        ("GET", "/api/availability/promotions/campaign", {}),
        ("POST", "/api/availability/promotions/campaigns/1/cancel", {}),
    ]:
        status, body = await api.call(method, path, as_user=OUTSIDER_ID, **kwargs)
        assert (status, body["error"]["code"]) == (403, "not_linked"), (method, path)
    assert await api.h.engine.player_store.by_discord_id(OUTSIDER_ID) is None
    assert (await api.dump())["telegram_link_tokens"] == []  # the linking service refused before anything


async def test_a_non_member_sees_the_counts_but_not_the_names(api: Api) -> None:
    await api.h.add_player(1, "Ana")
    status, body = await api.get("/api/availability", as_user=OUTSIDER_ID)
    assert status == 200
    assert body["counts"]["LOOKING"] == 1
    assert body["players"] is None and body["my_status"] is None
    _, member_view = await api.get("/api/availability", as_user=MEMBER_ID)
    assert member_view["players"] == [{"display_name": "Ana", "status": "LOOKING"}]


async def test_a_member_who_is_not_a_promoter_may_read_status_but_not_promote(api: Api) -> None:
    await api.h.add_player(1, "Ana")
    status, body = await api.get("/api/availability/access", as_user=MEMBER_ID)
    assert (status, body["linked"], body["can_promote"]) == (200, True, False)
    for method, path in [
        ("GET", "/api/availability/promotions/preview"),
        ("POST", "/api/availability/promotions/campaigns"),
        ("POST", "/api/availability/promotions/campaigns/1/cancel"),
    ]:
        status, body = await api.call(method, path, as_user=MEMBER_ID)
        assert (status, body["error"]["code"]) == (403, "not_promoter"), path
    status, body = await api.get("/api/availability/promotions/campaign", as_user=MEMBER_ID)
    assert (status, body) == (200, {"campaign": None})


async def test_an_admin_tier_in_the_permissions_table_may_promote(api: Api) -> None:
    await api.h.engine.player_store.set_tier(MEMBER_ID, PermissionTier.ADMIN, api.h.clock.now())
    status, body = await api.get("/api/availability/access", as_user=MEMBER_ID)
    assert (status, body["can_promote"]) == (200, True)
    status, _ = await api.get("/api/availability/promotions/preview", as_user=MEMBER_ID)
    assert status == 200


async def test_the_promoter_may_preview(api: Api) -> None:
    status, body = await api.get("/api/availability/access")
    assert (status, body["linked"], body["can_promote"]) == (200, True, True)
    status, _ = await api.get("/api/availability/promotions/preview")
    assert status == 200


async def test_health_and_the_document_need_no_credentials(api: Api) -> None:
    status, body = await api.get("/healthz", as_user=None)
    assert (status, body["status"]) == (200, "ok")
    status, doc = await api.get("/api/openapi.json", as_user=None)
    assert (status, doc["openapi"]) == (200, "3.1.0")


async def test_a_first_api_call_creates_the_members_profile_with_their_guild_name(api: Api) -> None:
    api.membership.members[4242] = Actor(4242, True, frozenset(), "Nova")
    assert await api.h.engine.player_store.by_discord_id(4242) is None
    status, _ = await api.get("/api/availability/access", as_user=4242)
    assert status == 200
    player = await api.h.engine.player_store.by_discord_id(4242)
    assert player is not None and player.display_name == "Nova"
