"""The ``UserAgent`` against sipp, both ways: sipp as the speaker (UAS scenarios answering, busy,
declining, ringing forever, and answering with 10% of its messages lost) and sipp as the caller
(OPTIONS, an unknown number, CANCEL while ringing, a retransmitted BYE, a re-INVITE to hold).

Our timers are shortened (T1 = 50 ms) so that loss is recovered quickly; sipp keeps its own.
"""

from __future__ import annotations

import asyncio
import csv
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telephony.errors import CallFailed
from telephony.sdp import Direction, LocalMedia, SdpSession, SessionDescription, build_offer
from telephony.sip.agent import Call, Credentials, IncomingCall, UserAgent
from telephony.sip.dialog import CallState
from telephony.sip.message import Request, Response
from telephony.sip.transaction import TimerConfig
from tests.telephony.test_sip_endpoint import SIPP_DIR, run_sipp, sipp_or_skip

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, d=0.5, trying_delay=0.2)
LOSSY = TimerConfig(t1=0.5, t2=4.0, t4=1.0, d=1.0, trying_delay=0.2)
SIPP_TIMEOUT = 30.0


def offer(port: int = 30010, direction: Direction = Direction.SENDRECV) -> SessionDescription:
    session = SdpSession(session_id=11, version=1, address="127.0.0.1")
    return build_offer(session, LocalMedia("127.0.0.1", port, direction))[1]


