"""The simulator's RTSP server: N looping pre-encoded cameras and one live clock, over GstRtspServer.

Runs under Debian's ``/usr/bin/python3`` (it needs ``gi`` with GstRtspServer, which the venv does
not have); ``video.simulator.control`` starts it as a subprocess. It imports nothing from cityhub
but ``video.simulator.timecode`` (standard library only).

Theory of operation: one GLib main loop in the main thread runs the RTSP server; a reader thread
takes control lines from stdin and hands them to the main loop with ``GLib.idle_add`` (GStreamer
objects are touched from the main loop only). When the server is bound it prints one JSON line
``{"port": N, "mounts": [...]}`` on stdout; every control line is answered with one JSON line.

Cameras: ``/cam01 … /camNN``. One *master* per clip (by default every mount shares one clip, so
there is one for the whole server) parses the pre-encoded Annex-B clip into access units once at
start (``filesrc ! h264parse ! appsink``, no decoding or encoding anywhere), keeps them in memory,
and a pacing thread hands them out in a loop at the clip's frame rate, stamped on one continuous
time line (no loop point to see). Each mount is a *shared* media factory (all clients of a mount
share one media) whose pipeline is only ``appsrc ! rtph264pay``: the master pushes every access
unit (a new ``Gst.Buffer`` header sharing the payload memory) into the appsrc of every mount that
has clients, restamped on that
mount's own time line, so its timestamps run on continuously across the clip's loop point. A new
mount media gets the master's current GOP first (see ``Master``), so its first client starts on a
keyframe at once (ffmpeg still probes ~1 s of frames before ``av.open`` returns). A client's
``PLAY`` never restarts the shared time line. The server hands each client its own thread (the
default pool has one, which serialises every ``DESCRIBE``).

With ``--one-media`` every mount of a clip gets the *same* shared media instead (one factory mounted
at every path, with a constant cache key): one payloader for all, the same RTP packets sent to every
client, about a fifth of the CPU for 48 clients; that media is pinned (kept prepared for good),
and a client joins it mid-GOP.

``/clock``: ``videotestsrc is-live=true pattern=ball`` (I420) with ``clockoverlay`` (``%H:%M:%S``;
GLib's strftime has no sub-second field) and a ``textoverlay`` rewritten from a pad probe on every
frame with the UTC wall time to the millisecond (``HH:MM:SS.mmm``), encoded live with ``x264enc
tune=zerolatency``, one pipeline per client (not shared, unlike the cameras): a viewer compares the
picture with its own clock to read the latency. The same
probe writes that millisecond into the raw frame as a machine-readable stripe of black and white
blocks (``timecode``: rows 336-367, 37 blocks of 32 px; the frame's memory is mapped through ctypes,
the bindings here copy on map), which ``timecode.decode`` reads back from a decoded frame: the
benchmark's glass-to-glass latency.

Control lines (stdin): ``stop N`` removes ``/camNN`` from the mount table (new clients get 404) and
closes every client that has a session on it (their TCP connection ends); ``start N`` mounts it
again; ``quit`` (or EOF on stdin) stops the server. Basic auth, when ``--user`` is given, guards
every mount.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gi  # type: ignore[import-not-found, unused-ignore]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # type: ignore[import-not-found, unused-ignore]  # noqa: E402

# ``timecode`` (standard library only) sits next to this script; run as a script, its directory is
# on ``sys.path`` but the ``video`` package is not.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from video.simulator import timecode  # noqa: E402

SHALLOW_COPY = (
    Gst.BufferCopyFlags.FLAGS
    | Gst.BufferCopyFlags.TIMESTAMPS
    | Gst.BufferCopyFlags.META
    | Gst.BufferCopyFlags.MEMORY
)
BURST_STEP = 1_000_000  # ns between the cached GOP's frames when a mount's media starts
AU_CAPS = "video/x-h264,stream-format=byte-stream,alignment=au"
CLOCK_WIDTH, CLOCK_HEIGHT = 1280, 720  # I420: the Y plane's rows are CLOCK_WIDTH bytes apart


class _MapInfo(ctypes.Structure):
    """``GstMapInfo``: the introspected ``Gst.Memory.map`` returns a *copy* of the data (there are no
    gst-python overrides here), so the clock's probe maps the frame's memory through ctypes."""

    _fields_ = [
        ("memory", ctypes.c_void_p),
        ("flags", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
        ("maxsize", ctypes.c_size_t),
        ("user_data", ctypes.c_void_p * 4),
        ("_gst_reserved", ctypes.c_void_p * 4),
    ]


def _libgst() -> Any:
    lib = ctypes.CDLL("libgstreamer-1.0.so.0")
    lib.gst_buffer_n_memory.restype = ctypes.c_uint
    lib.gst_buffer_n_memory.argtypes = [ctypes.c_void_p]
    lib.gst_buffer_peek_memory.restype = ctypes.c_void_p
    lib.gst_buffer_peek_memory.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.gst_memory_map.restype = ctypes.c_bool
    lib.gst_memory_map.argtypes = [ctypes.c_void_p, ctypes.POINTER(_MapInfo), ctypes.c_int]
    lib.gst_memory_unmap.restype = None
    lib.gst_memory_unmap.argtypes = [ctypes.c_void_p, ctypes.POINTER(_MapInfo)]
    return lib


LIBGST = _libgst()
MAP_READWRITE = 3  # GST_MAP_READ | GST_MAP_WRITE


def write_timecode(buffer: Any, ms: int) -> bool:
    """Write the time code stripe for ``ms`` into a raw I420 1280x720 frame, in place (luma blocks,
    neutral chroma behind them). False when the frame's memory cannot be mapped for writing."""
    ptr = hash(buffer)  # PyGObject: a boxed value hashes to its C pointer (the GstBuffer *)
    if LIBGST.gst_buffer_n_memory(ptr) != 1:
        return False
    memory = LIBGST.gst_buffer_peek_memory(ptr, 0)
    info = _MapInfo()
    if not LIBGST.gst_memory_map(memory, ctypes.byref(info), MAP_READWRITE):
        return False
    try:
        w, h, top, rows = CLOCK_WIDTH, CLOCK_HEIGHT, timecode.TOP, timecode.BLOCK
        if info.size < w * h * 3 // 2:
            return False
        luma = timecode.stripe_row(ms, w) * rows
        ctypes.memmove(info.data + top * w, luma, len(luma))
        grey = b"\x80" * (w // 2 * rows // 2)
        for plane in (w * h, w * h + w * h // 4):  # U, then V: w/2 bytes a row, h/2 rows
            ctypes.memmove(info.data + plane + top // 2 * (w // 2), grey, len(grey))
        return True
    finally:
        LIBGST.gst_memory_unmap(memory, ctypes.byref(info))


def mount_path(n: int) -> str:
    return f"/cam{n:02d}"


def load_access_units(clip: str) -> list[Any]:
    """The clip's access units (``Gst.Buffer``\\s, SPS/PPS before every IDR), parsed once."""
    location = clip.replace("\\", "\\\\").replace('"', '\\"')
    pipeline = Gst.parse_launch(
        f'filesrc location="{location}" ! h264parse config-interval=-1 ! {AU_CAPS} '
        "! appsink name=sink sync=false max-buffers=0"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units = []
    try:
        while (sample := sink.emit("try-pull-sample", 5 * Gst.SECOND)) is not None:
            units.append(sample.get_buffer())
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not units or units[0].has_flags(Gst.BufferFlags.DELTA_UNIT):
        raise RuntimeError(f"{clip}: no H.264 access units starting with a keyframe")
    return units


MOUNT_LAUNCH = (
    f'( appsrc name=src is-live=false format=time caps="{AU_CAPS}" '
    "max-buffers=300 max-bytes=0 leaky-type=downstream ! rtph264pay name=pay0 pt=96 )"
)

CLOCK_LAUNCH = (
    "( videotestsrc is-live=true pattern=ball "
    "! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 "
    '! clockoverlay time-format="%H:%M:%S" halignment=left valignment=top font-desc="Sans 40" '
    '! textoverlay name=ms text="" halignment=left valignment=bottom font-desc="Sans 40" '
    "! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 bitrate=2000 aud=false "
    "! video/x-h264,stream-format=byte-stream,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 )"
)


class Master:
    """One looping clip, fanned out to the appsrc of every mount playing it.

    The master keeps the current GOP (the buffers since the last keyframe). A mount's appsrc gets
    nothing until it has asked for data (``need-data``: its pipeline has started; a push before
    that would be dropped), then, with the next access unit, the cached GOP at once, stamped 0,
    1 ms, 2 ms, … (the media is not live, so its sink holds the keyframe as its preroll until the
    first client's ``PLAY``: that client starts on a keyframe immediately, and the burst goes out
    at once; stamped at its original 40 ms spacing it would sit up to a GOP ahead of the clock,
    fill the appsrc queue and stall the media), then every new access unit as it comes, 40 ms
    apart, on the same time line.
    """

    def __init__(self, clip: str) -> None:
        self.units = load_access_units(clip)
        delta = Gst.BufferFlags.DELTA_UNIT
        self.keyframes = [not unit.has_flags(delta) for unit in self.units]
        duration = self.units[0].duration
        self.period = duration if 0 < duration < Gst.SECOND else Gst.SECOND // 25
        self.lock = threading.Lock()  # guards everything below; pushes happen under it, in order
        self.gop: list[Any] = []
        # appsrc -> None until it asked for data, then (its pts - the master's dts)
        self.sources: dict[Any, int | None] = {}
        self.mount_of: dict[Any, int] = {}
        self.wants: set[Any] = set()  # appsrcs that asked for data (set without the lock)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._pace, name=f"clip {clip}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2.0)

    def _pace(self) -> None:
        """Hand out access unit ``i`` (of the looping clip) at ``start + i * period``, stamped
        ``i * period``: the master's time line, continuous across the loop point."""
        start = time.monotonic_ns()
        i = 0
        while True:
            delay = start + i * self.period - time.monotonic_ns()
            if self.stopping.wait(max(0, delay) / 1e9):
                return
            k = i % len(self.units)
            self._emit(self.units[k], self.keyframes[k], i * self.period)
            i += 1

    def add(self, appsrc: Any, n: int) -> None:
        with self.lock:
            self.sources[appsrc] = None
            self.mount_of[appsrc] = n
        appsrc.connect("need-data", self._need_data)

    def remove(self, appsrc: Any) -> None:
        with self.lock:
            self.sources.pop(appsrc, None)
            self.mount_of.pop(appsrc, None)
            self.wants.discard(appsrc)

    def remove_mount(self, n: int) -> None:
        with self.lock:
            for appsrc in [src for src, m in self.mount_of.items() if m == n]:
                self.sources.pop(appsrc, None)
                self.mount_of.pop(appsrc, None)
                self.wants.discard(appsrc)

    def _need_data(self, appsrc: Any, _length: int) -> None:
        # Only a flag, no lock: appsrc emits need-data holding its own mutex, and the master
        # thread pushes (taking that mutex) while holding ``self.lock``; waiting for the lock
        # here would deadlock.
        self.wants.add(appsrc)

    def _emit(self, buffer: Any, keyframe: bool, dts: int) -> None:
        with self.lock:
            if keyframe or len(self.gop) > 250:
                self.gop.clear()
            self.gop.append(buffer)
            for src, offset in self.sources.items():
                if offset is not None:
                    self._push(src, buffer, dts + offset)
                elif src in self.wants:  # started: the cached GOP (with this buffer) at once
                    for i, cached in enumerate(self.gop):
                        self._push(src, cached, i * BURST_STEP)
                    self.sources[src] = (len(self.gop) - 1) * BURST_STEP - dts

    @staticmethod
    def _push(appsrc: Any, buffer: Any, pts: int) -> None:
        # A new buffer sharing the memory: Python's ``copy()`` is only a ref, and each mount needs
        # its own timestamps.
        out = buffer.copy_region(SHALLOW_COPY, 0, buffer.get_size())
        out.pts = out.dts = max(0, pts)
        appsrc.emit("push-buffer", out)


class OneMediaFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc, unused-ignore]
    """A factory mounted at many paths that gives all of them one shared media (one payloader,
    the same RTP packets to every client of every mount): the media cache key is constant."""

    def do_gen_key(self, url: Any) -> str:
        return "one-media"


class Simulator:
    def __init__(self, clips: list[str], count: int, *, clock: bool, user: str | None,
                 password: str | None, one_media: bool) -> None:  # fmt: skip
        self.one_media = one_media
        self.shared: dict[int, Any] = {}  # clip index -> the factory all its mounts share
        self.loop = GLib.MainLoop()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.mounts = self.server.get_mount_points()
        self.server.get_thread_pool().set_max_threads(-1)  # a thread per client: no head-of-line
        self.user = user
        if user is not None:
            auth = GstRtspServer.RTSPAuth()
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", user)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password or ""), token)
            self.server.set_auth(auth)
        self.masters = [Master(clip) for clip in clips]
        self.factories: dict[int, Any] = {}
        for n in range(1, count + 1):
            self._mount(n)
        self.clock = clock
        if clock:
            factory = self._factory(CLOCK_LAUNCH)
            # Not shared: a shared live media is torn down when its last client leaves, and a
            # client arriving meanwhile got 503 (every other immediate reopen did); a media of its
            # own per client costs an encoder each, and nothing once they have gone (pinning the
            # shared one would keep x264 running, ~30 % of a core, for good).
            factory.set_shared(False)
            factory.connect("media-configure", self._clock_configure)
            self.mounts.add_factory("/clock", factory)

    def _mount(self, n: int) -> None:
        """Mount camera ``n``: its own fresh factory (a stopped camera's cached media is not
        reused), or with ``one_media`` the factory its clip shares with every other mount."""
        index = (n - 1) % len(self.masters)
        master = self.masters[index]
        if self.one_media:
            factory = self.shared.get(index)
            if factory is None:
                factory = self.shared[index] = self._factory(MOUNT_LAUNCH, OneMediaFactory)
                factory.connect("media-configure", self._camera_configure, master, 0)
                factory.connect("media-configure", self._pin)
        else:
            factory = self._factory(MOUNT_LAUNCH)
            factory.connect("media-configure", self._camera_configure, master, n)
        self.factories[n] = factory
        self.mounts.add_factory(mount_path(n), factory)

    def _factory(self, launch: str, kind: Any = GstRtspServer.RTSPMediaFactory) -> Any:
        factory = kind()
        factory.set_launch(launch)
        factory.set_shared(True)
        if self.user is not None:
            role = Gst.Structure.new_from_string(
                f"{self.user}, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )
            factory.add_role_from_structure(role)
        return factory

    def _camera_configure(self, factory: Any, media: Any, master: Master, n: int) -> None:
        appsrc = media.get_element().get_by_name("src")
        master.add(appsrc, n)
        media.connect("unprepared", lambda _media: master.remove(appsrc))

    def _pin(self, factory: Any, media: Any) -> None:
        """Keep the one media prepared for good (an extra prepare count, taken once it is
        prepared): otherwise it is torn down whenever its last client leaves, and a client that
        arrives meanwhile gets 503 (GstRtspServer: "can not reuse media")."""

        def pin() -> bool:
            media.prepare(None)
            return False

        media.connect("prepared", lambda _media: GLib.idle_add(pin))

    def _clock_configure(self, factory: Any, media: Any) -> None:
        overlay = media.get_element().get_by_name("ms")
        overlay.get_static_pad("video_sink").add_probe(
            Gst.PadProbeType.BUFFER, self._stamp, overlay
        )

    def _stamp(self, pad: Any, info: Any, overlay: Any) -> Any:
        wall = time.time()
        now = datetime.fromtimestamp(wall, UTC)
        overlay.set_property("text", now.strftime("%H:%M:%S.") + f"{now.microsecond // 1000:03d}")
        buffer = info.get_buffer()
        if buffer is not None:
            write_timecode(buffer, timecode.ms_of_day(wall))
        return Gst.PadProbeReturn.OK

    def ready(self) -> dict[str, Any]:
        mounts = [mount_path(n) for n in sorted(self.factories)]
        if self.clock:
            mounts.append("/clock")
        return {"port": self.server.get_bound_port(), "mounts": mounts}

    # -- control (main loop only) ------------------------------------------------------------

    def command(self, line: str) -> bool:
        words = line.split()
        reply: dict[str, Any]
        if not words:
            return False
        if words[0] == "quit":
            self.loop.quit()
            return False
        try:
            verb, n = words[0], int(words[1])
            if n not in self.factories or verb not in ("stop", "start"):
                raise ValueError(line)
        except (IndexError, ValueError):
            reply = {"error": f"bad command: {line[:80]}"}
        else:
            if verb == "stop":
                self.mounts.remove_factory(mount_path(n))
                for master in self.masters:
                    master.remove_mount(n)
                closed = self._close_clients(mount_path(n))
                reply = {"ok": verb, "mount": mount_path(n), "closed": closed}
            else:
                self.mounts.remove_factory(mount_path(n))
                self._mount(n)
                reply = {"ok": verb, "mount": mount_path(n)}
        print(json.dumps(reply), flush=True)
        return False

    def _close_clients(self, path: str) -> int:
        closed = 0
        hit = False

        def on_media(session: Any, media: Any, _data: Any) -> Any:
            nonlocal hit
            matches, _ = media.matches(path)
            if matches:
                hit = True
            return GstRtspServer.RTSPFilterResult.KEEP

        def on_session(client: Any, session: Any, _data: Any) -> Any:
            session.filter(on_media, None)
            return GstRtspServer.RTSPFilterResult.KEEP

        def on_client(server: Any, client: Any, _data: Any) -> Any:
            nonlocal hit, closed
            hit = False
            client.session_filter(on_session, None)
            if hit:
                closed += 1
                return GstRtspServer.RTSPFilterResult.REMOVE
            return GstRtspServer.RTSPFilterResult.KEEP

        self.server.client_filter(on_client, None)
        return closed

    def run(self) -> None:
        self.server.set_service("0" if self.port == 0 else str(self.port))
        if self.server.attach(None) == 0:
            print(json.dumps({"error": f"cannot bind port {self.port}"}), flush=True)
            sys.exit(1)
        print(json.dumps(self.ready()), flush=True)
        for master in self.masters:
            master.start()
        threading.Thread(target=self._stdin, daemon=True).start()
        try:
            self.loop.run()
        finally:
            for master in self.masters:
                master.stop()

    port = 0

    def _stdin(self) -> None:
        for line in sys.stdin:
            GLib.idle_add(self.command, line.strip())
        GLib.idle_add(self.command, "quit")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="cityhub camera simulator (RTSP server)")
    parser.add_argument("--clip", action="append", required=True, help="Annex-B H.264 clip")
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--clock", action="store_true")
    parser.add_argument("--one-media", action="store_true",
                        help="all mounts of a clip share one media (one payloader)")  # fmt: skip
    parser.add_argument("--user")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first stdin line")  # fmt: skip
    args = parser.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    Gst.init(None)
    sim = Simulator(
        args.clip,
        args.count,
        clock=args.clock,
        user=args.user,
        password=password,
        one_media=args.one_media,
    )
    sim.port = args.port
    sim.run()


if __name__ == "__main__":
    main()
