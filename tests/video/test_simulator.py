"""The camera simulator against a real PyAV RTSP client on 127.0.0.1: 48 looping cameras and a
live clock, H.264 720p with a 2 s GOP, timestamps that run on across the clip's loop point, basic
auth, a camera that goes away and comes back, and a shutdown that leaves no process behind."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import pytest
import pytest_asyncio

from video.simulator import timecode
from video.simulator.clips import make_clip
from video.simulator.control import CameraSimulator, SimulatorError, unavailable_reason

UNAVAILABLE = unavailable_reason()
if UNAVAILABLE and not os.environ.get("CI"):
    pytest.skip(f"camera simulator cannot run: {UNAVAILABLE}", allow_module_level=True)

CLIP_SECONDS = 4.0  # a short clip, so a few seconds of reading cross its loop point
FRAME = Fraction(1, 25)
OPTIONS = {"rtsp_transport": "tcp", "timeout": "5000000"}  # socket timeout, microseconds


@dataclass
class Reading:
    codec: str = ""
    width: int = 0
    height: int = 0
    pts: list[int] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)
    time_base: Fraction = Fraction(1, 90000)
    error: BaseException | None = None
    ended: float = 0.0


def read(url: str, seconds: float, stop: threading.Event | None = None) -> Reading:
    """Demux (no decode) ``url`` for ``seconds`` after it opens, or until it ends or fails."""
    reading = Reading()
    try:
        with av.open(url, options=OPTIONS, timeout=(8.0, 5.0)) as container:
            stream = container.streams.video[0]
            reading.codec = stream.codec_context.name
            reading.width, reading.height = stream.width, stream.height
            assert stream.time_base is not None
            reading.time_base = stream.time_base
            deadline = time.monotonic() + seconds
            for packet in container.demux(stream):
                if packet.pts is not None:
                    reading.pts.append(packet.pts)
                    if packet.is_keyframe:
                        reading.keyframes.append(packet.pts)
                if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                    break
    except av.error.FFmpegError as exc:
        reading.error = exc
    reading.ended = time.monotonic()
    return reading


def steady_steps(reading: Reading) -> set[int]:
    """The pts steps after a media's start-up burst (its cached GOP, 1 ms apart: at most one GOP
    of short steps at the very start)."""
    step = round(FRAME / reading.time_base)
    diffs = [b - a for a, b in itertools.pairwise(reading.pts)]
    burst = [i for i, d in enumerate(diffs) if d < step]
    assert not burst or burst[-1] == len(burst) - 1 < 50, burst  # only at the start
    return set(diffs[len(burst) :])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim(cache_dir: Path) -> AsyncIterator[CameraSimulator]:
    async with CameraSimulator(48, seconds=CLIP_SECONDS, cache_dir=cache_dir) as simulator:
        yield simulator


def test_clip_is_720p_h264_with_a_2s_gop_and_cached(tmp_path: Path) -> None:
    started = time.monotonic()
    path = make_clip(tmp_path, seconds=3.0, text="CAM 07")
    assert time.monotonic() - started < 20
    assert make_clip(tmp_path, seconds=3.0, text="CAM 07") == path  # cached: same file
    mtime = path.stat().st_mtime_ns
    assert make_clip(tmp_path, seconds=3.0, text="CAM 07").stat().st_mtime_ns == mtime
    assert make_clip(tmp_path, seconds=3.0, text="CAM 08") != path
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 1280, 720)
        flags = [p.is_keyframe for p in container.demux(stream) if p.size]
    assert len(flags) == 75
    assert [i for i, key in enumerate(flags) if key] == [0, 50]


async def test_three_cameras_stream_h264_720p_gop_2s_across_the_loop(sim: CameraSimulator) -> None:
    assert sim.mounts == [f"/cam{n:02d}" for n in range(1, 49)] + ["/clock"]
    urls = [sim.url(1), sim.url(24), sim.url(48)]

    async def late_second_client() -> Reading:
        await asyncio.sleep(2.0)  # joins /cam01's shared media while the first client plays
        return await asyncio.to_thread(read, urls[0], 4.5)

    *readings, second = await asyncio.gather(
        *(asyncio.to_thread(read, url, 6.0) for url in urls), late_second_client()
    )
    assert second.error is None, second.error
    assert len(second.pts) > 100 and second.keyframes
    assert steady_steps(second) == {round(FRAME / second.time_base)}
    for url, reading in zip(urls, readings, strict=True):
        assert reading.error is None, (url, reading.error)
        assert (reading.codec, reading.width, reading.height) == ("h264", 1280, 720)
        # More than one clip's worth of frames: the reading crossed the loop point at least once.
        assert len(reading.pts) > CLIP_SECONDS * 25 + 10, (url, len(reading.pts))
        step = round(FRAME / reading.time_base)
        assert reading.pts == sorted(set(reading.pts)), url  # strictly increasing
        # Every frame 40 ms after the one before (loop point included) once the media's start-up
        # burst (the cached GOP, 1 ms apart) is out.
        assert steady_steps(reading) == {step}, url
        gops = {b - a for a, b in itertools.pairwise(reading.keyframes)}
        assert len(reading.keyframes) >= 3
        assert gops == {50 * step}, (url, gops)  # a keyframe every 2 s, loop included


async def test_clock_is_live_720p_h264(sim: CameraSimulator) -> None:
    reading = await asyncio.to_thread(read, sim.clock_url, 2.5)
    assert reading.error is None, reading.error
    assert (reading.codec, reading.width, reading.height) == ("h264", 1280, 720)
    assert len(reading.pts) > 40
    assert reading.pts == sorted(set(reading.pts))


async def test_a_stopped_camera_drops_its_clients_and_refuses_new_ones(
    sim: CameraSimulator,
) -> None:
    stop = threading.Event()
    watcher = asyncio.ensure_future(asyncio.to_thread(read, sim.url(5), 30.0, stop))
    try:
        await asyncio.sleep(4.0)  # opened and streaming
        assert not watcher.done()
        stopped_at = time.monotonic()
        assert await sim.stop_mount(5) == 1
        reading = await asyncio.wait_for(asyncio.shield(watcher), 10.0)
        assert reading.ended - stopped_at < 5.0
        assert len(reading.pts) > 10
        refused = await asyncio.to_thread(read, sim.url(5), 1.0)
        assert isinstance(refused.error, av.error.HTTPNotFoundError), refused.error
        assert not refused.pts
        other = await asyncio.to_thread(read, sim.url(6), 1.0)  # the others go on
        assert other.error is None and other.pts
        await sim.start_mount(5)
        again = await asyncio.to_thread(read, sim.url(5), 2.0)
        assert again.error is None, again.error
        assert len(again.pts) > 30
        assert again.keyframes and again.pts == sorted(set(again.pts))
    finally:
        stop.set()
        await watcher


async def test_basic_auth_refuses_wrong_credentials(cache_dir: Path) -> None:
    async with CameraSimulator(
        2, clock=False, user="ops", password="s3cr:et@", seconds=CLIP_SECONDS, cache_dir=cache_dir
    ) as sim:
        good = sim.url(1)
        assert "s3cr%3Aet%40" in good
        bad = good.replace("s3cr%3Aet%40", "wrong")
        for url in (bad, sim.url(1, credentials=False)):
            refused = await asyncio.to_thread(read, url, 1.0)
            assert isinstance(refused.error, av.error.HTTPUnauthorizedError), refused.error
        reading = await asyncio.to_thread(read, good, 1.0)
        assert reading.error is None, reading.error
        assert reading.codec == "h264" and reading.pts


async def test_shutdown_leaves_no_process(cache_dir: Path) -> None:
    sim = CameraSimulator(3, seconds=CLIP_SECONDS, cache_dir=cache_dir)
    async with sim:
        proc = sim._proc
        assert proc is not None
        url = sim.url(2)
        reading = await asyncio.to_thread(read, url, 0.5)
        assert reading.error is None
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    with pytest.raises(SimulatorError):
        sim.port  # noqa: B018
    refused = await asyncio.to_thread(read, url, 0.5)
    assert isinstance(refused.error, av.error.ConnectionRefusedError), refused.error


async def test_one_media_mode_serves_every_mount_from_one_media(cache_dir: Path) -> None:
    """``one_media``: all mounts share one media (the low-CPU mode); concurrent first opens all
    succeed, and a stopped mount still drops only its own clients."""
    async with CameraSimulator(
        12, clock=False, one_media=True, seconds=CLIP_SECONDS, cache_dir=cache_dir
    ) as sim:
        first = await asyncio.gather(
            *(asyncio.to_thread(read, sim.url(n), 1.0) for n in range(1, 13))
        )
        for reading in first:
            assert reading.error is None, reading.error
            assert reading.codec == "h264" and len(reading.pts) > 10
        stop = threading.Event()
        gone = asyncio.ensure_future(asyncio.to_thread(read, sim.url(3), 30.0, stop))
        stays = asyncio.ensure_future(asyncio.to_thread(read, sim.url(4), 30.0, stop))
        try:
            await asyncio.sleep(4.0)
            stopped_at = time.monotonic()
            assert await sim.stop_mount(3) == 1
            reading = await asyncio.wait_for(asyncio.shield(gone), 10.0)
            assert reading.ended - stopped_at < 5.0 and reading.pts
            assert not stays.done()
            refused = await asyncio.to_thread(read, sim.url(3), 1.0)
            assert isinstance(refused.error, av.error.HTTPNotFoundError), refused.error
            await sim.start_mount(3)
            again = await asyncio.to_thread(read, sim.url(3), 1.0)
            assert again.error is None and again.pts, again.error
        finally:
            stop.set()
            await gone
            kept = await stays
        assert kept.error is None
        assert steady_steps(kept) == {round(FRAME / kept.time_base)}


def read_timecodes(url: str, frames: int) -> list[tuple[int | None, float]]:
    """Decode ``frames`` frames of ``url``: each one's time code (or None) and when it was decoded."""
    out: list[tuple[int | None, float]] = []
    with av.open(url, options=OPTIONS, timeout=(8.0, 5.0)) as container:
        deadline = time.monotonic() + 20.0
        for frame in container.decode(video=0):
            plane = frame.planes[0]
            out.append(
                (timecode.decode(memoryview(plane), plane.line_size, frame.height), time.time())
            )
            if len(out) >= frames or time.monotonic() > deadline:
                break
    return out


