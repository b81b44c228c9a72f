"""The video service of one video process: the registry's cameras ingested, their status published,
thumbnails, live viewers and snapshots.

Theory of operation: ``VideoService.running(hub)`` opens an ``IngestManager`` (``video.ingest``) and
keeps it in step with the ``cameras`` table: at start, whenever the API changes a camera
(``cameras_changed``), and every ``SYNC_PERIOD`` seconds (so a CSV import from another process, or a
speaker moved, reaches a running hub). Every status change of a camera (online, connecting, offline
with the reason, since when) goes on the ``cameras`` state channel, keyed by the camera id.

Live tiles: ``live()`` subscribes to the camera's feed (one RTSP session however many viewers) and
answers the browser's offer with a ``LiveViewer`` (``video.webrtc``: H.264 passthrough); a seat has at
most ``CITYHUB_VIDEO_LIVE_PER_SEAT`` live tiles at once; a viewer that closes, fails or is stopped
unsubscribes, so the feed lingers and closes when nobody else watches.

Handlers reach the service through ``hub.services["video"]``; a process without the video role
answers the media endpoints with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.core.errors import Conflict, NotFound
from storage import cameras as store
from storage.db import connect
from video.ingest.camera import CameraStatus
from video.ingest.manager import IngestCamera, IngestManager
from video.ingest.source import SourceError
from video.ingest.thumbnails import Thumbnail
from video.webrtc import LiveViewer, PacketTrack

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger(__name__)

#: Seconds between re-reads of the camera registry.
SYNC_PERIOD = 60.0
#: Packets a live viewer may queue before it is skipped to the next keyframe.
VIEWER_QUEUE = 256


def ingest_camera(c: store.Camera) -> IngestCamera:
    return IngestCamera(str(c.id), c.main_url, c.username, c.password, pinned=c.pinned)


class VideoService:
    def __init__(self, hub: HubState, manager: IngestManager | None = None) -> None:
        self.hub = hub
        self.manager = manager or IngestManager(on_change=self._status)
        if manager is not None:
            manager.on_change = self._status
        self.cameras: dict[str, IngestCamera] = {}
        self.viewers: dict[str, tuple[int, str, LiveViewer]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_lock = asyncio.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, hub: HubState) -> AsyncIterator[VideoService]:
        service = cls(hub)
        async with service.manager:
            try:
                await service.sync()
                service._spawn(service._periodic_sync(), "camera-sync")
                yield service
            finally:
                for task in list(service._tasks):
                    task.cancel()
                for task in list(service._tasks):
                    with contextlib.suppress(BaseException):
                        await task
                for vid in list(service.viewers):
                    await service.stop_live(vid)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the registry ------------------------------------------------------------------------

    async def sync(self) -> None:
        """Bring the ingest in step with the active cameras of the registry."""
        async with self._sync_lock:
            async with connect(self.hub.pool) as conn:
                rows = await store.list_cameras(conn, active_only=True)
            wanted = {str(c.id): ingest_camera(c) for c in rows}
            for cid in set(self.cameras) - set(wanted):
                await self.manager.remove(cid)
                del self.cameras[cid]
            for cid, cam in wanted.items():
                if cid not in self.cameras:
                    await self.manager.add(cam)
                elif self.cameras[cid] != cam:
                    await self.manager.update(cam)
                self.cameras[cid] = cam

    def cameras_changed(self) -> None:
        self._spawn(self._safe_sync(), "camera-sync-now")

    async def _safe_sync(self) -> None:
        try:
            await self.sync()
        except Exception:  # a database outage: reported, tried again at the next period
            log.exception("camera registry sync failed")

    async def _periodic_sync(self) -> None:
        while True:
            await asyncio.sleep(SYNC_PERIOD)
            await self._safe_sync()

    def _status(self, camera_id: str, status: CameraStatus | None) -> None:
        fanout = self.hub.fanout
        if fanout is not None:
            fanout.set_state("cameras", camera_id, None if status is None else status.to_json())

    def _known(self, camera_id: int) -> str:
        cid = str(camera_id)
        if cid not in self.cameras:
            raise NotFound("摄像头不存在或已停用")
        return cid

    # -- pictures ----------------------------------------------------------------------------

    def thumbnail(self, camera_id: int) -> Thumbnail | None:
        return self.manager.thumbnail(self._known(camera_id))

    async def snapshot(self, camera_id: int) -> tuple[bytes, datetime]:
        cid = self._known(camera_id)
        try:
            return await self.manager.snapshot(cid)
        except SourceError:
            raise Conflict("暂无画面，无法截图", code="no_picture") from None

    # -- live --------------------------------------------------------------------------------

    async def live(self, camera_id: int, user_id: int, offer_sdp: str) -> tuple[str, str]:
        cid = self._known(camera_id)
        limit = self.hub.settings.video_live_per_seat
        mine = [v for v in self.viewers.values() if v[0] == user_id]
        if len(mine) >= limit:
            raise Conflict(
                f"每个坐席最多同时观看 {limit} 路实时视频，请先关闭一路", code="too_many_live"
            )
        sub = self.manager.subscribe(cid, VIEWER_QUEUE)
        info = sub.info
        track = PacketTrack(
            sub, extradata=b"" if info is None else info.extradata, dropped=lambda: sub.dropped
        )
        viewer_id = secrets.token_urlsafe(12)

        def closed() -> None:
            sub.close()
            self.viewers.pop(viewer_id, None)

        viewer = LiveViewer(track, on_close=closed)
        answer = await viewer.answer(offer_sdp)  # LiveError (422) closes it
        self.viewers[viewer_id] = (user_id, cid, viewer)
        return viewer_id, answer

    async def stop_live(self, viewer_id: str, user_id: int | None = None) -> None:
        entry = self.viewers.get(viewer_id)
        if entry is None or (user_id is not None and entry[0] != user_id):
            raise NotFound("实时视频不存在或已关闭")
        await entry[2].close()
        self.viewers.pop(viewer_id, None)

    def health_check(self) -> str:
        states: dict[str, int] = {}
        for st in self.manager.statuses().values():
            states[st.state.value] = states.get(st.state.value, 0) + 1
        parts = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        return f"{len(self.cameras)} cameras ({parts or 'none'}), {len(self.viewers)} live viewers"
