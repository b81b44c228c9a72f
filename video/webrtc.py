"""Live tiles over WebRTC with H.264 passthrough: the camera's packets go to the browser as they are.

Theory of operation: a ``LiveViewer`` is one browser tile showing one camera live. The hub takes the
browser's offer (video ``recvonly``), answers with aiortc restricted to H.264 — aiortc would pick VP8
and re-encode unless the transceiver's codec list holds H.264 only — and sends a ``PacketTrack``:
a ``MediaStreamTrack`` whose ``recv()`` returns ``av.Packet`` objects, which aiortc's H.264 encoder
only *packetizes* (``H264Encoder.pack``: split at start codes, FU-A/STAP-A), never encodes. So a live
tile costs RTP packetization and SRTP, not a codec (the issue measured ~1.1 % of a core per viewer).

The packets come from the camera's feed (``video.ingest``): one RTSP session however many viewers,
each viewer a bounded subscription that starts with the cached GOP (a keyframe first, so the picture
appears at once). Rules of the track:

- before the first keyframe nothing is sent (a browser cannot start mid-GOP);
- a keyframe without in-band SPS/PPS gets the stream's ``extradata`` (Annex-B) in front, so a
  camera that only signals them in the SDP still starts in the browser;
- timestamps are the camera's, rescaled to the 90 kHz RTP clock by aiortc, and made strictly
  increasing (a camera's clip loop or a reconnect must not send time backwards);
- a slow viewer: when the subscription says packets were dropped, the track skips to the next
  keyframe rather than send a broken GOP (the newest picture, never a growing backlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from hub.core.errors import ValidationFailed
from hub.ice import Networks, filter_candidates
from video.ingest.source import VideoPacket

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
START_CODE = b"\x00\x00\x00\x01"


class LiveError(ValidationFailed):
    """An offer the hub cannot answer (no video, no H.264): 422 with the reason."""

    code = "bad_offer"


def annexb_extradata(extradata: bytes) -> bytes:
    """SPS/PPS as Annex-B: as given when they already are, converted from an avcC record otherwise
    (ISO 14496-15 §5.2.4.1: version, profile, compat, level, length size, SPS count/len/data, PPS)."""
    if not extradata or extradata.startswith((b"\x00\x00\x01", START_CODE)):
        return extradata
    if extradata[0] != 1 or len(extradata) < 7:
        return b""
    out, pos = bytearray(), 5
    for count_mask in (0x1F, 0xFF):
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            out += START_CODE + extradata[pos + 2 : pos + 2 + size]
            pos += 2 + size
    return bytes(out)


def has_parameter_sets(data: bytes) -> bool:
    """Whether an Annex-B access unit carries an SPS (NAL type 7)."""
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        if data[i + 3] & 0x1F == 7:
            return True
        i = data.find(b"\x00\x00\x01", i + 3)
    return False


class PacketTrack(MediaStreamTrack):
    """A video track of pre-encoded H.264 packets (see the module's rules)."""

    kind = "video"

    def __init__(
        self,
        packets: AsyncIterator[VideoPacket],
        *,
        extradata: bytes = b"",
        dropped: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self._packets = packets
        self._extradata = annexb_extradata(extradata)
        self._dropped = dropped or (lambda: 0)
        self._seen_drops = 0
        self._started = False
        self._last_pts: int | None = None
        self.sent = 0
        self.skipped = 0

    async def recv(self) -> av.Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            try:
                vp = await anext(self._packets)
            except StopAsyncIteration:
                self.stop()
                raise MediaStreamError from None
            drops = self._dropped()
            if drops != self._seen_drops:
                self._seen_drops = drops
                self._started = False  # a gap: wait for the next keyframe
            if not self._started and not vp.keyframe:
                self.skipped += 1
                continue
            self._started = True
            return self._packet(vp)

    def _packet(self, vp: VideoPacket) -> av.Packet[Any]:
        data = vp.data
        if vp.keyframe and self._extradata and not has_parameter_sets(data):
            data = self._extradata + data
        packet = av.Packet(data)
        tb = vp.time_base
        pts = vp.pts if vp.pts is not None else vp.dts
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            # no or backwards time (a loop, a reconnect): one frame after the last
            pts = (self._last_pts or 0) + max(1, round(tb.denominator / tb.numerator / 25))
        self._last_pts = pts
        packet.pts = pts
        packet.dts = pts
        packet.time_base = fractions.Fraction(tb.numerator, tb.denominator)
        self.sent += 1
        return packet


def h264_only(sdp: str) -> str:
    """The offer with its video sections restricted to H.264 (and RTX for H.264): aiortc then has
    nothing to answer but H.264, so it never picks VP8 and re-encodes. Only the browser's formats
    are dropped; everything else in the SDP is kept as it was."""
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    out: list[str] = []
    section: list[str] = []

    def flush() -> None:
        if section and section[0].startswith("m=video "):
            out.extend(_h264_section(section))
        else:
            out.extend(section)
        section.clear()

    for line in lines:
        if line.startswith("m="):
            flush()
        section.append(line)
    flush()
    return "\r\n".join(out) + "\r\n"


def _h264_section(section: list[str]) -> list[str]:
    names: dict[str, str] = {}
    apt: dict[str, str] = {}
    for line in section:
        if line.startswith("a=rtpmap:"):
            pt, _, rest = line[9:].partition(" ")
            names[pt] = rest.split("/")[0].upper()
        elif line.startswith("a=fmtp:") and "apt=" in line:
            pt, _, rest = line[7:].partition(" ")
            apt[pt] = rest.split("apt=")[1].split(";")[0]
    keep = {pt for pt, name in names.items() if name == "H264"}
    keep |= {pt for pt, name in names.items() if name == "RTX" and apt.get(pt) in keep}
    head = section[0].split()
    kept_formats = [f for f in head[3:] if f in keep]
    if not kept_formats:
        return section  # no H.264 offered: aiortc will refuse it below
    result = [" ".join(head[:3] + kept_formats)]
    for line in section[1:]:
        if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            pt = line.split(":", 1)[1].split(" ", 1)[0]
            if pt not in keep and pt != "*":
                continue
        result.append(line)
    return result


class LiveViewer:
    """One browser tile live: ``answer(offer)`` → answer SDP; ``close()``; ``closed`` when over."""

    def __init__(
        self,
        track: PacketTrack,
        *,
        on_close: Callable[[], None] | None = None,
        networks: Networks = (),
    ) -> None:
        self.track = track
        #: ``CITYHUB_WEBRTC_NETWORKS``: the offer's candidates outside them are dropped.
        self.networks = list(networks)
        self.closed = asyncio.Event()
        self._on_close = on_close
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc.on("connectionstatechange", self._state)
        self._closing: asyncio.Task[None] | None = None

    async def answer(self, offer_sdp: str) -> str:
        if len(offer_sdp) > MAX_OFFER_BYTES or "\nm=video " not in "\n" + offer_sdp.replace(
            "\r\n", "\n"
        ):
            await self.close()
            raise LiveError("SDP 中没有视频")
        try:
            offer = filter_candidates(h264_only(offer_sdp), self.networks)
            await self._pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            if not any(t.kind == "video" for t in self._pc.getTransceivers()):
                raise LiveError("SDP 中没有视频")
            self._pc.addTrack(self.track)
            for t in self._pc.getTransceivers():
                if t.sender.track is not self.track:
                    t.direction = "inactive"
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except LiveError:
            await self.close()
            raise
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            await self.close()
            raise LiveError(f"无法应答 SDP: {str(exc)[:200]}") from None
        desc = self._pc.localDescription
        assert desc is not None
        if "H264" not in desc.sdp:
            await self.close()
            raise LiveError("浏览器不支持 H.264")
        return str(desc.sdp)

    def _state(self) -> None:
        if self._pc.connectionState in ("failed", "closed") and self._closing is None:
            self._closing = asyncio.ensure_future(self.close())

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.track.stop()
        with contextlib.suppress(Exception):
            await self._pc.close()
        if self._on_close is not None:
            self._on_close()
