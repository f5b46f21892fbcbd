"""The API app factory and its start/stop on the caller's event loop."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bot.api.access_log import AccessLog
from bot.api.auth import auth_middleware
from bot.api.conditional import ANSWERS, AnswerCache
from bot.api.connections import (
    CONNECTIONS,
    LINGERING_SECONDS,
    SERVER_NAME,
    TRUSTED_PROXIES,
    ConnectionGuard,
    GuardedSite,
    ServerLimits,
    accept_errors_logged_once,
    connection_middleware,
    handler_factory,
    warn_if_near_the_fd_limit,
)
from bot.api.deps import DEPS, OPENAPI, PUBLIC_ROUTES, SERVICE_ROUTES, SETTINGS, SIGNER, ApiDeps, package_version
from bot.api.errors import MAX_BODY_BYTES, error_middleware
from bot.api.events import STREAMS, Streams
from bot.api.oauth import OAUTH_PATHS, setup_oauth
from bot.api.openapi import build_openapi
from bot.api.page import setup_web
from bot.api.routes import METRICS_PATH, OPERATIONS, Operation, setup_routes
from bot.api.sessions import CookieSigner
from bot.config import Settings

log = logging.getLogger(__name__)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp's default names its version, which tells a scanner which of its advisories apply.
    response.headers["Server"] = SERVER_NAME


def served_operations(settings: Settings) -> tuple[Operation, ...]:
    """The operations this configuration serves: all but GET /metrics when `api.metrics` is false."""
    return tuple(op for op in OPERATIONS if settings.api.metrics or op.path != METRICS_PATH)


def create_app(deps: ApiDeps, settings: Settings, limits: ServerLimits | None = None) -> web.Application:
    """Build the API: routes, middlewares, the page at `/`, the login flow when configured, the document.

    `limits` default to the settings' (tests pass tighter ones).
    """
    app = web.Application(
        middlewares=[connection_middleware, error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[DEPS] = deps
    app[SETTINGS] = settings
    app[ANSWERS] = AnswerCache(deps.changes, deps.players.today)
    app[STREAMS] = Streams(deps.changes, deps.clock, deps.streams)
    # Before aiohttp waits for the handlers in flight: the event streams end instead of holding it up.
    app.on_shutdown.append(app[STREAMS].close_all)
    app[CONNECTIONS] = ConnectionGuard(limits or ServerLimits.from_settings(settings.api))
    app[TRUSTED_PROXIES] = settings.api.proxy_networks
    app.on_response_prepare.append(_server_header)
    app.cleanup_ctx.append(accept_errors_logged_once)
    operations = served_operations(settings)
    setup_routes(app, operations)
    app[SERVICE_ROUTES] = frozenset(op.path for op in operations if op.service_only)
    public = {op.path for op in operations if op.public}
    public |= setup_web(app, login=deps.oauth is not None)
    if deps.oauth is not None:
        app[SIGNER] = CookieSigner(deps.oauth.session_secret.get_secret_value(), deps.clock)
        setup_oauth(app)
        public |= OAUTH_PATHS
    app[PUBLIC_ROUTES] = frozenset(public)
    app[OPENAPI] = json.dumps(build_openapi(operations, version=package_version())).encode()
    return app


async def start_api(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` (from `create_app`) on host:port (0: any free port) on the running loop; stop with `stop_api`."""
    guard = app[CONNECTIONS]
    limits = guard.limits
    handler_options = {
        "access_log_class": AccessLog,
        "keepalive_timeout": limits.keepalive,
        "lingering_time": LINGERING_SECONDS,
    }
    runner = web.AppRunner(app, **handler_options)  # type: ignore[arg-type]
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, handler_factory(runner, guard, **handler_options)).start()
    except BaseException:
        await runner.cleanup()
        raise
    warn_if_near_the_fd_limit(limits)
    log.info(
        "API listening on %s (at most %d connections)",
        ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses),
        limits.max_connections,
    )
    return runner


async def stop_api(runner: web.AppRunner) -> None:
    await runner.cleanup()


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful after asking for port 0)."""
    return int(runner.addresses[0][1])
