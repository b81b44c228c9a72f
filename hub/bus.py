"""The bus between hub processes: it fans out, nothing more.

PostgreSQL holds the truth; a process that misses bus messages catches up from ``live_log``. So the
bus may lose messages during an outage, but it must say so: ``healthy`` turns False (and the state
handlers are called) on any connection fault, and True again once it is back and subscribed to every
topic, which is the moment for callers to resync from PostgreSQL.

- ``MemoryBus``: one process; ``publish`` delivers to local subscribers with ``loop.call_soon``, in
  order. Always healthy.
- ``RedisBus``: Redis pub/sub over two connections. The reader task owns the SUBSCRIBE connection; the
  writer task owns the PUBLISH connection and drains a bounded queue, sending everything waiting in
  one round trip (a pipeline). Messages this process publishes come back to it through Redis like
  anyone else's, so every process sees one order.

Theory of operation of ``RedisBus``: a session connects both connections, subscribes every topic and
sends a PING; the PONG comes after every subscription is confirmed, and only then is the bus healthy.
A dead server is noticed within about two seconds even when idle: each connection pings when quiet
and gives up when nothing answers (the reader after 1.5 s of silence, the writer after its 2 s socket
timeout). On a fault: unhealthy at once (state handlers called once), one warning logged with the
password redacted, the outgoing queue dropped, the connections closed, and a new session tried after
an exponential backoff with jitter between ``reconnect_min`` and ``reconnect_max``. Nothing raises to
callers: ``publish`` returns False while a message cannot be taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio.connection import AbstractConnection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("cityhub.bus")

BusHandler = Callable[[bytes], None]
StateHandler = Callable[[bool], None]

MAX_QUEUE = 10_000  # outgoing messages waiting for the writer
MAX_BATCH = 1_000  # messages per pipelined round trip
QUIET_PING = 0.5  # a connection silent this long sends a PING
DEAD_AFTER = 1.5  # the reader gives up after this much silence (at least two PINGs unanswered)
SOCKET_TIMEOUT = 2.0  # connect, and every reply the writer waits for


def redact(url: str) -> str:
    """``url`` fit for logs: the password (after ``user:``, a lone ``user@`` which some clients take
    as a password, and ``?password=``) replaced by ``****``."""
    scheme, sep, rest = url.partition("://")
    if sep:
        authority = re.split(r"[?#]", rest, maxsplit=1)[0]
        at = authority.rfind("@")
        if at >= 0:
            user, colon, _ = rest[:at].partition(":")
            rest = f"{user}:****{rest[at:]}" if colon else f"****{rest[at:]}"
        url = f"{scheme}://{rest}"
    return re.sub(r"([?&]password=)[^&#]*", r"\1****", url, flags=re.IGNORECASE)


class Bus(Protocol):
    name: str

    @property
    def healthy(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def publish(self, topic: str, payload: bytes) -> bool: ...

    def subscribe(self, topic: str, handler: BusHandler) -> None: ...

    def on_state(self, handler: StateHandler) -> None: ...


def _dispatch(handlers: list[BusHandler], payload: bytes) -> None:
    for handler in handlers:
        try:
            handler(payload)
        except Exception:
            log.exception("bus handler failed")


class MemoryBus:
    """One process: what is published reaches this process's subscribers on a later loop turn, in
    publish order. Always healthy, so the state handlers are never called."""

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
        handlers = self._handlers.get(topic)
        if handlers:
            asyncio.get_running_loop().call_soon(_dispatch, list(handlers), payload)
        return True

    def subscribe(self, topic: str, handler: BusHandler) -> None:
        self._handlers.setdefault(topic, []).append(handler)

    def on_state(self, handler: StateHandler) -> None:
        return None


class RedisBus:
    """Redis pub/sub between processes (see the module docstring). Messages published here are
    delivered back here through Redis, like any other process's. ``close()`` sends what is queued
    (for up to a second) and does not call the state handlers."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        try:
            parse_url(url)
        except ValueError as exc:
            raise ValueError(f"bad Redis URL {redact(url)}: {exc}") from None
        self._url = url
        self._password = str(parse_url(url).get("password") or "")
        self._min = reconnect_min
        self._max = max(reconnect_max, reconnect_min)
        self._handlers: dict[str, list[BusHandler]] = {}
        self._state_handlers: list[StateHandler] = []
        self._healthy = False
        self._closing = False
        self._out: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._sub: AbstractConnection | None = None  # the live SUBSCRIBE connection
        self._sends: set[asyncio.Task[None]] = set()  # SUBSCRIBEs of topics added while connected
        self._tried = asyncio.Event()  # the first session got healthy or failed
        self._warned = False  # this outage was logged
        self._full = False  # a full queue was logged
        self._up_once = False  # the current session got healthy
        self.dropped = 0  # messages refused or dropped since start

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        """Connect in the background; wait (at most a few seconds) for the first attempt so that a
        hub starting next to a running Redis starts healthy. Never raises for a Redis that is down."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-bus")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tried.wait(), 2 * SOCKET_TIMEOUT)

    async def close(self) -> None:
        self._closing = True
        if self._task is None:
            return
        if self._healthy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._out.join(), 1.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._healthy = False
        self._drop_queue()

    def publish(self, topic: str, payload: bytes) -> bool:
        if not self._healthy or self._closing:
            self.dropped += 1
            return False
        try:
            self._out.put_nowait((topic, payload))
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._full:
                self._full = True
                log.warning("bus: outgoing queue full (%d); dropping messages", self._out.maxsize)
            return False
        return True

    def subscribe(self, topic: str, handler: BusHandler) -> None:
        new = topic not in self._handlers
        self._handlers.setdefault(topic, []).append(handler)
        if new and self._sub is not None:
            task = asyncio.get_running_loop().create_task(self._send_subscribe(self._sub, topic))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    def on_state(self, handler: StateHandler) -> None:
        self._state_handlers.append(handler)

    # -- the session loop ---------------------------------------------------------------------

    def _set_healthy(self, value: bool) -> None:
        if value == self._healthy:
            return
        self._healthy = value
        for handler in list(self._state_handlers):
            try:
                handler(value)
            except Exception:
                log.exception("bus state handler failed")

    def _drop_queue(self) -> None:
        while not self._out.empty():
            self._out.get_nowait()
            self._out.task_done()
            self.dropped += 1
        self._full = False

    def _down(self, exc: BaseException) -> None:
        self._set_healthy(False)
        self._drop_queue()
        self._tried.set()
        reason = f"{type(exc).__name__}: {exc}"
        if self._password:
            reason = reason.replace(self._password, "****")
        if not self._warned:
            self._warned = True
            log.warning(
                "bus: Redis at %s unavailable (%s); messages are dropped until it is back",
                redact(self._url),
                reason,
            )
        else:
            log.debug("bus: reconnect failed (%s)", reason)

    async def _run(self) -> None:
        delay = self._min
        while True:
            pool = ConnectionPool.from_url(
                self._url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                socket_keepalive=True,
                health_check_interval=0,
                protocol=2,
                retry=Retry(NoBackoff(), 0),  # a fault ends the session; we reconnect ourselves
            )
            try:
                await self._session(pool)
            except Exception as exc:  # any fault, ours or the library's: report and retry
                self._down(exc)
            finally:
                self._sub = None
                for task in list(self._sends):
                    task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pool.aclose(), SOCKET_TIMEOUT)
            delay = self._min if self._up_once else min(delay * 2, self._max)
            await asyncio.sleep(random.uniform(self._min, delay))

    async def _session(self, pool: ConnectionPool) -> None:
        self._up_once = False
        pub: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        sub: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        topics = list(self._handlers)
        self._sub = sub  # from here on, new topics are subscribed at once
        if topics:
            await sub.send_command("SUBSCRIBE", *topics, check_health=False)
        await sub.send_command("PING", check_health=False)  # its PONG confirms the SUBSCRIBEs
        tasks = [asyncio.ensure_future(self._read(sub)), asyncio.ensure_future(self._write(pub))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise ConnectionError("bus task ended")  # pragma: no cover (they loop until a fault)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send_subscribe(self, conn: AbstractConnection, topic: str) -> None:
        # A fault here is the reader's to notice; never reconnect a connection of an old session.
        if conn is self._sub and conn.is_connected:
            with contextlib.suppress(Exception):
                await conn.send_command("SUBSCRIBE", topic, check_health=False)

    async def _read(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        last_rx = last_ping = loop.time()
        while True:
            msg: Any = await conn.read_response(timeout=QUIET_PING, push_request=True)
            now = loop.time()
            if msg is not None:
                last_rx = now
                kind = msg[0] if isinstance(msg, list) and msg else msg
                if kind == b"message" and len(msg) == 3:
                    handlers = self._handlers.get(msg[1].decode("utf-8", "replace"))
                    if handlers:
                        _dispatch(list(handlers), msg[2])
                elif kind in (b"pong", b"PONG") and not self._healthy:
                    self._up_once, self._warned = True, False
                    self._tried.set()
                    log.info("bus: Redis at %s connected", redact(self._url))
                    self._set_healthy(True)
            if now - last_rx >= DEAD_AFTER:
                raise TimeoutError(f"no answer from Redis in {DEAD_AFTER} s")
            if now - last_rx >= QUIET_PING and now - last_ping >= QUIET_PING:
                await conn.send_command("PING", check_health=False)
                last_ping = now

    async def _write(self, conn: AbstractConnection) -> None:
        while True:
            try:
                first = await asyncio.wait_for(self._out.get(), QUIET_PING * 2)
            except TimeoutError:
                await conn.send_command("PING", check_health=False)
                await conn.read_response()  # within SOCKET_TIMEOUT, or the session ends
                continue
            batch = [first]
            while len(batch) < MAX_BATCH and not self._out.empty():
                batch.append(self._out.get_nowait())
            try:
                await conn.send_packed_command(
                    conn.pack_commands([("PUBLISH", topic, data) for topic, data in batch]),
                    check_health=False,
                )
                for _ in batch:
                    await conn.read_response()
            finally:
                for _ in batch:
                    self._out.task_done()
            if self._out.empty():
                self._full = False


def create_bus(redis_url: str) -> Bus:
    """The in-memory bus for one process (``redis_url`` empty), else Redis pub/sub."""
    return RedisBus(redis_url) if redis_url else MemoryBus()
