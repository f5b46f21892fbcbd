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
