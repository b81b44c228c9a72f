"""A hotline call end to end on loopback: a SIP caller (the hub's own user agent as a UAC, with an
RTP stream that plays a 440 Hz tone and keeps what it hears) dials 12319; the welcome prompt
plays; the call is queued and shown on the ``queue`` channel; agent1 (signed in, ready) is offered
it on the ``agents`` channel and answers from an aiortc "browser" through the API; the caller hears
the agent's 1000 Hz tone and the agent hears 440 Hz; the caller hangs up; the record is answered,
the recording holds the caller on the left and the agent on the right."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

import numpy as np
import pytest

from hub.state import HubState
from tests.telephony.hotline.support import Caller, channel, hotline, until
from tests.telephony.hotline.test_bridge import AgentBrowser
from tests.telephony.warnings.test_talk import dominant

pytestmark = pytest.mark.timeout(120)


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
