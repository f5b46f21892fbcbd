"""The API over a real SQLite engine (tests.support) and a fake clock, plus fakes of its neighbours.

- The engine is the real one, linking service included; its senders record what they were given.
- `FakeDiscordOAuth`: Discord's `/oauth2/token` and `/users/@me` on 127.0.0.1, for the login flow.
- `api_client()`: the app behind aiohttp's TestServer/TestClient, with helpers to call it as a user.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.api import ApiDeps, OAuthConfig, StaticMembership, create_app
from bot.api.events import StreamLimits
from bot.config import ApiSettings, DiscordSettings, SecuritySettings, Settings
from services.clock import FakeClock
from services.models import Actor, Channel, Preferences
from tests.support import PROMOTER_ID, Harness, local, make_harness

DAY = date(2026, 11, 24)
TOKEN = "plain-service-token-for-tests"
HASHED_TOKEN = "another-token-stored-as-a-digest"
SESSION_SECRET = "a-session-secret-that-is-long-enough-for-hmac"
MEMBER_ID = 2000
OUTSIDER_ID = 3000
XHR = {"X-Requested-With": "XMLHttpRequest"}
ONE_EVENT = StreamLimits(lifetime=timedelta(0))

MEMBERS = {
    PROMOTER_ID: Actor(PROMOTER_ID, True, frozenset(), "Promoter"),
    MEMBER_ID: Actor(MEMBER_ID, True, frozenset(), "Mia"),
}


@dataclass
class FakeDiscordOAuth:
    """Discord's token endpoint and /users/@me: `codes` maps an authorization code to a user id."""

    client_id: str = "rallypoint-client"
    client_secret: str = "rallypoint-client-secret"
    codes: dict[str, str] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def api_base(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/api/v10"))

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            login, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
            return (login, password) == (self.client_id, self.client_secret)
        return (form.get("client_id"), form.get("client_secret")) == (self.client_id, self.client_secret)

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        user_id = self.codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or user_id is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({
            "access_token": f"access-{user_id}", "token_type": "Bearer", "expires_in": 604800,
            "refresh_token": "unused", "scope": "identify",
        })

    async def me(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer access-"):
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        user_id = auth.removeprefix("Bearer access-")
        return web.json_response({"id": user_id, "username": f"user{user_id}", "global_name": None})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeDiscordOAuth]:
        app = web.Application()
        app.router.add_post("/api/v10/oauth2/token", self.token)
        app.router.add_get("/api/v10/users/@me", self.me)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        try:
            yield self
        finally:
            await self.server.close()


READY = {"gateway": "ok", "database": "ok", "scheduler": "ok"}


@dataclass
class SetReadiness:
    """A readiness probe whose answers the test sets (the real one runs in the end-to-end tests)."""

    state: dict[str, str] = field(default_factory=lambda: dict(READY))

    async def checks(self) -> dict[str, str]:
        return dict(self.state)


@dataclass
class Api:
    h: Harness
    client: TestClient[web.Request, web.Application]
    membership: StaticMembership
    settings: Settings
    readiness: SetReadiness

    @staticmethod
    def auth(user_id: int | None = PROMOTER_ID, token: str = TOKEN) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if user_id is not None:
            headers["X-Discord-User-Id"] = str(user_id)
        return headers

    async def call(
        self, method: str, path: str, *, as_user: int | None = PROMOTER_ID, **kwargs: Any
    ) -> tuple[int, Any]:
        """Call as `as_user` with the service token (None: no credentials); return status and JSON."""
        headers = dict(kwargs.pop("headers", {}))
        if as_user is not None:
            headers = {**self.auth(as_user), **headers}
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, **kwargs)

    async def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        return await dump_tables(self.h)


async def dump_tables(h: Harness) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: compare before and after a refused request."""
    async with h.engine.db.read() as tx:
        names = [
            r["name"]
            for r in await tx.fetchall(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            name: sorted(tuple(r) for r in await tx.fetchall(f"SELECT * FROM {name}"))  # noqa: S608
            for name in names
        }


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP answer as it came over the socket."""

    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """One HTTP/1.1 request as bytes: headers exactly as given (repeated, not UTF-8, ...), then close."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def raw_exchange(port: int, request: bytes, *, host: str = "127.0.0.1") -> RawAnswer:
    """Send `request` as it is and read the answer until the server closes the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in header_lines)]
    return RawAnswer(int(status_line.split()[1]), headers, body)


def make_settings(
    *,
    oauth: FakeDiscordOAuth | None = None,
    redirect_uri: str = "",
    trusted_proxies: list[str] | None = None,
    metrics: bool = True,
) -> Settings:
    discord = DiscordSettings()
    if oauth is not None:
        discord = DiscordSettings(
            api_base_url=oauth.api_base,
            oauth_client_id=oauth.client_id,
            oauth_client_secret=SecretStr(oauth.client_secret),
            oauth_redirect_uri=redirect_uri or "http://127.0.0.1:8080/auth/callback",
        )
    digest = hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()
    return Settings(
        discord=discord,
        api=ApiSettings(
            service_tokens=[SecretStr(TOKEN), SecretStr(f"sha256:{digest}")],
            trusted_proxies=trusted_proxies or [],
            metrics=metrics,
        ),
        security=SecuritySettings(session_secret=SecretStr(SESSION_SECRET)),
    )


@asynccontextmanager
async def api_client(
    tmp_path: Path,
    *,
    channels: frozenset[Channel] = frozenset(Channel),
    oauth: FakeDiscordOAuth | None = None,
    start: datetime | None = None,
    redirect_uri: str = "",
    trusted_proxies: list[str] | None = None,
    metrics: bool = True,
    streams: StreamLimits | None = None,
    clock: FakeClock | None = None,
) -> AsyncIterator[Api]:
    """The API app over a fresh database at 18:00 on DAY, the promoter's and Mia's profiles created.

    `channels` are the channels with a sender (Telegram and Signal linking need theirs). Event
    streams end after their first event unless `streams` says otherwise: on the fake clock, a
    stream that waits would move time on for everyone.
    """
    h = await make_harness(tmp_path / "api.sqlite3", start or local(DAY, 18, 0), channels=channels, clock=clock)
    # Profiles as first use creates them: no choice about promotions yet.
    await h.add_player(PROMOTER_ID, "Promoter", status=None, prefs=Preferences())
    await h.add_player(MEMBER_ID, "Mia", status=None, prefs=Preferences())
    membership = StaticMembership(MEMBERS)
    settings = make_settings(
        oauth=oauth, redirect_uri=redirect_uri, trusted_proxies=trusted_proxies, metrics=metrics
    )
    readiness = SetReadiness()
    deps = ApiDeps(
        promote=h.engine.promote,
        standing=h.engine.standing,
        need=h.engine.need,
        players=h.engine.players,
        linking=h.engine.linking,
        sessions=h.engine.web_sessions,
        membership=membership,
        clock=h.clock,
        readiness=readiness,
        metrics=h.engine.metrics,
        changes=h.engine.db.changes,
        oauth=OAuthConfig.from_settings(settings),
        streams=streams or ONE_EVENT,
    )
    client = TestClient(TestServer(create_app(deps, settings), host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield Api(h, client, membership, settings, readiness)
    finally:
        await client.close()
        await h.engine.db.close()
