"""Build and start the HTTP API from a running Application (kept apart so app.py stays short)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.api import ApiDeps, CachedMembership, OAuthConfig, create_app, start_api
from bot.guild_membership import GuildMembership

if TYPE_CHECKING:
    from bot.app import Application

MEMBERSHIP_CACHE_SECONDS = 30.0


async def start_api_for(app: Application) -> web.AppRunner:
    if app.engine is None or app.bot is None:
        raise RuntimeError("the engine and the bot must exist before the API starts")
    s = app.settings
    deps = ApiDeps(
        promote=app.engine.promote,
        players=app.engine.players,
        membership=CachedMembership(
            GuildMembership(app.bot, s.discord.guild_id), app.clock, ttl_seconds=MEMBERSHIP_CACHE_SECONDS
        ),
        clock=app.clock,
        linking=app.linking,
        oauth=OAuthConfig.from_settings(s),
    )
    return await start_api(create_app(deps, s), s.api.host, s.api.port)
