"""Patrol rounds and layouts over the API: a shortened round covers every camera and records it, a
camera down during its page is reported missed, a reload resumes the round, layouts are per seat."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hub.state import HubState
from storage.db import connect

pytestmark = pytest.mark.timeout(60)


async def add_cameras(hub: HubState, n: int) -> list[int]:
    async with connect(hub.pool) as conn:
        rows = await conn.fetch(
            "INSERT INTO cameras (name, main_url) SELECT '测试摄像头' || lpad(i::text, 2, '0'),"
            " 'rtsp://127.0.0.1:1/cam' || i FROM generate_series(1, $1) i RETURNING id",
            n,
        )
    return [r["id"] for r in rows]


async def shorten(hub: HubState, round_id: int, dwell: float) -> None:
    """Make the stored round's pages ``dwell`` seconds long, starting now (a test cannot wait the
    60 s minimum period the API allows)."""
    async with connect(hub.pool) as conn:
        state = await conn.fetchval("SELECT state::text FROM patrol_rounds WHERE id = $1", round_id)
        import orjson

        st = orjson.loads(state)
        st.update(dwell=dwell, started=time.time(), min_visible=0.2, prefetch=0.1)
        await conn.execute(
            "UPDATE patrol_rounds SET state = $2::text::jsonb WHERE id = $1",
            round_id,
            orjson.dumps(st).decode(),
        )


async def test_a_shortened_round_covers_every_camera_and_reports_the_missed(
    hub_state: HubState, login: Any
) -> None:
    cams = await add_cameras(hub_state, 10)
    seat = await login("seat1")
    r = await seat.post("/api/patrol/rounds", json={"tiles": 4, "period_minutes": 1})
    assert r.status_code == 201, r.text
    rnd = r.json()
    assert rnd["pages"] == 3 and rnd["cameras"] == 10 and rnd["cameras_now"] == cams[:4]
    await shorten(hub_state, rnd["id"], 0.6)
    down = cams[5]
    seen_pages: list[list[int]] = []
    async with asyncio.timeout(20):
        while True:
            cur = await seat.get("/api/patrol/rounds/current")
            if cur.status_code == 404:
                break
            body = cur.json()
            if body["cameras_now"] and body["cameras_now"] not in seen_pages:
                seen_pages.append(body["cameras_now"])
            reports = [
                {"camera_id": c, "visible": c != down, "reason": "离线" if c == down else ""}
                for c in body["cameras_now"]
            ]
            rep = await seat.post(
                f"/api/patrol/rounds/{body['id']}/report", json={"reports": reports}
            )
            assert rep.status_code in (200, 404), rep.text
            await asyncio.sleep(0.1)
    assert sorted(c for page in seen_pages for c in page) == cams  # every camera once
    done = (await seat.get(f"/api/patrol/rounds/{rnd['id']}")).json()
    assert done["status"] == "done" and done["shown"] == 9 and done["missed"] == 1
    marks = {m["camera_id"]: m for m in done["marks"]}
    assert len(marks) == 10 and marks[down]["mark"] == "missed" and marks[down]["reason"] == "离线"
    missed = (await seat.get("/api/patrol/missed")).json()["items"]
    assert [(m["camera_id"], m["times"]) for m in missed] == [(down, 1)]


async def test_a_reload_resumes_the_round_and_a_stop_ends_it(
    hub_state: HubState, login: Any
) -> None:
    await add_cameras(hub_state, 6)
    seat = await login("seat1")
    rnd = (await seat.post("/api/patrol/rounds", json={"tiles": 4, "period_minutes": 10})).json()
    again = await seat.get("/api/patrol/rounds/current")  # a reload asks the hub
    assert again.json()["id"] == rnd["id"] and again.json()["page"] == 0
    assert hub_state.fanout is not None
    seat_id = str(seat.user["id"])
    assert hub_state.fanout.states.snapshot("patrol")[seat_id]["id"] == rnd["id"]
    stop = await seat.post(f"/api/patrol/rounds/{rnd['id']}/stop")
    assert stop.status_code == 200 and stop.json()["status"] == "stopped"
    assert (await seat.get("/api/patrol/rounds/current")).status_code == 404
    assert seat_id not in hub_state.fanout.states.snapshot("patrol")
    other = await login("seat2")
    assert (await other.get(f"/api/patrol/rounds/{rnd['id']}")).status_code == 404


async def test_no_cameras_no_round_and_viewers_do_not_patrol(
    hub_state: HubState, login: Any
) -> None:
    seat = await login("seat1")
    r = await seat.post("/api/patrol/rounds", json={"tiles": 4, "period_minutes": 10})
    assert r.status_code == 422 and r.json()["error"]["message"] == "没有可轮巡的摄像头"
    viewer = await login("bigscreen")
    assert (await viewer.post("/api/patrol/rounds", json={})).status_code == 403


async def test_layouts_are_the_seats_own(hub_state: HubState, login: Any) -> None:
    cams = await add_cameras(hub_state, 3)
    a, b = await login("seat1"), await login("seat2")
    r = await a.client.put(
        "/api/wall/layouts/早班",
        headers=a.headers,
        json={"tiles": 4, "cameras": [cams[0], None, cams[2]]},
    )
    assert r.status_code == 200, r.text
    assert (await a.get("/api/wall/layouts")).json()["items"][0]["cameras"] == [
        cams[0],
        None,
        cams[2],
    ]
    assert (await b.get("/api/wall/layouts")).json()["items"] == []
    bad = await a.client.put(
        "/api/wall/layouts/x", headers=a.headers, json={"tiles": 5, "cameras": []}
    )
    assert bad.status_code == 422
    gone = await a.client.delete("/api/wall/layouts/早班", headers=a.headers)
    assert gone.status_code == 204
