"""Domain errors: each carries a stable code and a message fit to show the user."""

from __future__ import annotations


class RallypointError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(RallypointError):
    code = "invalid_input"
    http_status = 400


class DateOutOfRange(InvalidInput):
    """A well-formed date outside the days a status can be set for (see `PlayerService.resolve_day`)."""

    code = "date_out_of_range"


class EmptyQuietHours(InvalidInput):
    """Quiet hours whose start is their end: they would silence nobody (or, read the other way, everybody)."""

    code = "quiet_hours_empty"

    def __init__(
        self,
        message: str = "Quiet hours need a start and an end that differ; to get no promotions at all, turn them off.",
    ) -> None:
        super().__init__(message)


class NotLinked(RallypointError):
    code = "not_linked"
    http_status = 403

    def __init__(self, message: str = "You need to be a member of the community's Discord server.") -> None:
        super().__init__(message)


class NotPromoter(RallypointError):
    code = "not_promoter"
    http_status = 403

    def __init__(self, message: str = "Only promoters can do that.") -> None:
        super().__init__(message)


class CampaignExists(RallypointError):
    code = "campaign_exists"
    http_status = 409


class NoRecipients(RallypointError):
    code = "no_recipients"
    http_status = 422

    def __init__(self, message: str = "Nobody is looking yet: there is no one to promote to.") -> None:
        super().__init__(message)


class StandingExists(RallypointError):
    """Another standing session has that weekday and start: two would compete for one evening."""

    code = "standing_exists"
    http_status = 409


class TooManyStanding(RallypointError):
    code = "standing_limit"
    http_status = 409


class NotFound(RallypointError):
    code = "not_found"
    http_status = 404


class Conflict(RallypointError):
    code = "conflict"
    http_status = 409


class Unavailable(RallypointError):
    code = "unavailable"
    http_status = 409


class TooManyRequests(RallypointError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CodeRefused(RallypointError):
    """A well-formed Signal code that the waiting verification does not take: its state, not its syntax."""

    code = "code_refused"
    http_status = 409


class NoCodePending(CodeRefused):
    code = "no_code_pending"

    def __init__(
        self, message: str = "No code is waiting for confirmation; ask for one with /notify link signal."
    ) -> None:
        super().__init__(message)


class CodeExpired(CodeRefused):
    code = "code_expired"

    def __init__(self, message: str = "That code has expired; request a new code.") -> None:
        super().__init__(message)


class CodeLocked(CodeRefused):
    code = "code_locked"

    def __init__(self, message: str = "Too many wrong codes; request a new code.") -> None:
        super().__init__(message)


class WrongCode(CodeRefused):
    code = "wrong_code"


class TooLate(RallypointError):
    """The moment for this has passed (a "need" once the voice check has begun)."""

    code = "too_late"
    http_status = 409


class DryRunOnly(RallypointError):
    """Something a rehearsal cannot do: it reaches its initiator alone."""

    code = "dry_run"
    http_status = 409
