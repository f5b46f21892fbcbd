"""Request and response bodies of the HTTP API; the OpenAPI document is generated from these.

Every rule the server applies to an input is declared here, so that the document says exactly
what is accepted: patterns, enums, bounds and lengths. The one rule JSON Schema cannot state —
a status date within a window around *today* — is in the date's description and, for tools, in
its `x-date-window` extension.

Requests forbid unknown fields and take booleans only as JSON booleans (`"yes"` or `1` is a
mistake, not a truthy value). Snowflakes are strings in answers: they do not fit a JavaScript number.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
)

from services.linking import CODE_INPUT_PATTERN, MAX_CODE_INPUT
from services.models import (
    CampaignStatus,
    Channel,
    DecisionOutcome,
    JobStatus,
    JobType,
    PlayerStatus,
    PreferredChannel,
    Weekday,
)
from services.need import MAX_NEED
from services.phone import E164_INPUT_PATTERN, MAX_INPUT, normalize_e164
from services.players import FUTURE_DAYS, PAST_DAYS
from services.quiet_hours import parse_hhmm
from services.schedule import iana_timezones, parse_iso_date, validate_timezone
from services.sessions import MAX_QUORUM, MAX_TITLE, TITLE_PATTERN, TITLE_RULE, clean_title

MAX_SQLITE_INT: Final = 2**63 - 1
MAX_PAGE: Final = 1000
# YYYY-MM-DD with a year from 0001 (Python's dates have no year 0), as the API document states it;
# services.schedule.parse_iso_date, the parser, accepts exactly these (and then checks the calendar).
DATE_PATTERN: Final = (
    r"^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
    r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"
)
HHMM_PATTERN: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_QUERY_INT: Final = re.compile(r"[0-9]{1,19}")


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return parse_iso_date(value)  # the slash commands' parser too


def _query_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError("expected true, false, 1 or 0")


def _query_int(value: Any) -> Any:
    # Plain ASCII digits only: pydantic alone would also take "5_0", " 50" or "50.0".
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not _QUERY_INT.fullmatch(value):
        raise ValueError("expected a whole number written with the digits 0-9")
    return int(value)


def _json_int(value: Any) -> Any:
    # A whole JSON number, as JSON Schema's "integer" has it (5.0 too), never a string or a boolean.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("expected a whole number")


def _hhmm(value: str) -> str:
    parse_hhmm(value)
    return value


def _json_integer(value: Any) -> Any:
    # A JSON integer (3, or 3.0, which JSON Schema counts as one); never true or "3".
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected a whole number")
        return int(value)
    return value


def _drop_default(schema: dict[str, Any]) -> None:
    # An omitted field means "leave unchanged", not "set to null": the document must not say null.
    schema.pop("default", None)


_DATE_SCHEMA: Final[dict[str, Any]] = {"type": "string", "format": "date", "pattern": DATE_PATTERN}

IsoDate = Annotated[date, BeforeValidator(_iso_date), WithJsonSchema({**_DATE_SCHEMA, "examples": ["2026-11-24"]})]
StatusDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    WithJsonSchema({
        **_DATE_SCHEMA,
        "description": (
            f"YYYY-MM-DD, from yesterday to {FUTURE_DAYS} days ahead, counted in the promotion timezone; "
            "other dates are answered 400 `date_out_of_range`; omitted or null: today. (JSON Schema cannot "
            "bound a date by today: `x-date-window` gives the window in days from today.)"
        ),
        "x-date-window": {"from_days": -PAST_DAYS, "to_days": FUTURE_DAYS},
        "examples": ["2026-11-24"],
    }),
]
QueryBool = Annotated[bool, BeforeValidator(_query_bool), WithJsonSchema({"type": "boolean"})]
HHMM = Annotated[
    str,
    AfterValidator(_hhmm),
    WithJsonSchema({"type": "string", "pattern": HHMM_PATTERN, "examples": ["22:30", "07:00"]}),
]
StartTime = Annotated[
    str,
    AfterValidator(_hhmm),
    WithJsonSchema({
        "type": "string",
        "pattern": HHMM_PATTERN,
        "description": "HH:MM (24-hour), a wall-clock time in the promotion timezone.",
        "examples": ["21:00", "22:30"],
    }),
]
Title = Annotated[
    str,
    AfterValidator(clean_title),
    WithJsonSchema({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TITLE,
        "pattern": TITLE_PATTERN,
        "description": f"The evening's name, in every message: {TITLE_RULE}.",
        "examples": ["Raid night"],
    }),
]
Quorum = Annotated[
    int,
    BeforeValidator(_json_integer),
    Field(ge=1, le=MAX_QUORUM),
    WithJsonSchema({
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_QUORUM,
        "description": "How many players a campaign would reach at the decision for it to be created.",
    }),
]


def _timezone_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "description": "An IANA timezone name, as the tzdata package lists them.",
        "enum": sorted(iana_timezones()),
    }


Timezone = Annotated[str, AfterValidator(validate_timezone), WithJsonSchema(_timezone_schema())]
E164 = Annotated[
    str,
    AfterValidator(normalize_e164),
    WithJsonSchema({
        "type": "string",
        "maxLength": MAX_INPUT,
        "pattern": E164_INPUT_PATTERN,
        "description": (
            "An international number: +, country code, number (E.164); spaces, tabs, dashes, dots, "
            "slashes and brackets are ignored."
        ),
        "examples": ["+38640123456", "+386 40 123 456"],
    }),
]


def _bounded_int(minimum: int, maximum: int, description: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "integer", "minimum": minimum, "maximum": maximum, "description": description})


QueryInt = Annotated[int, BeforeValidator(_query_int)]
PageLimit = Annotated[
    QueryInt,
    Field(ge=1, le=MAX_PAGE),
    _bounded_int(1, MAX_PAGE, "At most this many entries of recipients_preview; default: all of them."),
]
PageOffset = Annotated[
    QueryInt,
    Field(ge=0, le=MAX_SQLITE_INT),
    _bounded_int(0, MAX_SQLITE_INT, "Skip this many entries of recipients_preview first."),
]


def _omittable(description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra=_drop_default)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    # Answers carry exactly their fields (the document says `additionalProperties: false`), which also
    # tells the two answers of link-token apart.
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- requests --------------------------------------------------------------------------------


class DateQuery(_Request):
    """The campaign of a date (any date); default: the campaign still running, else today's."""

    date: IsoDate | None = Field(None, description="YYYY-MM-DD; default: today in the promotion timezone")


