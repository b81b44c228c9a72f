"""SDP (RFC 4566) values and the RFC 3264 offer/answer model for G.711 audio, sans I/O.

Theory of operation
-------------------
``SessionDescription.parse(data)`` turns a body (bytes or str, ``\\r\\n`` or bare ``\\n`` line ends)
into frozen values, or raises ``SdpError`` (status 400): nothing else escapes the parser. Limits on
size, line count, line length and media sections are checked before any work. Lines the model does
not name (``i=``, ``b=``, ``k=``, ``z=``, GB/T 28181's ``y=``/``f=``, any attribute) are kept, so
``parse(str(sdp)) == sdp``; a description in the usual order (v o s i u e p c b t r z k a, then per
media m i c b k a) serializes back to the same bytes.

Offer/answer works on values only: ``SdpSession`` is our ``o=`` identity for one SIP session
(version + 1 whenever the description we send changes, unchanged when it does not: RFC 3264 §8);
``build_offer`` makes the hub's offer (PCMU 0, PCMA 8, telephone-event 101, ptime 20);
``answer_offer`` is the answerer (§6) and raises ``SdpNegotiationError`` (488) when no offered audio
stream has a codec we take; ``negotiate_answer`` is the offerer's side (§5-6). Both return a
``NegotiatedMedia``: the codec and payload types, where to send RTP, our direction and whether the
peer has put us on hold (its ``sendonly``/``inactive``, or the old ``c=0.0.0.0`` of RFC 2543).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace

from telephony.errors import SdpError, SdpNegotiationError

MAX_SDP_SIZE = 16_384
MAX_SDP_LINES = 256
MAX_LINE_LENGTH = 1_024
MAX_MEDIA = 16

_NUMBER = re.compile(r"[0-9]{1,20}")
_SMALL = re.compile(r"[0-9]{1,10}")
_BAD_CHARS = re.compile(r"[\r\x00]")
_RTP_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF"})
# Where the lines the model keeps verbatim go (RFC 4566 §5 order; unknown types after the a= lines).
_SESSION_RANK = {"i": 0, "u": 1, "e": 2, "p": 3, "b": 5, "t": 6, "r": 6, "z": 7, "k": 8}
_MEDIA_RANK = {"i": 0, "b": 5, "k": 8}
_C_RANK, _A_RANK = 4, 9


def _ordered(extra: list[tuple[str, str]], rank: dict[str, int]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(extra, key=lambda kv: rank.get(kv[0], 10)))


def _layout(
    extra: tuple[tuple[str, str], ...],
    rank: dict[str, int],
    connection: Connection | None,
    attributes: tuple[Attribute, ...],
) -> list[str]:
    out = [f"{k}={v}" for k, v in _ordered(list(extra), rank) if rank.get(k, 10) < _C_RANK]
    if connection is not None:
        out.append(f"c={connection}")
    out += [
        f"{k}={v}" for k, v in _ordered(list(extra), rank) if _C_RANK < rank.get(k, 10) < _A_RANK
    ]
    out += [f"a={a}" for a in attributes]
    out += [f"{k}={v}" for k, v in extra if k not in rank]
    return out


class Direction(enum.Enum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The peer's view of this direction (RFC 3264 §6.1: sendonly ↔ recvonly)."""
        return Direction.of(self.receives, self.sends)

    def __and__(self, other: Direction) -> Direction:
        return Direction.of(self.sends and other.sends, self.receives and other.receives)


_DIRECTIONS = {d.value: d for d in Direction}
_NOT_CODECS = frozenset({"telephone-event", "cn"})


