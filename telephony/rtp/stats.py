"""Reception statistics of one RTP source (RFC 3550 §6.4.1 and Appendix A.1, A.3, A.8), pure.

Theory of operation: the receiver calls `ReceiverStats.update(sequence, timestamp, now)` for every
RTP packet of the source, ``now`` being the arrival time in seconds on any monotonic clock, and
`report_block(now)` when it sends an RR or SR; no clock is read here.

- Sequence validation is the A.1 algorithm: a source is valid after ``MIN_SEQUENTIAL`` (2) packets in
  sequence (probation); a jump of less than ``MAX_DROPOUT`` (3000) ahead is accepted (counting a
  wrap of the 16-bit number as a new cycle); a jump further is a restart only when the packet after
  it follows it (``bad_seq``); anything within ``MAX_MISORDER`` (100) behind is a duplicate or a
  reordered packet, counted as received.
- Loss (A.3): expected = extended highest - base + 1, cumulative lost = expected - received (clamped
  to 24-bit signed), fraction lost = the interval's loss × 256 / the interval's expected packets,
  0 when nothing was lost (duplicates can make it negative).
- Jitter (§6.4.1, A.8): D = (Rj - Ri) - (Sj - Si) in timestamp units, J += (|D| - J) / 16; the
  integer form of A.8 is kept (J scaled by 16, so the report is exactly ``jitter >> 4``).
"""

from __future__ import annotations

from typing import Final

from telephony.rtp.rtcp import ReportBlock, ntp_middle32

__all__ = ["MAX_DROPOUT", "MAX_MISORDER", "MIN_SEQUENTIAL", "ReceiverStats"]

RTP_SEQ_MOD: Final = 1 << 16
MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100
MIN_SEQUENTIAL: Final = 2


class ReceiverStats:
    """The per-source state of A.1 (``source``) plus the jitter of A.8 and the LSR/DLSR pair."""

    def __init__(
        self, ssrc: int, *, clock_rate: int = 8000, probation: int = MIN_SEQUENTIAL
    ) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.min_sequential = probation
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self._jitter16 = 0  # J × 16, A.8's integer form
        self._transit: int | None = None
        self._started = False
        self._last_sr: int | None = None  # middle 32 bits of the last SR's NTP timestamp
        self._last_sr_at = 0.0

    # -- A.1 ----------------------------------------------------------------------------------
    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            self.probation = self.min_sequential
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)  # the source restarted: a new base
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or reordered packet
        self.received += 1
        return True

    # -- input --------------------------------------------------------------------------------
    def update(self, sequence: int, timestamp: int, now: float) -> bool:
        """Account one packet; False when A.1 does not count it (probation, a wild jump)."""
        valid = self._update_seq(sequence & 0xFFFF)
        arrival = round(now * self.clock_rate)
        transit = (arrival - timestamp) & 0xFFFFFFFF
        if self._transit is not None:
            d = (transit - self._transit) & 0xFFFFFFFF
            if d >= 1 << 31:
                d = (1 << 32) - d  # |D| across the 32-bit wrap
            self._jitter16 += d - ((self._jitter16 + 8) >> 4)
        self._transit = transit
        return valid

    def sender_report(self, ntp_timestamp: int, now: float) -> None:
        """An SR from this source arrived at ``now``: remember it for LSR/DLSR."""
        self._last_sr = ntp_middle32(ntp_timestamp)
        self._last_sr_at = now

    # -- output -------------------------------------------------------------------------------
    @property
    def valid(self) -> bool:
        """The source has passed probation (A.1); report on it only then."""
        return self._started and self.probation == 0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative lost, clamped to the report block's 24-bit signed field."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    @property
    def jitter(self) -> int:
        """The interarrival jitter in timestamp units, as reported (``J >> 4`` of A.8)."""
        return self._jitter16 >> 4

    def report_block(self, now: float) -> ReportBlock:
        """The block for the next RR/SR; starts a new interval for the fraction lost."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:  # at most 255: after a restart (A.1) received_interval can be negative
            fraction = min(255, (lost_interval << 8) // expected_interval)
        lsr = dlsr = 0
        if self._last_sr is not None:
            lsr = self._last_sr
            dlsr = min(0xFFFFFFFF, max(0, round((now - self._last_sr_at) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=self.jitter & 0xFFFFFFFF,
            lsr=lsr,
            dlsr=dlsr,
        )
