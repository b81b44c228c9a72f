"""RTSP source: PyAV demux (no decode) in one worker thread per session, handed to the loop.

Theory of operation
-------------------
``open()`` starts a daemon thread that ``av.open``s the URL (TCP interleaved by default, FFmpeg's
own socket ``timeout`` of ``read_timeout`` on every connect and read, so no call blocks longer;
PyAV's interrupt ``timeout=`` is *not* used: its callback takes the GIL on every check FFmpeg
makes while it reads, and with 48 demux threads that tipped the process into a GIL convoy — 100-180
thousand context switches a second and over a core of CPU instead of ~0.4 % per camera, measured
by bench/video.py), picks the first video stream and reports its ``StreamInfo`` to
the loop through a future (``loop.call_soon_threadsafe``). The thread then demuxes packets (their
bytes copied: PyAV reuses its buffers) into a bounded ``deque`` — when the loop falls behind the
oldest packet goes and ``dropped`` counts it — and wakes the loop through a ``Handoff``: a source
asks for a wake only when it has none pending (``_wake_pending``), and one ``Handoff`` shared by
every source of a manager keeps at most one ``call_soon_threadsafe`` in flight and at most one per
``interval`` (10 ms) while packets keep coming, however many cameras there are (a wake per packet
cost as much CPU as the demux itself: 1200 wakes/s for 48 cameras). An idle loop is woken at once;
a busy one at most ``interval`` late. ``packets()`` drains that deque on the loop.

Stopping: ``close()`` sets a ``threading.Event`` the thread checks after every packet (and that the
read timeout bounds while the camera is silent); the thread closes the container itself (PyAV
objects are never touched from two threads) and ``close()`` waits for it, so a closed source holds
no thread, socket or file.

Errors become ``SourceError`` with a ``Reason`` (``_reason``): 401/403 → ``unauthorized``, 404 →
``not_found``, ECONNREFUSED → ``refused``, an interrupted or silent read → ``timeout``, a host that
does not resolve or a non-RTSP URL → ``bad_url``, no video stream → ``no_video``, end of stream →
``ended``. URLs in details and logs are redacted.

``probe`` (the DESCRIBE health check, no PyAV) lives in ``probe.py`` and is re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from urllib.parse import urlsplit

import av
import av.error

from video.ingest.probe import ProbeResult, probe
from video.ingest.source import Reason, SourceError, StreamInfo, VideoPacket, redact

__all__ = ["Handoff", "ProbeResult", "RtspSource", "probe"]

log = logging.getLogger(__name__)

_Item = tuple[bytes, int | None, int | None, bool, float]


def check_url(url: str) -> tuple[str, int]:
    """(host, port) of an ``rtsp://`` URL, or ``SourceError(bad_url)``."""
    try:
        parts = urlsplit(url)
        port = parts.port or 554
    except ValueError as exc:
        raise SourceError(Reason.BAD_URL, "unparsable URL") from exc
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        raise SourceError(Reason.BAD_URL, "not an rtsp://host/ URL")
    return parts.hostname, port


def _reason(exc: BaseException, elapsed: float, timeout: float) -> Reason:
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return Reason.UNAUTHORIZED
    if isinstance(exc, av.error.HTTPNotFoundError):
        return Reason.NOT_FOUND
    if isinstance(exc, ConnectionRefusedError):
        return Reason.REFUSED
    if isinstance(exc, av.error.ExitError | TimeoutError):
        return Reason.TIMEOUT
    if isinstance(exc, av.error.EOFError):
        return Reason.ENDED
    if elapsed >= timeout * 0.9:
        return Reason.TIMEOUT  # FFmpeg reports a silent peer as invalid data once the timer fires
    if isinstance(exc, av.error.FileNotFoundError | av.error.ProtocolNotFoundError):
        return Reason.BAD_URL
    if isinstance(exc, OSError) and not isinstance(exc, av.error.InvalidDataError):
        return Reason.UNREACHABLE
    return Reason.ERROR


