"""A loopback emulator of signal-cli-rest-api (bbernhard/signal-cli-rest-api) for one account.

Answer shapes follow that project's `src/api/api.go` (`SendV2`) and its issue tracker:

- `POST /v2/send` → 201 `{"timestamp": "<ms since epoch>"}` (`SendMessageResponse`, a string).
  `answer_shape = "list"` answers `[{"timestamp": "<ms>"}]` instead, the per-recipient list that
  signal-cli produces internally, so that clients are tested against more than one shape.
- Request errors → 400 `{"error": "Couldn't process request - ..."}`.
- Unregistered recipient (normal mode, signal-cli's stdout passed through, newlines dropped, as in
  bbernhard/signal-cli-rest-api#857) → 400
  `{"error": "Failed to send (some) messages:<rcpt>: Unregistered user \\"<rcpt>\\"<timestamp>"}`.
- Sender account not registered (#696, #756) → 400 `{"error": "User <number> is not registered.\\n"}`.
- Rate limiting (json-rpc mode, since 0.82; body as quoted in #881) → 429
  `{"error": "Failed to send message due to rate limiting. Use the attached challenge tokens ...",
  "challenge_tokens": ["<uuid>"], "account": "<number>"}`. signal-cli-rest-api sends no Retry-After
  header; `rate_limit_next(n, retry_after=...)` adds one only when asked, as a proxy in front might.
- Server errors are emulated as a reverse proxy's 502 with a plain-text body (the API restarting).

Incoming messages: `queue_text` (and `queue_receipt`, `queue_typing`, which a bot must ignore) make
a message arrive for the account; `GET /v1/receive/{number}` serves them in the shape of `mode`
("json-rpc", the default: a WebSocket; "normal"/"native": a JSON array per GET), see `signal_receive`.
`/v1/about` reports the mode, as the real server does.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Literal

from aiohttp import web

from bot.sandbox.signal_receive import Inbox, Mode, ReceiptKind

log = logging.getLogger(__name__)

AnswerShape = Literal["object", "list"]

_RATE_LIMIT_ERROR = (
    "Failed to send message due to rate limiting. Use the attached challenge tokens to lift the "
    "rate limit restrictions via the '/v1/accounts/{number}/rate-limit-challenge' endpoint."
)


class SignalEmulator:
    """Emulate signal-cli-rest-api for the account `number`, with a control API for tests and the demo."""

    def __init__(self, number: str = "+15550000001") -> None:
        self.number = number
        self.answer_shape: AnswerShape = "object"
        self.unregistered_numbers: set[str] = set()
        self.latency: float = 0.0
        self.sent_total = 0
        self.requests_total = 0
        self.styled_sends = 0  # sends with text_mode "styled" (Markdown-like formatting)
        self.challenge_tokens: list[str] = []  # tokens handed out with 429 answers, oldest first
        self._rate_limited = 0
        self._retry_after: int | None = None
        self._server_errors = 0
        self._inbox: dict[str, list[str]] = {}
        self._last_timestamp = 0
        self._incoming = Inbox(number, self._timestamp)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        if self._runner is not None:
            raise RuntimeError("the Signal emulator is already running")
        app = web.Application()
        app.router.add_get("/v1/about", self._about)
        app.router.add_get("/v1/health", self._health)
        app.router.add_post("/v2/send", self._send)
        app.router.add_get("/v1/receive/{number}", self._incoming.handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        log.info("Signal emulator listening on 127.0.0.1:%d", self._port)

    async def stop(self) -> None:
        await self._incoming.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SignalEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """The base URL to configure as `signal.api_url`."""
        if self._port is None:
            raise RuntimeError("the Signal emulator is not running")
        return f"http://127.0.0.1:{self._port}"

    # -- control API -------------------------------------------------------------------------

    def messages_to(self, number: str) -> list[str]:
        """The texts delivered to `number`, oldest first."""
        return list(self._inbox.get(number, ()))

    def recipients(self) -> list[str]:
        """Every number that was sent something, in the order they first were."""
        return list(self._inbox)

    @property
    def mode(self) -> Mode:
        """The server's mode: "json-rpc" (receive is a WebSocket) or "normal"/"native" (receive is a GET)."""
        return self._incoming.mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        if mode not in ("normal", "native", "json-rpc"):
            raise ValueError(f"unknown signal-cli-rest-api mode {mode!r}")
        self._incoming.mode = mode

    def queue_text(
        self, source: str, text: str, *, name: str | None = None, hide_number: bool = False
    ) -> dict[str, Any]:
        """Make a text from `source` (a phone number) arrive; return the object the bot will receive.

        `hide_number` is a sender who keeps their number private: `sourceNumber` is null and `source`
        is their uuid. In json-rpc mode the message is lost unless a client is connected
        (`wait_for_receiver`), as with the real daemon.
        """
        return self._incoming.text(source, text, name=name, hide_number=hide_number)

    def queue_receipt(
        self, source: str, kind: ReceiptKind = "delivery", timestamps: list[int] | None = None
    ) -> dict[str, Any]:
        """Make a delivery/read/viewed receipt from `source` arrive (not a data message)."""
        return self._incoming.receipt(source, kind, timestamps or [self._last_timestamp])

    def queue_typing(self, source: str, action: Literal["STARTED", "STOPPED"] = "STARTED") -> dict[str, Any]:
        """Make a typing indicator from `source` arrive (not a data message)."""
        return self._incoming.typing(source, action)

    @property
    def pending_incoming(self) -> int:
        """Incoming messages not yet fetched (normal/native mode)."""
        return self._incoming.pending

    @property
    def incoming_delivered(self) -> int:
        """Incoming messages handed to the bot (GET answers or WebSocket frames)."""
        return self._incoming.delivered_total

    @property
    def incoming_dropped(self) -> int:
        """Incoming messages lost because no client was connected (json-rpc mode)."""
        return self._incoming.dropped_total

    @property
    def receive_requests(self) -> int:
        """GET /v1/receive requests and WebSocket connections so far."""
        return self._incoming.receive_requests

    @property
    def receivers(self) -> int:
        """WebSocket clients listening for the account now (json-rpc mode)."""
        return self._incoming.receivers

    async def wait_for_receiver(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a bounded test helper
        """Wait until a client listens on the receive WebSocket (json-rpc mode)."""
        await self._incoming.wait_for_receiver(timeout)

    def rate_limit_next(self, n: int, retry_after: int | None = None) -> None:
        """Answer the next `n` sends with 429 and a challenge token (plus Retry-After if given)."""
        if n < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("n and retry_after must be >= 0")
        self._rate_limited, self._retry_after = n, retry_after

    def server_error_next(self, n: int) -> None:
        """Answer the next `n` sends with 502 Bad Gateway."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._server_errors = n

    # -- HTTP --------------------------------------------------------------------------------

    async def _about(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "versions": ["v1", "v2"],
                "build": 2,
                "mode": self.mode,
                "version": "sandbox",
                "capabilities": {"v2/send": ["quotes", "mentions"]},
            }
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _send(self, request: web.Request) -> web.Response:
        self.requests_total += 1
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self._server_errors > 0:
            self._server_errors -= 1
            return web.Response(status=502, text="502 Bad Gateway", content_type="text/plain")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "Couldn't process request - invalid request")
        recipients = body.get("recipients") or []
        if isinstance(body.get("recipient"), str) and body["recipient"]:
            recipients = [*recipients, body["recipient"]]  # the API's single-recipient fallback
        if not isinstance(recipients, list) or not recipients:
            return _error(400, "Couldn't process request - please provide at least one recipient")
        sender = body.get("number")
        if not isinstance(sender, str) or not sender:
            return _error(400, "Couldn't process request - please provide a valid number")
        if sender != self.number:
            return _error(400, f"User {sender} is not registered.\n")
        message = body.get("message")
        if not isinstance(message, str):
            return _error(400, "Couldn't process request - invalid request")
        if body.get("text_mode") == "styled":
            self.styled_sends += 1  # *x* would turn bold: the bot's texts are meant to be plain
        if self._rate_limited > 0:
            self._rate_limited -= 1
            token = str(uuid.uuid4())
            self.challenge_tokens.append(token)
            headers = {"Retry-After": str(self._retry_after)} if self._retry_after is not None else None
            return web.json_response(
                {"error": _RATE_LIMIT_ERROR, "challenge_tokens": [token], "account": sender},
                status=429,
                headers=headers,
            )
        timestamp = self._timestamp()
        failed = [r for r in recipients if not isinstance(r, str) or r in self.unregistered_numbers]
        for recipient in recipients:
            if recipient not in failed:
                self._inbox.setdefault(recipient, []).append(message)
                self.sent_total += 1
        if failed:
            # Registered recipients of the same request still get the message (#857).
            details = "".join(f'{r}: Unregistered user "{r}"' for r in failed)
            return _error(400, f"Failed to send (some) messages:{details}{timestamp}")
        if self.answer_shape == "list":
            return web.json_response([{"timestamp": str(timestamp)}], status=201)
        return web.json_response({"timestamp": str(timestamp)}, status=201)

    def _timestamp(self) -> int:
        # Signal identifies a message by its sender and millisecond timestamp: keep them unique.
        self._last_timestamp = max(int(time.time() * 1000), self._last_timestamp + 1)
        return self._last_timestamp


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


__all__ = ["AnswerShape", "SignalEmulator"]
