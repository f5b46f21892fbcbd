"""Campaigns through the API: the create race, cancel, and aggregate-only status."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from services.delivery.base import SendResult
from services.models import PreferredChannel
from tests.api.helpers import MEMBER_ID, Api, api_client
from tests.support import opted_in


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        await client.h.add_player(1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM),
                                  telegram="5001")
        await client.h.add_player(2, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL),
                                  signal="+38640111222")
        await client.h.add_player(3, "Cene")
        yield client


async def test_twenty_concurrent_creates_by_one_promoter_give_one_campaign(api: Api) -> None:
    async def create() -> tuple[int, dict]:
        return await api.post("/api/availability/promotions/campaigns", json={})

    results = await asyncio.gather(*(create() for _ in range(20)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 19
    assert all(body["error"]["code"] == "campaign_exists" for status, body in results if status == 409)
    async with api.h.engine.db.read() as tx:
        row = await tx.fetchone("SELECT count(*) FROM campaigns")
        jobs = await tx.fetchone("SELECT count(*) FROM jobs")
    assert (row[0], jobs[0]) == (1, 3)


async def test_a_thousand_dry_runs_make_five_and_schedule_fifteen_jobs(api: Api) -> None:
    async def dry_run() -> tuple[int, dict]:
        return await api.post("/api/availability/promotions/campaigns", json={"dry_run": True})

    results = [await dry_run() for _ in range(5)]
    assert [status for status, _ in results] == [201] * 5
    before = await api.dump()
    results = await asyncio.gather(*(dry_run() for _ in range(1000)))
    assert {status for status, _ in results} == {429}
    assert {body["error"]["code"] for _, body in results} == {"rate_limited"}
    assert await api.dump() == before
    async with api.client.post(
        "/api/availability/promotions/campaigns", json={"dry_run": True}, headers=api.auth()
    ) as response:
        # 18:00 on the campaign date: six hours to go until the next one.
        assert (response.status, response.headers["Retry-After"]) == (429, str(6 * 3600))
    async with api.h.engine.db.read() as tx:
        jobs = await tx.fetchone("SELECT count(*) FROM jobs")
    assert jobs[0] == 15
    assert (await api.post("/api/availability/promotions/campaigns", json={}))[0] == 201  # the real one


async def test_cancel_stops_every_pending_job(api: Api) -> None:
    _, created = await api.post("/api/availability/promotions/campaigns", json={})
    campaign_id = created["campaign_id"]
    status, body = await api.post(f"/api/availability/promotions/campaigns/{campaign_id}/cancel")
    assert status == 200
    assert (body["id"], body["status"]) == (campaign_id, "cancelled")
    assert [j["status"] for j in body["jobs"]] == ["cancelled"] * 3

    await api.h.run_evening()
    assert api.h.discord.sent == [] and api.h.telegram.sent == [] and api.h.signal.sent == []
    _, current = await api.get("/api/availability/promotions/campaign")
    assert current["campaign"]["status"] == "cancelled"

    status, again = await api.post(f"/api/availability/promotions/campaigns/{campaign_id}/cancel")
    assert (status, again["error"]["code"]) == (404, "not_found")


async def test_cancel_after_the_reminder_keeps_what_ran_and_stops_the_rest(api: Api) -> None:
    _, created = await api.post("/api/availability/promotions/campaigns", json={})
    # From 18:00 to 20:50: the reminder (20:45) runs, the start (21:00) does not.
    await api.h.engine.dispatcher.run_until(api.h.clock.now() + timedelta(hours=2, minutes=50))
    _, body = await api.post(f"/api/availability/promotions/campaigns/{created['campaign_id']}/cancel")
    assert [j["status"] for j in body["jobs"]] == ["sent", "cancelled", "cancelled"]
    sent_before = len(api.h.telegram.sent) + len(api.h.signal.sent) + len(api.h.discord.sent)
    await api.h.run_evening()
    assert len(api.h.telegram.sent) + len(api.h.signal.sent) + len(api.h.discord.sent) == sent_before


async def test_cancelling_an_unknown_campaign_is_404(api: Api) -> None:
    status, body = await api.post("/api/availability/promotions/campaigns/9999/cancel")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_status_after_the_evening_holds_aggregates_only(api: Api) -> None:
    api.h.signal.always["+38640111222"] = SendResult.permanent("unregistered")
    api.h.voice.ids = {3}
    _, created = await api.post("/api/availability/promotions/campaigns", json={})
    await api.h.run_evening()

    status, body = await api.get("/api/availability/promotions/campaign", as_user=MEMBER_ID)
    assert status == 200
    campaign = body["campaign"]
    assert set(campaign) == {
        "id", "campaign_date", "status", "dry_run", "initiator", "title", "start_time", "standing_session",
        "recipient_count", "channels_summary", "delivery", "rsvp", "need", "jobs",
    }
    assert campaign["rsvp"] == {"in": 0, "late": 0, "out": 0} and campaign["need"] == {"asked": 0, "joined": 0}
    assert campaign["id"] == created["campaign_id"]
    assert campaign["initiator"] == "Promoter"
    assert campaign["status"] == "followup_sent"
    assert campaign["recipient_count"] == 3
    # Bor's Signal is gone: he falls back to Discord; Cene is in voice: no follow-up for him.
    assert campaign["delivery"] == {"sent": 8, "skipped": 0, "failed": 0, "unknown": 0}
    jobs = campaign["jobs"]
    assert [j["job_type"] for j in jobs] == ["send_reminder_2045", "send_start_2100", "voice_check_2100"]
    assert all(set(j) == {"job_type", "run_at", "status", "attempts", "max_attempts"} for j in jobs)

    text = json.dumps(body)
    for secret in ["5001", "38640111222", "Ana", "Bor", "Cene", '"1"', '"2"', '"3"', "recipients", "chat"]:
        assert secret not in text, secret
