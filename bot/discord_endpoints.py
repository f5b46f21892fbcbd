"""Point discord.py at another Discord: the sandbox emulator, or a test server.

discord.py has no public setting for its API and gateway URLs, so this sets the two class attributes it
reads (`discord.http.Route.BASE`, `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`); that is why
pyproject pins discord.py. Both are process-wide: call this once, before the client logs in.
"""

from __future__ import annotations

import logging

import discord.gateway
import discord.http
import yarl

from bot.config import check_url

log = logging.getLogger(__name__)


def apply_discord_endpoints(api_base_url: str, gateway_url: str) -> None:
    """Use api_base_url / gateway_url instead of Discord's own; an empty string keeps the default."""
    # Settings are checked already; this guards the tests and benchmarks that call it directly.
    check_url(api_base_url, ("http", "https"))
    check_url(gateway_url, ("ws", "wss"))
    if api_base_url:
        api = yarl.URL(api_base_url.rstrip("/"))
        discord.http.Route.BASE = str(api)
        log.info("discord REST API: %s", api)
    if gateway_url:
        gateway = yarl.URL(gateway_url)
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
        log.info("discord gateway: %s", gateway)
