"""The MSE live fallback end to end: ``GET /api/cameras/{id}/live.mp4`` from a real HTTP server
(uvicorn on loopback, serving the test hub's app: the in-process ASGI transport would buffer the
endless response) with a real RTSP camera (the simulator). The stream is read with httpx for a few
seconds and decoded with PyAV; the per-seat live limit counts MSE and WebRTC viewers together; a
viewer role may watch, nobody signed out may; a client that goes away, or a stopped viewer, leaves
no subscription behind."""

from __future__ import annotations

import asyncio
import io
import itertools
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioice
import av
import httpx
import pytest
import uvicorn
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from hub.state import HubState
from hub.web.app import build_state, close_state, create_app
from tests import conftest
from video.service import VideoService
from video.simulator.control import CameraSimulator

pytestmark = pytest.mark.timeout(120)

LIMIT = 2  # live tiles per seat in these tests
READ_SECONDS = 3.0


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


@pytest.fixture
async def sim() -> AsyncIterator[CameraSimulator]:
    async with CameraSimulator(1, clock=False, seconds=4.0) as s:
        yield s


@pytest.fixture
async def hub(fresh_dsn: str, shared_data_dir: Path) -> AsyncIterator[HubState]:
    state = await build_state(
        conftest.test_settings(shared_data_dir, fresh_dsn, video_live_per_seat=LIMIT)
    )
    try:
        yield state
    finally:
        await close_state(state)


@pytest.fixture
async def base_url(hub: HubState) -> AsyncIterator[str]:
    """The hub's app behind uvicorn on a loopback port."""
    app = create_app(hub.settings)
    app.state.hub = hub
    sock = socket.socket()
    # Accepted sockets inherit a fixed send buffer (not the kernel's autotuned 4 MB), so a client
    # that stops reading blocks the hub's writes within a second, as on a congested link.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", ws="none", access_log=False)
    )
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(20):
            await task
        sock.close()


class Client:
    """A signed-in user of the uvicorn-served hub (bearer token)."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.client = http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.headers, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self.headers, **kw)

    def stream(self, url: str) -> Any:
        return self.client.stream("GET", url, headers=self.headers)


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as c:
        yield c


@pytest.fixture
def login(http: httpx.AsyncClient) -> Any:
    async def _login(username: str) -> Client:
        from hub.demo import DEMO_USERS

        r = await http.post(
            "/api/auth/login",
            json={"username": username, "password": DEMO_USERS[username][1], "token": True},
        )
        assert r.status_code == 200, r.text
        return Client(http, r.json()["token"])

    return _login


# -- helpers (as in test_video_service.py) ------------------------------------------------------


def service(hub: HubState) -> VideoService:
    v = hub.services["video"]
    assert isinstance(v, VideoService)
    return v


async def wait_state(hub: HubState, camera_id: int, state: str, timeout: float = 20) -> None:
    assert hub.fanout is not None
    async with asyncio.timeout(timeout):
        while hub.fanout.states.snapshot("cameras").get(str(camera_id), {}).get("state") != state:
            await asyncio.sleep(0.1)


async def open_viewer(api: Client, cid: int) -> tuple[RTCPeerConnection, str]:
    """A WebRTC live viewer (aiortc) of camera ``cid``."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    assert pc.localDescription is not None
    r = await api.post(f"/api/cameras/{cid}/live", json={"sdp": pc.localDescription.sdp})
    assert r.status_code == 200, r.text
    await pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))
    return pc, r.json()["viewer_id"]


async def camera(hub: HubState, login: Any, sim: CameraSimulator) -> int:
    admin = await login("admin")
    r = await admin.post(
        "/api/cameras",
        json={"name": "测试路口1", "url": sim.url(1), "location": {"lon": 103.79, "lat": 25.50}},
    )
    assert r.status_code == 201, r.text
    cid: int = r.json()["id"]
    await wait_state(hub, cid, "online")
    return cid


async def read_for(response: httpx.Response, seconds: float) -> bytes:
    """The response's bytes for ``seconds`` (the stream does not end by itself)."""
    chunks: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with pytest.raises(TimeoutError):  # still streaming when we stop reading
        async with asyncio.timeout(seconds):
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
    assert loop.time() >= deadline - 0.1
    return b"".join(chunks)


def decode(data: bytes) -> list[av.VideoFrame]:
    frames: list[av.VideoFrame] = []
    with av.open(io.BytesIO(data), "r") as c:
        try:
            for frame in c.decode(video=0):
                frames.append(frame)
        except av.error.InvalidDataError:  # the last fragment may be cut off mid-read
            pass
    return frames


