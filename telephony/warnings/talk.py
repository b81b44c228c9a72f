"""Live talk, the WebRTC side: a browser's microphone in, 20 ms G.711 frames out.

Theory of operation: a ``TalkSession`` is one browser's push-to-talk. ``answer(offer)`` gives the
offer (audio only; the browser offers Opus and/or G.711) to an aiortc ``RTCPeerConnection`` configured
with no STUN or TURN server (``RTCConfiguration(iceServers=[])``: host candidates only, nothing leaves
the machine to find an address), makes every audio transceiver ``recvonly`` (anything else
``inactive``) and returns the answer SDP. When the remote audio track arrives a reader task pulls
decoded frames from it (aiortc decodes Opus/G.711 in its own decoder thread), resamples each to 8 kHz
mono s16 with one ``av.AudioResampler``, appends the samples to a numpy buffer, cuts it into exact
160-sample (20 ms) pieces, encodes those with ``telephony.g711`` in one vectorised call per frame and
puts each 160-byte piece on every subscriber's queue.

Consumers (the RTP streams towards the speakers) ``subscribe()`` a bounded queue; a full queue drops
its oldest frame (a late speaker hears the newest voice, never an ever-growing delay) and counts it.

With ``outbound`` (a local audio track: the 12319 hotline's caller audio towards the agent) the audio
transceiver is ``sendrecv`` and carries that track; ``prefer`` lists codec names (``PCMA``, ``PCMU``):
the offer is cut to the first of them it has before aiortc reads it (so G.711 passes through
instead of being transcoded to Opus); ``codec`` then names the codec the answer chose.

The session ends (``closed`` is set, ``end_reason`` says why) on ``close()``, when the peer
connection fails or closes, when the remote track ends, or when no audio frame arrives for
``idle_timeout`` seconds (which also covers an offer whose ICE never connects).

Where media may flow: ``CITYHUB_WEBRTC_NETWORKS`` (CIDR networks) limits both ends of ICE to the
city's network: ``restrict_host_addresses`` makes aioice gather only local addresses inside them
(loopback included when listed: aioice leaves 127.0.0.1 out by default), and each session drops the
offer's candidates outside them (and mDNS ``.local`` names) before aiortc sees the offer. Empty: no
limit (every interface, every candidate). Tests set ``127.0.0.0/8`` so nothing leaves loopback.

Where the CPU goes: resampling one 20 ms frame (960 samples at 48 kHz) costs about 20 µs on this
machine (2.8 ms once, when the resampler builds its filter graph on the first frame); a thread hand-off
per frame would cost more than the work itself, so the resample runs on the event loop in the reader
task, right after aiortc's decoder thread has done the heavy part. ``stats.max_frame_seconds`` keeps
the longest per-frame processing time seen, so a blocked loop shows up in the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Sequence
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from hub.ice import Networks, filter_candidates, parse_networks, restrict_host_addresses
from telephony.errors import TelephonyError
from telephony.g711 import G711Law

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "EndReason",
    "Networks",
    "TalkError",
    "TalkSession",
    "TalkStats",
    "filter_candidates",
    "parse_networks",
    "restrict_host_addresses",
]

log = logging.getLogger("cityhub.telephony.talk")

FRAME_SAMPLES: Final = 160  # 20 ms at 8 kHz
FRAME_BYTES: Final = FRAME_SAMPLES  # one G.711 byte per sample
MAX_OFFER_BYTES: Final = 64 * 1024


def offered_codecs(sdp: str) -> list[str]:
    """The audio codec names of an SDP's first audio section, in its order."""
    names: list[str] = []
    in_audio = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            if in_audio:
                break
            in_audio = line.startswith("m=audio ")
        elif in_audio and line.startswith("a=rtpmap:"):
            parts = line.split(None, 1)
            if len(parts) == 2:
                names.append(parts[1].split("/", 1)[0])
    return names


