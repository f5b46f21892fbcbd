"""The real bot and the emulators on their own event loop in a thread, for a synchronous browser to visit.

Playwright's synchronous API (pytest-playwright) drives Chromium from the test's thread; the bot,
its API and page, and the Discord, Telegram and Signal emulators run here, exactly as
`python -m bot demo --serve` runs them: Discord OAuth is configured against the Discord emulator,
so "Sign in with Discord" goes through the emulator's authorize page. The test reaches into the
world only as its users would: through the API with the service token (other players), and through
the emulators (a Telegram `/start`, a Signal code, a Discord DM).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bot.app import Running, started
from bot.sandbox.stack import GUILD_ID, PROMOTER_ID, SERVICE_TOKEN, Member, SandboxStack
from tests.e2e.e2e_helpers import PROMOTION

T = TypeVar("T")

START_TIMEOUT = 60.0  # emulators, the bot's connection and its commands, on a busy 2-core machine
CALL_TIMEOUT = 30.0

PLAYERS = {
    "Ana": 810_000_000_000_000_101,
    "Bor": 810_000_000_000_000_102,
    "Cene": 810_000_000_000_000_103,
    "Dora": 810_000_000_000_000_104,
    "Eva": 810_000_000_000_000_105,
    "Fran": 810_000_000_000_000_106,
    "Gaja": 810_000_000_000_000_107,
    "Hugo": 810_000_000_000_000_108,
    "Ida": 810_000_000_000_000_109,
}
PROMOTER_NAME = "Rally"


class World:
    """Start with `start()`, stop with `stop()`; `run(...)` runs a coroutine on the world's loop."""

    def __init__(self, workdir: Path) -> None:
        self.stack = SandboxStack(workdir, promotion=PROMOTION, login=True)
        self.url = self.stack.page_url.rstrip("/")
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._app: Running | None = None
        self._thread = threading.Thread(target=self._main, name="web-world", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> World:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the bot and its emulators did not start within {START_TIMEOUT:g} s")
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        members = [Member(PROMOTER_ID, "rally", nick=PROMOTER_NAME, promoter=True)]
        members += [Member(user_id, name.lower(), nick=name) for name, user_id in PLAYERS.items()]
        await self.stack.start(members)
        try:
            async with started(self.stack.settings()) as app:
                await self.stack.discord.wait_for_commands(GUILD_ID, timeout=START_TIMEOUT)
                await asyncio.wait_for(app.bot.wait_until_ready(), timeout=START_TIMEOUT)
                self._app = app
                self._ready.set()
                await self._stop.wait()
        finally:
            await self.stack.stop()

    # -- reaching in ---------------------------------------------------------------------------

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = CALL_TIMEOUT) -> T:
        """Run `make()` on the world's loop and return its result."""
        assert self._loop is not None

        async def bounded() -> T:
            return await asyncio.wait_for(make(), timeout)

        future: Future[T] = asyncio.run_coroutine_threadsafe(bounded(), self._loop)
        return future.result(timeout + 5)

    def on_loop(self, action: Callable[[], T]) -> T:
        """Call `action()` (touching an emulator's state) on the world's loop."""

        async def call() -> T:
            return action()

        return self.run(call)

    def api(self, method: str, path: str, user_id: int, body: Any = None) -> Any:
        """Call the API as `user_id` with the service token (what another player's website would do)."""

        async def call() -> Any:
            headers = {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Discord-User-Id": str(user_id)}
            async with (
                aiohttp.ClientSession() as http,
                http.request(method, f"{self.url}{path}", headers=headers, json=body) as response,
            ):
                answer = await response.json()
                if response.status >= 400:
                    raise AssertionError(f"{method} {path} as {user_id}: {response.status} {answer}")
                return answer

        return self.run(call)

    def player_says(self, name: str, status: str, *, opted_in: bool = True) -> None:
        """A player sets tonight's status (and turns promotions on) through the API."""
        user_id = PLAYERS[name]
        self.api("POST", "/api/availability", user_id, {"status": status})
        self.api("POST", "/api/availability/promotion-preferences", user_id, {"allow_promotions": opted_in})

    def telegram_start(self, chat_id: int, token: str) -> None:
        """The player presses Start in Telegram: `/start <token>` from their chat, through the emulator."""
        self.on_loop(lambda: self.stack.telegram.queue_message(chat_id, f"/start {token}"))

    def signal_texts(self, number: str) -> list[str]:
        return self.on_loop(lambda: self.stack.signal.messages_to(number))

    def discord_dms(self, user_id: int) -> list[str]:
        return self.on_loop(lambda: [m.get("content") or "" for m in self.stack.discord.dm_messages(user_id)])

    def press_dm_button(self, user_id: int, custom_id: str) -> None:
        """The player presses a button on the newest message in their Discord DM that carries it."""

        async def press() -> None:
            record = await self.stack.discord.press_dm_button(user_id, custom_id)
            await record.wait_response(CALL_TIMEOUT)

        self.run(press)
