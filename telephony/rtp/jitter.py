"""A receive jitter buffer for one RTP source of fixed-length frames (20 ms of G.711), pure.

Theory of operation: the caller pushes every audio packet with its arrival time
(`JitterBuffer.push(sequence, timestamp, payload, now, marker=)`) and calls `pop(now)` at the time
`next_deadline()` names; `pop` returns the `Frame` values whose playout time has come, in sequence
order. No clock is read here.

- Sequence numbers and timestamps are extended past their 16-/32-bit wrap by taking the value
  nearest the highest one seen (the packet order may differ from the send order by up to half the
  number space), so reordering and wrap-around need no special case.
- Playout time: ``anchor_time + (timestamp - anchor_timestamp) / clock_rate``. The anchor is set by
  the first packet and again at the start of every talkspurt (the marker bit with nothing queued):
  ``anchor_time = arrival + target_delay``. Timestamp jumps without sequence gaps (the sender was
  silent) therefore play at their own time and are not concealed.
- Reordering: a packet that arrives before its turn waits in the buffer. A duplicate of a queued
  packet, or a packet whose turn has already passed (played or concealed), is dropped and counted.
- Loss: when the next sequence number is missing at its playout time and a later packet is queued,
  a concealment `Frame` (``payload=None``) takes its place; at most ``max_conceal`` in a row, then
  the buffer jumps to the next queued packet. With nothing queued (the sender paused) nothing is
  emitted: an underrun is not a loss until a later packet proves it.
- Adaptive delay: the target is ``ptime + 4 × J`` (J the RFC 3550 §6.4.1 interarrival jitter in
  seconds, smoothed by 1/16), raised by one frame whenever a packet arrives after its playout time,
  clamped to ``[min_delay, max_delay]``. A rise shifts the running schedule at once (the next frame
  plays later); a fall is applied at the next talkspurt, or mid-talkspurt by one frame after
  ``settle_frames`` frames in a row that arrived on time. A packet that arrives after its turn
  was concealed is dropped but raises the delay all the same.
- A packet more than ``capacity`` frames ahead of the playout point (a sender restart, a long outage)
  resynchronises: the queue is dropped and the packet anchors a new schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["Frame", "JitterBuffer", "JitterStats"]

_SEQ_MOD: Final = 1 << 16
_TS_MOD: Final = 1 << 32


def _extend(value: int, reference: int, modulus: int) -> int:
    """The integer congruent to ``value`` (mod ``modulus``) nearest ``reference``."""
    half = modulus >> 1
    return reference + ((value - reference + half) % modulus) - half


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame to play: ``payload`` None is a concealment frame for a lost packet."""

    sequence: int
    """Extended sequence number (the 16-bit value is ``sequence & 0xFFFF``)."""
    timestamp: int
    """Extended RTP timestamp."""
    payload: bytes | None
    playout_at: float

    @property
    def lost(self) -> bool:
        return self.payload is None


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    played: int = 0
    concealed: int = 0
    duplicates: int = 0
    too_late: int = 0
    """Arrived after their turn had passed (played or concealed): dropped."""
    late: int = 0
    """Arrived after their playout time but still in time to be played (at once)."""
    reordered: int = 0
    resyncs: int = 0
    skipped: int = 0
    """Missing frames beyond ``max_conceal`` that were jumped over without concealment."""


@dataclass(slots=True)
class _Queued:
    timestamp: int
    payload: bytes


