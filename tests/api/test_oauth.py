"""Browser sessions: Discord OAuth2 login against a fake Discord, signed cookies, CSRF, logout."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yarl
from pydantic import SecretStr

from bot.api import OAuthConfig
from bot.api.deps import SIGNER
from bot.api.oauth import PER_CLIENT
from bot.api.sessions import CookieSigner
from bot.config import ConfigError, DiscordSettings, SecuritySettings, Settings
from tests.api.helpers import MEMBER_ID, OUTSIDER_ID, SESSION_SECRET, XHR, Api, FakeDiscordOAuth, api_client


@pytest.fixture
async def discord():
    async with FakeDiscordOAuth().running() as fake:
        yield fake


@pytest.fixture
async def api(tmp_path, discord):
    async with api_client(tmp_path, oauth=discord) as client:
        yield client


async def start_login(api: Api, next_path: str = "/") -> str:
    """Follow /auth/login up to Discord's page; return the state it was given."""
    async with api.client.get("/auth/login", params={"next": next_path}, allow_redirects=False) as response:
        assert response.status == 302
        location = yarl.URL(response.headers["Location"])
        cookie = response.cookies["rp_oauth_state"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
    return location.query["state"]


async def log_in(api: Api, discord: FakeDiscordOAuth, user_id: int = MEMBER_ID, next_path: str = "/") -> str:
    state = await start_login(api, next_path)
    discord.codes["code-1"] = str(user_id)
    async with api.client.get(
        "/auth/callback", params={"code": "code-1", "state": state}, allow_redirects=False
    ) as response:
        assert response.status == 302, await response.text()
        session = response.cookies["rp_session"]
        assert session["httponly"] and session["samesite"] == "Lax" and session["path"] == "/"
        return response.headers["Location"]


async def test_login_sends_the_browser_to_discord_with_a_state(api: Api, discord: FakeDiscordOAuth) -> None:
    async with api.client.get("/auth/login", allow_redirects=False) as response:
        location = yarl.URL(response.headers["Location"])
    api_base = yarl.URL(discord.api_base)
    assert (location.scheme, location.host, location.port) == (api_base.scheme, api_base.host, api_base.port)
    assert location.path == "/oauth2/authorize"
    assert location.query["client_id"] == discord.client_id
    assert location.query["response_type"] == "code"
    assert location.query["scope"] == "identify"
    assert location.query["redirect_uri"] == api.settings.discord.oauth_redirect_uri
    assert len(location.query["state"]) >= 32


async def test_login_callback_session_and_logout(api: Api, discord: FakeDiscordOAuth) -> None:
    assert await log_in(api, discord, next_path="/tonight") == "/tonight"
    exchanged = discord.token_requests[-1]
    assert exchanged["grant_type"] == "authorization_code" and exchanged["code"] == "code-1"
    assert exchanged["redirect_uri"] == api.settings.discord.oauth_redirect_uri

    status, body = await api.get("/api/availability/access", as_user=None)
    assert (status, body["discord_user_id"], body["linked"]) == (200, str(MEMBER_ID), True)

    async with api.client.post("/auth/logout", headers=XHR) as response:
        assert response.status == 204
    status, body = await api.get("/api/availability/access", as_user=None)
    assert (status, body["error"]["code"]) == (401, "unauthorized")


def session_cookie(api: Api) -> str:
    return next(c.value for c in api.client.session.cookie_jar if c.key == "rp_session")


async def test_logout_ends_the_session_on_the_server_not_just_in_the_browser(
    api: Api, discord: FakeDiscordOAuth
) -> None:
    await log_in(api, discord)
    copied = session_cookie(api)  # what an attacker (or a second tab) kept
    async with api.client.post("/auth/logout", headers=XHR) as response:
        assert response.status == 204
    api.client.session.cookie_jar.clear()
    api.client.session.cookie_jar.update_cookies({"rp_session": copied})
    status, body = await api.get("/api/availability/access", as_user=None)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert "not valid" in body["error"]["message"] and "expired" not in body["error"]["message"]
    assert (await api.dump())["web_sessions"] == []


async def test_logout_is_post_only_and_needs_the_xhr_header(api: Api, discord: FakeDiscordOAuth) -> None:
    await log_in(api, discord)
    async with api.client.get("/auth/logout", allow_redirects=False) as response:
        assert response.status == 405  # a link or an <img> elsewhere cannot log anyone out
    async with api.client.post("/auth/logout") as response:
        assert (response.status, (await response.json())["error"]["code"]) == (403, "csrf")
    status, _ = await api.get("/api/availability/access", as_user=None)
    assert status == 200  # still logged in
    assert len((await api.dump())["web_sessions"]) == 1


async def test_the_server_bounds_a_cookies_lifetime_whatever_the_cookie_says(
    api: Api, discord: FakeDiscordOAuth
) -> None:
    await log_in(api, discord)
    genuine = session_cookie(api)
    opened = api.client.app[SIGNER].open("session", genuine, timedelta(days=7))
    assert opened is not None
    # Someone who knows the secret (a weak one, guessed) signs the same session for ten years.
    forged = CookieSigner(SESSION_SECRET, api.h.clock).sign("session", opened.data, timedelta(days=3650))
    api.client.session.cookie_jar.clear()
    api.client.session.cookie_jar.update_cookies({"rp_session": forged})
    assert (await api.get("/api/availability/access", as_user=None))[0] == 401
    # And the genuine cookie stops at the session's end on the server, whatever the browser keeps.
    api.client.session.cookie_jar.clear()
    api.client.session.cookie_jar.update_cookies({"rp_session": genuine})
    api.h.clock.advance(timedelta(days=7, seconds=1).total_seconds())
    status, body = await api.get("/api/availability/access", as_user=None)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert "expired" in body["error"]["message"]


async def test_a_cookie_session_needs_the_xhr_header_to_change_anything(
    api: Api, discord: FakeDiscordOAuth
) -> None:
    await log_in(api, discord)
    before = await api.dump()
    status, body = await api.post("/api/availability", as_user=None, json={"status": "LOOKING"})
    assert (status, body["error"]["code"]) == (403, "csrf")
    status, body = await api.post(
        "/api/availability", as_user=None, json={"status": "LOOKING"},
        headers={"X-Requested-With": "fetch"},
    )
    assert (status, body["error"]["code"]) == (403, "csrf")
    assert await api.dump() == before

    status, body = await api.post("/api/availability", as_user=None, json={"status": "LOOKING"}, headers=XHR)
    assert (status, body["status"], body["display_name"]) == (200, "LOOKING", "Mia")
    status, _ = await api.get("/api/availability/promotion-preferences", as_user=None)
    assert status == 200  # reads need no header


async def test_a_session_of_someone_outside_the_guild_is_not_linked(
    api: Api, discord: FakeDiscordOAuth
) -> None:
    await log_in(api, discord, user_id=OUTSIDER_ID)
    status, body = await api.get("/api/availability/access", as_user=None)
    assert (status, body["linked"], body["discord_user_id"]) == (200, False, str(OUTSIDER_ID))
    status, body = await api.post("/api/availability", as_user=None, json={"status": "LOOKING"}, headers=XHR)
    assert (status, body["error"]["code"]) == (403, "not_linked")


async def test_the_session_expires_with_the_time_signed_into_it(api: Api, discord: FakeDiscordOAuth) -> None:
    await log_in(api, discord)
    api.h.clock.advance(timedelta(days=6, hours=23).total_seconds())
    assert (await api.get("/api/availability/access", as_user=None))[0] == 200
    api.h.clock.advance(timedelta(hours=2).total_seconds())
    status, body = await api.get("/api/availability/access", as_user=None)
    assert (status, body["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize(
    "forged",
    ["garbage", "a.b", "", "eyJkIjp7InVpZCI6IjIwMDAifSwiZXhwIjo5OTk5OTk5OTk5fQ.AAAA", "x" * 5000, "é.é"],
)
async def test_a_forged_session_cookie_is_401_and_called_invalid(api: Api, forged: str) -> None:
    api.client.session.cookie_jar.update_cookies({"rp_session": forged})
    status, body = await api.get("/api/availability/access", as_user=None)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert "not valid" in body["error"]["message"] and "expired" not in body["error"]["message"]


async def test_a_tampered_session_cookie_is_401(api: Api, discord: FakeDiscordOAuth) -> None:
    await log_in(api, discord)
    cookie = next(c for c in api.client.session.cookie_jar if c.key == "rp_session")
    payload, mac = cookie.value.split(".")
    api.client.session.cookie_jar.clear()
    flipped = "A" if mac[0] != "A" else "B"
    api.client.session.cookie_jar.update_cookies({"rp_session": f"{payload}.{flipped}{mac[1:]}"})
    assert (await api.get("/api/availability/access", as_user=None))[0] == 401


async def test_the_login_state_cookie_is_not_a_session(api: Api) -> None:
    await start_login(api)
    state_cookie = next(c for c in api.client.session.cookie_jar if c.key == "rp_oauth_state")
    api.client.session.cookie_jar.clear()
    api.client.session.cookie_jar.update_cookies({"rp_session": state_cookie.value})
    assert (await api.get("/api/availability/access", as_user=None))[0] == 401


async def test_a_callback_with_a_wrong_or_missing_state_is_refused(
    api: Api, discord: FakeDiscordOAuth
) -> None:
    discord.codes["code-1"] = str(MEMBER_ID)
    # No login started here: no state cookie.
    status, body = await api.get("/auth/callback", as_user=None, params={"code": "code-1", "state": "x"})
    assert (status, body["error"]["code"]) == (400, "invalid_state")
    state = await start_login(api)
    for params in [{"code": "code-1", "state": state + "x"}, {"code": "code-1"}, {"state": state}]:
        status, body = await api.get("/auth/callback", as_user=None, params=params)
        assert (status, body["error"]["code"]) == (400, "invalid_state"), params
    assert discord.token_requests == []


async def test_a_stale_login_state_is_refused(api: Api, discord: FakeDiscordOAuth) -> None:
    state = await start_login(api)
    api.h.clock.advance(11 * 60)
    discord.codes["code-1"] = str(MEMBER_ID)
    status, body = await api.get("/auth/callback", as_user=None, params={"code": "code-1", "state": state})
    assert (status, body["error"]["code"]) == (400, "invalid_state")


async def test_a_refused_consent_is_400(api: Api) -> None:
    await start_login(api)
    status, body = await api.get(
        "/auth/callback", as_user=None, params={"error": "access_denied", "error_description": "no"}
    )
    assert (status, body["error"]["code"]) == (400, "oauth_denied")


async def test_a_code_discord_rejects_is_400_and_opens_no_session(
    api: Api, discord: FakeDiscordOAuth
) -> None:
    state = await start_login(api)
    status, body = await api.get("/auth/callback", as_user=None, params={"code": "unknown", "state": state})
    assert (status, body["error"]["code"]) == (400, "oauth_code_rejected")
    assert not any(c.key == "rp_session" for c in api.client.session.cookie_jar)


async def test_credentials_discord_rejects_are_502(api: Api, discord: FakeDiscordOAuth) -> None:
    discord.client_secret = "rotated-on-the-portal"
    state = await start_login(api)
    discord.codes["code-1"] = str(MEMBER_ID)
    status, body = await api.get("/auth/callback", as_user=None, params={"code": "code-1", "state": state})
    assert (status, body["error"]["code"]) == (502, "oauth_failed")


async def test_a_state_works_once(api: Api, discord: FakeDiscordOAuth) -> None:
    state = await start_login(api)
    discord.codes["code-1"] = str(MEMBER_ID)
    discord.codes["code-2"] = str(MEMBER_ID)
    params = {"code": "code-1", "state": state}
    async with api.client.get("/auth/callback", params=params, allow_redirects=False) as response:
        assert response.status == 302
    for code in ("code-1", "code-2"):  # the same state again, even with a fresh code
        status, body = await api.get("/auth/callback", as_user=None, params={"code": code, "state": state})
        assert (status, body["error"]["code"]) == (400, "invalid_state")
    assert len(discord.token_requests) == 1


async def test_a_refused_consent_uses_the_state_up(api: Api, discord: FakeDiscordOAuth) -> None:
    state = await start_login(api)
    status, _ = await api.get("/auth/callback", as_user=None, params={"error": "access_denied", "state": state})
    assert status == 400
    discord.codes["code-1"] = str(MEMBER_ID)
    status, body = await api.get("/auth/callback", as_user=None, params={"code": "code-1", "state": state})
    assert (status, body["error"]["code"]) == (400, "invalid_state")
    assert discord.token_requests == []


async def test_a_restart_forgets_pending_logins(tmp_path, discord: FakeDiscordOAuth) -> None:
    async with api_client(tmp_path / "a", oauth=discord) as before:
        state = await start_login(before)
        cookies = {c.key: c.value for c in before.client.session.cookie_jar}
    async with api_client(tmp_path / "b", oauth=discord) as after:
        after.client.session.cookie_jar.update_cookies(cookies)
        discord.codes["code-1"] = str(MEMBER_ID)
        status, body = await after.get("/auth/callback", as_user=None, params={"code": "code-1", "state": state})
    assert (status, body["error"]["code"]) == (400, "invalid_state")
    assert discord.token_requests == []


async def test_logins_and_callbacks_are_throttled_per_client_address(api: Api) -> None:
    for _ in range(PER_CLIENT.limit):
        async with api.client.get("/auth/login", allow_redirects=False) as response:
            assert response.status == 302
    # X-Forwarded-For is not believed unless api.trusted_proxies says so: the same client.
    for path in ("/auth/login", "/auth/callback"):
        async with api.client.get(path, headers={"X-Forwarded-For": "198.51.100.9"}) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"]["code"] == "rate_limited"
    api.h.clock.advance(PER_CLIENT.window.total_seconds())
    async with api.client.get("/auth/login", allow_redirects=False) as response:
        assert response.status == 302


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance(
    tmp_path, discord: FakeDiscordOAuth
) -> None:
    async with api_client(tmp_path, oauth=discord, trusted_proxies=["127.0.0.1"]) as api:
        for _ in range(PER_CLIENT.limit):
            async with api.client.get("/auth/login", headers={"X-Forwarded-For": "198.51.100.1"}) as response:
                assert response.status != 429
        async with api.client.get("/auth/login", headers={"X-Forwarded-For": "198.51.100.1"}) as response:
            assert response.status == 429
        headers = {"X-Forwarded-For": "198.51.100.2"}
        async with api.client.get("/auth/login", headers=headers, allow_redirects=False) as response:
            assert response.status == 302


async def test_login_never_redirects_off_site(api: Api, discord: FakeDiscordOAuth) -> None:
    for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"]:
        api.client.session.cookie_jar.clear()
        assert await log_in(api, discord, next_path=target) == "/"


async def test_without_oauth_settings_the_login_routes_do_not_exist(tmp_path) -> None:
    async with api_client(tmp_path) as api:
        for path in ["/auth/login", "/auth/callback", "/auth/logout"]:
            status, body = await api.get(path, as_user=None)
            assert (status, body["error"]["code"]) == (404, "not_found")
        api.client.session.cookie_jar.update_cookies({"rp_session": "anything.at-all"})
        assert (await api.get("/api/availability/access", as_user=None))[0] == 401


def test_oauth_config_comes_from_the_settings() -> None:
    complete = DiscordSettings(
        oauth_client_id="id", oauth_client_secret=SecretStr("secret"), oauth_redirect_uri="https://x/cb"
    )
    security = SecuritySettings(session_secret=SecretStr("s" * 32))
    config = OAuthConfig.from_settings(Settings(discord=complete, security=security))
    assert config is not None
    assert config.api_base == "https://discord.com/api/v10"
    assert config.authorize_url == "https://discord.com/oauth2/authorize"
    assert config.secure_cookies

    sandbox = complete.model_copy(update={"api_base_url": "http://127.0.0.1:5555/api/v10/"})
    config = OAuthConfig.from_settings(Settings(discord=sandbox, security=security))
    assert config is not None
    assert config.api_base == "http://127.0.0.1:5555/api/v10"
    assert config.authorize_url == "http://127.0.0.1:5555/oauth2/authorize"

    no_secret = complete.model_copy(update={"oauth_client_secret": SecretStr("")})
    assert OAuthConfig.from_settings(Settings(discord=no_secret, security=security)) is None  # login off


@pytest.mark.parametrize("secret", ["", "x", "s" * 31, "é" * 15])
def test_a_login_with_a_weak_session_secret_is_a_configuration_error(secret: str) -> None:
    complete = DiscordSettings(
        oauth_client_id="id", oauth_client_secret=SecretStr("secret"), oauth_redirect_uri="https://x/cb"
    )
    settings = Settings(discord=complete, security=SecuritySettings(session_secret=SecretStr(secret)))
    with pytest.raises(ConfigError, match=r"^invalid config key security\.session_secret: .*at least 32 bytes"):
        OAuthConfig.from_settings(settings)


def test_the_secure_flag_follows_https_in_any_case() -> None:
    security = SecuritySettings(session_secret=SecretStr("s" * 32))
    cases = [("HTTPS://example.org/cb", True), ("https://example.org/cb", True), ("http://127.0.0.1/cb", False)]
    for uri, secure in cases:
        discord = DiscordSettings(oauth_client_id="id", oauth_client_secret=SecretStr("x"), oauth_redirect_uri=uri)
        config = OAuthConfig.from_settings(Settings(discord=discord, security=security))
        assert config is not None and config.secure_cookies is secure, uri


async def test_https_in_capitals_still_sets_secure_cookies(tmp_path, discord: FakeDiscordOAuth) -> None:
    capitals = "HTTPS://rallypoint.example/auth/callback"
    async with (
        api_client(tmp_path, oauth=discord, redirect_uri=capitals) as api,
        api.client.get("/auth/login", allow_redirects=False) as response,
    ):
        assert response.cookies["rp_oauth_state"]["secure"]


async def test_sessions_past_their_end_are_deleted_at_the_next_login(api: Api, discord: FakeDiscordOAuth) -> None:
    await log_in(api, discord)
    api.h.clock.advance(timedelta(days=8).total_seconds())
    api.client.session.cookie_jar.clear()
    await log_in(api, discord, user_id=OUTSIDER_ID)
    [(_, user_id, _, _)] = (await api.dump())["web_sessions"]
    assert user_id == OUTSIDER_ID
