"""The video service of one video process: the registry's cameras ingested, their status published,
thumbnails, live viewers and snapshots.

Theory of operation: ``VideoService.running(hub)`` opens an ``IngestManager`` (``video.ingest``) and
keeps it in step with the ``cameras`` table: at start, whenever the API changes a camera
(``cameras_changed``), and every ``SYNC_PERIOD`` seconds (so a CSV import from another process, or a
speaker moved, reaches a running hub). Every status change of a camera (online, connecting, offline
with the reason, since when) goes on the ``cameras`` state channel, keyed by the camera id.

Live tiles: ``live()`` subscribes to the camera's feed (one RTSP session however many viewers) and
answers the browser's offer with a ``LiveViewer`` (``video.webrtc``: H.264 passthrough). Where WebRTC
cannot connect the page falls back to ``live_mp4()``: the same subscription muxed into fragmented
MP4 (``video.mp4``, no re-encoding) for Media Source Extensions, an ``Mp4Viewer`` streamed as one
HTTP response (``video.mse_routes``). Both kinds are ``viewers``: a seat has at most
``CITYHUB_VIDEO_LIVE_PER_SEAT`` live tiles at once, whichever the transport (a slot is taken before
the first await, so concurrent requests cannot exceed it); a viewer that closes, fails, disconnects
or is stopped (``stop_live``, or the service stopping) unsubscribes, so the feed lingers and closes
when nobody else watches. A slow MSE client: the HTTP writer awaits the socket (the server's flow
control), so nothing queues past the subscription's bounded queue, which drops to the next keyframe.

Handlers reach the service through ``hub.services["video"]``; a process without the video role
answers the media endpoints with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.core.errors import Conflict, NotFound
from hub.ice import parse_networks, restrict_host_addresses
from storage import cameras as store
from storage.db import connect
from video.ingest.camera import CameraStatus, Subscription
from video.ingest.manager import IngestCamera, IngestManager
from video.ingest.source import SourceError, VideoPacket
from video.ingest.thumbnails import Thumbnail
from video.mp4 import FragmentedMp4, mp4_clip
from video.webrtc import LiveViewer, PacketTrack

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger(__name__)

#: Seconds between re-reads of the camera registry.
SYNC_PERIOD = 60.0
#: Packets a live viewer may queue before it is skipped to the next keyframe: about 5 s at 25 fps,
#: room for the cached GOP a new viewer starts with (up to a 4 s GOP) and no more, so a viewer that
#: falls behind jumps to the newest picture instead of draining a long backlog.
VIEWER_QUEUE = 128
#: Seconds an MSE viewer waits for the camera's first keyframe before it is refused.
FIRST_PICTURE_TIMEOUT = 15.0


class Mp4Viewer:
    """One live tile over MSE: ``stream(mux, first)`` yields the fMP4 bytes of ``subscription``
    (init segment, then a fragment per packet) until ``close()``, which unsubscribes."""

    def __init__(self, subscription: Subscription, on_close: Callable[[], None]) -> None:
        self.subscription = subscription
        self.closed = asyncio.Event()
        self.sent = 0  # bytes handed to the HTTP writer
        self._on_close = on_close

    async def first_keyframe(self) -> VideoPacket:
        """The subscription's first packet (a keyframe: the cached GOP's, or the next one)."""
        packet = await anext(self.subscription)
        if not packet.keyframe:  # the queue starts at a keyframe; a camera flagging none is refused
            raise ValueError("the first packet is not a keyframe")
        return packet

    async def stream(self, mux: FragmentedMp4, first: VideoPacket) -> AsyncGenerator[bytes, None]:
        try:
            init = mux.init_segment()
            self.sent += len(init)
            yield init
            packet: VideoPacket | None = first
            while packet is not None and not self.closed.is_set():
                chunk = mux.add(packet)
                self.sent += len(chunk)
                yield chunk
                packet = await anext(self.subscription, None)
        finally:
            await self.close()

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.subscription.close()
        self._on_close()


def ingest_camera(c: store.Camera) -> IngestCamera:
    return IngestCamera(str(c.id), c.main_url, c.username, c.password, pinned=c.pinned)


class VideoService:
    def __init__(self, hub: HubState, manager: IngestManager | None = None) -> None:
        self.hub = hub
        st = hub.settings
        self.manager = manager or IngestManager(
            probe_interval=st.video_probe_interval,
            linger=st.video_linger,
            stall_timeout=st.video_stall_timeout,
            history_seconds=st.video_clip_seconds,
            on_change=self._status,
        )
        if manager is not None:
            manager.on_change = self._status
        self.cameras: dict[str, IngestCamera] = {}
        self.viewers: dict[str, tuple[int, str, LiveViewer | Mp4Viewer]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_lock = asyncio.Lock()
        # CITYHUB_WEBRTC_NETWORKS for live tiles too (a web+video process runs no telephony)
        self.networks = parse_networks(hub.settings.webrtc_networks)
        if self.networks:
            restrict_host_addresses(self.networks)

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

    async def clip(self, camera_id: int, seconds: float) -> tuple[bytes, float]:
        """About the last ``seconds`` of the camera as an MP4 (from a keyframe; packets copied,
        never re-encoded, muxed in a worker thread) and the seconds it holds."""
        cid = self._known(camera_id)
        info, packets = self.manager.recent(cid, seconds)
        if info is None or not packets:
            raise Conflict("暂无可用的视频片段（画面刚接入）", code="no_clip")
        data = await asyncio.to_thread(mp4_clip, info, packets)
        return data, packets[-1].arrived - packets[0].arrived

    # -- live --------------------------------------------------------------------------------

    def _check_limit(self, user_id: int) -> None:
        limit = self.hub.settings.video_live_per_seat
        mine = [v for v in self.viewers.values() if v[0] == user_id]
        if len(mine) >= limit:
            raise Conflict(
                f"每个坐席最多同时观看 {limit} 路实时视频，请先关闭一路", code="too_many_live"
            )

    async def live(self, camera_id: int, user_id: int, offer_sdp: str) -> tuple[str, str]:
        cid = self._known(camera_id)
        self._check_limit(user_id)
        sub = self.manager.subscribe(cid, VIEWER_QUEUE)
        info = sub.info
        track = PacketTrack(
            sub, extradata=b"" if info is None else info.extradata, dropped=lambda: sub.dropped
        )
        viewer_id = secrets.token_urlsafe(12)

        def closed() -> None:
            sub.close()
            self.viewers.pop(viewer_id, None)

        viewer = LiveViewer(track, on_close=closed, networks=self.networks)
        self.viewers[viewer_id] = (user_id, cid, viewer)  # the slot is taken before any await
        try:
            answer = await viewer.answer(offer_sdp)  # LiveError (422) closes it
        except BaseException:
            self.viewers.pop(viewer_id, None)
            sub.close()
            raise
        return viewer_id, answer

    async def live_mp4(
        self, camera_id: int, user_id: int
    ) -> tuple[str, str, AsyncGenerator[bytes, None]]:
        """A live MSE viewer: ``(viewer_id, codec string, the fMP4 bytes)``. The stream ends when
        the viewer is stopped or the service stops; closing the generator (the client went away)
        ends the viewer. 409 when the seat is at its limit or the camera sends no picture."""
        cid = self._known(camera_id)
        self._check_limit(user_id)
        sub = self.manager.subscribe(cid, VIEWER_QUEUE)
        viewer_id = secrets.token_urlsafe(12)

        def closed() -> None:
            self.viewers.pop(viewer_id, None)

        viewer = Mp4Viewer(sub, on_close=closed)
        self.viewers[viewer_id] = (user_id, cid, viewer)  # the slot is taken before any await
        try:
            async with asyncio.timeout(FIRST_PICTURE_TIMEOUT):
                first = await viewer.first_keyframe()
            info = sub.info
            if info is None:
                raise ValueError("no stream information")
            mux = FragmentedMp4(info, first)
        except (TimeoutError, StopAsyncIteration, ValueError) as exc:
            await viewer.close()
            log.info("camera %s: no MSE live view (%r)", cid, exc)
            raise Conflict("暂无画面，无法播放实时视频", code="no_picture") from None
        except BaseException:
            await viewer.close()
            raise
        return viewer_id, mux.codec_string, viewer.stream(mux, first)

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
