"""The SIP UDP endpoint over real sockets on 127.0.0.1: raw datagrams from a plain socket, then sipp.

sipp (Debian ``sip-tester``, see scripts/system-deps.sh) is required in CI; elsewhere its tests skip.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from telephony.sip.endpoint import ALLOW, SipEndpoint, basic_response
from telephony.sip.headers import Headers
from telephony.sip.message import Limits, Request, Response, parse

SIPP_DIR = Path(__file__).parent / "sipp"
TIMEOUT = 3.0


def options(via: str, *, call_id: str | None = "ep-1@127.0.0.1", method: str = "OPTIONS") -> bytes:
    lines = [
        f"{method} sip:hub@127.0.0.1 SIP/2.0",
        f"Via: {via}",
        "From: <sip:probe@127.0.0.1>;tag=probe1",
        "To: <sip:hub@127.0.0.1>",
        *([f"Call-ID: {call_id}"] if call_id is not None else []),
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
async def endpoint() -> AsyncIterator[SipEndpoint]:
    async with SipEndpoint("127.0.0.1", 0) as ep:
        yield ep


@pytest.fixture
def client() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        yield s


def port_of(s: socket.socket) -> int:
    return int(s.getsockname()[1])


async def receive_raw(s: socket.socket, timeout: float = TIMEOUT) -> bytes:
    loop = asyncio.get_running_loop()
    data, _ = await asyncio.wait_for(loop.sock_recvfrom(s, 65535), timeout)
    return data


async def receive(s: socket.socket, timeout: float = TIMEOUT) -> tuple[Response, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    data, addr = await asyncio.wait_for(loop.sock_recvfrom(s, 65535), timeout)
    message = parse(data)
    assert isinstance(message, Response), data
    return message, addr


async def settle(endpoint: SipEndpoint, received: int) -> None:
    """Wait (bounded) until the endpoint has read ``received`` datagrams."""
    for _ in range(500):
        if endpoint.stats.received >= received:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"endpoint read {endpoint.stats.received} of {received} datagrams")


class TestSection18_2_1_ReceivedAndRport:
    """RFC 3261 §18.2.1 / §18.2.2 with RFC 3581 §4: the server transport stamps the top Via and the
    response goes to ``received``:``rport``, i.e. exactly where the packet came from."""

    async def test_options_with_rport_answered_at_the_source_port(
        self, endpoint: SipEndpoint, client: socket.socket
    ) -> None:
        # sent-by names another host and port: only the source address is right for the answer
        client.sendto(
            options("SIP/2.0/UDP 10.9.9.9:5099;branch=z9hG4bKep1;rport"), endpoint.local_address
        )
        response, addr = await receive(client)
        assert addr == endpoint.local_address
        assert (response.status, response.reason) == (200, "OK")
        via = response.top_via
        assert via is not None
        assert via.received == "127.0.0.1"
        assert via.rport == port_of(client)
        assert (via.host, via.port, via.branch) == ("10.9.9.9", 5099, "z9hG4bKep1")
        assert response.call_id == "ep-1@127.0.0.1"
        assert str(response.cseq) == "1 OPTIONS"
        assert response.from_tag == "probe1"
        assert response.to_tag  # §8.2.6.2: a UAS adds a To tag out of a dialog

    async def test_options_200_advertises_capabilities(
        self, endpoint: SipEndpoint, client: socket.socket
    ) -> None:
        client.sendto(
            options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKep2;rport"), endpoint.local_address
        )
        response, _ = await receive(client)
        assert response.status == 200
        assert response.header_all("Allow") == list(ALLOW)  # §11.2
        assert response.header("Accept") == "application/sdp"
        assert "Supported" in response.headers
        assert response.body == b""

    async def test_without_rport_the_sent_by_port_is_used(
        self, endpoint: SipEndpoint, client: socket.socket
    ) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.setblocking(False)
            via = f"SIP/2.0/UDP 127.0.0.1:{port_of(listener)};branch=z9hG4bKep3"
            client.sendto(options(via), endpoint.local_address)
            response, _ = await receive(listener)
        top = response.top_via
        assert top is not None
        assert top.received is None  # same host as the source: §18.2.1 adds nothing
        assert top.rport is None and not top.has_rport


class TestSection8_2_MalformedRequests:
    """§8.1.1 mandatory headers checked by the parser, answered 400 by the endpoint to the source."""

    async def test_missing_call_id_is_400_with_the_reason(
        self, endpoint: SipEndpoint, client: socket.socket
    ) -> None:
        data = options("SIP/2.0/UDP 10.9.9.9:5099;branch=z9hG4bKep4", call_id=None)
        client.sendto(data, endpoint.local_address)
        raw = await receive_raw(client)  # to the source, even without rport
        # a response without Call-ID is itself unparseable (§8.2.6 copies what there is): read lines
        lines = raw.decode().split("\r\n")
        assert lines[0] == "SIP/2.0 400 Bad Request (missing Call-ID)"
        assert "Via: SIP/2.0/UDP 10.9.9.9:5099;branch=z9hG4bKep4" in lines
        assert "CSeq: 1 OPTIONS" in lines
        assert not any(line.startswith("Call-ID") for line in lines)
        assert endpoint.stats.answered_400 == 1
        assert endpoint.stats.parse_errors == 1
        assert endpoint.stats.requests == 0

    async def test_over_the_size_limit_is_513(self, client: socket.socket) -> None:
        async with SipEndpoint("127.0.0.1", 0, limits=Limits(max_size=1024)) as ep:
            data = options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKep5;rport")
            big = data.replace(
                b"Max-Forwards: 70\r\n",
                b"Subject: " + b"x" * 2000 + b"\r\n" + b"Max-Forwards: 70\r\n",
            )
            client.sendto(big, ep.local_address)
            response, _ = await receive(client)
        assert response.status == 513


class TestSection18_3_DatagramRobustness:
    """Nothing a peer sends stops the endpoint: garbage is dropped or answered and counted."""

    @pytest.mark.slow
    async def test_ten_thousand_garbage_datagrams_then_options(
        self, endpoint: SipEndpoint, client: socket.socket
    ) -> None:
        rng = random.Random(8)
        valid = options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKep6;rport")
        sent = 0
        for i in range(10_000):
            kind = i % 4
            if kind == 0:  # random bytes
                data = rng.randbytes(rng.randrange(0, 1500))
            elif kind == 1:  # a valid request with bytes flipped
                buf = bytearray(valid)
                for _ in range(rng.randrange(1, 8)):
                    buf[rng.randrange(len(buf))] = rng.randrange(256)
                data = bytes(buf)
            elif kind == 2:  # truncated
                data = valid[: rng.randrange(len(valid))]
            else:  # a SIP start line followed by noise
                data = b"OPTIONS sip:a@b SIP/2.0\r\n" + rng.randbytes(rng.randrange(0, 600))
            client.sendto(data, endpoint.local_address)
            sent += 1
            if sent % 50 == 0:  # let the endpoint read before its socket buffer overflows
                await settle(endpoint, sent)
        # oversized: the largest datagram UDP carries, one endless header line, and a huge body
        client.sendto(
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject: " + b"y" * 65000, endpoint.local_address
        )
        client.sendto(
            valid.replace(b"Content-Length: 0", b"Content-Length: 99999"), endpoint.local_address
        )
        client.sendto(valid + b"z" * 65000, endpoint.local_address)
        sent += 3
        await settle(endpoint, sent)

        stats = endpoint.stats
        assert stats.received == sent
        assert stats.handler_errors == 0
        assert stats.requests + stats.responses + stats.parse_errors == sent
        assert stats.garbage + stats.answered_400 == stats.parse_errors
        assert stats.garbage > 2000 and stats.answered_400 > 2000

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh:
            fresh.bind(("127.0.0.1", 0))
            fresh.setblocking(False)
            fresh.sendto(valid, endpoint.local_address)
            response, _ = await receive(fresh)
        assert response.status == 200

    async def test_a_failing_handler_is_counted_and_the_socket_lives(
        self, client: socket.socket
    ) -> None:
        seen: list[Request] = []

        def handler(request: Request, source: tuple[str, int]) -> None:
            seen.append(request)
            if len(seen) == 1:
                raise RuntimeError("handler bug")
            ep.reply(request, basic_response(request) or pytest.fail("no response"))

        async with SipEndpoint("127.0.0.1", 0, on_request=handler) as ep:
            data = options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKep7;rport")
            client.sendto(data, ep.local_address)
            client.sendto(data, ep.local_address)
            response, _ = await receive(client)
            assert response.status == 200
            assert ep.stats.handler_errors == 1
        assert len(seen) == 2

    async def test_responses_reach_the_response_callback_unanswered(
        self, client: socket.socket
    ) -> None:
        got: list[tuple[Response, tuple[str, int]]] = []
        async with SipEndpoint("127.0.0.1", 0, on_response=lambda r, a: got.append((r, a))) as ep:
            request = parse(options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKep8"))
            assert isinstance(request, Request)
            reply = basic_response(request)
            assert reply is not None
            client.sendto(reply.serialize(), ep.local_address)
            await settle(ep, 1)
            assert ep.stats.sent == 0
        assert [(r.status, a) for r, a in got] == [(200, ("127.0.0.1", port_of(client)))]


class TestSection8_2_BasicUas:
    """What the endpoint answers before transactions and dialogs exist."""

    def request(self, method: str, *, to_tag: str | None = None) -> Request:
        to = "<sip:hub@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        return Request(
            method,
            "sip:hub@127.0.0.1",
            Headers.of(
                [
                    ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb1"),
                    ("From", "<sip:a@127.0.0.1>;tag=a1"),
                    ("To", to),
                    ("Call-ID", "b1"),
                    ("CSeq", f"1 {method}"),
                    ("Max-Forwards", "70"),
                ]
            ),
        )

    def test_ack_is_never_answered(self) -> None:  # §17.1.1.3
        assert basic_response(self.request("ACK")) is None
        assert basic_response(self.request("ACK", to_tag="x")) is None

    def test_invite_is_a_final_not_yet(self) -> None:
        r = basic_response(self.request("INVITE"), to_tag=lambda: "t1")
        assert r is not None
        assert (r.status, r.reason) == (480, "Temporarily Unavailable (calls not yet supported)")
        assert r.to_tag == "t1"

    def test_unknown_method_is_501(self) -> None:  # §8.2.1
        r = basic_response(self.request("MESSAGE"))
        assert r is not None and (r.status, r.reason) == (501, "Not Implemented")

    @pytest.mark.parametrize(("method", "to_tag"), [("BYE", None), ("CANCEL", None), ("INFO", "x")])
    def test_no_such_dialog_or_transaction_is_481(self, method: str, to_tag: str | None) -> None:
        r = basic_response(self.request(method, to_tag=to_tag))  # §12.2.2, §9.2
        assert r is not None and r.status == 481

    async def test_ack_over_udp_gets_nothing(
        self, endpoint: SipEndpoint, client: socket.socket
    ) -> None:
        client.sendto(
            options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKb2;rport", method="ACK"),
            endpoint.local_address,
        )
        client.sendto(
            options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKb3;rport"), endpoint.local_address
        )
        response, _ = await receive(client)  # the first datagram back answers the OPTIONS
        assert response.branch == "z9hG4bKb3" and response.status == 200
        assert endpoint.stats.requests == 2 and endpoint.stats.sent == 1


def sipp_or_skip() -> str:
    path = shutil.which("sipp")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("sipp is not installed (scripts/system-deps.sh installs sip-tester)")
        pytest.skip("sipp is not installed: apt-get install sip-tester (scripts/system-deps.sh)")
    return path


async def run_sipp(*args: str, cwd: Path, timeout: float = 30.0) -> int:
    proc = await asyncio.create_subprocess_exec(
        sipp_or_skip(),
        *args,
        "-nostdin",
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    if proc.returncode not in (0, 1):  # 1: some calls failed; anything else: sipp itself failed
        raise AssertionError(f"sipp exited {proc.returncode}: {err.decode(errors='replace')}")
    return proc.returncode


class TestSection11_SippClient:
    """sipp as the peer: its OPTIONS scenario, and its built-in uac's INVITE."""

    async def test_sipp_options_scenario_twenty_calls(
        self, endpoint: SipEndpoint, tmp_path: Path
    ) -> None:
        host, port = endpoint.local_address
        rc = await run_sipp(
            "-sf", str(SIPP_DIR / "options.xml"),
            "-m", "20", "-l", "5", "-r", "50",
            f"{host}:{port}", "-i", "127.0.0.1", "-p", "0",
            "-timeout", "20", "-timeout_error",
            "-trace_err", "-trace_stat", "-stf", "stat.csv",
            cwd=tmp_path,
        )  # fmt: skip
        with (tmp_path / "stat.csv").open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
        errors = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
        assert rc == 0, errors
        assert rows[-1]["SuccessfulCall(C)"] == "20"
        assert rows[-1]["FailedCall(C)"] == "0"
        assert endpoint.stats.requests == 20 and endpoint.stats.sent == 20

    async def test_sipp_uac_invite_gets_a_final_response(
        self, endpoint: SipEndpoint, tmp_path: Path
    ) -> None:
        host, port = endpoint.local_address
        await run_sipp(
            "-sn", "uac", "-m", "1",
            f"{host}:{port}", "-i", "127.0.0.1", "-p", "0",
            "-timeout", "10", "-timeout_error",
            "-trace_msg", "-message_file", "msg.log",
            cwd=tmp_path,
        )  # fmt: skip
        log = (tmp_path / "msg.log").read_text(errors="replace")
        assert "SIP/2.0 480 Temporarily Unavailable (calls not yet supported)" in log
        assert "\nACK sip:" in log  # sipp acknowledged the final response (§17.1.1.3)
        assert endpoint.stats.requests == 2  # INVITE and ACK
        assert endpoint.stats.sent == 1  # one 480, the ACK unanswered
        assert endpoint.stats.parse_errors == 0
