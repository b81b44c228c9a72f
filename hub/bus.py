"""The bus between hub processes: it fans out, nothing more.

PostgreSQL holds the truth; a process that misses bus messages catches up from ``live_log``. So the
bus may lose messages during an outage, but it must say so: ``healthy`` turns False (and the state
handlers are called) on any connection fault, and True again once it is back and subscribed.

- ``MemoryBus``: one process; ``publish`` delivers to local subscribers with ``loop.call_soon``, in
  order. Always healthy.
- ``RedisBus``: Redis pub/sub. One connection subscribes (a reader task), one publishes (a writer task
  that drains a bounded queue, pipelining what is waiting). Messages this process publishes come back
  to it through Redis like anyone else's, so every process sees one order. On a fault: unhealthy,
  the outgoing queue dropped, reconnect with exponential backoff and jitter; a dead server is noticed
  within about two seconds even when idle (health-check pings and socket timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("cityhub.bus")

BusHandler = Callable[[bytes], None]
StateHandler = Callable[[bool], None]
OUT_QUEUE = 10_000


def redact(url: str) -> str:
    """The URL without its password (for logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", url)


class Bus(Protocol):
    name: str

    @property
    def healthy(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def publish(self, topic: str, payload: bytes) -> bool: ...

    def subscribe(self, topic: str, handler: BusHandler) -> None: ...

    def on_state(self, handler: StateHandler) -> None: ...


class MemoryBus:
    name = "memory"

    def __init__(self) -> None:
        self._handlers: dict[str, list[BusHandler]] = {}

    @property
    def healthy(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()

    def publish(self, topic: str, payload: bytes) -> bool:
        loop = asyncio.get_running_loop()
        for handler in self._handlers.get(topic, ()):
            loop.call_soon(handler, payload)
        return True

    def subscribe(self, topic: str, handler: BusHandler) -> None:
        self._handlers.setdefault(topic, []).append(handler)

    def on_state(self, handler: StateHandler) -> None:
        return None


class RedisBus:
    name = "redis"

    def __init__(self, url: str, *, reconnect_min: float = 0.1, reconnect_max: float = 5.0) -> None:
        self._url = url
        self._min = reconnect_min
        self._max = reconnect_max
        self._handlers: dict[str, list[BusHandler]] = {}
        self._state_handlers: list[StateHandler] = []
        self._healthy = False
        self._out: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(OUT_QUEUE)
        self._task: asyncio.Task[None] | None = None
        self._resubscribe = asyncio.Event()

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _set_healthy(self, value: bool) -> None:
        if value == self._healthy:
            return
        self._healthy = value
        if not value:
            log.warning(
                "bus: Redis at %s unavailable; serving local clients only", redact(self._url)
            )
        else:
            log.info("bus: Redis at %s connected", redact(self._url))
        for handler in list(self._state_handlers):
            try:
                handler(value)
            except Exception:
                log.exception("bus state handler failed")

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-bus")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        self._healthy = False

    def publish(self, topic: str, payload: bytes) -> bool:
        if not self._healthy:
            return False
        try:
            self._out.put_nowait((topic, payload))
        except asyncio.QueueFull:
            log.warning("bus: outgoing queue full; dropping a message")
            return False
        return True

    def subscribe(self, topic: str, handler: BusHandler) -> None:
        self._handlers.setdefault(topic, []).append(handler)
        self._resubscribe.set()

    def on_state(self, handler: StateHandler) -> None:
        self._state_handlers.append(handler)

    async def _run(self) -> None:
        delay = self._min
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, ConnectionError) as exc:
                log.debug("bus: %r", exc)
            self._set_healthy(False)
            while not self._out.empty():
                self._out.get_nowait()
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(delay * 2, self._max)
            if self._healthy:
                delay = self._min

    def _client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self._url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=1,
            retry_on_timeout=False,
        )

    async def _session(self) -> None:
        sub_client, pub_client = self._client(), self._client()
        pubsub = sub_client.pubsub(ignore_subscribe_messages=True)
        try:
            await pub_client.ping()
            topics = list(self._handlers)
            if topics:
                await pubsub.subscribe(*topics)
            self._resubscribe.clear()
            self._set_healthy(True)
            reader = asyncio.ensure_future(self._read(pubsub))
            writer = asyncio.ensure_future(self._write(pub_client))
            pinger = asyncio.ensure_future(self._ping(pub_client))
            try:
                done, _ = await asyncio.wait(
                    {reader, writer, pinger}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()  # re-raise the fault
            finally:
                for task in (reader, writer, pinger):
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), timeout=1)  # type: ignore[no-untyped-call]
            for client in (sub_client, pub_client):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), timeout=1)

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        subscribed = set(self._handlers)
        while True:
            if self._resubscribe.is_set():
                self._resubscribe.clear()
                new = set(self._handlers) - subscribed
                if new:
                    await pubsub.subscribe(*new)
                    subscribed |= new
            if not subscribed:
                await asyncio.sleep(0.1)
                continue
            msg = await pubsub.get_message(timeout=1.0)
            if msg is None or msg.get("type") != "message":
                continue
            topic = (
                msg["channel"].decode()
                if isinstance(msg["channel"], bytes)
                else str(msg["channel"])
            )
            data = msg["data"]
            payload = data if isinstance(data, bytes) else str(data).encode()
            for handler in self._handlers.get(topic, ()):
                try:
                    handler(payload)
                except Exception:
                    log.exception("bus handler failed")

    async def _write(self, client: aioredis.Redis) -> None:
        while True:
            first = await self._out.get()
            batch = [first]
            while not self._out.empty() and len(batch) < 500:
                batch.append(self._out.get_nowait())
            async with client.pipeline(transaction=False) as pipe:
                for topic, payload in batch:
                    pipe.publish(topic, payload)
                await pipe.execute()

    async def _ping(self, client: aioredis.Redis) -> None:
        while True:
            await asyncio.sleep(1.0)
            await asyncio.wait_for(client.ping(), timeout=2.0)


def create_bus(redis_url: str) -> Bus:
    return RedisBus(redis_url) if redis_url else MemoryBus()
