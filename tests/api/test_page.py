"""The page at `/` and its files: served without credentials, under a strict CSP, with ETags.

How the page behaves in a browser is tested in tests/web/ (Chromium); here, what the server sends.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.api.page import CONTENT_SECURITY_POLICY
from tests.api.helpers import Api, FakeDiscordOAuth, api_client

PAGE_FILES = {
    "/": "text/html",
    "/static/app.js": "text/javascript",
    "/static/app.css": "text/css",
    "/static/icon.svg": "image/svg+xml",
}
WEB = Path(__file__).parents[2] / "bot" / "web"


@pytest.fixture
async def api(tmp_path):
    async with FakeDiscordOAuth().running() as oauth, api_client(tmp_path, oauth=oauth) as client:
        yield client


@pytest.mark.parametrize(("path", "content_type"), PAGE_FILES.items())
async def test_the_page_and_its_files_need_no_credentials_and_carry_the_policy(
    api: Api, path: str, content_type: str
) -> None:
    async with api.client.get(path) as response:
        assert response.status == 200
        assert response.content_type == content_type
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        etag = response.headers["ETag"]
        body = await response.read()
    assert body
    async with api.client.get(path, headers={"If-None-Match": etag}) as again:
        assert again.status == 304
        assert await again.read() == b""
    async with api.client.head(path) as head:
        assert head.status == 200 and head.headers["ETag"] == etag


def test_the_policy_allows_this_origin_only_and_nothing_inline() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY
    # No directive loosens script or style loading beyond default-src.
    assert not {"script-src", "style-src", "connect-src"} & set(directives)


class Markup(HTMLParser):
    """Every tag with its attributes, and whether any script or style is written in the page itself."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_code = False
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag

    def handle_data(self, data: str) -> None:
        if self._in in ("script", "style") and data.strip():
            self.inline_code = True


def test_the_page_loads_nothing_from_elsewhere_and_runs_nothing_inline() -> None:
    page = Markup()
    page.feed((WEB / "index.html").read_text(encoding="utf-8"))
    assert not page.inline_code
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None and tag != "a":
                assert value.startswith("/") and not value.startswith("//"), (tag, value)
    css = (WEB / "static" / "app.css").read_text(encoding="utf-8")
    assert "url(" not in css and "@import" not in css
    script = (WEB / "static" / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"https?://", script)
    assert "innerHTML" not in script and "eval(" not in script  # text goes in as text


def test_every_control_of_the_page_has_a_label() -> None:
    page = Markup()
    page.feed((WEB / "index.html").read_text(encoding="utf-8"))
    labelled = {attrs.get("for") for tag, attrs in page.tags if tag == "label"}
    html = (WEB / "index.html").read_text(encoding="utf-8")
    for tag, attrs in page.tags:
        if tag in ("input", "select") and attrs.get("type") != "checkbox":
            assert attrs.get("id") in labelled, attrs
        if tag == "input" and attrs.get("type") == "checkbox":
            # A checkbox sits inside its label.
            assert re.search(rf'<label class="check"><input type="checkbox" id="{attrs["id"]}"', html), attrs


async def test_without_the_discord_login_the_page_says_signing_in_is_off(tmp_path) -> None:
    async with api_client(tmp_path) as api, api.client.get("/") as response:
        assert response.status == 200
        assert 'data-login="off"' in await response.text()
    async with (
        FakeDiscordOAuth().running() as oauth,
        api_client(tmp_path / "on", oauth=oauth) as api,
        api.client.get("/") as response,
    ):
        assert 'data-login="on"' in await response.text()


async def test_files_not_served_are_json_404s(api: Api) -> None:
    for path in ("/static/", "/static/../bot/api/app.py", "/static/app.py", "/index.html", "/static/APP.JS"):
        async with api.client.get(path) as response:
            assert response.status == 404, path
            assert (await response.json())["error"]["code"] == "not_found"


async def test_the_page_changes_nothing(api: Api) -> None:
    before = await api.dump()
    async with api.client.post("/") as response:
        assert response.status == 405
    assert await api.dump() == before
