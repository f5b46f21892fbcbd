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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.clock import Clock
from services.delivery.base import OutgoingMessage, Sender, VoiceProbe
from services.fanout import Fanout, Tried
from services.fanout_plan import NO_START_PING, START_FAILED, TOO_LATE, FanoutJob
from services.keys import ledger_key, message_nonce, summary_key
from services.messages import followup_text, local_time_label, reminder_text, start_text, summary_text
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
    SnapshotRecipient,
)
from services.schedule import send_by
from storage.campaigns import CampaignStore
from storage.jobs import JobStore
from storage.ledger import LedgerStore

log = logging.getLogger(__name__)

JOB_BACKOFF_BASE_SECONDS = 5.0
JOB_BACKOFF_CAP_SECONDS = 300.0


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
        self.owner = owner or f"rp-{uuid.uuid4().hex[:12]}"
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        # Held while the loop reads the schedule or claims jobs: shutdown waits for it, so once
        # shutdown has begun nothing is claimed and no query of the loop meets a closed database.
        self._reading = asyncio.Lock()
        self._closing = False

    # -- the loop ---------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Shutdown has begun: the loop claims nothing more (its driver stops on seeing this)."""
        return self._closing

    def wake(self) -> None:
        """A job was created or finished: re-read the schedule now."""
        self._wake.set()

    async def tick(self) -> None:
        """Start every due job, then wait for the next due time (or a wake-up); at once when closing."""
        async with self._reading:
            if self._closing:
                return
            self._wake.clear()
            await self._start_due()
            next_at = await self.job_store.next_wakeup(exclude=self._running.keys())
        await self.clock.sleep_until(next_at, self._wake)

    async def start_due(self) -> list[asyncio.Task[None]]:
        """Claim and start every due job (nothing once shutdown has begun)."""
        async with self._reading:
            return await self._start_due()

    async def _start_due(self) -> list[asyncio.Task[None]]:
        if self._closing:
            return []
        claimed = await self.job_store.claim_due(
            self.clock.now(), self.owner, self.config.lease, exclude=self._running.keys()
        )
        started = []
        for job in claimed:
            task = asyncio.create_task(self._run_guarded(job), name=f"rallypoint-job-{job.id}")
            self._running[job.id] = task
            task.add_done_callback(functools.partial(self._job_done, job.id))
            started.append(task)
        return started

    def _job_done(self, job_id: int, task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
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
            await self.job_store.finish(job.id, self.owner, status, self.clock.now())

    async def _fail_or_retry(self, job: Job, error: str) -> None:
        now = self.clock.now()
        if job.attempts >= job.max_attempts:
            await self.job_store.finish(job.id, self.owner, JobStatus.FAILED, now, error)
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
            await self._fail_or_retry(job, "too many interrupted attempts")
            return None
        jobs = {j.job_type: j for j in await self.campaign_store.jobs(campaign.id)}
        start_at = jobs[JobType.START].due_at
        deadline = send_by(job.job_type, start_at, jobs[JobType.VOICE_CHECK].due_at, self.config.max_lateness)
        # Also on a resumed run: a reminder left half-sent by a crash is not finished after the start.
        too_late = self.clock.now() >= deadline
        if too_late:
            log.warning(
                "job %d (%s) of campaign %d began after its send-by time %s: every message is skipped (%s)",
                job.id, job.job_type, campaign.id, local_time_label(deadline, self.config.zone), TOO_LATE,
            )
        if campaign.status is CampaignStatus.SCHEDULED:
            await self.campaign_store.set_status(campaign.id, CampaignStatus.RUNNING)
        if job.job_type is JobType.VOICE_CHECK:
            ran = await self._voice_check(job, campaign, jobs[JobType.START], deadline)
        else:
            ran = await self._message_job(job, campaign, start_at, deadline)
            if ran and job.job_type is JobType.START:
                counts = await self.ledger_store.final_counts(job.id)
                await self.campaign_store.set_status(campaign.id, _status_after_start(counts))
        if not ran:
            return JobStatus.CANCELLED
        return JobStatus.SKIPPED if too_late else JobStatus.SENT

    async def _message_job(
        self,
        job: Job,
        campaign: Campaign,
        start_at: datetime,
        deadline: datetime,
        recipients: Sequence[SnapshotRecipient] | None = None,
        withheld: Mapping[int, str] | None = None,
    ) -> bool:
        """Fan the job's message out to `recipients` (default: the snapshot); False if stopped midway."""
        key = ledger_key(job.job_type, campaign.campaign_date, dry_run_campaign_id=_dry(campaign))
        zone = self.config.zone

        def text_for(channel: Channel) -> str:
            if job.job_type is JobType.REMINDER:
                return reminder_text(start_at, self.clock.now(), zone, channel, campaign.dry_run)
            if job.job_type is JobType.START:
                return start_text(start_at, zone, channel, campaign.dry_run)
            return followup_text(start_at, zone, channel, campaign.dry_run)

        if recipients is None:
            recipients = await self.campaign_store.recipients(campaign.id)
        fanout_job = FanoutJob(
            campaign.id, job.id, job.job_type, key, campaign.dry_run, zone, deadline, withheld or {}
        )
        return await self.fanout.run(fanout_job, recipients, text_for, keep_alive=self._keep_alive(job))

    def _keep_alive(self, job: Job) -> _LeaseKeeper:
        return _LeaseKeeper(self, job)

    async def _voice_check(self, job: Job, campaign: Campaign, start_job: Job, deadline: datetime) -> bool:
        """Follow up whoever got the start ping and is not in voice, then post the summary."""
        recipients = await self.campaign_store.recipients(campaign.id)
        start_at = start_job.due_at
        if self.clock.now() >= deadline:
            # Who is in voice now says nothing of a start long past: no follow-ups (each recorded
            # too_late) and no summary; the campaign keeps the status its start gave it.
            return await self._message_job(job, campaign, start_at, deadline, recipients)
        in_voice = await self.voice.discord_ids_in_voice() if self.voice is not None else frozenset()
        present = frozenset(r.player.id for r in recipients if r.player.discord_user_id in in_voice)
        missing = [r for r in recipients if r.player.id not in present]
        start_failed = start_job.status is JobStatus.FAILED or campaign.status is CampaignStatus.FAILED
        withheld = await self._without_start_ping(campaign, missing, start_failed)
        if not await self._message_job(job, campaign, start_at, deadline, missing, withheld):
            return False
        # Counted on the day's key, not this job's: another campaign may have sent some of them.
        key = ledger_key(job.job_type, campaign.campaign_date, dry_run_campaign_id=_dry(campaign))
        followed_up = await self.ledger_store.entries(key, [r.player.id for r in missing])
        followups_sent = sum(1 for e in followed_up.values() if e.state is LedgerState.SENT)
        text = summary_text(
            start=start_at,
            zone=self.config.zone,
            in_voice=[r.player.display_name for r in recipients if r.player.id in present],
            missing=[r.player.display_name for r in missing],
            followups_sent=followups_sent,
            dry_run=campaign.dry_run,
            start_failed=start_failed,
        )
        await self._post_summary(job, campaign, text)
        if not start_failed:  # a failed start stays `failed`: the evening did not happen as planned
            await self.campaign_store.set_status(campaign.id, CampaignStatus.FOLLOWUP_SENT)
        return True

    async def _without_start_ping(
        self, campaign: Campaign, missing: Sequence[SnapshotRecipient], start_failed: bool
    ) -> dict[int, str]:
        """The missing recipients who get no follow-up: all after a failed start, else those whose
        start ping was not `sent` (a follow-up says "we started", which they never heard)."""
        if start_failed:
            return {r.player.id: START_FAILED for r in missing}
        key = ledger_key(JobType.START, campaign.campaign_date, dry_run_campaign_id=_dry(campaign))
        entries = await self.ledger_store.entries(key, [r.player.id for r in missing])
        return {
            r.player.id: NO_START_PING
            for r in missing
            if (entry := entries.get(r.player.id)) is None or entry.state is not LedgerState.SENT
        }

    async def _post_summary(self, job: Job, campaign: Campaign, text: str) -> None:
        """Post once per target and day: the follow-up channel, or the initiator's DM for a dry run."""
        day = campaign.campaign_date
        if campaign.dry_run:
            key = summary_key(day, f"dm:{campaign.initiator.discord_user_id}", dry_run_campaign_id=campaign.id)
            sender, address = self.senders.get(Channel.DISCORD), str(campaign.initiator.discord_user_id)
        elif self.config.followup_channel_id:
            key = summary_key(day, str(self.config.followup_channel_id))
            sender, address = self.poster, str(self.config.followup_channel_id)
        else:
            log.warning("campaign %d: no discord.followup_channel_id; summary not posted", campaign.id)
            return
        existing = await self.ledger_store.claim_post(key, campaign.id, self.clock.now())
        if existing is not None and existing.campaign_id != campaign.id:
            # One public summary per channel and day (rule 7): a second campaign's would undercount.
            reason = f"summary: {key} already taken by campaign {existing.campaign_id} ({existing.state})"
            log.info("campaign %d: %s", campaign.id, reason)
            await self.ledger_store.record(
                key=None, campaign_id=campaign.id, job_id=job.id, job_type=job.job_type, outcomes=(),
                extra_attempts=[Attempt(None, Channel.DISCORD, DeliveryStatus.SKIPPED, reason)],
                now=self.clock.now(),
            )
            return
        if existing is not None and existing.state is not LedgerState.CLAIMED:
            return  # posted (or given up) before a restart
        # Both targets are Discord, which deduplicates by nonce: an interrupted post is resent.
        message = OutgoingMessage(Channel.DISCORD, address, text, message_nonce(campaign.id, key, 0))
        tried = Tried(None, ["no Discord sender"]) if sender is None else (
            await self.fanout.send(sender, message, self._keep_alive(job))
        )
        result = tried.result
        attempts = [Attempt(None, Channel.DISCORD, DeliveryStatus.FAILED, f"summary: {r}") for r in tried.failures]
        if result is not None:
            attempts.append(Attempt(None, Channel.DISCORD, DeliveryStatus.SENT, "summary", result.provider_message_id))
        await self.ledger_store.record_post(
            key,
            state=LedgerState.SENT if result is not None else LedgerState.FAILED,
            provider_message_id=result.provider_message_id if result is not None else None,
            campaign_id=campaign.id,
            job_id=job.id,
            attempts=attempts,
            now=self.clock.now(),
        )
        if result is None:
            log.error("campaign %d: summary could not be posted", campaign.id)


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


def _dry(campaign: Campaign) -> int | None:
    """The campaign id a dry run's keys carry (None for a real campaign: its keys are the day's)."""
    return campaign.id if campaign.dry_run else None


def _status_after_start(counts: dict[DeliveryStatus, int]) -> CampaignStatus:
    """sent when no start send failed; partial when some sent and some failed; failed when none sent."""
    if counts[DeliveryStatus.FAILED] == 0:
        return CampaignStatus.SENT
    if counts[DeliveryStatus.SENT] > 0:
        return CampaignStatus.PARTIAL
    return CampaignStatus.FAILED
