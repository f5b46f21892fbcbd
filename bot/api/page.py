"""Rallypoint's own page (the files in bot/web/), served at `/`: static HTML, CSS and plain JavaScript.

The page is a client of the JSON API like any other (it calls only the documented operations, with
the browser's session cookie and `X-Requested-With` on every change), so it needs no route of its
own beyond its files. Nothing is loaded from another origin and nothing runs inline: the
Content-Security-Policy below says so to the browser, which then refuses anything else.

The files are read once when the app is built and sent with an ETag (304 when unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import web

from bot.api.conditional import etag_matches, etag_of

INDEX_PATH: Final = "/"
STATIC_PREFIX: Final = "/static/"
# `default-src 'self'` covers scripts, styles, images, fonts and fetch/EventSource; the rest closes
# what `default-src` does not: plugins, <base>, where forms may post and who may frame the page.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The page's links (a Telegram deep link) need not tell anyone where they were found.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate (ETag): an upgraded bot serves its new page at once
}
_STATIC: Final = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "icon.svg": "image/svg+xml",
}
# The page tells its script whether "Sign in with Discord" can work here (discord.oauth_* set).
_LOGIN_MARK: Final = 'data-login="on"'


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> _File:
        return cls(body, content_type, etag_of(body))

    def answer(self, request: web.Request) -> web.Response:
        if etag_matches(request.headers.get("If-None-Match"), self.etag):
            return web.Response(status=304, headers={**SECURITY_HEADERS, "ETag": self.etag})
        response = web.Response(body=self.body, headers={**SECURITY_HEADERS, "ETag": self.etag})
        response.content_type = self.content_type
        if self.content_type.startswith("text/"):
            response.charset = "utf-8"
        return response


def _read(name: str) -> bytes:
    return resources.files("bot").joinpath("web", name).read_bytes()


def setup_web(app: web.Application, *, login: bool) -> frozenset[str]:
    """Route the page and its files; return their paths (public: the page asks for sign-in itself)."""
    page = _read("index.html")
    if _LOGIN_MARK.encode() not in page:
        raise RuntimeError(f"bot/web/index.html lacks its {_LOGIN_MARK} mark")
    if not login:
        page = page.replace(_LOGIN_MARK.encode(), b'data-login="off"')
    files = {INDEX_PATH: _File.of(page, "text/html")}
    files |= {f"{STATIC_PREFIX}{name}": _File.of(_read(f"static/{name}"), kind) for name, kind in _STATIC.items()}
    for path, file in files.items():

        async def serve(request: web.Request, file: _File = file) -> web.Response:
            return file.answer(request)

        app.router.add_get(path, serve)
    return frozenset(files)
