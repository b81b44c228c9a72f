"""The bus: MemoryBus in one process; RedisBus between two instances ("two processes") on a real
``redis-server``, including the server killed, frozen and restarted under them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import statistics
import struct
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hub.live.bus import Bus, BusHandler, MemoryBus, RedisBus, create_bus, redact
from tests.redis_fixture import RedisServer, redis_running, redis_server  # noqa: F401

PASSWORD = "s3cr3t-Pw"


async def until(pred: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``pred()`` holds; fails after ``timeout`` s (polls at most every 10 ms)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(int(timeout / 0.01) + 2):
        if pred():
            return loop.time() - t0
        if loop.time() - t0 > timeout:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout} s")


class Inbox:
    """What one bus delivered, per topic, and its state changes."""

    def __init__(self, bus: Bus, *topics: str) -> None:
        self.bus = bus
        self.got: dict[str, list[bytes]] = defaultdict(list)
        self.states: list[bool] = []
        bus.on_state(self.states.append)
        for topic in topics:
            bus.subscribe(topic, self.handler(topic))

    def handler(self, topic: str) -> BusHandler:
        return self.got[topic].append


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Whatever reaches the loop's exception handler (an exception nobody handled)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        yield errors
    finally:
        loop.set_exception_handler(old)


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[Inbox, Inbox]]:  # noqa: F811
    a, b = RedisBus(redis_server.url), RedisBus(redis_server.url)
    ia, ib = Inbox(a, "t", "other"), Inbox(b, "t")
    try:
        await a.start()
        await b.start()
        assert a.healthy and b.healthy
        yield ia, ib
    finally:
        await a.close()
        await b.close()


# -- MemoryBus ---------------------------------------------------------------------------------


async def test_memory_bus_order_and_isolation_per_topic() -> None:
    bus = MemoryBus()
    inbox = Inbox(bus, "a", "b")
    second: list[bytes] = []
    bus.subscribe("a", second.append)
    await bus.start()
    for i in range(100):
        assert bus.publish("a" if i % 3 else "b", b"%d" % i)
    assert bus.publish("nobody", b"x")
    assert not inbox.got["a"], "delivered later (call_soon), never inside publish()"
    await until(lambda: len(inbox.got["a"]) == 66, 1, "memory delivery")
    await asyncio.sleep(0.01)
    assert inbox.got["a"] == [b"%d" % i for i in range(100) if i % 3]
    assert inbox.got["b"] == [b"%d" % i for i in range(100) if not i % 3]
    assert second == inbox.got["a"]
    assert bus.healthy and bus.name == "memory" and inbox.states == []
    await bus.close()


async def test_memory_bus_a_failing_handler_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MemoryBus()

    def boom(payload: bytes) -> None:
        raise RuntimeError("boom")

    got: list[bytes] = []
    bus.subscribe("a", boom)
    bus.subscribe("a", got.append)
    bus.publish("a", b"1")
    await until(lambda: got == [b"1"], 1, "second handler")
    assert "bus handler failed" in caplog.text


def test_create_bus_and_redact() -> None:
    assert isinstance(create_bus(""), MemoryBus)
    bus = create_bus("redis://:pw@127.0.0.1:6379/0")
    assert isinstance(bus, RedisBus) and bus.name == "redis" and not bus.healthy
    assert not bus.publish("t", b"x"), "not started: refused"
    with pytest.raises(ValueError, match=r"\*\*\*\*") as err:
        RedisBus("http://:hunter2@example.com/")
    assert "hunter2" not in str(err.value)
    cases = {
        "redis://:hunter2@host:6379/0": "redis://:****@host:6379/0",
        "redis://user:hunter2@host:6379/1": "redis://user:****@host:6379/1",
        "rediss://default:p%40ss@h/0": "rediss://default:****@h/0",
        "redis://:p@ss/w:rd@host:6379/0": "redis://:****@host:6379/0",
        "redis://hunter2@host": "redis://****@host",
        "redis://host:6379/0": "redis://host:6379/0",
        "unix:///run/redis.sock?db=1&password=hunter2": "unix:///run/redis.sock?db=1&password=****",
        "unix://:hunter2@/run/redis.sock": "unix://:****@/run/redis.sock",
        "": "",
    }
    for url, expected in cases.items():
        assert redact(url) == expected, url


# -- RedisBus ----------------------------------------------------------------------------------


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def test_redis_1000_messages_in_order(pair: tuple[Inbox, Inbox]) -> None:
    ia, ib = pair
    for i in range(1000):  # published at once: pipelined
        assert ia.bus.publish("t", b"%d" % i)
    await until(lambda: len(ib.got["t"]) == 1000 and len(ia.got["t"]) == 1000, 10, "1,000")
    expected = [b"%d" % i for i in range(1000)]
    assert ib.got["t"] == expected, "B: all, in order"
    assert ia.got["t"] == expected, "A: its own too, through Redis"
    assert ia.got["other"] == []


async def test_redis_latency(pair: tuple[Inbox, Inbox]) -> None:
    """publish() on A -> handler on B, over 1,000 messages: one in flight at a time, then a burst
    of 1,000 published at once (which measures throughput more than latency)."""
    ia, ib = pair
    recv: list[tuple[int, int]] = []  # (sent, received), ns
    arrived = asyncio.Event()

    def on_b(payload: bytes) -> None:
        recv.append((struct.unpack("!q", payload)[0], time.perf_counter_ns()))
        arrived.set()

    ib.bus.subscribe("lat", on_b)
    for _ in range(200):  # until the SUBSCRIBE (sent while connected) has taken effect
        ia.bus.publish("lat", struct.pack("!q", time.perf_counter_ns()))
        if recv:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    recv.clear()
    for _ in range(1000):
        arrived.clear()
        assert ia.bus.publish("lat", struct.pack("!q", time.perf_counter_ns()))
        await asyncio.wait_for(arrived.wait(), 2)
    lat = [(r - s) / 1e6 for s, r in recv]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    recv.clear()
    for _ in range(1000):
        assert ia.bus.publish("lat", struct.pack("!q", time.perf_counter_ns()))
    await until(lambda: len(recv) == 1000, 10, "burst")
    burst = [(r - s) / 1e6 for s, r in recv]
    print(
        f"\nRedisBus A->B latency, 1,000 one at a time: p50 {p50:.3f} ms, p99 {p99:.3f} ms;"
        f" a burst of 1,000: p50 {percentile(burst, 50):.1f} ms, p99 {percentile(burst, 99):.1f} ms"
    )
    assert p50 < 20 and max(burst) < 5000


async def test_redis_publish_from_b_reaches_a_and_unsubscribed_topics_get_nothing(
    pair: tuple[Inbox, Inbox],
) -> None:
    ia, ib = pair
    assert ib.bus.publish("other", b"not for B")  # B is not subscribed to "other"
    assert ib.bus.publish("t", b"from B")
    await until(lambda: ia.got["t"] == [b"from B"] and ib.got["t"] == [b"from B"], 5, "B -> A")
    assert ia.got["other"] == [b"not for B"]
    assert "other" not in ib.got  # one connection, one order: "other" would have come first
    assert ia.states == ib.states == [True]


async def test_redis_subscribe_while_connected_and_close_flushes(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    a, b = RedisBus(redis_server.url), RedisBus(redis_server.url)
    ib = Inbox(b)
    await a.start()
    await b.start()
    try:
        b.subscribe("late", ib.handler("late"))
        for _ in range(200):  # the SUBSCRIBE is on its way: publish until it has taken effect
            a.publish("late", b"probe")
            if ib.got["late"]:
                break
            await asyncio.sleep(0.01)
        assert ib.got["late"], "a topic subscribed while connected never received anything"
        await asyncio.sleep(0.1)  # probes still in flight
        ib.got["late"].clear()
        for i in range(100):
            assert a.publish("late", b"%d" % i)
        await a.close()  # sends what is queued before closing
        assert not a.publish("late", b"after close")
        await until(lambda: len(ib.got["late"]) == 100, 5, "flushed on close")
        assert ib.got["late"] == [b"%d" % i for i in range(100)]
    finally:
        await a.close()
        await b.close()


async def test_redis_full_queue_refuses(pair: tuple[Inbox, Inbox]) -> None:
    ia, ib = pair
    bus = ia.bus
    assert isinstance(bus, RedisBus)
    results = [bus.publish("t", b"%d" % i) for i in range(10_001)]  # no await: nothing is sent
    assert results[:10_000] == [True] * 10_000 and results[10_000] is False
    assert bus.dropped == 1
    await until(lambda: len(ib.got["t"]) == 10_000, 20, "10,000 delivered")
    assert ib.got["t"] == [b"%d" % i for i in range(10_000)]
    assert bus.publish("t", b"again")


async def test_redis_killed_then_restarted(
    caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
) -> None:
    caplog.set_level(logging.DEBUG, logger="cityhub.bus")
    with redis_running(password=PASSWORD) as server:
        a, b = RedisBus(server.url), RedisBus(server.url)
        ia, ib = Inbox(a, "t"), Inbox(b, "t")
        try:
            await a.start()
            await b.start()
            assert a.healthy and b.healthy
            a.publish("t", b"before")
            await until(lambda: ib.got["t"] == [b"before"], 5, "before the outage")

            server.kill()
            took = await until(lambda: not a.healthy and not b.healthy, 3, "both unhealthy")
            print(f"\nkilled: both unhealthy after {took:.3f} s")
            assert not a.publish("t", b"lost") and not b.publish("t", b"lost")
            await asyncio.sleep(1.0)  # a few failed reconnects: still one False each
            assert ia.states == ib.states == [True, False]

            server.start()  # same port
            took = await until(lambda: a.healthy and b.healthy, 10, "both healthy again")
            print(f"restarted: both healthy after {took:.3f} s")
            assert ia.states == ib.states == [True, False, True]
            assert b.publish("t", b"after")
            await until(lambda: ia.got["t"][-1:] == ib.got["t"][-1:] == [b"after"], 5, "after")
            assert ib.got["t"] == [b"before", b"after"]
        finally:
            await a.close()
            await b.close()
    assert not loop_errors
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]  # one per bus and outage
    assert "redis://:****@127.0.0.1" in warnings[0].getMessage()
    assert PASSWORD not in caplog.text


async def test_redis_frozen_server_is_noticed_when_idle(loop_errors: list[dict[str, Any]]) -> None:
    """SIGSTOP: the sockets stay open but nothing answers; only the PINGs can tell."""
    with redis_running() as server:
        bus = RedisBus(server.url)
        inbox = Inbox(bus, "t")
        assert server.proc is not None
        pid = server.proc.pid
        try:
            await bus.start()
            await asyncio.sleep(1.0)  # idle
            os.kill(pid, signal.SIGSTOP)
            took = await until(lambda: not bus.healthy, 3, "unhealthy while frozen")
            print(f"\nfrozen: unhealthy after {took:.3f} s")
            os.kill(pid, signal.SIGCONT)
            await until(lambda: bus.healthy, 10, "healthy after thaw")
            assert inbox.states == [True, False, True]
            bus.publish("t", b"x")
            await until(lambda: inbox.got["t"] == [b"x"], 5, "self-delivery")
        finally:
            os.kill(pid, signal.SIGCONT)
            await bus.close()
    assert not loop_errors


async def test_redis_start_with_nothing_listening(loop_errors: list[dict[str, Any]]) -> None:
    with redis_running(start=False) as server:
        bus = RedisBus(server.url)
        inbox = Inbox(bus, "t")
        try:
            t0 = time.monotonic()
            await bus.start()  # does not raise
            assert time.monotonic() - t0 < 2
            assert not bus.healthy and not bus.publish("t", b"x") and inbox.states == []
            await asyncio.sleep(0.5)
            server.start()
            await until(lambda: bus.healthy, 10, "healthy once a server appears")
            assert inbox.states == [True]
            assert bus.publish("t", b"y")
            await until(lambda: inbox.got["t"] == [b"y"], 5, "self-delivery")
        finally:
            await bus.close()
    assert not loop_errors


def test_the_fixture_leaves_nothing_running() -> None:
    with redis_running() as server:
        pid = server.proc.pid if server.proc else 0
        server.restart()
        assert server.answers()
    assert not server.running() and not server.answers()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
