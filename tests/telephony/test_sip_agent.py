"""Two real ``UserAgent``s over UDP on 127.0.0.1: calls, answers, BYE both ways, CANCEL, busy,
re-INVITE hold, 481, OPTIONS, the media timeout, and a lossy transport.

Timers are shortened (T1 = 50 ms) so retransmission and timeout paths finish quickly; the protocol
logic is the same as with the RFC defaults.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from telephony.errors import CallFailed
from telephony.sdp import Direction, LocalMedia, SdpSession, SessionDescription, build_offer
from telephony.sip.agent import Call, IncomingCall, UserAgent
from telephony.sip.dialog import CallState, with_direction
from telephony.sip.message import Request, Response, parse
from telephony.sip.transaction import TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, d=0.5, trying_delay=0.2)
TIMEOUT = 5.0


def offer(port: int = 30000, direction: Direction = Direction.SENDRECV) -> SessionDescription:
    session = SdpSession(session_id=7, version=1, address="127.0.0.1")
    return build_offer(session, LocalMedia("127.0.0.1", port, direction))[1]


def answer(port: int = 30002) -> SessionDescription:
    return offer(port)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    async with (
        UserAgent("127.0.0.1", 0, user="hub", timers=FAST) as caller,
        UserAgent("127.0.0.1", 0, user="speaker", timers=FAST, media_timeout=0.5) as callee,
    ):
        yield caller, callee


def uri(ua: UserAgent, user: str = "speaker") -> str:
    host, port = ua.local_address
    return f"sip:{user}@{host}:{port}"


def auto_answer(
    ua: UserAgent, calls: list[Call], *, ring: bool = True
) -> Callable[[IncomingCall], Any]:
    async def handler(incoming: IncomingCall) -> None:
        if ring:
            await incoming.ring()
        calls.append(await incoming.answer(answer()))

    ua.on_invite = handler
    return handler


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


class TestSection13_2_2_4_CallAnsweredAndAcked:
    async def test_call_answer_and_bye_from_the_caller(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        caller, callee = pair
        answered: list[Call] = []
        auto_answer(callee, answered)
        call = await asyncio.wait_for(
            caller.invite(uri(callee), offer(), headers=[("Call-Info", "<sip:x>;answer-after=0")]),
            TIMEOUT,
        )
        assert call.state is CallState.CONFIRMED
        assert call.remote_sdp.media[0].port == 30002
        await until(lambda: bool(answered))
        theirs = answered[0]
        assert theirs.call_id == call.call_id
        assert theirs.remote_sdp.media[0].port == 30000
        await until(lambda: callee.stats["absorbed"] >= 0 and not callee._rtx)  # ACK arrived
        await call.hangup()
        assert call.state in (CallState.TERMINATED,)
        assert await asyncio.wait_for(call.ended, TIMEOUT) == "local_bye"
        assert await asyncio.wait_for(theirs.ended, TIMEOUT) == "remote_bye"
        assert theirs.state is CallState.TERMINATED
        await call.hangup()  # idempotent
        assert caller.stats["calls_terminated"] == 1
        assert callee.stats["calls_terminated"] == 1
        assert caller.stats["calls_confirmed"] == 0

    async def test_bye_from_the_callee(self, pair: tuple[UserAgent, UserAgent]) -> None:
        caller, callee = pair
        answered: list[Call] = []
        auto_answer(callee, answered, ring=False)
        call = await asyncio.wait_for(caller.invite(uri(callee), offer()), TIMEOUT)
        await until(lambda: bool(answered))
        await answered[0].hangup()
        assert await asyncio.wait_for(call.ended, TIMEOUT) == "remote_bye"
        assert answered[0].ended.result() == "local_bye"
        assert not caller.calls and not callee.calls

    async def test_the_invite_carries_the_callers_headers(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        caller, callee = pair
        seen: list[Request] = []

        async def handler(incoming: IncomingCall) -> None:
            seen.append(incoming.request)
            await incoming.reject(486)

        callee.on_invite = handler
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(
                caller.invite(
                    uri(callee), offer(), headers=[("Alert-Info", "info=alert-autoanswer")]
                ),
                TIMEOUT,
            )
        assert (failed.value.outcome, failed.value.status) == ("busy", 486)
        assert seen[0].header("Alert-Info") == "info=alert-autoanswer"
        assert caller.stats["calls_failed"] == 1


class TestSection9_Cancel:
    async def test_ring_timeout_cancels_and_the_invite_gets_487(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        caller, callee = pair
        pending: list[IncomingCall] = []

        async def handler(incoming: IncomingCall) -> None:
            await incoming.ring()
            pending.append(incoming)

        callee.on_invite = handler
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(caller.invite(uri(callee), offer(), ring_timeout=0.3), TIMEOUT)
        assert (failed.value.outcome, failed.value.status) == ("no_answer", 487)
        assert pending[0].cancelled.is_set()
        assert pending[0].cell.state is CallState.CANCELLED
        with pytest.raises(CallFailed) as late:
            await pending[0].answer(answer())
        assert late.value.outcome == "cancelled"
        assert caller.stats["calls_cancelled"] == 1

    async def test_cancelling_the_task_sends_cancel(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        caller, callee = pair
        pending: list[IncomingCall] = []

        async def handler(incoming: IncomingCall) -> None:
            await incoming.ring()
            pending.append(incoming)

        callee.on_invite = handler
        task = asyncio.ensure_future(caller.invite(uri(callee), offer()))
        await until(lambda: bool(pending))
        await until(lambda: caller.stats["calls_early"] == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: pending[0].cancelled.is_set())
        await until(lambda: caller.stats["calls_cancelled"] == 1)


class TestSection8_2_Rejections:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [(486, "busy"), (600, "busy"), (603, "rejected"), (404, "rejected"), (408, "unreachable")],
    )
    async def test_final_responses_map_to_outcomes(
        self, pair: tuple[UserAgent, UserAgent], status: int, outcome: str
    ) -> None:
        caller, callee = pair

        async def handler(incoming: IncomingCall) -> None:
            await incoming.reject(status)

        callee.on_invite = handler
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(caller.invite(uri(callee), offer()), TIMEOUT)
        assert (failed.value.outcome, failed.value.status) == (outcome, status)

    async def test_no_handler_is_480(self, pair: tuple[UserAgent, UserAgent]) -> None:
        caller, callee = pair
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(caller.invite(uri(callee), offer()), TIMEOUT)
        assert (failed.value.outcome, failed.value.status) == ("rejected", 480)

    async def test_nobody_there_is_unreachable_after_timer_b(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            port = silent.getsockname()[1]
            async with UserAgent("127.0.0.1", 0, timers=FAST) as caller:
                with pytest.raises(CallFailed) as failed:
                    await asyncio.wait_for(  # ring timeout first: nothing to CANCEL yet
                        caller.invite(f"sip:x@127.0.0.1:{port}", offer(), ring_timeout=0.5),
                        TIMEOUT,
                    )
                assert failed.value.outcome == "unreachable"
                assert caller.stats["retransmissions"] >= 5  # timer A: T1, 2·T1, ...


class TestSection12_2_2_UnknownDialog:
    async def test_bye_for_an_unknown_dialog_is_481(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        _, callee = pair
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            port = s.getsockname()[1]
            for method in ("BYE", "INVITE", "OPTIONS"):
                lines = [
                    f"{method} {uri(callee)} SIP/2.0",
                    f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-481-{method};rport",
                    "From: <sip:probe@127.0.0.1>;tag=a",
                    f"To: <{uri(callee)}>;tag=nosuchdialog",
                    "Call-ID: nosuch@127.0.0.1",
                    f"CSeq: 5 {method}",
                    f"Contact: <sip:probe@127.0.0.1:{port}>",
                    "Max-Forwards: 70",
                    "Content-Length: 0",
                ]
                s.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), callee.local_address)
                status = 0
                for _ in range(3):  # skip a 100 Trying
                    data, _ = await asyncio.wait_for(loop.sock_recvfrom(s, 65535), TIMEOUT)
                    response = parse(data)
                    assert isinstance(response, Response)
                    status = response.status
                    if status != 100:
                        break
                assert status == 481, method


class TestSection11_Options:
    async def test_options_out_of_dialog_and_in_dialog(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        caller, callee = pair
        assert await caller.options(uri(callee)) == 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            dead = f"sip:x@127.0.0.1:{silent.getsockname()[1]}"
            assert await caller.options(dead, timeout=0.3) is None


class TestSection14_ReInvite:
    async def test_hold_and_unhold_both_ways(self, pair: tuple[UserAgent, UserAgent]) -> None:
        caller, callee = pair
        answered: list[Call] = []
        auto_answer(callee, answered)
        call = await asyncio.wait_for(caller.invite(uri(callee), offer()), TIMEOUT)
        await until(lambda: bool(answered))
        theirs = answered[0]
        hold = with_direction(call.local_sdp, Direction.SENDONLY)
        got = await asyncio.wait_for(call.reinvite(hold), TIMEOUT)
        assert got.media_direction(got.media[0]) is Direction.RECVONLY  # the default mirror
        assert theirs.remote_sdp == hold
        unhold = with_direction(call.local_sdp, Direction.SENDRECV)
        got = await asyncio.wait_for(call.reinvite(unhold), TIMEOUT)
        assert got.media_direction(got.media[0]) is Direction.SENDRECV
        # the callee holds the caller: inactive answered inactive
        inactive = with_direction(theirs.local_sdp, Direction.INACTIVE)
        got = await asyncio.wait_for(theirs.reinvite(inactive), TIMEOUT)
        assert got.media_direction(got.media[0]) is Direction.INACTIVE
        # a handler answers instead of the mirror
        theirs.on_reinvite = lambda o: with_direction(theirs.local_sdp, Direction.INACTIVE)
        got = await asyncio.wait_for(call.reinvite(hold), TIMEOUT)
        assert got.media_direction(got.media[0]) is Direction.INACTIVE
        assert call.state is CallState.CONFIRMED and theirs.state is CallState.CONFIRMED
        await call.hangup()


class TestMediaTimeout:
    async def test_rtp_stops_and_the_call_is_ended(self, pair: tuple[UserAgent, UserAgent]) -> None:
        caller, callee = pair
        answered: list[Call] = []
        auto_answer(callee, answered)
        call = await asyncio.wait_for(caller.invite(uri(callee), offer()), TIMEOUT)
        await until(lambda: bool(answered))
        theirs = answered[0]
        for _ in range(10):  # media flows for 0.3 s, then stops
            theirs.media_seen()
            await asyncio.sleep(0.03)
        assert not theirs.ended.done()
        assert await asyncio.wait_for(theirs.ended, 2.0) == "media_timeout"
        assert await asyncio.wait_for(call.ended, 2.0) == "remote_bye"

    async def test_no_media_at_all_is_not_a_timeout(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        caller, callee = pair
        answered: list[Call] = []
        auto_answer(callee, answered)
        call = await asyncio.wait_for(caller.invite(uri(callee), offer()), TIMEOUT)
        await asyncio.sleep(0.8)  # a recvonly speaker never sends RTP
        assert call.state is CallState.CONFIRMED
        await call.hangup()


def lossy(ua: UserAgent, pattern: str) -> list[bytes]:
    """Drop the datagrams ``ua`` sends where ``pattern`` (cycled) has an ``x``."""
    send = ua.endpoint.send
    dropped: list[bytes] = []
    count = 0

    def wrapped(message: Any, addr: tuple[str, int]) -> None:
        nonlocal count
        drop = pattern[count % len(pattern)] == "x"
        count += 1
        if drop:
            dropped.append(message if isinstance(message, bytes) else message.serialize())
            return
        send(message, addr)

    ua.endpoint.send = wrapped  # type: ignore[method-assign]
    return dropped


class TestLossyTransport:
    async def test_calls_survive_dropped_datagrams_both_ways(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        caller, callee = pair
        lost_out = lossy(caller, ".x...")
        lost_in = lossy(callee, "..x")
        answered: list[Call] = []
        auto_answer(callee, answered)
        for _ in range(6):
            call = await asyncio.wait_for(caller.invite(uri(callee), offer()), TIMEOUT)
            await call.hangup()
            assert call.ended.result() == "local_bye"
        await until(lambda: len(answered) == 6)
        await until(lambda: all(c.ended.done() for c in answered))
        assert all(c.ended.result() == "remote_bye" for c in answered)
        assert lost_out and lost_in
        assert caller.stats["retransmissions"] > 0 and callee.stats["retransmissions"] > 0
        assert caller.stats["calls_terminated"] == 6 and caller.stats["calls_failed"] == 0


class RawPeer:
    """A plain UDP socket speaking SIP by hand, for what a well-behaved agent never does."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()

    def invite(self, target: UserAgent) -> bytes:
        body = offer(30040).serialize()
        lines = [
            f"INVITE {uri(target)} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-raw-1;rport",
            f"From: <sip:raw@127.0.0.1:{self.port}>;tag=raw1",
            f"To: <{uri(target)}>",
            "Call-ID: raw-1@127.0.0.1",
            "CSeq: 1 INVITE",
            f"Contact: <sip:raw@127.0.0.1:{self.port}>",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def receive(self, timeout: float = TIMEOUT) -> Request | Response:
        loop = asyncio.get_running_loop()
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 65535), timeout)
        return parse(data)


