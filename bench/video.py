#!/usr/bin/env python3
"""Benchmark of the video wall: the hub's CPU for 48 simulated 720p cameras (ingest alone, the
48-tile thumbnail wall, four live WebRTC viewers), each next to ``ffmpeg -c copy`` receiving the
same streams in the same run; the glass-to-glass latency of a live tile read from the clock
camera, next to the camera alone; the time to first frame when a tile is enlarged; and 312
cameras ingested by one hub process.

Run ``python bench/video.py`` (about 5 minutes) or ``python bench/video.py --quick`` (about 1.5
minutes: 5 s windows, fewer frames and cycles, no 312-camera phase). ``ffmpeg`` (Debian:
``bash scripts/system-deps.sh --bench``) and the camera simulator's GStreamer (``--run``) are
needed; without ffmpeg the bench says so and exits with status 2. See ``docs/benchmarks.md``
("Video wall: bench/video.py") for the last results.

Theory of operation:

1. **The cameras**: the simulator's RTSP server (``video/simulator/rtsp_server.py`` under
   ``/usr/bin/python3``, its own process, started here with ``--one-media`` as the demo does): N
   mounts looping the same pre-encoded 720p25 H.264 clip (2 Mbit/s, 2 s GOP, from
   ``video.simulator.clips``) and the live ``/clock``, whose frames carry the UTC millisecond as a
   stripe of blocks (``video.simulator.timecode``). Started here rather than through
   ``CameraSimulator``, which takes at most 99 cameras.
2. **The hub**: a real ``cityhub serve --roles web,video`` process on loopback with a temporary
   data directory and its embedded PostgreSQL, after ``cityhub demo --demo-cases 0`` loaded the
   demo accounts. It is started through a two-line wrapper that first limits aioice to 127.0.0.0/8
   (``telephony.warnings.talk.restrict_host_addresses``): ``CITYHUB_WEBRTC_NETWORKS`` is applied
   by the telephony service only, which this process does not run, and live tiles must stay on
   loopback. The cameras are registered over the API (``POST /api/cameras``, ``pinned``: every
   feed is held open with no client).
3. **CPU**: utime + stime of a process from ``/proc/PID/stat`` (all its threads) over a fixed
   window (``--seconds``, default 20, ``--quick`` 5), as a share of one core: the hub, the
   simulator, this process (the clients), and the ``ffmpeg`` references, summed. "machine" is the
   share of all cores busy in the window (any process; ``/proc/stat``), and the load average is
   printed before and after: on a shared machine the figures follow it.
4. **Phases** (the hub's CPU in each, the difference to the phase before per camera or viewer):
   0. the hub idle, no cameras;
   1. ingest alone: N pinned cameras, no clients;
   2. + the thumbnail wall: one task per tile in this process polls
      ``GET /api/cameras/{id}/thumbnail`` once a second with ``If-None-Match`` (httpx, one
      keep-alive pool), as the wall page does;
   3. + 4 live viewers (aiortc in this process, seat ``seat1``, cameras 1-4): the full seat.
   Reference, measured right after phase 1 in one window: ``ffmpeg -rtsp_transport tcp -i URL -c
   copy -f null -``, one process per camera (the sum of those N is the reference of phases 1 and
   2: the wall adds no stream) and one more per live viewer's camera (all N + 4: phase 3).
5. **Glass-to-glass**: the clock camera is registered (not pinned) and seat ``seat2`` opens a live
   tile on it (``POST /api/cameras/{id}/live``, aiortc); each frame aiortc hands over
   (``av.VideoFrame``, decoded) has its time code read and compared with the wall clock at that
   moment. At the same time, the reference: PyAV reads ``/clock`` straight from the simulator
   (``rtsp_transport=tcp``, ``fflags=nobuffer``, ``flags=low_delay``) and does the same: the camera
   alone (encoder, RTSP, decoder). The first 2 s of each are left out (start-up bursts); p50, p95
   and max over ``--frames`` frames. aiortc hands a frame over when the next frame's first packet
   arrives (its jitter buffer does not use the marker bit): about one frame (40 ms) of the
   figure is the viewer's, as it would not be in a browser.
6. **Time to first frame**: with the seat running (wall and 4 live tiles), ``seat2`` opens a live
   tile on another camera each cycle: from the ``POST .../live`` with the offer to the first
   decoded frame; then it stops the tile (``POST /api/live/{id}/stop``); p50 and max.
7. **312 cameras** (``--phases ...,scale``; not in ``--quick``): a second simulator with 312 mounts,
   the seat's cameras deleted and 312 pinned ones registered; once they are online, the hub's CPU
   over a window and the count still online at its end. The ffmpeg reference is a sample of 48
   streams (312 ``ffmpeg`` processes would swamp a 2-core machine), scaled to 312, as printed.
8. **PyAV alone** (``--phases ...,pyav``; not by default): N threads in a process of their own
   demux the seat's cameras with PyAV as ``video/ingest/rtsp.py`` does, with PyAV's interrupt
   ``timeout=(5, 5)`` (as the hub opens) and without it, twice each: the ingest's demux cost
   without the hub around it, and what the interrupt callback (which takes the GIL each time
   FFmpeg polls it) costs in CPU and context switches.

Goals (issue 9): a full seat (48 thumbnails + 4 live) under 35 % of one core; glass-to-glass
under 150 ms p50; first frame under 1 s (every cycle); 312 cameras in one process under one
core. Prototype figures, printed alongside: demux ~0.18 %/camera, thumbnails ~0.27 %/camera,
WebRTC passthrough ~1.1 %/viewer, 78-113 ms glass-to-glass (camera alone 42 ms), full seat 30 %.
Everything runs on 127.0.0.1 with bounded waits; every process started here is stopped at the
end and the temporary directory removed, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    cpu_jiffies,
    free_port,
    loadavg,
    pct,
    proc_cpu,
    run_cleanly,
    scratch_dir,
)
from bench.common import log_stderr as log  # noqa: E402

HOST = "127.0.0.1"
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = ROOT / "video" / "simulator" / "rtsp_server.py"
FPS = 25
#: The hub, as ``cityhub serve`` but with aioice held to loopback first (see the docstring, 2).
HUB_WRAPPER = (
    "import sys; from telephony.warnings.talk import parse_networks, restrict_host_addresses; "
    "restrict_host_addresses(parse_networks(['127.0.0.0/8'])); "
    "from hub.cli import main; sys.exit(main(sys.argv[1:]))"
)
GOALS = {"seat": 35.0, "g2g_p50": 150.0, "ttff": 1000.0, "scale": 100.0}
PROTOTYPE = {"demux": 0.18, "thumbs": 0.27, "viewer": 1.1, "seat": 30.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Processes: CPU, start, stop

#: Everything started here that must be stopped, newest last (``stop_all`` goes backwards).
PROCS: list[Any] = []


def proc_status(pid: int, key: str) -> int | None:
    """A number from ``/proc/PID/status`` (``VmRSS`` in kB, ``Threads``)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def proc_switches(pid: int) -> tuple[float, dict[str, int]]:
    """(system CPU seconds, context switches so far by thread id) of a process."""
    stime, switches = 0.0, {}
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        stime = int(fields[12]) / CLK_TCK
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                lines = (task / "status").read_text().splitlines()
                switches[task.name] = sum(
                    int(line.split()[1]) for line in lines if "ctxt_switches:" in line
                )  # voluntary and not
    return stime, switches


