"""Standing weekly sessions: evenings that happen without an organiser when enough players are up for them.

A promoter adds a session (weekday, start, quorum). For each of its dates a durable
`standing_decision` job, created ahead, runs at start − `promotion.standing_decision_minutes` and
counts the players a campaign would reach: at quorum it creates the campaign as the session's
creator would (the limits apply), below it one note goes to the follow-up channel. The outcome is
written once per session and date, with the next week's decision in the same transaction, so a
restart neither decides twice nor loses the week after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.clock import Clock
from services.errors import InvalidInput, NotFound, RallypointError, StandingExists, TooManyStanding
from services.keys import standing_note_key
from services.messages import below_quorum_text, failure_in_words
from services.models import (
    Actor,
    DecisionOutcome,
    Evening,
    Job,
    JobStatus,
    JobType,
    Occurrence,
    StandingDecision,
    StandingLimit,
    StandingSession,
    StandingView,
    Weekday,
)
from services.promote import PromoteService
from services.schedule import local_datetime
from services.sessions import MAX_QUORUM, MAX_STANDING, clean_title, decision_deadline, occurrence, session_label
from storage.campaigns import CampaignStore
from storage.standing import StandingStore

log = logging.getLogger(__name__)

# Each outcome leaves its job in this status: a decision that ran to the end is `sent`, like any job.
_JOB_STATUS = {
    DecisionOutcome.CREATED: JobStatus.SENT,
    DecisionOutcome.BELOW_QUORUM: JobStatus.SENT,
    DecisionOutcome.REFUSED: JobStatus.SENT,
    DecisionOutcome.TAKEN: JobStatus.SENT,
    DecisionOutcome.TOO_LATE: JobStatus.SKIPPED,
    DecisionOutcome.FAILED: JobStatus.FAILED,
}


@dataclass(frozen=True, slots=True)
class StandingConfig:
    zone: ZoneInfo
    decision_lead: timedelta  # promotion.standing_decision_minutes
    max_lateness: timedelta  # a decision later than its start plus this is too late
    max_attempts: int
    max_sessions: int = MAX_STANDING


@dataclass(frozen=True, slots=True)
class Note:
    """A post for the follow-up channel, at most once for `key`."""

    key: str
    text: str


@dataclass(frozen=True, slots=True)
class Decided:
    """What running a decision job came to: the job's final status, the outcome, a note to post."""

    status: JobStatus
    decision: StandingDecision | None = None
    note: Note | None = None


