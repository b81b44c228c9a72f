"""The pure ingest policies: reconnect backoff, stall detection, the GOP cache, subscriber queues."""

from __future__ import annotations

from fractions import Fraction

import pytest

from video.ingest.backoff import Backoff, StallWatch
from video.ingest.gop import GopCache, PacketHistory, PacketQueue
from video.ingest.source import VideoPacket, redact, with_credentials

TB = Fraction(1, 90000)


def pkt(n: int, key: bool = False, size: int = 10) -> VideoPacket:
    return VideoPacket(bytes([n % 256]) * size, n, n, TB, key, float(n))


class TestBackoff:
    def test_exponential_capped_full_jitter(self) -> None:
        b = Backoff(base=0.5, cap=5.0, stable=30.0)
        delays = [b.failed(float(i), 1.0) for i in range(8)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
        assert b.failed(9.0, 0.0) == 0.0  # full jitter: anywhere in [0, ceiling]
        assert b.failed(10.0, 0.5) == 2.5

    def test_reset_after_stable_period(self) -> None:
        b = Backoff(base=1.0, cap=8.0, stable=30.0)
        for i in range(4):
            b.failed(float(i), 1.0)
        b.connected(100.0)
        assert b.failed(110.0, 1.0) == 8.0  # up 10 s only: keeps backing off
        b.connected(200.0)
        assert b.failed(230.0, 1.0) == 1.0  # up 30 s: starts over

    def test_huge_attempt_count_stays_capped(self) -> None:
        b = Backoff(base=1.0, cap=5.0)
        for i in range(2000):
            assert b.failed(float(i), 1.0) <= 5.0

    @pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0)])
    def test_bad_parameters(self, base: float, cap: float) -> None:
        with pytest.raises(ValueError):
            Backoff(base=base, cap=cap)

    def test_bad_draw(self) -> None:
        with pytest.raises(ValueError):
            Backoff().failed(0.0, 1.5)


class TestStallWatch:
    def test_deadline_moves_with_packets(self) -> None:
        w = StallWatch(5.0, 100.0)
        assert w.deadline == 105.0
        assert not w.expired(104.9)
        w.seen(104.0)
        assert not w.expired(108.9)
        assert w.expired(109.0)

    def test_positive_timeout(self) -> None:
        with pytest.raises(ValueError):
            StallWatch(0.0, 0.0)


class TestGopCache:
    def test_starts_at_keyframe(self) -> None:
        g = GopCache()
        g.add(pkt(1))
        g.add(pkt(2))
        assert g.packets() == ()
        g.add(pkt(3, key=True))
        g.add(pkt(4))
        assert [p.pts for p in g.packets()] == [3, 4]
        g.add(pkt(5, key=True))
        assert [p.pts for p in g.packets()] == [5]
        assert g.keyframe is not None and g.keyframe.pts == 5

    def test_oversized_gop_is_dropped_until_next_keyframe(self) -> None:
        g = GopCache(max_packets=3)
        g.add(pkt(1, key=True))
        for n in range(2, 5):
            g.add(pkt(n))
        assert g.packets() == ()
        g.add(pkt(5))
        assert g.packets() == ()
        g.add(pkt(6, key=True))
        assert len(g) == 1

    def test_byte_limit(self) -> None:
        g = GopCache(max_bytes=25)
        g.add(pkt(1, key=True, size=10))
        g.add(pkt(2, size=10))
        assert len(g) == 2
        g.add(pkt(3, size=10))
        assert len(g) == 0


def stream(seconds: float, gop: int = 50, fps: int = 25, size: int = 10) -> list[VideoPacket]:
    """``seconds`` of a 25 fps stream, a keyframe every ``gop`` frames, ``arrived`` in seconds."""
    out = []
    for n in range(int(seconds * fps)):
        p = pkt(n, key=n % gop == 0, size=size)
        out.append(VideoPacket(p.data, p.pts, p.dts, p.time_base, p.keyframe, n / fps))
    return out


