"""GET /readyz and GET /metrics as a monitoring system calls them (the real process: tests/e2e)."""

from __future__ import annotations

import pytest

from services.models import Channel
from tests.api.helpers import READY, TOKEN, Api, api_client


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        yield client


async def test_ready_is_200_with_every_check(api: Api) -> None:
    status, body = await api.get("/readyz", as_user=None)
    assert (status, body) == (200, {"status": "ready", "checks": READY})


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        ("gateway", "not connected to the Discord gateway"),
        ("database", "no answer within 5 s"),
        ("scheduler", "overslept its wake-up by 42 s"),
    ],
)
async def test_any_failing_check_is_503_naming_it(api: Api, check: str, problem: str) -> None:
    api.readiness.state[check] = problem
    status, body = await api.get("/readyz", as_user=None)
    assert status == 503
    assert body == {"status": "not_ready", "checks": {**READY, check: problem}}


async def test_metrics_take_a_service_token_and_no_acting_user(api: Api) -> None:
    api.h.engine.metrics.send(Channel.TELEGRAM, "sent")
    async with api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")  # the Prometheus text format
        text = await response.text()
    assert 'rallypoint_sends_total{channel="telegram",outcome="sent"} 1.0' in text
    assert "# HELP rallypoint_job_lateness_seconds" in text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"X-Discord-User-Id": "1000"}],
    ids=["none", "wrong token", "wrong scheme", "a user but no token"],
)
async def test_metrics_refuse_anyone_else(api: Api, headers: dict[str, str]) -> None:
    status, body = await api.get("/metrics", as_user=None, headers=headers)
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_metrics_can_be_switched_off(tmp_path) -> None:
    async with api_client(tmp_path, metrics=False) as api:
        status, body = await api.get("/metrics", as_user=None, headers={"Authorization": f"Bearer {TOKEN}"})
        assert (status, body["error"]["code"]) == (404, "not_found")
        _, document = await api.get("/api/openapi.json", as_user=None)
        assert "/metrics" not in document["paths"]


async def test_the_document_describes_both(api: Api) -> None:
    _, document = await api.get("/api/openapi.json", as_user=None)
    ready = document["paths"]["/readyz"]["get"]
    assert ready["security"] == [] and {"200", "503"} <= set(ready["responses"])
    assert ready["responses"]["503"] == ready["responses"]["200"] | {"description": "Service Unavailable"}
    metrics = document["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"serviceToken": []}]
    assert "parameters" not in metrics  # no X-Discord-User-Id: a scraper acts for nobody
    assert set(metrics["responses"]["200"]["content"]) == {"text/plain"}
