"""Turn every failure into the one JSON error shape: `{"error": {"code": ..., "message": ...}}`.

Domain errors carry their own code and status; aiohttp's own HTTP errors (unknown route, wrong
method, body too large) get a JSON body too; anything else is a bug: it is logged with its
traceback and answered with a generic 500 that reveals nothing.

The errors the API answers are listed at the end, each with a message it really sends: the
operation table names them per operation, and the OpenAPI document shows them as examples.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.api.models import ErrorBody, ErrorResponse
from services.errors import (
    CampaignExists,
    CodeExpired,
    CodeLocked,
    DateOutOfRange,
    DryRunOnly,
    EmptyQuietHours,
    InvalidInput,
    NoCodePending,
    NoRecipients,
    NotFound,
    NotLinked,
    NotPromoter,
    RallypointError,
    StandingExists,
    TooLate,
    TooManyRequests,
    TooManyStanding,
    Unavailable,
    WrongCode,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
STREAMS_RETRY_AFTER_SECONDS: Final = 30


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


class TooManyStreams(RallypointError):
    code = "too_many_streams"
    http_status = 503

    def __init__(self, message: str = "Too many pages are watching right now; try again shortly.") -> None:
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
        if isinstance(exc, TooManyStreams):
            response.headers["Retry-After"] = str(STREAMS_RETRY_AFTER_SECONDS)
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


# -- the errors the API answers, for its document -------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    status: int
    code: str
    example: str  # a message the server really sends with this code
    name: str  # the example's name in the document (the code, unless two cases share one)


def documented(error: type[RallypointError], example: str | None = None, *, name: str = "") -> ErrorDoc:
    """The error as documented; without `example`, the message it carries by default."""
    message = example if example is not None else error().message  # type: ignore[call-arg]
    return ErrorDoc(error.http_status, error.code, message, name or error.code)


BAD_INPUT = documented(InvalidInput, "body.status: Input should be 'LOOKING', 'AVAILABLE', 'MAYBE' or 'NOT_PLAYING'")
BAD_JSON = documented(InvalidJson, "The request body is not valid JSON: EOF while parsing a value at line 1 column 0.")
TOO_LARGE = ErrorDoc(413, *_HTTP_ERRORS[413], name=_HTTP_ERRORS[413][0])
BODY_TIMEOUT = documented(RequestTimeout)
AMBIGUOUS = documented(AmbiguousRequest, "Header Authorization was given more than once.")
UNAUTHORIZED = documented(Unauthorized)
CSRF = documented(CsrfRejected)
NOT_LINKED = documented(NotLinked)
NOT_PROMOTER = documented(NotPromoter)
# The guild membership of the caller is asked of Discord when the gateway cache does not know them.
MEMBERSHIP_UNKNOWN = documented(
    Unavailable, "Discord could not be asked who you are; try again shortly.", name="discord_unreachable"
)
DATE_OUT_OF_RANGE = documented(DateOutOfRange, "date must be between 2026-11-23 and 2026-12-22")
QUIET_HOURS_EMPTY = documented(EmptyQuietHours)
CAMPAIGN_EXISTS = documented(CampaignExists, "You have already promoted a session today.")
DRY_RUNS_USED_UP = documented(TooManyRequests, "You have used today's 5 dry runs; try again tomorrow.")
NO_RECIPIENTS = documented(NoRecipients)
CAMPAIGN_NOT_FOUND = documented(NotFound, "Campaign 7 is already over (followup_sent).")
NO_SUCH_CAMPAIGN = documented(NotFound, "There is no campaign 7.", name="no_such_campaign")
NEED_TOO_LATE = documented(
    TooLate, "Campaign 7 is past its voice check (followup_sent): it is too late to ask for more players."
)
NEED_DRY_RUN = documented(DryRunOnly, "A dry run reaches only you: there is nobody to ask for more.")
CHANNEL_UNAVAILABLE = documented(Unavailable, "Signal is not set up on this server.", name="channel_unavailable")
LINK_THROTTLED = documented(TooManyRequests, "Too many code requests; try again in 12 minutes.")
NO_CODE_PENDING = documented(NoCodePending)
CODE_EXPIRED = documented(CodeExpired)
CODE_LOCKED = documented(CodeLocked)
WRONG_CODE = documented(WrongCode, "Wrong code; 4 tries left.")
TOO_MANY_STREAMS = documented(TooManyStreams)
STANDING_EXISTS = documented(StandingExists, "There is already a standing session on Tuesday 21:00.")
STANDING_LIMIT = documented(
    TooManyStanding, "This server has 25 standing sessions, as many as it allows; remove one first."
)
STANDING_NOT_FOUND = documented(NotFound, "There is no standing session 7.")
