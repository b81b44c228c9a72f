"""The bus between hub processes: it fans out, nothing more.

PostgreSQL holds the truth; a process that misses bus messages catches up from ``live_log``. So the
bus may lose messages during an outage, but it must say so: ``healthy`` turns False (state handlers
called) on any connection fault, and True again once it is back and subscribed to every topic, which
is when callers resync from PostgreSQL. ``publish`` never blocks and never raises: it returns False
for a message it drops (bus unhealthy or outgoing queue full).

- ``MemoryBus``: one process; delivers to local subscribers with ``loop.call_soon``, in order.
- ``RedisBus``: Redis pub/sub. Messages a process publishes come back to it through Redis like
  anyone else's, so every process sees one order.

Theory of operation of ``RedisBus``: a session opens two connections. The reader task owns the
SUBSCRIBE one: it subscribes every topic, then PINGs; the PONG follows every subscription's
confirmation, and only then is the bus healthy. The writer task owns the PUBLISH one: it drains a
bounded queue, sending all that waits in one round trip (a pipeline). A dead server is noticed within
about two seconds even when idle: a quiet connection PINGs every 0.5 s (the writer every 1 s), the
reader gives up after 1.5 s without a byte, the writer after its 2 s socket timeout. On a fault:
unhealthy at once (state handlers called once per outage), one warning with the password redacted,
the outgoing queue dropped, the connections closed, and a new session after a backoff doubling from
``reconnect_min`` to ``reconnect_max``, with jitter.
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

BusHandler = Callable[[bytes], None]  # called on the event loop; must not block
StateHandler = Callable[[bool], None]  # called with the new ``healthy`` on every change

MAX_QUEUE = 10_000  # outgoing messages waiting for the writer
MAX_BATCH = 1_000  # messages per pipelined round trip
QUIET_PING = 0.5  # the reader PINGs after this much silence (the writer after twice that)
DEAD_AFTER = 1.5  # the reader gives up after this much silence (two PINGs unanswered)
SOCKET_TIMEOUT = 2.0  # connecting, and each reply the writer waits for


def redact(url: str) -> str:
    """``url`` fit for logs: the password (``user:pw@``, a lone ``pw@`` which some clients take for
    a password, ``?password=``) replaced by ``****``."""
    scheme, sep, rest = url.partition("://")
    if sep:
        at = re.split(r"[?#]", rest, maxsplit=1)[0].rfind("@")  # the last @ before the query
        if at >= 0:
            user, colon, _ = rest[:at].partition(":")
            rest = f"{user}:****{rest[at:]}" if colon else f"****{rest[at:]}"
        url = f"{scheme}://{rest}"
    return re.sub(r"([?&]password=)[^&#]*", r"\1****", url, flags=re.IGNORECASE)


class Bus(Protocol):
    name: str  # "memory" | "redis"

    @property
    def healthy(self) -> bool: ...

    async def start(self) -> None:
        """Start delivering; never raises for a backend that is down (retries in the background)."""

    async def close(self) -> None: ...

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue for every subscriber of ``topic`` (this process's too); False if dropped."""

    def subscribe(self, topic: str, handler: BusHandler) -> None: ...

    def on_state(self, handler: StateHandler) -> None: ...


def _dispatch(handlers: list[BusHandler], payload: bytes) -> None:
    for handler in handlers:
        try:
            handler(payload)
        except Exception:
            log.exception("bus handler failed")


class MemoryBus:
    """One process. Always healthy, so the state handlers are never called."""

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
        if handlers := self._handlers.get(topic):
            asyncio.get_running_loop().call_soon(_dispatch, list(handlers), payload)
        return True

    def subscribe(self, topic: str, handler: BusHandler) -> None:
        self._handlers.setdefault(topic, []).append(handler)

    def on_state(self, handler: StateHandler) -> None:
        return None


