"""The pure jitter buffer on a fake clock: order, duplicates, loss, wrap-around, adaptive delay."""

from __future__ import annotations

import itertools
import random

import pytest

from telephony.rtp.jitter import Frame, JitterBuffer

PT = 0.020


def payload(n: int) -> bytes:
    return bytes([n & 0xFF]) * 160


def drain(jb: JitterBuffer, until: float, step: float = 0.001) -> list[Frame]:
    """Pop at every deadline up to ``until`` (bounded), checking frames never come early."""
    out: list[Frame] = []
    for _ in range(100_000):
        deadline = jb.next_deadline()
        if deadline is None or deadline > until:
            break
        frames = jb.pop(deadline)
        assert frames, "a deadline with nothing due"
        for f in frames:
            assert f.playout_at <= deadline + 1e-9
        out += frames
    return out


def feed(
    jb: JitterBuffer,
    order: list[int],
    *,
    seq0: int = 0,
    ts0: int = 0,
    t0: float = 0.0,
    delays: dict[int, float] | None = None,
) -> list[Frame]:
    """Packets i of ``order`` sent at t0 + i*PT, arriving after ``delays[i]`` (default 0)."""
    delays = delays or {}
    events = sorted((t0 + i * PT + delays.get(i, 0.0), k, i) for k, i in enumerate(order))
    out: list[Frame] = []
    for arrival, _, i in events:
        out += drain(jb, arrival)
        jb.push((seq0 + i) & 0xFFFF, (ts0 + 160 * i) & 0xFFFFFFFF, payload(i), arrival)
    out += drain(jb, 1e9)
    return out


def test_in_order_stream_plays_every_frame_at_the_target_delay() -> None:
    jb = JitterBuffer(min_delay=0.04)
    frames = feed(jb, list(range(50)))
    assert [f.sequence for f in frames] == list(range(50))
    assert [f.payload for f in frames] == [payload(i) for i in range(50)]
    for i, f in enumerate(frames):
        assert f.playout_at == pytest.approx(i * PT + 0.04)
    assert jb.stats.played == 50 and jb.stats.concealed == 0
    assert jb.next_deadline() is None


def test_reordered_packets_play_in_sequence_order() -> None:
    order = list(range(40))
    order[10], order[11] = order[11], order[10]
    order[20], order[23] = order[23], order[20]
    jb = JitterBuffer(min_delay=0.06)
    delays = {10: 0.025, 20: 0.05}
    frames = feed(jb, order, delays=delays)
    assert [f.sequence for f in frames] == list(range(40))
    assert not any(f.lost for f in frames)
    assert jb.stats.reordered >= 2


def test_duplicates_are_dropped() -> None:
    jb = JitterBuffer()
    assert jb.push(5, 800, payload(5), 0.0)
    assert not jb.push(5, 800, payload(5), 0.001)
    assert jb.push(6, 960, payload(6), 0.02)
    assert not jb.push(6, 960, payload(6), 0.021)
    frames = drain(jb, 1.0)
    assert [f.sequence for f in frames] == [5, 6]
    assert not jb.push(5, 800, payload(5), 1.0)  # already played: too late
    assert jb.stats.duplicates == 2 and jb.stats.too_late == 1


def test_lost_packets_become_concealment_frames_at_their_slot() -> None:
    jb = JitterBuffer(min_delay=0.04)
    sent = [i for i in range(30) if i not in (7, 12, 13)]
    frames = feed(jb, sent)
    assert [f.sequence for f in frames] == list(range(30))
    assert [f.sequence for f in frames if f.lost] == [7, 12, 13]
    for i, f in enumerate(frames):
        assert f.timestamp == 160 * i
        assert f.playout_at == pytest.approx(i * PT + 0.04)
    assert jb.stats.concealed == 3