def _number(
    text: str, what: str, pattern: re.Pattern[str] = _SMALL, maximum: int | None = None
) -> int:
    if not pattern.fullmatch(text):
        raise SdpError(f"bad {what}: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpError(f"{what} out of range: {value}")
    return value


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> IN IP4|IP6 <address>``."""

    username: str
    session_id: int
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise SdpError("o= needs 6 fields")
        user, sid, version, nettype, addrtype, address = parts
        return cls(
            user,
            _number(sid, "session id", _NUMBER),
            _number(version, "session version", _NUMBER),
            address,
            nettype,
            addrtype,
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=IN IP4|IP6 <address>`` (a multicast ``/ttl`` suffix stays in ``address``)."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SdpError("c= needs 3 fields")
        nettype, addrtype, address = parts
        return cls(address, nettype, addrtype)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address, "IN", "IP6" if ":" in address else "IP4")

    @property
    def is_hold(self) -> bool:
        """The RFC 2543 hold address (RFC 3264 §8.4): no media may be sent there."""
        return self.address in ("0.0.0.0", "::")  # noqa: S104 (a value compared, not bound)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` or ``a=<name>:<value>``; ``value`` is None for a property attribute."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, sep, value = text.partition(":")
        return cls(name, value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format: ``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse_rtpmap(cls, value: str) -> Codec:
        pt, _, rest = value.partition(" ")
        parts = rest.strip().split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise SdpError(f"bad rtpmap: {value[:40]!r}")
        channels = _number(parts[2], "rtpmap channels", maximum=255) if len(parts) == 3 else None
        return cls(
            _number(pt, "payload type", maximum=127),
            parts[0],
            _number(parts[1], "clock rate", maximum=10_000_000),
            channels,
        )

    def same_format(self, other: Codec) -> bool:
        """The same encoding (case-insensitive, RFC 4855 §3) at the same clock rate."""
        return (
            self.encoding.lower() == other.encoding.lower()
            and self.clock_rate == other.clock_rate
            and (self.channels or 1) == (other.channels or 1)
        )

    def rtpmap(self) -> Attribute:
        tail = "" if self.channels is None else f"/{self.channels}"
        return Attribute("rtpmap", f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}")


PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000)
# RFC 3551 §6: the static payload types an offer may list without an rtpmap.
_STATIC = "0 PCMU/8000,3 GSM/8000,4 G723/8000,5 DVI4/8000,6 DVI4/16000,7 LPC/8000,8 PCMA/8000"
_STATIC += ",9 G722/8000,10 L16/44100/2,11 L16/44100,13 CN/8000,15 G728/8000,18 G729/8000"
STATIC_PAYLOAD_TYPES = {c.payload_type: c for c in map(Codec.parse_rtpmap, _STATIC.split(","))}


def parse_events(value: str) -> frozenset[int]:
    """An RFC 4733 §2.4.1 event list (``0-15,66,70``) as a set; malformed parts raise SdpError."""
    events: set[int] = set()
    for part in value.strip().split(","):
        low, sep, high = part.strip().partition("-")
        first = _number(low, "event", maximum=255)
        last = _number(high, "event", maximum=255) if sep else first
        if last < first:
            raise SdpError(f"bad event range: {part[:20]!r}")
        events.update(range(first, last + 1))
    return frozenset(events)


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=`` section with its connection, attributes and the other lines kept verbatim."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()
    port_count: int | None = None

    @classmethod
    def parse_m_line(cls, value: str) -> MediaDescription:
        parts = value.split()
        if len(parts) < 3:
            raise SdpError("m= needs media, port and proto")
        media, port_text, proto, *formats = parts
        port_part, sep, count_part = port_text.partition("/")
        port = _number(port_part, "port", maximum=65535)
        count = _number(count_part, "port count", maximum=65535) if sep else None
        if proto.upper() in _RTP_PROTOS:
            for fmt in formats:
                _number(fmt, "payload type", maximum=127)
        return cls(media, port, proto, tuple(formats), port_count=count)

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper() in _RTP_PROTOS

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(int(f) for f in self.formats) if self.is_rtp else ()

    def attribute_values(self, name: str) -> tuple[str, ...]:
        return tuple(a.value or "" for a in self.attributes if a.name == name)

    def codec(self, payload_type: int) -> Codec | None:
        """The format of ``payload_type``: its rtpmap, else the static RFC 3551 one."""
        for value in self.attribute_values("rtpmap"):
            if value.partition(" ")[0] == str(payload_type):
                return Codec.parse_rtpmap(value)
        return STATIC_PAYLOAD_TYPES.get(payload_type)

    def codecs(self) -> tuple[Codec, ...]:
        """The listed formats in preference order (unknown dynamic ones left out)."""
        return tuple(c for pt in self.payload_types if (c := self.codec(pt)) is not None)

    def fmtp(self, payload_type: int) -> str | None:
        for value in self.attribute_values("fmtp"):
            pt, _, params = value.partition(" ")
            if pt == str(payload_type):
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        values = self.attribute_values("ptime")
        if not values:
            return None
        whole = values[0].strip().partition(".")[0]
        return _number(whole, "ptime", maximum=1000) or None

    def direction(self, default: Direction = Direction.SENDRECV) -> Direction:
        for a in self.attributes:
            if a.value is None and a.name in _DIRECTIONS:
                return _DIRECTIONS[a.name]
        return default

    def lines(self) -> list[str]:
        port = self.port if self.port_count is None else f"{self.port}/{self.port_count}"
        m = " ".join((self.media, str(port), self.proto, *self.formats))
        return [f"m={m}", *_layout(self.extra, _MEDIA_RANK, self.connection, self.attributes)]


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body. ``str()`` gives ``\\r\\n`` lines, ``serialize()`` the UTF-8 bytes."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    extra: tuple[tuple[str, str], ...] = (("t", "0 0"),)
    version: int = 0

    @classmethod
    def parse(
        cls,
        data: bytes | str,
        *,
        max_size: int = MAX_SDP_SIZE,
        max_lines: int = MAX_SDP_LINES,
        max_line_length: int = MAX_LINE_LENGTH,
    ) -> SessionDescription:
        if len(data) > max_size or (isinstance(data, str) and len(data.encode()) > max_size):
            raise SdpError(f"SDP larger than {max_size} bytes", status=413)
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpError("SDP is not UTF-8") from None
        lines = data.split("\n")
        if len(lines) > max_lines + 1:
            raise SdpError(f"SDP has more than {max_lines} lines")
        return _Parser(max_line_length).run(lines)

    def lines(self) -> list[str]:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        out += _layout(self.extra, _SESSION_RANK, self.connection, self.attributes)
        for m in self.media:
            out += m.lines()
        return out

    def __str__(self) -> str:
        return "".join(f"{line}\r\n" for line in self.lines())

    def serialize(self) -> bytes:
        return str(self).encode("utf-8")

    def direction(self) -> Direction:
        """The session-level direction attribute (sendrecv when there is none)."""
        for a in self.attributes:
            if a.value is None and a.name in _DIRECTIONS:
                return _DIRECTIONS[a.name]
        return Direction.SENDRECV

    def media_direction(self, media: MediaDescription) -> Direction:
        return media.direction(self.direction())

    def media_connection(self, media: MediaDescription) -> Connection:
        """The connection for ``media`` (its own c=, else the session's, RFC 4566 §5.7)."""
        conn = media.connection or self.connection
        if conn is None:
            raise SdpError("no c= line for a media stream")
        return conn


@dataclass(slots=True)
class _Section:
    extra: list[tuple[str, str]] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    connection: Connection | None = None


class _Parser:
    __slots__ = ("max_line_length",)

    def __init__(self, max_line_length: int) -> None:
        self.max_line_length = max_line_length

    def run(self, raw_lines: list[str]) -> SessionDescription:
        version: int | None = None
        origin: Origin | None = None
        name: str | None = None
        session = _Section()
        section = session
        media: list[tuple[MediaDescription, _Section]] = []
        for raw in raw_lines:
            line = raw[:-1] if raw.endswith("\r") else raw
            if len(line) > self.max_line_length:
                raise SdpError(f"SDP line longer than {self.max_line_length}")
            if not line:
                continue
            if _BAD_CHARS.search(line):
                raise SdpError("CR or NUL inside an SDP line")
            kind, value = line[0], line[2:]
            if len(line) < 2 or line[1] != "=" or not ("a" <= kind <= "z"):
                raise SdpError(f"not an SDP line: {line[:40]!r}")
            if version is None:
                if kind != "v":
                    raise SdpError("SDP must start with v=")
                version = _number(value, "SDP version", maximum=0)
            elif kind == "m":
                if len(media) >= MAX_MEDIA:
                    raise SdpError(f"more than {MAX_MEDIA} media sections")
                section = _Section()
                media.append((MediaDescription.parse_m_line(value), section))
            elif kind in "vos" and (section is not session or kind == "v"):
                raise SdpError(f"misplaced or repeated {kind}=")
            elif kind == "o":
                if origin is not None:
                    raise SdpError("repeated o=")
                origin = Origin.parse(value)
            elif kind == "s":
                if name is not None:
                    raise SdpError("repeated s=")
                name = value
            elif kind == "c":
                if section.connection is not None:
                    raise SdpError("repeated c=")
                section.connection = Connection.parse(value)
            elif kind == "a":
                section.attributes.append(Attribute.parse(value))
            else:
                section.extra.append((kind, value))
        if version is None or origin is None or name is None:
            raise SdpError("SDP needs o= and s=")
        built = tuple(
            replace(
                m,
                connection=s.connection,
                attributes=tuple(s.attributes),
                extra=_ordered(s.extra, _MEDIA_RANK),
            )
            for m, s in media
        )
        for m in built:
            _check_media(m)
        return SessionDescription(
            origin=origin,
            session_name=name,
            connection=session.connection,
            attributes=tuple(session.attributes),
            media=built,
            extra=_ordered(session.extra, _SESSION_RANK),
            version=version,
        )


def _check_media(m: MediaDescription) -> None:
    """Check the attributes offer/answer reads, so negotiation never meets a malformed one."""
    if not m.is_rtp:
        return
    for value in m.attribute_values("rtpmap"):
        Codec.parse_rtpmap(value)
    for value in m.attribute_values("fmtp"):
        _number(value.partition(" ")[0], "fmtp payload type", maximum=127)
    _ = m.ptime


# --- offer/answer (RFC 3264) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalMedia:
    """What we can do and where we receive: the input to building an offer or an answer."""

    address: str
    port: int
    direction: Direction = Direction.SENDRECV
    codecs: tuple[Codec, ...] = (PCMU, PCMA)
    telephone_event: int | None = TELEPHONE_EVENT.payload_type
    events: str = "0-15"
    ptime: int = 20


@dataclass(frozen=True, slots=True)
class SdpSession:
    """Our ``o=`` for one SIP session. ``describe`` numbers each description we send."""

    session_id: int
    version: int
    address: str
    username: str = "cityhub"
    session_name: str = "cityhub"
    last: SessionDescription | None = None

    def describe(
        self, media: tuple[MediaDescription, ...], connection: Connection
    ) -> tuple[SdpSession, SessionDescription]:
        """Wrap ``media`` in our o=; version + 1 if it differs from what we sent last (§8)."""
        version, addrtype = self.version, Connection.for_address(self.address).addrtype
        origin = Origin(self.username, self.session_id, version, self.address, addrtype=addrtype)
        sdp = SessionDescription(origin, self.session_name, connection, media=media)
        if self.last is not None and self.last != sdp:
            version += 1
            sdp = replace(sdp, origin=replace(origin, session_version=version))
        return replace(self, version=version, last=sdp), sdp


def _audio_attributes(
    codecs: tuple[Codec, ...], local: LocalMedia, direction: Direction
) -> tuple[Attribute, ...]:
    attrs = [c.rtpmap() for c in codecs]
    for c in codecs:
        if c.encoding.lower() == "telephone-event":
            attrs.append(Attribute("fmtp", f"{c.payload_type} {local.events}"))
    attrs.append(Attribute("ptime", str(local.ptime)))
    attrs.append(Attribute(direction.value))
    return tuple(attrs)


def build_offer(session: SdpSession, local: LocalMedia) -> tuple[SdpSession, SessionDescription]:
    """The hub's offer: one audio stream, our codecs in order, telephone-event, ptime, direction."""
    codecs = local.codecs
    if local.telephone_event is not None:
        codecs += (Codec(local.telephone_event, "telephone-event", 8000),)
    m = MediaDescription(
        "audio",
        local.port,
        "RTP/AVP",
        tuple(str(c.payload_type) for c in codecs),
        attributes=_audio_attributes(codecs, local, local.direction),
    )
    return session.describe((m,), Connection.for_address(local.address))


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The outcome for our audio stream, from our side: what to send, where, and in which way."""

    codec: Codec
    telephone_event: int | None
    remote_address: str
    remote_port: int
    direction: Direction
    remote_hold: bool
    ptime: int
    media_index: int
    receive_payload_types: tuple[Codec, ...] = ()

    @property
    def sends(self) -> bool:
        return self.direction.sends

    @property
    def receives(self) -> bool:
        return self.direction.receives


def _remote_view(
    sdp: SessionDescription, m: MediaDescription
) -> tuple[Connection, Direction, bool]:
    conn = sdp.media_connection(m)
    direction = sdp.media_direction(m)
    if conn.is_hold:
        direction = Direction.of(direction.sends, False)
    hold = conn.is_hold or not direction.receives
    return conn, direction, hold


def _pick(offered: tuple[Codec, ...], ours: tuple[Codec, ...]) -> tuple[Codec | None, Codec | None]:
    """First of ``offered`` (in its order) that we take, and the telephone-event at its rate."""
    usable = [
        c
        for c in offered
        if c.encoding.lower() not in _NOT_CODECS and any(c.same_format(o) for o in ours)
    ]
    if not usable:
        return None, None
    rate = usable[0].clock_rate
    events = [
        c for c in offered if c.encoding.lower() == "telephone-event" and c.clock_rate == rate
    ]
    return usable[0], (events[0] if events else None)


def answer_offer(
    offer: SessionDescription, local: LocalMedia, session: SdpSession
) -> tuple[SdpSession, SessionDescription, NegotiatedMedia]:
    """RFC 3264 §6: one answer m-line per offered one; the first usable audio stream is accepted.

    The codec is the first offered one we support (offerer's order, offerer's payload type); the
    telephone-event at its clock rate if offered; direction per §6.1 intersected with ours. Every
    other stream is rejected with port 0. No acceptable audio: ``SdpNegotiationError`` (488).
    """
    answered: list[MediaDescription] = []
    result: NegotiatedMedia | None = None
    for index, m in enumerate(offer.media):
        chosen = event = None
        if result is None and m.media == "audio" and m.port != 0 and m.proto.upper() == "RTP/AVP":
            chosen, event = _pick(m.codecs(), local.codecs)
        if chosen is None:
            answered.append(MediaDescription(m.media, 0, m.proto, m.formats[:1] or ("0",)))
            continue
        conn, remote_dir, hold = _remote_view(offer, m)
        direction = remote_dir.reversed() & local.direction
        use = (chosen,) if event is None else (chosen, event)
        answered.append(
            MediaDescription(
                "audio",
                local.port,
                m.proto,
                tuple(str(c.payload_type) for c in use),
                attributes=_audio_attributes(use, local, direction),
            )
        )
        result = NegotiatedMedia(
            chosen,
            None if event is None else event.payload_type,
            conn.address,
            m.port,
            direction,
            hold,
            m.ptime or 20,
            index,
            use,
        )
    if result is None:
        raise SdpNegotiationError(details={"offered": _all_codecs(offer)})
    session, sdp = session.describe(tuple(answered), Connection.for_address(local.address))
    return session, sdp, result


def _all_codecs(sdp: SessionDescription) -> list[str]:
    return [f"{c.encoding}/{c.clock_rate}" for m in sdp.media if m.is_rtp for c in m.codecs()]


def negotiate_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """RFC 3264 §5-6 from the offerer's side: what the answer to our ``offer`` lets us do.

    The answer must have as many m-lines as the offer (§6); our audio stream must not be rejected
    (port 0) and must list a format we offered. We send with the answer's payload type numbers.
    """
    if len(answer.media) != len(offer.media):
        raise SdpNegotiationError("answer m-lines do not match the offer")
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.media != "audio" or ours.port == 0:
            continue
        if theirs.port == 0 or not theirs.is_rtp:
            raise SdpNegotiationError("audio stream rejected")
        chosen, event = _pick(theirs.codecs(), ours.codecs())
        if chosen is None:
            raise SdpNegotiationError("no common codec in the answer")
        conn, remote_dir, hold = _remote_view(answer, theirs)
        direction = remote_dir.reversed() & offer.media_direction(ours)
        receive = tuple(c for c in ours.codecs() if any(c.same_format(t) for t in theirs.codecs()))
        return NegotiatedMedia(
            chosen,
            None if event is None else event.payload_type,
            conn.address,
            theirs.port,
            direction,
            hold,
            theirs.ptime or 20,
            index,
            receive,
        )
    raise SdpNegotiationError("no audio stream offered")


def remote_changed(previous: SessionDescription | None, new: SessionDescription) -> bool:
    """False when ``new`` repeats ``previous``'s o= (same version: same SDP, RFC 3264 §8)."""
    return previous is None or previous.origin != new.origin
