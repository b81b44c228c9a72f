"""The wall's storage on a real PostgreSQL: layouts per seat, one running round per seat, a round's
marks written once, the missed-camera report."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage import wall
from storage.errors import InvalidData


@pytest.fixture
async def conn(fresh_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(fresh_dsn)
    try:
        yield c
    finally:
        await c.close()


async def seats(conn: asyncpg.Connection) -> list[int]:
    return [r[0] for r in await conn.fetch("SELECT id FROM users WHERE role = 'seat' ORDER BY id")]


async def test_layouts_are_per_seat_and_replaced_by_name(conn: asyncpg.Connection) -> None:
    a, b = (await seats(conn))[:2]
    await wall.put_layout(conn, a, "早班", 4, [1, 2, None, 3])
    await wall.put_layout(conn, a, "早班", 9, [5] + [None] * 8)
    await wall.put_layout(conn, b, "夜班", 1, [7])
    mine = await wall.list_layouts(conn, a)
    assert [(x.name, x.tiles, x.cameras[:2]) for x in mine] == [("早班", 9, (5, None))]
    assert [x.name for x in await wall.list_layouts(conn, b)] == ["夜班"]
    assert await wall.delete_layout(conn, a, "早班") and not await wall.delete_layout(
        conn, a, "早班"
    )
    with pytest.raises(InvalidData):
        await wall.put_layout(conn, a, "坏", 5, [1])  # 5 tiles is no layout


async def test_one_running_round_per_seat_and_marks_once(conn: asyncpg.Connection) -> None:
    (a,) = (await seats(conn))[:1]
    first = await wall.start_round(conn, a, 4, 600, {"page": -1})
    second = await wall.start_round(conn, a, 4, 600, {"page": -1})  # stops the first
    assert (await wall.running_round(conn, a)) is not None
    assert (await wall.running_round(conn, a)).id == second.id  # type: ignore[union-attr]
    assert not await wall.save_round(conn, first.id, {"page": 3})  # stopped: nothing written
    marks = [(1, "一号", 0, "shown", 12.0, ""), (2, "二号", 0, "missed", 0.0, "离线")]
    assert await wall.save_round(conn, second.id, {"page": 1}, marks)
    assert await wall.save_round(conn, second.id, {"page": 1}, marks)  # again: no duplicates
    got = await wall.round_marks(conn, second.id)
    assert [(m["camera_id"], m["mark"], m["reason"]) for m in got] == [
        (1, "shown", ""),
        (2, "missed", "离线"),
    ]
    assert await wall.save_round(conn, second.id, {"page": 2}, status="done")
    assert await wall.running_round(conn, a) is None
    missed = await wall.missed_cameras(conn)
    assert [(m.camera_id, m.camera_name, m.times, m.last_reason) for m in missed] == [
        (2, "二号", 1, "离线")
    ]
