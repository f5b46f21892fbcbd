"""What a fan-out does with each recipient of a chunk, decided without I/O (a pure rule).

Given the recipients, their current preferences and addresses, and the ledger rows already under the
job's key, every recipient falls in exactly one bucket: send now, send again (this job claimed them
before an interruption), record an outcome without sending, note that another campaign owns the key,
or nothing at all (this job already recorded them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from services.models import (
    Attempt,
    Channel,
    DeliveryContext,
    DeliveryOutcome,
    DeliveryStatus,
    JobType,
    LedgerEntry,
    LedgerState,
    SnapshotRecipient,
)
from services.quiet_hours import in_quiet_hours
from services.routing import fallback_chain
from services.schedule import load_zone

# A row another job left `skipped` or `failed` reached nobody: this job may claim the key again.
RECLAIMABLE = frozenset({LedgerState.SKIPPED, LedgerState.FAILED})

PLAYER_GONE = "player no longer exists"
OPTED_OUT = "promotions turned off by the player"
QUIET_HOURS = "quiet hours"
TOO_LATE = "too_late"  # past the message's send-by time (docs/delivery.md)
NO_START_PING = "no follow-up: their start ping was not sent"
START_FAILED = "no follow-up: the start job failed"
DECLINED = "declined"  # the player answered "can't tonight": nothing more of this campaign reaches them
RUNNING_LATE = "no follow-up: running late"  # they said so; the summary lists them
# Discord refused this player a DM (50007) and they have not used Rallypoint since: no request to them.
DM_CLOSED = "dm_closed"
INTERRUPTED_UNKNOWN = "interrupted mid-send; not resent because the platform cannot deduplicate"
INTERRUPTED_TOO_LATE = "interrupted mid-send; not resent because it is past its send-by time"


@dataclass(frozen=True, slots=True)
class FanoutJob:
    campaign_id: int
    job_id: int
    job_type: JobType
    key: str
    dry_run: bool
    zone: ZoneInfo
    send_by: datetime  # no message of this job goes out from this instant on
    # Recipients who get nothing from this job whatever their preferences, and why (the follow-up
    # goes only to those whose start ping was sent; nothing goes to those who declined).
    withheld: Mapping[int, str] = field(default_factory=dict)
    offers_rsvp: bool = False  # its messages carry the campaign's answers (in / late / out)


@dataclass(frozen=True, slots=True)
class Send:
    """A recipient to hand to the senders, with the channels to try in order.

    `dm_closed`: Discord was left out of the chain because the player's DMs are closed.
    """

    recipient: SnapshotRecipient
    context: DeliveryContext | None
    chain: tuple[Channel, ...]
    dm_closed: bool = False


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    fresh: tuple[Send, ...] = ()  # claim, then send
    resend: tuple[Send, ...] = ()  # claimed by this job before an interruption, never delivered
    decided: tuple[DeliveryOutcome, ...] = ()  # skipped without a send: quiet hours, opted out, gone
    resolved: tuple[DeliveryOutcome, ...] = ()  # this job's interrupted sends that cannot be resent
    notes: tuple[Attempt, ...] = ()  # the key belongs to another campaign's delivery
    # (player, stored timezone) whose zone no longer loads: their quiet hours were read in the
    # promotion timezone instead (one bad row never sinks a job).
    bad_zones: tuple[tuple[int, str], ...] = ()


def plan_chunk(
    job: FanoutJob,
    chunk: Sequence[SnapshotRecipient],
    contexts: Mapping[int, DeliveryContext],
    entries: Mapping[int, LedgerEntry],
    dedup: Mapping[Channel, bool],
    now: datetime,
) -> ChunkPlan:
    """Sort a chunk of recipients into what the fan-out must do with each.

    `dedup` holds the enabled channels (those with a sender) and whether each deduplicates a resend.
    """
    fresh: list[Send] = []
    resend: list[Send] = []
    decided: list[DeliveryOutcome] = []
    resolved: list[DeliveryOutcome] = []
    notes: list[Attempt] = []
    bad_zones: list[tuple[int, str]] = []
    for r in chunk:
        pid = r.player.id
        ctx = contexts.get(pid)
        full = channel_chain(job, ctx, dedup.keys())
        chain = without_closed_dms(full, ctx)
        dm_closed = len(chain) < len(full)
        first = chain[0] if chain else full[0]
        entry = entries.get(pid)
        if entry is None or (entry.state in RECLAIMABLE and entry.job_id != job.job_id):
            zone = job.zone
            stored = ctx.preferences.timezone if ctx is not None and ctx.preferences.quiet_hours else None
            if stored is not None:
                loaded = load_zone(stored)
                if loaded is None:
                    bad_zones.append((pid, stored))
                else:
                    zone = loaded
            skip = skip_reason(job, ctx, now, zone) or (None if chain else DM_CLOSED)
            if skip:
                decided.append(single(pid, first, DeliveryStatus.SKIPPED, skip))
            else:
                fresh.append(Send(r, ctx, chain, dm_closed))
        elif entry.job_id == job.job_id:
            if entry.state is not LedgerState.CLAIMED:
                continue  # the outcome was recorded before the interruption
            channel = entry.channel or first
            refused = channel is Channel.DISCORD and dm_closed
            never_left = refused or (channel in dedup and not dedup[channel] and not entry.on_wire)
            if now >= job.send_by:
                # Too late to resend. Only a send that never reached the platform surely did not arrive.
                if never_left:
                    resolved.append(single(pid, channel, DeliveryStatus.SKIPPED, TOO_LATE))
                else:
                    resolved.append(single(pid, channel, DeliveryStatus.UNKNOWN, INTERRUPTED_TOO_LATE))
            elif refused:
                # Refused by Discord since the claim (the 50007 was noted, its outcome was not):
                # nothing arrived there, so go on down the chain, or skip if Discord was the last.
                if chain:
                    resend.append(Send(r, ctx, chain, dm_closed))
                else:
                    resolved.append(single(pid, channel, DeliveryStatus.SKIPPED, DM_CLOSED))
            # Resend where the platform deduplicates, or where the message never left (a send without
            # dedup is marked on the wire right before its request); otherwise it may have arrived.
            elif channel in dedup and (dedup[channel] or never_left):
                rest = chain[chain.index(channel) :] if channel in chain else (channel, *chain)
                resend.append(Send(r, ctx, rest, dm_closed))
            else:
                resolved.append(single(pid, channel, DeliveryStatus.UNKNOWN, INTERRUPTED_UNKNOWN))
        else:
            reason = f"already handled for {job.key} by campaign {entry.campaign_id} ({entry.state})"
            notes.append(Attempt(pid, entry.channel or first, DeliveryStatus.SKIPPED, reason, None, True))
    return ChunkPlan(tuple(fresh), tuple(resend), tuple(decided), tuple(resolved), tuple(notes), tuple(bad_zones))


def channel_chain(job: FanoutJob, ctx: DeliveryContext | None, enabled: Iterable[Channel]) -> tuple[Channel, ...]:
    """The channels to try for a recipient now: their current preference over their current links."""
    if job.dry_run or ctx is None:
        return (Channel.DISCORD,)
    return fallback_chain(ctx.preferences.preferred_channel, ctx.encrypted_addresses, enabled)


def without_closed_dms(chain: tuple[Channel, ...], ctx: DeliveryContext | None) -> tuple[Channel, ...]:
    """The chain without Discord while the player's DMs are closed (possibly empty)."""
    if ctx is None or not ctx.discord_dms_closed:
        return chain
    return tuple(c for c in chain if c is not Channel.DISCORD)


def skip_reason(job: FanoutJob, ctx: DeliveryContext | None, now: datetime, zone: ZoneInfo) -> str | None:
    """Why a recipient gets nothing now, or None to send; `zone` is the one their quiet hours are read in."""
    if ctx is None:
        return PLAYER_GONE
    withheld = job.withheld.get(ctx.player.id)
    if withheld is not None:
        return withheld
    if now >= job.send_by:
        return TOO_LATE
    if job.dry_run:
        return None  # the initiator rehearses on purpose, whatever their preferences
    prefs = ctx.preferences
    if not prefs.allow_promotions:
        return OPTED_OUT
    if in_quiet_hours(prefs.quiet_hours, zone, now):
        return QUIET_HOURS
    return None


def single(player_id: int, channel: Channel, status: DeliveryStatus, reason: str) -> DeliveryOutcome:
    """An outcome reached in one step (no send), with its one final send-log row."""
    return DeliveryOutcome(player_id, status, channel, None, (Attempt(player_id, channel, status, reason, None, True),))
