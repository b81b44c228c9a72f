"""A pure pacer for an RTP stream of fixed-length packets (20 ms of G.711 by default).

Theory of operation: packet n is due at ``start + n × ptime`` on the caller's clock (``loop.time()``
in the asyncio adapter), computed from n every time and never by adding intervals, so rounding
and late wake-ups do not accumulate into drift. Its RTP timestamp is ``first_timestamp + n ×
samples`` (mod 2^32) and its sequence ``first_sequence + n`` (mod 2^16).

`Pacer.take(now)` hands out the next packet and how long to wait before sending it. A sender that
wakes up after a packet's due time (plus ``tolerance``) gets it with no wait: send it at once; no
packet is skipped, the schedule stays anchored (the packets after it catch up), and the lateness
is counted in `late_packets` / `max_lateness` for the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["PTIME", "SAMPLES_PER_PACKET", "Pacer", "Send", "Slot"]

PTIME: Final = 0.020
SAMPLES_PER_PACKET: Final = 160
"""20 ms at 8000 Hz."""


@dataclass(frozen=True, slots=True)
class Slot:
    index: int
    send_at: float
    timestamp: int
    sequence: int


@dataclass(frozen=True, slots=True)
class Send:
    """The next packet: wait ``wait`` seconds (0 when due or late), then send it."""

    slot: Slot
    wait: float
    late: bool
    lateness: float
    """How far past its due time ``now`` was (0 when on time)."""


class Pacer:
    def __init__(
        self,
        start: float,
        *,
        first_sequence: int = 0,
        first_timestamp: int = 0,
        ptime: float = PTIME,
        samples_per_packet: int = SAMPLES_PER_PACKET,
        tolerance: float = 0.002,
    ) -> None:
        if ptime <= 0 or samples_per_packet <= 0 or tolerance < 0:
            raise ValueError("ptime and samples_per_packet must be positive, tolerance >= 0")
        if not 0 <= first_sequence <= 0xFFFF or not 0 <= first_timestamp <= 0xFFFFFFFF:
            raise ValueError("first_sequence is 16-bit, first_timestamp 32-bit")
        self.start = start
        self.first_sequence = first_sequence
        self.first_timestamp = first_timestamp
        self.ptime = ptime
        self.samples_per_packet = samples_per_packet
        self.tolerance = tolerance
        self.next_index = 0
        self.late_packets = 0
        self.max_lateness = 0.0

    def slot(self, index: int) -> Slot:
        """Packet ``index``'s due time, timestamp and sequence (a function of the index alone)."""
        if index < 0:
            raise ValueError("packet index must be >= 0")
        return Slot(
            index=index,
            send_at=self.start + index * self.ptime,
            timestamp=(self.first_timestamp + index * self.samples_per_packet) & 0xFFFFFFFF,
            sequence=(self.first_sequence + index) & 0xFFFF,
        )

    def take(self, now: float) -> Send:
        """The next packet; the pacer moves on to the one after it."""
        slot = self.slot(self.next_index)
        self.next_index += 1
        wait = slot.send_at - now
        lateness = max(0.0, -wait)
        late = lateness > self.tolerance
        if late:
            self.late_packets += 1
            self.max_lateness = max(self.max_lateness, lateness)
        return Send(slot=slot, wait=max(0.0, wait), late=late, lateness=lateness)

    def behind(self, now: float) -> int:
        """How many packets are already due at ``now`` and not yet taken (0 when on time)."""
        due = int((now - self.start) // self.ptime) + 1
        return max(0, due - self.next_index)
