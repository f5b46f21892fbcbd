"""What the API app is built from (`ApiDeps`) and the typed keys under which it keeps things."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import metadata
from typing import Final, Protocol

import aiohttp
import yarl
from aiohttp import web
from pydantic import SecretStr

from bot.api.events import StreamLimits
from bot.api.membership import MembershipResolver
from bot.api.sessions import CookieSigner
from bot.config import Settings, require_strong_login
from services.clock import Clock
from services.linking import LinkingService
from services.metrics import Metrics
from services.models import Actor
from services.need import NeedService
from services.players import PlayerService
from services.promote import PromoteService
from services.standing import StandingService
from services.web_sessions import WebSessionService
from storage.changes import Changes

DISCORD_API_BASE: Final = "https://discord.com/api/v10"
DISCORD_AUTHORIZE_URL: Final = "https://discord.com/oauth2/authorize"


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """Discord OAuth2 (authorization code) for browser logins to the community website."""

    client_id: str
    client_secret: SecretStr
    redirect_uri: str
    session_secret: SecretStr
    api_base: str = DISCORD_API_BASE
    authorize_url: str = DISCORD_AUTHORIZE_URL
    scopes: tuple[str, ...] = ("identify",)
    state_ttl: timedelta = timedelta(minutes=10)

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry `Secure` when the site is served over HTTPS (the scheme in any case)."""
        return yarl.URL(self.redirect_uri).scheme == "https"

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthConfig | None:
        """The login configuration; None unless client id, secret and redirect URI are set.

        ConfigError when they are and the session secret is too weak to sign cookies with.
        """
        d = settings.discord
        if not d.login_configured:
            return None
        require_strong_login(settings)
        api_base = d.api_base_url.rstrip("/") or DISCORD_API_BASE
        authorize = DISCORD_AUTHORIZE_URL
        if d.api_base_url:
            # The sandbox serves the authorize page beside its API.
            base = yarl.URL(api_base)
            authorize = str(base.origin().with_path("/oauth2/authorize"))
        return cls(
            client_id=d.oauth_client_id,
            client_secret=d.oauth_client_secret,
            redirect_uri=d.oauth_redirect_uri,
            session_secret=settings.security.session_secret,
            api_base=api_base,
            authorize_url=authorize,
        )


class ReadinessProbe(Protocol):
    async def checks(self) -> Mapping[str, str]:
        """Each check's name → "ok" or what is wrong (gateway, database, scheduler)."""
        ...


@dataclass(frozen=True, slots=True)
class ApiDeps:
    promote: PromoteService
    standing: StandingService
    need: NeedService
    players: PlayerService
    linking: LinkingService  # refuses (409 unavailable) when Telegram or Signal is not set up
    sessions: WebSessionService  # browser sessions (used when `oauth` is set)
    membership: MembershipResolver
    clock: Clock
    readiness: ReadinessProbe
    metrics: Metrics
    changes: Changes  # the database's change version: cached answers and event streams follow it
    oauth: OAuthConfig | None = None  # None: /auth/* is 404 and session cookies are ignored
    streams: StreamLimits = field(default_factory=StreamLimits)


def package_version() -> str:
    try:
        return metadata.version("rallypoint")
    except metadata.PackageNotFoundError:
        return "unknown"


DEPS = web.AppKey("deps", ApiDeps)
SETTINGS = web.AppKey("settings", Settings)
SIGNER = web.AppKey("cookie_signer", CookieSigner)
HTTP = web.AppKey("oauth_http", aiohttp.ClientSession)
OPENAPI = web.AppKey("openapi_json", bytes)
PUBLIC_ROUTES = web.AppKey("public_routes", frozenset)
SERVICE_ROUTES = web.AppKey("service_routes", frozenset)  # a service token alone, no acting user

ACTOR = web.RequestKey("actor", Actor)
AUTH_KIND = web.RequestKey("auth_kind", str)  # "token" or "session"


def actor_of(request: web.Request) -> Actor:
    return request[ACTOR]
