"""Discord's OAuth2 authorization-code grant in the emulator: the authorize page, the token endpoint, Bearer users.

- `GET /oauth2/authorize?response_type=code&client_id=…&scope=…&state=…&redirect_uri=…` (beside the API, as
  discord.com serves it) shows a plain HTML page listing the members of the emulated guilds: following
  a member's link signs in as them and redirects to `redirect_uri?code=…&state=…`; "Cancel" redirects
  with `error=access_denied`. A sandbox extension, `&user_id=<id>`, signs in as that user at once
  (tests, scripts). Bad parameters get an error page (400), never a redirect, as on Discord.
- `POST /api/v10/oauth2/token` (form `grant_type=authorization_code`, `code`, `redirect_uri`; client
  credentials by HTTP Basic or in the form) answers `{access_token, token_type, expires_in,
  refresh_token, scope}`, or RFC 6749's `{"error": "invalid_client" | "invalid_grant" | …}`.
  A code is single-use, tied to its redirect_uri and valid for 10 minutes.
- `GET /api/v10/users/@me` with `Authorization: Bearer <access token>` answers that user.

https://discord.com/developers/docs/topics/oauth2#authorization-code-grant
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yarl
from aiohttp import web

from bot.sandbox.discord_state import DiscordWorld, GuildRecord

AUTHORIZE_PATH = "/oauth2/authorize"
CODE_LIFETIME = 600.0  # seconds; Discord's codes are short-lived
TOKEN_LIFETIME = 604_800  # seconds, the `expires_in` Discord answers
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_DENIED = "The resource owner or authorization server denied the request"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'"
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
    "ul{list-style:none;padding:0}li{margin:.25rem 0}"
    "a{display:inline-block;padding:.5rem .75rem;border:1px solid #5865f2;border-radius:.4rem;color:#1e2190}"
    "a:focus{outline:3px solid #f0b232;outline-offset:2px}.who{color:#555}"
)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a code or an access token stands for."""

    user_id: int
    redirect_uri: str
    scope: str
    issued_at: float