def stop_process(proc: subprocess.Popen[bytes], grace: float, *, quit_line: bool = False) -> None:
    """Ask a process (and its process group) to go, then make it."""
    if proc.poll() is None:
        if quit_line and proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write(b"quit\n")
                proc.stdin.close()
        else:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)


def stop_all() -> None:
    for p in reversed(list(PROCS)):
        with contextlib.suppress(Exception):
            p.stop()
        with contextlib.suppress(ValueError):
            PROCS.remove(p)


class Simulator:
    """The simulator's RTSP server as a subprocess (``rtsp_server.py --one-media``)."""

    def __init__(self, count: int, *, clock: bool) -> None:
        from video.simulator.clips import default_cache_dir, make_clip

        self.count = count
        clip = make_clip(default_cache_dir(), seconds=10.0, text="CITYHUB SIM")
        args = [SYSTEM_PYTHON, str(SERVER), "--count", str(count), f"--clip={clip}", "--one-media"]
        if clock:
            args.append("--clock")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "GST_DEBUG": "1"},
            start_new_session=True,
        )
        PROCS.append(self)
        ready = self._ready_line(30.0)
        if "port" not in ready:
            raise RuntimeError(f"simulator failed: {ready}")
        self.port = int(ready["port"])
        self.mounts = list(ready["mounts"])
        if len([m for m in self.mounts if m.startswith("/cam")]) != count:
            raise RuntimeError(f"simulator mounted {len(self.mounts)} paths, not {count}")

    def _ready_line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not got or not got[0]:
            raise RuntimeError(f"simulator not ready in {timeout:g} s (exit {self.proc.poll()})")
        value: dict[str, Any] = json.loads(got[0])
        return value

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, n: int) -> str:
        return f"rtsp://{HOST}:{self.port}/cam{n:02d}"

    @property
    def clock_url(self) -> str:
        return f"rtsp://{HOST}:{self.port}/clock"

    def stop(self) -> None:
        stop_process(self.proc, 5.0, quit_line=True)


class Hub:
    """``cityhub serve --roles web,video`` in a temporary data directory (demo accounts only)."""

    def __init__(self, scratch: Path) -> None:
        self.data = scratch / "data"
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = scratch / "hub.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")}
        self.env.update(
            {
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                "CITYHUB_WS_PORT": str(free_port()),
                "CITYHUB_SIP_PORT": "0",
                "CITYHUB_WEBRTC_NETWORKS": "127.0.0.0/8",
                "CITYHUB_LOG_LEVEL": "WARNING",
            }
        )
        self.scratch = scratch
        self.proc: subprocess.Popen[bytes] | None = None

    def load_demo(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "demo", "--data-dir", str(self.data),
             "--demo-cases", "0"],
            cwd=self.scratch, env=self.env, capture_output=True, timeout=180, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"cityhub demo failed:\n{done.stdout.decode()[-2000:]}")

    def start(self, timeout: float = 90.0) -> None:
        import httpx

        args = [sys.executable, "-c", HUB_WRAPPER, "serve", "--data-dir", str(self.data),
                "--port", str(self.port), "--roles", "web,video"]  # fmt: skip
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                args, cwd=self.scratch, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        PROCS.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"hub not ready in {timeout:g} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, n: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 30.0)


