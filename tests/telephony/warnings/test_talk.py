"""TalkSession against a real aiortc peer in the same process (a browser stand-in): a sine from the
client's microphone track arrives as 160-byte G.711 frames with the same dominant frequency; the
session ends on close(), when the peer closes, and when the audio stops. And once against Debian's
Chromium itself (Playwright), its fake microphone playing a sine from a WAV file, Opus and PCMU.

Both peers gather host candidates on the loopback interface only: aioice leaves 127.0.0.1 out of its
host addresses, so the tests narrow its interface list to 127.0.0.1 (nothing else is touched)."""

from __future__ import annotations

import asyncio
import fractions
import shutil
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioice.ice
import av
import numpy as np
import pytest
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from telephony.g711 import G711Law
from telephony.warnings.talk import (
    FRAME_BYTES,
    EndReason,
    TalkError,
    TalkSession,
    filter_candidates,
    parse_networks,
    restrict_host_addresses,
)

RATE = 48_000
PTIME = 0.02


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


class SineTrack(AudioStreamTrack):
    """A 48 kHz mono microphone playing a sine, paced in real time; ``stop_after`` frames then
    silence on the wire (recv blocks: the browser's track is live but sends nothing)."""

    def __init__(self, freq: float, stop_after: int | None = None) -> None:
        super().__init__()
        self.freq = freq
        self.stop_after = stop_after
        self.sent = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.stop_after is not None and self.sent >= self.stop_after:
            await asyncio.sleep(3600)
        n = int(RATE * PTIME)
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._t0 + self.sent * PTIME - time.monotonic()))
        t = (np.arange(n) + self.sent * n) / RATE
        pcm = (np.sin(2 * np.pi * self.freq * t) * 12000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.sent * n
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent += 1
        return frame


class Browser:
    def __init__(self, track: SineTrack, codec: str | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = track
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        if codec is not None:
            caps = RTCRtpSender.getCapabilities("audio")
            transceiver.setCodecPreferences([c for c in caps.codecs if c.name == codec])

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


async def connect(
    freq: float,
    law: G711Law,
    *,
    codec: str | None = None,
    stop_after: int | None = None,
    idle_timeout: float = 10.0,
) -> tuple[Browser, TalkSession, str]:
    browser = Browser(SineTrack(freq, stop_after), codec)
    session = TalkSession(law, idle_timeout=idle_timeout)
    answer = await session.answer(await browser.offer())
    await browser.accept(answer)
    return browser, session, answer


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Browser | TalkSession]]:
    things: list[Browser | TalkSession] = []
    yield things
    for thing in things:
        if isinstance(thing, Browser):
            await thing.pc.close()
        else:
            await thing.close()


async def take(q: asyncio.Queue[bytes], n: int, timeout: float = 15.0) -> list[bytes]:
    out: list[bytes] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await q.get())
    return out


