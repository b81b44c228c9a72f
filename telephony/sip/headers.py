"""SIP header fields (RFC 3261 §7.3, §20, §25.1): names, compact forms, comma lists, and the values the
transaction layer reads (Via, From/To name-addr, CSeq).

Theory of operation: a message keeps its headers as ``Headers``, an ordered tuple of ``(name, value)``
pairs, one pair per value: ``Via: a, b`` becomes two ``Via`` pairs, because only headers whose grammar is
a comma list (``LIST_HEADERS``) are split, quotes and ``<>`` respected. Names are normalised on the way
in (``i`` → ``Call-ID``, ``cseq`` → ``CSeq``), so lookups are case-insensitive and compact forms never
leak out. Value parsers (``Via.parse``, ``NameAddr.parse``, ``CSeq.parse``) raise ``ValueError`` with a
short reason; the message layer turns that into a 400 with the header's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# RFC 3261 §7.3.3 and §20 (plus RFC 3515 Refer-To "r", RFC 3891/4488 "o"/"b"/"u"/"x"/"y").
COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "Path",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]
CANONICAL = {name.lower(): name for name in _KNOWN} | {k: v for k, v in COMPACT.items()}

# Headers whose grammar is ``x *(COMMA x)`` (RFC 3261 §25.1 and extensions); never split the others
# (Authorization's digest parameters, Date's "Sat, 13 Nov", User-Agent comments hold commas).
LIST_HEADERS = frozenset(
    h.lower()
    for h in [
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    ]
)

TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# One list element: runs of plain text, quoted strings (escapes honoured), <uri> (commas inside kept).
_ELEMENT = re.compile(r'(?:[^,"<]+|"(?:[^"\\]|\\.)*"|<[^>]*>)*')


def canonical_name(name: str) -> str:
    """``i`` → ``Call-ID``, ``cseq`` → ``CSeq``; unknown names keep their spelling."""
    return CANONICAL.get(name.lower(), name)


def split_list(value: str) -> list[str]:
    """Split a comma list, respecting quoted strings and ``<>``; ``ValueError`` if a quote or ``<``
    never closes. Empty elements are dropped; an empty value stays one empty element (``Accept:``)."""
    if '"' not in value and "<" not in value:
        parts = [p.strip() for p in value.split(",")]
    else:
        parts = []
        pos, end = 0, len(value)
        while True:
            m = _ELEMENT.match(value, pos)
            assert m is not None  # the pattern matches the empty string
            pos = m.end()
            parts.append(value[m.start() : pos].strip())
            if pos >= end:
                break
            if value[pos] != ",":
                raise ValueError("unterminated quoted string or <URI>")
            pos += 1
    parts = [p for p in parts if p]
    return parts or [""]


@dataclass(frozen=True, slots=True)
class Headers:
    """Ordered header fields, one ``(name, value)`` pair per value, names canonical."""

    items: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name, value in self.items:
            if not TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                raise ValueError(f"invalid header field {name!r}")

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        """Build from any names (compact, any case) and values (comma lists are split)."""
        out: list[tuple[str, str]] = []
        for name, value in pairs:
            canon = canonical_name(name)
            if canon.lower() in LIST_HEADERS:
                out.extend((canon, v) for v in split_list(value))
            else:
                out.append((canon, value.strip()))
        return cls(tuple(out))

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (any case, compact or full form), or None."""
        key = canonical_name(name).lower()
        for n, v in self.items:
            if n.lower() == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name).lower()
        return [v for n, v in self.items if n.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def without(self, *names: str) -> Headers:
        keys = {canonical_name(n).lower() for n in names}
        return Headers(tuple((n, v) for n, v in self.items if n.lower() not in keys))

    def replace(self, name: str, values: Iterable[str]) -> Headers:
        """Set ``name`` to ``values``: at the first occurrence's place, or appended if absent."""
        canon = canonical_name(name)
        key = canon.lower()
        new = [(canon, v) for v in values]
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self.items:
            if n.lower() == key:
                if not placed:
                    out.extend(new)
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.extend(new)
        return Headers(tuple(out))

    def add(self, name: str, value: str) -> Headers:
        return Headers((*self.items, (canonical_name(name), value)))


Params = tuple[tuple[str, str | None], ...]

_PARAM = re.compile(r'\s*;\s*([^\s;=]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^\s;"]*))?\s*')


def parse_params(text: str) -> Params:
    """``;a=1;b;c="x y"`` → ``(("a", "1"), ("b", None), ("c", '"x y"'))``; ValueError if malformed."""
    out: list[tuple[str, str | None]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _PARAM.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError("malformed parameters")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def param(params: Params, name: str) -> str | None:
    key = name.lower()
    for k, v in params:
        if k.lower() == key:
            return v if v is not None else ""
    return None


_VIA = re.compile(
    r"\s*([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/;]+)\s+"  # SIP / 2.0 / UDP
    r"(\[[0-9A-Fa-f:.]+\]|[^\s:;\[\]]+)"  # host or [IPv6]
    r"(?:\s*:\s*([0-9]{1,5}))?"  # :port
    r"(.*)$",
    re.S,
)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 §20.42, §18.2.1; RFC 3581 ``rport``)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, value: str) -> Via:
        m = _VIA.match(value)
        if m is None:
            raise ValueError("malformed Via")
        name, version, transport, host, port, rest = m.groups()
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError("Via port out of range")
        return cls(
            transport=transport.upper(),
            host=host,
            port=int(port) if port else None,
            params=parse_params(rest),
            protocol=f"{name.upper()}/{version}",
        )

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    @property
    def branch(self) -> str | None:
        return param(self.params, "branch") or None

    @property
    def received(self) -> str | None:
        return param(self.params, "received") or None

    @property
    def has_rport(self) -> bool:
        """``rport`` present (RFC 3581: the client asks for the source port to be filled in)."""
        return param(self.params, "rport") is not None

    @property
    def rport(self) -> int | None:
        v = param(self.params, "rport")
        return int(v) if v and v.isdigit() and len(v) <= 5 else None

    def with_params(self, **values: str | None) -> Via:
        """Set parameters (``received="1.2.3.4"``, ``rport="5060"``): in place if present, else
        appended; the others keep their order."""
        todo = dict(values)
        out: list[tuple[str, str | None]] = []
        for k, v in self.params:
            if k.lower() in todo:
                out.append((k, todo.pop(k.lower())))
            else:
                out.append((k, v))
        out.extend(todo.items())
        return Via(self.transport, self.host, self.port, tuple(out), self.protocol)

    def stamped(self, host: str, port: int) -> Via:
        """The top Via as a server transport records the packet's source (RFC 3261 §18.2.1: add
        ``received`` when the sent-by host differs from it; RFC 3581 §4: with ``rport``, always add
        ``received`` and fill ``rport`` with the source port)."""
        if self.has_rport:
            return self.with_params(received=host, rport=str(port))
        if self.host.strip("[]").lower() != host.strip("[]").lower():
            return self.with_params(received=host)
        return self

    def response_address(self) -> tuple[str, int]:
        """Where responses go over UDP (RFC 3261 §18.2.2, RFC 3581 §4): ``received`` (else the
        sent-by host) at ``rport`` (else the sent-by port, else 5060; 5061 for TLS)."""
        host = self.received or self.host
        default = 5061 if self.transport == "TLS" else 5060
        return host.strip("[]"), self.rport or self.port or default


