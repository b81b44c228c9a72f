"""The video service end to end with real RTSP cameras (the simulator on loopback): cameras added
over the API are ingested and shown online on the cameras channel; thumbnails are JPEGs with their
capture time and an ETag; a live tile sends H.264 an aiortc viewer decodes, and a second viewer of
the same camera shares its one RTSP session; a snapshot opens a case with the picture attached."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioice
import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from hub.state import HubState
from video.service import VideoService
from video.simulator.control import CameraSimulator

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


@pytest.fixture
async def sim() -> AsyncIterator[CameraSimulator]:
    async with CameraSimulator(3, clock=False, seconds=4.0) as s:
        yield s


def service(hub: HubState) -> VideoService:
    v = hub.services["video"]
    assert isinstance(v, VideoService)
    return v


async def add_cameras(admin: Any, sim: CameraSimulator, n: int) -> list[int]:
    ids = []
    for i in range(1, n + 1):
        r = await admin.post(
            "/api/cameras",
            json={
                "name": f"测试路口{i}",
                "url": sim.url(i),
                "location": {"lon": 103.79, "lat": 25.50},
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def wait_state(hub: HubState, camera_id: int, state: str, timeout: float = 20) -> None:
    assert hub.fanout is not None
    async with asyncio.timeout(timeout):
        while hub.fanout.states.snapshot("cameras").get(str(camera_id), {}).get("state") != state:
            await asyncio.sleep(0.1)


async def thumbnail(api: Any, camera_id: int, timeout: float = 20) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            r = await api.get(f"/api/cameras/{camera_id}/thumbnail")
            if r.status_code == 200:
                return r
            assert r.status_code == 409, r.text  # no picture yet
            await asyncio.sleep(0.2)


async def test_cameras_are_ingested_and_show_thumbnails(
    hub_state: HubState, login: Any, sim: CameraSimulator
) -> None:
    admin = await login("admin")
    ids = await add_cameras(admin, sim, 3)
    for cid in ids:
        await wait_state(hub_state, cid, "online")
    seat = await login("seat1")
    items = {c["id"]: c for c in (await seat.get("/api/cameras")).json()["items"]}
    assert {items[c]["status"]["state"] for c in ids} == {"online"}
    r = await thumbnail(seat, ids[0])
    assert r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(r.content)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (320, 180)
    assert r.headers["x-captured-at"]
    again = await seat.client.get(
        f"/api/cameras/{ids[0]}/thumbnail",
        headers={**seat.headers, "If-None-Match": r.headers["etag"]},
    )
    assert again.status_code in (200, 304)  # 304 unless a new keyframe came in between


async def test_live_tiles_share_one_rtsp_session(
    hub_state: HubState, login: Any, sim: CameraSimulator
) -> None:
    admin = await login("admin")
    (cid,) = await add_cameras(admin, sim, 1)
    await wait_state(hub_state, cid, "online")
    seat = await login("seat1")
    viewers = [await open_viewer(seat, cid) for _ in range(2)]
    try:
        for _pc, frames, _ in viewers:
            async with asyncio.timeout(30):
                while len(frames) < 10:
                    await asyncio.sleep(0.1)
            assert {(f.width, f.height) for f in frames} == {(1280, 720)}
        feed = service(hub_state).manager.feed(str(cid))
        assert feed.sessions == 1  # two viewers, one RTSP session
    finally:
        for pc, _, vid in viewers:
            r = await seat.post(f"/api/live/{vid}/stop")
            assert r.status_code == 200
            await pc.close()
    assert service(hub_state).viewers == {}


async def open_viewer(api: Any, cid: int) -> tuple[RTCPeerConnection, list[av.VideoFrame], str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    frames: list[av.VideoFrame] = []
    readers: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            while True:
                frames.append(await track.recv())

        readers.append(asyncio.ensure_future(read()))

    await pc.setLocalDescription(await pc.createOffer())
    assert pc.localDescription is not None
    r = await api.post(f"/api/cameras/{cid}/live", json={"sdp": pc.localDescription.sdp})
    assert r.status_code == 200, r.text
    assert "H264" in r.json()["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))
    return pc, frames, r.json()["viewer_id"]


async def test_a_snapshot_opens_a_case_with_the_picture(
    hub_state: HubState, login: Any, sim: CameraSimulator
) -> None:
    admin = await login("admin")
    (cid,) = await add_cameras(admin, sim, 1)
    await wait_state(hub_state, cid, "online")
    seat = await login("seat1")
    await thumbnail(seat, cid)  # a keyframe has arrived
    cats = (await seat.get("/api/categories")).json()["items"]
    cat = cats[0]
    r = await seat.post(
        f"/api/cameras/{cid}/snapshot", json={"category_id": cat["id"], "description": "占道经营"}
    )
    assert r.status_code == 201, r.text
    out = r.json()
    case = (await seat.get(f"/api/cases/{out['case_id']}")).json()
    assert case["source"] == "video" and case["description"] == "占道经营"
    att = await seat.get(out["attachment"]["url"])
    assert att.status_code == 200 and att.content[:2] == b"\xff\xd8"
    assert hashlib.sha256(att.content).hexdigest() == out["attachment"]["sha256"]
    with av.open(io.BytesIO(att.content)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (1280, 720)  # full size, not the thumbnail
    dispatcher = await login("dispatch1")
    refused = await dispatcher.post(f"/api/cameras/{cid}/snapshot", json={"category_id": cat["id"]})
    assert refused.status_code == 403  # a dispatcher does not report cases


async def test_a_snapshot_with_a_clip_goes_onto_an_existing_case(
    hub_state: HubState, login: Any, sim: CameraSimulator
) -> None:
    """截图加入已有案件: no new case; the picture and the last seconds as MP4 (copied packets:
    1280x720 H.264 frames spanning the seconds asked) join the case as 补充证据, with the camera
    and the capture time; a dispatcher may add evidence too, but not open a case."""
    admin = await login("admin")
    (cid,) = await add_cameras(admin, sim, 1)
    await wait_state(hub_state, cid, "online")
    seat = await login("seat1")
    await thumbnail(seat, cid)
    cat = (await seat.get("/api/categories")).json()["items"][0]
    first = await seat.post(f"/api/cameras/{cid}/snapshot", json={"category_id": cat["id"]})
    assert first.status_code == 201, first.text
    case_id = first.json()["case_id"]
    before = (await seat.get(f"/api/cases/{case_id}")).json()
    await asyncio.sleep(4.5)  # the feed has kept more than 3 s of packets by now
    r = await seat.post(
        f"/api/cameras/{cid}/snapshot",
        json={"case_id": case_id, "clip_seconds": 3, "description": "占道经营仍在继续"},
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["case_id"], out["case_created"]) == (case_id, False)
    after = (await seat.get(f"/api/cases/{case_id}")).json()
    assert after["state"] == before["state"] and after["version"] == before["version"] + 1
    new = {a["id"]: a for a in after["attachments"]}
    assert len(new) == len(before["attachments"]) + 2
    picture, clip = new[out["attachment"]["id"]], new[out["clip"]["id"]]
    assert picture["kind"] == "snapshot" and clip["kind"] == "clip"
    assert clip["media_type"] == "video/mp4"
    assert picture["camera_id"] == clip["camera_id"] == cid
    assert picture["captured_at"] == out["captured_at"]
    event = after["timeline"][-1]
    assert event["action"] == "add_evidence" and event["note"] == "占道经营仍在继续"
    data = (await seat.get(clip["url"])).content
    assert hashlib.sha256(data).hexdigest() == clip["sha256"]
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(video=0))
        assert (stream.codec_context.name, frames[0].width, frames[0].height) == ("h264", 1280, 720)
        assert frames[0].key_frame
        times = [float(f.time) for f in frames if f.time is not None]
        assert times == sorted(times) and times[-1] - times[0] >= 2.9
    dispatcher = await login("dispatch1")
    more = await dispatcher.post(f"/api/cameras/{cid}/snapshot", json={"case_id": case_id})
    assert more.status_code == 201, more.text
    assert more.json()["case_created"] is False and more.json()["clip"] is None
    refused = await dispatcher.post(f"/api/cameras/{cid}/snapshot", json={"category_id": cat["id"]})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_forbidden"


async def test_snapshot_bad_requests_store_nothing(
    hub_state: HubState, login: Any, sim: CameraSimulator
) -> None:
    admin = await login("admin")
    (cid,) = await add_cameras(admin, sim, 1)
    await wait_state(hub_state, cid, "online")
    seat = await login("seat1")
    await thumbnail(seat, cid)
    cat = (await seat.get("/api/categories")).json()["items"][0]

    async def attachments() -> int:
        async with hub_state.pool.acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM attachments")
            assert isinstance(n, int)
            return n

    stored = await attachments()
    url = f"/api/cameras/{cid}/snapshot"
    both = await seat.post(url, json={"category_id": cat["id"], "case_id": 1})
    neither = await seat.post(url, json={})
    assert both.status_code == neither.status_code == 422
    assert both.json()["error"]["code"] == neither.json()["error"]["code"] == "category_or_case"
    too_long = await seat.post(url, json={"category_id": cat["id"], "clip_seconds": 30})
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "clip_too_long"
    assert "10" in too_long.json()["error"]["message"]  # the longest clip this hub keeps
    missing = await seat.post(url, json={"case_id": 999_999})
    assert missing.status_code == 404
    gone = await seat.post("/api/cameras/999999/snapshot", json={"category_id": cat["id"]})
    assert gone.status_code == 404
    assert await attachments() == stored
