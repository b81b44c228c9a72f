"""RTP data packets (RFC 3550 §5.1), parsed and serialized without I/O.

Theory of operation: `RtpPacket.parse` takes one UDP datagram and either returns a checked value or
raises `RtpError` (never another exception: short headers, wrong version, a CSRC list or header
extension running past the end, bad padding counts and oversized datagrams are all refused).
`RtpPacket.serialize` is its inverse: ``RtpPacket.parse(p.serialize()) == p`` for every valid value.

Wire layout (network byte order)::

     0                   1                   2                   3
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers (CC × 32)   |
    [ profile-defined (16) | length in 32-bit words (16) | data ... ]   if X
    payload ... [padding, the last octet counting the padding octets]  if P

`is_rtcp` tells RTP from RTCP on a shared port (RFC 5761 §4: RTCP packet types 192-223 land in the
second octet where RTP has marker + payload type 64-95).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from telephony.errors import RtpError

__all__ = [
    "MAX_PACKET_SIZE",
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpExtension",
    "RtpPacket",
    "is_rtcp",
]

RTP_VERSION: Final = 2
RTP_HEADER_SIZE: Final = 12
MAX_PACKET_SIZE: Final = 8192
"""The default limit for one datagram (a 20 ms G.711 packet is 172 octets; video stays under MTU)."""

_HEADER: Final = struct.Struct("!BBHII")
_EXT_HEADER: Final = struct.Struct("!HH")
_U16: Final = 0xFFFF
_U32: Final = 0xFFFFFFFF


def is_rtcp(datagram: bytes | bytearray | memoryview) -> bool:
    """True when a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4: octet 1 in 192..223)."""
    return len(datagram) >= 2 and 192 <= datagram[1] <= 223


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): a 16-bit profile field and 32-bit-aligned data."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= _U16:
            raise RtpError(f"extension profile {self.profile} is not 16-bit")
        if len(self.data) % 4:
            raise RtpError("extension data must be a whole number of 32-bit words")
        if len(self.data) // 4 > _U16:
            raise RtpError("extension data too long")


def _check_range(name: str, value: int, upper: int) -> None:
    if not 0 <= value <= upper:
        raise RtpError(f"{name} {value} out of range 0..{upper}")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. ``padding`` is the number of padding octets (0: the P bit is clear), count
    octet included; the padding content is not kept (serialize writes zeros, then the count)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = field(default=0)

    def __post_init__(self) -> None:
        _check_range("payload type", self.payload_type, 127)
        _check_range("sequence", self.sequence, _U16)
        _check_range("timestamp", self.timestamp, _U32)
        _check_range("ssrc", self.ssrc, _U32)
        if len(self.csrcs) > 15:
            raise RtpError("at most 15 CSRC identifiers")
        for csrc in self.csrcs:
            _check_range("csrc", csrc, _U32)
        _check_range("padding", self.padding, 255)

    @property
    def header_size(self) -> int:
        ext = 0 if self.extension is None else 4 + len(self.extension.data)
        return RTP_HEADER_SIZE + 4 * len(self.csrcs) + ext

    @classmethod
    def parse(
        cls, datagram: bytes | bytearray | memoryview, *, max_size: int = MAX_PACKET_SIZE
    ) -> RtpPacket:
        data = bytes(datagram)
        size = len(data)
        if size > max_size:
            raise RtpError(f"RTP packet of {size} octets exceeds {max_size}")
        if size < RTP_HEADER_SIZE:
            raise RtpError(f"RTP packet of {size} octets is shorter than its fixed header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtpError(f"RTP version {version}, expected 2")
        has_padding = bool(first & 0x20)
        has_extension = bool(first & 0x10)
        cc = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * cc
        if offset > size:
            raise RtpError("CSRC list runs past the end of the packet")
        csrcs = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE)
        extension = None
        if has_extension:
            if offset + 4 > size:
                raise RtpError("header extension runs past the end of the packet")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            start = offset + 4
            offset = start + 4 * words
            if offset > size:
                raise RtpError("header extension runs past the end of the packet")
            extension = RtpExtension(profile, data[start:offset])
        end = size
        padding = 0
        if has_padding:
            padding = data[-1]
            if padding == 0 or padding > size - offset:
                raise RtpError(f"padding count {padding} does not fit the packet")
            end = size - padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=data[offset:end],
            marker=bool(second & 0x80),
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [
            _HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrcs)}I", *self.csrcs),
        ]
        if self.extension is not None:
            ext = self.extension
            parts += [_EXT_HEADER.pack(ext.profile, len(ext.data) // 4), ext.data]
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)