class RedisBus:
    """Redis pub/sub between processes (see the module docstring). What this process publishes is
    delivered back to it through Redis, like any other process's messages. ``close()`` sends what
    is queued (for at most a second) and does not call the state handlers."""

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
            self._password = str(parse_url(url).get("password") or "")
        except ValueError as exc:
            raise ValueError(f"bad Redis URL {redact(url)}: {exc}") from None
        self._url = url
        self._min = max(reconnect_min, 0.01)  # never a busy loop
        self._max = max(self._min, reconnect_max)
        self._handlers: dict[str, list[BusHandler]] = {}
        self._state_handlers: list[StateHandler] = []
        self._healthy = self._closing = False
        self._out: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._sub: AbstractConnection | None = None  # the current SUBSCRIBE connection
        self._sends: set[asyncio.Task[None]] = set()  # SUBSCRIBEs of topics added meanwhile
        self._tried = asyncio.Event()  # the first session got healthy or failed
        self._up = False  # the current session got healthy
        self._warned = False  # this outage was logged
        self._full = False  # this full queue was logged
        self.dropped = 0  # messages refused or dropped so far

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        """Connect in the background, waiting (a few seconds at most) for the first attempt so that
        a hub starting next to a running Redis starts healthy."""
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
        self._task, self._healthy = None, False
        self._drop_queue()

    def publish(self, topic: str, payload: bytes) -> bool:
        if self._healthy and not self._closing:
            try:
                self._out.put_nowait((topic, payload))
                return True
            except asyncio.QueueFull:
                if not self._full:
                    self._full = True
                    log.warning("bus: outgoing queue full (%d): dropping", self._out.maxsize)
        self.dropped += 1
        return False

    def subscribe(self, topic: str, handler: BusHandler) -> None:
        new = topic not in self._handlers
        self._handlers.setdefault(topic, []).append(handler)
        if new and self._sub is not None:  # connected: subscribe now, not at the next session
            task = asyncio.get_running_loop().create_task(self._send_subscribe(self._sub, topic))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    def on_state(self, handler: StateHandler) -> None:
        self._state_handlers.append(handler)

    # -- sessions ------------------------------------------------------------------------------

    def _set_healthy(self, value: bool) -> None:
        if value != self._healthy:
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

    def _down(self, exc: Exception) -> None:
        self._set_healthy(False)
        self._drop_queue()
        self._tried.set()
        reason = f"{type(exc).__name__}: {exc}"
        if self._password:
            reason = reason.replace(self._password, "****")
        if self._warned:
            log.debug("bus: Redis still unavailable (%s)", reason)
        else:
            self._warned = True
            log.warning(
                "bus: Redis at %s unavailable (%s); dropping messages until it is back",
                redact(self._url),
                reason,
            )

    async def _run(self) -> None:
        delay = self._min
        while True:
            pool = ConnectionPool.from_url(
                self._url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                socket_keepalive=True,
                health_check_interval=0,  # we PING ourselves, from the task that reads
                protocol=2,  # plain pub/sub replies (the URL may still ask for 3: both are read)
                retry=Retry(NoBackoff(), 0),  # a fault ends the session; we reconnect ourselves
            )
            self._up = False
            try:
                await self._session(pool)
            except Exception as exc:  # any fault, the server's or the library's: report, retry
                self._down(exc)
            finally:
                self._sub = None
                for task in list(self._sends):
                    task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pool.aclose(), SOCKET_TIMEOUT)
            delay = self._min if self._up else min(delay * 2, self._max)
            await asyncio.sleep(random.uniform(self._min, delay))

    async def _session(self, pool: ConnectionPool) -> None:
        pub: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        sub: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        topics, self._sub = list(self._handlers), sub  # from here on, new topics go out at once
        if topics:
            await sub.send_command("SUBSCRIBE", *topics, check_health=False)
        await sub.send_command("PING", check_health=False)  # its PONG confirms the SUBSCRIBEs
        tasks = [asyncio.ensure_future(self._read(sub)), asyncio.ensure_future(self._write(pub))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises the fault (both loop until one)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send_subscribe(self, conn: AbstractConnection, topic: str) -> None:
        if conn is self._sub and conn.is_connected:  # never reconnect an old session's connection
            with contextlib.suppress(Exception):  # a fault here is the reader's to notice
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
                    if handlers := self._handlers.get(msg[1].decode("utf-8", "replace")):
                        _dispatch(list(handlers), msg[2])
                elif kind in (b"pong", b"PONG") and not self._healthy:
                    self._up, self._warned = True, False
                    self._tried.set()
                    log.info("bus: Redis at %s connected", redact(self._url))
                    self._set_healthy(True)
            elif now - last_rx >= DEAD_AFTER:
                raise TimeoutError(f"Redis silent for {now - last_rx:.1f} s")
            if now - last_rx >= QUIET_PING and now - last_ping >= QUIET_PING:
                await conn.send_command("PING", check_health=False)
                last_ping = now

    async def _write(self, conn: AbstractConnection) -> None:
        while True:
            try:
                async with asyncio.timeout(2 * QUIET_PING):
                    batch = [await self._out.get()]
            except TimeoutError:
                await conn.send_command("PING", check_health=False)
                await conn.read_response()  # within SOCKET_TIMEOUT, or the session ends
                continue
            while len(batch) < MAX_BATCH and not self._out.empty():
                batch.append(self._out.get_nowait())
            try:
                commands = [("PUBLISH", topic, payload) for topic, payload in batch]
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
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
