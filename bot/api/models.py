"""Request and response bodies of the HTTP API; the OpenAPI document is generated from these.

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
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from services.models import (
    CampaignStatus,
    Channel,
    JobStatus,
    JobType,
    PlayerStatus,
    PreferredChannel,
)
from services.phone import normalize_e164
from services.quiet_hours import parse_hhmm
from services.schedule import validate_timezone

MAX_SQLITE_INT: Final = 2**63 - 1
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
HHMM_PATTERN: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date") from None


def _query_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError("expected true, false, 1 or 0")


def _hhmm(value: str) -> str:
    parse_hhmm(value)
    return value


def _drop_default(schema: dict[str, Any]) -> None:
    # An omitted field means "leave unchanged", not "set to null": the document must not say null.
    schema.pop("default", None)


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
QueryBool = Annotated[bool, BeforeValidator(_query_bool), WithJsonSchema({"type": "boolean"})]
HHMM = Annotated[
    str,
    AfterValidator(_hhmm),
    WithJsonSchema({"type": "string", "pattern": HHMM_PATTERN, "examples": ["22:30"]}),
]
Timezone = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(validate_timezone),
    WithJsonSchema({"type": "string", "maxLength": 64, "examples": ["Europe/Ljubljana"]}),
]
E164 = Annotated[
    str,
    AfterValidator(normalize_e164),
    WithJsonSchema({"type": "string", "maxLength": 32, "examples": ["+38640123456"]}),
]


def _omittable(description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra=_drop_default)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- requests --------------------------------------------------------------------------------


class DateQuery(_Request):
    date: IsoDate | None = Field(None, description="YYYY-MM-DD; default: today in the promotion timezone")


class PreviewQuery(_Request):
    include_available: QueryBool = False
    include_maybe: QueryBool = False


class CampaignPath(_Request):
    campaign_id: int = Field(ge=1, le=MAX_SQLITE_INT)


class SetStatusRequest(_Request):
    status: PlayerStatus | None = Field(description="null clears the status for that date")
    date: IsoDate | None = Field(None, description="YYYY-MM-DD; default: today in the promotion timezone")


class QuietHours(_Request):
    """A daily window in the player's own timezone: start inclusive, end exclusive, may wrap midnight."""

    start: HHMM
    end: HHMM


class PreferencesUpdate(_Request):
    """Omitted fields stay as they are."""

    allow_promotions: StrictBool = _omittable("Receive promotion pings at all.")
    preferred_channel: PreferredChannel = _omittable("Where pings go first.")
    quiet_hours: QuietHours | None = _omittable("null removes the quiet hours.")
    timezone: Timezone | None = _omittable("IANA name; null: the promotion timezone.")


class LinkTokenRequest(_Request):
    """`{"channel": "telegram"}`, or `{"channel": "signal", "address": "+…"}` (E.164)."""

    channel: Literal["telegram", "signal"]
    address: E164 | None = _omittable("The Signal number, required for signal; not allowed for telegram.")

    @model_validator(mode="after")
    def _address_matches_channel(self) -> LinkTokenRequest:
        if self.channel == "signal" and self.address is None:
            raise ValueError("address is required for channel signal")
        if self.channel == "telegram" and "address" in self.model_fields_set:
            raise ValueError("address is only for channel signal")
        return self


class LinkConfirmRequest(_Request):
    channel: Literal["signal"]
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class CreateCampaignRequest(_Request):
    include_available: StrictBool = False
    include_maybe: StrictBool = False
    dry_run: StrictBool = _omittable("Default: the configured promotion.dry_run_default.")


class EmptyRequest(_Request):
    """No fields; an empty body is accepted too."""


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
    recipient_count: int
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


class DeliveryCounts(_Response):
    sent: int
    skipped: int
    failed: int
    unknown: int


class JobView(_Response):
    job_type: JobType
    run_at: datetime
    status: JobStatus
    attempts: int
    max_attempts: int


class CampaignView(_Response):
    """Aggregates only: no recipient list, no contact handles (rule 10)."""

    id: int
    campaign_date: date
    status: CampaignStatus
    dry_run: bool
    initiator: str = Field(description="the initiator's display name")
    recipient_count: int
    channels_summary: ChannelsSummaryModel
    delivery: DeliveryCounts
    jobs: list[JobView]


class CampaignStatusResponse(_Response):
    campaign: CampaignView | None
