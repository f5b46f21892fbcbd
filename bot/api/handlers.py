"""Thin handlers: inputs arrive parsed (see `routes.py`), one service call, a response model out.

Every input is validated before the first service call, so a refused request never changes
anything stored; the player's profile is created (services' `player_for`) only once the input is good.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.api import models as m
from bot.api.conditional import ANSWERS, Answer
from bot.api.deps import DEPS, OPENAPI, SETTINGS, actor_of, package_version
from bot.api.events import stream_answers
from services.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from services.models import (
    UNSET,
    CampaignStatusView,
    Channel,
    PlayerStatus,
    PreferencesView,
    RsvpAnswer,
    StandingDecision,
    StandingView,
)
from services.models import QuietHours as DomainQuietHours
from services.quiet_hours import format_hhmm, parse_hhmm


def _zone(request: web.Request) -> ZoneInfo:
    return request.app[DEPS].promote.config.zone


# -- guards of the cached reads: who may see an answer, without a database read once known ---


async def member(request: web.Request) -> None:
    """Let a linked player in (their profile comes from the services' per-change memo)."""
    await request.app[DEPS].players.player_for(actor_of(request))


async def promoter(request: web.Request) -> None:
    await request.app[DEPS].promote.promoter(actor_of(request))


# -- handlers --------------------------------------------------------------------------------


async def healthz(request: web.Request) -> m.HealthResponse:
    deps = request.app[DEPS]
    return m.HealthResponse(version=package_version(), time=deps.clock.now().astimezone(_zone(request)))


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[DEPS].readiness.checks()
    ready = all(value == "ok" for value in checks.values())
    body = m.ReadyResponse(status="ready" if ready else "not_ready", checks=m.ReadyChecks(**checks))
    return web.Response(
        body=body.model_dump_json().encode(), status=200 if ready else 503, content_type="application/json"
    )


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[DEPS].metrics.render())
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response


async def access(request: web.Request) -> m.AccessResponse:
    deps = request.app[DEPS]
    actor = actor_of(request)
    player = await deps.players.player_for(actor) if actor.is_member else None
    return m.AccessResponse(
        authenticated=True,
        linked=actor.is_member,
        can_promote=await deps.promote.can_promote(actor),
        discord_user_id=str(actor.discord_user_id),
        display_name=player.display_name if player is not None else None,
    )


async def set_status(request: web.Request, body: m.SetStatusRequest) -> m.AvailabilityEntryResponse:
    deps = request.app[DEPS]
    day = deps.players.resolve_day(body.date)  # refuse a bad date before touching anything
    entry = (await deps.players.set_status(actor_of(request), body.status, day)).entry
    return m.AvailabilityEntryResponse(
        date=entry.date, status=entry.status, display_name=entry.player.display_name
    )


async def board(request: web.Request, query: m.BoardQuery) -> m.BoardResponse:
    deps = request.app[DEPS]
    actor = actor_of(request)
    result = await deps.players.board(query.date)
    players, mine = None, None
    if actor.is_member:
        me = await deps.players.player_for(actor)
        players = [
            m.BoardPlayer(display_name=e.player.display_name, status=e.status)
            for e in result.entries
            if e.status is not None
        ]
        mine = next((e.status for e in result.entries if e.player.id == me.id), None)
    counts = result.counts()
    return m.BoardResponse(
        date=result.day,
        counts=m.StatusCounts(**{s.value: counts[s] for s in PlayerStatus}),
        players=players,
        my_status=mine,
    )


def _preferences(view: PreferencesView, zone: ZoneInfo) -> m.PreferencesResponse:
    prefs = view.preferences
    links = {link.channel: link for link in view.links}

    def verified(channel: Channel) -> datetime | None:
        link = links.get(channel)
        return link.verified_at.astimezone(zone) if link else None

    quiet = prefs.quiet_hours
    return m.PreferencesResponse(
        allow_promotions=prefs.allow_promotions,
        promotions_chosen=prefs.promotions_chosen,
        preferred_channel=prefs.preferred_channel,
        quiet_hours=(
            m.QuietHours(start=format_hhmm(quiet.start), end=format_hhmm(quiet.end)) if quiet else None
        ),
        timezone=prefs.timezone,
        links=m.LinksView(
            telegram=m.TelegramLinkState(
                linked=Channel.TELEGRAM in links, verified_at=verified(Channel.TELEGRAM)
            ),
            signal=m.SignalLinkState(
                linked=Channel.SIGNAL in links,
                verified_at=verified(Channel.SIGNAL),
                number_masked=view.masked.get(Channel.SIGNAL),
            ),
        ),
    )


async def get_preferences(request: web.Request) -> m.PreferencesResponse:
    view = await request.app[DEPS].players.preferences(actor_of(request))
    return _preferences(view, _zone(request))