def free_udp_port(pair: bool = False) -> int:
    """A free UDP port on 127.0.0.1 (with ``pair``: an even one whose +2 is free too, for sipp's
    audio and video echo sockets)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if not pair:
                return port
            if port % 2 or port > 65000:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind(("127.0.0.1", port + 2))
                except OSError:
                    continue
                return port
    raise AssertionError("no free UDP port")


def stats(cwd: Path) -> dict[str, str]:
    with (cwd / "stat.csv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return rows[-1]


def errors(cwd: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in cwd.glob("*_errors.log"))


class SippUas:
    """sipp running a UAS scenario in the background on a free port."""

    def __init__(self, scenario: str, cwd: Path, *extra: str, calls: int = 1) -> None:
        self.scenario = scenario
        self.cwd = cwd
        self.extra = extra
        self.calls = calls
        self.port = free_udp_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def uri(self) -> str:
        return f"sip:speaker@127.0.0.1:{self.port}"

    async def __aenter__(self) -> SippUas:
        self.proc = await asyncio.create_subprocess_exec(
            sipp_or_skip(),
            "-sf", str(SIPP_DIR / self.scenario),
            "-i", "127.0.0.1", "-p", str(self.port),
            "-mp", str(free_udp_port(pair=True)), "-cp", str(free_udp_port()),
            "-m", str(self.calls),
            "-timeout", "25", "-timeout_error",
            "-trace_err", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_msg", "-message_file", "msg.log",
            *self.extra,
            "-nostdin",
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(0.2)  # sipp binds its socket; a lost INVITE is retransmitted anyway
        return self

    async def finish(self) -> int:
        assert self.proc is not None
        _, err = await asyncio.wait_for(self.proc.communicate(), SIPP_TIMEOUT)
        rc = self.proc.returncode
        assert rc in (0, 1), f"sipp exited {rc}: {err.decode(errors='replace')}"
        return rc

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def ua() -> AsyncIterator[UserAgent]:
    async with UserAgent("127.0.0.1", 0, user="hub", timers=FAST) as agent:
        yield agent


class TestSippAsTheSpeaker:
    async def test_auto_answer_then_our_bye(self, ua: UserAgent, tmp_path: Path) -> None:
        async with SippUas("uas_answer.xml", tmp_path) as sipp:
            call = await asyncio.wait_for(
                ua.invite(
                    sipp.uri, offer(), headers=[("Call-Info", f"<{sipp.uri}>;answer-after=0")]
                ),
                10,
            )
            assert call.state is CallState.CONFIRMED
            assert call.remote_sdp.media[0].codecs()[0].encoding == "PCMU"
            await call.hangup()
            assert call.ended.result() == "local_bye"
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)
        assert stats(tmp_path)["SuccessfulCall(C)"] == "1"

    @pytest.mark.parametrize(
        ("scenario", "status", "outcome"),
        [("uas_486.xml", 486, "busy"), ("uas_603.xml", 603, "rejected")],
    )
    async def test_busy_and_declined(
        self, ua: UserAgent, tmp_path: Path, scenario: str, status: int, outcome: str
    ) -> None:
        async with SippUas(scenario, tmp_path) as sipp:
            with pytest.raises(CallFailed) as failed:
                await asyncio.wait_for(ua.invite(sipp.uri, offer()), 10)
            assert (failed.value.outcome, failed.value.status) == (outcome, status)
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)  # sipp got the ACK for its final response

    async def test_ringing_forever_is_cancelled(self, ua: UserAgent, tmp_path: Path) -> None:
        async with SippUas("uas_ring.xml", tmp_path) as sipp:
            with pytest.raises(CallFailed) as failed:
                await asyncio.wait_for(ua.invite(sipp.uri, offer(), ring_timeout=0.5), 10)
            assert (failed.value.outcome, failed.value.status) == ("no_answer", 487)
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)  # sipp saw our CANCEL and the ACK for its 487

    async def test_digest_challenge_answered_once(self, ua: UserAgent, tmp_path: Path) -> None:
        async with SippUas("uas_auth.xml", tmp_path) as sipp:
            credentials = Credentials("speaker", "s3cret")
            call = await asyncio.wait_for(ua.invite(sipp.uri, offer(), credentials=credentials), 10)
            await call.hangup()
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)  # sipp's verifyauth accepted our Authorization
        log = (tmp_path / "msg.log").read_text(errors="replace")
        assert "s3cret" not in log  # the password never goes on the wire

    @pytest.mark.parametrize(
        ("credentials", "status"), [(None, 401), (Credentials("speaker", "wrong"), 403)]
    )
    async def test_without_or_with_wrong_credentials_auth_fails(
        self, ua: UserAgent, tmp_path: Path, credentials: Credentials | None, status: int
    ) -> None:
        async with SippUas("uas_auth.xml", tmp_path) as sipp:
            with pytest.raises(CallFailed) as failed:
                await asyncio.wait_for(ua.invite(sipp.uri, offer(), credentials=credentials), 10)
            assert (failed.value.outcome, failed.value.status) == ("auth_failed", status)

    async def test_twenty_calls_with_ten_percent_loss(self, tmp_path: Path) -> None:
        """sipp drops 10% of what it sends and receives. Our T1 is 1 s here: sipp's UAS aborts a
        call when a retransmitted INVITE meets a lost 200 that it has not yet retransmitted
        (500 ms), so our INVITE must not be retransmitted before sipp's 200 is."""
        outcomes: list[str] = []
        async with (
            UserAgent("127.0.0.1", 0, user="hub", timers=LOSSY) as ua,
            SippUas("uas_answer.xml", tmp_path, "-lost", "10", calls=20) as sipp,
        ):

            async def one() -> None:
                try:
                    call = await ua.invite(sipp.uri, offer(), ring_timeout=10)
                except CallFailed as e:
                    outcomes.append(e.outcome)
                    return
                await asyncio.sleep(1.0)  # "playing": sipp's 200 retransmission repairs a lost ACK
                await call.hangup()
                outcomes.append(call.ended.result())

            await asyncio.wait_for(asyncio.gather(*(one() for _ in range(20))), 40)
            rc = await sipp.finish()
        assert outcomes == ["local_bye"] * 20
        assert rc == 0, errors(tmp_path)
        row = stats(tmp_path)
        assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("20", "0")
        assert ua.stats["retransmissions"] > 0  # the loss was real and recovered
        assert ua.stats["calls_terminated"] == 20 and ua.stats["calls_failed"] == 0


