"""A hotline call end to end on loopback: a SIP caller (the hub's own user agent as a UAC, with an
RTP stream that plays a 440 Hz tone and keeps what it hears) dials 12319; the welcome prompt
plays; the call is queued and shown on the ``queue`` channel; agent1 (signed in, ready) is offered
it on the ``agents`` channel and answers from an aiortc "browser" through the API; the caller hears
the agent's 1000 Hz tone and the agent hears 440 Hz; the caller hangs up; the record is answered,
the recording holds the caller on the left and the agent on the right."""

from __future__ import annotations

import asyncio
import io
import secrets
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioice.ice
import httpx
import numpy as np
import pytest

from hub.state import HubState
from hub.web.app import build_state, close_state, create_app
from telephony.g711 import G711Law
from telephony.hotline.service import HotlineService
from telephony.rtp.session import PortPool, RtpStream
from telephony.sdp import PCMA, Direction, LocalMedia, SdpSession, build_offer, negotiate_answer
from telephony.sip.agent import UserAgent
from tests.conftest import Api
from tests.conftest import test_settings as settings_for
from tests.telephony.hotline.test_bridge import AgentBrowser
from tests.telephony.warnings.test_talk import dominant

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


@pytest.fixture
async def hub(fresh_dsn: str, shared_data_dir: Path) -> AsyncIterator[HubState]:
    state = await build_state(
        settings_for(
            shared_data_dir, fresh_dsn, hotline_trunks=("127.0.0.0/8",), hotline_wrapup=2.0,
            hotline_announce_every=5.0,
        )
    )  # fmt: skip
    try:
        yield state
    finally:
        await close_state(state)


@pytest.fixture
async def api(hub: HubState) -> AsyncIterator[Any]:
    app = create_app(hub.settings)
    app.state.hub = hub
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:

        async def login(username: str) -> Api:
            from hub.demo import DEMO_USERS

            r = await c.post("/api/auth/login", json={
                "username": username, "password": DEMO_USERS[username][1], "token": True})  # fmt: skip
            assert r.status_code == 200, r.text
            return Api(c, r.json()["token"], r.json()["user"])

        yield login


def hotline(hub: HubState) -> HotlineService:
    service = hub.services["hotline"]
    assert isinstance(service, HotlineService)
    return service


def channel(hub: HubState, name: str) -> dict[str, Any]:
    assert hub.fanout is not None
    return hub.fanout.states.snapshot(name)


async def until(cond: Any, timeout: float = 20.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.05)


class Caller:
    """A citizen's phone: dials, sends a 440 Hz tone, keeps the audio it hears."""

    def __init__(self, ua: UserAgent, ports: PortPool) -> None:
        self.ua = ua
        self.ports = ports
        self.heard = bytearray()
        self.stream: RtpStream | None = None
        self.call: Any = None
        self._tone: asyncio.Task[Any] | None = None

    async def dial(self, hub_port: int, number: str = "12319", caller: str = "13800001111") -> None:
        self.stream = await RtpStream.open(self.ports, "127.0.0.1")
        local = LocalMedia("127.0.0.1", self.stream.local_port, Direction.SENDRECV, codecs=(PCMA,))
        _, offer = build_offer(SdpSession(secrets.randbelow(2**31), 1, "127.0.0.1"), local)
        self.ua.user = caller
        self.call = await self.ua.invite(f"sip:{number}@127.0.0.1:{hub_port}", offer)
        media = negotiate_answer(offer, self.call.remote_sdp)
        self.stream.set_remote((media.remote_address, media.remote_port), media.codec.payload_type,
                               event_payload_type=media.telephone_event)  # fmt: skip
        self.stream.on_audio = self.heard.extend
        t = np.arange(8000 * 60) / 8000
        tone = G711Law.ALAW.encode((np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16))
        self._tone = asyncio.get_running_loop().create_task(self.stream.play(tone))

    def last(self, seconds: float) -> np.ndarray:
        n = int(seconds * 8000)
        return G711Law.ALAW.decode(bytes(self.heard[-n:]))

    async def hang_up(self) -> None:
        if self._tone is not None:
            self._tone.cancel()
        if self.call is not None:
            await self.call.hangup()
        if self.stream is not None:
            self.stream.close()


@pytest.fixture
async def caller() -> AsyncIterator[Caller]:
    ua = UserAgent("127.0.0.1", 0, user="citizen")
    await ua.start()
    c = Caller(ua, PortPool(46000, 46999))
    try:
        yield c
    finally:
        await c.hang_up()
        ua.close()
        await ua.wait_closed()


