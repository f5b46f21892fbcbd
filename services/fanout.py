"""Fan one message out to many recipients: ledger claim → send (with retries and fallback) → record.

The ledger row is claimed before the send and its outcome recorded after, in batches: a crash
between the two leaves a `claimed` row, which the next run of the job resolves — by resending
with the same nonce where the platform deduplicates (Discord), else by recording `unknown`.

One mechanism per concern: recipients run in one stream per channel chosen at the snapshot (a
paced Telegram stream never holds Discord and Signal back); each stream keeps at most `window`
recipients in flight; each channel's semaphore bounds the sends in flight across streams and jobs.
Dry runs send in a lane of their own, with semaphores of their own and a small limit: a rehearsal
never takes a send slot from a real campaign.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.clock import Clock
from services.contacts import ContactCipher
from services.delivery.base import Outcome, OutgoingMessage, Sender, SendResult
from services.fanout_plan import DM_CLOSED, QUIET_HOURS, TOO_LATE, FanoutJob, Send, plan_chunk
from services.keys import message_nonce
from services.metrics import Metrics
from services.models import (
    Attempt,
    Channel,
    DeliveryContext,
    DeliveryOutcome,
    DeliveryStatus,
    SnapshotRecipient,
)
from storage.ledger import LedgerStore
from storage.players import PlayerStore

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
FLUSH_EVERY = 128
FLUSH_INTERVAL_SECONDS = 0.05
KEEP_ALIVE_SECONDS = 1.0  # how often a running fan-out checks in: well under the 5 s minimum lease
DRY_RUN_CONCURRENCY = 2  # sends in flight per channel for all dry runs together (each has one recipient)
MAX_TRIES_PER_CHANNEL = 4
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0

# Renders the text of a message for a channel (texts differ only in Discord's timestamp markup).
TextFor = Callable[[Channel], str]
# Says whether a job may go on (and keeps its lease); False: stop claiming, finish what is in flight.
KeepAlive = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Tried:
    """What sending one message on one channel came to."""

    result: SendResult | None  # SENT, or None: this channel gave up
    failures: list[str] = field(default_factory=list)  # why each failed try failed, for the send log
    out_of_time: bool = False  # gave up because a retry would come after the send-by time


class Fanout:
    def __init__(
        self,
        *,
        player_store: PlayerStore,
        ledger_store: LedgerStore,
        senders: Mapping[Channel, Sender],
        cipher: ContactCipher | None,
        clock: Clock,
        concurrency: int,
        metrics: Metrics,
        rng: random.Random | None = None,
        window: int | None = None,
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self.player_store = player_store
        self.metrics = metrics
        self.ledger_store = ledger_store
        self.senders = senders
        # The channels a recipient may be reached on, and whether each deduplicates a resend.
        self._dedup = {channel: sender.supports_dedup for channel, sender in senders.items()}
        self.cipher = cipher
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        # Per lane (dry run or not) and channel.
        self._limits = {
            (dry_run, ch): asyncio.Semaphore(DRY_RUN_CONCURRENCY if dry_run else concurrency)
            for dry_run in (False, True)
            for ch in Channel
        }
        # Recipients in flight at once per stream; by default a channel's limit, so that a claimed
        # recipient never queues behind a semaphore.
        self.window = window or concurrency
        self.flush_interval = flush_interval

    async def run(
        self, job: FanoutJob, recipients: Sequence[SnapshotRecipient], text_for: TextFor, *, keep_alive: KeepAlive
    ) -> bool:
        """Deliver to every recipient once; False if the job was cancelled or taken over midway."""
        began = self.clock.monotonic()
        streams: dict[Channel, list[SnapshotRecipient]] = {}
        for r in recipients:
            streams.setdefault(r.selected_channel, []).append(r)
        async with asyncio.TaskGroup() as group:
            runs = [group.create_task(self._run_stream(job, s, text_for, keep_alive)) for s in streams.values()]
        self.metrics.fanout_took(job.job_type, self.clock.monotonic() - began)
        return all(run.result() for run in runs)

    async def send(
        self,
        sender: Sender,
        message: OutgoingMessage,
        keep_alive: KeepAlive,
        send_by: datetime | None = None,
        *,
        dry_run: bool = False,
    ) -> Tried:
        """Send one message on one channel, retrying what is transient, but never retrying at or after
        `send_by`. `dry_run`: in the dry-run lane."""
        failures: list[str] = []
        who = f"player {message.player_id}" if message.player_id is not None else "a post"
        for attempt in range(1, MAX_TRIES_PER_CHANNEL + 1):
            async with self._limits[dry_run, sender.channel]:
                try:
                    result = await sender.send(message)
                except Exception as exc:  # a sender bug must not lose the recipient
                    log.exception("sender %s raised for %s", sender.channel.value, who)
                    self.metrics.send(sender.channel, "error")
                    failures.append(f"sender error: {type(exc).__name__}")
                    return Tried(None, failures)
            self.metrics.send(sender.channel, result.outcome.value)
            if result.outcome is Outcome.SENT:
                return Tried(result, failures)
            if result.outcome is Outcome.PERMANENT:
                log.info("%s: %s failed permanently (%s)", who, sender.channel.value, result.reason)
                failures.append(result.reason)
                return Tried(None, failures)
            last = attempt == MAX_TRIES_PER_CHANNEL
            delay = self._backoff(attempt, result.retry_after)
            late = send_by is not None and self.clock.now() + timedelta(seconds=delay) >= send_by
            if last or late:
                failures.append(f"{result.reason}; " + ("giving up" if last else "no retry past the send-by time"))
                return Tried(None, failures, out_of_time=late and not last)
            failures.append(f"{result.reason}; retrying in {delay:.1f}s")
            if result.retry_after is not None:
                self.metrics.rate_limited(sender.channel, delay)
            if not await self._wait(delay, keep_alive):
                break
        return Tried(None, failures)

    # -- streams and chunks ----------------------------------------------------------------------

    async def _run_stream(
        self, job: FanoutJob, recipients: Sequence[SnapshotRecipient], text_for: TextFor, keep_alive: KeepAlive
    ) -> bool:
        for start in range(0, len(recipients), CHUNK_SIZE):
            if not await keep_alive():
                return False
            await self._run_chunk(job, recipients[start : start + CHUNK_SIZE], text_for, keep_alive)
        return True

    async def _run_chunk(
        self, job: FanoutJob, chunk: Sequence[SnapshotRecipient], text_for: TextFor, keep_alive: KeepAlive
    ) -> None:
        ids = [r.player.id for r in chunk]
        contexts = await self.player_store.delivery_contexts(ids)
        entries = await self.ledger_store.entries(job.key, ids)
        plan = plan_chunk(job, chunk, contexts, entries, self._dedup, self.clock.now())
        for pid, name in plan.bad_zones:
            log.warning(
                "player %d: stored timezone %r does not load; reading their quiet hours in %s",
                pid, name[:64], job.zone.key,
            )
        for outcome in plan.decided:
            if outcome.attempts[0].reason == QUIET_HOURS:
                log.info("player %d skipped for %s: quiet hours", outcome.player_id, job.key)
        closed = [o for o in (*plan.decided, *plan.resolved) if o.attempts[0].reason == DM_CLOSED]
        if closed:  # one line for the lot: a large community has hundreds of them every evening
            log.info("%d players skipped for %s: their Discord DMs are closed (%s)", len(closed), job.key, DM_CLOSED)
        for outcome in plan.resolved:
            if outcome.status is not DeliveryStatus.UNKNOWN:
                continue
            log.warning(
                "player %d: %s on %s was in flight when the previous run died; recorded unknown, not resent "
                "(%s has no upstream dedup: a missed ping beats a double ping)",
                outcome.player_id, job.key, outcome.channel.value, outcome.channel.value,
            )
        for send in plan.resend:
            how = "with the same nonce" if self._dedup.get(send.chain[0]) else "(it never left)"
            log.info(
                "player %d: resending %s on %s %s after an interrupted run",
                send.recipient.player.id, job.key, send.chain[0].value, how,
            )
        if plan.decided or plan.resolved or plan.notes:
            await self.ledger_store.decide(
                key=job.key,
                campaign_id=job.campaign_id,
                job_id=job.job_id,
                job_type=job.job_type,
                decided=plan.decided,
                resolved=plan.resolved,
                notes=plan.notes,
                now=self.clock.now(),
            )
        await self._send_window(job, plan.resend, plan.fresh, text_for, keep_alive)

    async def _send_window(
        self,
        job: FanoutJob,
        resend: Sequence[Send],
        fresh: Sequence[Send],
        text_for: TextFor,
        keep_alive: KeepAlive,
    ) -> None:
        """Send with at most `window` recipients in flight, claiming each batch just before it starts.

        Claiming only what is about to be handed to a sender keeps the crash-ambiguous set small
        and honest: a claimed row without an outcome really was in flight, so marking it `unknown`
        (Telegram, Signal) never drops a recipient whose send had not begun.
        """
        in_flight: set[asyncio.Task[DeliveryOutcome]] = set()
        done: list[DeliveryOutcome] = []
        lost: list[Attempt] = []
        flushed_at = self.clock.monotonic()

        def start(send: Send) -> None:
            in_flight.add(asyncio.create_task(self._deliver(job, send, text_for, keep_alive)))

        for send in resend:  # already claimed by this job before the interruption
            start(send)
        queue = list(reversed(fresh))
        checked_at = self.clock.now()
        stopping = False
        try:
            while (queue and not stopping) or in_flight:
                if (self.clock.now() - checked_at).total_seconds() >= KEEP_ALIVE_SECONDS:
                    # A long fan-out keeps its lease here; if the job was cancelled or taken
                    # over, claim nothing more and let what is in flight finish and be recorded.
                    checked_at = self.clock.now()
                    stopping = not await keep_alive()
                batch = [] if stopping else self._next_batch(queue, len(in_flight))
                if batch:
                    claimed = await self.ledger_store.claim(
                        key=job.key,
                        campaign_id=job.campaign_id,
                        job_id=job.job_id,
                        first_channels={s.recipient.player.id: s.chain[0] for s in batch},
                        now=self.clock.now(),
                    )
                    for send in batch:
                        pid = send.recipient.player.id
                        if pid in claimed:
                            start(send)
                        else:  # another campaign's job took the key in between; it owns the send
                            reason = f"already handled for {job.key} by another campaign"
                            lost.append(Attempt(pid, send.chain[0], DeliveryStatus.SKIPPED, reason, None, True))
                    continue
                # Record outcomes in batches, but never sit on them for long, even while a slow
                # send is still out: an unrecorded outcome turns into `unknown` (Telegram, Signal)
                # if the process dies now.
                timeout = KEEP_ALIVE_SECONDS
                if done or lost:
                    timeout = min(timeout, max(0.0, self.flush_interval - (self.clock.monotonic() - flushed_at)))
                finished, _ = await asyncio.wait(in_flight, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    in_flight.discard(task)
                    done.append(task.result())
                if len(done) >= FLUSH_EVERY or self.clock.monotonic() - flushed_at >= self.flush_interval:
                    await self._record(job, done, lost)
                    done, lost = [], []
                    flushed_at = self.clock.monotonic()
        finally:
            for task in in_flight:
                task.cancel()
            # Wait until they have ended: a send can outlive its cancellation (asyncio.wait_for in
            # Python 3.11 loses one that races with its result), and nothing may write after the
            # caller has gone on to close the database.
            await asyncio.gather(*in_flight, return_exceptions=True)
        if done or lost:
            await self._record(job, done, lost)

    def _next_batch(self, queue: list[Send], in_flight: int) -> list[Send]:
        """Recipients to claim now: a refill once the window is at least half free (or empty)."""
        free = self.window - in_flight
        if queue and (free >= max(1, self.window // 2) or in_flight == 0):
            return [queue.pop() for _ in range(min(free, len(queue)))]
        return []

    async def _record(self, job: FanoutJob, outcomes: list[DeliveryOutcome], lost: list[Attempt]) -> None:
        await self.ledger_store.record(
            key=job.key,
            campaign_id=job.campaign_id,
            job_id=job.job_id,
            job_type=job.job_type,
            outcomes=outcomes,
            extra_attempts=lost,
            now=self.clock.now(),
        )

    # -- one recipient ----------------------------------------------------------------------------

    async def _deliver(self, job: FanoutJob, send: Send, text_for: TextFor, keep_alive: KeepAlive) -> DeliveryOutcome:
        """Go down the recipient's chain until one channel sends; every try is an Attempt."""
        pid = send.recipient.player.id
        nonce = message_nonce(job.campaign_id, job.key, pid)
        attempts: list[Attempt] = []
        out_of_time = False
        if send.dm_closed:  # the send log says why Discord was not tried
            attempts.append(Attempt(pid, Channel.DISCORD, DeliveryStatus.SKIPPED, DM_CLOSED))
        for position, channel in enumerate(send.chain):
            if self.clock.now() >= job.send_by:
                # Checked before every channel: a reminder never goes out once the session has started.
                out_of_time = True
                break
            sender = self.senders.get(channel)
            address = self._address(channel, send.recipient, send.context)
            if sender is None or address is None:
                attempts.append(Attempt(pid, channel, DeliveryStatus.FAILED, "channel unavailable"))
                continue
            on_wire = None
            if not sender.supports_dedup:
                on_wire = functools.partial(self._mark_on_wire, job.key, pid, channel)
            elif position > 0:
                await self.ledger_store.note_channel(job.key, pid, channel)
            message = OutgoingMessage(
                channel, address, text_for(channel), nonce, pid, on_wire,
                rsvp_campaign_id=job.campaign_id if job.offers_rsvp else None,
            )
            tried = await self.send(sender, message, keep_alive, job.send_by, dry_run=job.dry_run)
            attempts += [Attempt(pid, channel, DeliveryStatus.FAILED, reason) for reason in tried.failures]
            result = tried.result
            if result is not None:
                attempts.append(
                    Attempt(pid, channel, DeliveryStatus.SENT, result.reason, result.provider_message_id, final=True)
                )
                return DeliveryOutcome(pid, DeliveryStatus.SENT, channel, result.provider_message_id, tuple(attempts))
            out_of_time = tried.out_of_time
        if out_of_time:
            # Ran out of time rather than out of channels: a skip, which never fails a job or a campaign.
            channel = attempts[-1].channel if attempts else send.chain[0]
            attempts.append(Attempt(pid, channel, DeliveryStatus.SKIPPED, TOO_LATE, None, True))
            return DeliveryOutcome(pid, DeliveryStatus.SKIPPED, channel, None, tuple(attempts))
        final = attempts[-1] if attempts else Attempt(pid, send.chain[0], DeliveryStatus.FAILED, "no channel")
        reason = "every channel failed: " + "; ".join(a.reason for a in attempts[-3:])
        attempts.append(Attempt(pid, final.channel, DeliveryStatus.FAILED, reason[:500], None, True))
        return DeliveryOutcome(pid, DeliveryStatus.FAILED, final.channel, None, tuple(attempts))

    async def _mark_on_wire(self, key: str, player_id: int, channel: Channel) -> None:
        await self.ledger_store.mark_on_wire(key, player_id, channel, self.clock.now())

    async def _wait(self, delay: float, keep_alive: KeepAlive) -> bool:
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
