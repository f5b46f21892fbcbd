"""Claim due jobs → run them → record the outcome (docs/delivery.md).

`tick()` is the body of the scheduler loop: claim what is due, start it, then sleep until the
next due time or lease expiry — or until `wake()` says a job was created. Nothing polls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.clock import Clock
from services.delivery.base import OutgoingMessage, Sender, VoiceProbe
from services.fanout import Fanout
from services.fanout_plan import FanoutJob
from services.keys import job_failed_key, ledger_key, message_nonce, summary_key
from services.messages import (
    INTERRUPTED_ATTEMPTS,
    followup_text,
    job_failed_text,
    reminder_text,
    start_text,
    summary_text,
)
from services.metrics import Metrics
from services.models import (
    Attempt,
    Campaign,
    CampaignStatus,
    Channel,
    DeliveryStatus,
    Job,
    JobStatus,
    JobType,
    LedgerState,
)
from storage.campaigns import CampaignStore
from storage.jobs import JobStore
from storage.ledger import LedgerStore

log = logging.getLogger(__name__)

JOB_BACKOFF_BASE_SECONDS = 5.0
JOB_BACKOFF_CAP_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Pulse:
    """The scheduler loop's last sign of life: reading the schedule since `at`, or asleep until `wake_at`."""

    at: datetime
    busy: bool
    wake_at: datetime | None  # asleep until then; None: until a job is created (no deadline to miss)

    def problem(self, now: datetime, bound: timedelta) -> str | None:
        """Why the loop is not keeping time (None when it is): stuck reading, or asleep past its wake-up."""
        if self.busy and now - self.at > bound:
            return f"stuck reading the schedule for {(now - self.at).total_seconds():.0f} s"
        if not self.busy and self.wake_at is not None and now - self.wake_at > bound:
            return f"overslept its wake-up by {(now - self.wake_at).total_seconds():.0f} s"
        return None


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    zone: ZoneInfo
    lease: timedelta
    max_lateness: timedelta
    followup_channel_id: int


