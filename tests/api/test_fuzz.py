"""Property-based fuzzing driven by the OpenAPI document.

For every operation, hypothesis draws requests from the operation's own schemas (bodies, query and
path parameters), from mutations of them and from plain junk, sent by a promoter, a member or an
outsider. Whatever comes in: never a 5xx, every error has the documented shape, every success has a
documented status, and a refused request (4xx) leaves every table exactly as it was.

The same requests also go, byte for byte, to the production server (`start_api`) with hostile
headers added: the caller's headers repeated, bytes that are not UTF-8 (or not text at all) in
any of them. The same promises hold there, down to the parser's own refusals.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from bot.api import bound_port, create_app, start_api, stop_api
from bot.api.deps import DEPS
from bot.api.openapi import build_openapi
from services.models import PlayerStatus, Preferences, PreferredChannel
from tests.api.helpers import MEMBER_ID, OUTSIDER_ID, TOKEN, Api, api_client, raw_exchange, raw_request
from tests.support import PROMOTER_ID

DOC = build_openapi()
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in DOC["paths"].items()
    for method, operation in item.items()
]

JSON_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values matching a JSON schema, for the subset pydantic writes."""
    if "$ref" in schema:
        return from_schema(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(branch) for branch in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {name: from_schema(s) for name, s in properties.items() if name in required},
            optional={name: from_schema(s) for name, s in properties.items() if name not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=3)
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "null":
        return st.none()
    if kind == "string":
        if schema.get("format") == "date":
            near = st.dates(date(2026, 11, 20), date(2026, 12, 31))
            return st.one_of(near, st.dates()).map(date.isoformat)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        text = st.text(max_size=schema.get("maxLength", 40))
        return st.one_of(st.sampled_from(schema["examples"]), text) if "examples" in schema else text
    return JSON_JUNK


def as_query_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def body_strategy(schema: dict[str, Any], required: bool) -> st.SearchStrategy[bytes]:
    valid = from_schema(schema)
    mutated = st.tuples(valid, st.text(max_size=12), JSON_JUNK).map(
        lambda t: {**t[0], t[1]: t[2]} if isinstance(t[0], dict) else t[0]
    )
    bodies = [
        valid.map(json.dumps),
        valid.map(json.dumps),
        mutated.map(json.dumps),
        JSON_JUNK.map(json.dumps),
        st.binary(max_size=64),
    ]
    if not required:
        bodies.append(st.just(b""))
    return st.one_of(bodies).map(lambda b: b.encode() if isinstance(b, str) else b)


@dataclass(frozen=True)
class Drawn:
    actor: int
    path: str
    query: list[tuple[str, str]]
    body: bytes | None


def request_strategy(path: str, operation: dict[str, Any]) -> st.SearchStrategy[Drawn]:
    parameters = operation.get("parameters", [])
    query_values = {
        p["name"]: st.one_of(from_schema(p["schema"]).map(as_query_value), st.text(max_size=12))
        for p in parameters
        if p["in"] == "query"
    }
    query = st.tuples(
        st.fixed_dictionaries({}, optional=query_values),
        st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=1),
    ).map(lambda t: sorted({**t[1], **t[0]}.items()))
    path_values = {
        p["name"]: st.one_of(
            from_schema(p["schema"]).map(str),
            st.sampled_from(["1", "2", "3"]),
            st.text(alphabet="0123456789abc-", min_size=1, max_size=25),
        )
        for p in parameters
        if p["in"] == "path"
    }
    concrete_path = st.fixed_dictionaries(path_values).map(
        lambda values: path.format(**{k: URL.build(path=v).raw_path for k, v in values.items()})
    )
    body: st.SearchStrategy[bytes | None] = st.none()
    if "requestBody" in operation:
        content = operation["requestBody"]["content"]["application/json"]["schema"]
        body = body_strategy(content, operation["requestBody"]["required"])
    actor = st.sampled_from([PROMOTER_ID, PROMOTER_ID, PROMOTER_ID, MEMBER_ID, OUTSIDER_ID])
    return st.builds(Drawn, actor=actor, path=concrete_path, query=query, body=body)


HEADER_NAMES = [
    b"Authorization", b"X-Discord-User-Id", b"X-Requested-With", b"Cookie", b"Content-Type", b"User-Agent",
    b"X-Forwarded-For", b"Content-Length",
]
HEADER_VALUES = st.one_of(
    st.binary(max_size=24).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from(
        [f"Bearer {TOKEN}".encode(), f"Bearer {TOKEN}\xff".encode("latin-1"), b"Bearer \xc3\x28",
         str(PROMOTER_ID).encode(), str(MEMBER_ID).encode(), b"\xff\xfe", b"XMLHttpRequest", b"rp_session=\xff.x",
         b"application/json", b"12"]
    ),
)


