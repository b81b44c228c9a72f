"""RTCP sender and receiver reports (RFC 3550 §6.4), parsed and serialized without I/O.

Theory of operation: an RTCP datagram is a compound packet (§6.1): RTCP packets back to back, each
with the common header ``V=2 | P | count (5) | packet type (8) | length (16)``, where length is the
packet's size in 32-bit words minus one. `parse_compound` walks it with the validity checks of
§A.2 (version 2 everywhere, the first packet an SR or RR without padding, padding only in the last,
the lengths adding up to the datagram) and returns SR, RR, and `RtcpPacket` for every other type
(SDES, BYE, APP, feedback) kept as raw octets. Anything short or inconsistent raises `RtpError`.

A report block (§6.4.1) is 24 octets: SSRC, fraction lost (8 bits, a fixed-point fraction of 256),
cumulative lost (24 bits, signed), extended highest sequence, interarrival jitter, LSR (the middle
32 bits of the last SR's NTP timestamp) and DLSR (the delay since it, in 1/65536 s).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from telephony.errors import RtpError

__all__ = [
    "MAX_COMPOUND_SIZE",
    "RTCP_RR",
    "RTCP_SR",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "SenderReport",
    "ntp_middle32",
    "ntp_timestamp",
    "parse_compound",
    "serialize_compound",
]

RTCP_SR: Final = 200
RTCP_RR: Final = 201
MAX_COMPOUND_SIZE: Final = 8192
MAX_PACKETS: Final = 32

_COMMON: Final = struct.Struct("!BBH")
_BLOCK: Final = struct.Struct("!IIIIII")
_SENDER_INFO: Final = struct.Struct("!IQIII")
_U32: Final = 0xFFFFFFFF


NTP_UNIX_OFFSET: Final = 2_208_988_800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)."""


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point, §4) of a wall-clock time given by the caller."""
    whole = int(unix_seconds // 1)
    fraction = min(round((unix_seconds - whole) * (1 << 32)), _U32)
    return (((whole + NTP_UNIX_OFFSET) & _U32) << 32) | fraction


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp: what LSR carries (§6.4.1)."""
    return (ntp >> 16) & _U32


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value <= _U32:
        raise RtpError(f"{name} {value} is not a 32-bit unsigned value")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def __post_init__(self) -> None:
        for name in ("ssrc", "highest_sequence", "jitter", "lsr", "dlsr"):
            _check_u32(name, getattr(self, name))
        if not 0 <= self.fraction_lost <= 255:
            raise RtpError(f"fraction lost {self.fraction_lost} is not 8-bit")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise RtpError(f"cumulative lost {self.cumulative_lost} is not 24-bit signed")

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        if len(data) - offset < _BLOCK.size:
            raise RtpError("report block runs past the end of the packet")
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr)