async def update_preferences(request: web.Request, body: m.PreferencesUpdate) -> m.PreferencesResponse:
    given = body.model_fields_set
    quiet: DomainQuietHours | None = None
    if body.quiet_hours is not None:
        quiet = DomainQuietHours(parse_hhmm(body.quiet_hours.start), parse_hhmm(body.quiet_hours.end))
    view = await request.app[DEPS].players.update_preferences(
        actor_of(request),
        allow_promotions=body.allow_promotions if "allow_promotions" in given else UNSET,
        preferred_channel=body.preferred_channel if "preferred_channel" in given else UNSET,
        quiet_hours=quiet if "quiet_hours" in given else UNSET,
        timezone=body.timezone if "timezone" in given else UNSET,
    )
    return _preferences(view, _zone(request))


async def link_token(
    request: web.Request, body: m.LinkTokenRequest
) -> m.TelegramLinkResponse | m.SignalLinkResponse:
    linking, actor = request.app[DEPS].linking, actor_of(request)
    zone = _zone(request)
    wanted = body.root
    if isinstance(wanted, m.TelegramLinkRequest):
        token, deep_link, expires_at = await linking.request_telegram_link(actor)
        return m.TelegramLinkResponse(
            token=token, deep_link=deep_link, expires_at=expires_at.astimezone(zone)
        )
    expires_at = await linking.request_signal_link(actor, wanted.address)
    return m.SignalLinkResponse(expires_at=expires_at.astimezone(zone))


async def link_confirm(request: web.Request, body: m.LinkConfirmRequest) -> m.LinkConfirmResponse:
    # Guesses are bounded by the service: a code locks after a few wrong ones, and new codes are throttled.
    await request.app[DEPS].linking.confirm_signal_link(actor_of(request), body.code)
    return m.LinkConfirmResponse()


def _time(value: str | None) -> time | None:
    return parse_hhmm(value) if value is not None else None


async def unlink(request: web.Request, body: m.UnlinkRequest) -> m.PreferencesResponse:
    deps, actor = request.app[DEPS], actor_of(request)
    await deps.linking.unlink(actor, Channel(body.channel))
    return _preferences(await deps.players.preferences(actor), _zone(request))


async def preview(request: web.Request, query: m.PreviewQuery) -> m.PreviewResponse:
    result = await request.app[DEPS].promote.preview(
        actor_of(request), include_available=query.include_available, include_maybe=query.include_maybe,
        start_at=_time(query.start_time), title=query.title,
    )
    end = None if query.limit is None else query.offset + query.limit
    return m.PreviewResponse(
        campaign_date=result.campaign_date,
        timezone=result.timezone,
        reminder_time=format_hhmm(result.reminder_time),
        start_time=format_hhmm(result.start_time),
        title=result.title,
        recipient_count=result.recipient_count,
        not_opted_in=result.not_opted_in,
        channels_summary=m.ChannelsSummaryModel(**result.channels_summary.as_dict()),
        recipients_preview=[
            m.RecipientPreview(
                display_name=r.player.display_name, status=r.status, selected_channel=r.selected_channel
            )
            for r in result.recipients[query.offset:end]
        ],
    )


async def create_campaign(request: web.Request, body: m.CreateCampaignRequest) -> m.CampaignCreatedResponse:
    deps = request.app[DEPS]
    dry_run = body.dry_run if body.dry_run is not None else request.app[SETTINGS].promotion.dry_run_default
    given = body.model_fields_set
    created = await deps.promote.create(
        actor_of(request),
        include_available=body.include_available,
        include_maybe=body.include_maybe,
        dry_run=dry_run,
        start_at=_time(body.start_time) if "start_time" in given else None,
        title=body.title if "title" in given else None,
    )
    zone = _zone(request)
    campaign = created.campaign
    return m.CampaignCreatedResponse(
        campaign_id=campaign.id,
        campaign_date=campaign.campaign_date,
        status=campaign.status,
        recipient_count=campaign.recipient_count,
        channels_summary=m.ChannelsSummaryModel(**campaign.channels_summary.as_dict()),
        scheduled_times=m.ScheduledTimes(
            reminder=created.schedule.reminder.astimezone(zone),
            start=created.schedule.start.astimezone(zone),
            voice_check=created.schedule.voice_check.astimezone(zone),
        ),
        dry_run=campaign.dry_run,
        title=campaign.title,
    )