class BoardQuery(_Request):
    date: StatusDate | None = None


class PreviewQuery(_Request):
    include_available: QueryBool = False
    include_maybe: QueryBool = False
    limit: PageLimit | None = None
    offset: PageOffset = 0
    start_time: StartTime | None = Field(None, description="Default: the configured start.")
    title: Title | None = None


class CampaignPath(_Request):
    campaign_id: int = Field(ge=1, le=MAX_SQLITE_INT)


class StandingPath(_Request):
    session_id: int = Field(ge=1, le=MAX_SQLITE_INT)


class SetStatusRequest(_Request):
    status: PlayerStatus | None = Field(description="null clears the status for that date")
    date: StatusDate | None = None


class QuietHours(_Request):
    """A daily window in the player's own timezone: start inclusive, end exclusive, may wrap midnight.

    Start and end must differ (a window from 22:00 to 22:00 would silence nobody): the same time for
    both is answered 400 `quiet_hours_empty`. (JSON Schema cannot compare two fields: `x-distinct`
    names them.)
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"start": "23:00", "end": "07:00"}], "x-distinct": ["start", "end"]}
    )

    start: HHMM
    end: HHMM


class PreferencesUpdate(_Request):
    """Omitted fields stay as they are."""

    allow_promotions: StrictBool = _omittable("Receive promotion pings at all (off until the player says yes).")
    preferred_channel: PreferredChannel = _omittable("Where pings go first.")
    quiet_hours: QuietHours | None = _omittable("null removes the quiet hours.")
    timezone: Timezone | None = _omittable("IANA name; null: the promotion timezone.")


class TelegramLinkRequest(_Request):
    channel: Literal["telegram"]


class SignalLinkRequest(_Request):
    channel: Literal["signal"]
    address: E164


class LinkTokenRequest(RootModel[TelegramLinkRequest | SignalLinkRequest]):
    """`{"channel": "telegram"}`, or `{"channel": "signal", "address": "+…"}`."""

    model_config = ConfigDict(frozen=True)
    root: TelegramLinkRequest | SignalLinkRequest = Field(discriminator="channel")


class LinkConfirmRequest(_Request):
    channel: Literal["signal"]
    code: Annotated[
        str,
        StringConstraints(max_length=MAX_CODE_INPUT, pattern=CODE_INPUT_PATTERN),
        WithJsonSchema({
            "type": "string",
            "maxLength": MAX_CODE_INPUT,
            "pattern": CODE_INPUT_PATTERN,
            "description": "The 6 digits sent on Signal; spaces, tabs and dashes between them are ignored.",
            "examples": ["123456", "123 456"],
        }),
    ]


class UnlinkRequest(_Request):
    channel: Literal["telegram", "signal"] = Field(description="The linked channel to remove.")


class CreateCampaignRequest(_Request):
    include_available: StrictBool = False
    include_maybe: StrictBool = False
    dry_run: StrictBool = _omittable("Default: the configured promotion.dry_run_default.")
    start_time: StartTime = _omittable(
        "Default: the configured start. The reminder keeps the configured lead before it; a time already "
        "past today moves to just after now."
    )
    title: Title = _omittable("Default: no title.")


class StandingSessionRequest(_Request):
    """A weekly session: on `weekday` at `start_time` (promotion timezone), promoted when `quorum` players
    are up for it at the decision, as the caller would promote it."""

    weekday: Weekday
    start_time: StartTime
    quorum: Quorum
    include_available: StrictBool = False
    include_maybe: StrictBool = False
    title: Title = _omittable("Default: no title.")


class EmptyRequest(_Request):
    """No fields; an empty body is accepted too."""


class NeedRequest(_Request):
    count: Annotated[int, BeforeValidator(_json_int)] = Field(
        ge=1, le=MAX_NEED, description="How many more players the session needs."
    )


# -- answers ---------------------------------------------------------------------------------


class ErrorBody(_Response):
    code: str
    message: str


class ErrorResponse(_Response):
    error: ErrorBody


class HealthResponse(_Response):
    status: Literal["ok"] = "ok"
    version: str
    time: datetime


class ReadyChecks(_Response):
    """Each check: "ok", or what is wrong in words."""

    gateway: str = Field(examples=["ok", "not connected to the Discord gateway"])
    database: str = Field(examples=["ok", "no answer within 5 s"])
    scheduler: str = Field(examples=["ok", "overslept its wake-up by 42 s"])


class ReadyResponse(_Response):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


class AccessResponse(_Response):
    authenticated: bool
    linked: bool
    can_promote: bool
    discord_user_id: str
    display_name: str | None = Field(description="the name the community knows the caller by; null: not a member")


class AvailabilityEntryResponse(_Response):
    date: date
    status: PlayerStatus | None
    display_name: str


class StatusCounts(_Response):
    LOOKING: int
    AVAILABLE: int
    MAYBE: int
    NOT_PLAYING: int


class BoardPlayer(_Response):
    display_name: str
    status: PlayerStatus


class BoardResponse(_Response):
    date: date
    counts: StatusCounts
    players: list[BoardPlayer] | None = Field(description="names, for linked users only; else null")
    my_status: PlayerStatus | None = Field(description="the caller's own status that day; null: none, or not linked")


class TelegramLinkState(_Response):
    linked: bool
    verified_at: datetime | None


class SignalLinkState(_Response):
    linked: bool
    verified_at: datetime | None
    number_masked: str | None = None


class LinksView(_Response):
    telegram: TelegramLinkState
    signal: SignalLinkState


class PreferencesResponse(_Response):
    allow_promotions: bool
    promotions_chosen: bool = Field(
        description="false: the player never chose; promotions stay off until they turn them on"
    )
    preferred_channel: PreferredChannel
    quiet_hours: QuietHours | None
    timezone: str | None = Field(description="null: the promotion timezone")
    links: LinksView


class TelegramLinkResponse(_Response):
    token: str
    deep_link: str
    expires_at: datetime


class SignalLinkResponse(_Response):
    expires_at: datetime


class LinkConfirmResponse(_Response):
    linked: Literal[True] = True


class ChannelsSummaryModel(_Response):
    discord: int
    telegram: int
    signal: int


class RecipientPreview(_Response):
    display_name: str
    status: PlayerStatus
    selected_channel: Channel


class PreviewResponse(_Response):
    campaign_date: date
    timezone: str
    reminder_time: str
    start_time: str
    title: str | None
    recipient_count: int
    not_opted_in: int = Field(
        description="players with a wanted status left out because they never turned promotions on"
    )
    channels_summary: ChannelsSummaryModel
    recipients_preview: list[RecipientPreview]


class ScheduledTimes(_Response):
    reminder: datetime
    start: datetime
    voice_check: datetime


class CampaignCreatedResponse(_Response):
    campaign_id: int
    campaign_date: date
    status: CampaignStatus
    recipient_count: int
    channels_summary: ChannelsSummaryModel
    scheduled_times: ScheduledTimes
    dry_run: bool
    title: str | None


class DeliveryCounts(_Response):
    sent: int
    skipped: int
    failed: int
    unknown: int


class RsvpCounts(_Response):
    """How many players answer I'm in, running late and can't tonight now (each player's last answer)."""

    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True, validate_by_name=True)

    in_: int = Field(alias="in")
    late: int
    out: int


