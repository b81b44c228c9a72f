"""REGISTER with refresh (RFC 3261 §10.2): the pure decisions (``RegisterMachine``, ``read_answer``)
and the asyncio ``Registration`` against sipp as the registrar — challenging then granting 2 s and
rotating its nonce, answering 423 with Min-Expires, and not answering at all for two attempts —
and the hub itself registering with sipp as its PBX when ``CITYHUB_SIP_REGISTRAR`` is set.

Our timers are shortened (T1 = 50 ms; 20 ms where timer F must fire quickly), and so are the refresh
and backoff policies, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.settings import Secret
from hub.web.app import build_state, close_state
from telephony.sip.agent import Credentials, UserAgent
from telephony.sip.headers import Headers
from telephony.sip.message import Response
from telephony.sip.register import (
    MAX_CHALLENGES,
    TRANSITIONS,
    BackoffPolicy,
    RefreshPolicy,
    RegEvent,
    RegisterAnswer,
    RegisterMachine,
    RegState,
    Step,
    read_answer,
)
from telephony.sip.registration import Registration
from telephony.sip.transaction import TimerConfig
from telephony.warnings.service import VoiceService
from tests.conftest import test_settings as hub_settings
from tests.telephony.test_sip_sipp import FAST, SippUas, errors, stats

CONTACT = "sip:hub@127.0.0.1:5070"
PASSWORD = "r3gister"  # the one registrar_auth.xml's verifyauth checks
QUICK_REFRESH = RefreshPolicy(margin=0.5, floor=0.5)  # 2 s granted → refresh after 1 s
QUICK_BACKOFF = BackoffPolicy(base_time=0.1, max_time=0.25)
SILENT = TimerConfig(t1=0.02, t2=0.08, t4=0.1, d=0.1, trying_delay=0.2)  # timer F = 1.28 s


def response(status: int, *headers: tuple[str, str]) -> Response:
    return Response(status, "", Headers.of(headers))


def machine(expires: int = 600, draw: float = 0.5) -> RegisterMachine:
    return RegisterMachine(
        expires, random=lambda: draw, refresh=RefreshPolicy(), backoff=BackoffPolicy()
    )


# ---- pure ----------------------------------------------------------------------------------------


class TestRfc3261Section10_2_4_ReadAnswer:
    def test_our_contact_among_the_aors_bindings(self) -> None:
        r = response(
            200,
            ("Contact", "<sip:deskphone@127.0.0.1:5999>;expires=3600"),
            ("Contact", "<sip:hub@127.0.0.1:5070;transport=udp>;expires=120, <sip:x@127.0.0.1>"),
            ("Expires", "900"),
        )
        assert read_answer(r, CONTACT, requested=600) == RegisterAnswer(200, granted=120)

    def test_host_compared_without_case_and_default_port(self) -> None:
        r = response(200, ("Contact", "<sip:hub@LOCALHOST>;expires=30"))
        answer = read_answer(r, "sip:hub@localhost:5060", requested=600)
        assert answer.granted == 30

    def test_expires_header_then_what_we_asked(self) -> None:
        other = ("Contact", "<sip:deskphone@127.0.0.1:5999>;expires=3600")
        assert (
            read_answer(response(200, other, ("Expires", "90")), CONTACT, requested=600).granted
            == 90
        )
        assert read_answer(response(200, other), CONTACT, requested=600).granted == 600
        ours_bare = ("Contact", f"<{CONTACT}>")
        assert read_answer(response(200, ours_bare), CONTACT, requested=45).granted == 45

    def test_malformed_values_are_ignored(self) -> None:
        r = response(200, ("Contact", "garbage"), ("Contact", f"<{CONTACT}>;expires=x"))
        assert read_answer(r, CONTACT, requested=60).granted == 60

    def test_min_expires_retry_after_and_no_answer(self) -> None:
        assert read_answer(response(423, ("Min-Expires", "1800")), CONTACT, requested=60) == (
            RegisterAnswer(423, min_expires=1800)
        )
        r = response(503, ("Retry-After", "120 (maintenance);duration=60"))
        assert read_answer(r, CONTACT, requested=60) == RegisterAnswer(503, retry_after=120)
        assert read_answer(None, CONTACT, requested=60) == RegisterAnswer(None)


class TestRegisterMachine:
    def test_challenge_then_grant_then_refresh(self) -> None:
        m = machine()
        m.start(0.0)
        assert m.next_at == 0.0 and m.state is RegState.UNREGISTERED
        assert m.sending(0.0) == 600
        assert m.state is RegState.REGISTERING and m.next_at is None
        assert m.received(RegisterAnswer(401), 0.1) is Step.AUTHENTICATE
        assert not m.retried
        assert m.sending(0.1) == 600
        assert m.received(RegisterAnswer(200, granted=300), 0.2) is Step.WAIT
        assert m.state is RegState.REGISTERED
        assert (m.expires_at, m.next_at, m.granted) == (300.2, 150.2, 300)
        m.sending(150.2)  # the refresh: the binding still holds while it is out
        assert m.state is RegState.REGISTERED
        # a new challenge on the refresh is answered (the attempt's count restarted)
        assert m.received(RegisterAnswer(407), 150.3) is Step.AUTHENTICATE

    def test_challenges_are_answered_at_most_twice_per_attempt(self) -> None:
        m = machine()
        m.start(0.0)
        for n in range(MAX_CHALLENGES):
            m.sending(0.0)
            assert m.received(RegisterAnswer(401), 0.0) is Step.AUTHENTICATE
            assert m.retried is (n > 0)
        m.sending(0.0)
        assert m.received(RegisterAnswer(401), 1.0) is Step.WAIT
        assert m.state is RegState.FAILED and m.failures == 1
        assert m.next_at == 1.0 + 45.0  # W = 60, draw 0.5
        m.sending(m.next_at)  # the retry is a new attempt: challenges count again from zero
        assert m.received(RegisterAnswer(401), 50.0) is Step.AUTHENTICATE

    def test_interval_too_brief_raises_the_ask(self) -> None:
        m = machine(expires=60)
        m.start(0.0)
        m.sending(0.0)
        assert m.received(RegisterAnswer(423, min_expires=1800), 0.0) is Step.SEND
        assert m.sending(0.0) == 1800
        assert m.received(RegisterAnswer(200, granted=1800), 0.1) is Step.WAIT
        assert m.expires == 1800  # and kept for the refreshes

    @pytest.mark.parametrize("min_expires", [None, 60, 30])
    def test_a_useless_423_is_a_failure(self, min_expires: int | None) -> None:
        m = machine(expires=60)
        m.start(0.0)
        m.sending(0.0)
        assert m.received(RegisterAnswer(423, min_expires=min_expires), 0.0) is Step.WAIT
        assert m.state is RegState.FAILED and m.expires == 60

    def test_a_registrar_raising_min_expires_forever_is_a_failure(self) -> None:
        m = machine(expires=60)
        m.start(0.0)
        steps = []
        for n in range(4):
            m.sending(0.0)
            steps.append(m.received(RegisterAnswer(423, min_expires=100 * (n + 1)), 0.0))
        assert steps[:3] == [Step.SEND, Step.SEND, Step.WAIT]
        assert m.state is RegState.REGISTERING  # the fourth send was a new attempt

    def test_failures_back_off_never_give_up_and_success_resets(self) -> None:
        m = machine()
        m.start(0.0)
        now, delays = 0.0, []
        for _ in range(10):
            m.sending(now)
            assert m.received(RegisterAnswer(None), now + 32) is Step.WAIT
            assert m.next_at is not None
            delays.append(m.next_at - (now + 32))
            now = m.next_at
        assert delays[:6] == [45.0, 90.0, 180.0, 360.0, 720.0, 1350.0]
        assert delays[6:] == [1350.0] * 4  # capped by max_time: bounded, and still trying
        assert m.state is RegState.FAILED and m.failures == 10
        m.sending(now)
        m.received(RegisterAnswer(200, granted=600), now)
        assert m.failures == 0 and m.state is RegState.REGISTERED

    def test_retry_after_is_honoured(self) -> None:
        m = machine()
        m.start(0.0)
        m.sending(0.0)
        m.received(RegisterAnswer(503, retry_after=600), 0.0)
        assert m.next_at == 600.0

    def test_a_grant_of_zero_is_a_failure(self) -> None:
        m = machine()
        m.start(0.0)
        m.sending(0.0)
        assert m.received(RegisterAnswer(200, granted=0), 0.0) is Step.WAIT
        assert m.state is RegState.FAILED

    def test_a_failed_refresh_keeps_the_binding_until_it_lapses(self) -> None:
        m = machine()
        m.start(0.0)
        m.sending(0.0)
        m.received(RegisterAnswer(200, granted=100), 0.0)
        m.sending(50.0)
        m.received(RegisterAnswer(500), 51.0)
        assert m.state is RegState.FAILED and m.expires_at == 100.0
        m.sending(96.0)
        m.received(RegisterAnswer(None), 128.0)
        assert m.expires_at is None

    def test_stop_with_a_binding_unregisters(self) -> None:
        m = machine()
        m.start(0.0)
        m.sending(0.0)
        m.received(RegisterAnswer(200, granted=600), 0.0)
        assert m.stop(10.0) is True and m.next_at is None
        assert m.sending(10.0) == 0
        assert m.received(RegisterAnswer(401), 10.0) is Step.AUTHENTICATE
        assert m.sending(10.0) == 0
        assert m.received(RegisterAnswer(200, granted=0), 10.1) is Step.DONE
        assert (m.state, m.expires_at, m.next_at) == (RegState.UNREGISTERED, None, None)

    def test_stop_with_no_answer_to_the_unregistration_is_done_too(self) -> None:
        m = machine()
        m.start(0.0)
        m.sending(0.0)
        assert m.stop(0.5) is True  # a REGISTER was out: its 2xx may have been missed
        m.sending(0.5)
        assert m.failed(5.0) is Step.DONE
        assert m.state is RegState.UNREGISTERED

    def test_stop_without_a_binding_sends_nothing(self) -> None:
        m = machine()
        m.start(0.0)
        m.sending(0.0)
        m.received(RegisterAnswer(403), 0.0)
        assert m.stop(1.0) is False
        assert m.state is RegState.UNREGISTERED and m.next_at is None

    def test_an_answer_with_nothing_sent_is_illegal_and_changes_nothing(self) -> None:
        m = machine()
        with pytest.raises(ValueError):
            m.received(RegisterAnswer(200, granted=60), 0.0)
        assert m.state is RegState.UNREGISTERED and m.expires_at is None
        assert (RegState.UNREGISTERED, RegEvent.GRANTED) not in TRANSITIONS
        with pytest.raises(ValueError):
            RegisterMachine(0, random=lambda: 0.0)


# ---- against sipp --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    call_id: str
    cseq: int
    text: str


def registers_in(cwd: Path) -> list[Sent]:
    """The REGISTERs sipp received (its -trace_msg log), retransmissions included."""
    log = (cwd / "msg.log").read_text(errors="replace")
    out = []
    for block in re.split(r"\n(?=-{10,})", log):
        if "message received" not in block or "\nREGISTER " not in block:
            continue
        call_id = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
        cseq = re.search(r"^CSeq:\s*(\d+) REGISTER", block, re.M | re.I)
        assert call_id is not None and cseq is not None, block
        out.append(Sent(call_id.group(1), int(cseq.group(1)), block))
    return out


async def until(check: Callable[[], bool], seconds: float) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def ua() -> AsyncIterator[UserAgent]:
    async with UserAgent("127.0.0.1", 0, user="hub", timers=FAST) as agent:
        yield agent


class TestSippAsTheRegistrar:
    async def test_challenged_refreshed_before_expiry_and_removed(
        self, ua: UserAgent, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        grants: list[tuple[float, float]] = []  # (loop time, machine expires_at) per new grant

        def changed(reg: Registration) -> None:
            at = reg.machine.expires_at
            if (
                reg.state is RegState.REGISTERED
                and at is not None
                and at not in dict(grants).values()
            ):
                grants.append((ua.now(), at))

        async with SippUas("registrar_auth.xml", tmp_path) as sipp:
            registrar = f"sip:127.0.0.1:{sipp.port}"
            reg = Registration(
                ua,
                registrar,
                "hub",
                credentials=Credentials("hub", PASSWORD),
                expires=600,
                refresh=QUICK_REFRESH,
                changed=changed,
            )
            reg.start()
            await until(lambda: len(grants) >= 3, 10.0)
            assert reg.state is RegState.REGISTERED and reg.machine.granted == 2
            assert reg.expires_at is not None and 0 < reg.expires_at - time.time() <= 2.0
            assert reg.summary().startswith(f"registered to {registrar} until ")
            await reg.stop()
            assert (reg.state, reg.expires_at) == (RegState.UNREGISTERED, None)
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)
        assert stats(tmp_path)["SuccessfulCall(C)"] == "1"
        for (_, lapse), (refreshed, _) in itertools.pairwise(grants):
            assert refreshed < lapse  # each refresh was granted before the last binding lapsed
        sent = registers_in(tmp_path)
        assert [s.cseq for s in sent] == [1, 2, 3, 4, 5, 6]
        assert len({s.call_id for s in sent}) == 1
        first = sent[0].text
        assert re.search(r"^To: <sip:hub@127\.0\.0\.1>\s*$", first, re.M)
        assert re.search(r"^From: <sip:hub@127\.0\.0\.1>;tag=", first, re.M)
        contact = f"<{ua.contact}>"
        assert f"Contact: {contact};expires=600" in first and "Expires: 600" in first
        assert "Authorization" not in first
        assert "nc=00000002" in sent[2].text  # the refresh reused the nonce (preemptive)
        assert f"Contact: {contact};expires=0" in sent[5].text and "Expires: 0" in sent[5].text
        assert PASSWORD not in caplog.text and PASSWORD not in repr(reg)

    async def test_refused_credentials_are_not_sent_again(
        self, ua: UserAgent, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        async with SippUas("registrar_refuse.xml", tmp_path) as sipp:
            reg = Registration(
                ua,
                f"sip:127.0.0.1:{sipp.port}",
                "hub",
                credentials=Credentials("hub", "wrong-password"),
                backoff=BackoffPolicy(base_time=30.0),
            )
            reg.start()
            await until(lambda: reg.state is RegState.FAILED, 5.0)
            assert (reg.last_status, reg.failures, reg.expires_at) == (401, 1, None)
            rc = await sipp.finish()
            await reg.stop()  # no binding: nothing sent
        assert rc == 0, errors(tmp_path)
        assert [s.cseq for s in registers_in(tmp_path)] == [1, 2]
        assert "credentials refused" in caplog.text and "wrong-password" not in caplog.text
        assert reg.state is RegState.UNREGISTERED

    async def test_interval_too_brief_then_the_minimum(self, ua: UserAgent, tmp_path: Path) -> None:
        async with SippUas("registrar_423.xml", tmp_path) as sipp:
            async with Registration(ua, f"sip:127.0.0.1:{sipp.port}", "hub", expires=30) as reg:
                await until(lambda: reg.state is RegState.REGISTERED, 5.0)
                assert reg.machine.granted == 120 and reg.last_status == 200
                assert reg.expires_at is not None
                assert 118 < reg.expires_at - time.time() <= 120
            assert reg.state is RegState.UNREGISTERED
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)
        assert [s.cseq for s in registers_in(tmp_path)] == [1, 2, 3]

    async def test_no_answer_fails_then_retries_with_backoff(self, tmp_path: Path) -> None:
        seen: list[tuple[float, RegState, int]] = []
        async with (
            UserAgent("127.0.0.1", 0, user="hub", timers=SILENT) as agent,
            SippUas("registrar_silent.xml", tmp_path) as sipp,
        ):
            reg = Registration(
                agent,
                f"sip:127.0.0.1:{sipp.port}",
                "hub",
                expires=60,
                backoff=QUICK_BACKOFF,
                random=lambda: 0.5,
                changed=lambda r: seen.append((agent.now(), r.state, r.failures)),
            )
            assert reg.summary() == f"registration to {reg.registrar}: unregistered"
            reg.start()
            await until(lambda: any(s is RegState.FAILED for _, s, _ in seen), 4.0)
            assert reg.summary().endswith("failed (no answer, 1x), retrying")
            await until(lambda: reg.state is RegState.REGISTERED, 6.0)
            await reg.stop()
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)
        states = [s for _, s, _ in seen]
        assert states == [
            RegState.REGISTERING,
            RegState.FAILED,
            RegState.REGISTERING,
            RegState.FAILED,
            RegState.REGISTERING,
            RegState.REGISTERED,
            RegState.UNREGISTERED,
        ]
        times = [t for t, _, _ in seen]
        assert times[1] - times[0] >= 64 * SILENT.t1 - 0.05  # timer F ended the first attempt
        assert times[2] - times[1] >= 0.15 - 0.01  # W = 0.2, draw 0.5
        assert times[4] - times[3] >= 0.1875 - 0.01  # W = min(0.25, 0.4)
        assert [f for _, s, f in seen if s is RegState.FAILED] == [1, 2]
        cseqs = sorted({s.cseq for s in registers_in(tmp_path)})
        assert cseqs == [1, 2, 3, 4]  # every attempt a new CSeq, the same Call-ID
        assert len({s.call_id for s in registers_in(tmp_path)}) == 1


class TestTheHubRegisters:
    """``CITYHUB_SIP_REGISTRAR`` set: the voice service registers when the hub starts (answering
    the PBX's challenge with ``CITYHUB_SIP_USERNAME`` / ``_PASSWORD``), says so in its health check
    and removes the binding when the hub stops."""

    async def test_registered_while_running_removed_on_shutdown(
        self, fresh_dsn: str, shared_data_dir: Path, tmp_path: Path
    ) -> None:
        async with SippUas("registrar_hub.xml", tmp_path) as sipp:
            registrar = f"sip:127.0.0.1:{sipp.port}"
            settings = hub_settings(
                shared_data_dir,
                fresh_dsn,
                sip_registrar=registrar,
                sip_username="hub",
                sip_password=Secret(PASSWORD),
            )
            state = await build_state(settings)
            try:
                service = state.services["voice"]
                assert isinstance(service, VoiceService)
                reg = service.registration
                assert reg is not None
                await until(lambda: reg.state is RegState.REGISTERED, 10.0)
                assert f"registered to {registrar} until " in service.health_check()
            finally:
                await close_state(state)
            assert reg.state is RegState.UNREGISTERED
            rc = await sipp.finish()
        assert rc == 0, errors(tmp_path)
        sent = registers_in(tmp_path)
        assert [s.cseq for s in sent] == [1, 2, 3]
        assert re.search(r"^To: <sip:cityhub@127\.0\.0\.1>\s*$", sent[0].text, re.M)