async def wait_for(check: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def test_the_stream_plays_and_is_released_when_the_client_goes(
    hub: HubState, login: Any, sim: CameraSimulator
) -> None:
    cid = await camera(hub, login, sim)
    seat = await login("seat1")
    feed = service(hub).manager.feed(str(cid))
    before = feed.subscribers
    async with seat.stream(f"/api/cameras/{cid}/live.mp4") as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "video/mp4"
        assert r.headers["x-codec"] == "avc1.42c01f"  # the simulator's constrained baseline 3.1
        assert r.headers["cache-control"] == "no-store"
        data = await read_for(r, READ_SECONDS)
        assert feed.subscribers == before + 1 and len(service(hub).viewers) == 1
    assert data[4:8] == b"ftyp"
    frames = decode(data)
    # The cached GOP (a keyframe first) then live frames at 25 fps for the time we read.
    assert len(frames) >= 25 * (READ_SECONDS - 1)
    assert {(f.width, f.height) for f in frames} == {(1280, 720)}
    pts = [f.pts or 0 for f in frames]
    assert frames[0].pts == 0 and all(b > a for a, b in itertools.pairwise(pts))
    assert frames[-1].time.real >= READ_SECONDS - 1  # the picture advanced
    # The client went away: the viewer and its subscription are gone.
    await wait_for(lambda: feed.subscribers == before and not service(hub).viewers)
    assert feed.sessions == 1  # one RTSP session throughout


async def test_the_seat_limit_counts_mse_and_webrtc_together(
    hub: HubState, login: Any, sim: CameraSimulator
) -> None:
    cid = await camera(hub, login, sim)
    seat = await login("seat1")
    url = f"/api/cameras/{cid}/live.mp4"
    pcs: list[RTCPeerConnection] = []
    async with seat.stream(url) as first:
        assert first.status_code == 200
        pc, _vid = await open_viewer(seat, cid)  # WebRTC: the seat's second live tile
        pcs.append(pc)
        try:
            async with seat.stream(url) as third:
                assert third.status_code == 409
                body = await third.aread()
            refused = httpx.Response(409, content=body).json()["error"]
            assert refused["code"] == "too_many_live"
            assert refused["message"] == f"每个坐席最多同时观看 {LIMIT} 路实时视频，请先关闭一路"
            offer = await seat.post(f"/api/cameras/{cid}/live", json={"sdp": "v=0\r\n" * 4})
            assert offer.status_code == 409  # WebRTC is refused too, before the offer is read
            other = await login("seat2")  # the limit is per seat
            async with other.stream(url) as theirs:
                assert theirs.status_code == 200
                assert len(await read_for(theirs, 1.0)) > 1000
        finally:
            for p in pcs:
                await p.close()
    await wait_for(lambda: len(service(hub).viewers) <= 1)  # the WebRTC viewer may linger


async def test_a_viewer_may_watch_and_a_stopped_viewer_ends_the_stream(
    hub: HubState, login: Any, sim: CameraSimulator, http: httpx.AsyncClient
) -> None:
    cid = await camera(hub, login, sim)
    url = f"/api/cameras/{cid}/live.mp4"
    assert (await http.get(url)).status_code == 401
    screen = await login("bigscreen")  # the viewer role (the big screen)
    feed = service(hub).manager.feed(str(cid))
    before = feed.subscribers
    async with screen.stream(url) as r:
        assert r.status_code == 200
        viewer_id = r.headers["x-viewer-id"]
        received = 0
        async with asyncio.timeout(20):
            chunks = r.aiter_raw()
            while received < 100_000:
                received += len(await anext(chunks))
            stop = await screen.post(f"/api/live/{viewer_id}/stop")
            assert stop.status_code == 200
            async for _ in chunks:  # the hub ends the response
                pass
    assert not service(hub).viewers and feed.subscribers == before
    missing = await screen.get("/api/cameras/999999/live.mp4")
    assert missing.status_code == 404


async def test_a_client_that_stops_reading_holds_no_backlog(
    hub: HubState, login: Any, sim: CameraSimulator, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that reads nothing: the hub stops writing once the socket is full (its writes
    await the socket), the subscription's bounded queue drops to the next keyframe instead of
    growing, and when the client goes the viewer is released although its writer was blocked."""
    import video.service

    monkeypatch.setattr(video.service, "VIEWER_QUEUE", 60)  # 2.4 s: overflows within the test
    cid = await camera(hub, login, sim)
    seat = await login("seat1")
    feed = service(hub).manager.feed(str(cid))
    before = feed.subscribers
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(
        sock, ("127.0.0.1", int(base_url.rsplit(":", 1)[1]))
    )
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    try:
        writer.write(
            f"GET /api/cameras/{cid}/live.mp4 HTTP/1.1\r\nHost: hub\r\n"
            f"Authorization: {seat.headers['Authorization']}\r\n\r\n".encode()
        )
        async with asyncio.timeout(20):
            status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        await wait_for(lambda: bool(service(hub).viewers))
        (viewer,) = (v[2] for v in service(hub).viewers.values())
        assert isinstance(viewer, video.service.Mp4Viewer)
        await asyncio.sleep(4)  # the socket's buffers fill
        sent, packets = viewer.sent, feed.packets
        await asyncio.sleep(4)
        assert feed.packets - packets >= 80  # the camera went on at 25 fps ...
        assert viewer.sent - sent < 100_000  # ... but nothing more was written to this client
        sub = viewer.subscription
        assert len(sub.queue) <= 60 and sub.dropped > 0  # dropped, not queued
    finally:
        writer.close()
    await wait_for(lambda: feed.subscribers == before and not service(hub).viewers)