_DISPLAY_TOKENS = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~\x80-\U0010ffff]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~\x80-\U0010ffff]+)*"
)
_NAME_ADDR = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([^"<]*?))\s*<([^<>]*)>(.*)$', re.S)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From, To, Contact, Route values: ``"Display" <uri>;params`` or ``uri;params``."""

    uri: str
    display: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        if "<" in value or '"' in value:
            m = _NAME_ADDR.match(value)
            if m is None:
                raise ValueError("malformed name-addr")
            quoted, bare, uri, rest = m.groups()
            display = quoted if quoted is not None else (bare.strip() or None)
            if quoted is None and display is not None and not _DISPLAY_TOKENS.fullmatch(display):
                raise ValueError("display name is neither tokens nor quoted")  # RFC 4475 baddn
            if uri != uri.strip():
                raise ValueError("whitespace inside <>")  # RFC 4475 §3.1.2.14 badaspec
        else:  # addr-spec: parameters after the URI belong to the header (RFC 3261 §20)
            uri, _, rest = value.strip().partition(";")
            rest = ";" + rest if rest else ""
            display = None
        uri = uri.strip()
        if ":" not in uri or any(c.isspace() for c in uri):
            raise ValueError("malformed URI")
        return cls(uri=uri, display=display, params=parse_params(rest))

    def __str__(self) -> str:
        display = f"{self.display} " if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag") or None

    def with_tag(self, tag: str) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k.lower() != "tag")
        return NameAddr(self.uri, self.display, (*kept, ("tag", tag)))


_CSEQ = re.compile(r"\s*([0-9]{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*$")


@dataclass(frozen=True, slots=True)
class CSeq:
    """RFC 3261 §20.16: a sequence number below 2**31 and a method."""

    number: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        m = _CSEQ.match(value)
        if m is None or int(m.group(1)) >= 2**31:
            raise ValueError("malformed CSeq")
        return cls(int(m.group(1)), m.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"
