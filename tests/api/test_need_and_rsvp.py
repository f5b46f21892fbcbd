"""POST …/campaigns/{id}/need and the answers in the campaign's status, its ETag and its event stream."""

from __future__ import annotations

import pytest

from services.models import PlayerStatus, RsvpAnswer
from tests.api.helpers import MEMBER_ID, Api, api_client
from tests.api.test_events import EVENTS, held_api, next_event
from tests.support import local

CREATE = "/api/availability/promotions/campaigns"
STATUS = "/api/availability/promotions/campaign"
ANA, DORA, EVA = 1, 4, 5


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        await client.h.add_player(ANA, "Ana")
        await client.h.add_player(DORA, "Dora", status=PlayerStatus.AVAILABLE)
        await client.h.add_player(EVA, "Eva", status=PlayerStatus.MAYBE)
        yield client


async def test_a_promoter_asks_for_more_and_the_status_counts_who_came(api: Api) -> None:
    _, created = await api.post(CREATE, json={})
    need = f"{CREATE}/{created['campaign_id']}/need"
    status, body = await api.post(need, json={"count": 2})
    assert (status, body) == (200, {"messaged": 2})
    assert await api.post(need, json={"count": 1}) == (200, {"messaged": 0})  # nobody left to ask today
    await api.h.engine.dispatcher.run_until(local(api.h.clock.now().date(), 18, 1))
    await api.h.engine.rsvp.answer_on_discord(DORA, created["campaign_id"], RsvpAnswer.IN)
    await api.h.engine.rsvp.answer_on_discord(ANA, created["campaign_id"], RsvpAnswer.LATE)

    _, seen = await api.get(STATUS, as_user=MEMBER_ID)
    campaign = seen["campaign"]
    assert campaign["rsvp"] == {"in": 1, "late": 1, "out": 0}
    assert campaign["need"] == {"asked": 2, "joined": 1}
    assert campaign["recipient_count"] == 2  # Dora took a seat
    assert "Dora" not in str(seen) and "Eva" not in str(seen)  # aggregates only
    assert "send_need" in [j["job_type"] for j in campaign["jobs"]]
    assert campaign["delivery"] == {"sent": 0, "skipped": 0, "failed": 0, "unknown": 0}  # asks are not counted


async def test_only_promoters_may_ask_and_nothing_changes_when_refused(api: Api) -> None:
    _, created = await api.post(CREATE, json={})
    need = f"{CREATE}/{created['campaign_id']}/need"
    before = await api.dump()
    status, body = await api.post(need, as_user=MEMBER_ID, json={"count": 2})
    assert (status, body["error"]["code"]) == (403, "not_promoter")
    assert await api.dump() == before


async def test_asking_after_the_voice_check_is_too_late(api: Api) -> None:
    _, created = await api.post(CREATE, json={})
    await api.h.run_evening()
    before = await api.dump()
    status, body = await api.post(f"{CREATE}/{created['campaign_id']}/need", json={"count": 1})
    assert (status, body["error"]["code"]) == (409, "too_late")
    assert "too late to ask for more players" in body["error"]["message"]
    assert await api.dump() == before


async def test_an_answer_changes_the_status_etag(api: Api) -> None:
    _, created = await api.post(CREATE, json={})
    async with api.client.get(STATUS, headers=api.auth()) as response:
        etag = response.headers["ETag"]
    async with api.client.get(STATUS, headers={**api.auth(), "If-None-Match": etag}) as response:
        assert response.status == 304
    await api.h.engine.rsvp.answer_on_discord(ANA, created["campaign_id"], RsvpAnswer.OUT)
    async with api.client.get(STATUS, headers={**api.auth(), "If-None-Match": etag}) as response:
        assert response.status == 200 and response.headers["ETag"] != etag
        assert (await response.json())["campaign"]["rsvp"] == {"in": 0, "late": 0, "out": 1}


async def test_an_answer_is_news_on_the_event_stream(tmp_path) -> None:
    async with held_api(tmp_path) as api:
        _, created = await api.post(CREATE, json={})
        async with api.client.get(EVENTS, headers=api.auth()) as stream:
            first = await next_event(stream)
            assert first is not None and first["campaign"]["rsvp"] == {"in": 0, "late": 0, "out": 0}
            await api.h.engine.rsvp.answer_on_discord(1, created["campaign_id"], RsvpAnswer.IN)
            answered = await next_event(stream)
            assert answered is not None and answered["campaign"]["rsvp"] == {"in": 1, "late": 0, "out": 0}
