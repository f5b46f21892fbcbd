"""Browser login with Discord OAuth2 (authorization code): /auth/login, /auth/callback, /auth/logout.

A login's `state` is single-use and kept server-side (`PendingLogins`), and also in a signed
cookie that ties it to the browser that began the login. A callback costs Discord a token request
only after its state has been used up here, so replaying one state makes at most one; callbacks and
logins are throttled per client address (bot/api/client_address.py), and token exchanges in total.

After the login the session lives in the database (services/web_sessions.py); the cookie names it.
Membership and roles are looked up on each request, so a user who leaves the guild loses access
within the membership cache's lifetime; logging out ends the session at once.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Final

import aiohttp
import yarl
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.api.auth import SESSION_COOKIE, SESSION_PURPOSE, has_xhr_header, parse_snowflake, session_id_of
from bot.api.connections import CLIENT
from bot.api.deps import DEPS, HTTP, SIGNER, OAuthConfig
from bot.api.errors import CsrfRejected, InvalidState, OAuthCodeRejected, OAuthDenied, OAuthFailed
from bot.api.login_states import PendingLogins
from services.errors import InvalidInput, TooManyRequests
from services.models import Throttle
from services.throttle import KeyedThrottle

log = logging.getLogger(__name__)

STATE_COOKIE: Final = "rp_oauth_state"
STATE_PURPOSE: Final = "oauth_state"
LOGIN_PATH: Final = "/auth/login"
CALLBACK_PATH: Final = "/auth/callback"
LOGOUT_PATH: Final = "/auth/logout"
OAUTH_PATHS: Final = frozenset({LOGIN_PATH, CALLBACK_PATH, LOGOUT_PATH})
_MAX_PARAM = 512

# A person logs in with two requests; a household or a LAN party behind one address with a few more.
PER_CLIENT: Final = Throttle(limit=30, window=timedelta(minutes=1))
# Every exchange is a request to Discord with the application's credentials: bounded whoever asks.
TOKEN_EXCHANGES: Final = Throttle(limit=60, window=timedelta(minutes=1))

PENDING_LOGINS = web.AppKey("pending_logins", PendingLogins)
AUTH_THROTTLE = web.AppKey("auth_throttle", KeyedThrottle)
EXCHANGE_THROTTLE = web.AppKey("token_exchange_throttle", KeyedThrottle)


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


def _throttle_client(request: web.Request) -> None:
    wait = request.app[AUTH_THROTTLE].hit(request[CLIENT])
    if wait is not None:
        raise TooManyRequests("Too many login attempts from your address; try again in a minute.", wait)


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
    """Send the browser to Discord's consent page with a fresh single-use `state`."""
    config = _oauth(request)
    _throttle_client(request)
    state = request.app[PENDING_LOGINS].issue(_local_path(request.query.get("next")))
    url = yarl.URL(config.authorize_url).update_query(
        response_type="code",
        client_id=config.client_id,
        scope=" ".join(config.scopes),
        state=state,
        redirect_uri=config.redirect_uri,
    )
    response = _redirect(str(url))
    cookie = request.app[SIGNER].sign(STATE_PURPOSE, {"state": state}, config.state_ttl)
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
        if response.status == 400:  # invalid_grant: a wrong, used or expired code, the browser's doing
            log.info("discord oauth: Discord refused the authorization code")
            raise OAuthCodeRejected()
        if response.status == 401:  # invalid_client: ours
            log.error("discord oauth: Discord refused our client credentials (discord.oauth_client_id / _secret)")
            raise OAuthFailed()
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


def _state_matches(request: web.Request, config: OAuthConfig, state: str) -> bool:
    """The callback's state is the one this browser's login began with (its signed cookie)."""
    stored = request.app[SIGNER].verify(STATE_PURPOSE, request.cookies.get(STATE_COOKIE, ""), config.state_ttl)
    expected = stored.get("state") if stored is not None else None
    return (
        isinstance(expected, str)
        and state.isascii()
        and hmac.compare_digest(expected.encode(), state.encode())
    )


async def callback(request: web.Request) -> web.Response:
    """Use the state up, trade the code for a token, learn the user's id and open a session."""
    config = _oauth(request)
    _throttle_client(request)
    state = request.query.get("state", "")
    matched = _state_matches(request, config, state)
    pending = request.app[PENDING_LOGINS]
    if "error" in request.query:
        if matched:
            pending.take(state)
        raise OAuthDenied()
    code = request.query.get("code", "")
    if not matched or not code or len(code) > _MAX_PARAM:
        raise InvalidState()
    # From here on the state is spent, whatever Discord answers: a replay never reaches Discord.
    next_path = pending.take(state)
    if next_path is None:
        raise InvalidState()
    wait = request.app[EXCHANGE_THROTTLE].hit("discord")
    if wait is not None:
        log.warning("discord oauth: token exchanges throttled (more than %d a minute)", TOKEN_EXCHANGES.limit)
        raise TooManyRequests("Too many logins right now; please log in again in a minute.", wait)
    http = request.app[HTTP]
    try:
        user_id = await _user_id(http, config, await _exchange_code(http, config, code))
    except (aiohttp.ClientError, TimeoutError, ValidationError, InvalidInput) as exc:
        log.warning("discord oauth: login failed: %s", type(exc).__name__)
        raise OAuthFailed() from None
    sessions = request.app[DEPS].sessions
    session_id, _expires_at = await sessions.open(user_id)
    response = _redirect(next_path)
    response.set_cookie(
        SESSION_COOKIE,
        request.app[SIGNER].sign(SESSION_PURPOSE, {"sid": session_id}, sessions.ttl),
        max_age=int(sessions.ttl.total_seconds()), path="/",
        httponly=True, samesite="Lax", secure=config.secure_cookies,
    )
    response.del_cookie(STATE_COOKIE, path="/auth")
    log.info("discord oauth: session opened for user %d", user_id)
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session on the server and forget the cookie: POST with X-Requested-With, answered 204."""
    config = _oauth(request)
    if not has_xhr_header(request):
        raise CsrfRejected()
    cookie = request.cookies.get(SESSION_COOKIE)
    session_id = session_id_of(request, cookie)[0] if cookie is not None else None
    if session_id is not None and await request.app[DEPS].sessions.close(session_id):
        log.info("discord oauth: a session was logged out")
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/", secure=config.secure_cookies, samesite="Lax")
    return response


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        app[HTTP] = session
        yield


def setup_oauth(app: web.Application) -> None:
    """Add the login routes, their pending-login store and throttles, and the HTTP client they use."""
    clock = app[DEPS].clock
    app[PENDING_LOGINS] = PendingLogins(clock)
    app[AUTH_THROTTLE] = KeyedThrottle(PER_CLIENT, clock)
    app[EXCHANGE_THROTTLE] = KeyedThrottle(TOKEN_EXCHANGES, clock)
    # No HEAD: both change state (a pending login, a spent one).
    app.router.add_get(LOGIN_PATH, login, allow_head=False)
    app.router.add_get(CALLBACK_PATH, callback, allow_head=False)
    app.router.add_post(LOGOUT_PATH, logout)
    app.cleanup_ctx.append(_http_session)
