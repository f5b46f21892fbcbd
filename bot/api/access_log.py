"""One access-log line per request: client, method, path, status, size, time.

Deliberately less than aiohttp's default line: no Referer or User-Agent (free text a client
chooses), and for `/auth/*` no query string, because the login callback carries the one-time
`code` and `state` there. Whatever a client sent is escaped to printable ASCII and cut short, so
no request can forge or flood log lines.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from bot.api.client_address import UNKNOWN
from bot.api.connections import CLIENT

AUTH_PREFIX: Final = "/auth"
_MAX_SHOWN: Final = 200


def printable(text: str, limit: int = _MAX_SHOWN) -> str:
    """`text` as printable ASCII (other characters and bytes escaped), at most `limit` characters."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def logged_path(request: BaseRequest) -> str:
    """The path as logged: the raw request target, without its query under /auth."""
    path, _, _ = request.raw_path.partition("?")
    decoded = request.path
    if decoded == AUTH_PREFIX or decoded.startswith(AUTH_PREFIX + "/"):
        return printable(path)
    return printable(request.raw_path)


class AccessLog(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        # Requests aiohttp could not parse never reached the middleware that names the client.
        client = request.get(CLIENT) or request.remote or UNKNOWN
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            printable(client, 64),
            printable(request.method, 16),
            logged_path(request),
            response.status,
            response.body_length,
            time,
        )
