"""RFC 4733 telephone events (DTMF over RTP): the payload and the sender's schedule for one digit.

Payload (§2.3), four octets per event, network byte order::

    |     event     |E|R| volume    |          duration             |

- event: 0-9 for the digits, 10 for ``*``, 11 for ``#``, 12-15 for A-D (§3.2);
- E: the end of the event; R: reserved, sent 0 and ignored on receipt;
- volume: the power level in -dBm0, 0..63 (§2.5.2.2: DTMF is sent between 0 and -36 dBm0);
- duration: the duration so far in RTP timestamp units (8000 Hz for G.711 calls).

The sender's schedule (§2.5.1): every packet of one event carries the RTP timestamp of the event's
start; the first packet has the marker bit; while the key is down an update goes out per interval
with the duration so far; the final packet has the E bit and the whole duration and is sent three
times in all (§2.5.1.4), each copy with its own sequence number but the same timestamp and duration.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from telephony.errors import RtpError
from telephony.rtp.packet import RtpPacket

__all__ = [
    "DTMF_DIGITS",
    "END_RETRANSMISSIONS",
    "ScheduledPacket",
    "TelephoneEvent",
    "digit_event",
    "dtmf_schedule",
    "event_digit",
    "parse_events",
]

DTMF_DIGITS: Final = "0123456789*#ABCD"
"""Event code → digit: the index of a digit here is its event code (RFC 4733 §3.2)."""
END_RETRANSMISSIONS: Final = 3
"""The final packet of an event is sent this many times in all (§2.5.1.4)."""
MAX_EVENTS_PER_PACKET: Final = 16

_EVENT: Final = struct.Struct("!BBH")


def digit_event(digit: str) -> int:
    """'0'-'9', '*', '#', 'A'-'D' (any case) → the RFC 4733 event code."""
    if len(digit) != 1 or digit.upper() not in DTMF_DIGITS:
        raise RtpError(f"{digit!r} is not a DTMF digit")
    return DTMF_DIGITS.index(digit.upper())


def event_digit(event: int) -> str | None:
    """The DTMF digit of an event code, or None for a non-DTMF event (e.g. 32 ANS, §3.3)."""
    return DTMF_DIGITS[event] if 0 <= event < len(DTMF_DIGITS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    duration: int
    end: bool = False
    volume: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise RtpError(f"event {self.event} out of range 0..255")
        if not 0 <= self.volume <= 63:
            raise RtpError(f"volume {self.volume} out of range 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise RtpError(f"duration {self.duration} out of range 0..65535")

    @property
    def digit(self) -> str | None:
        return event_digit(self.event)

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> TelephoneEvent:
        """Exactly one four-octet event; the R bit is ignored (§2.3)."""
        if len(payload) != 4:
            raise RtpError(f"a telephone-event payload is 4 octets, not {len(payload)}")
        event, flags, duration = _EVENT.unpack(bytes(payload))
        return cls(event=event, duration=duration, end=bool(flags & 0x80), volume=flags & 0x3F)

    def serialize(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_events(payload: bytes | bytearray | memoryview) -> tuple[TelephoneEvent, ...]:
    """A payload of one or more events packed back to back (§2.5.1.5), at most 16."""
    data = bytes(payload)
    if not data or len(data) % 4:
        raise RtpError(f"a telephone-event payload of {len(data)} octets is not whole events")
    if len(data) // 4 > MAX_EVENTS_PER_PACKET:
        raise RtpError("too many events in one packet")
    return tuple(TelephoneEvent.parse(data[i : i + 4]) for i in range(0, len(data), 4))


@dataclass(frozen=True, slots=True)
class ScheduledPacket:
    """A packet and when to send it, in timestamp units after the first packet of the event."""

    offset: int
    packet: RtpPacket

    def offset_seconds(self, clock_rate: int = 8000) -> float:
        return self.offset / clock_rate


def dtmf_schedule(
    digit: str,
    *,
    timestamp: int,
    sequence: int,
    ssrc: int,
    payload_type: int = 101,
    duration: int = 800,
    interval: int = 160,
    volume: int = 10,
) -> tuple[ScheduledPacket, ...]:
    """The packets for one digit held ``duration`` timestamp units (default 100 ms at 8 kHz).

    Updates go out every ``interval`` units (default 20 ms, the audio packet time) at offsets 0,
    interval, ..., each reporting the duration covered up to the end of its interval; the final
    packet (E bit, duration = ``duration``) is sent at the first offset not before the event's end
    minus one interval and then repeated at the next two intervals. ``sequence`` is the first
    packet's sequence number; the caller's audio stream continues after the last one.
    """
    if interval <= 0:
        raise RtpError("the update interval must be positive")
    if not interval <= duration <= 0xFFFF:
        raise RtpError(f"duration {duration} must lie in {interval}..65535 timestamp units")
    event = digit_event(digit)
    out: list[ScheduledPacket] = []

    def emit(offset: int, tone: TelephoneEvent) -> None:
        n = len(out)
        packet = RtpPacket(
            payload_type=payload_type,
            sequence=(sequence + n) & 0xFFFF,
            timestamp=timestamp & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=tone.serialize(),
            marker=n == 0,
        )
        out.append(ScheduledPacket(offset, packet))

    updates = -(-duration // interval) - 1  # the packets before the final one
    for k in range(updates):
        emit(k * interval, TelephoneEvent(event, (k + 1) * interval, volume=volume))
    for r in range(END_RETRANSMISSIONS):
        emit((updates + r) * interval, TelephoneEvent(event, duration, end=True, volume=volume))
    return tuple(out)
