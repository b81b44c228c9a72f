"""The DESCRIBE probe's authentication and answers, against a small RTSP responder on loopback.

The responder is a real TCP server speaking just enough RTSP/1.0 for a DESCRIBE, written here
because the camera simulator offers Basic auth only: Digest (with ``qop=auth`` and the RFC 2069
form without ``qop`` many cameras still send) is checked with the same arithmetic as the SIP side.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from telephony.sip.digest import Algorithm, Authorization, compute_response
from video.ingest.probe import probe
from video.ingest.source import Reason

SDP_VIDEO = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nm=video 0 RTP/AVP 96\r\n"
SDP_AUDIO = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nm=audio 0 RTP/AVP 0\r\n"


@dataclass
class Responder:
    challenge: str = 'Digest realm="cam", nonce="n0nce", qop="auth", algorithm=MD5'
    password: str = "s3cret"
    body: bytes = SDP_VIDEO
    close_after_401: bool = False
    requests: list[str] = field(default_factory=list)
    port: int = 0

    def authorized(self, value: str) -> bool:
        if value.startswith("Basic "):
            return base64.b64decode(value[6:]) == f"admin:{self.password}".encode()
        auth = Authorization.parse(value)
        expected = compute_response(
            algorithm=Algorithm.MD5,
            username=auth.username,
            realm=auth.realm,
            password=self.password,
            method="DESCRIBE",
            uri=auth.uri,
            nonce=auth.nonce,
            qop=auth.qop,
            nc=auth.nc or 1,
            cnonce=auth.cnonce,
        )
        return auth.username == "admin" and auth.response == expected

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                self.requests.append(head)
                lines = head.split("\r\n")
                cseq = next(v for k, _, v in (x.partition(": ") for x in lines) if k == "CSeq")
                auth = next(
                    (v for k, _, v in (x.partition(": ") for x in lines) if k == "Authorization"),
                    None,
                )
                if auth is None or not self.authorized(auth):
                    extra = "Connection: close\r\n" if self.close_after_401 else ""
                    writer.write(
                        f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                        f"WWW-Authenticate: {self.challenge}\r\n{extra}\r\n".encode()
                    )
                    await writer.drain()
                    if self.close_after_401:
                        return
                    continue
                writer.write(
                    f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                    f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                    + self.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Serve = Callable[[Responder], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(responder: Responder) -> str:
        server = await asyncio.start_server(responder.handle, "127.0.0.1", 0)
        servers.append(server)
        responder.port = server.sockets[0].getsockname()[1]
        return f"rtsp://127.0.0.1:{responder.port}/cam01"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def with_auth(url: str, password: str) -> str:
    return url.replace("rtsp://", f"rtsp://admin:{password}@")


@pytest.mark.parametrize(
    "challenge",
    [
        'Digest realm="cam", nonce="n0nce", qop="auth", algorithm=MD5',
        'Digest realm="cam", nonce="n0nce"',  # RFC 2069: no qop
        'Basic realm="cam"',
    ],
)
async def test_auth_schemes(serve: Serve, challenge: str) -> None:
    responder = Responder(challenge=challenge)
    url = await serve(responder)
    result = await probe(with_auth(url, "s3cret"), 2.0)
    assert result.online and result.status == 200, responder.requests
    assert responder.requests[0].startswith(f"DESCRIBE rtsp://127.0.0.1:{responder.port}/cam01 ")
    assert "Accept: application/sdp" in responder.requests[0]
    assert "s3cret" not in "".join(responder.requests)  # the password itself never travels
    assert "admin:" not in responder.requests[1].split("\r\n")[0]  # no userinfo in the URI
    wrong = await probe(with_auth(url, "wrong"), 2.0)
    assert wrong.reason is Reason.UNAUTHORIZED and wrong.status == 401
    assert wrong.message == "用户名或密码错误"


async def test_credentials_as_arguments_and_new_connection_after_close(serve: Serve) -> None:
    responder = Responder(close_after_401=True)
    url = await serve(responder)
    assert (await probe(url, 2.0, username="admin", password="s3cret")).online
    assert (await probe(url, 2.0)).reason is Reason.UNAUTHORIZED  # no credentials at all


async def test_sdp_without_video(serve: Serve) -> None:
    url = await serve(Responder(body=SDP_AUDIO))
    result = await probe(with_auth(url, "s3cret"), 2.0)
    assert result.reason is Reason.NO_VIDEO and result.message == "没有视频流"


async def test_garbage_answer_is_an_error(serve: Serve) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        assert (await probe(f"rtsp://127.0.0.1:{port}/x", 2.0)).reason is Reason.ERROR
    finally:
        server.close()
        await server.wait_closed()
