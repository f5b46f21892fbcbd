"""Turn every failure into the one JSON error shape: `{"error": {"code": ..., "message": ...}}`.

Domain errors carry their own code and status; aiohttp's own HTTP errors (unknown route, wrong
method, body too large) get a JSON body too; anything else is a bug: it is logged with its
traceback and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.api.models import ErrorBody, ErrorResponse
from services.errors import RallypointError, TooManyRequests

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024


class Unauthorized(RallypointError):
    code = "unauthorized"
    http_status = 401

    def __init__(self, message: str = "Authentication required.") -> None:
        super().__init__(message)


class CsrfRejected(RallypointError):
    code = "csrf"
    http_status = 403

    def __init__(
        self, message: str = "State-changing requests with a session need X-Requested-With: XMLHttpRequest."
    ) -> None:
        super().__init__(message)


class AmbiguousRequest(RallypointError):
    """A request that could be read two ways (a header given twice): refused rather than guessed."""

    code = "ambiguous_request"
    http_status = 400


class InvalidJson(RallypointError):
    code = "invalid_json"
    http_status = 400


class RequestTimeout(RallypointError):
    code = "request_timeout"
    http_status = 408

    def __init__(self, message: str = "The request body did not arrive in time.") -> None:
        super().__init__(message)


class InvalidState(RallypointError):
    code = "invalid_state"
    http_status = 400

    def __init__(
        self, message: str = "The login link is stale or was not started here; please log in again."
    ) -> None:
        super().__init__(message)


class OAuthDenied(RallypointError):
    code = "oauth_denied"
    http_status = 400

    def __init__(self, message: str = "Discord login was cancelled or refused.") -> None:
        super().__init__(message)


class OAuthCodeRejected(RallypointError):
    code = "oauth_code_rejected"
    http_status = 400

    def __init__(
        self, message: str = "Discord did not accept this login (the link was used or is old); log in again."
    ) -> None:
        super().__init__(message)


class OAuthFailed(RallypointError):
    code = "oauth_failed"
    http_status = 502

    def __init__(self, message: str = "Discord login failed; please try again later.") -> None:
        super().__init__(message)


_HTTP_ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("bad_request", "The request is malformed."),
    408: ("request_timeout", "The request did not arrive in time."),
    404: ("not_found", "There is no such endpoint."),
    405: ("method_not_allowed", "This endpoint does not accept that method."),
    413: ("payload_too_large", f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB."),
    500: ("internal", "Something went wrong on our side; it has been logged."),
}


def error_response(status: int, code: str, message: str) -> web.Response:
    body = ErrorResponse(error=ErrorBody(code=code, message=message))
    return web.Response(
        body=body.model_dump_json().encode(), status=status, content_type="application/json"
    )


def http_error_response(status: int, reason: str = "") -> web.Response:
    """The JSON error answer for an HTTP status that no domain error explains."""
    fallback = _HTTP_ERRORS[500] if status >= 500 else ("http_error", reason or "The request could not be handled.")
    code, message = _HTTP_ERRORS.get(status, fallback)
    return error_response(status, code, message)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as JSON; log (only) the unexpected ones."""
    try:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            # Refuse before reading, even on routes that never read a body.
            raise web.HTTPRequestEntityTooLarge(MAX_BODY_BYTES, request.content_length)
        return await handler(request)
    except RallypointError as exc:
        response = error_response(exc.http_status, exc.code, exc.message)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="rallypoint"'
        if isinstance(exc, RequestTimeout):
            response.force_close()  # the rest of the body may still be on its way
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = http_error_response(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return http_error_response(500)
