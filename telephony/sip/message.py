"""SIP requests and responses (RFC 3261 §7, §8.1.1, §8.2.6, §18.3, §20, §25): parse and serialize.

Theory of operation: ``parse(data)`` reads one datagram's bytes and returns a ``Request`` or a
``Response``, or raises one of two ``SipProtocolError`` kinds, never anything else:

- ``MalformedRequest(status, reason, request=...)``: a request whose start line is SIP, broken after
  that (a missing mandatory header, a bad CSeq, a Content-Length larger than the body, a limit). The
  ``request`` holds the headers that did parse, so the adapter answers it with ``make_response``
  (400 "Bad Request (missing Call-ID)", 505 for another SIP version, 513 when over the size limit).
- ``SipGarbage(reason)``: not SIP at all, a keep-alive CRLF, or a malformed response (§18.1.2: responses
  are never answered): drop it and count it.

Steps: leading CRLFs are skipped (§7.5), the start line is classified, the header block (up to the
first empty line) is split into lines, folded lines (LWS continuation, §7.3.1) are joined, names are
normalised (compact forms to full names) and comma lists split (``headers.py``). The body is what
follows: a ``Content-Length`` larger than it is an error, a shorter one truncates it (§18.3, datagrams);
without the header the body runs to the end of the datagram. ``Content-Length`` is not kept as a header:
``serialize`` writes it from the body, so a message cannot say one length and carry another.

Limits (``Limits``): the whole message, the number of header lines, and each line's length.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Self

from telephony.errors import MalformedRequest, SipGarbage
from telephony.sip.headers import (
    LIST_HEADERS,
    TOKEN,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    split_list,
)

VERSION = "SIP/2.0"
MANDATORY_REQUEST = ("Via", "To", "From", "Call-ID", "CSeq", "Max-Forwards")  # §8.1.1
MANDATORY_RESPONSE = ("Via", "To", "From", "Call-ID", "CSeq")  # §8.2.6
# list headers written as one comma-separated line (Via, Route, Contact stay one value a line)
COMBINED = frozenset(
    {
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow",
        "Allow-Events",
        "Content-Encoding",
        "Content-Language",
        "Proxy-Require",
        "Require",
        "Supported",
        "Unsupported",
    }
)
SINGLE = ("To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Type")  # §7.3.1: no lists

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_size: int = 65536  # the whole message, bytes
    max_headers: int = 100  # header lines (after unfolding)
    max_line: int = 8192  # one physical line, bytes


DEFAULT_LIMITS = Limits()

_REQUEST_LINE = re.compile(rb"(\S+)[ \t]+(.+?)[ \t]+([Ss][Ii][Pp]/\S*)[ \t]*")
_STATUS_LINE = re.compile(rb"[Ss][Ii][Pp]/(\S+) ([1-6][0-9][0-9])(?: (.*))?")
_METHOD = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+")
_URI = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*:[^\s]+")
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")
_LINES = re.compile(r"\r?\n")
_LINES_B = re.compile(rb"\r?\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_DIGITS = re.compile(r"[0-9]{1,10}")


class _Base:
    """Header helpers shared by requests and responses (the transaction layer's view)."""

    __slots__ = ()
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def header_all(self, name: str) -> list[str]:
        return self.headers.get_all(name)

    @property
    def via(self) -> list[Via]:
        """Every Via, top first; raises ValueError on a malformed one (``parse`` checked the top)."""
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via | None:
        v = self.headers.get("Via")
        return Via.parse(v) if v is not None else None

    def with_top_via(self, via: Via) -> Self:
        """The same message with its top Via replaced (e.g. ``via.stamped(host, port)``)."""
        values = self.headers.get_all("Via")
        if not values:
            return dataclasses.replace(self, headers=self.headers.add("Via", str(via)))  # type: ignore[type-var]
        return dataclasses.replace(
            self, headers=self.headers.replace("Via", [str(via), *values[1:]])
        )  # type: ignore[type-var]

    @property
    def branch(self) -> str | None:
        top = self.top_via
        return top.branch if top else None

    @property
    def call_id(self) -> str | None:
        return self.headers.get("Call-ID")

    @property
    def cseq(self) -> CSeq | None:
        v = self.headers.get("CSeq")
        return CSeq.parse(v) if v is not None else None

    @property
    def from_(self) -> NameAddr | None:
        v = self.headers.get("From")
        return NameAddr.parse(v) if v is not None else None

    @property
    def to(self) -> NameAddr | None:
        v = self.headers.get("To")
        return NameAddr.parse(v) if v is not None else None

    @property
    def from_tag(self) -> str | None:
        f = self.from_
        return f.tag if f else None

    @property
    def to_tag(self) -> str | None:
        t = self.to
        return t.tag if t else None

    def _head(self, start: str) -> bytes:
        lines = [start]
        for name, group in itertools.groupby(self.headers.items, key=lambda item: item[0]):
            values = [v for _, v in group]
            if name == "Content-Length":
                continue
            if name in COMBINED and len(values) > 1 and all(values):
                lines.append(f"{name}: {', '.join(values)}")  # "Allow: INVITE, ACK, BYE"
            else:
                lines.extend(f"{name}: {v}" for v in values)  # one Via, Route, Contact a line
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(frozen=True, slots=True)
class Request(_Base):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = VERSION

    def __post_init__(self) -> None:
        if not TOKEN.fullmatch(self.method) or not _URI.fullmatch(
            self.uri.encode("utf-8", "replace")
        ):
            raise ValueError("invalid request line")

    @property
    def max_forwards(self) -> int | None:
        v = self.headers.get("Max-Forwards")
        return int(v) if v is not None and _DIGITS.fullmatch(v) else None

    def serialize(self) -> bytes:
        return self._head(f"{self.method} {self.uri} {self.version}")


@dataclass(frozen=True, slots=True)
class Response(_Base):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = VERSION

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699 or "\r" in self.reason or "\n" in self.reason:
            raise ValueError("invalid status line")

    def serialize(self) -> bytes:
        return self._head(f"{self.version} {self.status} {self.reason}")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6): Via (all, in order), From, To, Call-ID and CSeq
    copied; ``to_tag`` added to To unless it has one already (never on 100 Trying, §8.2.6.2).
    Works on a partial request from ``MalformedRequest`` too: it copies what is there."""
    h = request.headers
    copied = [("Via", v) for v in h.get_all("Via")]
    to = h.get("To")
    if to is not None and to_tag is not None and status != 100:
        try:
            addr = NameAddr.parse(to)
            if addr.tag is None:
                to = str(addr.with_tag(to_tag))
        except ValueError:
            pass
    for name, value in (
        ("From", h.get("From")),
        ("To", to),
        ("Call-ID", h.get("Call-ID")),
        ("CSeq", h.get("CSeq")),
    ):
        if value is not None:
            copied.append((name, value))
    if status == 100 and (ts := request.headers.get("Timestamp")) is not None:
        copied.append(("Timestamp", ts))  # §8.2.6.1
    extra = Headers.of(headers).items
    return Response(
        status,
        reason if reason is not None else REASONS.get(status, ""),
        Headers((*copied, *extra)),
        body,
    )


def _bad(reason: str) -> str:
    return f"Bad Request ({reason})"


def parse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """One SIP message from a datagram; see the module docstring for what it raises."""
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipGarbage("empty or keep-alive")
    oversize = len(data) > limits.max_size
    if oversize:
        data = data[: limits.max_size]
    eol = data.find(b"\n", 0, limits.max_line + 1)
    if eol < 0:
        raise SipGarbage("no start line")
    start = data[:eol].rstrip(b"\r")
    if _CTL.search(start):
        raise SipGarbage("control character in the start line")
    resp = _STATUS_LINE.fullmatch(start)
    req = None if resp is not None else _REQUEST_LINE.fullmatch(start)
    if req is None and resp is None:
        raise SipGarbage("not a SIP start line")

    end = _HEAD_END.search(data, eol - 1 if eol else 0)
    head_end, body_start = (end.start(), end.end()) if end else (len(data), len(data))
    head, body = data[eol + 1 : head_end], data[body_start:]
    if end is None:  # no empty line: the last header's line ending is not a separator
        head = head[:-2] if head.endswith(b"\r\n") else head.removesuffix(b"\n")

    pairs: list[tuple[str, str]] = []
    error = _read_headers(head, limits, pairs)
    if end is None and error is None:
        error = _bad("no empty line after the headers")
    if oversize:
        error = "Message Too Large"
    headers, cl_error, body = _content_length(pairs, body)
    error = error or cl_error

    if resp is not None:
        return _response(resp, headers, body, error)
    assert req is not None
    return _request(req, headers, body, error)


def _read_headers(head: bytes, limits: Limits, out: list[tuple[str, str]]) -> str | None:
    """Append ``(name, value)`` pairs to ``out``; return the first problem (out keeps what parsed)."""
    if not head:
        return None
    error: str | None = None
    if _CTL.search(head):  # keep reading (sanitised) so the 400 still carries Via, Call-ID, CSeq
        error = _bad("control character in a header")
        head = _CTL.sub(b"?", head)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        error = error or _bad("header not UTF-8")
        text = head.decode("utf-8", "replace")
    if max(map(len, _LINES_B.split(head))) > limits.max_line:
        error = error or _bad("header line too long")
    raw = _LINES.split(text)
    logical: list[str] = []
    for line in raw:
        if line[:1] in (" ", "\t"):
            if not logical:
                error = error or _bad("header begins with whitespace")
                continue
            logical[-1] += " " + line.strip()
        else:
            logical.append(line)
    if len(logical) > limits.max_headers:
        error = error or _bad("too many headers")
        logical = logical[: limits.max_headers]
    for line in logical:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not TOKEN.fullmatch(name):
            error = error or _bad("malformed header line")
            continue
        canon = canonical_name(name)
        value = value.strip(" \t")
        if canon.lower() in LIST_HEADERS:
            try:
                out.extend((canon, v) for v in split_list(value))
            except ValueError:
                error = error or _bad(f"unterminated quote in {canon}")
                out.append((canon, value))
        else:
            out.append((canon, value))
    return error


def _content_length(pairs: list[tuple[str, str]], body: bytes) -> tuple[Headers, str | None, bytes]:
    lengths = {v for n, v in pairs if n == "Content-Length"}
    headers = Headers(tuple(p for p in pairs if p[0] != "Content-Length"))
    if not lengths:
        return headers, None, body
    if len(lengths) > 1:
        return headers, _bad("conflicting Content-Length"), body
    (value,) = lengths
    if not _DIGITS.fullmatch(value):
        return headers, _bad("malformed Content-Length"), body
    n = int(value)
    if n > len(body):
        return headers, _bad("Content-Length larger than the body"), body
    return headers, None, body[:n]


def _check_common(headers: Headers, mandatory: tuple[str, ...]) -> str | None:
    for name in mandatory:
        if headers.get(name) is None:
            return _bad(f"missing {name}")
    try:
        top = Via.parse(headers.get("Via") or "")
    except ValueError:
        return _bad("malformed Via")
    if top.protocol != VERSION:
        return _bad("Via protocol is not SIP/2.0")
    for name in ("From", "To"):
        try:
            NameAddr.parse(headers.get(name) or "")
        except ValueError:
            return _bad(f"malformed {name}")
    for name in SINGLE:
        if len(headers.get_all(name)) > 1:
            return _bad(f"more than one {name}")  # RFC 4475 §3.1.2.? multi01
    if not (headers.get("Call-ID") or "").strip():
        return _bad("malformed Call-ID")
    try:
        CSeq.parse(headers.get("CSeq") or "")
    except ValueError:
        return _bad("malformed CSeq")
    return None


def _request(m: re.Match[bytes], headers: Headers, body: bytes, error: str | None) -> Request:
    method_b, uri_b, version_b = m.groups()
    method = method_b.decode("latin-1")
    version = version_b.decode("latin-1").upper()
    valid_line = _METHOD.fullmatch(method_b) is not None and _URI.fullmatch(uri_b) is not None
    try:
        uri = uri_b.decode("utf-8")
    except UnicodeDecodeError:
        uri, valid_line = "", False
    partial = Request(
        method if valid_line else "INVALID",
        uri if valid_line else "sip:invalid",
        headers,
        body,
    )
    if error == "Message Too Large":
        raise MalformedRequest(513, error, request=partial)
    if not valid_line or m.group(0).rstrip(b" \t") != b" ".join(m.groups()):
        raise MalformedRequest(400, _bad("malformed Request-Line"), request=partial)
    if version != VERSION:
        raise MalformedRequest(505, "Version Not Supported", request=partial)
    error = error or _check_common(headers, MANDATORY_REQUEST)
    if error is None:
        mf = headers.get("Max-Forwards") or ""
        cseq = CSeq.parse(headers.get("CSeq") or "")
        if not _DIGITS.fullmatch(mf) or int(mf) > 255:
            error = _bad("malformed Max-Forwards")
        elif cseq.method != method:
            error = _bad("CSeq method does not match the request method")
        elif method == "INVITE" and headers.get("Contact") is None:
            error = _bad("missing Contact")  # §8.1.1.8
    if error is not None:
        raise MalformedRequest(400, error, request=partial)
    return Request(method, uri, headers, body, version)


def _response(m: re.Match[bytes], headers: Headers, body: bytes, error: str | None) -> Response:
    version_b, status_b, reason_b = m.groups()
    if b"SIP/" + version_b != VERSION.encode():
        raise SipGarbage("response with another SIP version")
    error = error or _check_common(headers, MANDATORY_RESPONSE)
    if error is not None:
        raise SipGarbage(f"malformed response: {error}")
    try:
        reason = (reason_b or b"").decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SipGarbage("reason phrase not UTF-8") from None
    return Response(int(status_b), reason, headers, body)
