"""The domain vocabulary: every type that crosses layers (storage ↔ services ↔ bot and cogs).

A leaf module: it imports nothing of the project, so that storage can return these rows and the
services can reason about them without either layer importing the other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Final


class PlayerStatus(enum.StrEnum):
    LOOKING = "LOOKING"
    AVAILABLE = "AVAILABLE"
    MAYBE = "MAYBE"
    NOT_PLAYING = "NOT_PLAYING"


class Channel(enum.StrEnum):
    DISCORD = "discord"
    TELEGRAM = "telegram"
    SIGNAL = "signal"


class PreferredChannel(enum.StrEnum):
    ANY = "any"
    DISCORD = "discord"
    TELEGRAM = "telegram"
    SIGNAL = "signal"


class CampaignStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SENT = "sent"
    PARTIAL = "partial"
    FAILED = "failed"
    FOLLOWUP_SENT = "followup_sent"
    CANCELLED = "cancelled"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobType(enum.StrEnum):
    # Names kept for compatibility with existing website code, whatever the configured times.
    REMINDER = "send_reminder_2045"
    START = "send_start_2100"
    VOICE_CHECK = "voice_check_2100"
    # "We need N more": asks players outside the snapshot; outside the campaign's order (seq -1).
    NEED = "send_need"
    # Not a campaign's: decides whether a standing session's evening is promoted (and creates it).
    STANDING_DECISION = "standing_decision"


# The jobs every campaign gets at creation, in the order they run.
JOB_ORDER: tuple[JobType, ...] = (JobType.REMINDER, JobType.START, JobType.VOICE_CHECK)
# The seq of a job that stands outside that order: it waits for no job and no job waits for it.
UNORDERED_SEQ: Final = -1


class RsvpAnswer(enum.StrEnum):
    """A player's answer to an invitation, from the message itself; the last one counts."""

    IN = "in"  # I'm in
    LATE = "late"  # running late
    OUT = "out"  # can't tonight


class Weekday(enum.StrEnum):
    """A standing session's day, in the promotion timezone; in `date.weekday()` order."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """0 for Monday … 6 for Sunday, as `date.weekday()` counts."""
        return list(Weekday).index(self)

    @property
    def label(self) -> str:
        return _WEEKDAY_LABELS[self.number]

    @classmethod
    def of(cls, day: date) -> Weekday:
        return list(cls)[day.weekday()]


_WEEKDAY_LABELS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DecisionOutcome(enum.StrEnum):
    """What a standing session's decision did for one date."""

    CREATED = "created"  # at quorum: the campaign was created, as its creator would have
    BELOW_QUORUM = "below_quorum"  # too few: one note to the follow-up channel, nothing else
    REFUSED = "refused"  # at quorum, but creating the campaign was refused (a limit); logged
    TAKEN = "taken"  # a campaign of that date was already made by hand: it takes precedence
    TOO_LATE = "too_late"  # the bot was not running in time to decide (the start ping would be late)
    FAILED = "failed"  # the decision kept failing until its attempts ran out


