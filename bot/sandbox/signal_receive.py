"""`/v1/receive/{number}` of the signal-cli-rest-api emulator, in both of the real server's shapes.

What the real server does (bbernhard/signal-cli-rest-api, `src/api/api.go` `Receive`, `src/client`):

- **normal / native mode**: `GET /v1/receive/<number>?timeout=1` runs `signal-cli --output json receive`
  and answers 200 with its output lines joined into a JSON array, as `text/plain; charset=utf-8`:
  `[{"envelope": {...}, "account": "<number>"}, ...]`. What it returns is gone from the server (read
  once). Query errors are 400 `{"error": "Couldn't process request - ..."}`; an account signal-cli
  does not know is 400 `{"error": "User <number> is not registered.\\n"}`.
- **json-rpc mode**: the same path is a WebSocket; each received message is pushed as one text frame
  holding one such object (only those whose `account` is <number>). Nothing is queued for later: a
  message that arrives while no client is connected is lost, as with the real daemon. A plain GET is
  refused by the WebSocket upgrade (400, gorilla's "Bad Request" text followed by the JSON error).

The envelope follows signal-cli's `JsonMessageEnvelope`: `source` (deprecated: the number, else the
uuid), `sourceNumber` (null when the sender hides their number), `sourceUuid`, `sourceName`,
`sourceDevice`, `timestamp`, `serverReceivedTimestamp`, `serverDeliveredTimestamp` and one of
`dataMessage` {timestamp, message, expiresInSeconds, isExpirationUpdate, viewOnce},
`receiptMessage` {when, isDelivery, isRead, isViewed, timestamps} or `typingMessage` {action, timestamp}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

Mode = Literal["normal", "native", "json-rpc"]
ReceiptKind = Literal["delivery", "read", "viewed"]

_MAX_WAIT = 60.0  # seconds; a cap so that a huge timeout cannot pin a request handler
_FLAGS = ("ignore_attachments", "ignore_stories", "ignore_avatars", "ignore_stickers", "send_read_receipts")
_UPGRADE_ERROR = (
    "websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header"
)
# gorilla/websocket writes its own "Bad Request" text, then gin appends the API's JSON error.
_NO_UPGRADE = "Bad Request\n" + json.dumps({"error": _UPGRADE_ERROR}, separators=(",", ":"))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Inbox:
    """Messages sent to the bot's Signal account, served by `/v1/receive/{number}` in the chosen mode."""

    def __init__(self, account: str, timestamps: Callable[[], int]) -> None:
        self.account = account
        self.mode: Mode = "json-rpc"
        self._timestamps = timestamps
        self._pending: list[dict[str, Any]] = []  # normal/native mode: waiting for the next GET
        self._receivers: list[asyncio.Queue[dict[str, Any]]] = []  # json-rpc mode: one per listening socket
        self._sockets: set[web.WebSocketResponse] = set()
        self._arrived = asyncio.Event()
        self.delivered_total = 0  # messages handed to the bot (GET answers or WebSocket frames)
        self.dropped_total = 0  # json-rpc mode: messages that arrived with nobody connected
        self.receive_requests = 0

    # ---- what arrives -------------------------------------------------------------------------

    def text(
        self, source: str, message: str, *, name: str | None = None, hide_number: bool = False
    ) -> dict[str, Any]:
        """A text (data message) from `source`."""
        timestamp = self._timestamps()
        data = {
            "timestamp": timestamp,
            "message": message,
            "expiresInSeconds": 0,
            "isExpirationUpdate": False,
            "viewOnce": False,
        }
        return self._arrive(source, name, hide_number, timestamp, dataMessage=data)

    def receipt(self, source: str, kind: ReceiptKind, timestamps: list[int]) -> dict[str, Any]:
        """A delivery/read/viewed receipt from `source` for messages the bot sent at `timestamps`."""
        when = self._timestamps()
        receipt = {
            "when": when,
            "isDelivery": kind == "delivery",
            "isRead": kind == "read",
            "isViewed": kind == "viewed",
            "timestamps": list(timestamps),
        }
        return self._arrive(source, None, False, when, receiptMessage=receipt)

    def typing(self, source: str, action: Literal["STARTED", "STOPPED"]) -> dict[str, Any]:
        """A typing indicator from `source`."""
        timestamp = self._timestamps()
        typing = {"action": action, "timestamp": timestamp}
        return self._arrive(source, None, False, timestamp, typingMessage=typing)

    def _arrive(
        self, source: str, name: str | None, hide_number: bool, timestamp: int, **content: Any
    ) -> dict[str, Any]:
        sender_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"signal:{source}"))  # stable per number
        envelope = {
            "source": sender_uuid if hide_number else source,
            "sourceNumber": None if hide_number else source,
            "sourceUuid": sender_uuid,
            "sourceName": name,
            "sourceDevice": 1,
            "timestamp": timestamp,
            "serverReceivedTimestamp": timestamp + 3,
            "serverDeliveredTimestamp": timestamp + 5,
            **content,
        }
        item = {"envelope": envelope, "account": self.account}
        if self.mode == "json-rpc":
            if not self._receivers:
                self.dropped_total += 1
            for queue in self._receivers:
                queue.put_nowait(item)
        else:
            self._pending.append(item)
        self._wake()
        return item

    @property
    def pending(self) -> int:
        """Messages waiting for the next GET (normal/native mode)."""
        return len(self._pending)

    @property
    def receivers(self) -> int:
        """Connected WebSocket receivers (json-rpc mode)."""
        return len(self._receivers)

    async def wait_for_receiver(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a bounded test helper
        """Wait until a client listens on the WebSocket (json-rpc mode)."""
        async with asyncio.timeout(timeout):
            while not self._receivers:
                await self._next_change()

    # ---- GET /v1/receive/{number} ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one receive request (or WebSocket) in the current mode."""
        self.receive_requests += 1
        number = unquote(request.match_info["number"])
        if self.mode == "json-rpc":
            ws = web.WebSocketResponse(autoping=True)
            if not ws.can_prepare(request).ok:
                return web.Response(status=400, text=_NO_UPGRADE, content_type="text/plain")
            await ws.prepare(request)
            await self._stream(ws, number)
            return ws
        return await self._poll(request, number)

    async def _poll(self, request: web.Request, number: str) -> web.Response:
        query = request.query
        try:
            timeout = int(query.get("timeout", "1"))
        except ValueError:
            return _error(400, "Couldn't process request - timeout needs to be numeric!")
        try:
            max_messages = int(query.get("max_messages", "0"))
        except ValueError:
            return _error(400, "Couldn't process request - max_messages needs to be numeric!")
        for flag in _FLAGS:
            if query.get(flag, "false") not in ("true", "false"):
                return _error(
                    400, f"Couldn't process request - {flag} parameter needs to be either 'true' or 'false'"
                )
        if number != self.account:
            return _error(400, f"User {number} is not registered.\n")
        if not self._pending and timeout != 0:
            # signal-cli waits for messages up to the timeout (-1: indefinitely; capped here).
            wait = _MAX_WAIT if timeout < 0 else min(float(timeout), _MAX_WAIT)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    while not self._pending:
                        await self._next_change()
        count = len(self._pending) if max_messages <= 0 else min(max_messages, len(self._pending))
        batch, self._pending = self._pending[:count], self._pending[count:]
        self.delivered_total += len(batch)
        # The real server joins signal-cli's JSON lines into an array and sends it as plain text.
        body = "[" + ",".join(json.dumps(item, separators=(",", ":")) for item in batch) + "]"
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def _stream(self, ws: web.WebSocketResponse, number: str) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        listening = number == self.account  # the daemon forwards only the messages of that account
        self._sockets.add(ws)
        if listening:
            self._receivers.append(queue)
            self._wake()
        reader = asyncio.create_task(self._drain_client(ws), name="signal-receive-reader")
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break  # the client closed (or the server is stopping)
                await ws.send_str(json.dumps(getter.result(), separators=(",", ":")))
                self.delivered_total += 1
        except (ConnectionError, RuntimeError):
            pass  # the client went away mid-send
        finally:
            self._sockets.discard(ws)
            if listening:
                self._receivers.remove(queue)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()
            self._wake()

    @staticmethod
    async def _drain_client(ws: web.WebSocketResponse) -> None:
        # Read (and ignore) what the client sends, to notice when it closes.
        async for _ in ws:
            pass

    async def close(self) -> None:
        """Close every WebSocket (code 1001), so that the server can stop."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"Going away")

    def _wake(self) -> None:
        event, self._arrived = self._arrived, asyncio.Event()
        event.set()

    async def _next_change(self) -> None:
        await self._arrived.wait()
