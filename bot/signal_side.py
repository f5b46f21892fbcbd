"""The bot's Signal side: replies to invitations, read from signal-cli-rest-api's `/v1/receive/<number>`.

Signal has no buttons, so an invitation ends with "Reply 1 = I'm in, 2 = running late, 3 = can't
tonight". A bare 1, 2 or 3 from a linked number answers that player's newest invitation of the day
and gets a short confirmation back; anything else — another text, a receipt, typing, a number nobody
linked — is ignored (a debug line, never stored).

signal-cli-rest-api hands received messages over the way its mode (`GET /v1/about`) says: in json-rpc
mode `/v1/receive/<number>` is a WebSocket that pushes each message (one that arrives while nobody
listens is lost, so the side stays connected); in normal and native mode a GET answers what arrived
since the last one. Either way the side comes back every `interval` seconds after a connection ends
or a poll returns; everything it reads is bounded (answer size, messages per poll, time per request).
A failing API is logged once when the failures begin and once when they end, not at every try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from services.clock import Clock
from services.delivery.base import Outcome
from services.delivery.signal import SignalClient, incoming_text, parse_received
from services.messages import rsvp_reply_text
from services.phone import mask_number
from services.rsvp import RsvpService, signal_answer

log = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS: Final = 3.0
RECEIVE_WAIT_SECONDS: Final = 1  # how long one GET lets signal-cli wait for messages
MAX_MESSAGES_PER_POLL: Final = 100
MAX_ANSWER_BYTES: Final = 1024 * 1024
REQUEST_TIMEOUT_SECONDS: Final = 15.0
WEBSOCKET_HEARTBEAT_SECONDS: Final = 30.0

_FAILURES: Final = (aiohttp.ClientError, TimeoutError, ValueError)


class SignalSide:
    """Read what arrives for the bot's Signal number, from start to stop, and answer the replies."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_url: str,
        number: str,
        rsvp: RsvpService,
        replier: SignalClient,
        clock: Clock,
        *,
        interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self._http = http
        self._base = api_url.rstrip("/")
        self._receive = f"{self._base}/v1/receive/{quote(number, safe='')}"
        self._rsvp = rsvp
        self._replier = replier
        self._clock = clock
        self._interval = interval
        self._timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS + RECEIVE_WAIT_SECONDS)
        self._task: asyncio.Task[None] | None = None
        self._known_mode: str | None = None  # asked once, again after a failure (the API may have changed)
        self._failures = 0  # in the current streak

    async def __aenter__(self) -> SignalSide:
        self._task = asyncio.create_task(self._run(), name="signal-receive")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                if await self._mode() == "json-rpc":
                    await self._listen()
                else:
                    await self._poll()
            except _FAILURES as exc:
                self._failed(exc)
            except Exception as exc:  # never let the reader die: the next round tries again
                log.exception("reading Signal messages failed")
                self._failed(exc)
            await self._clock.sleep(self._interval)

    async def _mode(self) -> str:
        if self._known_mode is None:
            async with self._http.get(f"{self._base}/v1/about", timeout=self._timeout) as response:
                response.raise_for_status()
                about = await response.json(content_type=None)
            mode = about.get("mode") if isinstance(about, dict) else None
            self._known_mode = mode if isinstance(mode, str) else "normal"
        return self._known_mode

    async def _poll(self) -> None:
        """One GET: what arrived since the last one (normal and native mode)."""
        params = {"timeout": str(RECEIVE_WAIT_SECONDS), "max_messages": str(MAX_MESSAGES_PER_POLL)}
        async with self._http.get(self._receive, params=params, timeout=self._timeout) as response:
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, response.history, status=response.status, message="receive refused"
                )
        if len(body) > MAX_ANSWER_BYTES:
            raise ValueError(f"a receive answer larger than {MAX_ANSWER_BYTES} bytes")
        self._recovered()
        for item in parse_received(body.decode("utf-8", errors="replace")):
            await self._handle(item)

    async def _listen(self) -> None:
        """Stay on the WebSocket (json-rpc mode) until it closes; each frame is one message."""
        async with self._http.ws_connect(
            self._receive,
            timeout=aiohttp.ClientWSTimeout(ws_close=REQUEST_TIMEOUT_SECONDS),
            heartbeat=WEBSOCKET_HEARTBEAT_SECONDS,
            max_msg_size=MAX_ANSWER_BYTES,
        ) as ws:
            self._recovered()
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    item = frame.json()
                except ValueError:
                    log.debug("ignored a Signal frame that is not JSON")
                    continue
                await self._handle(item)
            if ws.exception() is not None:
                raise aiohttp.ClientError(f"the receive WebSocket failed: {type(ws.exception()).__name__}")

    async def _handle(self, item: Any) -> None:
        """Answer one received message if it is an answer; one that fails is logged, the rest go on."""
        try:
            await self._answer(item)
        except Exception:
            log.exception("a Signal reply could not be handled")

    async def _answer(self, item: Any) -> None:
        incoming = incoming_text(item)
        if incoming is None:
            log.debug("ignored a Signal message that is not a text from a visible number")
            return
        answer = signal_answer(incoming.text)
        masked = mask_number(incoming.number)
        if answer is None:
            log.debug("ignored a Signal text from %s: not an answer", masked)
            return
        result = await self._rsvp.answer_on_signal(incoming.number, answer)
        if result is None:
            log.debug("ignored an answer from %s: no player linked that number", masked)
            return
        sent = await self._replier.send_text(incoming.number, rsvp_reply_text(result))
        if sent.outcome is not Outcome.SENT:
            log.info("the confirmation of an answer to %s was not sent: %s", masked, sent.reason)

    def _failed(self, exc: BaseException) -> None:
        self._known_mode = None
        self._failures += 1
        if self._failures == 1:
            # The status alone for an HTTP answer: its text would repeat the URL, and the number in it.
            why = f"HTTP {exc.status}" if isinstance(exc, aiohttp.ClientResponseError) else type(exc).__name__
            log.warning(
                "cannot read Signal messages from %s (%s); trying again every %g s", self._base, why, self._interval
            )

    def _recovered(self) -> None:
        if self._failures:
            log.info("reading Signal messages again after %d failed tries", self._failures)
            self._failures = 0
