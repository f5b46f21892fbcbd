"""Who is calling: a service token acting for a Discord user, or a browser session cookie.

- `Authorization: Bearer <token>` is compared in constant time with every configured service token
  (`sha256:<hex>` entries hold only the digest) and needs `X-Discord-User-Id` naming the user.
- A session cookie (set by the Discord login in `bot/api/oauth.py`) names the user itself; for a
  state-changing request it also needs `X-Requested-With: XMLHttpRequest`, which a cross-site form
  cannot send.

Either way the guild membership comes from the `MembershipResolver`, never from the client.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.api.deps import ACTOR, AUTH_KIND, DEPS, PUBLIC_ROUTES, SETTINGS, SIGNER
from bot.api.errors import CsrfRejected, Unauthorized
from bot.config import token_matches
from services.errors import InvalidInput

SESSION_COOKIE: Final = "rp_session"
SESSION_PURPOSE: Final = "session"
USER_HEADER: Final = "X-Discord-User-Id"
CSRF_HEADER: Final = "X-Requested-With"
CSRF_VALUE: Final = "XMLHttpRequest"
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


async def _authenticate(request: web.Request) -> None:
    deps = request.app[DEPS]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not _service_token_ok(request, token.strip()):
            raise Unauthorized("Invalid service token.")
        user_id = parse_snowflake(request.headers.get(USER_HEADER), f"header {USER_HEADER}")
        request[AUTH_KIND] = "token"
        request[ACTOR] = await deps.membership.resolve(user_id)
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is not None and SIGNER in request.app:
        session = request.app[SIGNER].verify(SESSION_PURPOSE, cookie)
        if session is None:
            raise Unauthorized("Your session has expired; please log in again.")
        if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
            raise CsrfRejected()
        request[AUTH_KIND] = "session"
        request[ACTOR] = await deps.membership.resolve(parse_snowflake(str(session.get("uid")), "session"))
        return
    raise Unauthorized()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every API route except the public ones; unknown routes fall through to 404/405."""
    match = request.match_info
    resource = match.route.resource if match.http_exception is None else None
    if resource is not None and resource.canonical not in request.app[PUBLIC_ROUTES]:
        await _authenticate(request)
    return await handler(request)
