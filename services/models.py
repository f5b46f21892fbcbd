"""Domain types shared by the rules, the services and storage."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, time


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


JOB_ORDER: tuple[JobType, ...] = (JobType.REMINDER, JobType.START, JobType.VOICE_CHECK)


class DeliveryStatus(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"


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
    allow_promotions: bool = True
    preferred_channel: PreferredChannel = PreferredChannel.ANY
    quiet_hours: QuietHours | None = None
    timezone: str | None = None  # None: the promotion timezone


@dataclass(frozen=True, slots=True)
class Player:
    id: int
    discord_user_id: int
    display_name: str


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

    @property
    def recipient_count(self) -> int:
        return len(self.recipients)
