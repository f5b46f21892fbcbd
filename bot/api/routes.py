"""The one table of API operations: routing, input parsing and the OpenAPI document all read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bot.api import errors as e
from bot.api import handlers as h
from bot.api import models as m
from bot.api.auth import SAFE_METHODS
from bot.api.conditional import answer_conditionally
from bot.api.errors import ErrorDoc
from bot.api.events import EVENTS_DESCRIPTION
from bot.api.parsing import parse_body, parse_path, parse_query

Handler = Callable[..., Awaitable[BaseModel | web.StreamResponse]]


Guard = Callable[[web.Request], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class StreamDoc:
    """What an event stream sends: events named `event`, each carrying `data` as JSON (or null)."""

    event: str
    data: type[BaseModel]
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # as the OpenAPI document writes it
    operation_id: str
    summary: str
    handler: Handler
    responses: tuple[type[BaseModel], ...]  # the success body, or its alternatives
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    route: str | None = None  # aiohttp's spelling of `path`, when it needs a pattern
    public: bool = False
    service_only: bool = False  # a service token alone, no acting user (GET /metrics)
    # The errors this operation answers besides those every operation of its kind may answer
    # (bad input, no or bad credentials, a missing CSRF header): see `documented_errors`.
    errors: tuple[ErrorDoc, ...] = ()
    also: tuple[int, ...] = ()  # other statuses that answer with the success body (503 not ready)
    media_type: str = "application/json"  # of the success body
    # A read answered with an ETag from the cache of answers (bot/api/conditional.py): the guard lets
    # the caller in (or raises) without reading the database once it has seen them.
    cached_for: Guard | None = None
    stream: StreamDoc | None = None  # server-sent events (media_type text/event-stream)
    description: str = ""

    @property
    def route_path(self) -> str:
        return self.route or self.path

    @property
    def changes_state(self) -> bool:
        return self.method not in SAFE_METHODS

    def documented_errors(self) -> tuple[ErrorDoc, ...]:
        """Every error answer of this operation, explicit or implied by its kind."""
        if self.public:
            return self.errors
        if self.service_only:
            return tuple(dict.fromkeys([e.AMBIGUOUS, e.UNAUTHORIZED, *self.errors]))
        implied = [e.BAD_INPUT, e.AMBIGUOUS, e.UNAUTHORIZED, e.MEMBERSHIP_UNKNOWN]
        if self.body is not None:
            implied += [e.BAD_JSON, e.TOO_LARGE, e.BODY_TIMEOUT]
        if self.changes_state:
            implied.append(e.CSRF)
        return tuple(dict.fromkeys([*implied, *self.errors]))


METRICS_PATH = "/metrics"
_AVAILABILITY = "/api/availability"
_PROMOTIONS = f"{_AVAILABILITY}/promotions"

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET", "/healthz", "healthz", "Liveness check (no authentication).", h.healthz,
        (m.HealthResponse,), public=True,
    ),
    Operation(
        "GET", "/readyz", "readyz",
        "Readiness: 200 when the gateway is connected with the guild available, the database answers and the "
        "scheduler keeps time; else 503 naming what is wrong (no authentication).",
        h.readyz, (m.ReadyResponse,), public=True, also=(503,),
    ),
    Operation(
        "GET", METRICS_PATH, "metrics",
        "Prometheus metrics in the text format (a service token, no acting user; off when api.metrics is false).",
        h.metrics, (), service_only=True, media_type="text/plain",
    ),
    Operation(
        "GET", f"{_AVAILABILITY}/access", "getAccess",
        "Who the caller is: linked (a guild member) and allowed to promote.", h.access,
        (m.AccessResponse,),
    ),
    Operation(
        "POST", _AVAILABILITY, "setStatus", "Set or clear the caller's status for a date.", h.set_status,
        (m.AvailabilityEntryResponse,), body=m.SetStatusRequest, errors=(e.DATE_OUT_OF_RANGE, e.NOT_LINKED),
    ),
    Operation(
        "GET", _AVAILABILITY, "getBoard", "Counts by status for a date, and names for linked users.",
        h.board, (m.BoardResponse,), query=m.BoardQuery, errors=(e.DATE_OUT_OF_RANGE,),
    ),
    Operation(
        "GET", f"{_AVAILABILITY}/promotion-preferences", "getPreferences",
        "The caller's promotion preferences and linked channels (handles masked).", h.get_preferences,
        (m.PreferencesResponse,), errors=(e.NOT_LINKED,),
    ),
    Operation(
        "POST", f"{_AVAILABILITY}/promotion-preferences", "updatePreferences",
        "Change the given preferences; omitted fields stay unchanged.", h.update_preferences,
        (m.PreferencesResponse,), body=m.PreferencesUpdate, errors=(e.QUIET_HOURS_EMPTY, e.NOT_LINKED),
    ),
    Operation(
        "POST", f"{_AVAILABILITY}/link-token", "requestLink",
        "Start linking Telegram (a deep link) or Signal (a code sent to the number).", h.link_token,
        (m.TelegramLinkResponse, m.SignalLinkResponse), body=m.LinkTokenRequest,
        errors=(e.NOT_LINKED, e.CHANNEL_UNAVAILABLE, e.LINK_THROTTLED),
    ),
    Operation(
        "POST", f"{_AVAILABILITY}/link-confirm", "confirmLink", "Confirm a Signal link with its code.",
        h.link_confirm, (m.LinkConfirmResponse,), body=m.LinkConfirmRequest,
        errors=(e.NOT_LINKED, e.CHANNEL_UNAVAILABLE, e.NO_CODE_PENDING, e.WRONG_CODE, e.CODE_EXPIRED, e.CODE_LOCKED),
    ),
    Operation(
        "POST", f"{_AVAILABILITY}/unlink", "unlink",
        "Remove the caller's Telegram or Signal link (nothing to remove is no error); answers the preferences.",
        h.unlink, (m.PreferencesResponse,), body=m.UnlinkRequest, errors=(e.NOT_LINKED,),
    ),
    Operation(
        "GET", f"{_PROMOTIONS}/preview", "previewCampaign",
        "Who tonight's campaign would reach, and on which channel (promoters).", h.preview,
        (m.PreviewResponse,), query=m.PreviewQuery, errors=(e.NOT_LINKED, e.NOT_PROMOTER),
        cached_for=h.promoter,
    ),
    Operation(
        "POST", f"{_PROMOTIONS}/campaigns", "createCampaign",
        "Snapshot the recipients and schedule tonight's campaign (promoters).", h.create_campaign,
        (m.CampaignCreatedResponse,), status=201, body=m.CreateCampaignRequest, body_required=False,
        errors=(e.NOT_LINKED, e.NOT_PROMOTER, e.CAMPAIGN_EXISTS, e.NO_RECIPIENTS, e.DRY_RUNS_USED_UP),
    ),
    Operation(
        "GET", f"{_PROMOTIONS}/campaign", "getCampaign",
        "The campaign of a date (without one: the campaign still running, else today's): aggregate counts "
        "and jobs only.", h.campaign_status,
        (m.CampaignStatusResponse,), query=m.DateQuery, errors=(e.NOT_LINKED,), cached_for=h.member,
    ),
    Operation(
        "GET", f"{_PROMOTIONS}/campaign/events", "watchCampaign",
        "The campaign of a date as server-sent events: one `campaign` event now and on every change.",
        h.campaign_events, (), query=m.DateQuery, errors=(e.NOT_LINKED, e.TOO_MANY_STREAMS),
        stream=StreamDoc("campaign", m.CampaignView, nullable=True), media_type="text/event-stream",
        description=EVENTS_DESCRIPTION,
    ),
    Operation(
        "POST", f"{_PROMOTIONS}/campaigns/{{campaign_id}}/cancel", "cancelCampaign",
        "Cancel a campaign; its pending jobs never run (promoters).", h.cancel_campaign,
        (m.CampaignView,), body=m.EmptyRequest, body_required=False, path_params=m.CampaignPath,
        route=f"{_PROMOTIONS}/campaigns/{{campaign_id:[0-9]+}}/cancel",
        errors=(e.NOT_LINKED, e.NOT_PROMOTER, e.CAMPAIGN_NOT_FOUND),
    ),
    Operation(
        "POST", f"{_PROMOTIONS}/campaigns/{{campaign_id}}/need", "needMore",
        "We need N more: ask the AVAILABLE and MAYBE players outside the campaign, once each a day, with the "
        "answers in the message; those who say they are coming join it (promoters, until its voice check).",
        h.need_more, (m.NeedResponse,), body=m.NeedRequest, path_params=m.CampaignPath,
        route=f"{_PROMOTIONS}/campaigns/{{campaign_id:[0-9]+}}/need",
        errors=(e.NOT_LINKED, e.NOT_PROMOTER, e.NO_SUCH_CAMPAIGN, e.NEED_DRY_RUN, e.NEED_TOO_LATE),
    ),
    Operation(
        "GET", f"{_PROMOTIONS}/standing", "listStandingSessions",
        "The standing weekly sessions, each with its next decision and its latest outcome (promoters).",
        h.standing_sessions, (m.StandingListResponse,), errors=(e.NOT_LINKED, e.NOT_PROMOTER),
    ),
    Operation(
        "POST", f"{_PROMOTIONS}/standing", "addStandingSession",
        "Add a standing weekly session; its first decision is the first one still ahead (promoters).",
        h.add_standing_session, (m.StandingSessionView,), status=201, body=m.StandingSessionRequest,
        errors=(e.NOT_LINKED, e.NOT_PROMOTER, e.STANDING_EXISTS, e.STANDING_LIMIT),
    ),
    Operation(
        "DELETE", f"{_PROMOTIONS}/standing/{{session_id}}", "removeStandingSession",
        "Remove a standing session: its pending decisions never run; campaigns it created stay (promoters).",
        h.remove_standing_session, (m.StandingSessionView,), path_params=m.StandingPath,
        route=f"{_PROMOTIONS}/standing/{{session_id:[0-9]+}}",
        errors=(e.NOT_LINKED, e.NOT_PROMOTER, e.STANDING_NOT_FOUND),
    ),
    Operation(
        "GET", "/api/openapi.json", "getOpenApi", "This document.", h.openapi, (), public=True,
    ),
)


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json().encode(), status=status, content_type="application/json")


def _endpoint(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        inputs: dict[str, Any] = {}
        if op.query is not None:
            inputs["query"] = parse_query(request, op.query)
        if op.path_params is not None:
            inputs["path"] = parse_path(request, op.path_params)
        if op.body is not None:
            inputs["body"] = await parse_body(request, op.body, required=op.body_required)
        if op.cached_for is not None:
            await op.cached_for(request)
            return await answer_conditionally(request, op.handler, inputs)
        result = await op.handler(request, **inputs)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result, op.status)

    endpoint.__name__ = op.handler.__name__
    return endpoint


def setup_routes(app: web.Application, operations: tuple[Operation, ...] = OPERATIONS) -> None:
    """Route every operation; a GET also answers HEAD (the same status and headers, no body)."""
    for op in operations:
        if op.method == "GET":
            app.router.add_get(op.route_path, _endpoint(op), allow_head=True)
        else:
            app.router.add_route(op.method, op.route_path, _endpoint(op))
