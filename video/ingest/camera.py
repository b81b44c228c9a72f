"""``CameraFeed``: one camera's session, opened on demand and shared by every consumer.

Theory of operation
-------------------
The first ``subscribe()`` (or ``pinned=True``) starts the feed's task, which loops forever:
ask the factory for a new ``Source``, ``open()`` it (status ``connecting`` → ``online``), pump its
packets into the GOP cache (``gop.GopCache``) and every subscriber's bounded queue
(``gop.PacketQueue``: a slow subscriber's backlog is dropped and counted, it resumes at the next
keyframe), until the source fails, ends or stalls (no packet for ``stall_timeout`` s, watched with
``backoff.StallWatch`` by one sleeper per session, not a timer per packet). Then the status is
``offline`` with the ``Reason``, the source is closed and the next attempt waits for
``backoff.Backoff`` (exponential, full jitter, capped, reset after a stable period).

With ``history_seconds`` the feed also keeps its last seconds as whole GOPs
(``gop.PacketHistory``): ``recent()`` hands them to a snapshot's clip, copied, never re-encoded.

A new subscriber first receives the cached GOP (keyframe first) and then live packets, so a viewer
starts at once. When the last subscriber leaves, the session stays open ``linger`` seconds more
(a viewer that comes right back, the next patrol page) and then closes; a pinned feed never does.
``close()`` ends everything: the task, the source, and every subscription (their iterators stop).

``status`` (state, reason, since) is published through ``on_change`` on every change. While the
feed is idle (no session) its status is whatever it was last; the manager's DESCRIBE probes say
the truth for idle cameras.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from video.ingest.backoff import Backoff, StallWatch
from video.ingest.gop import GopCache, PacketHistory, PacketQueue
from video.ingest.source import CameraId, Reason, Source, SourceError, StreamInfo, VideoPacket

log = logging.getLogger(__name__)


class CameraState(enum.Enum):
    ONLINE = "online"
    CONNECTING = "connecting"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class CameraStatus:
    state: CameraState
    reason: Reason | None
    since: datetime

    @property
    def message(self) -> str:
        if self.reason is not None:
            return self.reason.message
        return {"online": "在线", "connecting": "连接中", "offline": "离线"}[self.state.value]

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason.value if self.reason else None,
            "message": self.message,
            "since": self.since.isoformat(),
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Subscription:
    """One consumer of a feed: ``async for packet in subscription`` (cached GOP first). The
    iterator ends when the subscription is closed or the feed is closed."""

    def __init__(self, feed: CameraFeed, maxsize: int) -> None:
        self.feed = feed
        self.queue = PacketQueue(maxsize)
        self._ready = asyncio.Event()
        self.closed = False

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    @property
    def info(self) -> StreamInfo | None:
        return self.feed.info

    def _push(self, packet: VideoPacket) -> None:
        if self.queue.push(packet):
            self._ready.set()

    def _end(self) -> None:
        self.closed = True
        self.queue.restart()
        while self.queue.pop() is not None:
            pass
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> VideoPacket:
        while True:
            packet = self.queue.pop()
            if packet is not None:
                return packet
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        self.feed.unsubscribe(self)


class CameraFeed:
    def __init__(
        self,
        camera_id: CameraId,
        source_factory: Callable[[], Source],
        *,
        linger: float = 10.0,
        pinned: bool = False,
        stall_timeout: float = 5.0,
        open_timeout: float = 15.0,
        backoff: Backoff | None = None,
        gop: GopCache | None = None,
        history_seconds: float = 0.0,
        on_change: Callable[[CameraStatus], None] | None = None,
        wallclock: Callable[[], datetime] = _utcnow,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.camera_id = camera_id
        self.source_factory = source_factory
        self.linger = linger
        self.stall_timeout = stall_timeout
        self.open_timeout = open_timeout
        self.backoff = backoff or Backoff()
        self.gop = gop or GopCache()
        #: The last seconds as whole GOPs, for clips (``None`` when clips are off).
        self.history = PacketHistory(history_seconds) if history_seconds > 0 else None
        self.on_change = on_change
        self._wallclock = wallclock
        self._draw = draw
        self._pinned = pinned
        self._subs: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._linger: asyncio.TimerHandle | None = None
        self._closed = False
        self.info: StreamInfo | None = None
        self.sessions = 0  # sessions opened so far (a second viewer must not open a second one)
        self.packets = 0
        self.status = CameraStatus(CameraState.CONNECTING, None, wallclock())
        if pinned:
            self._start()

    def __repr__(self) -> str:
        return f"CameraFeed({self.camera_id!r}, {self.status.state.value})"

    # -- consumers ----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether a session task runs (connecting, online or backing off)."""
        return self._task is not None and not self._task.done()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def pinned(self) -> bool:
        return self._pinned

    def subscribe(self, maxsize: int = 128) -> Subscription:
        if self._closed:
            raise RuntimeError(f"camera feed {self.camera_id} is closed")
        sub = Subscription(self, maxsize)
        sub.queue.prime(self.gop.packets())
        if len(sub.queue):
            sub._ready.set()
        self._subs.append(sub)
        self._cancel_linger()
        self._start()
        return sub

    def recent(self, seconds: float) -> tuple[StreamInfo | None, tuple[VideoPacket, ...]]:
        """The stream and its packets of about the last ``seconds`` (from a keyframe), as kept
        for clips; no packets when clips are off or the session has just opened."""
        if self.history is None:
            return self.info, ()
        return self.info, self.history.since(seconds, asyncio.get_running_loop().time())

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub._end()
        self._maybe_linger()

    def pin(self, pinned: bool) -> None:
        self._pinned = pinned
        if pinned:
            self._cancel_linger()
            self._start()
        else:
            self._maybe_linger()

    async def close(self) -> None:
        """Stop for good: the session, the source and every subscription."""
        self._closed = True
        self._cancel_linger()
        for sub in self._subs:
            sub._end()
        self._subs.clear()
        await self._stop()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self.active or self._closed:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"camera feed {self.camera_id}"
        )

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _cancel_linger(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    def _maybe_linger(self) -> None:
        if self._subs or self._pinned or self._closed or not self.active:
            return
        self._cancel_linger()
        self._linger = asyncio.get_running_loop().call_later(self.linger, self._linger_over)

    def _linger_over(self) -> None:
        self._linger = None
        if self._subs or self._pinned:
            return
        task = asyncio.get_running_loop().create_task(self._stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _set(self, state: CameraState, reason: Reason | None = None) -> None:
        if self.status.state is state and self.status.reason is reason:
            return
        self.status = CameraStatus(state, reason, self._wallclock())
        if self.on_change is not None:
            try:
                self.on_change(self.status)
            except Exception:
                log.exception("camera %s: status listener failed", self.camera_id)

    # -- the session loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self.status.state is not CameraState.OFFLINE:
            self._set(CameraState.CONNECTING)
        try:
            while True:
                source = self.source_factory()
                try:
                    await self._session(source)
                    reason = Reason.ENDED
                except SourceError as exc:
                    reason = exc.reason
                    log.info("camera %s: %s (%s)", self.camera_id, reason.value, exc.detail)
                finally:
                    await source.close()
                    self.gop.clear()
                    if self.history is not None:
                        self.history.clear()
                self._set(CameraState.OFFLINE, reason)
                await asyncio.sleep(self.backoff.failed(loop.time(), self._draw()))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("camera %s: feed task failed", self.camera_id)
            self._set(CameraState.OFFLINE, Reason.ERROR)

    async def _session(self, source: Source) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.open_timeout):
                info = await source.open()
        except TimeoutError as exc:
            raise SourceError(Reason.TIMEOUT, "open took too long") from exc
        self.info = info
        self.sessions += 1
        self.backoff.connected(loop.time())
        self.gop.clear()
        for sub in self._subs:
            sub.queue.restart()
        self._set(CameraState.ONLINE)
        watch = StallWatch(self.stall_timeout, loop.time())
        pump = loop.create_task(self._pump(source, watch), name=f"camera pump {self.camera_id}")
        try:
            while True:
                await asyncio.wait([pump], timeout=max(0.0, watch.deadline - loop.time()))
                if pump.done():
                    pump.result()
                    return
                if watch.expired(loop.time()):
                    raise SourceError(Reason.STALLED, f"no packet for {self.stall_timeout} s")
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, SourceError):
                await pump

    async def _pump(self, source: Source, watch: StallWatch) -> None:
        loop = asyncio.get_running_loop()
        gop = self.gop
        history = self.history
        subs = self._subs
        async for packet in source.packets():
            watch.seen(loop.time())
            self.packets += 1
            gop.add(packet)
            if history is not None:
                history.add(packet)
            for sub in subs:
                sub._push(packet)