def _header(count: int, packet_type: int, body_size: int) -> bytes:
    if body_size % 4:
        raise RtpError("an RTCP packet body must be a whole number of 32-bit words")
    return _COMMON.pack(0x80 | count, packet_type, body_size // 4)


def _check_blocks(blocks: tuple[ReportBlock, ...], extension: bytes) -> None:
    if len(blocks) > 31:
        raise RtpError("at most 31 report blocks in one packet")
    if len(extension) % 4:
        raise RtpError("profile-specific extension must be whole 32-bit words")


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (§6.4.1): the sender's NTP and RTP clocks at one instant and its counts so far."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check_u32(name, getattr(self, name))
        if not 0 <= self.ntp_timestamp <= 0xFFFFFFFFFFFFFFFF:
            raise RtpError("NTP timestamp is not 64-bit unsigned")
        _check_blocks(self.reports, self.extension)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> SenderReport:
        if len(body) < _SENDER_INFO.size + 24 * count:
            raise RtpError("SR shorter than its sender info and report blocks")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        start = _SENDER_INFO.size
        blocks = tuple(ReportBlock.parse(body, start + 24 * i) for i in range(count))
        return cls(ssrc, ntp, rtp_ts, packets, octets, blocks, body[start + 24 * count :])

    def serialize(self) -> bytes:
        body = b"".join(
            [
                _SENDER_INFO.pack(
                    self.ssrc,
                    self.ntp_timestamp,
                    self.rtp_timestamp,
                    self.packet_count,
                    self.octet_count,
                ),
                *(block.serialize() for block in self.reports),
                self.extension,
            ]
        )
        return _header(len(self.reports), RTCP_SR, len(body)) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (§6.4.2): reception statistics from a participant that is not sending."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check_u32("ssrc", self.ssrc)
        _check_blocks(self.reports, self.extension)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> ReceiverReport:
        if len(body) < 4 + 24 * count:
            raise RtpError("RR shorter than its report blocks")
        (ssrc,) = struct.unpack_from("!I", body)
        blocks = tuple(ReportBlock.parse(body, 4 + 24 * i) for i in range(count))
        return cls(ssrc, blocks, body[4 + 24 * count :])

    def serialize(self) -> bytes:
        body = b"".join(
            [struct.pack("!I", self.ssrc), *(b.serialize() for b in self.reports), self.extension]
        )
        return _header(len(self.reports), RTCP_RR, len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpPacket:
    """Any other RTCP packet (SDES 202, BYE 203, APP 204, feedback 205/206, ...), kept raw."""

    packet_type: int
    count: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.count <= 31 or not 0 <= self.packet_type <= 255:
            raise RtpError("RTCP count or packet type out of range")
        if len(self.body) % 4 or len(self.body) // 4 > 0xFFFF:
            raise RtpError("RTCP body must be whole 32-bit words, at most 65535 of them")

    def serialize(self) -> bytes:
        return _header(self.count, self.packet_type, len(self.body)) + self.body


Rtcp = SenderReport | ReceiverReport | RtcpPacket


def parse_compound(
    datagram: bytes | bytearray | memoryview, *, max_size: int = MAX_COMPOUND_SIZE
) -> tuple[Rtcp, ...]:
    """Every RTCP packet of one datagram, with the §A.2 validity checks."""
    data = bytes(datagram)
    size = len(data)
    if size > max_size:
        raise RtpError(f"RTCP datagram of {size} octets exceeds {max_size}")
    out: list[Rtcp] = []
    offset = 0
    while offset < size:
        if len(out) >= MAX_PACKETS:
            raise RtpError("too many RTCP packets in one datagram")
        if size - offset < 4:
            raise RtpError("RTCP header runs past the end of the datagram")
        first, packet_type, words = _COMMON.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtpError(f"RTCP version {first >> 6}, expected 2")
        end = offset + 4 * (words + 1)
        if end > size:
            raise RtpError("RTCP length runs past the end of the datagram")
        body = data[offset + 4 : end]
        if first & 0x20:
            if end != size:
                raise RtpError("padding in an RTCP packet that is not the last")
            pad = body[-1] if body else 0
            if pad == 0 or pad > len(body) or pad % 4:
                raise RtpError(f"RTCP padding count {pad} does not fit the packet")
            body = body[:-pad]
        count = first & 0x1F
        if not out and packet_type not in (RTCP_SR, RTCP_RR):
            raise RtpError(f"a compound RTCP packet starts with SR or RR, not type {packet_type}")
        if packet_type == RTCP_SR:
            out.append(SenderReport.parse_body(count, body))
        elif packet_type == RTCP_RR:
            out.append(ReceiverReport.parse_body(count, body))
        else:
            out.append(RtcpPacket(packet_type, count, body))
        offset = end
    if not out:
        raise RtpError("empty RTCP datagram")
    return tuple(out)


def serialize_compound(packets: tuple[Rtcp, ...] | list[Rtcp]) -> bytes:
    if not packets or not isinstance(packets[0], SenderReport | ReceiverReport):
        raise RtpError("a compound RTCP packet starts with SR or RR")
    return b"".join(p.serialize() for p in packets)
