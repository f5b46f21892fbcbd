"""Who is calling: a service token acting for a Discord user, or a browser session cookie.

- `Authorization: Bearer <token>` is compared in constant time with every configured service token
  (`sha256:<hex>` entries hold only the digest) and needs `X-Discord-User-Id` naming the user.
- A session cookie (set by the Discord login in `bot/api/oauth.py`) names a session kept in the
  database, which names the user; for a state-changing request it also needs
  `X-Requested-With: XMLHttpRequest`, which a cross-site form cannot send.

Either way the guild membership comes from the `MembershipResolver`, never from the client. A
request that names its caller twice is refused (400), never resolved by "first one wins".
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.api.deps import ACTOR, AUTH_KIND, DEPS, PUBLIC_ROUTES, SERVICE_ROUTES, SETTINGS, SIGNER
from bot.api.errors import AmbiguousRequest, CsrfRejected, Unauthorized
from bot.config import token_matches
from services.errors import InvalidInput
from services.models import WebSession

SESSION_COOKIE: Final = "rp_session"
SESSION_PURPOSE: Final = "session"
AUTHORIZATION: Final = "Authorization"
USER_HEADER: Final = "X-Discord-User-Id"
CSRF_HEADER: Final = "X-Requested-With"
CSRF_VALUE: Final = "XMLHttpRequest"
# Headers that say who is calling: given twice, one part of a proxy chain may read one and we the other.
_SINGLE_HEADERS: Final = (AUTHORIZATION, USER_HEADER)
# Visible ASCII only: a token with other bytes (sent raw, they arrive as surrogate escapes) is no token.
_BEARER_TOKEN = re.compile(r"[\x21-\x7e]+")
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_SNOWFLAKE = re.compile(r"[0-9]{1,20}")


def parse_snowflake(raw: str | None, what: str) -> int:
    """A Discord id: 1 to 20 ASCII digits, positive, below 2**64."""
    if raw is None:
        raise InvalidInput(f"{what} is required")
    if not _SNOWFLAKE.fullmatch(raw) or not 0 < int(raw) < 2**64:
        raise InvalidInput(f"{what} must be a Discord user id (a positive integer)")
    return int(raw)


def _service_token_ok(request: web.Request, presented: str) -> bool:
    # Check every configured token, so the time taken does not tell which one came close.
    matched = False
    for configured in request.app[SETTINGS].api.service_tokens:
        matched |= token_matches(presented, configured)
    return matched


def refuse_ambiguous(request: web.Request) -> None:
    """Refuse a request that names its caller twice (400), whichever of the two would have won.

    Two session cookies happen when another site under the same domain sets one ("cookie tossing").
    """
    for name in _SINGLE_HEADERS:
        if len(request.headers.getall(name, ())) > 1:
            raise AmbiguousRequest(f"Header {name} was given more than once.")
    cookie_names = [
        pair.partition("=")[0].strip() for header in request.headers.getall("Cookie", ()) for pair in header.split(";")
    ]
    if cookie_names.count(SESSION_COOKIE) > 1:
        raise AmbiguousRequest(f"Cookie {SESSION_COOKIE} was given more than once.")


def _require_service_token(request: web.Request) -> None:
    scheme, _, token = request.headers.get(AUTHORIZATION, "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or _BEARER_TOKEN.fullmatch(token) is None or not _service_token_ok(request, token):
        raise Unauthorized("Invalid service token.")


async def _authenticate(request: web.Request) -> None:
    deps = request.app[DEPS]
    refuse_ambiguous(request)
    if AUTHORIZATION in request.headers:
        _require_service_token(request)
        user_id = parse_snowflake(request.headers.get(USER_HEADER), f"header {USER_HEADER}")
        request[AUTH_KIND] = "token"
        request[ACTOR] = await deps.membership.resolve(user_id)
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is not None and SIGNER in request.app:
        session = await _session(request, cookie)
        if request.method not in SAFE_METHODS and not has_xhr_header(request):
            raise CsrfRejected()
        request[AUTH_KIND] = "session"
        request[ACTOR] = await deps.membership.resolve(session.discord_user_id)
        return
    raise Unauthorized()


def has_xhr_header(request: web.Request) -> bool:
    """The header a cross-site form cannot send: what state-changing cookie requests must carry."""
    return request.headers.get(CSRF_HEADER) == CSRF_VALUE


def session_id_of(request: web.Request, cookie: str) -> tuple[str | None, bool]:
    """The session id a session cookie names (None if the cookie was not signed here), and whether it expired."""
    sessions = request.app[DEPS].sessions
    opened = request.app[SIGNER].open(SESSION_PURPOSE, cookie, sessions.ttl)
    session_id = opened.data.get("sid") if opened is not None else None
    if opened is None or not isinstance(session_id, str):
        return None, False
    return session_id, opened.expired


async def _session(request: web.Request, cookie: str) -> WebSession:
    deps = request.app[DEPS]
    session_id, expired = session_id_of(request, cookie)
    session = await deps.sessions.session(session_id) if session_id is not None and not expired else None
    if expired or (session is not None and session.expired(deps.clock.now())):
        raise Unauthorized("Your session has expired; please log in again.")
    if session is None:
        raise Unauthorized("This session is not valid (it was logged out, or the cookie is not ours); please log in.")
    return session


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every API route except the public ones; unknown routes fall through to 404/405.

    Service routes (GET /metrics) take a service token alone: a scraper acts for nobody.
    """
    match = request.match_info
    resource = match.route.resource if match.http_exception is None else None
    if resource is not None and resource.canonical in request.app[SERVICE_ROUTES]:
        refuse_ambiguous(request)
        _require_service_token(request)
    elif resource is not None and resource.canonical not in request.app[PUBLIC_ROUTES]:
        await _authenticate(request)
    return await handler(request)
