"""Keyframe thumbnails (320x180 JPEG) and full-size snapshots, decoded in worker threads.

Theory of operation
-------------------
A ``Thumbnailer`` is one more consumer of a ``CameraFeed`` (it keeps the session open while tiles
ask for pictures). It reads its subscription on the loop and looks only at keyframes: each new
keyframe becomes the *pending* one; one decode at a time runs in the executor (a fresh ``h264``
decoder fed the stream's SPS/PPS and that one packet, flushed; never a P-frame), scales to
``width``x``height`` ``yuvj420p`` and encodes with PyAV's ``mjpeg`` encoder (Pillow is not needed).
A keyframe that arrives while a decode runs replaces the pending one, so the decoder never falls
behind and each keyframe is decoded at most once however many tiles read ``latest()``.

``snapshot()`` is the full-size JPEG of the newest keyframe: the frame decoded for the thumbnail is
kept and encoded at full size on request (once per keyframe, cached); a keyframe newer than the
last decode is decoded first. ``last_used`` lets the manager stop thumbnailers nobody asks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

import av

from video.ingest.camera import CameraFeed, Subscription
from video.ingest.source import Reason, SourceError, StreamInfo, VideoPacket

log = logging.getLogger(__name__)

THUMB_WIDTH = 320
THUMB_HEIGHT = 180


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    captured_at: datetime
    width: int
    height: int


def _annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")


def decode_keyframe(data: bytes, codec: str = "h264", extradata: bytes = b"") -> av.VideoFrame:
    """Decode one keyframe packet alone (blocking: call it in a worker thread)."""
    decoder = av.CodecContext.create(codec, "r")
    assert isinstance(decoder, av.VideoCodecContext)
    decoder.thread_count = 1
    if extradata and _annexb(extradata) and _annexb(data):
        data = extradata + data  # SPS/PPS in band, whatever the camera sent
    elif extradata:
        decoder.extradata = extradata
    frames = decoder.decode(av.Packet(data))
    frames += decoder.decode(None)
    video = [f for f in frames if isinstance(f, av.VideoFrame)]
    if not video:
        raise SourceError(Reason.ERROR, "keyframe did not decode")
    return video[-1]


def encode_jpeg(frame: av.VideoFrame, width: int | None = None, height: int | None = None) -> bytes:
    """``frame`` as a baseline JPEG, scaled to ``width``x``height`` if given (blocking)."""
    width = width or frame.width
    height = height or frame.height
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    packets = encoder.encode(picture)
    packets += encoder.encode(None)
    return b"".join(bytes(p) for p in packets)


def _thumbnail(
    packet: VideoPacket, info: StreamInfo, width: int, height: int
) -> tuple[av.VideoFrame, bytes]:
    frame = decode_keyframe(packet.data, info.codec, info.extradata)
    return frame, encode_jpeg(frame, width, height)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Thumbnailer:
    def __init__(
        self,
        feed: CameraFeed,
        *,
        executor: concurrent.futures.Executor | None = None,
        width: int = THUMB_WIDTH,
        height: int = THUMB_HEIGHT,
        wallclock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.feed = feed
        self.executor = executor
        self.width = width
        self.height = height
        self._wallclock = wallclock
        self.decoded = 0  # keyframes decoded (at most one per keyframe)
        self.keyframes = 0  # keyframes seen
        self.failures = 0
        self.last_used = asyncio.get_running_loop().time()
        self._latest: Thumbnail | None = None
        self.keyframe_seen = asyncio.Event()
        self._pending: tuple[VideoPacket, StreamInfo, datetime] | None = None
        self._newest: tuple[VideoPacket, StreamInfo, datetime] | None = None
        self._frame: tuple[VideoPacket, av.VideoFrame, datetime] | None = None
        self._full: tuple[VideoPacket, bytes] | None = None
        self._decoding: asyncio.Future[tuple[av.VideoFrame, bytes]] | None = None
        self._sub: Subscription = feed.subscribe(maxsize=32)
        self._task = asyncio.get_running_loop().create_task(
            self._read(), name=f"thumbnails {feed.camera_id}"
        )

    def latest(self) -> Thumbnail | None:
        self.last_used = asyncio.get_running_loop().time()
        return self._latest

    async def snapshot(self) -> tuple[bytes, datetime]:
        """The full-size JPEG of the newest keyframe and its capture time; ``SourceError`` when
        no keyframe has arrived yet."""
        loop = asyncio.get_running_loop()
        self.last_used = loop.time()
        newest = self._newest
        if newest is None:
            raise SourceError(Reason.ERROR, "no keyframe yet")
        packet, info, captured = newest
        if self._full is not None and self._full[0] is packet:
            return self._full[1], captured
        if self._frame is not None and self._frame[0] is packet:
            frame = self._frame[1]
            jpeg = await loop.run_in_executor(self.executor, encode_jpeg, frame, None, None)
        else:
            frame = await loop.run_in_executor(
                self.executor, decode_keyframe, packet.data, info.codec, info.extradata
            )
            jpeg = await loop.run_in_executor(self.executor, encode_jpeg, frame, None, None)
        self._full = (packet, jpeg)
        return jpeg, captured

    async def close(self) -> None:
        self._sub.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._decoding is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._decoding

    async def _read(self) -> None:
        async for packet in self._sub:
            if not packet.keyframe:
                continue
            info = self.feed.info
            if info is None:
                continue
            self.keyframes += 1
            entry = (packet, info, self._wallclock())
            self._newest = entry
            self._pending = entry
            self.keyframe_seen.set()
            if self._decoding is None:
                self._next()

    def _next(self) -> None:
        entry, self._pending = self._pending, None
        if entry is None:
            self._decoding = None
            return
        packet, info, captured = entry
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.executor, _thumbnail, packet, info, self.width, self.height
        )
        self._decoding = future
        future.add_done_callback(lambda f: self._decoded(f, packet, captured))

    def _decoded(
        self,
        future: asyncio.Future[tuple[av.VideoFrame, bytes]],
        packet: VideoPacket,
        captured: datetime,
    ) -> None:
        if future.cancelled():
            self._decoding = None
            return
        error = future.exception()
        if error is not None:
            self.failures += 1
            log.warning("camera %s: thumbnail failed: %r", self.feed.camera_id, error)
        else:
            frame, jpeg = future.result()
            self.decoded += 1
            self._frame = (packet, frame, captured)
            self._latest = Thumbnail(jpeg, captured, self.width, self.height)
        self._next()
