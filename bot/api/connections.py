"""The API's connections: how long each may take, how many may be open, and what is logged about them.

aiohttp bounds a request's size and (with `keepalive_timeout`) an idle connection, but not how
long a client may take to send its headers, so one byte every few seconds keeps a connection — and
its file descriptor — for as long as the client likes. `GuardedRequestHandler` is aiohttp's own
request handler with a deadline for every phase of a connection:

- **headers**: from the moment the connection opens, or the first byte after an idle spell, the
  request line and headers must be complete within `header_timeout`;
- **body**: a handler reads the body within `body_timeout` (`bot.api.parsing`, 408 otherwise);
- **idle**: after a response, the next request must begin within `keepalive`.

`ConnectionGuard` keeps at most `max_connections` open. At the cap a new connection displaces the
connection that has waited longest for its headers (or sat idle longest), so a flood of slow
connections cannot lock real clients out; when every connection is busy with a request, the new
one is answered 503 at once. Both are logged once a minute, not once per connection, as are the
event loop's accept errors (running out of file descriptors).

Malformed requests that aiohttp's parser refuses are answered in the API's JSON error shape,
without echoing the offending bytes (a header line may hold a token), and logged in one line.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import resource
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest

from bot.api.client_address import Network, client_address
from bot.api.errors import http_error_response
from bot.config import ApiSettings

log = logging.getLogger(__name__)

SERVER_NAME: Final = "Rallypoint"
LINGERING_SECONDS: Final = 2.0  # how long an unread request body is drained before the connection closes
LOG_EVERY_SECONDS: Final = 60.0
_FD_HEADROOM: Final = 64  # file descriptors the rest of the process needs besides the API's connections
_ACCEPT_ERROR: Final = "socket.accept() out of system resource"

CLIENT = web.RequestKey("client_address", str)
TRUSTED_PROXIES: Final[web.AppKey[tuple[Network, ...]]] = web.AppKey("trusted_proxies")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_connections: int = 256
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keepalive: float = 15.0

    @classmethod
    def from_settings(cls, api: ApiSettings) -> ServerLimits:
        return cls(
            max_connections=api.max_connections,
            header_timeout=float(api.header_timeout_seconds),
            body_timeout=float(api.body_timeout_seconds),
            keepalive=float(api.keepalive_seconds),
        )


class ThrottledLog:
    """Log a recurring event at most once per interval, saying how many went unlogged in between."""

    def __init__(self, level: int, message: str, every: float = LOG_EVERY_SECONDS) -> None:
        self.level = level
        self.message = message
        self.every = every
        self._logged_at: float | None = None
        self._unlogged = 0

    def __call__(self, now: float, *args: object) -> None:
        if self._logged_at is not None and now - self._logged_at < self.every:
            self._unlogged += 1
            return
        since = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
        log.log(self.level, self.message + since, *args)
        self._logged_at = now
        self._unlogged = 0


class _Phase(enum.Enum):
    HEADERS = "waiting for request headers"
    BUSY = "handling a request"
    IDLE = "idle between requests"


class ConnectionGuard:
    """The open connections of one server, capped; each handler reports its phase here."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self._open: set[GuardedRequestHandler] = set()
        self.peak = 0  # the most connections open at once (tests and benchmarks read it)
        self.displaced = 0
        self.refused = 0
        self._displacing_log = ThrottledLog(
            logging.WARNING,
            "API connection limit (%d) reached: closing the connections that wait longest for their headers",
        )
        self._refusing_log = ThrottledLog(
            logging.WARNING, "API connection limit (%d) reached with every connection busy: answering 503"
        )

    @property
    def open_count(self) -> int:
        return len(self._open)

    def admit(self, handler: GuardedRequestHandler, now: float) -> bool:
        """Count a new connection in; False when it must be refused (every other one is busy)."""
        if len(self._open) >= self.limits.max_connections:
            waiting = [h for h in self._open if h.phase is not _Phase.BUSY]
            if not waiting:
                self.refused += 1
                self._refusing_log(now, self.limits.max_connections)
                return False
            slowest = min(waiting, key=lambda h: h.phase_since)
            self._open.discard(slowest)
            slowest.force_close()
            self.displaced += 1
            self._displacing_log(now, self.limits.max_connections)
        self._open.add(handler)
        self.peak = max(self.peak, len(self._open))
        return True

    def release(self, handler: GuardedRequestHandler) -> None:
        self._open.discard(handler)


