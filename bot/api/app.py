"""The API app factory and its start/stop on the caller's event loop."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bot.api.auth import auth_middleware
from bot.api.conditional import ANSWERS, AnswerCache
from bot.api.deps import DEPS, OPENAPI, PUBLIC_ROUTES, SETTINGS, SIGNER, ApiDeps, package_version
from bot.api.errors import MAX_BODY_BYTES, error_middleware
from bot.api.events import STREAMS, Streams
from bot.api.oauth import OAUTH_PATHS, setup_oauth
from bot.api.openapi import build_openapi
from bot.api.routes import OPERATIONS, setup_routes
from bot.api.sessions import CookieSigner
from bot.config import Settings

log = logging.getLogger(__name__)


def create_app(deps: ApiDeps, settings: Settings) -> web.Application:
    """Build the API: routes, auth and error middlewares, the login flow when configured, the document."""
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES)
    app[DEPS] = deps
    app[SETTINGS] = settings
    app[ANSWERS] = AnswerCache(deps.changes, deps.players.today)
    app[STREAMS] = Streams(deps.changes, deps.clock, deps.streams)
    # Before aiohttp waits for the handlers in flight: the event streams end instead of holding it up.
    app.on_shutdown.append(app[STREAMS].close_all)
    setup_routes(app, OPERATIONS)
    public = {op.path for op in OPERATIONS if op.public}
    if deps.oauth is not None:
        app[SIGNER] = CookieSigner(deps.oauth.session_secret.get_secret_value(), deps.clock)
        setup_oauth(app)
        public |= OAUTH_PATHS
    app[PUBLIC_ROUTES] = frozenset(public)
    app[OPENAPI] = json.dumps(build_openapi(OPERATIONS, version=package_version())).encode()
    return app


async def start_api(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port (0: any free port) on the running loop; stop with `stop_api`."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("API listening on %s", ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses))
    return runner


async def stop_api(runner: web.AppRunner) -> None:
    await runner.cleanup()


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful after asking for port 0)."""
    return int(runner.addresses[0][1])
