"""A light RTSP health check: one ``DESCRIBE`` over a plain asyncio TCP connection, no PyAV.

Theory of operation
-------------------
For cameras nobody watches (no open session) the manager asks every few seconds whether the camera
answers. ``probe(url, timeout)`` connects, sends ``DESCRIBE <url without userinfo> RTSP/1.0`` with
``Accept: application/sdp``, and reads one response (status line and headers at most
``MAX_HEADER`` bytes, a body of at most ``MAX_BODY`` bytes, read and checked for an ``m=video``
line). A 401 is answered once on the same connection (a new one if the server closed it): Digest
(RFC 2617/7616, computed by ``telephony.sip.digest``) when offered, else Basic; a second 401 means
the credentials are wrong. Everything runs under one overall ``timeout``.

The result is ``online`` or a ``Reason``: ``refused``, ``timeout``, ``unauthorized`` (401/403),
``not_found`` (404), ``no_video`` (an SDP without video), ``bad_url``, ``unreachable``, ``error``.
Credentials come from the URL's userinfo (or the arguments); they are never logged or put in a
result.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from telephony.errors import DigestError
from telephony.sip.digest import (
    Credentials,
    authorize,
    choose_challenges,
    parse_challenges,
    random_cnonce,
)
from video.ingest.source import Reason

MAX_HEADER = 16 * 1024
MAX_BODY = 64 * 1024
USER_AGENT = "cityhub-probe/1"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    online: bool
    reason: Reason | None = None
    status: int | None = None  # the RTSP status of the last response, if any
    latency: float = 0.0  # seconds until the answer

    @property
    def message(self) -> str:
        return "在线" if self.reason is None else self.reason.message


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


class _ProtocolError(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> _Response:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise _ProtocolError("header too long") from exc
    except asyncio.IncompleteReadError as exc:
        raise ConnectionResetError("closed before an answer") from exc
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("RTSP/"):
        raise _ProtocolError("not an RTSP response")
    try:
        status = int(status_line[1])
    except ValueError as exc:
        raise _ProtocolError("bad status") from exc
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    length = 0
    for name, value in headers:
        if name == "content-length":
            try:
                length = int(value)
            except ValueError as exc:
                raise _ProtocolError("bad Content-Length") from exc
    if not 0 <= length <= MAX_BODY:
        raise _ProtocolError("body too large")
    body = await reader.readexactly(length) if length else b""
    return _Response(status, headers, body)


def _authorization(response: _Response, username: str, password: str, uri: str) -> str | None:
    values = response.values("www-authenticate")
    try:
        chosen = choose_challenges(parse_challenges(values)) if values else ()
    except DigestError:
        chosen = ()
    if chosen:
        answer = authorize(
            chosen[0],
            Credentials(username, password),
            method="DESCRIBE",
            uri=uri,
            cnonce=random_cnonce(),
        )
        return answer.serialize()
    if any(v.lower().startswith("basic") for v in values):
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return f"Basic {token}"
    return None


def _request(uri: str, cseq: int, authorization: str | None) -> bytes:
    lines = [
        f"DESCRIBE {uri} RTSP/1.0",
        f"CSeq: {cseq}",
        "Accept: application/sdp",
        f"User-Agent: {USER_AGENT}",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _status_reason(status: int) -> Reason:
    if status in (401, 403):
        return Reason.UNAUTHORIZED
    if status == 404:
        return Reason.NOT_FOUND
    return Reason.ERROR


async def _describe(host: str, port: int, uri: str, username: str | None, password: str) -> int:
    """The final RTSP status, or -1 for a 200 whose SDP has no video."""
    reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEADER)
    try:
        writer.write(_request(uri, 1, None))
        await writer.drain()
        response = await _read_response(reader)
        if response.status == 401 and username is not None:
            authorization = _authorization(response, username, password, uri)
            if authorization is None:
                return 401
            if any(v.lower() == "close" for v in response.values("connection")):
                writer.close()
                reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEADER)
            writer.write(_request(uri, 2, authorization))
            await writer.drain()
            response = await _read_response(reader)
        if response.status == 200 and b"m=video" not in response.body:
            return -1
        return response.status
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await writer.wait_closed()


async def probe(
    url: str,
    timeout: float = 3.0,  # noqa: ASYNC109 (the contract's signature; one overall bound)
    *,
    username: str | None = None,
    password: str | None = None,
) -> ProbeResult:
    """Whether the camera at ``url`` answers DESCRIBE with a video SDP (see the module docstring)."""
    started = time.monotonic()

    def result(reason: Reason | None, status: int | None = None) -> ProbeResult:
        return ProbeResult(reason is None, reason, status, time.monotonic() - started)

    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or 554
    except ValueError:
        return result(Reason.BAD_URL)
    if parts.scheme.lower() != "rtsp" or not host:
        return result(Reason.BAD_URL)
    if parts.username is not None:
        username = unquote(parts.username)
        password = unquote(parts.password or "")
    netloc = parts.netloc.rpartition("@")[2]
    uri = urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, ""))
    try:
        async with asyncio.timeout(timeout):
            status = await _describe(host, port, uri, username, password or "")
    except TimeoutError:
        return result(Reason.TIMEOUT)
    except ConnectionRefusedError:
        return result(Reason.REFUSED)
    except (_ProtocolError, asyncio.IncompleteReadError, ConnectionResetError):
        return result(Reason.ERROR)
    except DigestError:  # a challenge we cannot answer (no qop we implement, odd characters)
        return result(Reason.UNAUTHORIZED, 401)
    except socket.gaierror:
        return result(Reason.BAD_URL)
    except OSError:
        return result(Reason.UNREACHABLE)
    if status == -1:
        return result(Reason.NO_VIDEO, 200)
    if status == 200:
        return result(None, 200)
    return result(_status_reason(status), status)
