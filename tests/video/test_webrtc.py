"""Live tiles: H.264 packets from a real encoded stream go to an aiortc viewer as they are (no
re-encode), and the viewer decodes them. The packets come from an MPEG-TS file encoded here with
libx264 and demuxed with PyAV — the same ``VideoPacket`` values the RTSP ingest produces; the RTSP
path itself is tested with the camera simulator in the ingest tests."""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aioice
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from video.ingest.source import VideoPacket
from video.webrtc import LiveError, LiveViewer, PacketTrack, annexb_extradata, has_parameter_sets

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


def encode_ts(path: Path, frames: int = 100, size: tuple[int, int] = (640, 360)) -> Path:
    with av.open(str(path), "w", format="mpegts") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"g": "25", "bf": "0", "preset": "ultrafast", "tune": "zerolatency"}
        for i in range(frames):
            img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            img[:, (i * 8) % size[0] :][:, :40] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


async def packets_of(path: Path, *, start_mid_gop: bool = False) -> AsyncIterator[VideoPacket]:
    loop = asyncio.get_running_loop()
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        items = [p for p in c.demux(stream) if p.size]
    if start_mid_gop:
        items = items[5:]
    t0 = loop.time()
    for n, p in enumerate(items):
        await asyncio.sleep(max(0.0, t0 + n * 0.04 - loop.time()))
        yield VideoPacket(
            bytes(p), p.pts, p.dts, fractions.Fraction(p.time_base), p.is_keyframe, loop.time()
        )


async def view(track: PacketTrack, want: int) -> list[av.VideoFrame]:
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client.addTransceiver("video", direction="recvonly")
    got: list[av.VideoFrame] = []
    done = asyncio.Event()
    readers: list[asyncio.Task[None]] = []

    @client.on("track")
    def on_track(t) -> None:  # type: ignore[no-untyped-def]
        async def read() -> None:
            while len(got) < want:
                got.append(await t.recv())
            done.set()

        readers.append(asyncio.ensure_future(read()))

    viewer = LiveViewer(track)
    await client.setLocalDescription(await client.createOffer())
    assert client.localDescription is not None
    answer = await viewer.answer(client.localDescription.sdp)
    assert "H264" in answer and "VP8" not in answer  # passthrough, never re-encoded
    await client.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    try:
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        await viewer.close()
        await client.close()
    return got


async def test_a_viewer_decodes_the_cameras_own_h264(tmp_path: Path) -> None:
    ts = encode_ts(tmp_path / "cam.ts")
    track = PacketTrack(packets_of(ts))
    frames = await view(track, 20)
    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)  # advancing frames
    assert track.sent >= 20


async def test_a_viewer_joining_mid_gop_starts_at_the_next_keyframe(tmp_path: Path) -> None:
    ts = encode_ts(tmp_path / "cam.ts")
    track = PacketTrack(packets_of(ts, start_mid_gop=True))
    frames = await view(track, 5)
    assert len(frames) == 5
    assert track.skipped == 20  # 5..24 skipped: frame 25 is the next keyframe


def test_avcc_extradata_becomes_annex_b() -> None:
    sps, pps = b"\x67\x42\x00\x1f\xaa", b"\x68\xce\x38\x80"
    avcc = bytes([1, 0x42, 0, 0x1F, 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps
    avcc += bytes([1]) + len(pps).to_bytes(2, "big") + pps
    annexb = annexb_extradata(avcc)
    assert annexb == b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
    assert has_parameter_sets(annexb) and not has_parameter_sets(b"\x00\x00\x01\x65abc")


async def test_an_offer_without_video_is_refused() -> None:
    async def nothing() -> AsyncIterator[VideoPacket]:
        return
        yield  # pragma: no cover

    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client.addTransceiver("audio", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    assert client.localDescription is not None
    viewer = LiveViewer(PacketTrack(nothing()))
    with pytest.raises(LiveError):
        await viewer.answer(client.localDescription.sdp)
    assert viewer.closed.is_set()
    await client.close()