class TestSection13_3_1_4_TheUasRetransmitsIts2xx:
    async def test_no_ack_means_bye_and_a_retransmitted_invite_is_not_a_second_call(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        _, callee = pair
        answered: list[Call] = []
        auto_answer(callee, answered, ring=False)
        peer = RawPeer()
        try:
            datagram = peer.invite(callee)
            peer.sock.sendto(datagram, callee.local_address)
            oks = 0
            bye: Request | None = None
            for _ in range(40):  # 100, 200 and its retransmissions, then the BYE
                message = await peer.receive()
                if isinstance(message, Response) and message.status == 200:
                    oks += 1
                    if oks == 1:  # the INVITE again, as if our 200 were lost
                        peer.sock.sendto(datagram, callee.local_address)
                elif isinstance(message, Request) and message.method == "BYE":
                    bye = message
                    break
            assert bye is not None
            assert oks >= 5  # T1, 2·T1, 4·T1, ... until 64·T1
            assert len(answered) == 1  # the retransmitted INVITE got the same 200
            assert answered[0].ended.result() == "error"
            assert bye.call_id == "raw-1@127.0.0.1" and bye.to_tag == "raw1"
        finally:
            peer.close()

    async def test_in_dialog_options_cseq_order_and_bye_retransmission(
        self, pair: tuple[UserAgent, UserAgent]
    ) -> None:
        _, callee = pair
        answered: list[Call] = []
        auto_answer(callee, answered, ring=False)
        peer = RawPeer()
        try:
            peer.sock.sendto(peer.invite(callee), callee.local_address)
            ok: Response | None = None
            for _ in range(5):
                message = await peer.receive()
                if isinstance(message, Response) and message.status == 200:
                    ok = message
                    break
            assert ok is not None and ok.to_tag is not None
            to = ok.header("To")
            assert to is not None

            def request(method: str, cseq: int, branch: str) -> bytes:
                lines = [
                    f"{method} {uri(callee)} SIP/2.0",
                    f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-{branch};rport",
                    f"From: <sip:raw@127.0.0.1:{peer.port}>;tag=raw1",
                    f"To: {to}",
                    "Call-ID: raw-1@127.0.0.1",
                    f"CSeq: {cseq} {method}",
                    "Max-Forwards: 70",
                    "Content-Length: 0",
                ]
                return ("\r\n".join(lines) + "\r\n\r\n").encode()

            async def answer_to(data: bytes) -> Response:
                peer.sock.sendto(data, callee.local_address)
                for _ in range(10):  # skip our 2xx retransmissions
                    message = await peer.receive()
                    cseq = message.cseq
                    if isinstance(message, Response) and cseq and cseq.method != "INVITE":
                        return message
                raise AssertionError("no answer")

            peer.sock.sendto(request("ACK", 1, "ack1"), callee.local_address)
            options = await answer_to(request("OPTIONS", 2, "opt2"))
            assert options.status == 200
            assert options.header_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"]
            assert options.header("Accept") == "application/sdp"
            stale = await answer_to(request("OPTIONS", 1, "opt1"))
            assert stale.status == 500  # §12.2.2: lower than the remote sequence number
            bye = request("BYE", 3, "bye3")
            assert (await answer_to(bye)).status == 200
            assert (await answer_to(bye)).status == 200  # retransmission: not 481
            assert answered[0].ended.result() == "remote_bye"
            assert (await answer_to(request("BYE", 4, "bye4"))).status == 481  # the dialog is gone
        finally:
            peer.close()