class NeedView(_Response):
    """"We need N more": players asked so far, and how many of them said they are coming."""

    asked: int
    joined: int


class NeedResponse(_Response):
    messaged: int = Field(description="players this call asks (those asked already today are not asked again)")


class JobView(_Response):
    job_type: JobType
    run_at: datetime
    status: JobStatus
    attempts: int
    max_attempts: int


class StandingRef(_Response):
    """The standing session a campaign came from."""

    id: int
    weekday: Weekday
    start_time: str
    removed: bool = Field(description="removed since: it is decided no more")


class CampaignView(_Response):
    """Aggregates only: no recipient list, no contact handles (rule 10)."""

    id: int
    campaign_date: date
    status: CampaignStatus
    dry_run: bool
    initiator: str = Field(description="the initiator's display name (a standing session's: its creator)")
    title: str | None
    start_time: str | None = Field(
        description="HH:MM as scheduled; null for campaigns scheduled before start times were kept "
        "(the start job's run_at says when)"
    )
    standing_session: StandingRef | None = Field(description="the standing session that created it, if one did")
    recipient_count: int
    channels_summary: ChannelsSummaryModel
    delivery: DeliveryCounts
    rsvp: RsvpCounts
    need: NeedView
    jobs: list[JobView]


class CampaignStatusResponse(_Response):
    campaign: CampaignView | None


class DecisionView(_Response):
    """A standing session's decision for one date: still to come (`outcome` null), or what it did."""

    session_date: date
    decide_at: datetime
    status: JobStatus
    outcome: DecisionOutcome | None = Field(
        description="created: at quorum, the campaign was created; below_quorum: one note went to the follow-up "
        "channel; refused: creating it was refused (a limit); taken: a campaign of that day made by hand took "
        "precedence; too_late: the bot was not running in time; failed: the decision kept failing"
    )
    eligible: int | None = Field(description="the players counted against the quorum")
    campaign_id: int | None = Field(description="the campaign created, or the one that took precedence")
    detail: str = Field(description="what happened, in words")
    decided_at: datetime | None


class StandingSessionView(_Response):
    id: int
    weekday: Weekday
    start_time: str
    quorum: int
    include_available: bool
    include_maybe: bool
    title: str | None
    created_by: str = Field(description="the creator's display name: campaigns are created as them")
    created_at: datetime
    removed_at: datetime | None
    next_decision: DecisionView | None
    last_decision: DecisionView | None


class StandingListResponse(_Response):
    standing: list[StandingSessionView] = Field(description="in week order (Monday first), then by time")
