"""Run the camera simulator from asyncio: ``async with CameraSimulator(48) as sim: sim.url(7)``.

Theory of operation: the RTSP server (``rtsp_server.py``) needs GStreamer's Python bindings, which
live in Debian's Python, not in the venv; so this side encodes the clips it needs with PyAV
(``clips.make_clip``, cached on disk, in a worker thread), then starts ``/usr/bin/python3
rtsp_server.py`` as a subprocess and waits for its one JSON ready line (the bound port and the
mounts). The password, when there is one, goes to the subprocess on its stdin, never on its command
line. Afterwards the subprocess's stdin carries control lines (``stop 7``, ``start 7``) and its
stdout one JSON reply per line; a lock keeps one command in flight. Its stderr (GStreamer warnings)
is read by a task and logged at debug level. Leaving the context sends ``quit`` and closes stdin,
waits for the exit, and kills the process if it does not go within a few seconds: nothing is left
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from video.simulator.clips import default_cache_dir, make_clip

log = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
READY_TIMEOUT = 20.0
REPLY_TIMEOUT = 5.0


class SimulatorError(RuntimeError):
    """The simulator could not start, or a control command failed."""


def unavailable_reason(python: str = SYSTEM_PYTHON) -> str | None:
    """Why the simulator cannot run here (``None`` when it can): the system Python needs GstRtspServer."""
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        done = subprocess.run(  # noqa: S603  (our own fixed probe)
            [python, "-c", probe], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} cannot run: {exc}"
    if done.returncode != 0:
        return (
            f"{python} has no GstRtspServer (python3-gi, gir1.2-gst-rtsp-server-1.0; "
            "see scripts/system-deps.sh)"
        )
    return None


class CameraSimulator:
    """``count`` looping 720p H.264 cameras (``/cam01`` …) and a live ``/clock`` on 127.0.0.1.

    By default all cameras share one clip, looped from memory by one pacing thread, and each
    mount payloads it in its own shared media (2 Mbit/s clips, 48 cameras each read by one client:
    ~40% of a core; a mount's first client starts on a keyframe at once). ``one_media=True``
    gives every mount the *same* media (one payloader: ~7% of a core for the same load, ~1% idle),
    but a client then joins mid-GOP and waits up to 2 s for a keyframe. ``labels=True`` gives each
    camera its own clip with ``CAM 07`` drawn in (encoded once, ~1 s each, cached; one master
    per camera on the server, and no one-media sharing across cameras).
    """

    def __init__(
        self,
        count: int = 48,
        *,
        port: int = 0,
        clock: bool = True,
        user: str | None = None,
        password: str | None = None,
        seconds: float = 10.0,
        labels: bool = False,
        cache_dir: Path | None = None,
        python: str = SYSTEM_PYTHON,
        host: str = "127.0.0.1",
        one_media: bool = False,
    ) -> None:
        if count < 1 or count > 99:
            raise ValueError(f"count must be 1..99, got {count}")
        self.count = count
        self.clock = clock
        self.user = user
        self.password = password
        self.seconds = seconds
        self.labels = labels
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.python = python
        self.host = host
        self.one_media = one_media
        self.mounts: list[str] = []
        self._requested_port = port
        self._port: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise SimulatorError("the simulator is not running")
        return self._port

    def _base(self, *, credentials: bool) -> str:
        auth = ""
        if credentials and self.user is not None:
            auth = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@"
        return f"rtsp://{auth}{self.host}:{self.port}"

    def url(self, n: int, *, credentials: bool = True) -> str:
        """The RTSP URL of camera ``n`` (1-based), with the credentials when there are some."""
        if not 1 <= n <= self.count:
            raise ValueError(f"no camera {n} (1..{self.count})")
        return f"{self._base(credentials=credentials)}/cam{n:02d}"

    @property
    def clock_url(self) -> str:
        if not self.clock:
            raise SimulatorError("the simulator runs without /clock")
        return f"{self._base(credentials=True)}/clock"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._proc is not None:
            raise SimulatorError("already started")
        clips = await asyncio.to_thread(self._clips)
        args = [self.python, str(SERVER), "--count", str(self.count)]
        args += [f"--clip={clip}" for clip in clips]
        args += ["--port", str(self._requested_port)]
        if self.clock:
            args.append("--clock")
        if self.one_media:
            args.append("--one-media")
        if self.user is not None:
            args += ["--user", self.user, "--password-stdin"]
        env = {**os.environ, "GST_DEBUG": os.environ.get("GST_DEBUG", "1")}
        self._proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._proc))
        try:
            if self.user is not None:
                self._write(self.password or "")
            ready = await self._read_json(READY_TIMEOUT)
            if "port" not in ready:
                raise SimulatorError(f"simulator failed: {ready.get('error', ready)}")
            self._port = int(ready["port"])
            self.mounts = list(ready["mounts"])
        except BaseException:
            await self.close()
            raise
        log.info("camera simulator: %d cameras on %s", self.count, self._base(credentials=False))

    def _clips(self) -> list[Path]:
        if not self.labels:
            return [make_clip(self.cache_dir, seconds=self.seconds, text="CITYHUB SIM")]
        return [
            make_clip(self.cache_dir, seconds=self.seconds, text=f"CAM {n:02d}")
            for n in range(1, self.count + 1)
        ]

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        self._port = None
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                proc.stdin.write(b"quit\n")
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()

    # -- control -----------------------------------------------------------------------------

    async def stop_mount(self, n: int) -> int:
        """Camera ``n`` goes away: its clients lose the stream, new ones get 404. Returns how many
        client connections were closed."""
        reply = await self._command(f"stop {n}")
        return int(reply.get("closed", 0))

    async def start_mount(self, n: int) -> None:
        """Camera ``n`` comes back."""
        await self._command(f"start {n}")

    async def _command(self, line: str) -> dict[str, Any]:
        if not 1 <= int(line.split()[1]) <= self.count:
            raise ValueError(f"no camera in {line!r} (1..{self.count})")
        async with self._lock:
            self._write(line)
            reply = await self._read_json(REPLY_TIMEOUT)
        if "ok" not in reply:
            raise SimulatorError(f"{line}: {reply.get('error', reply)}")
        return reply

    def _write(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise SimulatorError("the simulator is not running")
        self._proc.stdin.write(line.encode() + b"\n")

    async def _read_json(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        if self._proc is None or self._proc.stdout is None:
            raise SimulatorError("the simulator is not running")
        try:
            raw = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            raise SimulatorError(f"the simulator did not answer within {timeout:g} s") from None
        if not raw:
            code = await self._proc.wait()
            raise SimulatorError(f"the simulator exited (status {code})")
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise SimulatorError(f"unexpected line from the simulator: {raw[:200]!r}")
        return value

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            log.debug("simulator: %s", line.decode(errors="replace").rstrip())