class JitterBuffer:
    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        ptime: float = 0.020,
        min_delay: float = 0.040,
        max_delay: float = 0.200,
        initial_delay: float | None = None,
        capacity: int = 64,
        max_conceal: int = 10,
        settle_frames: int = 250,
    ) -> None:
        if not 0 <= min_delay <= max_delay or ptime <= 0 or clock_rate <= 0:
            raise ValueError("need 0 <= min_delay <= max_delay, ptime > 0, clock_rate > 0")
        if capacity < 1 or max_conceal < 0 or settle_frames < 1:
            raise ValueError("capacity >= 1, max_conceal >= 0, settle_frames >= 1")
        self.clock_rate = clock_rate
        self.ptime = ptime
        self.samples = round(ptime * clock_rate)
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.capacity = capacity
        self.max_conceal = max_conceal
        self.settle_frames = settle_frames
        start = min_delay if initial_delay is None else initial_delay
        self._boost = min(max(start, min_delay), max_delay)
        self._applied = self._boost
        self.stats = JitterStats()
        self._queue: dict[int, _Queued] = {}
        self._highest_seq: int | None = None
        self._highest_ts = 0
        self._next_seq = 0
        self._next_ts = 0
        self._anchor_time = 0.0
        self._anchor_ts = 0
        self._jitter = 0.0
        self._transit: float | None = None
        self._concealed_run = 0
        self._on_time_run = 0

    # -- state --------------------------------------------------------------------------------
    @property
    def jitter(self) -> float:
        """The smoothed interarrival jitter in seconds (RFC 3550 §6.4.1)."""
        return self._jitter

    @property
    def target_delay(self) -> float:
        """The delay the buffer aims for now (seconds from arrival to playout)."""
        estimate = self.ptime + 4.0 * self._jitter
        return min(self.max_delay, max(self.min_delay, estimate, self._boost))

    @property
    def delay(self) -> float:
        """The delay in use by the running schedule."""
        return self._applied

    def __len__(self) -> int:
        return len(self._queue)

    def playout_time(self, timestamp: int) -> float:
        return self._anchor_time + (timestamp - self._anchor_ts) / self.clock_rate

    # -- input --------------------------------------------------------------------------------
    def _anchor(self, ext_seq: int, ext_ts: int, now: float) -> None:
        self._applied = self.target_delay
        self._anchor_time = now + self._applied
        self._anchor_ts = ext_ts
        self._next_seq = ext_seq
        self._next_ts = ext_ts
        self._concealed_run = 0

    def push(
        self, sequence: int, timestamp: int, payload: bytes, now: float, *, marker: bool = False
    ) -> bool:
        """Queue one packet; False when it is dropped (duplicate, too late)."""
        stats = self.stats
        stats.received += 1
        if self._highest_seq is None:
            ext_seq = sequence & 0xFFFF
            ext_ts = timestamp & 0xFFFFFFFF
            self._highest_seq, self._highest_ts = ext_seq, ext_ts
            self._transit = now - ext_ts / self.clock_rate
            self._anchor(ext_seq, ext_ts, now)
            self._queue[ext_seq] = _Queued(ext_ts, payload)
            return True
        ext_seq = _extend(sequence, self._highest_seq, _SEQ_MOD)
        ext_ts = _extend(timestamp, self._highest_ts, _TS_MOD)
        transit = now - ext_ts / self.clock_rate
        if self._transit is not None:
            self._jitter += (abs(transit - self._transit) - self._jitter) / 16.0
        self._transit = transit
        if ext_seq > self._highest_seq:
            self._highest_seq, self._highest_ts = ext_seq, ext_ts
        elif ext_seq < self._highest_seq:
            stats.reordered += 1
        if ext_seq < self._next_seq:
            if ext_seq < self._next_seq - self.capacity:
                self._resync(ext_seq, ext_ts, payload, now)  # far behind: the sender restarted
                return True
            stats.too_late += 1
            self._raise()
            return False
        if ext_seq in self._queue:
            stats.duplicates += 1
            return False
        if ext_seq - self._next_seq >= self.capacity:
            self._resync(ext_seq, ext_ts, payload, now)
            return True
        if marker and not self._queue and ext_seq == self._next_seq:
            self._anchor(ext_seq, ext_ts, now)  # a new talkspurt: re-anchor at the target delay
        elif self.playout_time(ext_ts) < now:
            stats.late += 1
            self._raise()
        else:
            self._on_time_run += 1
            if self._on_time_run >= self.settle_frames:
                self._settle()
        self._queue[ext_seq] = _Queued(ext_ts, payload)
        return True

    def _raise(self) -> None:
        """A packet missed its playout time: one frame more of delay, applied at once."""
        self._on_time_run = 0
        self._boost = min(self.max_delay, self._boost + self.ptime)
        new = self.target_delay
        if new > self._applied:
            self._anchor_time += new - self._applied
            self._applied = new

    def _settle(self) -> None:
        self._on_time_run = 0
        self._boost = max(self.min_delay, self._boost - self.ptime)
        target = self.target_delay
        if self._applied - target >= self.ptime:
            self._anchor_time -= self.ptime
            self._applied -= self.ptime

    def _resync(self, ext_seq: int, ext_ts: int, payload: bytes, now: float) -> None:
        self.stats.resyncs += 1
        self._queue.clear()
        self._highest_seq, self._highest_ts = ext_seq, ext_ts
        self._transit = now - ext_ts / self.clock_rate
        self._anchor(ext_seq, ext_ts, now)
        self._queue[ext_seq] = _Queued(ext_ts, payload)

    # -- output -------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When `pop` has a frame to hand out next (None: nothing queued)."""
        if not self._queue:
            return None
        head = self._queue.get(self._next_seq)
        return self.playout_time(head.timestamp if head is not None else self._next_ts)

    def pop(self, now: float) -> list[Frame]:
        """Every frame due by ``now``, in order (bounded by the queue and ``max_conceal``)."""
        out: list[Frame] = []
        queue = self._queue
        stats = self.stats
        for _ in range(len(queue) + self.max_conceal + 1):
            if not queue:
                break
            head = queue.get(self._next_seq)
            if head is not None:
                at = self.playout_time(head.timestamp)
                if at > now:
                    break
                del queue[self._next_seq]
                out.append(Frame(self._next_seq, head.timestamp, head.payload, at))
                stats.played += 1
                self._next_seq += 1
                self._next_ts = head.timestamp + self.samples
                self._concealed_run = 0
                continue
            if self._concealed_run >= self.max_conceal:
                following = min(queue)
                stats.skipped += following - self._next_seq
                self._next_seq = following
                self._next_ts = queue[following].timestamp
                self._concealed_run = 0
                continue
            at = self.playout_time(self._next_ts)
            if at > now:
                break
            out.append(Frame(self._next_seq, self._next_ts, None, at))
            stats.concealed += 1
            self._concealed_run += 1
            self._next_seq += 1
            self._next_ts += self.samples
        return out
