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
from services.fanout_plan import DECLINED, NO_START_PING, RUNNING_LATE, START_FAILED, TOO_LATE, FanoutJob
from services.keys import job_failed_key, ledger_key, message_nonce, summary_key
from services.messages import (
    INTERRUPTED_ATTEMPTS,
    followup_text,
    job_failed_text,
    local_time_label,
    need_text,
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
    RsvpAnswer,
    SnapshotRecipient,
)
from services.schedule import local_datetime, send_by
from services.standing import StandingService
from storage.campaigns import CampaignStore
from storage.jobs import JobStore
from storage.ledger import LedgerStore
from storage.needs import NeedStore
from storage.rsvps import RsvpStore

log = logging.getLogger(__name__)

JOB_BACKOFF_BASE_SECONDS = 5.0
JOB_BACKOFF_CAP_SECONDS = 300.0
# The messages that carry the answers (I'm in, running late, can't tonight).
OFFER_RSVP = frozenset({JobType.REMINDER, JobType.START, JobType.NEED})


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
        rsvp_store: RsvpStore,
        need_store: NeedStore,
        fanout: Fanout,
        senders: Mapping[Channel, Sender],
        poster: Sender | None,
        voice: VoiceProbe | None,
        config: DispatchConfig,
        clock: Clock,
        metrics: Metrics,
        owner: str | None = None,
        rng: random.Random | None = None,
        standing: StandingService | None = None,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        """`standing` runs the standing decisions; `wakeup` is the event that says a job was created
        (shared with the services that create them, which are built before the dispatcher)."""
        self.campaign_store = campaign_store
        self.job_store = job_store
        self.ledger_store = ledger_store
        self.rsvp_store = rsvp_store
        self.need_store = need_store
        self.fanout = fanout
        self.senders = senders
        self.poster = poster
        self.voice = voice
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or f"rp-{uuid.uuid4().hex[:12]}"
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.standing = standing
        self._wake = wakeup or asyncio.Event()
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
        # A run whose lease was taken (a dead-looking process resumed elsewhere, or a "need" asked
        # again) closes nothing: the job's next run will.
        if await self.job_store.finish(job.id, self.owner, status, self.clock.now(), error):
            self.metrics.job_finished(job.job_type, status)

    async def _fail_or_retry(self, job: Job, error: str) -> None:
        now = self.clock.now()
        if job.attempts >= job.max_attempts:
            # Told before the job is marked failed: a crash in between repeats the DM's claim, not the DM.
            await self._tell_initiator(job, error)
            if job.job_type is JobType.STANDING_DECISION:
                # Said in the list, and next week's decision is scheduled all the same.
                await self._standing().give_up(job, error)
            await self._finish(job, JobStatus.FAILED, error)
            if job.job_type is JobType.START and job.campaign_id is not None:
                await self.campaign_store.set_status(job.campaign_id, CampaignStatus.FAILED)
            log.error("job %d gave up after %d attempts: %s", job.id, job.attempts, error)
            return
        delay = min(JOB_BACKOFF_CAP_SECONDS, JOB_BACKOFF_BASE_SECONDS * 2 ** (job.attempts - 1))
        delay *= 0.75 + self.rng.random() / 2
        await self.job_store.retry_later(job.id, self.owner, now + timedelta(seconds=delay), error)

    async def _run(self, job: Job) -> JobStatus | None:
        campaign = await self.campaign_store.get(job.campaign_id) if job.campaign_id is not None else None
        if job.campaign_id is not None and (campaign is None or campaign.status is CampaignStatus.CANCELLED):
            return JobStatus.CANCELLED
        if job.attempts > job.max_attempts:
            # A job whose runs keep dying (the process is killed each time) ends here.
            await self._fail_or_retry(job, INTERRUPTED_ATTEMPTS)
            return None
        if campaign is None:
            return await self._decide(job)
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
        elif job.job_type is JobType.NEED:
            recipients = await self.need_store.recipients(campaign.id)
            ran = await self._message_job(job, campaign, start_at, deadline, recipients)
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
        """Fan the job's message out to `recipients` (default: the snapshot); False if stopped midway.

        Whoever answered "can't tonight" gets nothing more (read now, so a restart reads it too);
        `withheld` adds the voice check's reasons.
        """
        key = ledger_key(job.job_type, campaign.campaign_date, dry_run_campaign_id=_dry(campaign))
        zone = self.config.zone
        # The newest call's count: a second "need" of the evening asks for what is still missing.
        wanted = (await self.need_store.latest_count(campaign.id) or 1) if job.job_type is JobType.NEED else 0
        title = campaign.title

        def text_for(channel: Channel) -> str:
            if job.job_type is JobType.REMINDER:
                return reminder_text(start_at, self.clock.now(), zone, channel, campaign.dry_run, title)
            if job.job_type is JobType.START:
                return start_text(start_at, zone, channel, campaign.dry_run, title)
            if job.job_type is JobType.NEED:
                return need_text(wanted, start_at, zone, channel, campaign.dry_run, title)
            return followup_text(start_at, zone, channel, campaign.dry_run, title)

        if recipients is None:
            recipients = await self.campaign_store.recipients(campaign.id)
        answers = await self.rsvp_store.latest(campaign.id)
        declined = {pid: DECLINED for pid, answer in answers.items() if answer is RsvpAnswer.OUT}
        fanout_job = FanoutJob(
            campaign.id, job.id, job.job_type, key, campaign.dry_run, zone, deadline,
            {**(withheld or {}), **declined}, offers_rsvp=job.job_type in OFFER_RSVP,
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
        answers = await self.rsvp_store.latest(campaign.id)
        late = [r for r in missing if answers.get(r.player.id) is RsvpAnswer.LATE]
        declined = [r for r in missing if answers.get(r.player.id) is RsvpAnswer.OUT]
        waiting = [r for r in missing if answers.get(r.player.id) not in (RsvpAnswer.LATE, RsvpAnswer.OUT)]
        start_failed = start_job.status is JobStatus.FAILED or campaign.status is CampaignStatus.FAILED
        withheld = await self._without_start_ping(campaign, waiting, start_failed)
        withheld.update({r.player.id: RUNNING_LATE for r in late})
        if not await self._message_job(job, campaign, start_at, deadline, missing, withheld):
            return False
        # Counted on the day's key, not this job's: another campaign may have sent some of them.
        key = ledger_key(job.job_type, campaign.campaign_date, dry_run_campaign_id=_dry(campaign))
        followed_up = await self.ledger_store.entries(key, [r.player.id for r in waiting])
        followups_sent = sum(1 for e in followed_up.values() if e.state is LedgerState.SENT)
        text = summary_text(
            start=start_at,
            zone=self.config.zone,
            in_voice=[r.player.display_name for r in recipients if r.player.id in present],
            missing=[r.player.display_name for r in waiting],
            followups_sent=followups_sent,
            dry_run=campaign.dry_run,
            start_failed=start_failed,
            title=campaign.title,
            late=[r.player.display_name for r in late],
            declined=[r.player.display_name for r in declined],
        )
        await self._post_summary(job, campaign, text)
        if not start_failed:  # a failed start stays `failed`: the evening did not happen as planned
            await self.campaign_store.set_status(campaign.id, CampaignStatus.FOLLOWUP_SENT)
        return True

    async def _without_start_ping(
        self, campaign: Campaign, missing: Sequence[SnapshotRecipient], start_failed: bool
    ) -> dict[int, str]:
        """Of those waited on, who gets no follow-up: all after a failed start, else those whose
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
        if not await self._post_once(
            key, job, campaign.id, sender, address, text, what="summary", dry_run=campaign.dry_run
        ):
            log.error("campaign %d: summary could not be posted", campaign.id)

    # -- a standing session's decision ----------------------------------------------------------

    def _standing(self) -> StandingService:
        if self.standing is None:
            raise RuntimeError("a standing decision is due, but this dispatcher has no standing sessions")
        return self.standing

    async def _decide(self, job: Job) -> JobStatus:
        """Decide a standing session's date (services/standing.py); below quorum, post its one note."""
        decided = await self._standing().decide(job)
        if decided.note is not None:
            channel_id = self.config.followup_channel_id
            if not channel_id:
                log.warning("standing decision %d: no discord.followup_channel_id; the note is not posted", job.id)
            elif not await self._post_once(
                decided.note.key, job, None, self.poster, str(channel_id), decided.note.text, what="standing note"
            ):
                log.error("standing decision %d: its note could not be posted", job.id)
        return decided.status

    # -- telling whoever started it -------------------------------------------------------------

    async def _tell_initiator(self, job: Job, error: str) -> None:
        """DM whoever started the job's evening that the job failed, once per job (its post-ledger key):
        the campaign's initiator, or the standing session's creator."""
        if job.campaign_id is None:
            evening = await self._standing().evening_of(job)
            if evening is None:
                return
            session, day = evening
            who, owner, dry_run, title = session.creator, None, False, session.title
            start = local_datetime(day, session.start_time, self.config.zone)
        else:
            campaign = await self.campaign_store.get(job.campaign_id)
            if campaign is None:
                return
            who, owner, dry_run, title = campaign.initiator, campaign.id, campaign.dry_run, campaign.title
            start = (await self._start_time(campaign)) or job.due_at
        text = job_failed_text(
            job_type=job.job_type, start=start, zone=self.config.zone, attempts=job.attempts, error=error,
            dry_run=dry_run, title=title,
        )
        sender = self.senders.get(Channel.DISCORD)
        address = str(who.discord_user_id)
        if not await self._post_once(
            job_failed_key(job.id), job, owner, sender, address, text, what="job failed", dry_run=dry_run
        ):
            log.error("job %d: its initiator could not be told that it failed", job.id)

    async def _start_time(self, campaign: Campaign) -> datetime | None:
        for j in await self.campaign_store.jobs(campaign.id):
            if j.job_type is JobType.START:
                return j.due_at
        return None

    async def _post_once(
        self,
        key: str,
        job: Job,
        owner: int | None,
        sender: Sender | None,
        address: str,
        text: str,
        *,
        what: str,
        dry_run: bool = False,
    ) -> bool:
        """Send a Discord post at most once for `key`, whichever campaign (`owner`; None: a standing
        decision's) posts it: a restart never repeats it. False if it failed."""
        existing = await self.ledger_store.claim_post(key, owner, self.clock.now())
        if existing is not None and existing.campaign_id != owner:
            # The key is another campaign's: one public summary per channel and day (rule 7), since
            # a second campaign's would count only its own follow-ups.
            reason = f"{what}: {key} already taken by campaign {existing.campaign_id} ({existing.state})"
            log.info("campaign %s: %s", owner, reason)
            await self.ledger_store.record(
                key=None, campaign_id=owner, job_id=job.id, job_type=job.job_type, outcomes=(),
                extra_attempts=[Attempt(None, Channel.DISCORD, DeliveryStatus.SKIPPED, reason)],
                now=self.clock.now(),
            )
            return True
        if existing is not None and existing.state is not LedgerState.CLAIMED:
            return existing.state is LedgerState.SENT  # posted (or given up) before a restart
        # Every post goes to Discord, which deduplicates by nonce: an interrupted post is resent.
        message = OutgoingMessage(Channel.DISCORD, address, text, message_nonce(owner or 0, key, 0))
        tried = Tried(None, ["no Discord sender"]) if sender is None else (
            await self.fanout.send(sender, message, self._keep_alive(job), dry_run=dry_run)
        )
        result = tried.result
        attempts = [Attempt(None, Channel.DISCORD, DeliveryStatus.FAILED, f"{what}: {r}") for r in tried.failures]
        if result is not None:
            attempts.append(Attempt(None, Channel.DISCORD, DeliveryStatus.SENT, what, result.provider_message_id))
        await self.ledger_store.record_post(
            key,
            state=LedgerState.SENT if result is not None else LedgerState.FAILED,
            provider_message_id=result.provider_message_id if result is not None else None,
            campaign_id=owner,
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
                    log.warning("job %d: lease lost (taken over, or due again); stopping this run", self.job.id)
                    return False
            if self.job.campaign_id is None:
                return True  # a standing decision's note: nothing to cancel it but a lost lease
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
