"""``IngestManager``: every camera's feed, health and thumbnails, by camera id.

Theory of operation
-------------------
``add(camera)`` creates the camera's ``CameraFeed`` (idle unless pinned: sessions open when a
consumer subscribes) and a probe task. The status the hub shows (``status(id)``, ``on_change``)
comes from the feed while it has a session, and from the probe otherwise: every
``probe_interval`` s (default 5) an idle camera gets one RTSP ``DESCRIBE`` (``probe.probe``, at most
``probe_timeout`` s), so a camera nobody watches that dies shows offline within
``probe_interval + probe_timeout`` s and one that returns shows online within ``probe_interval``
s; a watched camera's feed notices itself (read errors, the stall timeout) and reconnects with a
backoff capped at 5 s. A feed starting a session for a camera already known online does not flicker
to "connecting".

RTSP sources share one ``rtsp.Handoff``: their worker threads wake the loop together, at most once
per 10 ms under load, instead of once per packet.

Thumbnails: ``thumbnail(id)`` starts that camera's ``Thumbnailer`` on first use (one per camera, a
consumer of the feed) and returns the newest picture; a housekeeping task stops thumbnailers nobody
asked for ``thumbnail_idle`` s, after which the feed lingers and closes. Decoding runs on one small
thread pool owned by the manager.

``update`` replaces the feed when the URL or credentials change (its subscribers' iterators end:
they subscribe again) and only re-pins otherwise; ``remove`` closes the feed, its thumbnailer and
probe, leaving no thread, socket or file. ``close()`` removes everything and stops the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from hub.core.errors import NotFound
from video.ingest.camera import CameraFeed, CameraState, CameraStatus, Subscription
from video.ingest.probe import ProbeResult, probe
from video.ingest.rtsp import Handoff, RtspSource
from video.ingest.source import (
    CameraId,
    Reason,
    Source,
    StreamInfo,
    VideoPacket,
    redact,
    with_credentials,
)
from video.ingest.thumbnails import Thumbnail, Thumbnailer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestCamera:
    """What ingest needs of a camera (the registry's row, trimmed). The password never shows."""

    id: CameraId
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    pinned: bool = False

    @property
    def source_url(self) -> str:
        """The URL with credentials, for the source only (never log it: ``redacted``)."""
        return with_credentials(self.url, self.username, self.password)

    @property
    def redacted(self) -> str:
        return redact(self.url)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Entry:
    camera: IngestCamera
    feed: CameraFeed
    status: CameraStatus
    prober: asyncio.Task[None] | None = None
    thumbnailer: Thumbnailer | None = None


class IngestManager:
    def __init__(
        self,
        *,
        source_factory: Callable[[IngestCamera], Source] | None = None,
        probe_interval: float = 5.0,
        probe_timeout: float = 3.0,
        linger: float = 10.0,
        stall_timeout: float = 5.0,
        thumbnail_idle: float = 15.0,
        history_seconds: float = 0.0,
        on_change: Callable[[CameraId, CameraStatus | None], None] | None = None,
        wallclock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._handoff = Handoff()
        self.source_factory = source_factory or self._rtsp
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.linger = linger
        self.stall_timeout = stall_timeout
        self.thumbnail_idle = thumbnail_idle
        self.history_seconds = history_seconds
        self.on_change = on_change
        self._wallclock = wallclock
        self._entries: dict[CameraId, _Entry] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- cameras ------------------------------------------------------------------------------

    @property
    def camera_ids(self) -> list[CameraId]:
        return list(self._entries)

    def _entry(self, camera_id: CameraId) -> _Entry:
        try:
            return self._entries[camera_id]
        except KeyError:
            raise NotFound(f"摄像头不存在: {camera_id}", details={"camera_id": camera_id}) from None

    async def add(self, camera: IngestCamera) -> None:
        if camera.id in self._entries:
            await self.update(camera)
            return
        status = CameraStatus(CameraState.CONNECTING, None, self._wallclock())
        entry = _Entry(camera, self._new_feed(camera), status)
        self._entries[camera.id] = entry
        entry.prober = asyncio.get_running_loop().create_task(
            self._probe_loop(entry), name=f"camera probe {camera.id}"
        )
        self._publish(camera.id, status)
        if self._housekeeping is None:
            self._housekeeping = asyncio.get_running_loop().create_task(
                self._housekeep(), name="ingest housekeeping"
            )

    async def update(self, camera: IngestCamera) -> None:
        entry = self._entry(camera.id)
        old = entry.camera
        entry.camera = camera
        if (old.url, old.username, old.password) == (camera.url, camera.username, camera.password):
            entry.feed.pin(camera.pinned)
            return
        await self._close_media(entry)
        entry.feed = self._new_feed(camera)
        entry.status = CameraStatus(CameraState.CONNECTING, None, self._wallclock())
        self._publish(camera.id, entry.status)
        if entry.prober is not None:
            entry.prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await entry.prober
        entry.prober = asyncio.get_running_loop().create_task(
            self._probe_loop(entry), name=f"camera probe {camera.id}"
        )

    async def remove(self, camera_id: CameraId) -> None:
        entry = self._entries.pop(camera_id, None)
        if entry is None:
            return
        if entry.prober is not None:
            entry.prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await entry.prober
        await self._close_media(entry)
        self._publish(camera_id, None)

    async def close(self) -> None:
        for camera_id in list(self._entries):
            await self.remove(camera_id)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- consumers ----------------------------------------------------------------------------

    def feed(self, camera_id: CameraId) -> CameraFeed:
        return self._entry(camera_id).feed

    def subscribe(self, camera_id: CameraId, maxsize: int = 128) -> Subscription:
        return self._entry(camera_id).feed.subscribe(maxsize)

    def status(self, camera_id: CameraId) -> CameraStatus:
        return self._entry(camera_id).status

    def statuses(self) -> dict[CameraId, CameraStatus]:
        return {camera_id: entry.status for camera_id, entry in self._entries.items()}

    def thumbnailer(self, camera_id: CameraId) -> Thumbnailer:
        """The camera's thumbnailer, started on first use."""
        entry = self._entry(camera_id)
        if entry.thumbnailer is None:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="cityhub-thumbnails"
                )
            entry.thumbnailer = Thumbnailer(entry.feed, executor=self._executor)
        return entry.thumbnailer

    def thumbnail(self, camera_id: CameraId) -> Thumbnail | None:
        """The newest thumbnail, or None while the first keyframe is on its way."""
        return self.thumbnailer(camera_id).latest()

    async def snapshot(self, camera_id: CameraId) -> tuple[bytes, datetime]:
        """The full-size JPEG of the camera's newest keyframe and its capture time."""
        thumbnailer = self.thumbnailer(camera_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10.0):
                await thumbnailer.keyframe_seen.wait()
        return await thumbnailer.snapshot()

    def recent(
        self, camera_id: CameraId, seconds: float
    ) -> tuple[StreamInfo | None, tuple[VideoPacket, ...]]:
        """About the last ``seconds`` of the camera's packets, from a keyframe (see
        ``CameraFeed.recent``)."""
        return self._entry(camera_id).feed.recent(seconds)

    # -- internals ----------------------------------------------------------------------------

    def _rtsp(self, camera: IngestCamera) -> Source:
        return RtspSource(camera.source_url, handoff=self._handoff)

    def _new_feed(self, camera: IngestCamera) -> CameraFeed:
        def changed(status: CameraStatus) -> None:
            self._feed_changed(camera.id, status)

        return CameraFeed(
            camera.id,
            lambda: self.source_factory(camera),
            linger=self.linger,
            pinned=camera.pinned,
            stall_timeout=self.stall_timeout,
            history_seconds=self.history_seconds,
            on_change=changed,
            wallclock=self._wallclock,
        )

    async def _close_media(self, entry: _Entry) -> None:
        if entry.thumbnailer is not None:
            await entry.thumbnailer.close()
            entry.thumbnailer = None
        await entry.feed.close()

    def _publish(self, camera_id: CameraId, status: CameraStatus | None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(camera_id, status)
        except Exception:
            log.exception("camera %s: status listener failed", camera_id)

    def _set(self, entry: _Entry, state: CameraState, reason: Reason | None) -> None:
        current = entry.status
        if current.state is state and current.reason is reason:
            return
        entry.status = CameraStatus(state, reason, self._wallclock())
        self._publish(entry.camera.id, entry.status)

    def _feed_changed(self, camera_id: CameraId, status: CameraStatus) -> None:
        entry = self._entries.get(camera_id)
        if entry is None or not entry.feed.active:
            return
        if status.state is CameraState.CONNECTING and entry.status.state is CameraState.ONLINE:
            return
        self._set(entry, status.state, status.reason)

    async def _probe_loop(self, entry: _Entry) -> None:
        while True:
            feed = entry.feed
            if not feed.active:
                try:
                    result = await probe(entry.camera.source_url, self.probe_timeout)
                except Exception:
                    log.exception("camera %s: probe failed", entry.camera.id)
                    result = ProbeResult(False, Reason.ERROR)
                if feed is entry.feed and not feed.active:
                    if result.online:
                        self._set(entry, CameraState.ONLINE, None)
                    else:
                        self._set(entry, CameraState.OFFLINE, result.reason)
            elif entry.status.state is not feed.status.state:
                self._set(entry, feed.status.state, feed.status.reason)
            await asyncio.sleep(self.probe_interval)

    async def _housekeep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, self.thumbnail_idle / 2))
            now = loop.time()
            for entry in list(self._entries.values()):
                thumbnailer = entry.thumbnailer
                if thumbnailer is not None and now - thumbnailer.last_used > self.thumbnail_idle:
                    entry.thumbnailer = None
                    await thumbnailer.close()
