"""The video wall's SQL: each seat's layouts, and patrol rounds with their per-camera record."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from storage.db import map_pg_errors

# -- layouts -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    name: str
    tiles: int
    cameras: tuple[int | None, ...]
    updated_at: datetime


async def list_layouts(conn: asyncpg.Connection, user_id: int) -> list[Layout]:
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT name, tiles, cameras, updated_at FROM wall_layouts WHERE user_id = $1"
            " ORDER BY name",
            user_id,
        )
    return [Layout(r["name"], r["tiles"], tuple(r["cameras"]), r["updated_at"]) for r in rows]


async def put_layout(
    conn: asyncpg.Connection, user_id: int, name: str, tiles: int, cameras: Sequence[int | None]
) -> Layout:
    with map_pg_errors():
        r = await conn.fetchrow(
            "INSERT INTO wall_layouts (user_id, name, tiles, cameras) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id, name) DO UPDATE SET tiles = EXCLUDED.tiles,"
            " cameras = EXCLUDED.cameras, updated_at = now()"
            " RETURNING name, tiles, cameras, updated_at",
            user_id,
            name,
            tiles,
            list(cameras),
        )
    return Layout(r["name"], r["tiles"], tuple(r["cameras"]), r["updated_at"])


async def delete_layout(conn: asyncpg.Connection, user_id: int, name: str) -> bool:
    with map_pg_errors():
        status = await conn.execute(
            "DELETE FROM wall_layouts WHERE user_id = $1 AND name = $2", user_id, name
        )
    return not status.endswith(" 0")


# -- patrol rounds -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Round:
    id: int
    user_id: int
    tiles: int
    period_s: int
    started_at: datetime
    ended_at: datetime | None
    status: str
    state: Mapping[str, Any]


def _round(r: Mapping[str, Any]) -> Round:
    return Round(
        r["id"],
        r["user_id"],
        r["tiles"],
        r["period_s"],
        r["started_at"],
        r["ended_at"],
        r["status"],
        orjson.loads(r["state"]),
    )


_ROUND_COLS = "id, user_id, tiles, period_s, started_at, ended_at, status, state::text AS state"


async def start_round(
    conn: asyncpg.Connection, user_id: int, tiles: int, period_s: int, state: Mapping[str, Any]
) -> Round:
    """A new running round for the seat (a running one is stopped first: one round per seat)."""
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(
                "UPDATE patrol_rounds SET status = 'stopped', ended_at = now()"
                " WHERE user_id = $1 AND status = 'running'",
                user_id,
            )
            r = await conn.fetchrow(
                "INSERT INTO patrol_rounds (user_id, tiles, period_s, state)"
                f" VALUES ($1, $2, $3, $4::text::jsonb) RETURNING {_ROUND_COLS}",
                user_id,
                tiles,
                period_s,
                orjson.dumps(state).decode(),
            )
    return _round(r)


async def running_round(
    conn: asyncpg.Connection, user_id: int, *, for_update: bool = False
) -> Round | None:
    """The seat's running round; ``for_update`` (inside a transaction) locks it, so two windows
    of one wall reporting at once do not overwrite each other's state."""
    lock = " FOR UPDATE" if for_update else ""
    with map_pg_errors():
        r = await conn.fetchrow(
            f"SELECT {_ROUND_COLS} FROM patrol_rounds WHERE user_id = $1 AND status = 'running'"
            + lock,
            user_id,
        )
    return None if r is None else _round(r)


async def running_rounds(conn: asyncpg.Connection) -> list[Round]:
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_ROUND_COLS} FROM patrol_rounds WHERE status = 'running' ORDER BY id"
        )
    return [_round(r) for r in rows]


async def save_round(
    conn: asyncpg.Connection,
    round_id: int,
    state: Mapping[str, Any],
    marks: Sequence[tuple[int, str, int, str, float, str]] = (),
    *,
    status: str = "running",
) -> bool:
    """Store the round's state, the marks of pages that ended (camera id, camera name, page, mark,
    visible seconds, reason), and its status (done/stopped end it). False when it is no longer
    running (stopped elsewhere): nothing is written then."""
    with map_pg_errors():
        async with conn.transaction():
            got = await conn.fetchval(
                "UPDATE patrol_rounds SET state = $2::text::jsonb, status = $3,"
                " ended_at = CASE WHEN $3 = 'running' THEN NULL ELSE now() END"
                " WHERE id = $1 AND status = 'running' RETURNING id",
                round_id,
                orjson.dumps(state).decode(),
                status,
            )
            if got is None:
                return False
            await conn.executemany(
                "INSERT INTO patrol_marks (round_id, camera_id, camera_name, page, mark,"
                " visible_seconds, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (round_id, camera_id) DO NOTHING",
                [(round_id, *m) for m in marks],
            )
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class MissedCamera:
    camera_id: int
    camera_name: str
    times: int
    last_round: int
    last_reason: str
    last_at: datetime


async def missed_cameras(conn: asyncpg.Connection, rounds: int = 10) -> list[MissedCamera]:
    """Cameras missed in the last ``rounds`` rounds (of any seat), most often missed first."""
    with map_pg_errors():
        rows = await conn.fetch(
            "WITH recent AS (SELECT id FROM patrol_rounds ORDER BY id DESC LIMIT $1)"
            " SELECT m.camera_id, max(m.camera_name) AS camera_name, count(*) AS times,"
            " max(m.round_id) AS last_round,"
            " (array_agg(m.reason ORDER BY m.round_id DESC))[1] AS last_reason,"
            " max(m.marked_at) AS last_at"
            " FROM patrol_marks m JOIN recent r ON r.id = m.round_id WHERE m.mark = 'missed'"
            " GROUP BY m.camera_id ORDER BY times DESC, m.camera_id",
            rounds,
        )
    return [
        MissedCamera(
            r["camera_id"],
            r["camera_name"],
            int(r["times"]),
            r["last_round"],
            r["last_reason"],
            r["last_at"],
        )
        for r in rows
    ]


async def get_round(conn: asyncpg.Connection, round_id: int) -> Round | None:
    with map_pg_errors():
        r = await conn.fetchrow(f"SELECT {_ROUND_COLS} FROM patrol_rounds WHERE id = $1", round_id)
    return None if r is None else _round(r)


async def round_marks(conn: asyncpg.Connection, round_id: int) -> list[Mapping[str, Any]]:
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT camera_id, camera_name, page, mark, visible_seconds, reason, marked_at"
            " FROM patrol_marks WHERE round_id = $1 ORDER BY page, camera_id",
            round_id,
        )
    return [dict(r) for r in rows]


async def patrol_cameras(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    """Active cameras in wall order (street, grid, name): the order a round shows them in."""
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT c.id, c.name FROM cameras c LEFT JOIN grids g ON g.id = c.grid_id"
            " LEFT JOIN grids s ON s.id = g.parent_id WHERE c.active"
            " ORDER BY s.code NULLS LAST, g.code NULLS LAST, c.name, c.id"
        )
    return [(r["id"], r["name"]) for r in rows]