CONNECTIONS = web.AppKey("connections", ConnectionGuard)


_BUSY_BODY: Final = (
    b'{"error":{"code":"busy","message":"The server is at its connection limit; try again in a moment."}}'
)
_BUSY_RESPONSE: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\nRetry-After: 1\r\nServer: {SERVER_NAME}\r\n".encode()
    + b"Connection: close\r\n\r\n"
    + _BUSY_BODY
)


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's request handler with a deadline for each phase of the connection (module docstring)."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, loop: asyncio.AbstractEventLoop, **kwargs: Any):
        super().__init__(manager, loop=loop, **kwargs)
        self.guard = guard
        self.phase = _Phase.HEADERS
        self.phase_since = loop.time()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.guard.admit(self, self._loop.time()):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY_RESPONSE)
            self.force_close()
            return
        self._enter(_Phase.HEADERS)

    def data_received(self, data: bytes) -> None:
        if self.phase is _Phase.IDLE:
            self._enter(_Phase.HEADERS)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.release(self)
        self._cancel_deadline()
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._enter(_Phase.BUSY)

    def request_finished(self) -> None:
        self._enter(_Phase.IDLE)

    def _enter(self, phase: _Phase) -> None:
        self.phase = phase
        self.phase_since = self._loop.time()
        self._cancel_deadline()
        limit = {
            _Phase.HEADERS: self.guard.limits.header_timeout,
            _Phase.IDLE: self.guard.limits.keepalive,
        }.get(phase)
        if limit is not None:
            self._deadline = self._loop.call_later(limit, self._expire)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        log.debug("closing an API connection: too long %s", self.phase.value)
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a request aiohttp could not parse (or a failure outside the app) as JSON, logged in one line."""
        # Never the exception's text: the parser's message quotes the offending line, token and all.
        if status >= 500:
            log.error("API: HTTP %d outside any handler (%s)", status, type(exc).__name__)
        else:
            log.info(
                "API: refused a malformed request from %s: HTTP %d (%s)", request.remote, status, type(exc).__name__
            )
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun; no error answer can follow")
        response = http_error_response(status)
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response


class GuardedSite(web.BaseSite):
    """Listen on host:port with `GuardedRequestHandler`s (aiohttp's TCPSite with our handler)."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, protocol: Callable[[], asyncio.Protocol]
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._protocol = protocol

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self._host, self._port, reuse_address=True)


def handler_factory(
    runner: web.AppRunner, guard: ConnectionGuard, **handler_options: Any
) -> Callable[[], GuardedRequestHandler]:
    """What the listening socket builds per connection: a guarded handler of the runner's server."""
    server = runner.server
    if server is None:
        raise RuntimeError("set the runner up first")
    loop = asyncio.get_running_loop()
    return lambda: GuardedRequestHandler(server, guard=guard, loop=loop, **handler_options)


def warn_if_near_the_fd_limit(limits: ServerLimits) -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and limits.max_connections + _FD_HEADROOM > soft:
        log.warning(
            "api.max_connections (%d) leaves little room under the open-file limit (%d): "
            "lower it or raise the limit (LimitNOFILE= in the systemd unit)",
            limits.max_connections,
            soft,
        )


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record who the client is, and tell the connection's guard a request is being handled."""
    trusted: tuple[Network, ...] = request.app[TRUSTED_PROXIES]
    request[CLIENT] = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):  # aiohttp's test server, for one
        return await handler(request)
    protocol.request_started()
    try:
        return await handler(request)
    finally:
        protocol.request_finished()


class _QuietAcceptErrors:
    """A loop exception handler that reports accept failures once a minute and passes the rest on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.previous = loop.get_exception_handler()
        self._log = ThrottledLog(
            logging.ERROR, "API: cannot accept connections (%s): the process is out of file descriptors"
        )

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_ERROR:
            self._log(loop.time(), type(context.get("exception")).__name__)
        elif self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


async def accept_errors_logged_once(app: web.Application) -> AsyncIterator[None]:
    """While the app runs, asyncio's accept-error tracebacks (one a second) become one line a minute."""
    loop = asyncio.get_running_loop()
    quiet = _QuietAcceptErrors(loop)
    loop.set_exception_handler(quiet)
    try:
        yield
    finally:
        if loop.get_exception_handler() is quiet:
            loop.set_exception_handler(quiet.previous)
