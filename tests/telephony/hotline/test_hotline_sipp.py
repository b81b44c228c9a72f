"""The 12319 hotline against sipp as the citizens' phones, on loopback.

Theory of operation: a hub (``build_state``, the telephony role with its hotline service, loopback
allowed as a trunk) runs in the test's event loop; sipp runs as a subprocess (``-timeout`` bounds
every run) with a scenario from ``sipp/`` aimed at the hub's SIP socket; agents sign in through the
API and answer from an aiortc peer standing in for their browser (``AgentBrowser``). Each test
checks what a user would: sipp's own verdict (its statistics: successful and failed calls), the
call records and callbacks through the API, the queue and agents boards, and that nothing is left
running (no caller leg, no RTP port held).

- Scenarios: a caller who gives up while queued (BYE: abandoned); CANCEL right after the INVITE
  (the hub answers at once, so either the 487 or the 200 wins; neither leaves a call); the
  callback key (RFC 4733 from sipp's pcap); G.729 only (488); a call answered by an agent, the
  tone each way, hung up by the agent (the hub's BYE, sipp's 200); hold and unhold; a ring
  timeout (the call keeps its place, the agent is made not ready "未接听", another agent answers);
  a blind transfer to a second agent.
- Audio: sipp plays a 440 Hz A-law tone (``rtp_stream`` of a WAV made here). sipp cannot keep
  what it hears, so the agent→caller direction is checked at the hub: the recording's right
  channel holds the agent's 1000 Hz and the caller leg's sent-packet count grows.
- Load: ``CITYHUB_LOAD_CALLS`` calls (60 by default, 200 for the issue's full run) at 10 calls/s,
  at most 50 at once, each waiting 3–6 s with hold music after the welcome, then hanging up, while
  three scripted agents answer some for about a second each; then the same with ``sipp -lost 10`` (SIP retransmissions repair the loss). Every
  call succeeds at sipp, every record has ended and none failed, no leg or port is left.
- Malformed SIP mid-call: garbage, a truncated INVITE, a BYE with a bad CSeq and a huge header
  sent from a raw socket while a call waits; the hub answers 400 or drops them, logs no error, the
  call is then answered normally and ``/healthz`` stays ok.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import socket
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCSessionDescription

from hub.state import HubState
from storage.db import connect
from telephony.g711 import G711Law
from telephony.hotline.bridge import AgentLeg
from telephony.hotline.service import HotlineService
from tests.conftest import Api
from tests.telephony.hotline.support import channel, hotline, until
from tests.telephony.hotline.test_bridge import AgentBrowser
from tests.telephony.test_sip_endpoint import sipp_or_skip
from tests.telephony.test_sip_sipp import free_udp_port
from tests.telephony.warnings.test_talk import dominant

pytestmark = pytest.mark.timeout(180)

SCENARIOS = Path(__file__).parent / "sipp"
CALLER = "13800002222"
#: Calls of each load run: 60 keeps CI's run short (about 40 s each here); the issue's full count
#: is ``CITYHUB_LOAD_CALLS=200`` (measured: 85 s a run on 2 cores, zero failed, clean or lossy).
LOAD_CALLS = int(os.environ.get("CITYHUB_LOAD_CALLS", "60"))


@pytest.fixture
def hotline_options() -> dict[str, Any]:
    return {"hotline_wrapup": 0.5, "hotline_ring_timeout": 3.0, "hotline_announce_every": 5.0}


def tone_wav(path: Path, freq: float = 440.0, seconds: float = 2.0) -> Path:
    """An A-law WAV (format 6) of a sine, for sipp's ``rtp_stream``."""
    t = np.arange(int(8000 * seconds)) / 8000
    alaw = G711Law.ALAW.encode((np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16))
    fmt = (6).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    fmt += (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"data" + len(alaw).to_bytes(4, "little") + alaw
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    return path


class Sipp:
    """sipp calling the hub with one of ``sipp/``'s scenarios, in the background."""

    def __init__(
        self, scenario: str, target: tuple[str, int], cwd: Path, *extra: str, calls: int = 1,
        caller: str = CALLER, timeout: float = 60.0,
    ) -> None:  # fmt: skip
        self.args = [
            "-sf", str(SCENARIOS / scenario), f"{target[0]}:{target[1]}", "-s", "12319",
            "-key", "caller", caller,
            "-i", "127.0.0.1", "-p", str(free_udp_port()),
            "-mp", str(free_udp_port(pair=True)), "-cp", str(free_udp_port()),
            "-m", str(calls), "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-trace_err", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_msg", "-message_file", "msg.log", "-max_recv_loops", "10000",
            *extra, "-nostdin",
        ]  # fmt: skip
        self.cwd = cwd
        self.timeout = timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = b""

    async def start(self) -> Sipp:
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            sipp_or_skip(), *self.args, cwd=self.cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return self

    async def finish(self) -> dict[str, str]:
        """Wait for sipp to end; its last statistics row (asserting it ran with all calls good)."""
        assert self.proc is not None
        try:
            _, self.stderr = await asyncio.wait_for(self.proc.communicate(), self.timeout + 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise
        rc = self.proc.returncode
        row = self.stats()
        assert rc == 0, f"sipp exited {rc}: {self.stderr.decode(errors='replace')}\n{self.errors()}"
        return row

    def stats(self) -> dict[str, str]:
        with (self.cwd / "stat.csv").open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
        return rows[-1]

    def errors(self) -> str:
        return "".join(p.read_text(errors="replace")[-4000:] for p in self.cwd.glob("*_errors.log"))

    def messages(self) -> str:
        return (self.cwd / "msg.log").read_text(errors="replace")

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def sipps() -> AsyncIterator[list[Sipp]]:
    runs: list[Sipp] = []
    yield runs
    for run in runs:
        await run.close()


@pytest.fixture
async def browsers() -> AsyncIterator[list[AgentBrowser]]:
    made: list[AgentBrowser] = []
    yield made
    for b in made:
        await b.close()


async def call(sipps: list[Sipp], hub: HubState, scenario: str, cwd: Path, *extra: str,
               **kw: Any) -> Sipp:  # fmt: skip
    run = Sipp(scenario, hotline(hub).stack.agent.local_address, cwd, *extra, **kw)
    sipps.append(run)
    return await run.start()


async def sign_in(agent: Api, *, ready: bool = True) -> str:
    r = await agent.post("/api/hotline/me/state", json={"state": "signed_in"})
    assert r.status_code == 200, r.text
    if ready:
        r = await agent.post("/api/hotline/me/state", json={"state": "ready"})
        assert r.status_code == 200, r.text
    return str(agent.user["id"])


def state_of(hub: HubState, agent: str) -> str | None:
    state = channel(hub, "agents").get(agent, {}).get("state")
    return None if state is None else str(state)


async def answer(agent: Api, call_id: str, browser: AgentBrowser) -> None:
    await browser.pc.setLocalDescription(await browser.pc.createOffer())
    r = await agent.post(f"/api/hotline/live/{call_id}/answer",
                         json={"sdp": browser.pc.localDescription.sdp})  # fmt: skip
    assert r.status_code == 200, r.text
    await browser.pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))


