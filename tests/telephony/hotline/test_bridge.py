"""The agent's leg against a real aiortc peer standing in for the agent's browser: the caller's
G.711 frames pushed into the leg arrive at the browser with their frequency (passed through
untouched when the browser takes the caller's law, decoded for Opus), the browser's microphone
arrives as 160-byte frames in the caller's law, and a caller who goes quiet (hold) becomes paced
silence, not a stall."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import aioice.ice
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from telephony.g711 import G711Law
from telephony.hotline.bridge import AgentLeg
from tests.telephony.warnings.test_talk import SineTrack, dominant

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


class AgentBrowser:
    """The agent's page: microphone out (a sine), the caller's audio in (decoded frames kept)."""

    def __init__(self, freq: float, codec: str | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = SineTrack(freq)
        transceiver = self.pc.addTransceiver(self.mic, direction="sendrecv")
        if codec is not None:
            caps = RTCRtpSender.getCapabilities("audio")
            transceiver.setCodecPreferences([c for c in caps.codecs if c.name == codec])
        self.heard: list[av.AudioFrame] = []
        self.arrivals: list[float] = []
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: object) -> None:
        async def read() -> None:
            while True:
                try:
                    frame = await track.recv()  # type: ignore[attr-defined]
                except Exception:
                    return
                self.heard.append(frame)
                self.arrivals.append(time.monotonic())

        self._reader = asyncio.get_running_loop().create_task(read())

    async def call(self, leg: AgentLeg) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        answer = await leg.answer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def pcm_8k(self, frames: list[av.AudioFrame]) -> np.ndarray:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        parts = []
        for f in frames:
            f.pts = None
            parts += [o.to_ndarray().reshape(-1) for o in resampler.resample(f)]
        return np.concatenate(parts)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.pc.close()


@pytest.fixture
async def parts() -> AsyncIterator[list[AgentBrowser | AgentLeg]]:
    things: list[AgentBrowser | AgentLeg] = []
    yield things
    for t in things:
        await t.close()


async def feed_caller(leg: AgentLeg, law: G711Law, freq: float, seconds: float) -> None:
    """The caller's RTP, as the service pushes it: 20 ms frames in real time."""
    n = int(seconds / 0.02)
    start = time.monotonic()
    for i in range(n):
        t = (np.arange(160) + i * 160) / 8000
        leg.push(law.encode((np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)))
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))


async def wait_for(cond: object, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("law", "codec", "mode"),
    [
        (G711Law.ALAW, None, "PCMA"),  # the browser offers everything: the caller's law wins
        (G711Law.ULAW, None, "PCMU"),
        (G711Law.ALAW, "PCMU", "PCMU"),  # the other law only: re-coded by table
        (G711Law.ALAW, "opus", "frames"),  # Opus only: decoded, aiortc encodes
    ],
)
async def test_both_directions(
    parts: list[AgentBrowser | AgentLeg], law: G711Law, codec: str | None, mode: str
) -> None:
    leg = AgentLeg(law)
    browser = AgentBrowser(1000.0, codec)
    parts += [browser, leg]
    agent_audio = leg.subscribe(maxsize=200)
    await browser.call(leg)
    assert leg.track.mode == mode
    assert leg.passthrough is (mode == law.encoding_name)
    await feed_caller(leg, law, 440.0, 2.0)
    await wait_for(lambda: len(browser.heard) >= 50)
    heard = browser.pcm_8k(browser.heard[-40:])
    assert abs(dominant(heard) - 440.0) < 15
    frames = [await asyncio.wait_for(agent_audio.get(), 10) for _ in range(60)]
    assert all(len(f) == 160 for f in frames)
    mic = law.decode(b"".join(frames[-40:]))
    assert abs(dominant(mic) - 1000.0) < 15


async def test_a_quiet_caller_is_paced_silence(parts: list[AgentBrowser | AgentLeg]) -> None:
    leg = AgentLeg(G711Law.ALAW)
    browser = AgentBrowser(1000.0)
    parts += [browser, leg]
    await browser.call(leg)
    await feed_caller(leg, G711Law.ALAW, 440.0, 0.4)
    await wait_for(lambda: len(browser.heard) >= 10)
    before = len(browser.heard)
    await asyncio.sleep(1.0)  # nothing pushed: on hold
    got = len(browser.heard) - before
    assert 35 <= got <= 60, got  # ~50 frames of 20 ms: still paced
    assert leg.track.silence >= 35
    quiet = browser.pcm_8k(browser.heard[-20:])
    assert np.abs(quiet.astype(np.int32)).max() < 200


async def test_a_burst_is_cut_to_the_newest_frames(parts: list[AgentBrowser | AgentLeg]) -> None:
    leg = AgentLeg(G711Law.ALAW)
    browser = AgentBrowser(1000.0)
    parts += [browser, leg]
    await browser.call(leg)
    for _ in range(50):  # a second of audio at once (a stalled network, then a flood)
        leg.push(b"\xd5" * 160)
    assert leg.track.dropped >= 45