class Handoff:
    """Wakes the event loop on behalf of worker threads (see the module docstring)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.wakes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._ready: set[Callable[[], None]] = set()
        self._pending = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a Handoff serves one event loop")

    def notify(self, callback: Callable[[], None]) -> None:
        """From any thread: run ``callback`` on the loop soon."""
        with self._lock:
            self._ready.add(callback)
            if self._pending:
                return
            self._pending = True
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._fire)
        except RuntimeError:  # the loop closed under us
            self._pending = False

    def _fire(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, set()
        self.wakes += 1
        for callback in ready:
            callback()
        assert self._loop is not None
        self._loop.call_later(self.interval, self._rearm)

    def _rearm(self) -> None:
        with self._lock:
            if not self._ready:
                self._pending = False
                return
        self._fire()


class RtspSource:
    """One RTSP session (see the module docstring). ``queue_size`` bounds the hand-off deque."""

    def __init__(
        self,
        url: str,
        *,
        transport: str = "tcp",
        open_timeout: float = 5.0,
        read_timeout: float = 5.0,
        queue_size: int = 256,
        handoff: Handoff | None = None,
    ) -> None:
        self.url = url
        self.transport = transport
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.dropped = 0
        self.received = 0
        self._items: deque[_Item] = deque(maxlen=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened: asyncio.Future[StreamInfo] | None = None
        self._finished: asyncio.Future[None] | None = None
        self._failure: SourceError | None = None
        self._ready = asyncio.Event()
        self._wake_pending = False
        self._handoff = handoff or Handoff()
        self._done = False
        self.info: StreamInfo | None = None

    def __repr__(self) -> str:
        return f"RtspSource({redact(self.url)!r})"

    # -- the loop side ------------------------------------------------------------------------

    async def open(self) -> StreamInfo:
        if self._thread is not None:
            raise RuntimeError("an RtspSource opens once")
        check_url(self.url)
        self._loop = asyncio.get_running_loop()
        self._handoff.attach(self._loop)
        self._opened = self._loop.create_future()
        self._finished = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._work, name=f"rtsp {redact(self.url)}", daemon=True
        )
        self._thread.start()
        try:
            self.info = await asyncio.shield(self._opened)
        except BaseException:
            await self.close()
            raise
        return self.info

    async def packets(self) -> AsyncIterator[VideoPacket]:
        if self.info is None:
            raise RuntimeError("packets() before open()")
        time_base = self.info.time_base
        items = self._items
        while True:
            while items:
                data, pts, dts, key, arrived = items.popleft()
                yield VideoPacket(data, pts, dts, time_base, key, arrived)
            if self._done:
                if items:
                    continue
                if self._failure is not None:
                    raise self._failure
                return
            self._ready.clear()
            if items or self._done:
                continue
            await self._ready.wait()

    async def close(self) -> None:
        self._stop.set()
        if self._finished is not None and self._thread is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._finished)
            await asyncio.to_thread(self._thread.join)

    # -- hand-off (called on the loop by the thread) ------------------------------------------

    def _wake(self) -> None:
        self._wake_pending = False
        self._ready.set()

    def _report_open(self, info: StreamInfo | None, error: SourceError | None) -> None:
        assert self._opened is not None
        if self._opened.done():
            return
        if error is not None:
            self._opened.set_exception(error)
        elif info is not None:
            self._opened.set_result(info)

    def _report_end(self, error: SourceError | None) -> None:
        self._failure = error
        self._done = True
        self._ready.set()
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(error or SourceError(Reason.ENDED, "closed while opening"))
            self._opened.exception()  # retrieved: open() may have gone (cancelled)
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _call(self, callback: object, *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            self._loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]

    # -- the worker thread --------------------------------------------------------------------

    def _work(self) -> None:
        error: SourceError | None = None
        try:
            error = self._session()
        except Exception as exc:  # anything unexpected still ends the session cleanly
            log.exception("rtsp worker for %s failed", redact(self.url))
            error = SourceError(Reason.ERROR, type(exc).__name__)
        if self._stop.is_set():
            error = None
        self._call(self._report_end, error)

    def _session(self) -> SourceError | None:
        host, port = check_url(self.url)
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return SourceError(Reason.BAD_URL, "host name does not resolve")
        options = {
            "rtsp_transport": self.transport,
            "timeout": str(int(self.read_timeout * 1_000_000)),
            "analyzeduration": "1000000",
            "probesize": "1000000",
        }
        started = time.monotonic()
        try:
            container = av.open(self.url, options=options)
        except av.error.FFmpegError as exc:
            reason = _reason(exc, time.monotonic() - started, self.open_timeout)
            return SourceError(reason, f"open: {type(exc).__name__}")
        try:
            return self._demux(container)
        finally:
            container.close()

    def _demux(self, container: av.container.InputContainer) -> SourceError | None:
        if not container.streams.video:
            error = SourceError(Reason.NO_VIDEO, "no video stream")
            self._call(self._report_open, None, error)
            return error
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info = StreamInfo(
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            time_base=stream.time_base or Fraction(1, 90000),
            extradata=bytes(ctx.extradata or b""),
        )
        self._call(self._report_open, info, None)
        items = self._items
        maxlen = items.maxlen
        stop = self._stop
        clock = time.monotonic
        notify = self._handoff.notify
        wake = self._wake
        started = clock()
        try:
            for packet in container.demux(stream):
                if stop.is_set():
                    return None
                if packet.size == 0:
                    continue  # the flush packet at the end of the stream
                if len(items) == maxlen:
                    self.dropped += 1
                items.append((bytes(packet), packet.pts, packet.dts, packet.is_keyframe, clock()))
                self.received += 1
                if not self._wake_pending:
                    self._wake_pending = True
                    notify(wake)
                started = clock()
        except av.error.FFmpegError as exc:
            if stop.is_set():
                return None
            reason = _reason(exc, clock() - started, self.read_timeout)
            return SourceError(reason, f"read: {type(exc).__name__}")
        return None if stop.is_set() else SourceError(Reason.ENDED, "end of stream")