def _campaign(view: CampaignStatusView, zone: ZoneInfo) -> m.CampaignView:
    c, s = view.campaign, view.standing
    return m.CampaignView(
        id=c.id,
        campaign_date=c.campaign_date,
        status=c.status,
        dry_run=c.dry_run,
        initiator=c.initiator.display_name,
        title=c.title,
        start_time=format_hhmm(c.start_time) if c.start_time is not None else None,
        standing_session=(
            m.StandingRef(
                id=s.id, weekday=s.weekday, start_time=format_hhmm(s.start_time), removed=s.removed_at is not None
            )
            if s is not None
            else None
        ),
        recipient_count=c.recipient_count,
        channels_summary=m.ChannelsSummaryModel(**c.channels_summary.as_dict()),
        delivery=m.DeliveryCounts(**{s.value: n for s, n in view.delivery.items()}),
        rsvp=m.RsvpCounts(**{"in": view.rsvp[RsvpAnswer.IN], "late": view.rsvp[RsvpAnswer.LATE],
                             "out": view.rsvp[RsvpAnswer.OUT]}),
        need=m.NeedView(asked=view.need.asked, joined=view.need.joined),
        jobs=[
            m.JobView(
                job_type=j.job_type,
                run_at=j.run_at.astimezone(zone),
                status=j.status,
                attempts=j.attempts,
                max_attempts=j.max_attempts,
            )
            for j in view.jobs
        ],
    )


async def campaign_status(request: web.Request, query: m.DateQuery) -> m.CampaignStatusResponse:
    view = await request.app[DEPS].promote.status(actor_of(request), query.date)
    return m.CampaignStatusResponse(campaign=_campaign(view, _zone(request)) if view else None)


async def campaign_events(request: web.Request, query: m.DateQuery) -> web.StreamResponse:
    await member(request)
    deps, answers = request.app[DEPS], request.app[ANSWERS]

    def campaign_json(answer: Answer) -> str:
        status = answer.model
        if not isinstance(status, m.CampaignStatusResponse):
            raise TypeError(f"not a campaign status: {type(status).__name__}")
        return status.campaign.model_dump_json() if status.campaign is not None else "null"

    return await stream_answers(
        request,
        event="campaign",
        render=lambda: answers.answer(request, campaign_status, {"query": query}),
        data=campaign_json,
        next_rollover=deps.players.next_day,
    )


async def cancel_campaign(
    request: web.Request, path: m.CampaignPath, body: m.EmptyRequest
) -> m.CampaignView:
    view = await request.app[DEPS].promote.cancel(actor_of(request), path.campaign_id)
    return _campaign(view, _zone(request))


async def need_more(request: web.Request, path: m.CampaignPath, body: m.NeedRequest) -> m.NeedResponse:
    asked = await request.app[DEPS].need.ask(actor_of(request), body.count, path.campaign_id)
    return m.NeedResponse(messaged=asked.messaged)


def _decision(decision: StandingDecision | None, zone: ZoneInfo) -> m.DecisionView | None:
    if decision is None:
        return None
    return m.DecisionView(
        session_date=decision.session_date,
        decide_at=decision.due_at.astimezone(zone),
        status=decision.job_status,
        outcome=decision.outcome,
        eligible=decision.eligible,
        campaign_id=decision.campaign_id,
        detail=decision.detail,
        decided_at=decision.decided_at.astimezone(zone) if decision.decided_at is not None else None,
    )


def _standing(view: StandingView, zone: ZoneInfo) -> m.StandingSessionView:
    s = view.session
    return m.StandingSessionView(
        id=s.id,
        weekday=s.weekday,
        start_time=format_hhmm(s.start_time),
        quorum=s.quorum,
        include_available=s.include_available,
        include_maybe=s.include_maybe,
        title=s.title,
        created_by=s.creator.display_name,
        created_at=s.created_at.astimezone(zone),
        removed_at=s.removed_at.astimezone(zone) if s.removed_at is not None else None,
        next_decision=_decision(view.next, zone),
        last_decision=_decision(view.last, zone),
    )


async def standing_sessions(request: web.Request) -> m.StandingListResponse:
    views = await request.app[DEPS].standing.sessions(actor_of(request))
    zone = _zone(request)
    return m.StandingListResponse(standing=[_standing(v, zone) for v in views])


async def add_standing_session(request: web.Request, body: m.StandingSessionRequest) -> m.StandingSessionView:
    view = await request.app[DEPS].standing.add(
        actor_of(request),
        weekday=body.weekday,
        start_at=parse_hhmm(body.start_time),
        quorum=body.quorum,
        include_available=body.include_available,
        include_maybe=body.include_maybe,
        title=body.title if "title" in body.model_fields_set else None,
    )
    return _standing(view, _zone(request))


async def remove_standing_session(request: web.Request, path: m.StandingPath) -> m.StandingSessionView:
    view = await request.app[DEPS].standing.remove(actor_of(request), path.session_id)
    return _standing(view, _zone(request))


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")
