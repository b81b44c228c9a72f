"""Ingest against real RTSP on loopback: the camera simulator (gst-rtsp-server, pre-encoded 720p
H.264, 2 s GOP), a silent TCP port and a refusing one. No fakes here."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import av
import pytest

from video.ingest.camera import CameraState, Subscription
from video.ingest.manager import IngestCamera, IngestManager
from video.ingest.rtsp import RtspSource, probe
from video.ingest.source import Reason, SourceError
from video.simulator.control import CameraSimulator, unavailable_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
]

COUNT = 48


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[CameraSimulator]:
    # one_media: every mount shares one pinned media (the simulator's cheap mode, ~5% of a core);
    # with one media per mount some mounts got a tenth of their frames on this 2-core machine.
    async with CameraSimulator(COUNT, clock=False, one_media=True) as simulator:
        yield simulator


@pytest.fixture(scope="module")
async def sim_auth() -> AsyncIterator[CameraSimulator]:
    async with CameraSimulator(2, clock=False, user="admin", password="s3cret") as simulator:
        yield simulator


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def refused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()  # nobody listens there now
    return port


async def until(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds it took for ``predicate`` to hold (TimeoutError after ``timeout``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)
    return loop.time() - start


async def first_keyframe(sub: Subscription, timeout: float) -> bool:
    async with asyncio.timeout(timeout):
        async for packet in sub:
            return packet.keyframe
    return False


def manager(**kw: float) -> IngestManager:
    settings: dict[str, float] = {"probe_interval": 2.0, "probe_timeout": 3.0, "linger": 1.0}
    settings.update(kw)
    return IngestManager(**settings)  # type: ignore[arg-type]


def fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def rtsp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rtsp ")]


async def test_48_cameras_at_once(sim: CameraSimulator) -> None:
    async with manager() as m:
        for n in range(1, COUNT + 1):
            await m.add(IngestCamera(f"c{n}", sim.url(n)))
        subs = [m.subscribe(f"c{n}") for n in range(1, COUNT + 1)]
        keys = await asyncio.gather(*(first_keyframe(s, 30.0) for s in subs))
        assert all(keys)
        assert {s.state for s in m.statuses().values()} == {CameraState.ONLINE}
        await asyncio.sleep(2.0)
        counts = [m.feed(f"c{n}").packets for n in range(1, COUNT + 1)]
        assert min(counts) >= 25, counts  # every camera keeps flowing (25 fps)
        assert len(rtsp_threads()) == COUNT
        assert all(m.feed(f"c{n}").sessions == 1 for n in range(1, COUNT + 1))
    assert rtsp_threads() == []


async def test_watched_camera_back_online_within_10s(sim: CameraSimulator) -> None:
    async with manager(stall_timeout=3.0) as m:
        await m.add(IngestCamera("c5", sim.url(5)))
        sub = m.subscribe("c5")
        assert await first_keyframe(sub, 20.0)
        await sim.stop_mount(5)
        await until(lambda: m.status("c5").state is CameraState.OFFLINE, 15.0)
        await asyncio.sleep(3.0)
        assert m.status("c5").state is CameraState.OFFLINE
        await sim.start_mount(5)
        back = asyncio.get_running_loop().time()
        took = await until(lambda: m.status("c5").state is CameraState.ONLINE, 10.0)
        assert took < 10.0
        assert m.feed("c5").sessions >= 2
        async with asyncio.timeout(10.0):  # the same subscription flows again
            async for packet in sub:
                if packet.arrived > back:
                    assert packet.keyframe  # the new session's packets start at a keyframe
                    break


async def test_unwatched_camera_offline_and_back_by_probe(sim: CameraSimulator) -> None:
    async with manager(probe_interval=5.0) as m:
        await m.add(IngestCamera("c6", sim.url(6)))
        await until(lambda: m.status("c6").state is CameraState.ONLINE, 10.0)
        assert not m.feed("c6").active  # nobody watches: no session, DESCRIBE only
        await sim.stop_mount(6)
        try:
            await until(lambda: m.status("c6").state is CameraState.OFFLINE, 15.0)
            assert m.status("c6").reason is Reason.NOT_FOUND
        finally:
            await sim.start_mount(6)
        await until(lambda: m.status("c6").state is CameraState.ONLINE, 10.0)
        assert not m.feed("c6").active


async def test_silent_and_refusing_cameras_do_not_slow_the_others(
    sim: CameraSimulator, silent_port: int
) -> None:
    async with manager(probe_timeout=2.0) as m:
        await m.add(IngestCamera("silent", f"rtsp://127.0.0.1:{silent_port}/cam"))
        await m.add(IngestCamera("refused", f"rtsp://127.0.0.1:{refused_port()}/cam"))
        silent_sub = m.subscribe("silent")
        refused_sub = m.subscribe("refused")
        for n in (7, 8, 9):
            await m.add(IngestCamera(f"c{n}", sim.url(n)))
        subs = [m.subscribe(f"c{n}") for n in (7, 8, 9)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert all(await asyncio.gather(*(first_keyframe(s, 15.0) for s in subs)))
        assert loop.time() - start < 8.0
        await until(lambda: m.status("refused").state is CameraState.OFFLINE, 5.0)
        assert m.status("refused").reason is Reason.REFUSED
        await until(lambda: m.status("silent").state is CameraState.OFFLINE, 20.0)
        assert m.status("silent").reason is Reason.TIMEOUT
        assert m.status("silent").message == "连接超时"
        assert silent_sub.queue.pop() is None and refused_sub.queue.pop() is None
        loop_start = loop.time()
        await m.remove("silent")  # a camera stuck in its open goes within the open timeout
        assert loop.time() - loop_start < 6.0
    assert rtsp_threads() == []


async def test_probe_reasons(sim: CameraSimulator, silent_port: int) -> None:
    assert (await probe(sim.url(1), 5.0)).online
    assert (await probe(sim.url(1).replace("cam01", "nothing"), 5.0)).reason is Reason.NOT_FOUND
    assert (await probe(f"rtsp://127.0.0.1:{refused_port()}/x", 2.0)).reason is Reason.REFUSED
    silent = await probe(f"rtsp://127.0.0.1:{silent_port}/x", 1.0)
    assert silent.reason is Reason.TIMEOUT and 0.9 < silent.latency < 2.0
    for bad in ("http://127.0.0.1/x", "rtsp:///x", "rtsp://[::1/x", "rtsp://nonexistent.invalid/x"):
        assert (await probe(bad, 2.0)).reason is Reason.BAD_URL, bad


async def test_bad_url_and_bad_credentials(sim: CameraSimulator, sim_auth: CameraSimulator) -> None:
    for bad in ("http://127.0.0.1/x", "rtsp:///x", "rtsp://nonexistent.invalid/x"):
        with pytest.raises(SourceError) as caught:
            await RtspSource(bad).open()
        assert caught.value.reason is Reason.BAD_URL, bad
        assert caught.value.message == "地址无效"
    wrong = sim_auth.url(1).replace("s3cret", "wrong")
    with pytest.raises(SourceError) as caught:
        await RtspSource(wrong).open()
    assert caught.value.reason is Reason.UNAUTHORIZED
    assert caught.value.message == "用户名或密码错误"
    assert "wrong" not in repr(caught.value) and "wrong" not in str(caught.value.details)
    with pytest.raises(SourceError) as caught:
        await RtspSource(sim.url(1).replace("cam01", "nothing")).open()
    assert caught.value.reason is Reason.NOT_FOUND
    assert (await probe(wrong, 5.0)).reason is Reason.UNAUTHORIZED
    assert (await probe(sim_auth.url(1, credentials=False), 5.0)).reason is Reason.UNAUTHORIZED
    assert (await probe(sim_auth.url(1), 5.0)).online  # Basic auth answered
    async with manager() as m:  # credentials kept apart from the URL, as the registry stores them
        good = IngestCamera("a", sim_auth.url(1, credentials=False), "admin", "s3cret")
        await m.add(good)
        await m.add(IngestCamera("b", sim_auth.url(2, credentials=False), "admin", "nope"))
        assert "s3cret" not in repr(good)
        assert await first_keyframe(m.subscribe("a"), 20.0)
        m.subscribe("b")
        await until(lambda: m.status("b").state is CameraState.OFFLINE, 15.0)
        assert m.status("b").reason is Reason.UNAUTHORIZED
        assert m.status("a").state is CameraState.ONLINE
    assert rtsp_threads() == []


async def test_remove_leaves_no_thread_socket_or_file(sim: CameraSimulator) -> None:
    async with manager() as m:
        await m.add(IngestCamera("warm", sim.url(11)))  # the thumbnail pool exists from now on
        thumbs = m.thumbnailer("warm")
        await until(lambda: thumbs.latest() is not None, 20.0)
        await m.remove("warm")
        await asyncio.sleep(0.5)
        threads_before = {t.ident for t in threading.enumerate()}
        fds_before = fds()
        await m.add(IngestCamera("c10", sim.url(10)))
        sub = m.subscribe("c10")
        assert await first_keyframe(sub, 20.0)
        thumbnailer = m.thumbnailer("c10")
        await until(lambda: thumbnailer.latest() is not None, 20.0)
        assert len(rtsp_threads()) == 1 and fds() > fds_before
        await m.remove("c10")
        with pytest.raises(Exception, match="摄像头不存在"):
            m.status("c10")
        assert rtsp_threads() == []
        assert {t.ident for t in threading.enumerate()} == threads_before
        await until(lambda: fds() == fds_before, 3.0)
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()


async def test_new_subscriber_receives_cached_gop(sim: CameraSimulator) -> None:
    async with manager() as m:
        await m.add(IngestCamera("c12", sim.url(12)))
        feed = m.feed("c12")
        first = m.subscribe("c12")
        assert await first_keyframe(first, 20.0)
        await until(lambda: len(feed.gop) >= 10, 5.0)
        cached = feed.gop.packets()
        late = m.subscribe("c12")
        got = [late.queue.pop() for _ in range(len(cached))]
        assert got == list(cached)  # at once, before any new packet arrives
        assert got[0] is not None and got[0].keyframe
        assert feed.sessions == 1


def decode_jpeg(data: bytes) -> av.VideoFrame:
    decoder = av.CodecContext.create("mjpeg", "r")
    assert isinstance(decoder, av.VideoCodecContext)
    frames = decoder.decode(av.Packet(data)) + decoder.decode(None)
    assert len(frames) == 1
    frame = frames[0]
    assert isinstance(frame, av.VideoFrame)
    return frame


async def test_thumbnails_once_per_keyframe(sim: CameraSimulator) -> None:
    async with manager() as m:
        await m.add(IngestCamera("c13", sim.url(13)))
        thumbs = m.thumbnailer("c13")
        await until(lambda: thumbs.decoded >= 3, 20.0)  # 2 s GOP: three keyframes
        for _ in range(50):  # many tiles reading it decode nothing more
            m.thumbnail("c13")
        assert thumbs.decoded <= thumbs.keyframes <= thumbs.decoded + 1
        assert thumbs.failures == 0
        thumb = m.thumbnail("c13")
        assert thumb is not None and thumb.jpeg[:2] == b"\xff\xd8"
        frame = decode_jpeg(thumb.jpeg)
        assert (frame.width, frame.height) == (320, 180) == (thumb.width, thumb.height)
        assert 1_000 < len(thumb.jpeg) < 60_000
        jpeg, captured = await m.snapshot("c13")
        assert jpeg[:2] == b"\xff\xd8" and captured.tzinfo is not None
        full = decode_jpeg(jpeg)
        assert (full.width, full.height) == (1280, 720)
        again, _ = await m.snapshot("c13")
        assert again is jpeg or thumbs.keyframes > 3  # cached per keyframe