def prefer_codec(sdp: str, prefer: Sequence[str]) -> str:
    """The offer with its first audio section cut to the first of ``prefer`` it has (and
    telephone-event), so the answer can only choose that one (aiortc negotiates the codecs while it
    reads the offer, in the offer's order); unchanged when it has none of them."""
    offered = [n.upper() for n in offered_codecs(sdp)]
    name = next((n.upper() for n in prefer if n.upper() in offered), None)
    if name is None:
        return sdp
    keep_names = {name, "TELEPHONE-EVENT"}
    lines = sdp.replace("\r\n", "\n").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("m=audio "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    keep_pts: set[str] = set()
    for line in lines[start:end]:
        if line.startswith("a=rtpmap:"):
            pt, _, rest = line[len("a=rtpmap:") :].partition(" ")
            if rest.split("/", 1)[0].upper() in keep_names:
                keep_pts.add(pt)
    out = lines[:start]
    m = lines[start].split()
    out.append(" ".join(m[:3] + [pt for pt in m[3:] if pt in keep_pts]))
    for line in lines[start + 1 : end]:
        for prefix in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
            if line.startswith(prefix):
                pt = line[len(prefix) :].split(" ", 1)[0]
                if pt not in keep_pts:
                    break
        else:
            out.append(line)
    out += lines[end:]
    return "\r\n".join(out)


def answered_codec(sdp: str) -> str | None:
    """The codec an answer chose: the first payload type of its audio section."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    first: str | None = None
    in_audio = False
    for line in lines:
        if line.startswith("m="):
            if in_audio:
                break
            in_audio = line.startswith("m=audio ")
            parts = line.split()
            if in_audio and len(parts) > 3:
                first = parts[3]
        elif in_audio and first is not None and line.startswith(f"a=rtpmap:{first} "):
            return line.split(None, 1)[1].split("/", 1)[0]
    return None


class TalkError(TelephonyError):
    """A browser's offer that cannot be answered (not SDP, no audio, or a second offer)."""


class EndReason(enum.Enum):
    CLOSED = "closed"  # close() was called
    PEER_CLOSED = "peer_closed"  # the peer connection closed from the other side
    FAILED = "failed"  # ICE/DTLS failed
    TRACK_ENDED = "track_ended"  # the remote audio track ended
    IDLE = "idle"  # no audio for idle_timeout seconds


@dataclasses.dataclass(slots=True)
class TalkStats:
    frames_in: int = 0  # decoded frames from the browser
    frames_out: int = 0  # 160-byte G.711 frames produced
    dropped: int = 0  # frames dropped from full subscriber queues
    max_frame_seconds: float = 0.0  # the longest resample + encode + deliver of one input frame


class TalkSession:
    """One browser's live talk. Create it, ``await answer(offer_sdp)``, ``subscribe()``, and
    ``await close()`` (idempotent) when done; ``closed`` is set however it ends."""

    def __init__(
        self,
        law: G711Law = G711Law.ALAW,
        *,
        idle_timeout: float = 10.0,
        networks: Networks = (),
        outbound: MediaStreamTrack | None = None,
        prefer: Sequence[str] = (),
    ) -> None:
        self.law = law
        self.outbound = outbound
        self.prefer = tuple(prefer)
        #: The audio codec of the answer (``"PCMA"``, ``"PCMU"``, ``"opus"`` …), once answered.
        self.codec: str | None = None
        self.networks = list(networks)
        self.idle_timeout = idle_timeout
        self.closed = asyncio.Event()
        self.end_reason: EndReason | None = None
        self.stats = TalkStats()
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._queues: list[asyncio.Queue[bytes]] = []
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._answered = False
        self._pending: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_state)

    # -- signalling --------------------------------------------------------------------------

    async def answer(self, offer_sdp: str) -> str:
        """The answer SDP to a browser's offer; TalkError when it cannot be answered."""
        if self._answered:
            raise TalkError("这个通话已经应答")
        if self.closed.is_set():
            raise TalkError("通话已结束")
        if not isinstance(offer_sdp, str) or len(offer_sdp) > MAX_OFFER_BYTES:
            raise TalkError("无效的 SDP")
        if "\nm=audio " not in "\n" + offer_sdp.replace("\r\n", "\n"):
            raise TalkError("SDP 中没有音频")
        self._answered = True
        try:
            offer = filter_candidates(offer_sdp, self.networks)
            if self.prefer:
                offer = prefer_codec(offer, self.prefer)
            await self._pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            audio = [t for t in self._pc.getTransceivers() if t.kind == "audio"]
            for transceiver in self._pc.getTransceivers():
                transceiver.direction = "recvonly" if transceiver.kind == "audio" else "inactive"
            if self.outbound is not None and audio:
                self._pc.addTrack(self.outbound)
                audio[0].direction = "sendrecv"
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except Exception as exc:  # aiortc's parser and checks raise all sorts (AssertionError…)
            await self._ended(EndReason.FAILED)
            raise TalkError(f"无法应答 SDP: {(str(exc) or type(exc).__name__)[:200]}") from None
        self._watchdog = asyncio.get_running_loop().create_task(self._first_audio_watchdog())
        description = self._pc.localDescription
        assert description is not None
        self.codec = answered_codec(str(description.sdp))
        return str(description.sdp)

    # -- consumers ---------------------------------------------------------------------------

    def subscribe(self, maxsize: int = 10) -> asyncio.Queue[bytes]:
        """A bounded queue of 160-byte G.711 frames from now on; the oldest is dropped when full.
        Nothing marks the end in the queue: a consumer waits on ``closed`` as well."""
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        q: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self._queues.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[bytes]) -> None:
        with contextlib.suppress(ValueError):
            self._queues.remove(q)

    # -- ending ------------------------------------------------------------------------------

    async def close(self) -> None:
        await self._ended(EndReason.CLOSED)

    async def _ended(self, reason: EndReason) -> None:
        self._end(reason)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    def _end(self, reason: EndReason) -> None:
        """Start ending (once: the first reason is kept) and return the shared teardown, which
        the reader and the watchdog never await themselves (so nothing waits on itself)."""
        if self._closing is None:
            self.end_reason = reason
            self.closed.set()
            log.info(
                "talk ended (%s): %d frames in, %d out, %d dropped",
                reason.value,
                self.stats.frames_in,
                self.stats.frames_out,
                self.stats.dropped,
            )
            self._closing = asyncio.get_running_loop().create_task(self._teardown())

    async def _teardown(self) -> None:
        for task in (self._reader, self._watchdog):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._pc.close()

    def _on_state(self) -> None:
        state = self._pc.connectionState
        if state == "failed":
            self._end(EndReason.FAILED)
        elif state == "closed":
            self._end(EndReason.PEER_CLOSED)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._reader is not None:
            return
        self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _first_audio_watchdog(self) -> None:
        """End a session whose track never delivers (ICE that never connects, no track at all)."""
        await asyncio.sleep(self.idle_timeout)
        if self.stats.frames_in == 0:
            self._end(EndReason.IDLE)

    # -- media -------------------------------------------------------------------------------

    async def _read(self, track: MediaStreamTrack) -> None:
        reason = EndReason.TRACK_ENDED
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(track.recv(), self.idle_timeout)
                except TimeoutError:
                    reason = EndReason.IDLE
                    break
                except MediaStreamError:
                    break
                if isinstance(frame, av.AudioFrame):
                    started = time.perf_counter()
                    self.stats.frames_in += 1
                    self.feed(frame)
                    spent = time.perf_counter() - started
                    if spent > self.stats.max_frame_seconds:
                        self.stats.max_frame_seconds = spent
        finally:
            self._end(reason)

    def feed(self, frame: av.AudioFrame) -> None:
        """Resample one decoded frame, cut whole 20 ms pieces out and deliver them."""
        frame.pts = None  # aiortc's timestamps may jump; the resampler needs none
        parts = [self._pending]
        for out in self._resampler.resample(frame):
            parts.append(np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1))
        samples = np.concatenate(parts) if len(parts) > 1 else self._pending
        whole = len(samples) - len(samples) % FRAME_SAMPLES
        self._pending = samples[whole:].copy()
        if not whole:
            return
        encoded = self.law.encode(samples[:whole])
        for start in range(0, whole, FRAME_BYTES):
            self._deliver(encoded[start : start + FRAME_BYTES])

    def _deliver(self, payload: bytes) -> None:
        self.stats.frames_out += 1
        for q in self._queues:
            if q.full():
                q.get_nowait()
                self.stats.dropped += 1
            q.put_nowait(payload)
