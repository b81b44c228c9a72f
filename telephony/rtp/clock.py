"""The shared 20 ms media clock and the RTP send sources it drives (clips, live frames).

Theory of operation: a `MediaClock` is one ticker per event loop (`MediaClock.shared()`). Tick k is
due at ``epoch + k × ptime`` on ``loop.time()``, computed from k (never by adding intervals, so late
wake-ups do not drift the schedule: `telephony.rtp.pacing` has the same rule, per stream). The
clock runs only while a source is attached: the first source ever sets the epoch to "now", the
ticker stops when the last one leaves and restarts on the same grid (so a play that follows
another at once still starts one whole tick after the previous packet). Each wake-up is one ``loop.call_at`` on the absolute due
time of the next tick; it calls every attached source with the current tick number, so 100 streams
started together are sent in one wake-up. A source joins at the pending tick (the one the clock
will fire next) unless it is under a quarter tick away (then the one after), which is how streams
started in the same loop iteration share their wake-ups; a clock that starts puts its pending tick
half a tick ahead, so that preparing 100 streams (building their packets) does not make the
first tick late. A
wake-up later than a whole tick catches up: the sources send every packet already due (a short
burst, none skipped), and the clock records the lateness.

Precision: asyncio's epoll wait rounds its timeout up to a whole millisecond, so a ``call_at`` on
the due time wakes up 0-1 ms late (a gap standard deviation of ~0.4 ms from that alone). The clock
therefore asks to be woken ``lead`` (1 ms) early and sleeps the remainder with ``time.sleep``
(nanosleep, tens of microseconds of slack): the loop is blocked for 0.5 ms per tick on average
while media plays. ``lead=0`` turns this off.

`SendState` is one stream's sender: socket, destination, SSRC, the next sequence number and the
timestamp origin (RFC 3550 §5.1: random initial sequence and timestamp; the timestamp advances with
the wall of media time, so a pause between two talkspurts advances it too). Sources:

- `ClipSource` sends a G.711 clip (``repeat`` times back to back, one talkspurt): the packets of
  one repetition are pre-built with numpy as one buffer of 172-octet packets (header with the
  marker on the very first, sequence and timestamp columns, payload padded to a whole frame with
  the codec's silence), so a tick costs one slice and one ``sendto`` per packet.
- `LiveSource` sends frames pushed by `feed` (live talk): a queue of at most ``max_queue`` frames
  (the oldest dropped beyond it), a talkspurt starts once ``prebuffer`` frames are queued (marker
  bit), an empty queue at a tick is an underrun: nothing is sent, the timestamp still advances, and
  the next frame starts a new talkspurt.
- `PullSource` asks a callback for each packet slot as it falls due (the 12319 hotline: a caller's
  leg picks a prompt, hold music or the agent's voice at send time, with no task per call): a frame
  is sent, ``None`` is a gap (the timestamp still advances; the next frame carries the marker).
"""

from __future__ import annotations

import asyncio
import collections
import math
import socket
import struct
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from telephony.rtp.pacing import PTIME, SAMPLES_PER_PACKET

__all__ = [
    "ClipSource",
    "ClockStats",
    "LiveSource",
    "MediaClock",
    "PlayResult",
    "PullSource",
    "SendState",
]

FRAME_BYTES: Final = SAMPLES_PER_PACKET
"""One 20 ms G.711 frame: 160 octets."""
PACKET_BYTES: Final = 12 + FRAME_BYTES
LATE_TOLERANCE: Final = 0.002
_HEADER: Final = struct.Struct("!BBHII")
_SILENCE: Final = {0: 0xFF, 8: 0xD5}
"""The G.711 code of a zero sample: PCMU (PT 0) 0xFF, PCMA (PT 8) 0xD5."""


def silence_byte(payload_type: int) -> int:
    return _SILENCE.get(payload_type, 0xD5)


@dataclass(frozen=True, slots=True)
class PlayResult:
    packets: int
    octets: int
    """Payload octets (RFC 3550's SR octet count: headers not included)."""
    completed: bool
    """False when stopped (`RtpStream.stop`, cancellation, close) before the end."""
    late_packets: int
    """Packets sent more than 2 ms after their due time (a late wake-up)."""
    max_lateness: float
    started_at: float
    ended_at: float
    underruns: int = 0
    """Live play: ticks with no frame queued during a talkspurt."""
    dropped: int = 0
    """Live play: frames dropped because the queue was full (oldest first)."""


@dataclass(slots=True)
class ClockStats:
    wakeups: int = 0
    ticks: int = 0
    late_wakeups: int = 0
    max_lateness: float = 0.0
    sources: int = 0


