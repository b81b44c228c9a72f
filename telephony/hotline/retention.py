"""Recording retention: recordings of calls older than ``CITYHUB_HOTLINE_RECORDINGS_DAYS`` are
deleted; the call records stay.

Theory of operation: ``sweep(pool, root, days, now)`` asks PostgreSQL to forget the recordings of
calls that arrived before the cutoff (``storage.hotline.delete_recordings_before``, a batch at a
time, the rows updated first, so a file is only deleted once no record points at it) and then
deletes those files under ``root`` in a worker thread (a path outside ``root`` is never touched;
a file already gone is fine), and empty day folders with them. ``run_retention`` repeats it every
``period`` seconds while the telephony process runs (0 days: keep for ever, nothing runs). Several
processes may sweep at once: the rows are taken ``FOR UPDATE``, so each path comes back once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from storage import hotline as store
from storage.db import connect
from storage.errors import StorageError

log = logging.getLogger(__name__)

#: Seconds between sweeps.
PERIOD = 6 * 3600.0


def _delete(root: Path, paths: list[str]) -> int:
    base = root.resolve()
    deleted = 0
    for rel in paths:
        path = (base / rel).resolve()
        if base not in path.parents:
            log.warning("recording path outside the recordings directory left alone: %r", rel)
            continue
        try:
            path.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        folder = path.parent
        while folder != base and base in folder.parents:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            folder = folder.parent
    return deleted


async def sweep(pool: asyncpg.Pool, root: Path, days: int, now: datetime) -> int:
    """Delete the recordings of calls that arrived more than ``days`` before ``now``; how many
    files were deleted."""
    if days <= 0:
        return 0
    cutoff = now - timedelta(days=days)
    total = 0
    while True:
        async with connect(pool) as conn:
            paths = await store.delete_recordings_before(conn, cutoff)
        if not paths:
            return total
        total += await asyncio.to_thread(_delete, root, paths)


async def run_retention(
    pool: asyncpg.Pool, root: Path, days: int, *, period: float = PERIOD
) -> None:
    if days <= 0:
        return

    while True:
        with contextlib.suppress(StorageError):  # an outage: the next sweep catches up
            n = await sweep(pool, root, days, datetime.now(UTC))
            if n:
                log.info("hotline retention: %d recordings older than %d days deleted", n, days)
        await asyncio.sleep(period)
