"""Start time and title on create, and the standing sessions, through the API (real app, real engine)."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.helpers import DAY, MEMBER_ID, XHR, Api, api_client
from tests.support import local

PROMOTIONS = "/api/availability/promotions"
STANDING = f"{PROMOTIONS}/standing"
TUESDAY_RAID = {"weekday": "tue", "start_time": "21:00", "quorum": 2, "title": "Tuesday raid"}


@pytest.fixture
async def api(tmp_path):
    async with api_client(tmp_path) as client:
        await client.h.add_player(1, "Ana")
        await client.h.add_player(2, "Bor")
        yield client


async def test_create_at_a_start_with_a_title_and_read_them_back(api: Api) -> None:
    status, created = await api.post(
        f"{PROMOTIONS}/campaigns", json={"start_time": "22:30", "title": "Raid night"}, headers=XHR
    )
    assert status == 201, created
    assert created["title"] == "Raid night"
    assert created["scheduled_times"] == {
        "reminder": "2026-11-24T22:15:00+01:00",
        "start": "2026-11-24T22:30:00+01:00",
        "voice_check": "2026-11-24T22:30:30+01:00",
    }
    status, body = await api.get(f"{PROMOTIONS}/campaign")
    assert status == 200
    campaign = body["campaign"]
    assert (campaign["title"], campaign["start_time"], campaign["standing_session"]) == ("Raid night", "22:30", None)


async def test_the_preview_takes_a_start_and_a_title(api: Api) -> None:
    status, body = await api.get(f"{PROMOTIONS}/preview", params={"start_time": "23:00", "title": "Late one"})
    assert status == 200
    assert (body["start_time"], body["reminder_time"], body["title"]) == ("23:00", "22:45", "Late one")


async def test_a_standing_session_is_added_listed_and_removed(api: Api) -> None:
    status, added = await api.post(STANDING, json=TUESDAY_RAID)
    assert status == 201, added
    assert added == {
        "id": 1,
        "weekday": "tue",
        "start_time": "21:00",
        "quorum": 2,
        "include_available": False,
        "include_maybe": False,
        "title": "Tuesday raid",
        "created_by": "Promoter",
        "created_at": "2026-11-24T18:00:00+01:00",
        "removed_at": None,
        "next_decision": {
            "session_date": "2026-11-24",
            "decide_at": "2026-11-24T20:30:00+01:00",
            "status": "pending",
            "outcome": None,
            "eligible": None,
            "campaign_id": None,
            "detail": "",
            "decided_at": None,
        },
        "last_decision": None,
    }
    status, listed = await api.get(STANDING)
    assert status == 200 and listed == {"standing": [added]}

    status, removed = await api.call("DELETE", f"{STANDING}/1")
    assert status == 200
    assert removed["removed_at"] == "2026-11-24T18:00:00+01:00" and removed["next_decision"] is None
    assert (await api.get(STANDING))[1] == {"standing": []}
    status, again = await api.call("DELETE", f"{STANDING}/1")
    assert (status, again["error"]["code"]) == (404, "not_found")


async def test_the_campaign_a_standing_session_created_names_it(api: Api) -> None:
    await api.post(STANDING, json=TUESDAY_RAID)
    await api.h.engine.dispatcher.run_until(local(DAY, 20, 31))
    api.h.clock.set(local(DAY, 20, 31))
    status, body = await api.get(f"{PROMOTIONS}/campaign", as_user=MEMBER_ID)  # any linked player may look
    assert status == 200
    campaign = body["campaign"]
    assert campaign["initiator"] == "Promoter" and campaign["title"] == "Tuesday raid"
    assert campaign["standing_session"] == {"id": 1, "weekday": "tue", "start_time": "21:00", "removed": False}
    [listed] = (await api.get(STANDING))[1]["standing"]
    assert listed["last_decision"]["outcome"] == "created"
    assert listed["last_decision"]["campaign_id"] == campaign["id"]
    assert listed["last_decision"]["eligible"] == 2
    assert listed["next_decision"]["session_date"] == "2026-12-01"


async def test_one_session_per_weekday_and_time_even_when_asked_at_once(api: Api) -> None:
    results = await asyncio.gather(*(api.post(STANDING, json=TUESDAY_RAID) for _ in range(10)))
    assert sorted(status for status, _ in results) == [201] + [409] * 9
    assert {body["error"]["code"] for status, body in results if status == 409} == {"standing_exists"}
    async with api.h.engine.db.read() as tx:
        row = await tx.fetchone("SELECT count(*) FROM jobs")
    assert row is not None and row[0] == 1  # one first decision


async def test_a_server_full_of_standing_sessions_refuses_another(api: Api) -> None:
    for n in range(25):
        weekday = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][n % 7]
        status, _ = await api.post(STANDING, json={"weekday": weekday, "start_time": f"{n // 7:02d}:00", "quorum": 1})
        assert status == 201
    before = await api.dump()
    status, body = await api.post(STANDING, json={"weekday": "mon", "start_time": "23:59", "quorum": 1})
    assert (status, body["error"]["code"]) == (409, "standing_limit")
    assert await api.dump() == before


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [("GET", STANDING, {}), ("POST", STANDING, {"json": TUESDAY_RAID}), ("DELETE", f"{STANDING}/1", {})],
)
async def test_standing_sessions_are_for_promoters(api: Api, method: str, path: str, kwargs: dict) -> None:
    await api.post(STANDING, json={**TUESDAY_RAID, "weekday": "wed"})
    before = await api.dump()
    status, body = await api.call(method, path, as_user=MEMBER_ID, **kwargs)
    assert (status, body["error"]["code"]) == (403, "not_promoter")
    assert await api.dump() == before
