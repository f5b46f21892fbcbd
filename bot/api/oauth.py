"""Browser login with Discord OAuth2 (authorization code): /auth/login, /auth/callback, /auth/logout.

Only the user's id is kept, in a signed session cookie; membership and roles are looked up on
each request, so a user who leaves the guild loses access within the membership cache's lifetime.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import yarl
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.api.auth import SESSION_COOKIE, SESSION_PURPOSE, parse_snowflake
from bot.api.deps import DEPS, HTTP, SIGNER, OAuthConfig
from bot.api.errors import InvalidState, OAuthDenied, OAuthFailed
from services.errors import InvalidInput

log = logging.getLogger(__name__)

STATE_COOKIE: Final = "rp_oauth_state"
STATE_PURPOSE: Final = "oauth_state"
LOGIN_PATH: Final = "/auth/login"
CALLBACK_PATH: Final = "/auth/callback"
LOGOUT_PATH: Final = "/auth/logout"
OAUTH_PATHS: Final = frozenset({LOGIN_PATH, CALLBACK_PATH, LOGOUT_PATH})
_MAX_PARAM = 512


class _TokenAnswer(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret


class _DiscordUser(BaseModel):
    id: str


def _oauth(request: web.Request) -> OAuthConfig:
    config = request.app[DEPS].oauth
    if config is None:  # the routes exist only when it is set
        raise web.HTTPNotFound()
    return config


def _local_path(target: object) -> str:
    """Where to go after login: a path on this site only (no open redirect)."""
    if (
        isinstance(target, str)
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and len(target) <= _MAX_PARAM
        and target.isascii()
        and target.isprintable()
    ):
        return target
    return "/"


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


async def login(request: web.Request) -> web.Response:
    """Send the browser to Discord's consent page with a fresh `state` kept in a signed cookie."""
    config = _oauth(request)
    state = secrets.token_urlsafe(24)
    url = yarl.URL(config.authorize_url).update_query(
        response_type="code",
        client_id=config.client_id,
        scope=" ".join(config.scopes),
        state=state,
        redirect_uri=config.redirect_uri,
    )
    response = _redirect(str(url))
    cookie = request.app[SIGNER].sign(
        STATE_PURPOSE, {"state": state, "next": _local_path(request.query.get("next"))}, config.state_ttl
    )
    response.set_cookie(
        STATE_COOKIE, cookie, max_age=int(config.state_ttl.total_seconds()), path="/auth",
        httponly=True, samesite="Lax", secure=config.secure_cookies,
    )
    return response


async def _exchange_code(http: aiohttp.ClientSession, config: OAuthConfig, code: str) -> str:
    async with http.post(
        f"{config.api_base}/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": config.redirect_uri},
        headers={
            "Authorization": aiohttp.encode_basic_auth(
                config.client_id, config.client_secret.get_secret_value()
            )
        },
    ) as response:
        if response.status != 200:
            log.warning("discord oauth: token exchange answered HTTP %d", response.status)
            raise OAuthFailed()
        return _TokenAnswer.model_validate_json(await response.read()).access_token


async def _user_id(http: aiohttp.ClientSession, config: OAuthConfig, access_token: str) -> int:
    async with http.get(
        f"{config.api_base}/users/@me", headers={"Authorization": f"Bearer {access_token}"}
    ) as response:
        if response.status != 200:
            log.warning("discord oauth: users/@me answered HTTP %d", response.status)
            raise OAuthFailed()
        user = _DiscordUser.model_validate_json(await response.read())
    return parse_snowflake(user.id, "discord user id")


async def callback(request: web.Request) -> web.Response:
    """Check `state`, trade the code for a token, learn the user's id and open a session."""
    config = _oauth(request)
    if "error" in request.query:
        raise OAuthDenied()
    code = request.query.get("code", "")
    state = request.query.get("state", "")
    stored = request.app[SIGNER].verify(STATE_PURPOSE, request.cookies.get(STATE_COOKIE, ""))
    if (
        stored is None
        or not code
        or len(code) > _MAX_PARAM
        or not state.isascii()
        or not hmac.compare_digest(str(stored.get("state", "")).encode(), state.encode())
    ):
        raise InvalidState()
    http = request.app[HTTP]
    try:
        user_id = await _user_id(http, config, await _exchange_code(http, config, code))
    except (aiohttp.ClientError, TimeoutError, ValidationError, InvalidInput) as exc:
        log.warning("discord oauth: login failed: %s", type(exc).__name__)
        raise OAuthFailed() from None
    response = _redirect(_local_path(stored.get("next")))
    response.set_cookie(
        SESSION_COOKIE,
        request.app[SIGNER].sign(SESSION_PURPOSE, {"uid": str(user_id)}, config.session_ttl),
        max_age=int(config.session_ttl.total_seconds()), path="/",
        httponly=True, samesite="Lax", secure=config.secure_cookies,
    )
    response.del_cookie(STATE_COOKIE, path="/auth")
    log.info("discord oauth: session opened for user %d", user_id)
    return response


async def logout(request: web.Request) -> web.Response:
    """Forget the session: GET redirects home, POST answers 204."""
    config = _oauth(request)
    response = _redirect("/") if request.method == "GET" else web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/", secure=config.secure_cookies, samesite="Lax")
    return response


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        app[HTTP] = session
        yield


def setup_oauth(app: web.Application) -> None:
    """Add the login routes and the HTTP client they use."""
    app.router.add_get(LOGIN_PATH, login, allow_head=False)
    app.router.add_get(CALLBACK_PATH, callback, allow_head=False)
    app.router.add_get(LOGOUT_PATH, logout, allow_head=False)
    app.router.add_post(LOGOUT_PATH, logout)
    app.cleanup_ctx.append(_http_session)