class TickSource(Protocol):
    def on_tick(self, tick: int, now: float) -> bool:
        """Send everything due by ``tick``; False when the source has finished."""


class SendState:
    """One stream's sender state, shared by its clip, live and telephone-event packets."""

    def __init__(
        self,
        sock: socket.socket,
        ssrc: int,
        first_sequence: int,
        first_timestamp: int,
        origin: float,
        clock_rate: int = 8000,
    ) -> None:
        self.sock = sock
        self.addr: tuple[str, int] | None = None
        self.payload_type = 8
        self.ssrc = ssrc
        self.next_sequence = first_sequence
        self.first_timestamp = first_timestamp
        self.origin = origin
        self.clock_rate = clock_rate
        self.last_timestamp: int | None = None  # extended (not masked)
        self.packets = 0
        self.octets = 0
        self.send_errors = 0
        self.last_sent_at: float | None = None
        self.busy = False

    def timestamp_at(self, t: float) -> int:
        """The extended RTP timestamp of media time ``t`` (never before the last one sent + 1)."""
        ts = self.first_timestamp + round((t - self.origin) * self.clock_rate)
        if self.last_timestamp is not None:
            ts = max(ts, self.last_timestamp + SAMPLES_PER_PACKET)
        return ts

    def send(self, data: bytes | memoryview, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:  # a full socket buffer or an ICMP error: UDP, the packet is lost
            self.send_errors += 1


class MediaClock:
    def __init__(self, *, ptime: float = PTIME, lead: float = 0.001) -> None:
        if ptime <= 0 or not 0 <= lead < ptime / 4:
            raise ValueError("ptime must be positive, 0 <= lead < ptime / 4")
        self.ptime = ptime
        self.lead = lead
        self.epoch = 0.0
        self.stats = ClockStats()
        self._sources: dict[TickSource, None] = {}
        self._next_tick = 0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def shared(cls) -> MediaClock:
        """The running loop's clock (created on first use)."""
        loop = asyncio.get_running_loop()
        clock = _SHARED.get(loop)
        if clock is None:
            clock = _SHARED[loop] = cls()
        return clock

    @property
    def running(self) -> bool:
        return self._handle is not None

    def tick_time(self, tick: int) -> float:
        return self.epoch + tick * self.ptime

    def add(self, source: TickSource) -> int:
        """Attach ``source``; it sends its first packet at the returned tick."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise RuntimeError("a MediaClock serves one event loop")
        now = loop.time()
        if self._handle is None:
            if self._loop is None:
                self._loop = loop
                self.epoch = now + self.ptime / 2
                self._next_tick = 0
            else:  # restart on the same grid, never before the tick after the last one fired
                ahead = math.ceil((now + self.ptime / 2 - self.epoch) / self.ptime)
                self._next_tick = max(self._next_tick, ahead)
            self._schedule(loop)
        self._sources[source] = None
        self.stats.sources = len(self._sources)
        if self.tick_time(self._next_tick) - now < self.ptime / 4:
            return self._next_tick + 1  # too close to prepare for without delaying it
        return self._next_tick

    def remove(self, source: TickSource) -> None:
        self._sources.pop(source, None)
        self.stats.sources = len(self._sources)
        if not self._sources:
            self._stop()

    def _stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = loop.call_at(self.tick_time(self._next_tick) - self.lead, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        due = self.epoch + self._next_tick * self.ptime
        now = loop.time()
        early = due - now
        if early > 0:  # woken ``lead`` early on purpose: sleep the rest (sub-millisecond, precise)
            time.sleep(min(early, self.lead))
            now = loop.time()
        stats = self.stats
        stats.wakeups += 1
        tick = max(self._next_tick, int((now - self.epoch) / self.ptime))
        lateness = now - due
        if lateness > LATE_TOLERANCE:
            stats.late_wakeups += 1
        if lateness > stats.max_lateness:
            stats.max_lateness = lateness
        stats.ticks += tick - self._next_tick + 1
        finished = [s for s in list(self._sources) if not s.on_tick(tick, now)]
        for source in finished:
            self._sources.pop(source, None)
        stats.sources = len(self._sources)
        self._next_tick = tick + 1
        if self._sources:
            self._schedule(loop)
        else:
            self._handle = None


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock] = (
    weakref.WeakKeyDictionary()
)


def build_packets(
    payload: bytes,
    *,
    payload_type: int,
    ssrc: int,
    first_sequence: int,
    first_timestamp: int,
    marker: bool,
) -> tuple[bytes, int]:
    """One 172-octet RTP packet per 160 octets of ``payload`` (the last one padded with silence)."""
    n = -(-len(payload) // FRAME_BYTES)
    arr = np.empty((n, PACKET_BYTES), dtype=np.uint8)
    arr[:, 0] = 0x80
    arr[:, 1] = payload_type
    if marker:
        arr[0, 1] = 0x80 | payload_type
    index = np.arange(n, dtype=np.uint64)
    seq = ((first_sequence + index) & 0xFFFF).astype(">u2")
    arr[:, 2:4] = seq.view(np.uint8).reshape(n, 2)
    ts = ((first_timestamp + index * SAMPLES_PER_PACKET) & 0xFFFFFFFF).astype(">u4")
    arr[:, 4:8] = ts.view(np.uint8).reshape(n, 4)
    arr[:, 8:12] = np.frombuffer(struct.pack("!I", ssrc), dtype=np.uint8)
    body = np.full(n * FRAME_BYTES, silence_byte(payload_type), dtype=np.uint8)
    body[: len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    arr[:, 12:] = body.reshape(n, FRAME_BYTES)
    return arr.tobytes(), n


class _Source:
    """What clip and live sources share: the start tick, the counts, the completion future."""

    def __init__(self, state: SendState, addr: tuple[str, int], done: asyncio.Future[PlayResult]):
        self.state = state
        self.addr = addr
        self.done = done
        self.clock = MediaClock()  # replaced by attach
        self.start_tick = 0
        self.index = 0  # the next packet slot (ticks since start_tick)
        self.packets = 0
        self.octets = 0
        self.late = 0
        self.max_lateness = 0.0
        self.started_at = 0.0
        self.underruns = 0
        self.dropped = 0

    def attach(self, clock: MediaClock) -> None:
        self.clock = clock
        self.start_tick = clock.add(self)
        self.started_at = clock.tick_time(self.start_tick)

    def due(self, index: int) -> float:
        """When packet slot ``index`` is due on the clock."""
        return self.clock.tick_time(self.start_tick + index)

    def on_tick(self, tick: int, now: float) -> bool:
        raise NotImplementedError

    def _account(self, count: int, octets: int, lateness: float, now: float) -> None:
        self.packets += count
        self.octets += octets
        state = self.state
        state.packets += count
        state.octets += octets
        state.last_sent_at = now
        if lateness > LATE_TOLERANCE:
            self.late += count
            self.max_lateness = max(self.max_lateness, lateness)

    def finish(self, completed: bool, now: float) -> PlayResult:
        self.state.busy = False
        result = PlayResult(
            packets=self.packets,
            octets=self.octets,
            completed=completed,
            late_packets=self.late,
            max_lateness=self.max_lateness,
            started_at=self.started_at,
            ended_at=now,
            underruns=self.underruns,
            dropped=self.dropped,
        )
        if not self.done.done():
            self.done.set_result(result)
        return result


class ClipSource(_Source):
    def __init__(
        self,
        state: SendState,
        addr: tuple[str, int],
        done: asyncio.Future[PlayResult],
        payload: bytes,
        repeat: int,
    ) -> None:
        super().__init__(state, addr, done)
        self.payload = payload
        self.repeat = repeat
        self.frames = -(-len(payload) // FRAME_BYTES)
        self.total = self.frames * repeat
        self._block = memoryview(b"")
        self._block_rep = -1
        self._first_sequence = state.next_sequence
        self._first_timestamp = 0

    def attach(self, clock: MediaClock) -> None:
        super().attach(clock)
        self._first_timestamp = self.state.timestamp_at(self.started_at)
        self._build(0)

    def _build(self, rep: int) -> None:
        data, _ = build_packets(
            self.payload,
            payload_type=self.state.payload_type,
            ssrc=self.state.ssrc,
            first_sequence=(self._first_sequence + rep * self.frames) & 0xFFFF,
            first_timestamp=(self._first_timestamp + rep * self.frames * SAMPLES_PER_PACKET)
            & 0xFFFFFFFF,
            marker=rep == 0,
        )
        self._block = memoryview(data)
        self._block_rep = rep

    def on_tick(self, tick: int, now: float) -> bool:
        upto = min(tick - self.start_tick + 1, self.total)
        index = self.index
        if index >= upto:
            return True
        sendto = self.state.sock.sendto
        addr = self.addr
        frames = self.frames
        errors = 0
        sent = 0
        while index < upto:
            rep, i = divmod(index, frames)
            if rep != self._block_rep:
                self._build(rep)
            off = i * PACKET_BYTES
            try:
                sendto(self._block[off : off + PACKET_BYTES], addr)
            except OSError:
                errors += 1
            sent += 1
            index += 1
        self.index = index
        self.state.send_errors += errors
        self._account(sent, sent * FRAME_BYTES, now - self.due(index - sent), now)
        self._sync_state()
        if index >= self.total:
            self.finish(True, now)
            return False
        return True

    def _sync_state(self) -> None:
        state = self.state
        state.next_sequence = (self._first_sequence + self.index) & 0xFFFF
        state.last_timestamp = self._first_timestamp + (self.index - 1) * SAMPLES_PER_PACKET

    def stop(self, now: float) -> PlayResult:
        if self.index:
            self._sync_state()
        return self.finish(False, now)


class LiveSource(_Source):
    def __init__(
        self,
        state: SendState,
        addr: tuple[str, int],
        done: asyncio.Future[PlayResult],
        *,
        max_queue: int = 10,
        prebuffer: int = 2,
    ) -> None:
        super().__init__(state, addr, done)
        self.queue: collections.deque[bytes] = collections.deque()
        self.max_queue = max(1, max_queue)
        self.prebuffer = max(1, min(prebuffer, self.max_queue))
        self.ended = False
        self.talking = False
        self._pending = bytearray()
        self._first_timestamp = 0
        self._header = bytearray(12)
        self.on_finish: Callable[[], None] | None = None

    def attach(self, clock: MediaClock) -> None:
        super().attach(clock)
        self._first_timestamp = self.state.timestamp_at(self.started_at)

    def feed(self, data: bytes) -> None:
        """Queue G.711 octets (whole 160-octet frames are taken; a remainder waits)."""
        if len(data) == FRAME_BYTES and not self._pending:
            self._push(bytes(data))
            return
        self._pending += data
        while len(self._pending) >= FRAME_BYTES:
            self._push(bytes(self._pending[:FRAME_BYTES]))
            del self._pending[:FRAME_BYTES]

    def _push(self, frame: bytes) -> None:
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(frame)

    def on_tick(self, tick: int, now: float) -> bool:
        state = self.state
        upto = tick - self.start_tick + 1
        while self.index < upto:
            if not self.talking:
                ready = len(self.queue) >= self.prebuffer or (self.ended and self.queue)
                if ready:
                    self.talking = True
                    marker = 0x80
                else:
                    self.index += 1
                    continue
            elif not self.queue:
                self.talking = False
                self.underruns += 1
                self.index += 1
                continue
            else:
                marker = 0
            frame = self.queue.popleft()
            ts = self._first_timestamp + self.index * SAMPLES_PER_PACKET
            _HEADER.pack_into(
                self._header,
                0,
                0x80,
                marker | state.payload_type,
                state.next_sequence,
                ts & 0xFFFFFFFF,
                state.ssrc,
            )
            state.send(bytes(self._header) + frame, self.addr)
            state.next_sequence = (state.next_sequence + 1) & 0xFFFF
            state.last_timestamp = ts
            self._account(1, len(frame), now - self.due(self.index), now)
            self.index += 1
        if self.ended and not self.queue:
            self.finish(True, now)
            return False
        return True


class PullSource(_Source):
    """Frames asked of ``provider`` at each slot (160 octets, or ``None`` for a gap); runs until
    stopped."""

    def __init__(
        self,
        state: SendState,
        addr: tuple[str, int],
        done: asyncio.Future[PlayResult],
        provider: Callable[[], bytes | None],
    ) -> None:
        super().__init__(state, addr, done)
        self.provider = provider
        self.talking = False
        self._first_timestamp = 0
        self._header = bytearray(12)

    def attach(self, clock: MediaClock) -> None:
        super().attach(clock)
        self._first_timestamp = self.state.timestamp_at(self.started_at)

    def on_tick(self, tick: int, now: float) -> bool:
        state = self.state
        upto = tick - self.start_tick + 1
        while self.index < upto:
            frame = self.provider()
            if frame is None:
                if self.talking:
                    self.underruns += 1
                self.talking = False
                self.index += 1
                continue
            marker = 0 if self.talking else 0x80
            self.talking = True
            ts = self._first_timestamp + self.index * SAMPLES_PER_PACKET
            _HEADER.pack_into(
                self._header, 0, 0x80, marker | state.payload_type, state.next_sequence,
                ts & 0xFFFFFFFF, state.ssrc,
            )  # fmt: skip
            state.send(bytes(self._header) + frame, self.addr)
            state.next_sequence = (state.next_sequence + 1) & 0xFFFF
            state.last_timestamp = ts
            self._account(1, len(frame), now - self.due(self.index), now)
            self.index += 1
        return True
