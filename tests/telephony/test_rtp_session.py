"""RtpStream, PortPool and MediaClock over real UDP on 127.0.0.1 (behaviour, loosely timed)."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import statistics
from collections.abc import AsyncIterator

import numpy as np
import pytest

from telephony import g711
from telephony.errors import RtpError
from telephony.rtp.clock import MediaClock
from telephony.rtp.packet import RtpPacket
from telephony.rtp.session import PortPool, RtpStream

HOST = "127.0.0.1"


def pool(pairs: int = 8) -> PortPool:
    first = random.randrange(30000, 60000, 2)
    return PortPool(first, first + 2 * pairs - 1)


def clip(frames: int) -> bytes:
    return b"".join(bytes([(i * 7) % 251]) * 160 for i in range(frames))


async def pair(p: PortPool, rtcp_interval: float = 5.0) -> tuple[RtpStream, RtpStream]:
    a = await RtpStream.open(p, HOST, rtcp_interval=rtcp_interval)
    b = await RtpStream.open(p, HOST, rtcp_interval=rtcp_interval)
    a.set_remote((HOST, b.local_port), 8, event_payload_type=101)
    b.set_remote((HOST, a.local_port), 8, event_payload_type=101)
    return a, b


def recorder(stream: RtpStream) -> list[tuple[float, RtpPacket]]:
    got: list[tuple[float, RtpPacket]] = []
    loop = asyncio.get_running_loop()
    stream.on_packet = lambda p: got.append((loop.time(), p))
    return got


async def wait_for(cond: object, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if callable(cond) and cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_a_clip_arrives_complete_in_order_paced_with_correct_headers() -> None:
    a, b = await pair(pool())
    got = recorder(b)
    frames: list[bytes] = []
    b.on_audio = frames.append
    data = clip(50)
    try:
        result = await a.play(data)
        await wait_for(lambda: len(frames) >= 50)
    finally:
        a.close()
        b.close()
    assert result.completed and result.packets == 50 and result.octets == 50 * 160
    packets = [p for _, p in got]
    assert len(packets) == 50
    seq0, ts0 = packets[0].sequence, packets[0].timestamp
    for i, p in enumerate(packets):
        assert p.sequence == (seq0 + i) & 0xFFFF
        assert p.timestamp == (ts0 + 160 * i) & 0xFFFFFFFF
        assert p.payload_type == 8 and p.ssrc == a.ssrc
        assert p.marker == (i == 0)
        assert p.payload == data[160 * i : 160 * (i + 1)]
    assert b"".join(frames[:50]) == data
    gaps = [t2 - t1 for (t1, _), (t2, _) in itertools.pairwise(got)]
    assert 0.015 < statistics.mean(gaps) < 0.025  # loosely: a loaded machine wakes us late
    assert got[-1][0] - got[0][0] == pytest.approx(49 * 0.020, abs=0.06)
    assert sum(g < 0.005 for g in gaps) < 10  # paced, not sent in a burst
    assert b.stats.packets_received == 50 and b.stats.packets_lost == 0
    assert a.stats.packets_sent == 50 and a.stats.octets_sent == 50 * 160


async def test_short_last_frame_is_padded_with_silence_and_plays_continue_the_stream() -> None:
    a, b = await pair(pool())
    got = recorder(b)
    try:
        await a.play(b"\x01" * 200, repeat=2)  # two frames per repetition, the 2nd padded
        await asyncio.sleep(0.1)
        await a.play(b"\x02" * 160)
        await wait_for(lambda: len(got) >= 5)
    finally:
        a.close()
        b.close()
    packets = [p for _, p in got]
    assert [p.marker for p in packets] == [True, False, False, False, True]
    assert packets[1].payload == b"\x01" * 40 + b"\xd5" * 120
    seqs = [p.sequence for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(5)]
    ts = [p.timestamp for p in packets]
    assert [(t - ts[0]) & 0xFFFFFFFF for t in ts[:4]] == [0, 160, 320, 480]
    # the pause of ~100 ms after the last packet advanced the timestamp too
    assert (ts[4] - ts[3]) & 0xFFFFFFFF >= 780
    assert got[4][0] - got[3][0] >= 0.095


async def test_cancelling_or_stopping_a_play_stops_promptly() -> None:
    a, b = await pair(pool())
    got = recorder(b)
    try:
        task = asyncio.create_task(a.play(clip(500)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not a.playing
        await asyncio.sleep(0.1)
        count = len(got)
        assert 3 <= count <= 16
        await asyncio.sleep(0.1)
        assert len(got) == count
        task2 = asyncio.create_task(a.play(clip(500)))
        await asyncio.sleep(0.1)
        a.stop()
        result = await asyncio.wait_for(task2, 1.0)
        assert not result.completed and 1 <= result.packets <= 12
        await asyncio.sleep(0.1)
        packets = [p for _, p in got]
        assert packets[count].marker
        seqs = [p.sequence for p in packets]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    finally:
        a.close()
        b.close()


async def test_back_to_back_plays_keep_the_20_ms_spacing() -> None:
    a, b = await pair(pool())
    got = recorder(b)
    try:
        for _ in range(3):
            await a.play(clip(2))
        await wait_for(lambda: len(got) >= 6)
    finally:
        a.close()
        b.close()
    times = [t for t, _ in got]
    # each play starts a whole tick after the last packet of the one before: never early
    assert all(t - times[0] >= k * 0.020 - 0.012 for k, t in enumerate(times))
    ts = [p.timestamp for _, p in got]
    assert all(((t2 - t1) & 0xFFFFFFFF) >= 160 for t1, t2 in itertools.pairwise(ts))


async def test_one_play_at_a_time_and_remote_required() -> None:
    p = pool()
    a = await RtpStream.open(p, HOST)
    try:
        with pytest.raises(RtpError, match="set_remote"):
            await a.play(clip(1))
        a.set_remote((HOST, 9), 0)
        task = asyncio.create_task(a.play(clip(20)))
        await asyncio.sleep(0.05)
        with pytest.raises(RtpError, match="already"):
            await a.play(clip(1))
        assert (await task).completed
    finally:
        a.close()
    with pytest.raises(RtpError, match="closed"):
        await a.play(clip(1))


async def test_port_pool_skips_taken_ports_and_exhaustion_raises_rtp_error() -> None:
    p = pool(pairs=3)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind((HOST, p.first + 1))  # the RTCP port of the first pair is taken by "someone"
    streams: list[RtpStream] = []
    try:
        streams.append(await RtpStream.open(p, HOST))
        streams.append(await RtpStream.open(p, HOST))
        ports = sorted(s.local_port for s in streams)
        assert ports == [p.first + 2, p.first + 4]
        with pytest.raises(RtpError, match="no free RTP port"):
            await RtpStream.open(p, HOST)
        streams.pop().close()
        streams.append(await RtpStream.open(p, HOST))
        assert all(s.local_port % 2 == 0 for s in streams)
    finally:
        for s in streams:
            s.close()
        blocker.close()
    assert not p.in_use


async def test_live_play_from_a_queue_with_irregular_arrivals_and_an_underrun() -> None:
    a, b = await pair(pool())
    got = recorder(b)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    frames = [bytes([i]) * 160 for i in range(1, 31)]
    try:
        task = asyncio.create_task(a.play_live(queue))
        for i in range(0, 15, 3):  # bursts of three frames every 60 ms
            for f in frames[i : i + 3]:
                queue.put_nowait(f)
            await asyncio.sleep(0.06)
        await asyncio.sleep(0.2)  # the talker pauses: an underrun
        for f in frames[15:]:
            queue.put_nowait(f[:100])  # odd sizes are re-framed into 160 octets
            queue.put_nowait(f[100:])
            await asyncio.sleep(0.02)
        queue.put_nowait(b"")
        result = await asyncio.wait_for(task, 3.0)
        await asyncio.sleep(0.05)
    finally:
        a.close()
        b.close()
    assert result.completed and result.packets == 30 and result.underruns >= 1
    packets = [p for _, p in got]
    assert [p.payload for p in packets] == frames
    assert packets[0].marker and packets[15].marker
    assert sum(p.marker for p in packets) <= 4
    ts = [p.timestamp for p in packets]
    assert (ts[15] - ts[14]) & 0xFFFFFFFF >= 8000 * 0.15  # silence advanced the timestamp
    arrivals = [t for t, _ in got[:15]]
    gaps = [t2 - t1 for t1, t2 in itertools.pairwise(arrivals)]
    assert sum(g < 0.005 for g in gaps) <= 3  # paced on the clock, not in the bursts they came in


async def test_a_pulled_play_sends_what_the_provider_gives_at_each_slot() -> None:
    """play_pull: a frame per 20 ms slot as the provider decides, a gap where it gives None (the
    timestamp goes on, the next frame is marked), until stopped."""
    a, b = await pair(pool())
    got = recorder(b)
    frames = iter([*(bytes([i]) * 160 for i in range(1, 11)), *([None] * 5),
                   *(bytes([i]) * 160 for i in range(11, 21))])  # fmt: skip
    asked = 0

    def provider() -> bytes | None:
        nonlocal asked
        asked += 1
        return next(frames, None)

    try:
        task = asyncio.create_task(a.play_pull(provider))
        await wait_for(lambda: len(got) >= 20, 3.0)
        await asyncio.sleep(0.1)
        a.stop()
        result = await asyncio.wait_for(task, 3.0)
    finally:
        a.close()
        b.close()
    assert not result.completed and result.packets == 20 and asked >= 25
    packets = [p for _, p in got]
    assert [p.payload[0] for p in packets] == list(range(1, 21))
    assert [i for i, p in enumerate(packets) if p.marker] == [0, 10]
    assert (packets[10].timestamp - packets[9].timestamp) & 0xFFFFFFFF == 6 * 160
    assert [p.sequence for p in packets] == [(packets[0].sequence + i) & 0xFFFF for i in range(20)]
    arrivals = [t for t, _ in got[:10]]
    gaps = [t2 - t1 for t1, t2 in itertools.pairwise(arrivals)]
    assert statistics.median(gaps) == pytest.approx(0.02, abs=0.004)


async def test_live_play_transcodes_alaw_frames_for_a_pcmu_call() -> None:
    a, b = await pair(pool())
    a.set_remote((HOST, b.local_port), 0)
    got = recorder(b)
    pcm = (np.sin(np.arange(800) / 5.0) * 8000).astype(np.int16)
    alaw = g711.alaw_encode(pcm)

    async def frames() -> AsyncIterator[bytes]:
        for i in range(0, 800, 160):
            yield alaw[i : i + 160]

    try:
        result = await asyncio.wait_for(a.play_live(frames(), encoding="PCMU"), 3.0)
        await asyncio.sleep(0.05)
    finally:
        a.close()
        b.close()
    assert result.packets == 5
    assert all(p.payload_type == 0 for _, p in got)
    assert b"".join(p.payload for _, p in got) == g711.ulaw_encode(g711.alaw_decode(alaw))


async def test_live_play_drops_the_oldest_beyond_the_queue_limit() -> None:
    a, b = await pair(pool())
    got = recorder(b)

    async def burst() -> AsyncIterator[bytes]:
        for i in range(40):
            yield bytes([i]) * 160

    try:
        result = await asyncio.wait_for(a.play_live(burst(), max_queue=10), 3.0)
        await asyncio.sleep(0.05)
    finally:
        a.close()
        b.close()
    assert result.dropped == 30 and result.packets == 10
    assert [p.payload[0] for _, p in got] == list(range(30, 40))


async def test_rtcp_sender_and_receiver_reports_and_bye() -> None:
    a, b = await pair(pool(), rtcp_interval=0.25)
    try:
        await a.play(clip(40))
        await wait_for(
            lambda: (
                a.remote_report is not None
                and b.last_sender_report is not None
                and b.last_sender_report.packet_count == 40
            )
        )
        sr = b.last_sender_report
        assert sr is not None and sr.ssrc == a.ssrc and sr.octet_count == 40 * 160
        report = a.remote_report
        assert report is not None and report.cumulative_lost == 0
        assert a.stats.remote_lost == 0 and a.stats.rtcp_sent >= 1
        assert b.stats.rtcp_received >= 1 and a.stats.rtcp_received >= 1
        assert a.last_rtcp is not None and b.last_rtcp is not None
        a.close()
        await wait_for(lambda: b.bye_received)
    finally:
        a.close()
        b.close()


async def test_dtmf_digits_reach_on_digit_once_each() -> None:
    a, b = await pair(pool())
    digits: list[str] = []
    b.on_digit = digits.append
    try:
        sent = await a.send_digits("12#", duration=0.06, pause=0.02)
        await wait_for(lambda: len(digits) >= 3)
        await asyncio.sleep(0.05)
    finally:
        a.close()
        b.close()
    assert digits == ["1", "2", "#"]
    assert sent == 3 * 5


async def test_streams_started_together_share_one_wakeup_per_tick() -> None:
    p = pool(pairs=24)
    sink = await RtpStream.open(p, HOST)
    streams = [await RtpStream.open(p, HOST) for _ in range(20)]
    got = recorder(sink)
    clock = MediaClock()
    try:
        for s in streams:
            s.set_remote((HOST, sink.local_port), 8)
        results = await asyncio.gather(*(s.play(clip(25), clock=clock) for s in streams))
        await asyncio.sleep(0.05)
    finally:
        sink.close()
        for s in streams:
            s.close()
    assert all(r.completed and r.packets == 25 for r in results)
    assert len(got) == 500
    assert clock.stats.wakeups <= 27  # 25 ticks (plus slack), not 20 × 25
    assert not clock.running


async def test_received_audio_goes_through_the_jitter_buffer_in_order_with_loss_concealed() -> None:
    p = pool()
    b = await RtpStream.open(p, HOST)
    b.set_remote((HOST, 9), 8)
    queue = b.audio_queue()
    seen: list[int] = []
    b.on_packet = lambda pkt: seen.append(pkt.sequence)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    order = [0, 1, 3, 2, 4, 6, 7, 8, 9]  # 2 and 3 swapped, 5 lost
    try:
        for k, i in enumerate(order):
            packet = RtpPacket(
                8, 65530 + i & 0xFFFF, 1000 + 160 * i, 77, bytes([i + 1]) * 160, marker=i == 0
            )
            raw.sendto(packet.serialize(), (HOST, b.local_port))
            if k % 2:
                await asyncio.sleep(0.02)
        frames = [await asyncio.wait_for(queue.get(), 1.0) for _ in range(10)]
        assert b.last_received is not None
        stats = b.stats
    finally:
        raw.close()
        b.close()
    assert [f[0] for f in frames] == [1, 2, 3, 4, 5, 0xD5, 7, 8, 9, 10]
    assert stats.packets_received == 9 and stats.packets_lost == 1 and stats.concealed == 1
    assert len(seen) == 9