@pytest.fixture
async def callee(ua: UserAgent) -> AsyncIterator[tuple[UserAgent, list[Call], list[IncomingCall]]]:
    """Our agent answering "speaker" (after a 180), ringing forever for "ringer", 404 otherwise."""
    answered: list[Call] = []
    ringing: list[IncomingCall] = []

    async def handler(incoming: IncomingCall) -> None:
        if incoming.user == "ringer":
            await incoming.ring()
            ringing.append(incoming)
        elif incoming.user == "speaker":
            await incoming.ring()
            answered.append(await incoming.answer(offer(30020)))
        else:
            await incoming.reject(404)

    ua.on_invite = handler
    yield ua, answered, ringing


async def sipp_uac(scenario: str, ua: UserAgent, cwd: Path, service: str, calls: int = 1) -> None:
    host, port = ua.local_address
    rc = await run_sipp(
        "-sf", str(SIPP_DIR / scenario), "-s", service,
        "-m", str(calls), "-l", "5", "-r", "50",
        f"{host}:{port}", "-i", "127.0.0.1", "-p", "0",
        "-mp", str(free_udp_port(pair=True)), "-cp", str(free_udp_port()),
        "-timeout", "20", "-timeout_error",
        "-trace_err", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
        "-trace_msg", "-message_file", "msg.log",
        cwd=cwd,
    )  # fmt: skip
    assert rc == 0, errors(cwd)
    row = stats(cwd)
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == (str(calls), "0")


class TestSippAsTheCaller:
    async def test_options_answered(self, ua: UserAgent, tmp_path: Path) -> None:
        await sipp_uac("options.xml", ua, tmp_path, "hub", calls=5)
        assert ua.stats["requests"] == 5

    async def test_unknown_number_is_rejected(
        self, callee: tuple[UserAgent, list[Call], list[IncomingCall]], tmp_path: Path
    ) -> None:
        ua, answered, _ = callee
        await sipp_uac("uac_unknown.xml", ua, tmp_path, "nobody")
        assert not answered and ua.stats["calls_failed"] == 1

    async def test_cancel_while_ringing_is_487(
        self, callee: tuple[UserAgent, list[Call], list[IncomingCall]], tmp_path: Path
    ) -> None:
        ua, _, ringing = callee
        await sipp_uac("uac_cancel.xml", ua, tmp_path, "ringer")
        assert ringing[0].cancelled.is_set()
        assert ua.stats["calls_cancelled"] == 1

    async def test_bye_retransmission_absorbed(
        self, callee: tuple[UserAgent, list[Call], list[IncomingCall]], tmp_path: Path
    ) -> None:
        ua, answered, _ = callee
        send = ua.endpoint.send
        dropped: list[Response] = []

        def drop_first_bye_200(message: Request | Response | bytes, addr: tuple[str, int]) -> None:
            cseq = message.cseq if isinstance(message, Response) else None
            is_bye = cseq is not None and cseq.method == "BYE"
            if isinstance(message, Response) and is_bye and not dropped:
                dropped.append(message)
                return
            send(message, addr)

        ua.endpoint.send = drop_first_bye_200  # type: ignore[method-assign]
        await sipp_uac("uac_bye_retrans.xml", ua, tmp_path, "speaker")
        assert dropped and dropped[0].status == 200
        assert answered[0].ended.result() == "remote_bye"
        assert ua.stats["absorbed"] >= 1  # sipp's retransmitted BYE met its server transaction

    async def test_reinvite_hold_answered_recvonly(
        self, callee: tuple[UserAgent, list[Call], list[IncomingCall]], tmp_path: Path
    ) -> None:
        ua, answered, _ = callee
        await sipp_uac("uac_reinvite_hold.xml", ua, tmp_path, "speaker")
        call = answered[0]
        assert call.remote_sdp.media_direction(call.remote_sdp.media[0]) is Direction.SENDONLY
        assert call.local_sdp.media_direction(call.local_sdp.media[0]) is Direction.RECVONLY
        assert call.ended.result() == "remote_bye"