@dataclass(frozen=True)
class Hostile:
    drawn: Drawn
    authorization: bytes  # the first Authorization header: usually the real token
    extra_headers: list[tuple[bytes, bytes]]

    def request(self, method: str) -> bytes:
        query = "&".join(f"{URL.build(query={k: v}).raw_query_string}" for k, v in self.drawn.query)
        target = self.drawn.path + (f"?{query}" if query else "")
        headers = [
            (b"Authorization", self.authorization),
            (b"X-Discord-User-Id", str(self.drawn.actor).encode()),
            *self.extra_headers,
        ]
        return raw_request(method, target, headers, self.drawn.body or b"")


def hostile_strategy(drawn: Drawn) -> st.SearchStrategy[Hostile]:
    return st.builds(
        Hostile,
        drawn=st.just(drawn),
        authorization=st.one_of(st.just(f"Bearer {TOKEN}".encode()), HEADER_VALUES),
        extra_headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), HEADER_VALUES), max_size=4),
    )


@dataclass
class FuzzEnv:
    runner: asyncio.Runner
    api: Api
    port: int  # the same app behind the production server

    async def exchange_raw(self, method: str, hostile: Hostile) -> tuple[int, Any, bool]:
        before = await self.api.dump()
        answer = await raw_exchange(self.port, hostile.request(method))
        unchanged = await self.api.dump() == before
        # Every answer is JSON but the Prometheus text of GET /metrics.
        json_body = (answer.header("content-type") or "").startswith("application/json")
        return answer.status, json.loads(answer.body) if json_body else answer.body.decode(), unchanged

    async def exchange(self, method: str, drawn: Drawn) -> tuple[int, Any, bool]:
        before = await self.api.dump()
        async with self.api.client.request(
            method, drawn.path, params=drawn.query, data=drawn.body, headers=self.api.auth(drawn.actor)
        ) as response:
            status = response.status
            # Every answer is JSON but the Prometheus text of GET /metrics and the event stream (their
            # own tests read them).
            raw = await response.read()
            payload = json.loads(raw) if response.content_type == "application/json" else raw.decode()
        unchanged = await self.api.dump() == before
        return status, payload, unchanged


async def seed(api: Api) -> None:
    h = api.h
    telegram_first = Preferences(preferred_channel=PreferredChannel.TELEGRAM)
    await h.add_player(1, "Ana", prefs=telegram_first, telegram="5001")
    await h.add_player(2, "Bor", status=PlayerStatus.AVAILABLE, signal="+38640111222")
    await h.add_player(3, "Cene", status=PlayerStatus.MAYBE)
    await h.engine.promote.create(h.actor(), dry_run=True)


@pytest.fixture
def env(tmp_path) -> Iterator[FuzzEnv]:
    # Hypothesis calls the test synchronously once per example; one loop keeps the app and the
    # database alive across the examples of an operation.
    with asyncio.Runner() as runner:
        context = api_client(tmp_path)
        api = runner.run(context.__aenter__())
        try:
            runner.run(seed(api))
            # The operations below come from the document the app serves.
            status, served = runner.run(api.get("/api/openapi.json", as_user=None))
            assert status == 200
            assert {k: served[k] for k in ("paths", "components")} == json.loads(
                json.dumps({k: DOC[k] for k in ("paths", "components")})
            )
            server = runner.run(start_api(create_app(api.client.app[DEPS], api.settings), "127.0.0.1", 0))
            try:
                yield FuzzEnv(runner, api, bound_port(server))
            finally:
                runner.run(stop_api(server))
        finally:
            runner.run(context.__aexit__(None, None, None))


EVERY_OPERATION = pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_answer(operation: dict[str, Any], status: int, payload: Any, unchanged: bool) -> None:
    """Never a 5xx; an error in the documented shape changes nothing; a success has a documented status."""
    assert status < 500, payload
    if status >= 400:
        assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
        assert unchanged, (status, payload)
    else:
        assert str(status) in operation["responses"], (status, payload)


@EVERY_OPERATION
@FUZZ
@given(data=st.data())
def test_no_request_breaks_the_api_or_changes_data_when_refused(
    env: FuzzEnv, method: str, path: str, operation: dict[str, Any], data: st.DataObject
) -> None:
    drawn = data.draw(request_strategy(path, operation))
    check_answer(operation, *env.runner.run(env.exchange(method, drawn)))


@EVERY_OPERATION
@FUZZ
@given(data=st.data())
def test_hostile_headers_never_break_the_api_or_change_data_when_refused(
    env: FuzzEnv, method: str, path: str, operation: dict[str, Any], data: st.DataObject
) -> None:
    hostile = data.draw(request_strategy(path, operation).flatmap(hostile_strategy))
    check_answer(operation, *env.runner.run(env.exchange_raw(method, hostile)))