class Ffmpegs:
    """``ffmpeg -c copy -f null -`` receivers, one process per URL."""

    def __init__(self, urls: Sequence[str]) -> None:
        ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
        quiet = ["-nostdin", "-hide_banner", "-loglevel", "error"]
        self.procs = [
            subprocess.Popen(
                [
                    ffmpeg,
                    *quiet,
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                    url,
                    "-c",
                    "copy",
                    "-f",
                    "null",
                    "-",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for url in urls
        ]
        PROCS.append(self)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            stop_process(p, 5.0)


# ---------------------------------------------------------------------------------------------
# Measuring windows


@dataclass
class Window:
    seconds: float
    cpu: dict[str, float]  # label -> % of one core over the window
    machine: float  # % of all cores busy
    hub_sys: float = math.nan  # the hub's system time, % of one core
    hub_switches: float = math.nan  # the hub's context switches per second (all threads)
    note: str = ""


async def measure(seconds: float, groups: dict[str, list[int]]) -> Window:
    """CPU of each group of processes (``"self"``: this process) over ``seconds``."""

    def sample() -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for label, pids in groups.items():
            if label == "self":
                t = os.times()
                out[label] = t.user + t.system
                continue
            values = [proc_cpu(pid) for pid in pids]
            out[label] = None if any(v is None for v in values) else sum(v or 0.0 for v in values)
        return out

    hub = groups.get("hub", [0])[0]
    b0, n0 = cpu_jiffies()
    s0, c0, t0 = proc_switches(hub), sample(), time.monotonic()
    await asyncio.sleep(seconds)
    s1, c1, wall = proc_switches(hub), sample(), time.monotonic() - t0
    b1, n1 = cpu_jiffies()
    cpu = {}
    for label in groups:
        a, b = c0[label], c1[label]
        cpu[label] = math.nan if a is None or b is None else 100.0 * (b - a) / wall
    win = Window(wall, cpu, 100.0 * (b1 - b0) / max(1, n1 - n0))
    if hub:
        # threads that came or went during the window count for the part they lived through
        switched = sum(n - s0[1].get(tid, 0) for tid, n in s1[1].items())
        win.hub_sys, win.hub_switches = 100.0 * (s1[0] - s0[0]) / wall, switched / wall
    return win


# ---------------------------------------------------------------------------------------------
# The hub's API: login, cameras, thumbnails, live viewers


class Api:
    def __init__(self, base_url: str, token: str, client: Any) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client = client

    @classmethod
    async def login(cls, client: Any, base_url: str, username: str) -> Api:
        from hub.demo import DEMO_USERS

        r = await client.post(
            f"{base_url}/api/auth/login",
            json={"username": username, "password": DEMO_USERS[username][1], "token": True},
        )
        if r.status_code != 200:
            raise RuntimeError(f"login {username}: {r.status_code} {r.text[:200]}")
        return cls(base_url, r.json()["token"], client)

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.client.request(method, self.base_url + path, headers=headers, **kw)

    async def add_camera(self, name: str, url: str, *, pinned: bool, active: bool = True) -> int:
        body = {"name": name, "url": url, "pinned": pinned, "active": active}
        r = await self.call("POST", "/api/cameras", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/cameras {name}: {r.status_code} {r.text[:200]}")
        return int(r.json()["id"])

    async def activate(self, camera_id: int) -> bool:
        """PATCH ``active`` (idempotent), tried again (up to 3 times) when the hub does not answer
        in time; whether it was answered."""
        import httpx

        for _ in range(3):
            with contextlib.suppress(httpx.TimeoutException):
                r = await self.call("PATCH", f"/api/cameras/{camera_id}", json={"active": True})
                if r.status_code == 200:
                    return True
        return False

    async def ensure_camera(self, name: str, url: str, *, pinned: bool, active: bool = True) -> int:
        """``add_camera``, tried again (up to 3 times) when the hub does not answer in time; a try
        that did register the camera is found by its name."""
        import httpx

        for _ in range(3):
            try:
                return await self.add_camera(name, url, pinned=pinned, active=active)
            except (httpx.TimeoutException, RuntimeError):
                r = await self.call("GET", "/api/cameras", timeout=60.0)
                found = [c["id"] for c in r.json()["items"] if c["name"] == name]
                if found:
                    return int(found[0])
        raise RuntimeError(f"camera {name} could not be registered")

    async def states(self) -> dict[int, str]:
        r = await self.call("GET", "/api/cameras", timeout=60.0)
        r.raise_for_status()
        return {int(c["id"]): str(c["status"]["state"]) for c in r.json()["items"]}

    async def wait_online(self, ids: Sequence[int], within: float) -> int:
        """Wait until every camera of ``ids`` shows online (at most ``within`` s); how many do."""
        deadline = time.monotonic() + within
        online = 0
        while time.monotonic() < deadline:
            states = await self.states()
            online = sum(states.get(i) == "online" for i in ids)
            if online == len(ids):
                break
            await asyncio.sleep(0.5)
        return online


class ThumbWall:
    """One task per tile: ``GET .../thumbnail`` once a second with ``If-None-Match``."""

    def __init__(self, api: Api, ids: Sequence[int]) -> None:
        self.api = api
        self.ids = list(ids)
        self.counts = {"200": 0, "304": 0, "409": 0, "other": 0}
        self.seen: set[int] = set()
        self.times: list[float] = []
        self.stopping = asyncio.Event()
        self.all_seen = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        t0 = time.monotonic()
        for k, cid in enumerate(self.ids):
            offset = k / max(1, len(self.ids))  # spread over the second, as tiles load
            self.tasks.append(asyncio.create_task(self._tile(cid, t0 + offset)))

    async def _tile(self, cid: int, start: float) -> None:
        etag = ""
        n = 0
        while not self.stopping.is_set():
            await asyncio.sleep(max(0.0, start + n - time.monotonic()))
            n += 1
            headers = {"If-None-Match": etag} if etag else {}
            t = time.monotonic()
            try:
                r = await self.api.call("GET", f"/api/cameras/{cid}/thumbnail", headers=headers)
            except Exception:
                self.counts["other"] += 1
                continue
            self.times.append(time.monotonic() - t)
            key = str(r.status_code) if str(r.status_code) in self.counts else "other"
            self.counts[key] += 1
            if r.status_code == 200:
                etag = r.headers.get("etag", "")
                self.seen.add(cid)
                if len(self.seen) == len(self.ids):
                    self.all_seen.set()

    async def wait_all(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_seen.wait(), within)
        return self.all_seen.is_set()

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.counts, 0)
        self.times = []

    async def stop(self) -> None:
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task


@dataclass
class Viewer:
    """An aiortc viewer of one camera's live tile (``recvonly``, what the wall page does)."""

    api: Api
    camera_id: int
    on_frame: Callable[[Any, float], None] | None = None
    frames: int = 0
    posted_at: float = 0.0
    answered_at: float = 0.0
    first_frame_at: float = 0.0
    viewer_id: str = ""
    pc: Any = None
    wire: dict[int, float] | None = None  # RTP timestamp -> when its last packet came
    receiver: Any = None
    first: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        transceiver = pc.addTransceiver("video", direction="recvonly")
        if self.wire is not None:
            self._hook_wire(transceiver.receiver, self.wire)

        @pc.on("track")  # type: ignore[untyped-decorator, unused-ignore]
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.ensure_future(self._read(track)))

        await pc.setLocalDescription(await pc.createOffer())
        self.posted_at = time.monotonic()
        r = await self.api.call(
            "POST", f"/api/cameras/{self.camera_id}/live", json={"sdp": pc.localDescription.sdp}
        )
        if r.status_code != 200:
            raise RuntimeError(f"live {self.camera_id}: {r.status_code} {r.text[:200]}")
        self.answered_at = time.monotonic()
        body = r.json()
        self.viewer_id = body["viewer_id"]
        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))

    def _hook_wire(self, receiver: Any, wire: dict[int, float]) -> None:
        """Note when the last packet (marker bit) of each frame arrives, by RTP timestamp: aiortc
        assembles a frame only when the next one's first packet is in, and decodes it after."""
        self.receiver = receiver
        handle = receiver._handle_rtp_packet

        async def noted(packet: Any, arrival_time_ms: int) -> None:
            if packet.marker:
                wire[packet.timestamp] = time.time()
                if len(wire) > 1000:
                    del wire[next(iter(wire))]
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = noted

    def wire_time(self, frame: Any) -> float | None:
        """When the last packet of a decoded frame arrived (``wire`` viewers only)."""
        mapper = getattr(self.receiver, "_RTCRtpReceiver__timestamp_mapper", None)
        origin = getattr(mapper, "_origin", None)
        if self.wire is None or origin is None or frame.pts is None:
            return None
        return self.wire.pop((frame.pts + origin) % (1 << 32), None)

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.time()
                self.frames += 1
                if not self.first.is_set():
                    self.first_frame_at = time.monotonic()
                    self.first.set()
                if self.on_frame is not None:
                    self.on_frame(frame, now)

    async def close(self) -> None:
        if self.viewer_id:
            with contextlib.suppress(Exception):
                await self.api.call("POST", f"/api/live/{self.viewer_id}/stop")
            self.viewer_id = ""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.pc is not None:
            await self.pc.close()
            self.pc = None


