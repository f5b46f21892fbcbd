"""Sign in with Discord against the emulator: the authorize page, the token endpoint, Bearer users.

The last test runs Rallypoint's own login (`/auth/login` → the emulator's page → `/auth/callback`)
against the emulator, as a browser would.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
import yarl

from bot.api.oauth import PER_CLIENT
from bot.sandbox.discord_emulator import DiscordEmulator
from tests.api.helpers import MEMBER_ID, api_client
from tests.sandbox.discord_fixtures import ALICE, BOB, DAVE, GUILD, MUSIC_BOT, STEP, running_emulator

REDIRECT = "http://127.0.0.1:8080/auth/callback"


class Links(HTMLParser):
    """Collect the page's links: (href, data attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, str | None], str]] = []
        self._open: tuple[str, dict[str, str | None]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            data = dict(attrs)
            self._open = (data.get("href") or "", data)

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.links.append((self._open[0], self._open[1], data))
            self._open = None


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with running_emulator() as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def authorize_url(emulator: DiscordEmulator, **overrides: str) -> yarl.URL:
    params = {
        "response_type": "code",
        "client_id": emulator.oauth_client_id,
        "scope": "identify",
        "state": "st4te",
        "redirect_uri": REDIRECT,
        **overrides,
    }
    return yarl.URL(emulator.oauth_authorize_url).with_query(params)


def basic(emulator: DiscordEmulator, secret: str | None = None) -> dict[str, str]:
    pair = f"{emulator.oauth_client_id}:{secret or emulator.oauth_client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def exchange(
    http: aiohttp.ClientSession, emulator: DiscordEmulator, code: str, *, redirect_uri: str = REDIRECT, **auth: str
) -> tuple[int, dict[str, str]]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    async with http.post(
        f"{emulator.api_base_url}/oauth2/token", data=form, headers=auth or basic(emulator)
    ) as resp:
        return resp.status, await resp.json()


async def test_the_page_lists_the_guilds_members_and_a_link_signs_in(
    emulator: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.add_member(GUILD, 1_400_000_000_000_000_099, "mallory", nick="<script>alert(1)</script>")
    async with asyncio.timeout(STEP), http.get(authorize_url(emulator)) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        page = await resp.text()
    assert "<script>" not in page and "&lt;script&gt;" in page  # names are escaped
    parser = Links()
    parser.feed(page)
    members = {int(str(data["data-user-id"])): text for _, data, text in parser.links if "data-user-id" in data}
    assert members[ALICE] == "Ali" and members[BOB] == "Bob"  # nickname, else global name, else username
    assert MUSIC_BOT not in members and DAVE not in members  # bots and non-members are not offered

    href = next(h for h, data, _ in parser.links if data.get("data-user-id") == str(BOB))
    async with http.get(yarl.URL(emulator.oauth_authorize_url).join(yarl.URL(href)), allow_redirects=False) as resp:
        assert resp.status == 302
        back = yarl.URL(resp.headers["Location"])
    assert str(back.with_query(None)) == REDIRECT and back.query["state"] == "st4te"
    status, token = await exchange(http, emulator, back.query["code"])
    assert status == 200
    assert token["token_type"] == "Bearer" and token["scope"] == "identify" and token["expires_in"] == 604800
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    async with http.get(f"{emulator.api_base_url}/users/@me", headers=bearer) as resp:
        assert resp.status == 200 and (await resp.json())["id"] == str(BOB)
    assert emulator.oauth_sign_ins == [BOB]
    assert emulator.global_rate_limited == 0 and emulator.requests["GET /users/@me"] == 1


async def test_cancel_redirects_with_access_denied(emulator: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get(authorize_url(emulator)) as resp:
        parser = Links()
        parser.feed(await resp.text())
    cancel = next(h for h, data, _ in parser.links if "data-cancel" in data)
    back = yarl.URL(cancel)
    assert back.query["error"] == "access_denied" and back.query["state"] == "st4te"
    assert str(back.with_query(None)) == REDIRECT


async def test_user_id_signs_in_without_the_page(emulator: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    url = authorize_url(emulator).update_query(user_id=str(DAVE))  # any human user, member or not
    async with http.get(url, allow_redirects=False) as resp:
        code = yarl.URL(resp.headers["Location"]).query["code"]
    status, token = await exchange(http, emulator, code)
    assert status == 200
    async with http.get(
        f"{emulator.api_base_url}/users/@me", headers={"Authorization": f"Bearer {token['access_token']}"}
    ) as resp:
        assert (await resp.json())["id"] == str(DAVE)
    for who in ("not-a-number", str(MUSIC_BOT), "42"):
        async with http.get(authorize_url(emulator).update_query(user_id=who), allow_redirects=False) as resp:
            assert resp.status == 400 and "Location" not in resp.headers


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"client_id": "123"}, "client_id"),
        ({"redirect_uri": "https://evil.example/cb"}, "redirect_uri"),
        ({"redirect_uri": ""}, "redirect_uri"),
        ({"response_type": "token"}, "response_type"),
        ({"scope": ""}, "scope"),
    ],
)
async def test_bad_authorize_requests_get_an_error_page_never_a_redirect(
    emulator: DiscordEmulator, http: aiohttp.ClientSession, overrides: dict[str, str], problem: str
) -> None:
    url = authorize_url(emulator, **overrides).update_query(user_id=str(ALICE))
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == 400 and "Location" not in resp.headers
        assert problem in await resp.text()
    assert emulator.oauth_sign_ins == []