class DeliveryStatus(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"


class LedgerState(enum.StrEnum):
    """Where one delivery (or summary post) stands in the ledger.

    CLAIMED with no outcome after a crash is the ambiguous case the delivery protocol resolves.
    """

    CLAIMED = "claimed"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"


class CampaignLimit(enum.StrEnum):
    """The anti-spam guard (rule 6) that refused a new campaign."""

    PER_PROMOTER = "per_promoter"  # one campaign per promoter per day
    GLOBAL = "global"  # promotion.global_cooldown: one campaign per day for everyone
    DRY_RUNS = "dry_runs"  # promotion.dry_run_daily_limit dry runs per promoter per day
    STANDING = "standing"  # a standing session creates one campaign per date


class StandingLimit(enum.StrEnum):
    """Why a standing session was not added."""

    SLOT = "slot"  # another session has that weekday and time
    COUNT = "count"  # the server has as many standing sessions as it allows


class PermissionTier(enum.StrEnum):
    USER = "user"
    PROMOTER = "promoter"
    ADMIN = "admin"
    ROOT = "root"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in the player's own timezone; start inclusive, end exclusive."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Preferences:
    # Consent is opt-in: off until the player says yes (storage refuses "on" without a choice).
    allow_promotions: bool = False
    preferred_channel: PreferredChannel = PreferredChannel.ANY
    quiet_hours: QuietHours | None = None
    timezone: str | None = None  # None: the promotion timezone
    promotions_chosen: bool = False  # the player answered, yes or no (they are not asked again)


@dataclass(frozen=True, slots=True)
class Player:
    id: int
    discord_user_id: int
    display_name: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A player as their own use of Rallypoint finds them, with when Discord last refused them a DM."""

    player: Player
    discord_dms_closed_at: datetime | None = None  # None: nothing refused since they last interacted


@dataclass(frozen=True, slots=True)
class Candidate:
    """A player as seen by recipient selection: status, preferences and verified channels."""

    player: Player
    status: PlayerStatus
    preferences: Preferences
    verified_channels: frozenset[Channel] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Recipient:
    player: Player
    status: PlayerStatus
    selected_channel: Channel
    chain: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class CampaignSchedule:
    reminder: datetime
    start: datetime
    voice_check: datetime

    def at(self, job_type: JobType) -> datetime:
        return {
            JobType.REMINDER: self.reminder,
            JobType.START: self.start,
            JobType.VOICE_CHECK: self.voice_check,
        }[job_type]


@dataclass(frozen=True, slots=True)
class ChannelsSummary:
    discord: int = 0
    telegram: int = 0
    signal: int = 0

    @classmethod
    def of(cls, recipients: list[Recipient] | tuple[Recipient, ...]) -> ChannelsSummary:
        counts = {c: 0 for c in Channel}
        for r in recipients:
            counts[r.selected_channel] += 1
        return cls(counts[Channel.DISCORD], counts[Channel.TELEGRAM], counts[Channel.SIGNAL])

    def as_dict(self) -> dict[str, int]:
        return {"discord": self.discord, "telegram": self.telegram, "signal": self.signal}


@dataclass(frozen=True, slots=True)
class Preview:
    campaign_date: date
    timezone: str
    schedule: CampaignSchedule
    reminder_time: time
    start_time: time
    recipients: tuple[Recipient, ...]
    channels_summary: ChannelsSummary
    unavailable_channels: frozenset[Channel]
    dry_run: bool = False
    # Players with a wanted status left out because they never turned promotions on.
    not_opted_in: int = 0
    title: str | None = None
    include_available: bool = False
    include_maybe: bool = False

    @property
    def recipient_count(self) -> int:
        return len(self.recipients)


# -- players ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AvailabilityEntry:
    player: Player
    date: date
    status: PlayerStatus | None


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """What a send needs about a recipient at send time (preferences may have changed)."""

    player: Player
    preferences: Preferences
    encrypted_addresses: dict[Channel, str]
    discord_dms_closed: bool = False  # Discord answered 50007 and the player has not interacted since


@dataclass(frozen=True, slots=True)
class Link:
    """A verified Telegram or Signal address (encrypted; only the linking service decrypts it)."""

    player_id: int
    channel: Channel
    address_encrypted: str
    verified_at: datetime


# -- campaigns and jobs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    campaign_date: date
    initiator: Player
    status: CampaignStatus
    dry_run: bool
    include_available: bool
    include_maybe: bool
    timezone: str
    recipient_count: int
    channels_summary: ChannelsSummary
    created_at: datetime
    # The wall-clock start it was scheduled for (None: scheduled before campaigns kept it; the start
    # job's due time says when), its title, and the standing session that created it.
    start_time: time | None = None
    title: str | None = None
    standing_session_id: int | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    campaign_id: int | None  # None: a standing decision, which belongs to no campaign (yet)
    job_type: JobType
    seq: int
    run_at: datetime
    due_at: datetime
    status: JobStatus
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_until: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SnapshotRecipient:
    """A recipient as the campaign's snapshot holds them: status and channel at creation."""

    player: Player
    status: PlayerStatus
    selected_channel: Channel


# -- the delivery ledger and the send log ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    player_id: int
    key: str
    campaign_id: int
    job_id: int
    state: LedgerState
    channel: Channel | None
    on_wire: bool = False  # a send without dedup was handed to the platform


@dataclass(frozen=True, slots=True)
class PostClaim:
    """A post (the voice-check summary) that was claimed already, by `campaign_id` (None: no campaign's)."""

    campaign_id: int | None
    state: LedgerState


@dataclass(frozen=True, slots=True)
class Attempt:
    """One send attempt (or a decision not to send) for the send log."""

    player_id: int | None
    channel: Channel
    status: DeliveryStatus
    reason: str = ""
    provider_message_id: str | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class SendLogEntry:
    """One row of the send log as stored (rule 9); `player_id` None is the summary post."""

    id: int
    at: datetime
    campaign_id: int
    job_id: int
    job_type: JobType
    player_id: int | None
    channel: Channel
    status: DeliveryStatus
    reason: str
    provider_message_id: str | None
    final: bool


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """The final result of one (player, key) delivery, with every attempt that led to it."""

    player_id: int
    status: DeliveryStatus
    channel: Channel
    provider_message_id: str | None
    attempts: tuple[Attempt, ...]


# -- account links in progress ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most `limit` requests per `window` (per player, and per number for Signal codes)."""

    limit: int = 5
    window: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= timedelta(0):
            raise ValueError("a throttle needs limit >= 1 and a positive window")


@dataclass(frozen=True, slots=True)
class SignalCodeLimits:
    """How many Signal codes may be sent, counted three ways.

    Per number (whoever asks) bounds what anyone can make a phone receive in a day; per player and
    number, kept well below it, means one member cannot use up a number's allowance and so lock its
    owner out; per player bounds one member's requests overall.
    """

    per_player: Throttle = field(default_factory=lambda: Throttle(limit=5, window=timedelta(hours=1)))
    per_player_and_number: Throttle = field(default_factory=lambda: Throttle(limit=2, window=timedelta(days=1)))
    per_number: Throttle = field(default_factory=lambda: Throttle(limit=6, window=timedelta(days=1)))

    @property
    def longest_window(self) -> timedelta:
        return max(self.per_player.window, self.per_player_and_number.window, self.per_number.window)


@dataclass(frozen=True, slots=True)
class Throttled:
    """A request refused by the throttle; another is accepted from `retry_at` on."""

    retry_at: datetime


@dataclass(frozen=True, slots=True)
class TelegramLinkToken:
    id: int
    player_id: int
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class TelegramLinked:
    """A chat now gets `player`'s promotions; `previous` had it until now (None: nobody)."""

    player: Player
    previous: Player | None = None


@dataclass(frozen=True, slots=True)
class TelegramMoveAsked:
    """The chat is linked to `current`: moving it to `player` waits for the chat's own answer."""

    player: Player
    current: Player
    token_id: int


@dataclass(frozen=True, slots=True)
class SignalVerification:
    id: int
    player_id: int
    number_encrypted: str
    number_hash: str
    code_salt: str
    code_hash: str
    created_at: datetime
    expires_at: datetime
    failed_attempts: int
    locked: bool
    used_at: datetime | None
    cancelled_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class WebSession:
    """A browser session opened by the Discord login; the cookie holds its id, the database this."""

    discord_user_id: int
    created_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


# -- who acts, and what the services answer ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    """The Discord user acting, as far as the guild knows them."""

    discord_user_id: int
    is_member: bool
    role_ids: frozenset[int] = frozenset()
    display_name: str = ""


class Unset:
    """The type of UNSET: a preference left as it is (None means "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


@dataclass(frozen=True, slots=True)
class Board:
    day: date
    entries: tuple[AvailabilityEntry, ...]

    def counts(self) -> dict[PlayerStatus, int]:
        counts = {s: 0 for s in PlayerStatus}
        for e in self.entries:
            if e.status is not None:
                counts[e.status] += 1
        return counts


@dataclass(frozen=True, slots=True)
class StatusSet:
    """A status just set, and whether to offer the player the one-tap "Ping me tonight"."""

    entry: AvailabilityEntry
    ask_consent: bool


@dataclass(frozen=True, slots=True)
class PreferencesView:
    player: Player
    preferences: Preferences
    links: tuple[Link, ...]
    masked: dict[Channel, str] = field(default_factory=dict)  # e.g. {signal: "+386•••••56"}
    # When Discord refused this player a DM, as found when they arrived; their arrival cleared it.
    discord_dms_closed_at: datetime | None = None

    @property
    def linked_channels(self) -> frozenset[Channel]:
        return frozenset({Channel.DISCORD, *(link.channel for link in self.links)})


@dataclass(frozen=True, slots=True)
class CampaignCreated:
    campaign: Campaign
    schedule: CampaignSchedule
    jobs: tuple[Job, ...]


@dataclass(frozen=True, slots=True)
class NeedCounts:
    """How "we need N more" went: players asked, and how many of them said they are in."""

    asked: int = 0
    joined: int = 0


@dataclass(frozen=True, slots=True)
class CampaignStatusView:
    """What anyone linked may see of a campaign: aggregates only (rule 10)."""

    campaign: Campaign
    delivery: dict[DeliveryStatus, int]
    jobs: tuple[Job, ...]
    standing: StandingSession | None = None  # the standing session that created it
    rsvp: dict[RsvpAnswer, int] = field(default_factory=lambda: {a: 0 for a in RsvpAnswer})
    need: NeedCounts = NeedCounts()

    @property
    def start(self) -> datetime | None:
        """When the evening starts (the start job's due time)."""
        return next((j.due_at for j in self.jobs if j.job_type is JobType.START), None)


# -- RSVP and "we need N more" ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invitation:
    """Why a player may answer a campaign: in its snapshot, or asked by "we need N more" (or both)."""

    campaign: Campaign
    player: Player
    status: PlayerStatus  # their status when the snapshot (or the ask) took them
    selected_channel: Channel
    in_snapshot: bool


class RsvpRefusal(enum.StrEnum):
    """Why an answer was not recorded (each gets a polite reply)."""

    NOT_YOURS = "not_yours"  # not a recipient of that campaign, or no such campaign
    CANCELLED = "cancelled"  # the session was called off
    NO_INVITATION = "no_invitation"  # (Signal) no campaign of today invites this player


@dataclass(frozen=True, slots=True)
class RsvpRecorded:
    """An answer stored; `joined`: it added a player asked by "we need N more" to the snapshot."""

    campaign: Campaign
    player: Player
    answer: RsvpAnswer
    joined: bool = False


@dataclass(frozen=True, slots=True)
class NeedAsked:
    """A "we need N more" call: the campaign, the count asked for, and how many new players it asks."""

    campaign: Campaign
    count: int
    messaged: int


# -- standing sessions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StandingSession:
    """An evening that happens every week when enough players are up for it, without an organiser."""

    id: int
    weekday: Weekday
    start_time: time
    quorum: int
    include_available: bool
    include_maybe: bool
    title: str | None
    creator: Player
    created_at: datetime
    removed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One date of a standing session: its local date, its start and when it is decided."""

    day: date
    start: datetime
    decide_at: datetime


@dataclass(frozen=True, slots=True)
class StandingDecision:
    """A standing session's decision for one date: pending (`outcome` None) or what it did."""

    job_id: int
    session_id: int
    session_date: date
    due_at: datetime
    job_status: JobStatus
    outcome: DecisionOutcome | None = None
    eligible: int | None = None  # the players counted, against the session's quorum
    campaign_id: int | None = None  # the campaign created, or the one that took precedence
    detail: str = ""  # in words, for the promoters' list (a refusal's reason, say)
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Evening:
    """What is on for a day: the campaign promoted (and when it starts), else the standing sessions whose
    decision for that day is still to come."""

    day: date
    campaign: Campaign | None = None
    start: datetime | None = None
    standing: tuple[StandingView, ...] = ()


@dataclass(frozen=True, slots=True)
class StandingView:
    """A standing session with its next decision (None once removed) and its latest outcome."""

    session: StandingSession
    next: StandingDecision | None
    last: StandingDecision | None
