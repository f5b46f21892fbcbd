"""Requests that could be read two ways, and header bytes that are not text: a clear 4xx, never a guess
or a 500, and nothing stored changes."""

from __future__ import annotations

import logging

import pytest
from multidict import CIMultiDict

from bot.api.routes import OPERATIONS
from tests.api.helpers import MEMBER_ID, TOKEN, Api, api_client, raw_exchange, raw_request
from tests.support import PROMOTER_ID

CREATE = "/api/availability/promotions/campaigns"
PREFS = "/api/availability/promotion-preferences"
GETS = [op for op in OPERATIONS if op.method == "GET"]


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        await client.h.add_player(1, "Ana")
        yield client


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff\xfe", b"Bearer " + TOKEN.encode() + b"\xc3", b"\xffBearer " + TOKEN.encode(), b"Bearer \xe2\x82"],
)
async def test_a_non_utf8_byte_in_authorization_is_a_401_not_a_500(
    api: Api, authorization: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    before = await api.dump()
    request = raw_request(
        "POST", "/api/availability",
        [(b"Authorization", authorization), (b"X-Discord-User-Id", str(PROMOTER_ID).encode()),
         (b"Content-Type", b"application/json")],
        b'{"status": "LOOKING"}',
    )
    answer = await raw_exchange(api.client.server.port, request)  # type: ignore[arg-type]
    assert answer.status == 401
    assert "application/json" in str(answer.header("content-type"))
    assert answer.json()["error"]["code"] == "unauthorized"
    assert await api.dump() == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "other_user", [str(MEMBER_ID), str(PROMOTER_ID)], ids=["different values", "the same value twice"]
)
@pytest.mark.parametrize("twice", ["Authorization", "X-Discord-User-Id"])
async def test_the_caller_named_twice_is_400(api: Api, twice: str, other_user: str) -> None:
    headers = CIMultiDict(api.auth(PROMOTER_ID))
    headers.add(twice, f"Bearer {TOKEN}" if twice == "Authorization" else other_user)
    before = await api.dump()
    async with api.client.post(CREATE, headers=headers, json={"dry_run": True}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["code"] == "ambiguous_request"
    assert twice in error["message"]
    assert await api.dump() == before


@pytest.mark.parametrize(
    "cookies", [[b"rp_session=a.b; rp_session=c.d"], [b"rp_session=a.b", b"other=1; rp_session=c.d"]]
)
async def test_the_session_cookie_given_twice_is_400(api: Api, cookies: list[bytes]) -> None:
    headers = [(b"Cookie", c) for c in cookies] + [(b"X-Requested-With", b"XMLHttpRequest")]
    request = raw_request("GET", "/api/availability/access", headers)
    answer = await raw_exchange(api.client.server.port, request)  # type: ignore[arg-type]
    assert (answer.status, answer.json()["error"]["code"]) == (400, "ambiguous_request")
    assert "rp_session" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CREATE, b'{"dry_run": false, "dry_run": true}'),
        (CREATE, b'{"dry_run": true, "include_maybe": false, "dry_run": true}'),
        (PREFS, b'{"quiet_hours": {"start": "23:00", "end": "07:00", "start": "22:00"}}'),
        ("/api/availability", b'{"status": "LOOKING", "status": "MAYBE"}'),
    ],
)
async def test_a_json_key_given_twice_is_400(api: Api, path: str, body: bytes) -> None:
    before = await api.dump()
    status, answer = await api.post(path, data=body, headers={"Content-Type": "application/json"})
    assert (status, answer["error"]["code"]) == (400, "invalid_input")
    assert "more than once" in answer["error"]["message"]
    assert await api.dump() == before


async def test_json_without_repeated_keys_still_works(api: Api) -> None:
    status, body = await api.post(CREATE, data=b'{"dry_run": true, "include_maybe": false}')
    assert (status, body["dry_run"]) == (201, True)


@pytest.mark.parametrize("op", GETS, ids=lambda op: op.operation_id)
@pytest.mark.parametrize("as_user", [PROMOTER_ID, None], ids=["authenticated", "anonymous"])
async def test_head_on_a_get_route_answers_like_get_without_a_body(api: Api, op, as_user: int | None) -> None:
    headers = api.auth(as_user) if as_user is not None else {}
    async with api.client.get(op.path, headers=headers) as got:
        await got.read()
    async with api.client.head(op.path, headers=headers) as head:
        assert head.status == got.status
        assert head.content_type == got.content_type
        assert await head.read() == b""


async def test_the_server_header_names_no_software_version(api: Api) -> None:
    for path in ("/healthz", "/api/nope"):
        async with api.client.get(path) as response:
            assert response.headers["Server"] == "Rallypoint"
