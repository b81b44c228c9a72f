"""``CameraFeed``'s own logic — fan-out, GOP cache, linger, pinning, reconnect, stall — with a fake
``Source``.

The source here is a fake on purpose: these tests exercise the feed's logic (which does not care
where packets come from), not RTSP; the real RTSP tests are in ``test_ingest_rtsp.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from fractions import Fraction

import pytest

from video.ingest.backoff import Backoff
from video.ingest.camera import CameraFeed, CameraState, CameraStatus, Subscription
from video.ingest.source import Reason, SourceError, StreamInfo, VideoPacket

TB = Fraction(1, 90000)
INFO = StreamInfo("h264", 1280, 720, TB, b"")


class FakeSource:
    """Packets are whatever the test puts in ``queue`` (None ends the stream, a SourceError fails
    it); ``fail_open`` makes ``open`` raise."""

    def __init__(self, fail_open: SourceError | None = None) -> None:
        self.queue: asyncio.Queue[VideoPacket | SourceError | None] = asyncio.Queue()
        self.fail_open = fail_open
        self.opened = False
        self.closed = False

    async def open(self) -> StreamInfo:
        if self.fail_open is not None:
            raise self.fail_open
        self.opened = True
        return INFO

    async def packets(self) -> AsyncIterator[VideoPacket]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, SourceError):
                raise item
            yield item

    async def close(self) -> None:
        self.closed = True


class Factory:
    def __init__(self) -> None:
        self.sources: list[FakeSource] = []
        self.fail: list[SourceError | None] = []

    def __call__(self) -> FakeSource:
        source = FakeSource(self.fail.pop(0) if self.fail else None)
        self.sources.append(source)
        return source

    @property
    def last(self) -> FakeSource:
        return self.sources[-1]


def pkt(n: int, key: bool = False) -> VideoPacket:
    return VideoPacket(bytes([n]), n, n, TB, key, 0.0)


def feed_for(factory: Factory, **kw: object) -> tuple[CameraFeed, list[CameraStatus]]:
    changes: list[CameraStatus] = []
    defaults: dict[str, object] = {
        "linger": 0.2,
        "stall_timeout": 5.0,
        "backoff": Backoff(base=0.01, cap=0.05),
        "on_change": changes.append,
    }
    defaults.update(kw)
    return CameraFeed("cam1", factory, **defaults), changes  # type: ignore[arg-type]


async def until(predicate: object, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def take(sub: Subscription, n: int) -> list[int | None]:
    out: list[int | None] = []
    async with asyncio.timeout(3.0):
        async for packet in sub:
            out.append(packet.pts)
            if len(out) == n:
                break
    return out


async def test_one_session_for_many_subscribers_and_fan_out() -> None:
    factory = Factory()
    feed, changes = feed_for(factory)
    assert not feed.active and factory.sources == []
    a = feed.subscribe()
    b = feed.subscribe()
    await until(lambda: feed.status.state is CameraState.ONLINE)
    assert len(factory.sources) == 1 and feed.sessions == 1
    for n, key in ((1, True), (2, False), (3, False)):
        factory.last.queue.put_nowait(pkt(n, key))
    assert await take(a, 3) == [1, 2, 3]
    assert await take(b, 3) == [1, 2, 3]
    assert feed.sessions == 1
    assert [c.state for c in changes] == [CameraState.ONLINE]  # it started as connecting
    await feed.close()
    assert factory.last.closed


async def test_new_subscriber_starts_with_cached_gop() -> None:
    factory = Factory()
    feed, _ = feed_for(factory)
    first = feed.subscribe()
    await until(lambda: feed.status.state is CameraState.ONLINE)
    for n, key in ((1, False), (2, True), (3, False), (4, False)):
        factory.last.queue.put_nowait(pkt(n, key))
    assert await take(first, 3) == [2, 3, 4]  # 1 came before any keyframe: nothing decodes it
    late = feed.subscribe()
    assert await take(late, 3) == [2, 3, 4]
    factory.last.queue.put_nowait(pkt(5))
    assert await take(late, 1) == [5]
    await feed.close()


async def test_linger_then_close_and_resubscribe_within_linger() -> None:
    factory = Factory()
    feed, _ = feed_for(factory, linger=0.3)
    sub = feed.subscribe()
    await until(lambda: feed.status.state is CameraState.ONLINE)
    sub.close()
    await asyncio.sleep(0.1)
    assert feed.active and not factory.last.closed
    again = feed.subscribe()  # came back within the linger: same session
    await asyncio.sleep(0.4)
    assert feed.active and len(factory.sources) == 1
    again.close()
    await until(lambda: factory.last.closed)
    assert not feed.active
    await feed.close()


async def test_pinned_feed_stays_open() -> None:
    factory = Factory()
    feed, _ = feed_for(factory, pinned=True, linger=0.05)
    await until(lambda: feed.status.state is CameraState.ONLINE)
    feed.subscribe().close()
    await asyncio.sleep(0.2)
    assert feed.active and not factory.last.closed
    feed.pin(False)
    await until(lambda: not feed.active)
    await feed.close()


async def test_reconnects_forever_with_reason() -> None:
    factory = Factory()
    factory.fail = [SourceError(Reason.REFUSED), SourceError(Reason.UNAUTHORIZED)]
    feed, changes = feed_for(factory)
    sub = feed.subscribe()
    await until(lambda: feed.status.state is CameraState.ONLINE)
    assert [(c.state, c.reason) for c in changes] == [
        (CameraState.OFFLINE, Reason.REFUSED),
        (CameraState.OFFLINE, Reason.UNAUTHORIZED),
        (CameraState.ONLINE, None),
    ]
    assert [s.closed for s in factory.sources] == [True, True, False]
    factory.last.queue.put_nowait(SourceError(Reason.ERROR, "boom"))
    await until(lambda: len(factory.sources) == 4 and feed.status.state is CameraState.ONLINE)
    factory.last.queue.put_nowait(pkt(7, True))
    assert await take(sub, 1) == [7]  # the subscription lives across reconnects
    await feed.close()


async def test_stall_reconnects() -> None:
    factory = Factory()
    feed, changes = feed_for(factory, stall_timeout=0.3)
    feed.subscribe()
    await until(lambda: feed.status.state is CameraState.ONLINE)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(5):  # packets keep it alive past the stall timeout
        factory.last.queue.put_nowait(pkt(n, n == 0))
        await asyncio.sleep(0.1)
    assert len(factory.sources) == 1
    await until(lambda: any(c.reason is Reason.STALLED for c in changes))
    assert loop.time() - start >= 0.5
    assert factory.sources[0].closed
    await until(lambda: len(factory.sources) == 2 and feed.status.state is CameraState.ONLINE)
    await feed.close()


async def test_slow_subscriber_drops_fast_one_does_not() -> None:
    factory = Factory()
    feed, _ = feed_for(factory)
    fast = feed.subscribe(maxsize=100)
    slow = feed.subscribe(maxsize=4)
    await until(lambda: feed.status.state is CameraState.ONLINE)
    for n in range(20):
        factory.last.queue.put_nowait(pkt(n, n % 10 == 0))
    assert await take(fast, 20) == list(range(20))
    assert len(slow.queue) <= 4 and slow.dropped > 0
    factory.last.queue.put_nowait(pkt(20, True))
    assert await take(slow, 1) == [20]  # its backlog went: it resumes at the newest keyframe
    assert await take(fast, 1) == [20]
    await feed.close()


async def test_close_ends_subscriptions() -> None:
    factory = Factory()
    feed, _ = feed_for(factory)
    sub = feed.subscribe()
    await until(lambda: feed.status.state is CameraState.ONLINE)
    reader = asyncio.ensure_future(take(sub, 10))
    await asyncio.sleep(0.05)
    await feed.close()
    assert await reader == []
    assert not feed.active and factory.last.closed
    with pytest.raises(RuntimeError):
        feed.subscribe()