class TestPacketHistory:
    def test_a_clip_starts_on_a_keyframe_and_covers_the_seconds_asked(self) -> None:
        h = PacketHistory(10.0)
        packets = stream(30)  # 0 … 29.96 s, keyframes every 2 s
        for p in packets:
            h.add(p)
        now = packets[-1].arrived
        clip = h.since(5.0, now)
        assert clip[0].keyframe
        assert clip[0].arrived <= now - 5.0  # at least 5 s
        assert clip[0].arrived > now - 5.0 - 2.0  # and less than one GOP more
        assert clip[-1] is packets[-1]
        assert list(clip) == packets[packets.index(clip[0]) :]  # whole, in order

    def test_it_keeps_only_the_seconds_it_was_made_for(self) -> None:
        h = PacketHistory(6.0)
        packets = stream(30)
        for p in packets:
            h.add(p)
        now = packets[-1].arrived
        oldest = h.since(1000.0, now)[0]
        assert oldest.keyframe and now - 6.0 - 2.0 < oldest.arrived <= now - 6.0
        assert h.nbytes == sum(len(p.data) for p in h.since(1000.0, now))

    def test_bytes_are_bounded_but_the_newest_gop_stays(self) -> None:
        h = PacketHistory(60.0, max_bytes=2000)
        packets = stream(20, size=30)  # 1,500 bytes per GOP
        for p in packets:
            h.add(p)
        kept = h.since(60.0, packets[-1].arrived)
        assert kept[0].keyframe and h.nbytes <= 2000
        assert kept[-1] is packets[-1]
        big = PacketHistory(60.0, max_bytes=10)
        for p in packets:
            big.add(p)
        assert big.since(60.0, packets[-1].arrived)[0] is packets[-50]  # the current GOP only

    def test_nothing_before_the_first_keyframe_and_nothing_after_clear(self) -> None:
        h = PacketHistory(10.0)
        for p in stream(3)[1:40]:  # starts mid-GOP: the first keyframe is packet 50
            h.add(p)
        assert h.since(10.0, 2.0) == () and h.nbytes == 0
        for p in stream(3):
            h.add(p)
        assert h.since(10.0, 3.0)
        h.clear()
        assert h.since(10.0, 3.0) == () and h.nbytes == 0

    def test_seconds_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            PacketHistory(0)


class TestPacketQueue:
    def test_waits_for_keyframe_when_unprimed(self) -> None:
        q = PacketQueue(4)
        q.prime(())
        assert not q.push(pkt(1))
        assert q.push(pkt(2, key=True))
        assert q.push(pkt(3))
        assert [q.pop(), q.pop(), q.pop()] == [pkt(2, key=True), pkt(3), None]
        assert q.dropped == 1

    def test_primed_gop_may_exceed_maxsize(self) -> None:
        q = PacketQueue(2)
        q.prime([pkt(1, key=True), pkt(2), pkt(3)])
        assert len(q) == 3
        assert q.pop() == pkt(1, key=True)

    def test_overflow_drops_backlog_and_resumes_at_keyframe(self) -> None:
        q = PacketQueue(3)
        q.prime([pkt(1, key=True)])
        q.push(pkt(2))
        q.push(pkt(3))
        assert not q.push(pkt(4))  # full: the backlog goes, and 4 cannot decode alone
        assert len(q) == 0
        assert not q.push(pkt(5))
        assert q.push(pkt(6, key=True))
        assert q.dropped == 5
        assert q.pop() == pkt(6, key=True)

    def test_overflow_on_keyframe_keeps_it(self) -> None:
        q = PacketQueue(2)
        q.prime([pkt(1, key=True), pkt(2)])
        assert q.push(pkt(3, key=True))
        assert q.pop() == pkt(3, key=True)
        assert q.pop() is None
        assert q.dropped == 2

    def test_restart_waits_for_the_new_keyframe(self) -> None:
        q = PacketQueue(8)
        q.prime([pkt(1, key=True)])
        q.restart()
        assert not q.push(pkt(2))
        assert q.push(pkt(3, key=True))
        assert [p.pts for p in (q.pop(), q.pop())] == [1, 3]


class TestUrls:
    def test_redact(self) -> None:
        assert (
            redact("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
        )
        assert redact("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"

    def test_with_credentials(self) -> None:
        url = with_credentials("rtsp://h/x", "a b", "p@ss:w")
        assert url == "rtsp://a%20b:p%40ss%3Aw@h/x"
        assert "s3cret" not in redact(with_credentials("rtsp://h/x", "u", "s3cret"))
        assert with_credentials("rtsp://u:p@h/x", "v", "q") == "rtsp://u:p@h/x"
