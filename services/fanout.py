"""Fan one message out to many recipients: ledger claim → send (with retries and fallback) → record.

The ledger row is claimed before the send and its outcome recorded after, in batches: a crash
between the two leaves a `claimed` row, which the next run of the job resolves — by resending
with the same nonce where the platform deduplicates (Discord), else by recording `unknown`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from services.clock import Clock
from services.contacts import ContactCipher
from services.delivery.base import Outcome, OutgoingMessage, Sender
from services.keys import message_nonce
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
from storage.ledger import LedgerStore
from storage.players import PlayerStore

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
FLUSH_EVERY = 128
FLUSH_INTERVAL_SECONDS = 0.05
KEEP_ALIVE_SECONDS = 1.0  # how often a running fan-out checks in: well under the 5 s minimum lease
_RECLAIMABLE = frozenset({LedgerState.SKIPPED, LedgerState.FAILED})
MAX_TRIES_PER_CHANNEL = 4
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0

# Renders the text of a message for a channel (texts differ only in Discord's timestamp markup).
TextFor = Callable[[Channel], str]


@dataclass(frozen=True, slots=True)
class FanoutJob:
    campaign_id: int
    job_id: int
    job_type: JobType
    key: str
    dry_run: bool
    zone: ZoneInfo


@dataclass(slots=True)
class FanoutResult:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    already_recorded: int = 0

    def add(self, status: DeliveryStatus) -> None:
        setattr(self, status.value, getattr(self, status.value) + 1)


class Fanout:
    def __init__(
        self,
        *,
        player_store: PlayerStore,
        ledger_store: LedgerStore,
        senders: dict[Channel, Sender],
        cipher: ContactCipher | None,
        clock: Clock,
        concurrency: int,
        rng: random.Random | None = None,
        window: int | None = None,
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self.player_store = player_store
        self.ledger_store = ledger_store
        self.senders = senders
        self.cipher = cipher
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._limits = {ch: asyncio.Semaphore(concurrency) for ch in Channel}
        # Recipients in flight at once per channel (their first channel); by default that
        # channel's limit, so that a claimed recipient never queues behind a semaphore.
        self.window = window or concurrency
        self.flush_interval = flush_interval

    async def run(
        self,
        job: FanoutJob,
        recipients: Sequence[SnapshotRecipient],
        text_for: TextFor,
        *,
        keep_alive: Callable[[], Awaitable[bool]],
    ) -> FanoutResult | None:
        """Deliver to every recipient once; None if the job was cancelled or taken over midway.

        Recipients are split into one stream per channel chosen at the snapshot, run side by side:
        a chunk of paced Telegram sends never holds up the Discord and Signal chunks behind it.
        """
        result = FanoutResult()
        streams: dict[Channel, list[SnapshotRecipient]] = {}
        for r in recipients:
            streams.setdefault(r.selected_channel, []).append(r)
        async with asyncio.TaskGroup() as group:
            runs = [
                group.create_task(self._run_stream(job, stream, text_for, result, keep_alive))
                for stream in streams.values()
            ]
        return result if all(run.result() for run in runs) else None

    async def _run_stream(
        self,
        job: FanoutJob,
        recipients: Sequence[SnapshotRecipient],
        text_for: TextFor,
        result: FanoutResult,
        keep_alive: Callable[[], Awaitable[bool]],
    ) -> bool:
        for start in range(0, len(recipients), CHUNK_SIZE):
            if not await keep_alive():
                return False
            chunk = recipients[start : start + CHUNK_SIZE]
            await self._run_chunk(job, chunk, text_for, result, keep_alive)
        return True

    async def _run_chunk(
        self,
        job: FanoutJob,
        chunk: Sequence[SnapshotRecipient],
        text_for: TextFor,
        result: FanoutResult,
        keep_alive: Callable[[], Awaitable[bool]],
    ) -> None:
        ids = [r.player.id for r in chunk]
        contexts = await self.player_store.delivery_contexts(ids)
        existing = await self.ledger_store.entries(job.key, ids)

        skips: list[DeliveryOutcome] = []  # decided without sending (quiet hours, opted out)
        unknowns: list[DeliveryOutcome] = []  # our own interrupted sends that cannot be deduplicated
        notes: list[Attempt] = []  # the key belongs to another campaign's delivery
        resend: list[tuple[SnapshotRecipient, tuple[Channel, ...]]] = []
        fresh: list[tuple[SnapshotRecipient, tuple[Channel, ...]]] = []
        for r in chunk:
            pid = r.player.id
            ctx = contexts.get(pid)
            chain = self._chain(job, ctx)
            entry = existing.get(pid)
            if entry is None or (entry.state in _RECLAIMABLE and entry.job_id != job.job_id):
                skip = self._skip_reason(job, ctx)
                if skip:
                    skips.append(_single(pid, chain[0], DeliveryStatus.SKIPPED, skip))
                else:
                    fresh.append((r, chain))
            elif entry.job_id == job.job_id:
                resolved = self._resolve_own(job, entry, chain)
                if resolved is None:
                    result.already_recorded += 1
                elif isinstance(resolved, DeliveryOutcome):
                    unknowns.append(resolved)
                else:
                    resend.append((r, resolved))
            else:
                reason = f"already handled for {job.key} by campaign {entry.campaign_id} ({entry.state})"
                notes.append(Attempt(pid, entry.channel or chain[0], DeliveryStatus.SKIPPED, reason, None, True))
        if skips or unknowns or notes:
            recorded = await self.ledger_store.decide(
                key=job.key,
                campaign_id=job.campaign_id,
                job_id=job.job_id,
                job_type=job.job_type,
                decided=skips,
                resolved=unknowns,
                notes=notes,
                now=self.clock.now(),
            )
            for status in recorded:
                result.add(status)
        await self._send_window(job, resend, fresh, contexts, text_for, result, keep_alive)

    async def _send_window(
        self,
        job: FanoutJob,
        resend: list[tuple[SnapshotRecipient, tuple[Channel, ...]]],
        fresh: list[tuple[SnapshotRecipient, tuple[Channel, ...]]],
        contexts: dict[int, DeliveryContext],
        text_for: TextFor,
        result: FanoutResult,
        keep_alive: Callable[[], Awaitable[bool]],
    ) -> None:
        """Send with at most `window` recipients in flight per channel, claiming each batch just before it starts.

        Claiming only what is about to be handed to a sender keeps the crash-ambiguous set small
        and honest: a claimed row without an outcome really was in flight, so marking it `unknown`
        (Telegram, Signal) never drops a recipient whose send had not begun. Each channel has its
        own window, so Telegram's pacing never holds Discord or Signal recipients back.
        """
        in_flight: dict[asyncio.Task[DeliveryOutcome], Channel] = {}
        per_channel: Counter[Channel] = Counter()
        done: list[DeliveryOutcome] = []
        lost: list[Attempt] = []
        flushed_at = self.clock.monotonic()

        def start(r: SnapshotRecipient, chain: tuple[Channel, ...]) -> None:
            coro = self._deliver(job, r, contexts.get(r.player.id), chain, text_for, keep_alive)
            in_flight[asyncio.create_task(coro)] = chain[0]
            per_channel[chain[0]] += 1

        for r, chain in resend:  # already claimed by this job before the interruption
            start(r, chain)
        queues: dict[Channel, list[tuple[SnapshotRecipient, tuple[Channel, ...]]]] = {}
        for r, chain in reversed(fresh):
            queues.setdefault(chain[0], []).append((r, chain))
        checked_at = self.clock.now()
        stopping = False
        try:
            while (any(queues.values()) and not stopping) or in_flight:
                if (self.clock.now() - checked_at).total_seconds() >= KEEP_ALIVE_SECONDS:
                    # A long fan-out keeps its lease here; if the job was cancelled or taken
                    # over, claim nothing more and let what is in flight finish and be recorded.
                    checked_at = self.clock.now()
                    stopping = not await keep_alive()
                batch = [] if stopping else self._next_batch(queues, per_channel)
                if batch:
                    claimed = await self.ledger_store.claim(
                        key=job.key,
                        campaign_id=job.campaign_id,
                        job_id=job.job_id,
                        first_channels={r.player.id: chain[0] for r, chain in batch},
                        now=self.clock.now(),
                    )
                    for r, chain in batch:
                        if r.player.id in claimed:
                            start(r, chain)
                        else:  # another campaign's job took the key in between; it owns the send
                            reason = f"already handled for {job.key} by another campaign"
                            lost.append(Attempt(r.player.id, chain[0], DeliveryStatus.SKIPPED, reason, None, True))
                    continue
                # Record outcomes in batches, but never sit on them for long, even while a slow
                # send is still out: an unrecorded outcome turns into `unknown` (Telegram, Signal)
                # if the process dies now.
                timeout = KEEP_ALIVE_SECONDS
                if done or lost:
                    timeout = min(timeout, max(0.0, self.flush_interval - (self.clock.monotonic() - flushed_at)))
                finished, _ = await asyncio.wait(in_flight, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    per_channel[in_flight.pop(task)] -= 1
                    done.append(task.result())
                if len(done) >= FLUSH_EVERY or self.clock.monotonic() - flushed_at >= self.flush_interval:
                    await self._record(job, done, lost, result)
                    done, lost = [], []
                    flushed_at = self.clock.monotonic()
        finally:
            for task in in_flight:
                task.cancel()
        if done or lost:
            await self._record(job, done, lost, result)

    def _next_batch(
        self,
        queues: dict[Channel, list[tuple[SnapshotRecipient, tuple[Channel, ...]]]],
        per_channel: Counter[Channel],
    ) -> list[tuple[SnapshotRecipient, tuple[Channel, ...]]]:
        """Recipients to claim now: every channel whose window is at least half free gets a refill."""
        batch: list[tuple[SnapshotRecipient, tuple[Channel, ...]]] = []
        for channel, queue in queues.items():
            free = self.window - per_channel[channel]
            if queue and (free >= max(1, self.window // 2) or per_channel[channel] == 0):
                batch += [queue.pop() for _ in range(min(free, len(queue)))]
        return batch

    async def _record(
        self, job: FanoutJob, outcomes: list[DeliveryOutcome], lost: list[Attempt], result: FanoutResult
    ) -> None:
        await self.ledger_store.record(
            key=job.key,
            campaign_id=job.campaign_id,
            job_id=job.job_id,
            job_type=job.job_type,
            outcomes=outcomes,
            extra_attempts=lost,
            now=self.clock.now(),
        )
        for o in outcomes:
            result.add(o.status)
        for _ in lost:
            result.add(DeliveryStatus.SKIPPED)

    def _chain(self, job: FanoutJob, ctx: DeliveryContext | None) -> tuple[Channel, ...]:
        if job.dry_run or ctx is None:
            return (Channel.DISCORD,)
        verified = [c for c in ctx.encrypted_addresses if self.cipher is not None]
        return fallback_chain(ctx.preferences.preferred_channel, verified, self.senders.keys())

    def _skip_reason(self, job: FanoutJob, ctx: DeliveryContext | None) -> str | None:
        if ctx is None:
            return "player no longer exists"
        if job.dry_run:
            return None  # the initiator rehearses on purpose, whatever their preferences
        prefs = ctx.preferences
        if not prefs.allow_promotions:
            return "promotions turned off by the player"
        zone = ZoneInfo(prefs.timezone) if prefs.timezone else job.zone
        if in_quiet_hours(prefs.quiet_hours, zone, self.clock.now()):
            log.info("player %d skipped for %s: quiet hours", ctx.player.id, job.key)
            return "quiet hours"
        return None

    def _resolve_own(
        self, job: FanoutJob, entry: LedgerEntry, chain: tuple[Channel, ...]
    ) -> DeliveryOutcome | tuple[Channel, ...] | None:
        """A row this job claimed in an earlier run: done, resend (dedup, or never sent), or unknown."""
        if entry.state is not LedgerState.CLAIMED:
            return None  # outcome already recorded before the crash
        channel = entry.channel or chain[0]
        sender = self.senders.get(channel)
        if sender is not None and not sender.supports_dedup and not entry.on_wire:
            # Claimed, but the process died before the message was handed to the platform
            # (for example while waiting for Telegram's pacing): nothing can have arrived.
            return chain[chain.index(channel) :] if channel in chain else (channel, *chain)
        if sender is not None and sender.supports_dedup:
            log.info(
                "player %d: resending %s on %s with the same nonce after an interrupted run",
                entry.player_id,
                job.key,
                channel.value,
            )
            rest = chain[chain.index(channel) :] if channel in chain else (channel, *chain)
            return rest
        log.warning(
            "player %d: %s on %s was in flight when the previous run died; recorded unknown, "
            "not resent (%s has no upstream dedup: a missed ping beats a double ping)",
            entry.player_id,
            job.key,
            channel.value,
            channel.value,
        )
        return _single(
            entry.player_id,
            channel,
            DeliveryStatus.UNKNOWN,
            "interrupted mid-send; not resent because the platform cannot deduplicate",
        )

    async def _deliver(
        self,
        job: FanoutJob,
        recipient: SnapshotRecipient,
        ctx: DeliveryContext | None,
        chain: tuple[Channel, ...],
        text_for: TextFor,
        keep_alive: Callable[[], Awaitable[bool]],
    ) -> DeliveryOutcome:
        pid = recipient.player.id
        nonce = message_nonce(job.campaign_id, job.key, pid)
        attempts: list[Attempt] = []
        for position, channel in enumerate(chain):
            sender = self.senders.get(channel)
            address = self._address(channel, recipient, ctx)
            if sender is None or address is None:
                attempts.append(Attempt(pid, channel, DeliveryStatus.FAILED, "channel unavailable"))
                continue
            on_wire = None
            if not sender.supports_dedup:
                on_wire = functools.partial(self._mark_on_wire, job.key, pid, channel)
            elif position > 0:
                await self.ledger_store.note_channel(job.key, pid, channel)
            message = OutgoingMessage(channel, address, text_for(channel), nonce, pid, on_wire)
            for attempt in range(1, MAX_TRIES_PER_CHANNEL + 1):
                async with self._limits[channel]:
                    try:
                        result = await sender.send(message)
                    except Exception as exc:  # a sender bug must not lose the recipient
                        log.exception("sender %s raised for player %d", channel.value, pid)
                        result_reason = f"sender error: {type(exc).__name__}"
                        attempts.append(Attempt(pid, channel, DeliveryStatus.FAILED, result_reason))
                        break
                if result.outcome is Outcome.SENT:
                    attempts.append(
                        Attempt(
                            pid, channel, DeliveryStatus.SENT, result.reason, result.provider_message_id, final=True
                        )
                    )
                    return DeliveryOutcome(
                        pid, DeliveryStatus.SENT, channel, result.provider_message_id, tuple(attempts)
                    )
                if result.outcome is Outcome.PERMANENT:
                    attempts.append(Attempt(pid, channel, DeliveryStatus.FAILED, result.reason))
                    log.info("player %d: %s failed permanently (%s); falling back", pid, channel.value, result.reason)
                    break
                last = attempt == MAX_TRIES_PER_CHANNEL
                delay = self._backoff(attempt, result.retry_after)
                attempts.append(
                    Attempt(
                        pid,
                        channel,
                        DeliveryStatus.FAILED,
                        f"{result.reason}; " + ("giving up" if last else f"retrying in {delay:.1f}s"),
                    )
                )
                if last:
                    break
                if not await self._wait(delay, keep_alive):
                    break
        final = attempts[-1] if attempts else Attempt(pid, chain[0], DeliveryStatus.FAILED, "no channel")
        reason = "every channel failed: " + "; ".join(a.reason for a in attempts[-3:])
        attempts.append(Attempt(pid, final.channel, DeliveryStatus.FAILED, reason[:500], None, True))
        return DeliveryOutcome(pid, DeliveryStatus.FAILED, final.channel, None, tuple(attempts))

    async def _mark_on_wire(self, key: str, player_id: int, channel: Channel) -> None:
        await self.ledger_store.mark_on_wire(key, player_id, channel, self.clock.now())

    async def _wait(self, delay: float, keep_alive: Callable[[], Awaitable[bool]]) -> bool:
        """Sleep before a retry, keeping the job's lease alive through a long retry-after."""
        remaining = delay
        while remaining > 0:
            step = min(remaining, KEEP_ALIVE_SECONDS)
            await self.clock.sleep(step)
            remaining -= step
            if not await keep_alive():
                return False
        return True

    def _address(self, channel: Channel, recipient: SnapshotRecipient, ctx: DeliveryContext | None) -> str | None:
        if channel is Channel.DISCORD:
            return str(recipient.player.discord_user_id)
        if ctx is None or self.cipher is None:
            return None
        token = ctx.encrypted_addresses.get(channel)
        if token is None:
            return None
        try:
            return self.cipher.decrypt(token)
        except ValueError:
            log.error(
                "player %d: %s address cannot be decrypted with the configured keys", recipient.player.id, channel.value
            )
            return None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # The platform said how long; waiting exactly that (not less) is what it asks.
            return max(0.0, retry_after)
        base = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        return float(base * (0.75 + self.rng.random() / 2))


def _single(player_id: int, channel: Channel, status: DeliveryStatus, reason: str) -> DeliveryOutcome:
    return DeliveryOutcome(player_id, status, channel, None, (Attempt(player_id, channel, status, reason, None, True),))
