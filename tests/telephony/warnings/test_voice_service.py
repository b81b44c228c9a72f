"""The voice service around the warnings: speaker health by OPTIONS on the speakers channel, the
scheduler (a slot fires once, even with two hub processes on one database), the case's nearest
speaker, live state while a warning plays, /healthz and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.state import HubState
from hub.web.app import build_state, close_state
from storage import voice as store
from storage.db import connect
from telephony.warnings.service import VoiceService
from telephony.warnings.simulator import SimulatedSpeakers
from tests.conftest import test_settings as settings_for
from tests.telephony.warnings.test_warnings_play import NAMES, add_clip, add_speakers, wait_ended

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedSpeakers]:
    async with SimulatedSpeakers(NAMES, rtp_ports=(43000, 43999)) as s:
        yield s


def voice(hub: HubState) -> VoiceService:
    service = hub.services["voice"]
    assert isinstance(service, VoiceService)
    return service


def speakers_channel(hub: HubState) -> dict[str, Any]:
    assert hub.fanout is not None
    return hub.fanout.states.snapshot("speakers")


async def test_health_shows_online_offline_and_busy_on_the_speakers_channel(
    hub_state: HubState, sim: SimulatedSpeakers, login: Any
) -> None:
    speakers = await add_speakers(hub_state, sim)
    sim.behaviour[NAMES[1]] = "offline"
    sim.behaviour[NAMES[2]] = "busy"  # OPTIONS still 200: busy is for calls only
    await voice(hub_state).check_speakers()
    channel = speakers_channel(hub_state)
    states = {int(k): v["state"] for k, v in channel.items()}
    assert states[speakers[0].id] == "online"
    assert states[speakers[1].id] == "offline"
    assert channel[str(speakers[0].id)]["label"] == "在线"
    assert channel[str(speakers[0].id)]["since"] is not None
    # the API shows the same status
    seat = await login("seat1")
    items = {s["id"]: s for s in (await seat.get("/api/speakers")).json()["items"]}
    assert items[speakers[1].id]["status"]["state"] == "offline"
    # and a speaker we are calling is busy while the call is up
    clip_id, _ = await add_clip(hub_state, 3.0)
    r = await seat.post("/api/warnings", json={"clip_id": clip_id, "speaker_ids": [speakers[0].id]})
    wid = r.json()["id"]
    async with asyncio.timeout(10):
        while speakers_channel(hub_state)[str(speakers[0].id)]["state"] != "busy":
            await asyncio.sleep(0.05)
    # the running warning is on the warnings channel for every seat, and leaves it at the end
    assert hub_state.fanout is not None
    running = hub_state.fanout.states.snapshot("warnings")
    assert running[str(wid)]["targets"][0]["speaker_id"] == speakers[0].id
    await wait_ended(seat, wid)
    assert str(wid) not in hub_state.fanout.states.snapshot("warnings")
    assert speakers_channel(hub_state)[str(speakers[0].id)]["state"] == "online"


async def test_a_schedule_slot_fires_once_across_two_hub_processes(
    hub_state: HubState, fresh_dsn: str, shared_data_dir: Any, sim: SimulatedSpeakers, login: Any
) -> None:
    speakers = await add_speakers(hub_state, sim)
    clip_id, _ = await add_clip(hub_state, 0.2)
    seat = await login("seat1")
    r = await seat.post(
        "/api/warning-schedules",
        json={
            "name": "集贸市场门口",
            "clip_id": clip_id,
            "speaker_ids": [speakers[0].id],
            "every_minutes": 15,
            "from_time": "08:00",
            "until_time": "20:00",
            "weekdays": [1, 2, 3, 4, 5],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "周一至周五 08:00–20:00 每 15 分钟"
    # a second hub process on the same database
    other = await build_state(settings_for(shared_data_dir, fresh_dsn))
    try:
        wednesday_0815 = datetime(2026, 12, 2, 8, 15, 20, tzinfo=ZoneInfo("Asia/Shanghai"))
        a, b = await asyncio.gather(
            voice(hub_state).fire_due(wednesday_0815), voice(other).fire_due(wednesday_0815)
        )
        assert len(a) + len(b) == 1  # one slot, one warning
        # the same slot again: nothing; the next slot: once more
        again = await voice(hub_state).fire_due(wednesday_0815 + timedelta(seconds=30))
        assert again == []
        nxt = await voice(other).fire_due(wednesday_0815 + timedelta(minutes=15))
        assert len(nxt) == 1
        saturday = datetime(2026, 12, 5, 8, 15, 5, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert await voice(hub_state).fire_due(saturday) == []
        for wid in [*a, *b, *nxt]:
            w = await wait_ended(seat, wid)
            assert w["schedule_id"] == r.json()["id"]
            assert w["targets"][0]["outcome"] == "delivered"
    finally:
        await close_state(other)


async def test_schedule_checks(hub_state: HubState, sim: SimulatedSpeakers, login: Any) -> None:
    speakers = await add_speakers(hub_state, sim)
    clip_id, _ = await add_clip(hub_state, 0.2)
    seat = await login("seat1")
    base = {"name": "x", "clip_id": clip_id, "speaker_ids": [speakers[0].id], "every_minutes": 5}
    for extra, status in [
        ({"from_time": "20:00", "until_time": "08:00"}, 422),
        ({"from_time": "25:00", "until_time": "26:00"}, 422),
        ({"from_time": "08:00", "until_time": "09:00", "speaker_ids": []}, 422),
        ({"from_time": "08:00", "until_time": "09:00", "clip_id": 9999}, 404),
    ]:
        r = await seat.post("/api/warning-schedules", json={**base, **extra})
        assert r.status_code == status, r.text
        assert r.json()["error"]["message"]
    viewer = await login("bigscreen")
    assert (await viewer.get("/api/warning-schedules")).status_code == 200
    r = await viewer.post(
        "/api/warning-schedules", json={**base, "from_time": "08:00", "until_time": "09:00"}
    )
    assert r.status_code == 403


async def test_a_case_plays_at_its_nearest_speaker(
    hub_state: HubState, sim: SimulatedSpeakers, login: Any
) -> None:
    seat = await login("seat1")
    async with connect(hub_state.pool) as conn:
        case = await conn.fetchrow(
            "SELECT id, lon, lat FROM cases WHERE lon IS NOT NULL ORDER BY id LIMIT 1"
        )
        assert case is not None
        near, _ = await store.upsert_speaker(
            conn,
            store.SpeakerFields(
                name="近处喇叭", uri=sim.uri(NAMES[0]), lon=case["lon"] + 0.0005, lat=case["lat"]
            ),
        )
        await store.upsert_speaker(
            conn,
            store.SpeakerFields(
                name="远处喇叭", uri=sim.uri(NAMES[1]), lon=case["lon"] + 0.005, lat=case["lat"]
            ),
        )
    clip_id, _ = await add_clip(hub_state, 0.2)
    r = await seat.post(f"/api/cases/{case['id']}/warning", json={"clip_id": clip_id})
    assert r.status_code == 202, r.text
    assert [t["speaker_id"] for t in r.json()["targets"]] == [near.id]
    assert 40 < r.json()["distance_m"] < 60
    await wait_ended(seat, r.json()["id"])
    assert sim.counts[NAMES[0]].calls == 1 and sim.counts[NAMES[1]].calls == 0
    log = (await seat.get(f"/api/cases/{case['id']}/warnings")).json()["items"]
    assert [w["id"] for w in log] == [r.json()["id"]]
    assert log[0]["targets"][0]["outcome"] == "delivered"


async def test_healthz_and_metrics_report_telephony(
    hub_state: HubState, client: Any, sim: SimulatedSpeakers, login: Any
) -> None:
    r = await client.get("/healthz")
    host, port = voice(hub_state).agent.local_address
    assert r.json()["checks"]["voice"].startswith(f"udp {host}:{port}")
    speakers = await add_speakers(hub_state, sim)
    clip_id, _ = await add_clip(hub_state, 0.4)
    seat = await login("seat1")
    r = await seat.post("/api/warnings", json={"clip_id": clip_id, "speaker_ids": [speakers[0].id]})
    await wait_ended(seat, r.json()["id"])
    admin = await login("admin")
    text = (await admin.get("/metrics")).text
    assert "cityhub_rtp_packets_sent_total 20" in text
    assert 'cityhub_sip_calls{state="terminated"} 1' in text
    assert 'cityhub_sip_total{what="parse_errors"} 0' in text


async def test_a_speaker_added_over_the_api_is_checked_at_once(
    hub_state: HubState, sim: SimulatedSpeakers, login: Any
) -> None:
    admin = await login("admin")
    r = await admin.post("/api/speakers", json={"name": "新装喇叭", "uri": sim.uri(NAMES[0])})
    assert r.status_code == 201, r.text
    sid = str(r.json()["id"])
    async with asyncio.timeout(5):  # not the 30 s health interval
        while speakers_channel(hub_state).get(sid, {}).get("state") != "online":
            await asyncio.sleep(0.05)