class ViewerProcess:
    """The seat's live viewers in a process of their own (spawned), so that their decoding (aiortc
    always decodes) does not share this process's GIL with the latency measure."""

    def __init__(self, base_url: str, token: str, ids: Sequence[int], lifetime: float) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=viewers_main, args=(child, base_url, token, list(ids), lifetime), daemon=True
        )
        self.proc.start()
        PROCS.append(self)

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def ask(self, what: str, within: float) -> Any:
        self.conn.send(what)
        if not self.conn.poll(within):
            raise RuntimeError(f"the viewer process did not answer {what!r} within {within:g} s")
        return self.conn.recv()

    def started(self, within: float) -> int:
        if not self.conn.poll(within):
            raise RuntimeError(f"the viewer process did not start within {within:g} s")
        reply = self.conn.recv()
        if "error" in reply:
            raise RuntimeError(f"viewer process: {reply['error']}")
        return int(reply["started"])

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("stop", 15.0)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def viewers_main(
    conn: Connection, base_url: str, token: str, ids: list[int], lifetime: float
) -> None:
    """The viewer process: open a live tile per camera, report, answer ``frames``, end on
    ``stop`` (or when the parent goes, or after ``lifetime`` s)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_viewers(conn, base_url, token, ids, lifetime))


async def _viewers(
    conn: Connection, base_url: str, token: str, ids: list[int], lifetime: float
) -> None:
    import httpx

    from telephony.warnings.talk import parse_networks, restrict_host_addresses

    restrict_host_addresses(parse_networks(["127.0.0.0/8"]))
    deadline = time.monotonic() + lifetime
    async with httpx.AsyncClient(timeout=10.0) as client:
        api = Api(base_url, token, client)
        viewers = [Viewer(api, cid) for cid in ids]
        try:
            try:
                for v in viewers:
                    await v.open()
                for v in viewers:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(v.first.wait(), 10.0)
            except Exception as exc:
                conn.send({"error": str(exc)})
                return
            conn.send({"started": sum(v.first.is_set() for v in viewers)})
            while time.monotonic() < deadline:
                if not await asyncio.to_thread(conn.poll, 0.5):
                    continue
                try:
                    what = conn.recv()
                except EOFError:
                    return
                if what == "frames":
                    conn.send([v.frames for v in viewers])
                elif what == "stop":
                    break
        finally:
            for v in viewers:
                await v.close()
            with contextlib.suppress(OSError):
                conn.send("stopped")


def read_timecode(frame: Any) -> int | None:
    from video.simulator import timecode

    plane = frame.planes[0]
    code: int | None = timecode.decode(memoryview(plane), plane.line_size, frame.height)
    return code


def direct_clock(
    url: str, frames: int, skip_s: float, timeout: float, stop: threading.Event
) -> list[float]:
    """The camera alone: PyAV decodes ``url`` and ages each frame's time code (ms), after the
    first ``skip_s`` seconds, until ``frames`` are in or ``timeout`` s passed."""
    import av

    from video.simulator import timecode

    ages: list[float] = []
    options = {"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay",
               "timeout": "5000000"}  # fmt: skip
    t0 = time.monotonic()
    with av.open(url, options=options, timeout=(10.0, 5.0)) as container:
        opened = time.monotonic()
        for frame in container.decode(video=0):
            now = time.time()
            code = read_timecode(frame)
            if code is not None and time.monotonic() - opened >= skip_s:
                ages.append(float(timecode.age_ms(code, now)))
            if len(ages) >= frames or time.monotonic() - t0 > timeout or stop.is_set():
                break
    return ages


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Phase:
    name: str
    hub: float
    sim: float
    clients: float
    machine: float
    units: int = 0  # cameras or viewers this phase adds
    unit: str = ""
    added: float = math.nan  # hub % above the phase before, per unit
    ref: float = math.nan  # ffmpeg % of one core
    ref_procs: int = 0
    ref_note: str = ""
    prototype: float = math.nan
    rss_mb: float = math.nan
    sys: float = math.nan  # the hub's system time, % of one core
    switches: float = math.nan  # the hub's context switches per second
    note: str = ""


@dataclass
class Results:
    phases: list[Phase] = field(default_factory=list)
    g2g_hub: list[float] = field(default_factory=list)
    g2g_direct: list[float] = field(default_factory=list)
    g2g_wire: list[float] = field(default_factory=list)  # the hub's path up to the viewer's socket
    g2g_note: str = ""
    ttff: list[float] = field(default_factory=list)
    answer: list[float] = field(default_factory=list)
    ttff_note: str = ""
    scale: Phase | None = None
    scale_online: str = ""
    pyav: list[dict[str, Any]] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""
    notes: list[str] = field(default_factory=list)


def fmt(v: float, digits: int = 1) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:,.{digits}f}"


async def seat_phases(args: argparse.Namespace, hub: Hub, sim: Simulator, res: Results,
                      admin: Api, seat: Api) -> tuple[list[int], ThumbWall, ViewerProcess]:  # fmt: skip
    """Phases 0-3; leaves the wall and the live viewers running for the latency and first-frame
    measures (the caller stops them)."""
    w = args.seconds
    groups: dict[str, list[int]] = {"hub": [hub.pid], "sim": [sim.pid], "self": [], "viewers": []}

    def phase(name: str, win: Window, **kw: Any) -> Phase:
        clients = win.cpu["self"] + win.cpu["viewers"]
        p = Phase(name, win.cpu["hub"], win.cpu["sim"], clients, win.machine, **kw)
        p.rss_mb = (proc_status(hub.pid, "VmRSS") or 0) / 1024
        p.sys, p.switches = win.hub_sys, win.hub_switches
        res.phases.append(p)
        log(f"{name}: hub {fmt(p.hub)} %, simulator {fmt(p.sim)} %, clients {fmt(p.clients)} %, "
            f"machine {fmt(p.machine, 0)} %")  # fmt: skip
        return p

    log(f"phase 0: the hub idle ({min(w, 10.0):g} s)")
    idle = phase("0 hub idle, no cameras", await measure(min(w, 10.0), groups))

    n = args.cameras
    ids = [
        await admin.add_camera(f"基准摄像头{k:03d}", sim.url(k), pinned=True)
        for k in range(1, n + 1)
    ]
    online = await admin.wait_online(ids, 60.0)
    log(f"{online}/{n} cameras online")
    if online < n:
        res.notes.append(f"only {online}/{n} cameras online before phase 1")
    await asyncio.sleep(args.settle + 3.0)  # the sessions' start-up (stream probing) is over
    log(f"phase 1: ingest alone, {n} pinned cameras ({w:g} s)")
    p1 = phase(f"1 ingest {n} cameras (pinned)", await measure(w, groups),
               units=n, unit="camera", prototype=PROTOTYPE["demux"])  # fmt: skip
    p1.added = (p1.hub - idle.hub) / n

    live_ids = ids[: args.viewers]
    log(f"reference: {n} + {len(live_ids)} ffmpeg -c copy receivers")
    refs = Ffmpegs(
        [sim.url(k) for k in range(1, n + 1)] + [sim.url(k) for k in range(1, len(live_ids) + 1)]
    )
    try:
        await asyncio.sleep(args.settle + 2.0)
        win = await measure(w, {"all": refs.pids[:n], "live": refs.pids[n:], "hub": [hub.pid]})
        alive = refs.alive()
    finally:
        refs.stop()
        PROCS.remove(refs)
    ref_cams, ref_live = win.cpu["all"], win.cpu["live"]
    if alive < len(refs.procs):
        res.notes.append(f"{len(refs.procs) - alive} ffmpeg references ended before the window did")
    log(f"ffmpeg: {n} streams {fmt(ref_cams)} %, {len(live_ids)} more {fmt(ref_live)} % "
        f"(hub meanwhile {fmt(win.cpu['hub'])} %)")  # fmt: skip
    p1.ref, p1.ref_procs = ref_cams, n

    wall = ThumbWall(seat, ids)
    wall.start()
    if not await wall.wait_all(20.0):
        res.notes.append(f"thumbnails of only {len(wall.seen)}/{n} tiles before phase 2")
    await asyncio.sleep(args.settle)
    wall.reset()
    log(f"phase 2: + the {n}-tile thumbnail wall at 1 Hz ({w:g} s)")
    p2 = phase(f"2 + thumbnail wall, {n} tiles at 1 Hz", await measure(w, groups),
               units=n, unit="camera", prototype=PROTOTYPE["thumbs"])  # fmt: skip
    p2.added = (p2.hub - p1.hub) / n
    p2.ref, p2.ref_procs, p2.ref_note = ref_cams, n, "same streams as 1"
    c = wall.counts
    p2.note = (f"{c['200']} x 200, {c['304']} x 304, {c['409']} x 409, {c['other']} other; "
               f"GET p50 {fmt(1000 * pct(wall.times, 50))} ms")  # fmt: skip

    token = seat.headers["Authorization"].removeprefix("Bearer ")
    viewers = ViewerProcess(seat.base_url, token, live_ids, lifetime=600.0)
    groups["viewers"] = [viewers.pid]
    started = await asyncio.to_thread(viewers.started, 40.0)
    if started < len(live_ids):
        res.notes.append(f"only {started}/{len(live_ids)} live viewers had a frame before phase 3")
    await asyncio.sleep(args.settle)
    f0 = await asyncio.to_thread(viewers.ask, "frames", 10.0)
    wall.reset()
    log(f"phase 3: + {len(live_ids)} live viewers: the full seat ({w:g} s)")
    win = await measure(w, groups)
    f1 = await asyncio.to_thread(viewers.ask, "frames", 10.0)
    p3 = phase(f"3 + {len(live_ids)} live viewers (full seat)", win,
               units=len(live_ids), unit="viewer", prototype=PROTOTYPE["viewer"])  # fmt: skip
    p3.added = (p3.hub - p2.hub) / max(1, len(live_ids))
    p3.ref, p3.ref_procs, p3.ref_note = ref_cams + ref_live, n + len(live_ids), ""
    fps = [(b - a) / win.seconds for a, b in zip(f0, f1, strict=True)]
    p3.note = "viewers " + ", ".join(f"{f:.1f}" for f in fps) + " frames/s"
    return ids, wall, viewers


async def latency(
    args: argparse.Namespace, sim: Simulator, res: Results, admin: Api, other: Api
) -> None:
    from video.simulator import timecode

    cid = await admin.add_camera("基准时钟摄像头", sim.clock_url, pinned=False)
    if await admin.wait_online([cid], 20.0) < 1:
        res.g2g_note = "the clock camera did not come online"
        return
    ages: list[float] = []
    enough = asyncio.Event()
    skip_until = [0.0]

    def on_frame(frame: Any, now: float) -> None:
        code = read_timecode(frame)
        wire = viewer.wire_time(frame)
        if code is not None and time.monotonic() >= skip_until[0] and len(ages) < args.frames:
            ages.append(float(timecode.age_ms(code, now)))
            if wire is not None:
                wire_ages.append(float(timecode.age_ms(code, wire)))
            if len(ages) == args.frames:
                enough.set()

    wire_ages: list[float] = []
    viewer = Viewer(other, cid, on_frame=on_frame, wire={})
    stop = threading.Event()
    timeout = args.frames / FPS + 25.0
    log(f"glass-to-glass: {args.frames} frames of the clock through the hub and straight from RTSP")
    direct = asyncio.ensure_future(
        asyncio.to_thread(direct_clock, sim.clock_url, args.frames, 2.0, timeout, stop)
    )
    try:
        await viewer.open()
        await asyncio.wait_for(viewer.first.wait(), 15.0)
        skip_until[0] = time.monotonic() + 2.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout)
        res.g2g_hub = list(ages)
        res.g2g_wire = list(wire_ages)
        res.g2g_direct = await asyncio.wait_for(asyncio.shield(direct), timeout)
        frames_in = viewer.frames
        res.g2g_note = (f"{frames_in} frames received through the hub, "
                        f"{len(ages)} with a time code read after the first 2 s")  # fmt: skip
    except TimeoutError:
        res.g2g_note = "timed out"
    finally:
        stop.set()
        await viewer.close()
        with contextlib.suppress(BaseException):
            await direct


async def first_frames(
    args: argparse.Namespace, ids: Sequence[int], res: Results, other: Api
) -> None:
    cams = [ids[(args.viewers + k) % len(ids)] for k in range(args.cycles)]
    log(f"time to first frame: {len(cams)} open/close cycles")
    for cid in cams:
        viewer = Viewer(other, cid)
        try:
            await viewer.open()
            await asyncio.wait_for(viewer.first.wait(), 10.0)
            res.ttff.append(1000 * (viewer.first_frame_at - viewer.posted_at))
            res.answer.append(1000 * (viewer.answered_at - viewer.posted_at))
        except TimeoutError:
            res.ttff.append(math.inf)
            res.ttff_note = "a viewer had no frame within 10 s"
        finally:
            await viewer.close()
        await asyncio.sleep(0.5)


async def scale_phase(args: argparse.Namespace, hub: Hub, res: Results, admin: Api,
                      seat_ids: Sequence[int]) -> None:  # fmt: skip
    n = args.scale_cameras
    log(f"scale: a simulator with {n} mounts")
    sim = Simulator(n, clock=False)
    try:
        t0 = time.monotonic()
        for cid in list((await admin.states()).keys()):
            await admin.call("DELETE", f"/api/cameras/{cid}")
        # Registered inactive first (the hub ingests nothing yet: quick), then activated 16 at a
        # time: the sessions start while the hub answers the rest.
        ids = []
        for first in range(1, n + 1, 16):
            batch = range(first, min(n, first + 15) + 1)
            ids += await asyncio.gather(
                *(admin.ensure_camera(f"规模摄像头{k:03d}", sim.url(k), pinned=True, active=False)
                  for k in batch)
            )  # fmt: skip
        log(f"{n} cameras registered (inactive) in {time.monotonic() - t0:.1f} s")
        t1 = time.monotonic()
        unanswered = 0
        for first in range(0, n, 16):
            if time.monotonic() - t1 > 150.0:
                res.notes.append(f"scale: only {first}/{n} cameras activated within 150 s")
                break
            done = await asyncio.gather(*(admin.activate(cid) for cid in ids[first : first + 16]))
            unanswered += len(done) - sum(done)
        log(f"{n} cameras activated in {time.monotonic() - t1:.1f} s")
        if unanswered:
            res.notes.append(f"scale: {unanswered} activations unanswered after 3 tries of 30 s")
        online = await admin.wait_online(ids, 90.0)
        log(
            f"{online}/{n} cameras online {time.monotonic() - t1:.1f} s after the first was activated"
        )
        await asyncio.sleep(args.settle + 2.0)
        win = await measure(args.seconds, {"hub": [hub.pid], "sim": [sim.pid], "self": []})
        states = await admin.states()
        after = sum(states.get(i) == "online" for i in ids)
        p = Phase(f"{n} cameras ingested (pinned)", win.cpu["hub"], win.cpu["sim"], win.cpu["self"],
                  win.machine, units=n, unit="camera", prototype=PROTOTYPE["demux"])  # fmt: skip
        p.rss_mb = (proc_status(hub.pid, "VmRSS") or 0) / 1024
        p.sys, p.switches = win.hub_sys, win.hub_switches
        threads = proc_status(hub.pid, "Threads")
        idle = res.phases[0].hub if res.phases else 0.0
        p.added = (p.hub - idle) / n
        sample = min(args.scale_sample, n)
        step = n / sample
        urls = [sim.url(1 + int(k * step)) for k in range(sample)]
        log(f"scale reference: {sample} ffmpeg receivers, scaled to {n}")
        refs = Ffmpegs(urls)
        try:
            await asyncio.sleep(args.settle + 2.0)
            rwin = await measure(args.seconds, {"ffmpeg": refs.pids})
        finally:
            refs.stop()
            PROCS.remove(refs)
        p.ref = rwin.cpu["ffmpeg"] * n / sample
        p.ref_procs = n
        p.ref_note = f"{sample} measured ({fmt(rwin.cpu['ffmpeg'])} %), x {n}/{sample}"
        p.note = f"{threads} threads, {p.rss_mb:.0f} MB RSS"
        res.scale = p
        res.scale_online = f"{online}/{n} online before the window, {after}/{n} at its end"
        log(f"scale: hub {fmt(p.hub)} %, simulator {fmt(p.sim)} %; {res.scale_online}")
    finally:
        sim.stop()
        PROCS.remove(sim)


def demux_main(
    conn: Connection, urls: list[str], interrupt: bool, settle: float, seconds: float
) -> None:
    """The ``pyav`` phase's worker process: one thread per URL demuxing it with PyAV as the hub's
    ingest does (packets copied to bytes, nothing else), with or without PyAV's interrupt
    ``timeout=``; reports its CPU, system time and context switches over ``seconds``."""
    import av

    stop = threading.Event()
    options = {"rtsp_transport": "tcp", "timeout": "5000000"}

    def worker(url: str) -> None:
        kw: dict[str, Any] = {"timeout": (5.0, 5.0)} if interrupt else {}
        with contextlib.suppress(Exception), av.open(url, options=options, **kw) as container:
            for packet in container.demux(container.streams.video[0]):
                bytes(packet)
                if stop.is_set():
                    break

    threads = [threading.Thread(target=worker, args=(url,), daemon=True) for url in urls]
    for t in threads:
        t.start()
    time.sleep(settle)
    pid = os.getpid()
    c0, (s0, w0), t0 = proc_cpu(pid) or 0.0, proc_switches(pid), time.monotonic()
    time.sleep(seconds)
    c1, (s1, w1), wall = proc_cpu(pid) or 0.0, proc_switches(pid), time.monotonic() - t0
    alive = sum(t.is_alive() for t in threads)
    stop.set()
    for t in threads:
        t.join(7.0)
    switched = sum(n - w0.get(tid, 0) for tid, n in w1.items())
    conn.send({"cpu": 100 * (c1 - c0) / wall, "sys": 100 * (s1 - s0) / wall,
               "switches": switched / wall, "alive": alive})  # fmt: skip


async def pyav_phase(args: argparse.Namespace, sim: Simulator, res: Results) -> None:
    """The ingest's demux without the hub: N PyAV threads in a process of their own, with PyAV's
    interrupt timeout (as ``video/ingest/rtsp.py`` opens) and without it, twice each, alternated."""
    urls = [sim.url(k) for k in range(1, args.cameras + 1)]
    seconds = max(5.0, args.seconds / 2)
    log(f"pyav: {len(urls)} PyAV demux threads with and without timeout= ({seconds:g} s windows)")
    ctx = mp.get_context("spawn")
    for interrupt in (True, False, True, False):
        conn, child = ctx.Pipe()
        proc = ctx.Process(
            target=demux_main,
            args=(child, urls, interrupt, args.settle + 3.0, seconds),
            daemon=True,
        )
        proc.start()
        try:
            got = await asyncio.to_thread(conn.poll, seconds + args.settle + 30.0)
            if got:
                r = conn.recv()
                res.pyav.append({"timeout": interrupt, **r})
                log(f"pyav timeout={'(5, 5)' if interrupt else 'none'}: {fmt(r['cpu'])} % "
                    f"(sys {fmt(r['sys'])} %), {fmt(r['switches'], 0)} switches/s, {r['alive']} alive")  # fmt: skip
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


async def run(args: argparse.Namespace, scratch: Path, res: Results, deadline: float) -> Results:
    import httpx

    from telephony.warnings.talk import parse_networks, restrict_host_addresses

    restrict_host_addresses(parse_networks(["127.0.0.0/8"]))  # our viewers stay on loopback too
    res.load_before = loadavg()
    log(f"load average {res.load_before}; starting the simulator ({args.cameras} cameras + clock)")
    sim = Simulator(args.cameras, clock=True)
    hub = Hub(scratch)
    t0 = time.monotonic()
    await asyncio.to_thread(hub.load_demo)
    await asyncio.to_thread(hub.start)
    log(f"hub pid {hub.pid} ready in {time.monotonic() - t0:.1f} s (demo accounts loaded)")
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        admin = await Api.login(client, hub.base_url, "admin")
        seat = await Api.login(client, hub.base_url, "seat1")
        other = await Api.login(client, hub.base_url, "seat2")
        ids, wall, viewers = await seat_phases(args, hub, sim, res, admin, seat)
        try:
            if "latency" in args.phases:
                await latency(args, sim, res, admin, other)
            if "ttff" in args.phases:
                await first_frames(args, ids, res, other)
        finally:
            await asyncio.to_thread(viewers.stop)
            PROCS.remove(viewers)
            await wall.stop()
        if "pyav" in args.phases:
            await pyav_phase(args, sim, res)
        sim.stop()
        PROCS.remove(sim)
        if "scale" in args.phases:
            try:  # within what is left of the run's bound, less a minute to clean up
                left = deadline - time.monotonic() - 60.0
                await asyncio.wait_for(scale_phase(args, hub, res, admin, ids), max(1.0, left))
            except TimeoutError:
                res.notes.append("scale phase cut off: the run's time bound was reached")
                log("scale phase cut off: the run's time bound was reached")
            except (RuntimeError, httpx.HTTPError) as exc:
                res.notes.append(f"scale phase failed: {type(exc).__name__} {exc}")
                log(f"scale phase failed: {type(exc).__name__} {exc}")
    res.load_after = loadavg()
    return res


# ---------------------------------------------------------------------------------------------
# Report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(args: argparse.Namespace, res: Results, minutes: float) -> str:
    lines: list[str] = []
    w = lines.append
    w("")
    w(f"Video wall, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} "
      f"{platform.python_version()}, {os.cpu_count()} cores; {args.cameras} simulated cameras "
      f"(720p25 H.264, 2 Mbit/s, 2 s GOP, one media), {args.seconds:g} s windows")  # fmt: skip
    w("CPU in % of one core (utime+stime from /proc over the window; (sys) = the hub's stime, ctxsw/s its "
      "context switches, all threads); per unit = the hub above the phase before, / cameras or viewers;")  # fmt: skip
    w("ffmpeg = ffmpeg -rtsp_transport tcp -i URL -c copy -f null -, one process per stream, summed; "
      "/stream = per stream the phase adds; ratio = hub per unit / ffmpeg per stream")  # fmt: skip
    w("")
    head = (f"{'phase':<40} {'hub %':>6} {'(sys)':>5} {'ctxsw/s':>7} {'per unit':>15} {'proto':>5} "
            f"{'ffmpeg %':>8} {'procs':>5} {'/stream':>7} {'ratio':>5} {'sim %':>5} {'clients':>7} "
            f"{'mach':>4} {'RSS MB':>6}")  # fmt: skip
    w(head)
    w("-" * len(head))
    rows = [*res.phases, *([res.scale] if res.scale else [])]
    before = 0.0, 0  # ffmpeg % and processes of the phase before (the streams a phase adds)
    for p in rows:
        added_procs = p.ref_procs - (0 if p is res.scale else before[1])
        if added_procs > 0:  # ffmpeg per stream the phase adds; the wall adds none
            per_stream = (p.ref - (0.0 if p is res.scale else before[0])) / added_procs
            ratio = p.added / per_stream if per_stream else math.nan
        else:
            per_stream = ratio = math.nan
        if p.ref_procs and p is not res.scale:
            before = p.ref, p.ref_procs
        unit = f"{fmt(p.added, 2)} /{p.unit}" if p.unit else ""
        w(f"{p.name:<40} {fmt(p.hub):>6} {fmt(p.sys, 0):>5} {fmt(p.switches, 0):>7} {unit:>15} "
          f"{fmt(p.prototype, 2):>5} {fmt(p.ref):>8} {(p.ref_procs or ''):>5} {fmt(per_stream, 2):>7} "
          f"{fmt(ratio, 2):>5} {fmt(p.sim):>5} {fmt(p.clients):>7} {fmt(p.machine, 0):>3}% "
          f"{fmt(p.rss_mb, 0):>6}")  # fmt: skip
        extra = "; ".join(x for x in (p.ref_note, p.note) if x)
        if extra:
            w(f"{'':<4}{extra}")
    by = {p.name[0]: p for p in res.phases}
    if "1" in by and "3" in by:
        p1, p3 = by["1"], by["3"]
        w("")
        w(f"ratios to ffmpeg receiving the same streams: ingest {fmt(p1.hub - by['0'].hub)} % above idle "
          f"vs {fmt(p1.ref)} % = {fmt((p1.hub - by['0'].hub) / p1.ref, 2)}; full seat {fmt(p3.hub)} % "
          f"vs {fmt(p3.ref)} % ({p3.ref_procs} ffmpeg) = {fmt(p3.hub / p3.ref, 2)}")  # fmt: skip
    w("")
    if res.g2g_hub or res.g2g_direct or res.g2g_note:
        h, d = res.g2g_hub, res.g2g_direct
        w(f"glass-to-glass, clock camera ({res.g2g_note}):")
        w(f"  through the hub (WebRTC, aiortc viewer): p50 {fmt(pct(h, 50), 0)} ms, p95 "
          f"{fmt(pct(h, 95), 0)} ms, max {fmt(max(h) if h else math.nan, 0)} ms, {len(h)} frames")  # fmt: skip
        g = res.g2g_wire
        w(f"  ... of which on the wire (last packet in): p50 {fmt(pct(g, 50), 0)} ms, p95 "
          f"{fmt(pct(g, 95), 0)} ms, max {fmt(max(g) if g else math.nan, 0)} ms, {len(g)} frames")  # fmt: skip
        w(f"  camera alone (PyAV on the RTSP URL):     p50 {fmt(pct(d, 50), 0)} ms, p95 "
          f"{fmt(pct(d, 95), 0)} ms, max {fmt(max(d) if d else math.nan, 0)} ms, {len(d)} frames")  # fmt: skip
        if h and d:
            w(f"  the hub's path adds {fmt(pct(h, 50) - pct(d, 50), 0)} ms at p50 "
              "(prototype: 78-113 ms through the hub, camera alone 42 ms)")  # fmt: skip
    if res.ttff:
        finite = [t for t in res.ttff if math.isfinite(t)]
        w(f"time to first frame, {len(res.ttff)} tiles enlarged (seat running): p50 "
          f"{fmt(pct(res.ttff, 50), 0)} ms, max {fmt(max(res.ttff), 0)} ms "
          f"(answer p50 {fmt(pct(res.answer, 50), 0)} ms); each: "
          + ", ".join(f"{t:.0f}" for t in finite) + (f"; {res.ttff_note}" if res.ttff_note else ""))  # fmt: skip
    if res.scale is not None:
        w(f"{res.scale.name}: {res.scale_online}")
    for r in res.pyav:
        w(f"{args.cameras} PyAV demux threads alone, {'with' if r['timeout'] else 'without'} PyAV's "
          f"timeout=(5, 5): {fmt(r['cpu'])} % of one core (sys {fmt(r['sys'])} %), "
          f"{fmt(r['switches'], 0)} context switches/s, {r['alive']} threads still reading")  # fmt: skip
    for note in res.notes:
        w(f"NOTE: {note}")
    w("")
    w("Goals:")
    if "3" in by:
        s = by["3"].hub
        w(f"  full seat ({args.cameras} thumbnails + {args.viewers} live) under {GOALS['seat']:g} % of one "
          f"core: {fmt(s)} % -> {verdict(s < GOALS['seat'])} (prototype {PROTOTYPE['seat']:g} %)")  # fmt: skip
    if res.g2g_hub:
        p50 = pct(res.g2g_hub, 50)
        ok = p50 < GOALS["g2g_p50"]
        w(f"  glass-to-glass p50 under {GOALS['g2g_p50']:g} ms: {fmt(p50, 0)} ms -> {verdict(ok)}")
    if res.ttff:
        m = max(res.ttff)
        w(
            f"  first frame under 1 s (every cycle): max {fmt(m, 0)} ms -> {verdict(m < GOALS['ttff'])}"
        )
    if res.scale is not None:
        s = res.scale.hub
        n = args.scale_cameras
        ok = s < GOALS["scale"] and res.scale_online.endswith(f"{n}/{n} at its end")
        w(f"  {n} cameras in one process under one core: {fmt(s)} % "
          f"({res.scale_online.split(', ')[-1]}) -> {verdict(ok)}")  # fmt: skip
    else:
        why = "see the notes" if "scale" in args.phases else "--phases without scale"
        w(f"  {args.scale_cameras} cameras in one process: not measured ({why})")
    w(f"load average {res.load_before} before, {res.load_after} after; whole run {minutes:.1f} min")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="5 s windows, 150 frames, 4 cycles, no scale phase (~1.5 min)")  # fmt: skip
    p.add_argument("--seconds", type=float, default=None, help="CPU window (default 20; --quick 5)")
    p.add_argument("--cameras", type=int, default=48, help="cameras of the seat (default 48)")
    p.add_argument("--viewers", type=int, default=4, help="live viewers of the seat (default 4)")
    p.add_argument("--frames", type=int, default=None,
                   help="glass-to-glass frames (default 500; --quick 150)")  # fmt: skip
    p.add_argument("--cycles", type=int, default=None,
                   help="first-frame cycles (default 10; --quick 4)")  # fmt: skip
    p.add_argument("--phases", default=None,
                   help="comma separated among latency,ttff,scale,pyav (the seat phases always run; "
                   "default latency,ttff,scale; --quick latency,ttff)")  # fmt: skip
    p.add_argument(
        "--scale-cameras", type=int, default=312, help="cameras of the scale phase (312)"
    )
    p.add_argument("--scale-sample", type=int, default=48,
                   help="ffmpeg references measured in the scale phase, scaled (default 48)")  # fmt: skip
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to wait before each window (default 3; --quick 2)")  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None, help="parent of the temporary directory")
    p.add_argument("--output", type=Path, default=None, help="also write the report to this file")
    p.add_argument("--raw", type=Path, default=None,
                   help="write every measured sample (phases, latencies, first frames) as JSON")  # fmt: skip
    args = p.parse_args(argv)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    args.frames = args.frames or (150 if args.quick else 500)
    args.cycles = args.cycles or (4 if args.quick else 10)
    args.settle = args.settle if args.settle is not None else (2.0 if args.quick else 3.0)
    phases = args.phases or ("latency,ttff" if args.quick else "latency,ttff,scale")
    args.phases = {x.strip() for x in phases.split(",") if x.strip()}
    unknown = args.phases - {"latency", "ttff", "scale", "pyav", "seat"}
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not 1 <= args.cameras <= 99 or args.viewers < 1 or args.viewers > min(4, args.cameras):
        p.error("--cameras 1..99 (mounts /cam01../cam99), --viewers 1..4 (a seat's limit)")
    if args.cameras < args.viewers + 1 and "ttff" in args.phases:
        p.error("the first-frame cycles need a camera that is not live")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("bench/video.py: ffmpeg is missing (the reference); install it with "
              "`bash scripts/system-deps.sh --bench`", file=sys.stderr)  # fmt: skip
        return 2
    from video.simulator.control import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        print(f"bench/video.py: the camera simulator cannot run: {reason}", file=sys.stderr)
        return 2
    import httpx

    scratch = scratch_dir("cityhub-video-", args.data_dir, shared=True)
    started = time.monotonic()
    # a bound on the whole run: a full one takes about 5 minutes, --quick about 1.5
    budget = (180.0 if args.quick else 570.0) + (
        150.0 if args.quick and "scale" in args.phases else 0
    )
    res = Results()

    def body() -> int:
        rc = 1
        try:
            try:
                asyncio.run(asyncio.wait_for(run(args, scratch, res, started + budget), budget))
                rc = 0
            except TimeoutError:  # what was measured so far is still reported
                res.notes.append(f"the run was cut off at its time bound ({budget / 60:.1f} min)")
                res.load_after = loadavg()
            text = report(args, res, (time.monotonic() - started) / 60)
            print(text, flush=True)
            if args.output:
                args.output.write_text(text + "\n")
            if args.raw:
                args.raw.write_text(
                    json.dumps(dataclasses.asdict(res), default=str, indent=1) + "\n"
                )
        except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
            print(f"bench/video.py: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            hub = next((p for p in PROCS if isinstance(p, Hub)), None)
            if hub is not None:
                print(f"--- hub log (tail) ---\n{hub.log_tail()}", file=sys.stderr)
            rc = 1
        return rc

    return run_cleanly(body, stop_all, scratch)


if __name__ == "__main__":
    sys.exit(main())