async def records(hub: HubState) -> list[dict[str, Any]]:
    """Every call record (the API lists at most 200 at a time)."""
    async with connect(hub.pool) as conn:
        rows = await conn.fetch(
            "SELECT id, caller, outcome, ended_at, answered_at, agent_id FROM hotline_calls"
            " ORDER BY id"
        )
    return [dict(r) for r in rows]


async def settled(hub: HubState, calls: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The records once ``calls`` of them have ended (the writer task is ordered, not instant)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await records(hub)
        if len(rows) >= calls and all(r["ended_at"] is not None for r in rows):
            return rows
        if time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def welcome_seconds(service: HotlineService) -> float:
    """How long the welcome prompt plays (the prompts are made once the service starts)."""
    await until(lambda: service.prompts.ready, 60)
    return len(service.prompts.get("welcome")) / 8000


def nothing_left(hub: HubState, ports_before: set[int]) -> None:
    service = hotline(hub)
    assert service.legs == {}
    assert service.acd.waiting_count() == 0
    assert service.stack.ports.in_use == ports_before  # every caller leg's RTP port released
    assert channel(hub, "queue")["calls"] == []


async def test_a_caller_who_gives_up_while_queued_is_abandoned(
    hub: HubState, api: Any, sipps: list[Sipp], tmp_path: Path
) -> None:
    service = hotline(hub)
    ports = set(service.stack.ports.in_use)
    welcome = await welcome_seconds(service)  # hang up 6 s into the queue: not a short abandon
    run = await call(sipps, hub, "uac_abandon.xml", tmp_path, "-d", str(int(welcome * 1000) + 6000))
    await until(lambda: len(channel(hub, "queue").get("calls", [])) == 1)
    waiting = channel(hub, "queue")["calls"][0]
    assert waiting["caller"] == "138****2222" and waiting["state"] == "queued"
    row = await run.finish()
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    rows = await settled(hub, 1)
    assert [(r["caller"], r["outcome"]) for r in rows] == [(CALLER, "abandoned")]
    await until(lambda: service.legs == {}, 5)
    nothing_left(hub, ports)
    assert channel(hub, "queue")["today"]["abandoned"] == 1


async def test_cancel_right_after_the_invite_leaves_no_call(
    hub: HubState, sipps: list[Sipp], tmp_path: Path
) -> None:
    """The hub answers at once, so the CANCEL usually arrives after the 200 (then sipp ACKs and
    hangs up); either way sipp's scenario completes and no call is answered or left running."""
    service = hotline(hub)
    ports = set(service.stack.ports.in_use)
    run = await call(sipps, hub, "uac_cancel_early.xml", tmp_path, timeout=20)
    row = await run.finish()
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    log = run.messages()
    cancelled = "SIP/2.0 487 " in log
    assert cancelled or "\nBYE sip:" in log
    await until(lambda: service.legs == {}, 5)
    rows = await settled(hub, 0 if cancelled else 1, 10)
    assert all(r["outcome"] != "answered" and r["ended_at"] is not None for r in rows), rows
    nothing_left(hub, ports)


async def test_an_offer_of_g729_only_is_refused_488(
    hub: HubState, sipps: list[Sipp], tmp_path: Path
) -> None:
    service = hotline(hub)
    ports = set(service.stack.ports.in_use)
    run = await call(sipps, hub, "uac_g729.xml", tmp_path, timeout=15)
    row = await run.finish()  # the scenario requires the 488 and sends its ACK
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    assert "SIP/2.0 488 " in run.messages()
    assert await records(hub) == []  # refused before it became a call
    nothing_left(hub, ports)


async def test_the_callback_key_records_a_callback_and_the_hub_hangs_up(
    hub: HubState, api: Any, sipps: list[Sipp], tmp_path: Path
) -> None:
    service = hotline(hub)
    ports = set(service.stack.ports.in_use)
    welcome = await welcome_seconds(service)
    run = await call(sipps, hub, "uac_callback.xml", tmp_path, "-d", str(int(welcome * 1000) + 1500),
                     timeout=30 + welcome)  # fmt: skip
    row = await run.finish()  # the scenario ends on the hub's BYE, answered 200
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    log = run.messages()
    assert "\nBYE sip:" in log and "SIP/2.0 200 OK" in log
    rows = await settled(hub, 1)
    assert [(r["caller"], r["outcome"]) for r in rows] == [(CALLER, "callback")]
    agent = await api("agent1")
    items = (await agent.get("/api/hotline/callbacks")).json()["items"]
    assert [(i["number"], i["call_id"]) for i in items] == [(CALLER, rows[0]["id"])]
    await until(lambda: service.legs == {}, 5)
    nothing_left(hub, ports)
    assert channel(hub, "queue")["today"]["callbacks"] == 1


async def offered(hub: HubState, agent: str, timeout: float = 30.0) -> str:
    """The call offered to ``agent`` (on the agents board)."""
    await until(lambda: state_of(hub, agent) == "offered", timeout)
    call_id = channel(hub, "agents")[agent]["call"]
    assert isinstance(call_id, str)
    return call_id


async def talking(
    hub: HubState, agent: Api, me: str, browsers: list[AgentBrowser], freq: float
) -> tuple[str, AgentBrowser]:
    """The agent answers the call offered to them from a browser playing ``freq``."""
    call_id = await offered(hub, me)
    browser = AgentBrowser(freq)
    browsers.append(browser)
    await answer(agent, call_id, browser)
    await until(lambda: state_of(hub, me) == "talking", 10)
    return call_id, browser


def heard(browser: AgentBrowser, frames: int = 50) -> np.ndarray:
    return browser.pcm_8k(browser.heard[-frames:])


async def agent_hangs_up(hub: HubState, agent: Api, me: str, call_id: str) -> None:
    r = await agent.post(f"/api/hotline/live/{call_id}/hangup")
    assert r.status_code == 200, r.text
    await until(lambda: state_of(hub, me) in ("wrap_up", "ready"), 10)


async def test_an_agent_answers_hears_the_tone_and_hangs_up(
    hub: HubState, api: Any, sipps: list[Sipp], browsers: list[AgentBrowser], tmp_path: Path
) -> None:
    """Caller → agent: sipp's 440 Hz reaches the agent's browser. Agent → caller: sipp keeps
    nothing it hears, so the hub's side shows it: the caller leg keeps sending RTP while bridged and
    the recording's right channel (what the caller is sent) holds the agent's 1000 Hz."""
    service = hotline(hub)
    ports = set(service.stack.ports.in_use)
    agent = await api("agent1")
    me = await sign_in(agent)
    tone_wav(tmp_path / "tone.wav")
    run = await call(sipps, hub, "uac_talk.xml", tmp_path)
    call_id, browser = await talking(hub, agent, me, browsers, 1000.0)
    leg = service.legs[call_id]
    sent = leg.rtp.stats.packets_sent
    await asyncio.sleep(2.5)
    assert leg.rtp.stats.packets_sent - sent >= 100  # 20 ms frames to the caller, all along
    assert abs(dominant(heard(browser)) - 440.0) < 20  # the agent hears sipp's tone
    bridged = None if leg.agent is None else leg.agent.leg
    assert isinstance(bridged, AgentLeg) and bridged.passthrough  # A-law straight through
    await agent_hangs_up(hub, agent, me, call_id)
    row = await run.finish()  # sipp received the hub's BYE and answered 200
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    assert "\nBYE sip:" in run.messages()
    rows = await settled(hub, 1)
    assert [(r["outcome"], r["agent_id"]) for r in rows] == [("answered", agent.user["id"])]
    record = (await agent.get("/api/hotline/calls")).json()["items"][0]
    await until(lambda: service.legs == {}, 5)
    r = await agent.get(record["recording"])
    assert r.status_code == 200, r.text
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert len(pcm) >= 8000 * 2
    mid = pcm[len(pcm) // 4 : len(pcm) * 3 // 4]
    assert abs(dominant(mid[:, 0]) - 440.0) < 20  # the caller (sipp), left
    assert abs(dominant(mid[:, 1]) - 1000.0) < 20  # the agent, right
    nothing_left(hub, ports)


async def test_hold_plays_music_to_the_caller_and_silence_to_the_agent(
    hub: HubState, api: Any, sipps: list[Sipp], browsers: list[AgentBrowser], tmp_path: Path
) -> None:
    service = hotline(hub)
    agent = await api("agent1")
    me = await sign_in(agent)
    tone_wav(tmp_path / "tone.wav")
    run = await call(sipps, hub, "uac_talk.xml", tmp_path)
    call_id, browser = await talking(hub, agent, me, browsers, 1000.0)
    leg = service.legs[call_id]
    r = await agent.post(f"/api/hotline/live/{call_id}/hold", json={"on": True})
    assert r.status_code == 200 and r.json()["held"] is True, r.text
    sent = leg.rtp.stats.packets_sent
    await asyncio.sleep(1.5)
    assert leg.held and leg.rtp.stats.packets_sent - sent >= 60  # the caller hears music
    assert np.abs(heard(browser, 25).astype(np.int32)).max() < 200  # the agent, silence
    r = await agent.post(f"/api/hotline/live/{call_id}/hold", json={"on": False})
    assert r.status_code == 200 and r.json()["held"] is False, r.text
    await asyncio.sleep(1.5)
    assert not leg.held and abs(dominant(heard(browser)) - 440.0) < 20  # talking again
    await agent_hangs_up(hub, agent, me, call_id)
    row = await run.finish()
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")


async def test_a_ring_timeout_requeues_and_another_agent_answers(
    hub: HubState, api: Any, sipps: list[Sipp], browsers: list[AgentBrowser], tmp_path: Path
) -> None:
    service = hotline(hub)
    first, second = await api("agent1"), await api("agent2")
    me1 = await sign_in(first)  # ready, but never answers
    me2 = await sign_in(second, ready=False)
    tone_wav(tmp_path / "tone.wav")
    run = await call(sipps, hub, "uac_talk.xml", tmp_path)
    call_id = await offered(hub, me1)
    await until(lambda: state_of(hub, me1) == "not_ready", 3.0 + 5)  # ring timeout: 3 s
    assert channel(hub, "agents")[me1]["reason"] == "未接听"
    waiting = channel(hub, "queue")["calls"]
    assert [(w["call"], w["position"], w["state"]) for w in waiting] == [(call_id, 1, "queued")]
    r = await second.post("/api/hotline/me/state", json={"state": "ready"})
    assert r.status_code == 200, r.text
    again, browser = await talking(hub, second, me2, browsers, 1000.0)
    assert again == call_id
    await asyncio.sleep(1.5)
    assert abs(dominant(heard(browser)) - 440.0) < 20
    await agent_hangs_up(hub, second, me2, call_id)
    row = await run.finish()
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    rows = await settled(hub, 1)
    assert [(r["outcome"], r["agent_id"]) for r in rows] == [("answered", second.user["id"])]
    await until(lambda: service.legs == {}, 5)


async def test_a_blind_transfer_to_a_second_agent(
    hub: HubState, api: Any, sipps: list[Sipp], browsers: list[AgentBrowser], tmp_path: Path
) -> None:
    first, second = await api("agent1"), await api("agent2")
    me1 = await sign_in(first)
    tone_wav(tmp_path / "tone.wav")
    run = await call(sipps, hub, "uac_talk.xml", tmp_path)
    call_id, _ = await talking(hub, first, me1, browsers, 1000.0)
    me2 = await sign_in(second)
    r = await first.post(f"/api/hotline/live/{call_id}/transfer", json={"to": me2})
    assert r.status_code == 200, r.text
    again, browser = await talking(hub, second, me2, browsers, 700.0)
    assert again == call_id
    assert state_of(hub, me1) in ("wrap_up", "ready")
    await asyncio.sleep(1.5)
    assert abs(dominant(heard(browser)) - 440.0) < 20  # the second agent hears the caller
    await agent_hangs_up(hub, second, me2, call_id)
    row = await run.finish()
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    rows = await settled(hub, 1)
    assert [(r["outcome"], r["agent_id"]) for r in rows] == [("answered", second.user["id"])]


def exchange(data: bytes, addr: tuple[str, int], timeout: float) -> bytes | None:
    """One datagram to the hub from a fresh socket, and the first answer (None: dropped)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, addr)
        try:
            return s.recv(65536)
        except TimeoutError:
            return None


async def test_malformed_sip_mid_call_leaves_the_queued_call_and_the_hub_alone(
    hub: HubState, api: Any, client: httpx.AsyncClient, sipps: list[Sipp],
    browsers: list[AgentBrowser], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    service = hotline(hub)
    addr = service.stack.agent.local_address
    agent = await api("agent1")
    me = await sign_in(agent, ready=False)
    tone_wav(tmp_path / "tone.wav")
    run = await call(sipps, hub, "uac_talk.xml", tmp_path)
    await until(lambda: len(channel(hub, "queue").get("calls", [])) == 1, 30)
    call_id = channel(hub, "queue")["calls"][0]["call"]
    invite = service.legs[call_id].incoming.request
    dialog = invite.headers.get("Call-ID") or ""
    via = "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKjunk{}"
    bad = [
        # a truncated INVITE (cut in its headers)
        (b"INVITE sip:12319@127.0.0.1 SIP/2.0\r\n" + via.format(1).encode() + b"\r\nFrom: <sip:a@b"),
        # a BYE for the waiting call's dialog whose CSeq is no number
        ("BYE sip:12319@127.0.0.1 SIP/2.0\r\n" + via.format(2) + "\r\n"
         f"From: <sip:{CALLER}@127.0.0.1>;tag=x\r\nTo: <sip:12319@127.0.0.1>;tag=y\r\n"
         f"Call-ID: {dialog}\r\nCSeq: many BYE\r\nContent-Length: 0\r\n\r\n").encode(),
        # a request with a 60 kB header
        ("OPTIONS sip:12319@127.0.0.1 SIP/2.0\r\n" + via.format(3) + "\r\n"
         "Subject: " + "x" * 60_000 + "\r\n\r\n").encode(),
        b"\x00\xff\x13\x37" * 300,  # binary junk
        b"SIP/2.0 200\r\n\r\n",  # a response to nothing
    ]  # fmt: skip
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.WARNING)
    answers = [await loop.run_in_executor(None, exchange, d, addr, 0.5) for d in bad]
    for data, got in zip(bad, answers, strict=True):
        assert got is None or got.startswith((b"SIP/2.0 400 ", b"SIP/2.0 513 ")), (data[:40], got)
    assert answers[1] is not None and answers[1].startswith(b"SIP/2.0 400 ")  # the bad CSeq
    await asyncio.sleep(0.5)
    assert call_id in service.legs and channel(hub, "queue")["calls"][0]["call"] == call_id
    # the waiting call goes on: answered normally, then hung up by the agent
    r = await agent.post("/api/hotline/me/state", json={"state": "ready"})
    assert r.status_code == 200, r.text
    again, browser = await talking(hub, agent, me, browsers, 1000.0)
    assert again == call_id
    await asyncio.sleep(1.5)
    assert abs(dominant(heard(browser)) - 440.0) < 20
    await agent_hangs_up(hub, agent, me, call_id)
    row = await run.finish()
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == ("1", "0")
    assert (await settled(hub, 1))[0]["outcome"] == "answered"
    assert (await client.get("/healthz")).json()["status"] == "ok"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]


async def scripted_agent(
    hub: HubState, agent: Api, me: str, stop: asyncio.Event, answered: list[str]
) -> None:
    """An agent who answers whatever they are offered, talks about a second and hangs up (the
    ACD makes them ready again after the wrap-up). An offer whose caller leaves meanwhile is
    refused by the API (404/409): the agent moves on."""
    last = ""
    while not stop.is_set():

        def next_offer(last: str = last) -> bool:
            board = channel(hub, "agents").get(me, {})
            return stop.is_set() or (board.get("state") == "offered" and board["call"] != last)

        await until(next_offer, 120)
        if stop.is_set():
            return
        call_id = last = channel(hub, "agents")[me]["call"]
        browser = AgentBrowser(1000.0)
        try:
            await browser.pc.setLocalDescription(await browser.pc.createOffer())
            r = await agent.post(f"/api/hotline/live/{call_id}/answer",
                                 json={"sdp": browser.pc.localDescription.sdp})  # fmt: skip
            if r.status_code != 200:
                assert r.status_code in (404, 409), r.text
                continue
            await browser.pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))
            await asyncio.sleep(1.0)
            r = await agent.post(f"/api/hotline/live/{call_id}/hangup")
            assert r.status_code in (200, 404, 409), r.text  # the caller may have gone first
            answered.append(call_id)
        finally:
            await browser.close()


@pytest.mark.load
@pytest.mark.parametrize("loss", [0, 10], ids=["clean", "lost10"])
async def test_load_calls_with_hold_music_and_scripted_agents(
    hub: HubState, api: Any, sipps: list[Sipp], tmp_path: Path, loss: int
) -> None:
    """LOAD_CALLS calls at 10/s, at most 50 at once: every one succeeds at sipp (with -lost 10
    sipp drops a tenth of what it sends and receives; SIP retransmissions repair it)."""
    service = hotline(hub)
    ports = set(service.stack.ports.in_use)
    welcome = await welcome_seconds(service)
    agents = [await api(f"agent{i}") for i in (1, 2, 3)]
    ids = [await sign_in(a) for a in agents]
    stop = asyncio.Event()
    answered: list[str] = []
    tasks = [asyncio.create_task(scripted_agent(hub, a, me, stop, answered))
             for a, me in zip(agents, ids, strict=True)]  # fmt: skip
    retrans = service.stack.agent.stats["retransmissions"]
    extra = ["-r", "10", "-l", "50", "-d", str(int(welcome * 1000))]
    if loss:
        extra += ["-lost", str(loss)]
    started = time.monotonic()
    budget = 30 + LOAD_CALLS * (welcome + 6) / 50 + LOAD_CALLS / 10
    run = await call(sipps, hub, "uac_load.xml", tmp_path, *extra, calls=LOAD_CALLS,
                     timeout=budget)  # fmt: skip
    try:
        row = await run.finish()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    took = time.monotonic() - started
    assert (row["SuccessfulCall(C)"], row["FailedCall(C)"]) == (str(LOAD_CALLS), "0"), run.errors()
    await until(lambda: service.legs == {}, 10)
    rows = await settled(hub, LOAD_CALLS, 30)
    assert len(rows) == LOAD_CALLS
    assert all(r["ended_at"] is not None for r in rows)
    outcomes = {o: sum(r["outcome"] == o for r in rows) for o in {r["outcome"] for r in rows}}
    assert outcomes.get("failed", 0) == 0, outcomes
    assert set(outcomes) <= {"abandoned", "answered"}, outcomes
    assert outcomes.get("answered", 0) == len(answered) > 0, (outcomes, len(answered))
    nothing_left(hub, ports)
    if loss:
        assert service.stack.agent.stats["retransmissions"] > retrans  # the loss was real
    print(f"load {loss}% loss: {LOAD_CALLS} calls in {took:.1f} s, {outcomes}")