async def test_registered_redirect_uris_replace_the_loopback_default(
    emulator: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.add_oauth_redirect_uri("http://127.0.0.1:9999/auth/callback")
    async with http.get(authorize_url(emulator), allow_redirects=False) as resp:
        assert resp.status == 400
    url = authorize_url(emulator, redirect_uri="http://127.0.0.1:9999/auth/callback")
    async with http.get(url) as resp:
        assert resp.status == 200


async def test_the_token_endpoint_applies_oauths_rules(emulator: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    code = emulator.oauth_code_for(ALICE, REDIRECT)
    assert await exchange(http, emulator, code, **basic(emulator, "wrong")) == (401, {"error": "invalid_client"})
    # Nobody without the secret can use a code up; a wrong redirect_uri from the client does.
    status, body = await exchange(http, emulator, code, redirect_uri="http://127.0.0.1:8080/other")
    assert (status, body["error"]) == (400, "invalid_grant") and "redirect_uri" in body["error_description"]
    assert (await exchange(http, emulator, code))[1]["error"] == "invalid_grant"

    code = emulator.oauth_code_for(ALICE, REDIRECT)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    form |= {"client_id": emulator.oauth_client_id, "client_secret": emulator.oauth_client_secret}
    async with http.post(f"{emulator.api_base_url}/oauth2/token", data=form) as resp:  # credentials in the form
        assert resp.status == 200
    assert (await exchange(http, emulator, code))[0] == 400  # single use

    form = {"grant_type": "client_credentials"}
    async with http.post(f"{emulator.api_base_url}/oauth2/token", data=form, headers=basic(emulator)) as resp:
        assert (resp.status, await resp.json()) == (400, {"error": "unsupported_grant_type"})


async def test_codes_expire_and_bearer_tokens_only_read_the_user() -> None:
    now = [1000.0]
    async with running_emulator(clock=lambda: now[0]) as emulator, aiohttp.ClientSession() as http:
        code = emulator.oauth_code_for(ALICE, REDIRECT)
        now[0] += 601
        assert (await exchange(http, emulator, code))[1]["error"] == "invalid_grant"
        _, token = await exchange(http, emulator, emulator.oauth_code_for(ALICE, REDIRECT))
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        async with http.get(f"{emulator.api_base_url}/guilds/{GUILD}", headers=bearer) as resp:
            assert resp.status == 401  # an identify token is not a bot token
        async with http.get(f"{emulator.api_base_url}/users/@me", headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401


@dataclass(frozen=True)
class EmulatorAsOAuthProvider:
    """What the API test helpers read from an OAuth provider, taken from the emulator."""

    api_base: str
    client_id: str
    client_secret: str


async def test_rallypoints_login_through_the_emulators_page(tmp_path: Path) -> None:
    async with running_emulator() as emulator, aiohttp.ClientSession() as browser:
        emulator.add_member(GUILD, MEMBER_ID, "mia", nick="Mia")
        provider = EmulatorAsOAuthProvider(
            emulator.api_base_url, emulator.oauth_client_id, emulator.oauth_client_secret
        )
        async with api_client(tmp_path, oauth=provider) as api:  # type: ignore[arg-type]
            async with api.client.get("/auth/login", allow_redirects=False) as resp:
                page_url = yarl.URL(resp.headers["Location"])
            assert str(page_url.with_query(None)) == emulator.oauth_authorize_url
            async with browser.get(page_url) as resp:
                page = await resp.text()
            link = re.search(rf'href="([^"]+)" data-user-id="{MEMBER_ID}"', page)
            assert link is not None
            chosen = page_url.join(yarl.URL(link.group(1).replace("&amp;", "&")))
            async with browser.get(chosen, allow_redirects=False) as resp:
                back = yarl.URL(resp.headers["Location"])
            async with api.client.get(back.path_qs, allow_redirects=False) as resp:
                assert resp.status == 302, await resp.text()
            async with api.client.get("/api/availability/access") as resp:
                access = await resp.json()
        assert access["authenticated"] and access["discord_user_id"] == str(MEMBER_ID)
        assert emulator.oauth_sign_ins == [MEMBER_ID]


async def test_300_callbacks_with_one_state_cost_discord_at_most_one_token_request(tmp_path: Path) -> None:
    """One state and its cookie, taken from /auth/login and replayed 300 times at once (issue 12)."""
    async with running_emulator() as emulator:
        emulator.add_member(GUILD, MEMBER_ID, "mia", nick="Mia")
        provider = EmulatorAsOAuthProvider(
            emulator.api_base_url, emulator.oauth_client_id, emulator.oauth_client_secret
        )
        async with api_client(tmp_path, oauth=provider) as api:  # type: ignore[arg-type]
            async with api.client.get("/auth/login", allow_redirects=False) as resp:
                state = yarl.URL(resp.headers["Location"]).query["state"]

            async def callback(n: int) -> int:
                params = {"code": f"g{n}", "state": state}
                async with api.client.get("/auth/callback", params=params, allow_redirects=False) as resp:
                    return resp.status

            async with asyncio.timeout(STEP * 4):
                statuses = await asyncio.gather(*(callback(n) for n in range(300)))
        assert emulator.requests["POST /oauth2/token"] == 1  # the first callback spends the state
        assert set(statuses) <= {400, 429}  # the codes are made up: Discord refuses the one it is shown
        assert statuses.count(429) >= 300 - PER_CLIENT.limit  # and the address is throttled besides
