"""Leading by a PostgreSQL advisory lock: one process of the cluster does a job at a time.

Theory of operation
-------------------
A ``Leadership`` contends for the session advisory lock ``key`` on a connection of its own (never
the pool's: the lock lives exactly as long as that connection). It tries the lock every ``retry``
seconds (1 s) until it gets it, LISTENs on ``listen`` (each notification sets ``wake``), and then runs
the job's ``lead`` coroutine for as long as it holds the lock: that is a *term*, and ``is_leader`` is
true exactly while one runs. A process that stops, crashes or loses its connection releases the lock
with the connection, so a contender takes over at its next try, within ``retry``.

Between passes the job sleeps in ``wait``: it returns on a notification (or ``wake.set()``), on
``stop`` or after a timeout, and raises ``ConnectionError`` as soon as the lock's connection is gone
(asyncpg's termination listener), so a leader whose connection was closed or terminated stops
acting at once instead of at its next timeout. Whatever ends a term, an outage (``OUTAGES``: logged
as a warning) or a failure (logged with its traceback), is retried after a backoff of 0.5 s,
doubling to 5 s over consecutive terms that never led. On ``stop`` the term ends and the connection is
closed, which releases the lock (leadership is given up cleanly, not by timeout).

Used by the relay (``hub/live/relay.py``) and the alarm scheduler (``hub/cases/alarms.py``), each
with its own key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from storage.db import OUTAGE_ERRORS
from storage.errors import StorageUnavailable

#: What ends a term as an outage (a warning, no traceback): the driver's errors, and the storage
#: layer's translation of them (``map_pg_errors``).
OUTAGES: tuple[type[BaseException], ...] = (*OUTAGE_ERRORS, StorageUnavailable)

BACKOFF_MIN = 0.5
BACKOFF_MAX = 5.0


@dataclass
class Leadership:
    dsn: str
    #: The advisory lock's key (a bigint); one per job.
    key: int
    #: The job's name in the logs ("relay", "alarms").
    name: str
    log: logging.Logger
    #: A channel to LISTEN on the lock's connection while leading; its notifications set ``wake``.
    listen: str | None = None
    #: Seconds between tries of the lock while another process holds it.
    retry: float = 1.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    is_leader: bool = False
    #: Terms led so far (a test or /healthz may read it).
    terms: int = 0
    _conn: asyncpg.Connection | None = None
    _lost: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event, lead: Callable[[], Awaitable[None]]) -> None:
        """Until ``stop`` is set: contend for the lock, run ``lead()`` while holding it, retry."""
        backoff = BACKOFF_MIN
        while not stop.is_set():
            terms = self.terms
            try:
                await self._term(stop, lead)
            except OUTAGES as exc:
                self.log.warning(
                    "%s: database unavailable (%s); retrying", self.name, type(exc).__name__
                )
            except Exception:
                self.log.exception("%s failed; retrying", self.name)
            if self.terms != terms:
                backoff = BACKOFF_MIN
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _term(self, stop: asyncio.Event, lead: Callable[[], Awaitable[None]]) -> None:
        lost = self._lost = asyncio.Event()
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        conn.add_termination_listener(lambda _conn: lost.set())
        self._conn = conn
        try:
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.retry)
            if stop.is_set():
                return
            if self.listen is not None:
                await conn.add_listener(self.listen, lambda *_: self.wake.set())
            self.is_leader = True
            self.terms += 1
            await lead()
        finally:
            self.is_leader = False
            self._conn = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep until a notification (``wake`` set), ``stop`` or ``seconds`` have passed; raises
        ``ConnectionError`` when the lock's connection is gone (and the lock with it). The caller
        clears ``wake`` before the work it does on a wake-up."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (self.wake, stop, self._lost)]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if self._lost.is_set() or self._conn is None or self._conn.is_closed():
            raise ConnectionError(f"{self.name}: the lock's connection was lost")