async def test_a_call_is_queued_offered_answered_bridged_and_recorded(
    hub: HubState, api: Any, caller: Caller
) -> None:
    service = hotline(hub)
    agent = await api("agent1")
    me = str(agent.user["id"])
    r = await agent.post("/api/hotline/me/state", json={"state": "signed_in"})
    assert r.status_code == 200 and r.json()["state"] == "not_ready", r.text

    # the prompts are made (not the stand-in of a fresh start)
    await until(lambda: service.prompts.ready, what="prompts made")
    _, port = service.stack.agent.local_address
    await caller.dial(port)
    # the welcome prompt plays, then the call waits: on the queue board, number masked
    await until(lambda: len(channel(hub, "queue").get("calls", [])) == 1, what="queued")
    waiting = channel(hub, "queue")["calls"][0]
    assert waiting["caller"] == "138****1111" and waiting["position"] == 1
    assert len(caller.heard) > 8000  # a second of the welcome at least

    r = await agent.post("/api/hotline/me/state", json={"state": "ready"})
    assert r.status_code == 200, r.text
    await until(lambda: channel(hub, "agents").get(me, {}).get("state") == "offered", what="offer")
    offered = channel(hub, "agents")[me]
    call = offered["call"]
    mine = (await agent.get("/api/hotline/me")).json()
    assert mine["current"]["caller"] == "13800001111"  # the agent sees the whole number

    browser = AgentBrowser(1000.0)
    try:
        await browser.pc.setLocalDescription(await browser.pc.createOffer())
        r = await agent.post(f"/api/hotline/live/{call}/answer",
                             json={"sdp": browser.pc.localDescription.sdp})  # fmt: skip
        assert r.status_code == 200, r.text
        from aiortc import RTCSessionDescription

        await browser.pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))
        await until(lambda: channel(hub, "agents")[me]["state"] == "talking", what="talking")
        assert channel(hub, "queue")["calls"] == []
        await asyncio.sleep(2.5)
        assert abs(dominant(caller.last(1.0)) - 1000.0) < 20  # the caller hears the agent
        heard = browser.pcm_8k(browser.heard[-50:])
        assert abs(dominant(heard) - 440.0) < 20  # the agent hears the caller
        bridged = hotline(hub).legs[call].agent
        assert bridged is not None and bridged.leg.passthrough  # G.711 straight through
        await caller.hang_up()
        await until(lambda: channel(hub, "agents")[me]["state"] == "wrap_up", what="wrap-up")
    finally:
        await browser.close()
    await until(lambda: channel(hub, "agents")[me]["state"] == "ready", 10, "ready again")
    await until(lambda: channel(hub, "queue")["today"]["answered"] == 1, 10, "counted")

    calls = (await agent.get("/api/hotline/calls")).json()["items"]
    assert len(calls) == 1
    record = calls[0]
    assert record["outcome"] == "answered" and record["agent_id"] == agent.user["id"]
    assert record["caller"] == "13800001111" and record["wait_seconds"] is not None
    r = await agent.get(record["recording"])
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert len(pcm) >= 8000 * 2
    mid = pcm[len(pcm) // 4 : len(pcm) * 3 // 4]
    assert abs(dominant(mid[:, 0]) - 440.0) < 20  # the caller, left
    assert abs(dominant(mid[:, 1]) - 1000.0) < 20  # the agent, right
    # the browser's <audio> seeks with Range requests: a part of the file, byte for byte
    part = await agent.get(record["recording"], headers={"Range": "bytes=44-1043"})
    assert part.status_code == 206 and part.content == r.content[44:1044]


async def test_a_supervisor_listens(hub: HubState, api: Any, caller: Caller) -> None:
    """监听: the supervisor (admin) joins a connected call from a browser and hears both sides
    (440 Hz caller + 1000 Hz agent), while the caller does not hear the supervisor (700 Hz)."""
    from aiortc import RTCSessionDescription

    service = hotline(hub)
    agent = await api("agent1")
    admin = await api("admin")
    me = str(agent.user["id"])
    await agent.post("/api/hotline/me/state", json={"state": "signed_in"})
    await agent.post("/api/hotline/me/state", json={"state": "ready"})
    _, port = service.stack.agent.local_address
    await caller.dial(port)
    await until(lambda: channel(hub, "agents").get(me, {}).get("state") == "offered", 40, "offer")
    call = channel(hub, "agents")[me]["call"]
    browser, sup = AgentBrowser(1000.0), AgentBrowser(700.0)
    try:
        await browser.pc.setLocalDescription(await browser.pc.createOffer())
        r = await agent.post(f"/api/hotline/live/{call}/answer",
                             json={"sdp": browser.pc.localDescription.sdp})  # fmt: skip
        assert r.status_code == 200, r.text
        await browser.pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))
        await until(lambda: channel(hub, "agents")[me]["state"] == "talking", what="talking")
        refused = await agent.post(f"/api/hotline/live/{call}/monitor", json={"sdp": "v=0" * 10})
        assert refused.status_code == 403  # monitoring is the supervisor's
        await sup.pc.setLocalDescription(await sup.pc.createOffer())
        r = await admin.post(f"/api/hotline/live/{call}/monitor",
                             json={"sdp": sup.pc.localDescription.sdp, "mode": "listen"})  # fmt: skip
        assert r.status_code == 200, r.text
        await sup.pc.setRemoteDescription(RTCSessionDescription(r.json()["sdp"], "answer"))
        await until(lambda: len(sup.heard) >= 100, what="the supervisor hears")
        heard = sup.pcm_8k(sup.heard[-50:])
        spectrum = np.abs(np.fft.rfft(heard.astype(np.float64) * np.hanning(len(heard))))
        freqs = np.fft.rfftfreq(len(heard), 1 / 8000)

        def energy(f: float) -> float:
            return float(spectrum[(freqs > f - 15) & (freqs < f + 15)].sum())

        noise = energy(2500.0) + 1.0
        assert energy(440.0) > 20 * noise and energy(1000.0) > 20 * noise  # both sides
        # the caller does not hear the supervisor while listening
        assert energy_of(caller.last(1.0), 700.0) < 0.05 * energy_of(caller.last(1.0), 1000.0)
    finally:
        await browser.close()
        await sup.close()


def energy_of(pcm: np.ndarray, f: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    return float(spectrum[(freqs > f - 15) & (freqs < f + 15)].sum())
