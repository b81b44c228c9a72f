"""The agent's leg of a hotline call: the browser's WebRTC audio bridged to the caller's RTP.

Theory of operation: an ``AgentLeg`` is one browser peer (aiortc) answering the agent's offer with
one ``sendrecv`` audio transceiver:

- towards the agent, a ``CallerTrack`` that the service ``push()``es the caller's 20 ms G.711
  frames into (or music, or a supervisor's whisper mixed in). When the answer chose the caller's own
  law (``prefer`` puts it first), each frame goes out as an ``av.Packet`` that aiortc only
  packetizes: G.711 passes through untouched. With the other law it is re-coded by table; with Opus
  the frame is decoded to 8 kHz PCM and aiortc encodes it. The track paces itself on a 20 ms
  schedule: a frame is taken as it arrives, a missing one becomes silence once it is 60 ms late, and
  a backlog beyond a few frames is dropped from the oldest (the agent hears the newest voice, never
  a growing delay);
- from the agent, ``TalkSession`` (``telephony.warnings.talk``): aiortc decodes Opus or G.711, the
  session resamples to 8 kHz and cuts 160-sample frames in the caller's law; ``subscribe()`` gives
  the service a bounded queue of them for the caller's RTP stream and the recorder.

``CITYHUB_WEBRTC_NETWORKS`` limits ICE at both ends as for live talk. The leg ends (``closed``)
when the peer fails or closes, the agent's audio stops for ``idle_timeout`` s, or on ``close()``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from fractions import Fraction
from typing import Any, Final

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from telephony.g711 import G711Law
from telephony.warnings.talk import FRAME_BYTES, FRAME_SAMPLES, Networks, TalkSession

RATE: Final = 8000
TIME_BASE: Final = Fraction(1, RATE)
#: A frame this late (seconds past its slot) is replaced by silence.
LATE: Final = 0.06
#: Frames queued beyond this are dropped from the oldest.
BACKLOG: Final = 4


class CallerTrack(MediaStreamTrack):
    """Audio towards the agent: ``push(payload)`` 160-byte frames in ``law``; ``mode`` (set from
    the answered codec) says what ``recv()`` hands aiortc."""

    kind = "audio"

    def __init__(self, law: G711Law) -> None:
        super().__init__()
        self.law = law
        self.mode = "frames"  # "PCMA" / "PCMU": packets passed through; "frames": PCM for Opus
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.silence = 0
        self._queue: collections.deque[bytes] = collections.deque()
        self._ready = asyncio.Event()
        self._pts = 0
        self._start: float | None = None
        self._silent = bytes([law.silence]) * FRAME_BYTES

    def push(self, payload: bytes) -> None:
        self.frames_in += 1
        self._queue.append(payload)
        while len(self._queue) > BACKLOG:
            self._queue.popleft()
            self.dropped += 1
        self._ready.set()

    async def recv(self) -> av.AudioFrame | av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._pts / RATE
        while not self._queue:
            wait = due + LATE - loop.time()
            if wait <= 0:
                break
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                break
        if self.readyState != "live":
            raise MediaStreamError
        if self._queue:
            payload = self._queue.popleft()
        else:
            payload = self._silent
            self.silence += 1
            ahead = due - loop.time()
            if ahead > 0:  # keep the 20 ms rhythm while nothing comes
                await asyncio.sleep(ahead)
        out = self._wrap(payload)
        self._pts += FRAME_SAMPLES
        self.frames_out += 1
        return out

    def _wrap(self, payload: bytes) -> av.AudioFrame | av.Packet[Any]:
        if self.mode == self.law.encoding_name:
            packet = av.Packet(payload)
        elif self.mode in ("PCMA", "PCMU"):
            other = G711Law.ALAW if self.mode == "PCMA" else G711Law.ULAW
            packet = av.Packet(other.encode(self.law.decode(payload)))
        else:
            pcm = self.law.decode(payload).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm), format="s16", layout="mono"
            )
            frame.sample_rate = RATE
            frame.pts = self._pts
            frame.time_base = TIME_BASE
            return frame
        packet.pts = self._pts
        packet.time_base = TIME_BASE
        return packet


class AgentLeg:
    """One agent's browser in a call. ``await answer(offer_sdp)`` → answer SDP; ``push()`` caller
    frames; ``subscribe()`` the agent's frames (caller's law); ``await close()``."""

    def __init__(
        self, law: G711Law, *, networks: Networks = (), idle_timeout: float = 30.0
    ) -> None:
        self.law = law
        self.track = CallerTrack(law)
        other = G711Law.ULAW if law is G711Law.ALAW else G711Law.ALAW
        self.talk = TalkSession(
            law,
            idle_timeout=idle_timeout,
            networks=networks,
            outbound=self.track,
            prefer=(law.encoding_name, other.encoding_name),
        )
        self.closed = self.talk.closed
        self.started = time.monotonic()

    async def answer(self, offer_sdp: str) -> str:
        sdp = await self.talk.answer(offer_sdp)
        codec = (self.talk.codec or "").upper()
        self.track.mode = codec if codec in ("PCMA", "PCMU") else "frames"
        return sdp

    @property
    def codec(self) -> str | None:
        return self.talk.codec

    @property
    def passthrough(self) -> bool:
        """G.711 both ways in the caller's own law: nothing re-coded towards the agent."""
        return self.track.mode == self.law.encoding_name

    def push(self, payload: bytes) -> None:
        self.track.push(payload)

    def subscribe(self, maxsize: int = 10) -> asyncio.Queue[bytes]:
        return self.talk.subscribe(maxsize)

    async def close(self) -> None:
        self.track.stop()
        await self.talk.close()