def dominant(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(
    ("freq", "law", "codec", "sdp_name"),
    [
        (440.0, G711Law.ALAW, None, "opus/48000"),  # a browser's default: Opus
        (1000.0, G711Law.ULAW, None, "opus/48000"),
        (440.0, G711Law.ULAW, "PCMU", "PCMU/8000"),  # a browser offering G.711 only
        (1000.0, G711Law.ALAW, "PCMA", "PCMA/8000"),
    ],
)
async def test_tone_arrives_as_g711_frames(
    freq: float, law: G711Law, codec: str | None, sdp_name: str, cleanup: list[object]
) -> None:
    browser, session, answer = await connect(freq, law, codec=codec)
    cleanup += [browser, session]
    assert "a=recvonly" in answer
    assert sdp_name in answer
    assert "typ host" in answer and "typ srflx" not in answer and "typ relay" not in answer
    q = session.subscribe(maxsize=200)
    frames = await take(q, 75)  # 1.5 s
    assert all(isinstance(f, bytes) and len(f) == FRAME_BYTES for f in frames)
    pcm = law.decode(b"".join(frames[25:]))  # skip the codec's start-up, keep 1 s
    assert len(pcm) == 8000
    assert abs(dominant(pcm) - freq) <= 3.0
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 3000  # the tone, not silence
    assert session.stats.frames_out >= 75 and session.stats.dropped == 0
    # The per-frame work on the loop (resample + encode + deliver) stays far below a frame time.
    assert 0 < session.stats.max_frame_seconds < PTIME
    assert not session.closed.is_set()


async def test_every_subscriber_gets_every_frame_and_a_full_queue_drops_the_oldest(
    cleanup: list[object],
) -> None:
    browser, session, _ = await connect(440.0, G711Law.ALAW)
    cleanup += [browser, session]
    a = session.subscribe(maxsize=100)
    small = session.subscribe(maxsize=2)
    gone = session.subscribe(maxsize=100)
    session.unsubscribe(gone)
    first = await take(a, 1)
    start = session.stats.frames_out
    frames = first + await take(a, 20)
    assert session.stats.frames_out - start >= 20
    assert small.qsize() == 2 and session.stats.dropped >= 15
    # The small queue holds the two newest frames, which the big one got too, last.
    newest = [small.get_nowait(), small.get_nowait()]
    rest = [a.get_nowait() for _ in range(a.qsize())]
    assert newest == (frames + rest)[-2:]
    assert gone.empty()


async def test_close_ends_the_session(cleanup: list[object]) -> None:
    browser, session, _ = await connect(440.0, G711Law.ALAW)
    cleanup.append(browser)
    await take(session.subscribe(), 5)
    await session.close()
    assert session.closed.is_set() and session.end_reason is EndReason.CLOSED
    await session.close()  # idempotent
    assert session.end_reason is EndReason.CLOSED
    # The browser sees its peer go.
    async with asyncio.timeout(15):
        while browser.pc.connectionState not in ("closed", "failed"):
            await asyncio.sleep(0.05)


async def test_the_peer_closing_ends_the_session(cleanup: list[object]) -> None:
    browser, session, _ = await connect(1000.0, G711Law.ULAW)
    cleanup.append(session)
    q = session.subscribe()
    await take(q, 5)
    await browser.pc.close()
    async with asyncio.timeout(15):
        await session.closed.wait()
    assert session.end_reason in (EndReason.PEER_CLOSED, EndReason.TRACK_ENDED)
    out = session.stats.frames_out
    await asyncio.sleep(0.2)
    assert session.stats.frames_out == out


async def test_no_audio_for_the_idle_timeout_ends_the_session(cleanup: list[object]) -> None:
    browser, session, _ = await connect(440.0, G711Law.ALAW, stop_after=25, idle_timeout=1.0)
    cleanup += [browser, session]
    await take(session.subscribe(maxsize=100), 10)
    started = time.monotonic()
    async with asyncio.timeout(15):
        await session.closed.wait()
    assert session.end_reason is EndReason.IDLE
    assert time.monotonic() - started < 5


async def test_an_offer_that_never_connects_times_out(cleanup: list[object]) -> None:
    browser = Browser(SineTrack(440.0))
    cleanup.append(browser)
    session = TalkSession(idle_timeout=1.0)
    cleanup.append(session)
    await session.answer(await browser.offer())  # the answer never reaches the browser
    async with asyncio.timeout(10):
        await session.closed.wait()
    assert session.end_reason is EndReason.IDLE


HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ICE = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00\r\n"


@pytest.mark.parametrize(
    "offer",
    [
        "v=0\r\nm=audio x\r\n",  # aiortc's parser asserts
        HEAD + "m=audio 9 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\n",  # no ICE
        HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n" + ICE + "a=mid:0\r\n",
        HEAD
        + "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 speex/8000\r\n"
        + ICE
        + "a=setup:actpass\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n",  # no common codec
        "m=audio " + "9" * 70_000,  # too big
    ],
)
async def test_bad_offers_are_refused_and_end_the_session(offer: str) -> None:
    session = TalkSession()
    try:
        with pytest.raises(TalkError):
            await session.answer(offer)
        if len(offer) < 1000:
            assert session.closed.is_set() and session.end_reason is EndReason.FAILED
    finally:
        await session.close()


async def test_offers_without_audio_are_refused(cleanup: list[object]) -> None:
    session = TalkSession()
    cleanup.append(session)
    with pytest.raises(TalkError):
        await session.answer("not sdp at all")
    video = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        video.addTransceiver("video", direction="sendonly")
        await video.setLocalDescription(await video.createOffer())
        assert video.localDescription is not None
        s1 = TalkSession()
        cleanup.append(s1)
        with pytest.raises(TalkError):
            await s1.answer(video.localDescription.sdp)
    finally:
        await video.close()
    browser = Browser(SineTrack(440.0))
    cleanup.append(browser)
    s2 = TalkSession()
    cleanup.append(s2)
    offer = await browser.offer()
    await s2.answer(offer)
    with pytest.raises(TalkError):
        await s2.answer(offer)  # one offer per session


# -- a real browser ------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
OFFER_JS = """async (codec) => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  const tr = pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendonly"});
  if (codec) {
    const caps = RTCRtpSender.getCapabilities("audio").codecs;
    tr.setCodecPreferences(caps.filter((c) => c.mimeType === "audio/" + codec));
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
  });
  return pc.localDescription.sdp;
}"""


def sine_wav(path: Path, freq: float, seconds: float = 30.0) -> Path:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (np.sin(2 * np.pi * freq * t) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def loopback_candidates(sdp: str) -> str:
    """The offer with its loopback candidates only (Chromium also offers the machine's others)."""
    lines = sdp.split("\r\n")
    keep = [ln for ln in lines if not ln.startswith("a=candidate:") or " 127.0.0.1 " in ln]
    return "\r\n".join(keep)


@pytest.mark.browser
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's Chromium is not installed")
@pytest.mark.parametrize(
    ("codec", "freq", "sdp_name"), [(None, 440.0, "opus"), ("PCMU", 1000.0, "PCMU")]
)
async def test_chromium_microphone_arrives_as_g711(
    codec: str | None, freq: float, sdp_name: str, tmp_path: Path
) -> None:
    async_api: Any = pytest.importorskip("playwright.async_api")
    wav = sine_wav(tmp_path / "mic.wav", freq)
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        session = TalkSession(G711Law.ALAW)
        try:
            page = await browser.new_page()

            async def page_route(route: Any) -> None:
                await route.fulfill(status=200, content_type="text/html", body="<!doctype html>")

            await page.route("http://localhost/talk", page_route)  # a secure context, no server
            await page.goto("http://localhost/talk")
            offer = await page.evaluate(OFFER_JS, codec)
            assert f" {sdp_name}/" in offer.split("a=rtpmap:", 1)[1].splitlines()[0]
            answer = await session.answer(loopback_candidates(offer))
            assert f" {sdp_name}/" in answer and "a=recvonly" in answer
            await page.evaluate(
                "(sdp) => window.pc.setRemoteDescription({type: 'answer', sdp})", answer
            )
            frames = await take(session.subscribe(maxsize=200), 100, timeout=20)
            assert {len(f) for f in frames} == {FRAME_BYTES}
            pcm = G711Law.ALAW.decode(b"".join(frames[50:]))
            assert abs(dominant(pcm) - freq) <= 3.0
            await page.evaluate("() => window.pc.close()")
            async with asyncio.timeout(15):
                await session.closed.wait()
            assert session.end_reason in (EndReason.PEER_CLOSED, EndReason.TRACK_ENDED)
        finally:
            await session.close()
            await browser.close()


class TestNetworks:
    """CITYHUB_WEBRTC_NETWORKS: media only inside the city's (here: loopback) networks."""

    OFFER = "\r\n".join(
        [
            "v=0",
            "a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host",
            "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host",
            "a=candidate:3 1 udp 2122260223 3f1a.local 50002 typ host",
            "a=candidate:4 1 udp 2122262783 fd00::2 50003 typ host",
            "a=ice-ufrag:x",
        ]
    )

    def test_the_offers_outside_candidates_and_mdns_names_are_dropped(self) -> None:
        nets = parse_networks(["127.0.0.0/8"])
        kept = filter_candidates(self.OFFER, nets)
        assert "127.0.0.1 50001" in kept
        assert all(x not in kept for x in ("192.0.2.2", "3f1a.local", "fd00::2"))
        assert "a=ice-ufrag:x" in kept
        assert filter_candidates(self.OFFER, []) == self.OFFER  # no limit: unchanged

    def test_gathering_is_limited_and_restored(self) -> None:
        before = aioice.ice.get_host_addresses
        had = vars(aioice.ice).pop("_cityhub_original", None)
        try:
            restrict_host_addresses(parse_networks(["127.0.0.0/8"]))
            assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
            restrict_host_addresses([])
            assert aioice.ice.get_host_addresses is before
        finally:
            aioice.ice.get_host_addresses = before
            vars(aioice.ice).pop("_cityhub_original", None)
            if had is not None:
                aioice.ice._cityhub_original = had  # type: ignore[attr-defined]