class StandingService:
    def __init__(
        self,
        *,
        promote: PromoteService,
        standing_store: StandingStore,
        campaign_store: CampaignStore,
        config: StandingConfig,
        clock: Clock,
        on_jobs_created: Callable[[], None] = lambda: None,
    ) -> None:
        self.promote = promote
        self.store = standing_store
        self.campaign_store = campaign_store
        self.config = config
        self.clock = clock
        self._on_jobs_created = on_jobs_created

    # -- what promoters do ---------------------------------------------------------------------

    async def add(
        self,
        actor: Actor,
        *,
        weekday: Weekday,
        start_at: time,
        quorum: int,
        include_available: bool = False,
        include_maybe: bool = False,
        title: str | None = None,
    ) -> StandingView:
        """Add a session and schedule its first decision: the first date whose decision is still ahead."""
        if not 1 <= quorum <= MAX_QUORUM:
            raise InvalidInput(f"A quorum is a number of players from 1 to {MAX_QUORUM}.")
        try:
            title = clean_title(title)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        creator = await self.promote.promoter(actor)
        now = self.clock.now()
        added = await self.store.add(
            weekday=weekday, start_time=start_at, quorum=quorum, include_available=include_available,
            include_maybe=include_maybe, title=title, creator=creator,
            first=self._next(weekday, start_at, now), max_attempts=self.config.max_attempts, now=now,
            max_sessions=self.config.max_sessions,
        )
        if added is StandingLimit.SLOT:
            raise StandingExists(f"There is already a standing session on {session_label(weekday, start_at)}.")
        if added is StandingLimit.COUNT:
            raise TooManyStanding(
                f"This server has {self.config.max_sessions} standing sessions, as many as it allows; "
                "remove one first."
            )
        log.info(
            "standing session %d added by player %d: %s, quorum %d", added.id, creator.id,
            session_label(weekday, start_at), quorum,
        )
        self._on_jobs_created()  # its first decision
        return (await self._views([added]))[0]

    async def sessions(self, actor: Actor) -> list[StandingView]:
        """The standing sessions, each with its next decision and its latest outcome."""
        await self.promote.promoter(actor)
        return await self._views(await self.store.active())

    async def remove(self, actor: Actor, session_id: int) -> StandingView:
        """Remove a session: its pending decisions never run (campaigns it created stay as they are)."""
        remover = await self.promote.promoter(actor)
        if not await self.store.remove(session_id, self.clock.now()):
            raise NotFound(f"There is no standing session {session_id}.")
        session = await self.store.get(session_id)
        if session is None:
            raise RuntimeError("row vanished right after being written")
        log.info("standing session %d removed by player %d", session_id, remover.id)
        return (await self._views([session]))[0]

    async def evening(self, day: date) -> Evening:
        """What is on for `day` (the board shows it): the real campaign promoted that day, not cancelled,
        with its start; else the sessions whose decision for that day is still to come."""
        campaign = await self.campaign_store.live_for_date(day)
        if campaign is not None:
            jobs = await self.campaign_store.jobs(campaign.id)
            start = next((j.due_at for j in jobs if j.job_type is JobType.START), None)
            return Evening(day, campaign, start)
        views = await self._views(await self.store.active())
        return Evening(day, standing=tuple(v for v in views if v.next is not None and v.next.session_date == day))

    async def _views(self, sessions: list[StandingSession]) -> list[StandingView]:
        ids = [s.id for s in sessions]
        upcoming, latest = await self.store.upcoming(ids), await self.store.latest(ids)
        return [StandingView(s, upcoming.get(s.id), latest.get(s.id)) for s in sessions]

    def _next(self, weekday: Weekday, start_at: time, after: datetime) -> Occurrence:
        """The first date whose decision comes after `after`."""
        return occurrence(
            weekday, start_at, after=after, zone=self.config.zone, decision_lead=self.config.decision_lead
        )

    # -- the decision job ----------------------------------------------------------------------

    async def decide(self, job: Job) -> Decided:
        """Decide the session's date once: create its campaign at quorum, else a note; then the next date.

        Run again after a crash, it finds what the first run did (the outcome, or the campaign it
        created before it could write the outcome) and does not do it again.
        """
        decision = await self.store.decision(job.id)
        if decision is None:
            raise RuntimeError(f"job {job.id} has no standing decision")
        session = await self.store.get(decision.session_id)
        if session is None:
            raise RuntimeError(f"standing session {decision.session_id} is gone")
        if decision.outcome is not None:
            return self._decided(session, decision)  # decided before a restart: only the note may be left
        if session.removed_at is not None:
            log.info("standing session %d was removed: no decision for %s", session.id, decision.session_date)
            return Decided(JobStatus.CANCELLED, decision)
        day = decision.session_date
        start = local_datetime(day, session.start_time, self.config.zone)
        label = session_label(session.weekday, session.start_time, day)

        made = await self.campaign_store.of_standing(session.id, day)
        if made is not None:  # created before a restart, which came before the outcome was written
            return await self._record(job, session, DecisionOutcome.CREATED, made.recipient_count, made.id,
                                      f"campaign {made.id} created ({made.recipient_count} of {session.quorum})")
        if self.clock.now() >= decision_deadline(start, self.config.max_lateness):
            log.warning("standing session %d: %s decided too late (the bot was not running)", session.id, label)
            return await self._record(job, session, DecisionOutcome.TOO_LATE, None, None,
                                      "not decided: the bot was not running in time")
        taken = await self.campaign_store.live_for_date(day)
        if taken is not None:
            log.info("standing session %d: campaign %d of %s takes precedence", session.id, taken.id, day)
            return await self._record(job, session, DecisionOutcome.TAKEN, None, taken.id,
                                      f"campaign {taken.id} was already scheduled that day and takes precedence")
        preview = await self.promote.preview_for(
            session.creator, include_available=session.include_available, include_maybe=session.include_maybe,
            start_at=session.start_time, title=session.title, day=day,
        )
        eligible = preview.recipient_count
        if eligible < session.quorum:
            log.info("standing session %d: %s below quorum (%d of %d)", session.id, label, eligible, session.quorum)
            return await self._record(job, session, DecisionOutcome.BELOW_QUORUM, eligible, None,
                                      f"not enough players: {eligible} of {session.quorum}")
        try:
            created = await self.promote.create_from(session.creator, preview, standing_session_id=session.id)
        except RallypointError as exc:
            log.warning("standing session %d: the campaign of %s was refused: %s", session.id, label, exc.message)
            return await self._record(job, session, DecisionOutcome.REFUSED, eligible, None,
                                      f"refused: {exc.message}")
        return await self._record(job, session, DecisionOutcome.CREATED, eligible, created.campaign.id,
                                  f"campaign {created.campaign.id} created ({eligible} of {session.quorum})")

    async def give_up(self, job: Job, error: str) -> None:
        """The decision failed for good: say so in the list, and still schedule the week after."""
        decision = await self.store.decision(job.id)
        session = await self.store.get(decision.session_id) if decision is not None else None
        if decision is None or session is None:
            return
        await self._record(job, session, DecisionOutcome.FAILED, None, None,
                           f"the decision failed: {failure_in_words(error)}")

    async def evening_of(self, job: Job) -> tuple[StandingSession, date] | None:
        """The session and date a decision job decides (for the failure DM to its creator)."""
        decision = await self.store.decision(job.id)
        session = await self.store.get(decision.session_id) if decision is not None else None
        if decision is None or session is None:
            return None
        return session, decision.session_date

    async def _record(
        self,
        job: Job,
        session: StandingSession,
        outcome: DecisionOutcome,
        eligible: int | None,
        campaign_id: int | None,
        detail: str,
    ) -> Decided:
        now = self.clock.now()
        decision = await self.store.record(
            job.id, outcome=outcome, eligible=eligible, campaign_id=campaign_id, detail=detail, now=now,
            then=self._next(session.weekday, session.start_time, max(now, job.due_at)),
            max_attempts=self.config.max_attempts,
        )
        return self._decided(session, decision)

    def _decided(self, session: StandingSession, decision: StandingDecision) -> Decided:
        if decision.outcome is None:
            raise ValueError("a decision without an outcome")
        note = None
        if decision.outcome is DecisionOutcome.BELOW_QUORUM:
            label = session_label(session.weekday, session.start_time)
            text = below_quorum_text(label, decision.eligible or 0, session.quorum, session.title)
            note = Note(standing_note_key(session.id, decision.session_date), text)
        return Decided(_JOB_STATUS[decision.outcome], decision, note)