async def test_clock_frames_carry_a_machine_readable_time_code_of_now(
    sim: CameraSimulator,
) -> None:
    """Every decoded ``/clock`` frame has the UTC millisecond of the day in its stripe, within 2 s
    of the decoder's own clock and 40 ms (one frame) after the one before; a camera's frame has
    no stripe, and reads as no time at all rather than a wrong one."""
    readings = await asyncio.to_thread(read_timecodes, sim.clock_url, 50)
    assert len(readings) == 50
    codes = [code for code, _ in readings]
    assert None not in codes, codes
    for code, decoded_at in readings:
        assert code is not None
        assert abs(timecode.age_ms(code, decoded_at)) < 2000, (code, decoded_at)
    steps = [b - a for a, b in itertools.pairwise(c for c in codes if c is not None)]
    assert all(0 < s < 200 for s in steps), steps  # advancing, one frame (~40 ms) at a time
    assert 30 <= sorted(steps)[len(steps) // 2] <= 50, steps
    camera = await asyncio.to_thread(read_timecodes, sim.url(7), 10)
    assert len(camera) == 10 and {code for code, _ in camera} == {None}


def test_time_code_stripe_round_trip_and_checks() -> None:
    """A stripe row copied into a luma plane reads back; a flipped bit (parity), a missing
    sentinel or a picture too small read as None; the age wraps at midnight."""
    width, height = 1280, 720
    for ms in (0, 1, 12_345_678, timecode.DAY_MS - 1):
        plane = bytearray(b"\x60" * width * height)
        row = timecode.stripe_row(ms, width)
        for y in range(timecode.TOP, timecode.TOP + timecode.BLOCK):
            plane[y * width : (y + 1) * width] = row
        assert timecode.decode(plane, width, height) == ms
        flipped = bytearray(plane)
        x = (len(timecode.START) + 5) * timecode.BLOCK  # data bit 5
        for y in range(timecode.TOP, timecode.TOP + timecode.BLOCK):
            for i in range(x, x + timecode.BLOCK):
                flipped[y * width + i] ^= 0xFF
        assert timecode.decode(flipped, width, height) is None
    assert timecode.decode(b"\x60" * width * height, width, height) is None
    assert timecode.decode(b"\x60" * width * 100, width, 100) is None
    noon = 1_796_000_000.0 - 1_796_000_000.0 % 86_400 + 43_200  # 12:00:00 UTC of some day
    assert timecode.ms_of_day(noon) == 43_200_000
    assert timecode.age_ms(43_199_950, noon) == 50
    assert timecode.age_ms(timecode.DAY_MS - 30, noon - 43_200 + 0.02) == 50  # across midnight
    with pytest.raises(ValueError):
        timecode.stripe_row(timecode.DAY_MS, width)