def test_a_long_gap_is_concealed_up_to_max_conceal_then_skipped() -> None:
    jb = JitterBuffer(max_conceal=4)
    sent = [0, 1, 2, *range(20, 25)]
    frames = feed(jb, sent)
    assert [f.sequence for f in frames if f.lost] == [3, 4, 5, 6]
    assert [f.sequence for f in frames if not f.lost] == sent
    assert jb.stats.skipped == 13


def test_sequence_and_timestamp_wrap_around() -> None:
    jb = JitterBuffer()
    order = list(range(20))
    order[5], order[6] = order[6], order[5]  # reordered across the wrap
    frames = feed(jb, order, seq0=0xFFFA, ts0=0xFFFFFFFF - 800)
    seqs = [f.sequence & 0xFFFF for f in frames]
    assert seqs == [(0xFFFA + i) & 0xFFFF for i in range(20)]
    assert [f.timestamp & 0xFFFFFFFF for f in frames] == [
        (0xFFFFFFFF - 800 + 160 * i) & 0xFFFFFFFF for i in range(20)
    ]
    assert not any(f.lost for f in frames)


def test_silence_without_a_sequence_gap_is_not_concealed_and_marker_reanchors() -> None:
    jb = JitterBuffer(min_delay=0.04)
    out: list[Frame] = []
    for i in range(5):
        out += drain(jb, i * PT)
        jb.push(i, 160 * i, payload(i), i * PT)
    out += drain(jb, 2.0)
    # a second talkspurt after 2 s of silence: the sequence continues, the timestamp jumped
    for k in range(5):
        t = 2.0 + k * PT
        out += drain(jb, t)
        jb.push(5 + k, 16000 + 160 * k, payload(5 + k), t + 0.003, marker=k == 0)
    out += drain(jb, 10.0)
    assert [f.sequence for f in out] == list(range(10))
    assert not any(f.lost for f in out)
    assert out[5].playout_at == pytest.approx(2.003 + jb.delay)


def test_late_packets_raise_the_delay_within_bounds_and_calm_traffic_lowers_it() -> None:
    jb = JitterBuffer(min_delay=0.02, max_delay=0.1, settle_frames=50)
    rng = random.Random(7)
    delays = {i: rng.choice((0.0, 0.0, 0.0, 0.045)) for i in range(200)}
    frames = feed(jb, list(range(200)), delays=delays)
    assert jb.stats.too_late + jb.stats.late > 0
    raised = jb.delay
    assert 0.02 < raised <= 0.1
    assert len(frames) == 200
    assert jb.stats.concealed + jb.stats.played == 200
    # after the first misses the delay has grown: later late packets are played, not dropped
    assert jb.stats.too_late <= 3 and jb.stats.played >= 195
    calm = JitterBuffer(min_delay=0.02, max_delay=0.1, settle_frames=50, initial_delay=0.1)
    feed(calm, list(range(600)))
    assert calm.delay < 0.1


def test_big_jump_resynchronises() -> None:
    jb = JitterBuffer(capacity=32)
    jb.push(100, 0, payload(0), 0.0)
    drain(jb, 0.5)
    jb.push(9000, 500_000, payload(1), 0.52)
    frames = drain(jb, 2.0)
    assert [f.sequence & 0xFFFF for f in frames] == [9000]
    assert jb.stats.resyncs == 1


def test_random_order_loss_and_duplicates_keep_the_invariants() -> None:
    rng = random.Random(3)
    for _ in range(20):
        jb = JitterBuffer(min_delay=0.06, max_delay=0.2)
        n = 300
        sent = [i for i in range(n) if rng.random() > 0.05]
        sent += rng.sample(sent, 10)  # duplicates
        delays = {i: rng.uniform(0, 0.05) for i in range(n)}
        frames = feed(
            jb, sent, seq0=rng.randrange(65536), ts0=rng.randrange(1 << 32), delays=delays
        )
        seqs = [f.sequence for f in frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        times = [f.playout_at for f in frames]
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(times))
        assert jb.stats.duplicates + jb.stats.too_late >= 10
