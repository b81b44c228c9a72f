"""Live talk end to end: an aiortc peer (the seat's browser) sends a tone over WebRTC to
``POST /api/talk``; the hub calls two sipp speakers and streams the voice as G.711; the RTP that
reaches each speaker carries the tone (checked by frequency). Stopping ends the calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioice
import numpy as np
import pytest

from hub.state import HubState
from telephony import g711
from tests.telephony.warnings.test_talk import Browser, SineTrack, dominant
from tests.telephony.warnings.test_warnings_play import wait_ended
from tests.telephony.warnings.test_warnings_sipp import add_speakers, sipp_speaker

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """aioice gathers the machine's addresses; the tests stay on 127.0.0.1."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


@pytest.mark.parametrize("freq", [440.0, 1000.0])
async def test_a_tone_from_the_browser_arrives_at_the_speakers(
    hub_state: HubState, login: Any, tmp_path: Path, freq: float
) -> None:
    seat = await login("seat1")
    async with contextlib.AsyncExitStack() as stack:
        speakers = [await stack.enter_async_context(sipp_speaker(tmp_path)) for _ in range(2)]
        ids = await add_speakers(hub_state, [s.uri for s in speakers])
        browser = Browser(SineTrack(freq))
        stack.push_async_callback(browser.pc.close)
        r = await seat.post("/api/talk", json={"sdp": await browser.offer(), "speaker_ids": ids})
        assert r.status_code == 200, r.text
        talk = r.json()
        await browser.accept(talk["sdp"])
        # two seconds of voice at each speaker
        async with asyncio.timeout(20):
            while min(len(s.capture.rtp()) for s in speakers) < 100:
                await asyncio.sleep(0.05)
        live = (await seat.get(f"/api/warnings/{talk['warning_id']}")).json()
        assert live["kind"] == "live" and live["state"] == "running"
        assert {t["outcome"] for t in live["targets"]} == {"playing"}
        r = await seat.post(f"/api/talk/{talk['talk_id']}/stop")
        assert r.status_code == 200, r.text
        w = await wait_ended(seat, talk["warning_id"])
        assert [t["outcome"] for t in w["targets"]] == ["delivered", "delivered"]
        for spk in speakers:
            packets = spk.capture.rtp()
            assert all(len(p[4]) == 160 and p[3] == 8 for p in packets)
            # skip the first packets (the resampler's and the jitter queue's start-up)
            pcm = g711.alaw_decode(b"".join(p[4] for p in packets[10:90])).astype(float)
            assert np.abs(pcm).mean() > 1000  # a tone, not silence
            assert abs(dominant(pcm) - freq) < 10
            async with asyncio.timeout(10):
                assert await spk.proc.wait() == 0  # the hub hung up: sipp's call completed
    again = await seat.post(f"/api/talk/{talk['talk_id']}/stop")
    assert again.status_code == 404
