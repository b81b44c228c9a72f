"""Leading by an advisory lock (hub/live/leader.py), two contenders on a real PostgreSQL: one leads;
when its connection is terminated by the server it steps down at once (not at its next timeout) and
the other takes over within about a second; stopping the leader hands the lock back cleanly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
import pytest

from hub.live.leader import Leadership

KEY = 0x74657374_6C6561  # "testlea": a key of this test's own
log = logging.getLogger("cityhub.test_leader")


class Contender:
    """A Leadership whose job records its terms and sleeps in ``wait`` with a long timeout."""

    def __init__(self, dsn: str, name: str) -> None:
        self.leadership = Leadership(dsn, KEY, name, log, listen="cityhub_test_leader")
        self.stop = asyncio.Event()
        self.ended: list[float] = []
        self.passes = 0
        self.task = asyncio.create_task(self.leadership.run(self.stop, self._lead))

    async def _lead(self) -> None:
        try:
            while not self.stop.is_set():
                self.leadership.wake.clear()
                self.passes += 1
                await self.leadership.wait(self.stop, 30.0)
        finally:
            self.ended.append(time.monotonic())

    @property
    def leads(self) -> bool:
        return self.leadership.is_leader

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=5)


async def until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` holds (fails after ``timeout``)."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
    return time.monotonic() - start


async def lock_holder(conn: asyncpg.Connection) -> int | None:
    pid = await conn.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND ((classid::bigint << 32) | objid::bigint) = $1",
        KEY,
    )
    return None if pid is None else int(pid)


async def test_one_leads_and_the_other_takes_over(
    fresh_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await asyncpg.connect(fresh_dsn)
    a = Contender(fresh_dsn, "A")
    await until(lambda: a.leads, 5)
    b = Contender(fresh_dsn, "B")
    try:
        # B contends for a while and never leads beside A.
        for _ in range(15):
            await asyncio.sleep(0.1)
            assert a.leads and not b.leads
        assert a.leadership.terms == 1 and b.leadership.terms == 0
        # The leader's LISTEN wakes its job.
        passes = a.passes
        await admin.execute("SELECT pg_notify('cityhub_test_leader', '')")
        await until(lambda: a.passes > passes, 2)

        # The server terminates A's connection: A steps down at once although its job sleeps for
        # 30 s, logs the outage, and B takes over within about a second.
        pid = await lock_holder(admin)
        assert pid is not None
        caplog.set_level(logging.WARNING, logger=log.name)
        terminated = time.monotonic()
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await until(lambda: not a.leads, 1)
        assert a.ended and a.ended[0] - terminated < 1.0
        took = await until(lambda: b.leads, 3)
        assert took < 1.5, f"B took {took:.2f} s to take over"
        assert "A: database unavailable (ConnectionError); retrying" in caplog.text
        # A is back as a contender, and does not lead while B does.
        for _ in range(20):
            await asyncio.sleep(0.1)
            assert b.leads and not a.leads
        assert await lock_holder(admin) not in (None, pid)

        # B stops: it gives the lock up cleanly (its connection closed) and A takes over.
        await b.close()
        assert not b.leads and len(b.ended) == 1
        took = await until(lambda: a.leads, 3)
        assert took < 1.5, f"A took {took:.2f} s to take over"
        assert a.leadership.terms == 2
    finally:
        await a.close()
        if not b.task.done():
            await b.close()
        await admin.close()
    assert not a.leads and not b.leads
    # Nobody holds the lock once both stopped.
    admin = await asyncpg.connect(fresh_dsn)
    try:
        assert await lock_holder(admin) is None
    finally:
        await admin.close()