class Dispatcher:
    def __init__(
        self,
        *,
        campaign_store: CampaignStore,
        job_store: JobStore,
        ledger_store: LedgerStore,
        fanout: Fanout,
        senders: Mapping[Channel, Sender],
        poster: Sender | None,
        voice: VoiceProbe | None,
        config: DispatchConfig,
        clock: Clock,
        metrics: Metrics,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.campaign_store = campaign_store
        self.job_store = job_store
        self.ledger_store = ledger_store
        self.fanout = fanout
        self.senders = senders
        self.poster = poster
        self.voice = voice
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or f"rp-{uuid.uuid4().hex[:12]}"
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        # Held while the loop reads the schedule or claims jobs: shutdown waits for it, so once
        # shutdown has begun nothing is claimed and no query of the loop meets a closed database.
        self._reading = asyncio.Lock()
        self._closing = False
        self._pulse: Pulse | None = None

    # -- the loop ---------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Shutdown has begun: the loop claims nothing more (its driver stops on seeing this)."""
        return self._closing

    @property
    def pulse(self) -> Pulse | None:
        """The loop's last sign of life (None until `tick()` first ran), for the readiness check."""
        return self._pulse

    def wake(self) -> None:
        """A job was created or finished: re-read the schedule now."""
        self._wake.set()

    async def tick(self) -> None:
        """Start every due job, then wait for the next due time (or a wake-up); at once when closing."""
        async with self._reading:
            if self._closing:
                return
            self._pulse = Pulse(self.clock.now(), busy=True, wake_at=None)
            self._wake.clear()
            await self._start_due()
            next_at = await self.job_store.next_wakeup(exclude=self._running.keys())
            self._pulse = Pulse(self.clock.now(), busy=False, wake_at=next_at)
        await self.clock.sleep_until(next_at, self._wake)

    async def start_due(self) -> list[asyncio.Task[None]]:
        """Claim and start every due job (nothing once shutdown has begun)."""
        async with self._reading:
            return await self._start_due()

    async def _start_due(self) -> list[asyncio.Task[None]]:
        if self._closing:
            return []
        now = self.clock.now()
        claimed = await self.job_store.claim_due(now, self.owner, self.config.lease, exclude=self._running.keys())
        started = []
        for job in claimed:
            self.metrics.job_started(job.job_type, (now - job.due_at).total_seconds(), first_run=job.attempts == 1)
            task = asyncio.create_task(self._run_guarded(job), name=f"rallypoint-job-{job.id}")
            self._running[job.id] = task
            task.add_done_callback(functools.partial(self._job_done, job.id))
            started.append(task)
        return started

    def _job_done(self, job_id: int, task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self.metrics.job_stopped()
        if not task.cancelled() and task.exception() is not None:
            log.error("job %d task died", job_id, exc_info=task.exception())
        self.wake()

    async def run_until(self, deadline: datetime) -> None:
        """Run every job due up to `deadline`, moving the clock forward (tests and the demo)."""
        while not self._closing:
            tasks = await self.start_due()
            if tasks:
                await asyncio.gather(*tasks)
                continue
            async with self._reading:
                next_at = await self.job_store.next_wakeup(exclude=self._running.keys())
            if next_at is None or next_at > deadline:
                return
            self._wake.clear()
            await self.clock.sleep_until(next_at, self._wake)

    async def shutdown(self) -> None:
        """Stop the producer first, then the running jobs (their leases expire; the next start resumes them).

        From the first line on nothing new is claimed: a tick asleep wakes and returns, one reading
        the schedule finishes first (the jobs it claimed start and are stopped with the others).
        """
        self._closing = True
        self._wake.set()
        async with self._reading:
            pass
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one job ----------------------------------------------------------------------------

    async def _run_guarded(self, job: Job) -> None:
        """Run a job; a failure is retried with backoff until max_attempts, then `failed`."""
        try:
            status = await self._run(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %d (%s) failed on attempt %d", job.id, job.job_type, job.attempts)
            await self._fail_or_retry(job, f"{type(exc).__name__}: {exc}"[:500])
            return
        if status is not None:
            await self._finish(job, status)

    async def _finish(self, job: Job, status: JobStatus, error: str | None = None) -> None:
        await self.job_store.finish(job.id, self.owner, status, self.clock.now(), error)
        self.metrics.job_finished(job.job_type, status)

    async def _fail_or_retry(self, job: Job, error: str) -> None:
        now = self.clock.now()
        if job.attempts >= job.max_attempts:
            # Told before the job is marked failed: a crash in between repeats the DM's claim, not the DM.
            await self._tell_initiator(job, error)
            await self._finish(job, JobStatus.FAILED, error)
            if job.job_type is JobType.START:
                await self.campaign_store.set_status(job.campaign_id, CampaignStatus.FAILED)
            log.error("job %d gave up after %d attempts: %s", job.id, job.attempts, error)
            return
        delay = min(JOB_BACKOFF_CAP_SECONDS, JOB_BACKOFF_BASE_SECONDS * 2 ** (job.attempts - 1))
        delay *= 0.75 + self.rng.random() / 2
        await self.job_store.retry_later(job.id, self.owner, now + timedelta(seconds=delay), error)

    async def _run(self, job: Job) -> JobStatus | None:
        campaign = await self.campaign_store.get(job.campaign_id)
        if campaign is None or campaign.status is CampaignStatus.CANCELLED:
            return JobStatus.CANCELLED
        if job.attempts > job.max_attempts:
            # A job whose runs keep dying (the process is killed each time) ends here.
            await self._fail_or_retry(job, INTERRUPTED_ATTEMPTS)
            return None
        lateness = self.clock.now() - job.due_at
        # Also on a resumed run: a reminder left half-sent by a crash is not finished hours later.
        if lateness > self.config.max_lateness:
            return await self._skip_overdue(job, campaign, lateness)
        if campaign.status is CampaignStatus.SCHEDULED:
            await self.campaign_store.set_status(campaign.id, CampaignStatus.RUNNING)
        if job.job_type is JobType.VOICE_CHECK:
            return await self._voice_check(job, campaign)
        if not await self._message_job(job, campaign):
            return JobStatus.CANCELLED
        if job.job_type is JobType.START:
            counts = await self.ledger_store.final_counts(job.id)
            await self.campaign_store.set_status(campaign.id, _status_after_start(counts))
        return JobStatus.SENT

    async def _skip_overdue(self, job: Job, campaign: Campaign, lateness: timedelta) -> JobStatus:
        """Overdue policy: a message more than max_lateness late is skipped and logged, not sent."""
        minutes = int(lateness.total_seconds() // 60)
        reason = f"overdue: due {minutes} min ago (limit {self.config.max_lateness})"
        recipients = await self.campaign_store.recipients(campaign.id)
        await self.ledger_store.record(
            key=None,
            campaign_id=campaign.id,
            job_id=job.id,
            job_type=job.job_type,
            outcomes=(),
            extra_attempts=[
                Attempt(r.player.id, r.selected_channel, DeliveryStatus.SKIPPED, reason, None, True)
                for r in recipients
            ],
            now=self.clock.now(),
        )
        log.warning("job %d (%s) of campaign %d skipped: %s", job.id, job.job_type, campaign.id, reason)
        if job.job_type is JobType.START:
            await self.campaign_store.set_status(campaign.id, CampaignStatus.FAILED)
        return JobStatus.SKIPPED

    async def _message_job(self, job: Job, campaign: Campaign, except_players: frozenset[int] = frozenset()) -> bool:
        """Fan the job's message out to the snapshot (but `except_players`); False if stopped midway."""
        day = campaign.campaign_date
        key = ledger_key(job.job_type, day, dry_run_campaign_id=campaign.id if campaign.dry_run else None)
        start_at = (await self._start_time(campaign)) or job.due_at
        zone = self.config.zone

        def text_for(channel: Channel) -> str:
            if job.job_type is JobType.REMINDER:
                return reminder_text(start_at, self.clock.now(), zone, channel, campaign.dry_run)
            if job.job_type is JobType.START:
                return start_text(start_at, zone, channel, campaign.dry_run)
            return followup_text(start_at, zone, channel, campaign.dry_run)

        recipients = [r for r in await self.campaign_store.recipients(campaign.id) if r.player.id not in except_players]
        fanout_job = FanoutJob(campaign.id, job.id, job.job_type, key, campaign.dry_run, zone)
        return await self.fanout.run(
            fanout_job, recipients, text_for, keep_alive=self._keep_alive(job)
        )

    async def _start_time(self, campaign: Campaign) -> datetime | None:
        for j in await self.campaign_store.jobs(campaign.id):
            if j.job_type is JobType.START:
                return j.due_at
        return None

    def _keep_alive(self, job: Job) -> _LeaseKeeper:
        return _LeaseKeeper(self, job)

    async def _voice_check(self, job: Job, campaign: Campaign) -> JobStatus | None:
        in_voice = await self.voice.discord_ids_in_voice() if self.voice is not None else frozenset()
        recipients = await self.campaign_store.recipients(campaign.id)
        present = frozenset(r.player.id for r in recipients if r.player.discord_user_id in in_voice)
        if not await self._message_job(job, campaign, except_players=present):
            return JobStatus.CANCELLED
        missing = [r for r in recipients if r.player.id not in present]
        followups_sent = (await self.ledger_store.final_counts(job.id))[DeliveryStatus.SENT]
        start_at = (await self._start_time(campaign)) or job.due_at
        text = summary_text(
            start=start_at,
            zone=self.config.zone,
            in_voice=[r.player.display_name for r in recipients if r.player.id in present],
            missing=[r.player.display_name for r in missing],
            followups_sent=followups_sent,
            dry_run=campaign.dry_run,
        )
        await self._post_summary(job, campaign, text)
        await self.campaign_store.set_status(campaign.id, CampaignStatus.FOLLOWUP_SENT)
        return JobStatus.SENT

    async def _post_summary(self, job: Job, campaign: Campaign, text: str) -> None:
        """Post once per target: the follow-up channel, or the initiator's DM for a dry run."""
        if campaign.dry_run:
            target = f"dm:{campaign.initiator.discord_user_id}"
            sender, address = self.senders.get(Channel.DISCORD), str(campaign.initiator.discord_user_id)
        elif self.config.followup_channel_id:
            target = f"channel:{self.config.followup_channel_id}"
            sender, address = self.poster, str(self.config.followup_channel_id)
        else:
            log.warning("campaign %d: no discord.followup_channel_id; summary not posted", campaign.id)
            return
        key = summary_key(campaign.campaign_date, campaign.id, target)
        if not await self._post_once(key, job, campaign, sender, address, text, what="summary"):
            log.error("campaign %d: summary could not be posted", campaign.id)

    async def _tell_initiator(self, job: Job, error: str) -> None:
        """DM the campaign's initiator that this job failed, once per job (its post-ledger key)."""
        campaign = await self.campaign_store.get(job.campaign_id)
        if campaign is None:
            return
        text = job_failed_text(
            job_type=job.job_type,
            start=(await self._start_time(campaign)) or job.due_at,
            zone=self.config.zone,
            attempts=job.attempts,
            error=error,
            dry_run=campaign.dry_run,
        )
        address = str(campaign.initiator.discord_user_id)
        sender = self.senders.get(Channel.DISCORD)
        if not await self._post_once(job_failed_key(job.id), job, campaign, sender, address, text, what="job failed"):
            log.error("job %d: its initiator could not be told that it failed", job.id)

    async def _post_once(
        self, key: str, job: Job, campaign: Campaign, sender: Sender | None, address: str, text: str, *, what: str
    ) -> bool:
        """Send a Discord post at most once for `key` (a restart never repeats it); False if it failed."""
        state = await self.ledger_store.claim_post(key, campaign.id, self.clock.now())
        if state is not None and state is not LedgerState.CLAIMED:
            return state is LedgerState.SENT  # posted (or given up) before a restart
        # Every post goes to Discord, which deduplicates by nonce: an interrupted post is resent.
        message = OutgoingMessage(Channel.DISCORD, address, text, message_nonce(campaign.id, key, 0))
        result, failures = (None, ["no Discord sender"]) if sender is None else (
            await self.fanout.send(sender, message, self._keep_alive(job), dry_run=campaign.dry_run)
        )
        attempts = [Attempt(None, Channel.DISCORD, DeliveryStatus.FAILED, f"{what}: {r}") for r in failures]
        if result is not None:
            attempts.append(Attempt(None, Channel.DISCORD, DeliveryStatus.SENT, what, result.provider_message_id))
        await self.ledger_store.record_post(
            key,
            state=LedgerState.SENT if result is not None else LedgerState.FAILED,
            provider_message_id=result.provider_message_id if result is not None else None,
            campaign_id=campaign.id,
            job_id=job.id,
            job_type=job.job_type,
            attempts=attempts,
            now=self.clock.now(),
        )
        return result is not None


class _LeaseKeeper:
    """Extends the job's lease while a fan-out runs; tells the fan-out to stop if it should."""

    def __init__(self, dispatcher: Dispatcher, job: Job) -> None:
        self.d = dispatcher
        self.job = job
        self.extended_at = dispatcher.clock.now()
        self._lock = asyncio.Lock()

    async def __call__(self) -> bool:
        async with self._lock:
            now = self.d.clock.now()
            if now - self.extended_at >= self.d.config.lease / 3:
                self.extended_at = now
                until = now + self.d.config.lease
                if not await self.d.job_store.extend_lease(self.job.id, self.d.owner, until):
                    log.warning("job %d: lease lost; stopping this run", self.job.id)
                    return False
            # Checked per chunk and per retry, so a cancel stops a long fan-out promptly.
            campaign = await self.d.campaign_store.get(self.job.campaign_id)
            return campaign is not None and campaign.status is not CampaignStatus.CANCELLED


def _status_after_start(counts: dict[DeliveryStatus, int]) -> CampaignStatus:
    """sent when no start send failed; partial when some sent and some failed; failed when none sent."""
    if counts[DeliveryStatus.FAILED] == 0:
        return CampaignStatus.SENT
    if counts[DeliveryStatus.SENT] > 0:
        return CampaignStatus.PARTIAL
    return CampaignStatus.FAILED