@dataclass
class OAuthServer:
    """The emulated application's OAuth2 client and the grants handed out so far."""

    world: DiscordWorld
    clock: Callable[[], float]
    client_secret: str
    redirect_uris: set[str] = field(default_factory=set)  # empty: any loopback http(s) URI is accepted
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    sign_ins: list[int] = field(default_factory=list)  # users who got a code, in order

    @property
    def client_id(self) -> str:
        return str(self.world.application_id)

    # ---- what tests call directly ----------------------------------------------------------------

    def issue_code(self, user_id: int, redirect_uri: str, scope: str = "identify") -> str:
        """Sign a user in without the page: return a fresh code for `redirect_uri`."""
        user = self.world.users.get(user_id)
        if user is None or user.bot:
            raise ValueError(f"no (human) Discord user {user_id}")
        if not self.redirect_allowed(redirect_uri):
            raise ValueError(f"redirect_uri {redirect_uri!r} is not registered")
        code = secrets.token_urlsafe(22)
        self.codes[code] = Grant(user_id, redirect_uri, scope, self.clock())
        self.sign_ins.append(user_id)
        return code

    def redirect_allowed(self, uri: str) -> bool:
        """Whether `uri` is a registered redirect (with none registered: any loopback http(s) URI)."""
        if self.redirect_uris:
            return uri in self.redirect_uris
        try:
            url = yarl.URL(uri)
        except ValueError:
            return False
        return url.scheme in ("http", "https") and url.host in _LOOPBACK_HOSTS and not url.fragment

    def bearer_user(self, authorization: str) -> int | None:
        """Return the user an `Authorization: Bearer …` header stands for, if the token is live."""
        if not authorization.startswith("Bearer "):
            return None
        grant = self.tokens.get(authorization[len("Bearer ") :])
        if grant is None or self.clock() - grant.issued_at > TOKEN_LIFETIME:
            return None
        return grant.user_id

    # ---- GET /oauth2/authorize ------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        """Show the sign-in page, or (with `user_id`) redirect with a code for that user."""
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        problem = self._authorize_problem(query.get("response_type"), query.get("client_id"), redirect_uri)
        if problem is not None:
            return _page("Sign-in failed", f"<p>{html.escape(problem)}</p>", status=400)
        scope = " ".join(query.get("scope", "").split())
        if not scope:
            return _page("Sign-in failed", "<p>Invalid scope: none was requested.</p>", status=400)
        state = query.get("state")
        if "user_id" in query:
            try:
                code = self.issue_code(int(query["user_id"]), redirect_uri, scope)
            except ValueError:
                return _page("Sign-in failed", "<p>No such Discord user to sign in as.</p>", status=400)
            return _redirect(_with_query(redirect_uri, code=code, state=state))
        return self._chooser(request.url, redirect_uri, state)

    def _authorize_problem(self, response_type: str | None, client_id: str | None, redirect_uri: str) -> str | None:
        if client_id != self.client_id:
            return "Invalid OAuth2 client_id."
        if not redirect_uri or not self.redirect_allowed(redirect_uri):
            return "Invalid OAuth2 redirect_uri."
        if response_type != "code":
            return "Unsupported response_type: only the authorization code grant is emulated."
        return None

    def _chooser(self, url: yarl.URL, redirect_uri: str, state: str | None) -> web.Response:
        sections = [self._guild_section(guild, url) for guild in self.world.guilds.values()]
        cancel = _with_query(redirect_uri, error="access_denied", error_description=_DENIED, state=state)
        body = (
            f"<p>{html.escape(self.world.bot_user.username)} (the emulated Discord application) wants to "
            "know who you are. Choose the member you sign in as:</p>"
            + "".join(sections)
            + f'<p><a href="{html.escape(str(cancel))}" data-cancel>Cancel</a></p>'
        )
        return _page("Sign in with Discord (sandbox)", body)

    def _guild_section(self, guild: GuildRecord, url: yarl.URL) -> str:
        items = []
        for user_id, member in guild.members.items():
            user = self.world.users[user_id]
            if user.bot:
                continue
            shown = member.nick or user.global_name or user.username
            link = url.update_query(user_id=str(user_id))
            items.append(
                f'<li><a href="{html.escape(str(link))}" data-user-id="{user_id}">{html.escape(shown)}</a> '
                f'<span class="who">@{html.escape(user.username)}</span></li>'
            )
        listed = "".join(items) or "<li>No members yet.</li>"
        return f"<h2>{html.escape(guild.name)}</h2><ul>{listed}</ul>"

    # ---- POST /api/v10/oauth2/token -------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        """Exchange an authorization code for an access token."""
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if not self._client_authenticated(request.headers.get("Authorization", ""), form):
            return _oauth_error(401, "invalid_client")
        if form.get("grant_type") != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type")
        grant = self.codes.pop(form.get("code", ""), None)  # single use, even when refused below
        if grant is None or self.clock() - grant.issued_at > CODE_LIFETIME:
            return _oauth_error(400, "invalid_grant", 'Invalid "code" in request.')
        if form.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error(400, "invalid_grant", 'Invalid "redirect_uri" in request.')
        access = secrets.token_urlsafe(24)
        self.tokens[access] = Grant(grant.user_id, grant.redirect_uri, grant.scope, self.clock())
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "refresh_token": secrets.token_urlsafe(24),
            "scope": grant.scope,
        }
        return _json(200, answer)

    def _client_authenticated(self, authorization: str, form: dict[str, str]) -> bool:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization[len("Basic ") :], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            client_id, _, client_secret = decoded.partition(":")
        return client_id == self.client_id and secrets.compare_digest(
            client_secret.encode(), self.client_secret.encode()
        )


def _with_query(uri: str, **params: str | None) -> yarl.URL:
    return yarl.URL(uri).update_query({k: v for k, v in params.items() if v is not None})


def _redirect(location: yarl.URL) -> web.Response:
    return web.Response(status=302, headers={"Location": str(location)})


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    response = web.Response(text=document, status=status, content_type="text/html")
    response.headers["Content-Security-Policy"] = _CSP
    return response


def _oauth_error(status: int, error: str, description: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if description is not None:
        body["error_description"] = description
    return _json(status, body)


def _json(status: int, data: Any) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(), status=status, content_type="application/json"
    )
