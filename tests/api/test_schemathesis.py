"""schemathesis (`--checks all`) against the real API on 127.0.0.1, the real engine and SQLite behind it.

The schema is the document the server serves (checked first). Every operation is run through schemathesis'
examples, coverage and fuzzing phases, once with a service token and once with a browser session,
and every response goes through every built-in check: no server errors, statuses, content types,
headers and bodies as documented, schema-valid requests accepted and schema-violating ones
refused, authentication enforced.

schemathesis is synchronous (requests), so the app runs on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bot.api.auth import CSRF_HEADER, CSRF_VALUE, SAFE_METHODS, SESSION_COOKIE, SESSION_PURPOSE
from bot.api.deps import SIGNER, package_version
from bot.api.openapi import build_openapi
from services.models import PlayerStatus, PreferredChannel
from tests.api.helpers import DAY, TOKEN, Api, FakeDiscordOAuth, api_client
from tests.support import PROMOTER_ID, opted_in


class ServedApi:
    """The API app (helpers.api_client) on its own loop in a thread, until `stop()`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started = threading.Event()
        self.failure: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="served-api", daemon=True)

    def start(self) -> ServedApi:
        self._thread.start()
        if not self.started.wait(30):
            raise RuntimeError("the API did not start within 30 s")
        if self.failure is not None:
            raise self.failure
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.failure = exc
            self.started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # The Discord login configured (its token endpoint faked), so that session cookies count.
        async with FakeDiscordOAuth().running() as oauth, api_client(self.tmp, oauth=oauth) as api:
            await seed(api)
            self.url = str(api.client.make_url("")).rstrip("/")
            session_id, _ = await api.h.engine.web_sessions.open(PROMOTER_ID)
            signer = api.client.app[SIGNER]
            BrowserSession.cookie = signer.sign(SESSION_PURPOSE, {"sid": session_id}, timedelta(days=1))
            self.started.set()
            await self._stop.wait()


async def seed(api: Api) -> None:
    """Players looking tonight, so that a valid create is accepted (201) rather than 422."""
    h = api.h
    await h.add_player(1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram="5001")
    await h.add_player(2, "Bor", status=PlayerStatus.AVAILABLE, signal="+38640111222")
    await h.add_player(3, "Cene")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    server = ServedApi(tmp_path_factory.mktemp("schemathesis")).start()
    try:
        assert requests.get(f"{server.url}/api/openapi.json", timeout=10).json() == json.loads(json.dumps(DOCUMENT))
        yield server
    finally:
        server.stop()


DOCUMENT = build_openapi(version=package_version())
def schema_with(credentials: dict[str, dict[str, str]]) -> Any:
    """The document, with the credentials of one auth mode for schemathesis to send (and to strip)."""
    config = schemathesis.Config.from_dict({
        # Bounded, so that both runs take well under a minute; the coverage phase adds its own
        # boundary and mutation cases on top.
        "generation": {"max-examples": 15},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
        **({"auth": {"openapi": credentials}} if credentials else {}),
    })
    # Loaded when the module is collected (schemathesis' lazy loading from a fixture does not work
    # with this pytest); `served` checks that the server serves exactly this document.
    return schemathesis.openapi.from_dict(DOCUMENT, config=config)


# The first security alternative of every operation.
with_token = schema_with({"serviceToken": {"bearer": TOKEN}, "actingUser": {"api_key": str(PROMOTER_ID)}})
with_session = schema_with({})


@with_session.auth()
class BrowserSession:
    """The other alternative: the promoter's session cookie, opened on the running server by `served`
    as the Discord login opens one, and the CSRF header on requests that change something."""

    cookie = ""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return self.cookie

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.cookies = {**(case.cookies or {}), SESSION_COOKIE: data}
        if case.method.upper() not in SAFE_METHODS:
            case.headers = {**(case.headers or {}), CSRF_HEADER: CSRF_VALUE}


def date_window(case: schemathesis.Case) -> tuple[date, date] | None:
    """The window of a status date, as the operation's document states it in `x-date-window`."""
    raw = case.operation.definition.raw
    found = _find_window(raw, case.operation.schema.raw_schema)
    if found is None:
        return None
    return DAY + timedelta(days=found["from_days"]), DAY + timedelta(days=found["to_days"])


def _find_window(node: Any, document: dict[str, Any]) -> dict[str, int] | None:
    if isinstance(node, dict):
        if "x-date-window" in node:
            window: dict[str, int] = node["x-date-window"]
            return window
        if isinstance(node.get("$ref"), str):
            target: Any = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _find_window(target, document)
        nodes = list(node.values())
    elif isinstance(node, list):
        nodes = node
    else:
        return None
    for child in nodes:
        found = _find_window(child, document)
        if found is not None:
            return found
    return None


def _sent_date(case: schemathesis.Case) -> date | None:
    raw = (case.query or {}).get("date")
    if raw is None and isinstance(case.body, dict):
        raw = case.body.get("date")
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _empty_quiet_hours(case: schemathesis.Case) -> bool:
    """Whether the body holds quiet hours whose start is their end (the document's `x-distinct`)."""
    quiet = case.body.get("quiet_hours") if isinstance(case.body, dict) else None
    return isinstance(quiet, dict) and "start" in quiet and quiet.get("start") == quiet.get("end")


@schemathesis.check
def positive_data_acceptance_within_the_date_window(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """positive_data_acceptance, knowing the two rules JSON Schema cannot state.

    A status date must lie between yesterday and 28 days ahead, and quiet hours need a start that
    is not their end. The document says so in words and in `x-date-window` and `x-distinct`, but
    such a request is still schema-valid, so the built-in check would count its refusal as a
    failure. This check lets exactly those refusals through — a 400 `date_out_of_range` for a date
    the document's own window excludes, a 400 `quiet_hours_empty` for a window from a time to the
    same time — and fails everything else the built-in check fails.
    """
    try:
        return positive_data_acceptance(ctx, response, case)
    except Failure:
        window, sent = date_window(case), _sent_date(case)
        outside = window is not None and sent is not None and not window[0] <= sent <= window[1]
        if outside and response.status_code == 400 and _error_code(response) == "date_out_of_range":
            return None
        if _empty_quiet_hours(case) and response.status_code == 400 and _error_code(response) == "quiet_hours_empty":
            return None
        raise


def _error_code(response: schemathesis.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def call_and_check_all(case: schemathesis.Case, served: ServedApi) -> None:
    case.call_and_validate(
        base_url=served.url,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[positive_data_acceptance_within_the_date_window],
    )


@with_token.parametrize()
def test_the_api_keeps_its_promises_to_a_service_token(case: schemathesis.Case, served: ServedApi) -> None:
    call_and_check_all(case, served)


@with_session.parametrize()
def test_the_api_keeps_its_promises_to_a_browser_session(case: schemathesis.Case, served: ServedApi) -> None:
    call_and_check_all(case, served)
