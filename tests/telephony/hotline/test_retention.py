"""Recording retention: a sweep deletes the files of calls older than the kept days (their records
stay, without a recording), keeps newer ones, never touches a path outside the recordings folder,
and removes the day folders it empties."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from storage import hotline as store
from storage.db import create_pool
from telephony.hotline.recorder import recording_relpath
from telephony.hotline.retention import _delete, sweep

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pool(fresh_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(fresh_dsn)
    try:
        yield p
    finally:
        await p.close()


async def recorded_call(pool: asyncpg.Pool, root: Path, arrived: datetime) -> tuple[int, Path]:
    async with pool.acquire() as conn:
        call = await store.create_call(conn, caller="13800001111", arrived_at=arrived)
        rel = recording_relpath(call.id, arrived)
        await store.set_recording(conn, call.id, rel)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVE")
    return call.id, path


async def test_old_recordings_go_new_ones_stay(pool: asyncpg.Pool, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    old_id, old = await recorded_call(pool, root, NOW - timedelta(days=200))
    new_id, new = await recorded_call(pool, root, NOW - timedelta(days=10))
    assert await sweep(pool, root, 180, NOW) == 1
    assert not old.exists() and not old.parent.exists()  # the emptied day folder is gone too
    assert new.exists()
    async with pool.acquire() as conn:
        gone, kept = await store.get_call(conn, old_id), await store.get_call(conn, new_id)
    assert gone is not None and gone.recording is None and gone.caller == "13800001111"
    assert kept is not None and kept.recording is not None
    assert await sweep(pool, root, 180, NOW) == 0  # nothing more
    assert await sweep(pool, root, 0, NOW + timedelta(days=999)) == 0  # 0 days: kept for ever
    assert new.exists()


def test_paths_outside_the_folder_are_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    root.mkdir()
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"x")
    assert _delete(root, ["../secret.wav", "2026/01/01/404.wav"]) == 0
    assert outside.exists()
