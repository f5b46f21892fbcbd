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

log = logging.getLogger(__name__)


def apply_discord_endpoints(api_base_url: str, gateway_url: str) -> None:
    """Use api_base_url / gateway_url instead of Discord's own; an empty string keeps the default."""
    if api_base_url:
        api = yarl.URL(api_base_url.rstrip("/"))
        if api.scheme not in ("http", "https") or not api.host:
            raise ValueError(f"discord.api_base_url must be an http(s) URL, got {api_base_url!r}")
        discord.http.Route.BASE = str(api)
        log.info("discord REST API: %s", api)
    if gateway_url:
        gateway = yarl.URL(gateway_url)
        if gateway.scheme not in ("ws", "wss") or not gateway.host:
            raise ValueError(f"discord.gateway_url must be a ws(s) URL, got {gateway_url!r}")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
        log.info("discord gateway: %s", gateway)
