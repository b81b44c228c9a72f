"""Playing warnings through the API to simulated speakers (the demo's auto-answer SIP endpoints, over
real UDP on 127.0.0.1): every speaker gets the whole clip, bad speakers are reported and retried a
bounded number of times, an operator can stop a warning, and the log says what happened."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from hub.state import HubState
from storage import voice as store
from storage.db import connect
from telephony.warnings import clips
from telephony.warnings.simulator import SimulatedSpeakers

pytestmark = pytest.mark.timeout(90)

NAMES = [f"t-{n}" for n in range(1, 6)]


def tone(seconds: float, freq: float = 440.0) -> np.ndarray[Any, np.dtype[np.int16]]:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedSpeakers]:
    async with SimulatedSpeakers(NAMES, rtp_ports=(42000, 42999)) as s:
        yield s


async def add_speakers(hub: HubState, sim: SimulatedSpeakers) -> list[store.Speaker]:
    out = []
    async with connect(hub.pool) as conn:
        for name in NAMES:
            sp, _ = await store.upsert_speaker(
                conn, store.SpeakerFields(name=f"测试喇叭{name}", uri=sim.uri(name))
            )
            out.append(sp)
    return out


async def add_clip(hub: HubState, seconds: float = 1.0) -> tuple[int, bytes]:
    prepared = clips.prepare_pcm(tone(seconds))
    g, p = clips.store_clip(hub.attachments, prepared)
    async with connect(hub.pool) as conn:
        clip = await store.insert_clip(
            conn,
            name="测试提示音",
            category="测试",
            duration_ms=prepared.duration_ms,
            g711_sha256=g,
            preview_sha256=p,
            source="upload",
            text=None,
            created_by=None,
        )
    return clip.id, clips.read_pcma(hub.attachments, g)


async def wait_ended(api: Any, wid: int, timeout: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            r = await api.get(f"/api/warnings/{wid}")
            assert r.status_code == 200, r.text
            if r.json()["state"] != "running":
                return r.json()  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)


async def test_a_clip_reaches_every_speaker_whole(
    hub_state: HubState, login: Any, sim: SimulatedSpeakers
) -> None:
    speakers = await add_speakers(hub_state, sim)
    clip_id, alaw = await add_clip(hub_state, 1.0)
    seat = await login("seat1")
    r = await seat.post(
        "/api/warnings",
        json={"clip_id": clip_id, "speaker_ids": [s.id for s in speakers[:3]], "repeat": 2},
    )
    assert r.status_code == 202, r.text
    w = await wait_ended(seat, r.json()["id"])
    assert w["state"] == "done"
    assert [t["outcome"] for t in w["targets"]] == ["delivered"] * 3
    assert all(t["packets"] == 100 for t in w["targets"])  # 2 × 1 s at 50 packets/s
    for name in NAMES[:3]:
        c = sim.counts[name]
        assert c.calls == 1 and c.packets == 100
        assert bytes(c.last_audio) == alaw * 2  # the same A-law, in order, complete
    for name in NAMES[3:]:
        assert sim.counts[name].calls == 0


async def test_busy_and_rejecting_speakers_are_reported_and_retried_a_bounded_number_of_times(
    hub_state: HubState, login: Any, sim: SimulatedSpeakers
) -> None:
    speakers = await add_speakers(hub_state, sim)
    clip_id, _ = await add_clip(hub_state, 0.2)
    voice = hub_state.services["voice"]
    voice.settings = dataclasses.replace(voice.settings, warning_retry_delay=0.2)
    sim.behaviour[NAMES[0]] = "busy"
    sim.behaviour[NAMES[1]] = "reject"
    seat = await login("seat1")
    r = await seat.post(
        "/api/warnings", json={"clip_id": clip_id, "speaker_ids": [s.id for s in speakers[:3]]}
    )
    assert r.status_code == 202, r.text
    w = await wait_ended(seat, r.json()["id"])
    by_name = {t["speaker_name"]: t for t in w["targets"]}
    busy, rejected, fine = (by_name[f"测试喇叭{n}"] for n in NAMES[:3])
    retries = hub_state.settings.warning_retries
    assert (busy["outcome"], busy["status"], busy["attempts"]) == ("busy", 486, retries + 1)
    assert (rejected["outcome"], rejected["status"]) == ("rejected", 603)
    assert rejected["attempts"] == retries + 1
    assert fine["outcome"] == "delivered" and fine["attempts"] == 1
    assert w["state"] == "done"


async def test_an_operator_stops_a_playing_warning(
    hub_state: HubState, login: Any, sim: SimulatedSpeakers
) -> None:
    speakers = await add_speakers(hub_state, sim)
    clip_id, _ = await add_clip(hub_state, 5.0)
    seat = await login("seat1")
    r = await seat.post(
        "/api/warnings", json={"clip_id": clip_id, "speaker_ids": [speakers[0].id], "repeat": 3}
    )
    wid = r.json()["id"]
    async with asyncio.timeout(10):
        while sim.counts[NAMES[0]].packets < 25:
            await asyncio.sleep(0.05)
    r = await seat.post(f"/api/warnings/{wid}/stop")
    assert r.status_code == 200, r.text
    w = r.json()
    assert w["state"] == "stopped"
    assert w["targets"][0]["outcome"] == "stopped"
    await asyncio.sleep(0.3)
    got = sim.counts[NAMES[0]].packets
    assert 25 <= got < 750  # far from the 3 × 5 s it would have been
    await asyncio.sleep(0.3)
    assert sim.counts[NAMES[0]].packets == got  # nothing more after the stop
    again = await seat.post(f"/api/warnings/{wid}/stop")
    assert again.status_code == 409


async def test_who_may_play_and_bad_requests(
    hub_state: HubState, login: Any, sim: SimulatedSpeakers
) -> None:
    speakers = await add_speakers(hub_state, sim)
    clip_id, _ = await add_clip(hub_state, 0.2)
    body = {"clip_id": clip_id, "speaker_ids": [speakers[0].id]}
    viewer = await login("bigscreen")
    assert (await viewer.post("/api/warnings", json=body)).status_code == 403
    seat = await login("seat1")
    for bad, status in [
        ({"clip_id": clip_id}, 400),
        ({"clip_id": 99999, "speaker_ids": [speakers[0].id]}, 404),
        ({"clip_id": clip_id, "speaker_ids": [99999]}, 404),
        ({"clip_id": clip_id, "speaker_ids": [speakers[0].id], "repeat": 11}, 422),
    ]:
        r = await seat.post("/api/warnings", json=bad)
        assert r.status_code in (status, 400, 422), r.text
        assert "message" in r.json()["error"]
    log = await seat.get("/api/warnings")
    assert log.status_code == 200 and log.json()["items"] == []
