"""Reference data queries: categories, departments, grids (small tables, cached by the hub)."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime

import asyncpg

from storage.db import map_pg_errors


@dataclasses.dataclass(frozen=True, slots=True)
class Category:
    id: int
    code: str
    kind: str
    major_code: str
    major_name: str
    minor_code: str
    minor_name: str
    time_limit_value: int | None
    time_limit_unit: str | None
    time_limit_text: str
    urgency: int
    default_department_id: int | None
    active: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Department:
    id: int
    code: str
    name: str
    is_coordinating: bool
    active: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Grid:
    id: int
    code: str
    name: str
    level: int
    parent_id: int | None
    area_m2: float


@dataclasses.dataclass(frozen=True, slots=True)
class Catalog:
    categories: dict[int, Category]
    departments: dict[int, Department]
    grids: dict[int, Grid]

    def children(self, grid_id: int) -> list[int]:
        return [g.id for g in self.grids.values() if g.parent_id == grid_id]

    def expand_grids(self, grid_ids: list[int] | tuple[int, ...]) -> frozenset[int]:
        """Second-level grids covered by the given grids (a first-level grid covers its children)."""
        out: set[int] = set()
        for gid in grid_ids:
            g = self.grids.get(gid)
            if g is None:
                continue
            if g.level == 1:
                out.update(self.children(gid))
            else:
                out.add(gid)
        return frozenset(out)


async def load_catalog(conn: asyncpg.Connection) -> Catalog:
    with map_pg_errors():
        cats = await conn.fetch(
            "SELECT id, code, kind, major_code, major_name, minor_code, minor_name, time_limit_value,"
            " time_limit_unit, time_limit_text, urgency, default_department_id, active"
            " FROM categories ORDER BY code"
        )
        deps = await conn.fetch(
            "SELECT id, code, name, is_coordinating, active FROM departments ORDER BY id"
        )
        grids = await conn.fetch(
            "SELECT id, code, name, level, parent_id, area_m2 FROM grids ORDER BY code"
        )
    return Catalog(
        categories={r["id"]: Category(**dict(r)) for r in cats},
        departments={r["id"]: Department(**dict(r)) for r in deps},
        grids={r["id"]: Grid(**dict(r)) for r in grids},
    )


async def grid_at(conn: asyncpg.Connection, lon: float, lat: float) -> int | None:
    """The second-level grid containing the point, or None."""
    with map_pg_errors():
        gid = await conn.fetchval(
            "SELECT id FROM grids WHERE level = 2 AND boundary @> point($1, $2) ORDER BY id LIMIT 1",
            lon,
            lat,
        )
    return None if gid is None else int(gid)


_POINT = re.compile(r"\(([-0-9.eE+]+),([-0-9.eE+]+)\)")


async def grid_boundaries(
    conn: asyncpg.Connection, level: int | None
) -> dict[int, list[list[float]]]:
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT id, boundary::text AS b FROM grids WHERE $1::int IS NULL OR level = $1", level
        )
    return {r["id"]: [[float(x), float(y)] for x, y in _POINT.findall(r["b"])] for r in rows}


async def grid_boundary(conn: asyncpg.Connection, grid_id: int) -> list[list[float]] | None:
    with map_pg_errors():
        text = await conn.fetchval("SELECT boundary::text FROM grids WHERE id = $1", grid_id)
    if text is None:
        return None
    return [[float(x), float(y)] for x, y in _POINT.findall(text)]


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentRow:
    id: str
    category_id: int
    name: str
    owner_department_id: int | None
    maintainer_department_id: int | None
    grid_id: int | None
    state: str
    lon: float
    lat: float
    data_source: str
    installed_on: date | None
    updated_at: datetime


_COMPONENT_COLS = (
    "id, category_id, name, owner_department_id, maintainer_department_id, grid_id, state, lon, lat,"
    " data_source, installed_on, updated_at"
)


async def get_component(conn: asyncpg.Connection, component_id: str) -> ComponentRow | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_COMPONENT_COLS} FROM components WHERE id = $1", component_id
        )
    return None if rec is None else ComponentRow(**dict(rec))


async def list_components(
    conn: asyncpg.Connection,
    *,
    grid_ids: tuple[int, ...] = (),
    category_id: int | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[ComponentRow]:
    where: list[str] = []
    args: list[object] = []
    if grid_ids:
        args.append(list(grid_ids))
        where.append(f"grid_id = ANY(${len(args)}::int[])")
    if category_id is not None:
        args.append(category_id)
        where.append(f"category_id = ${len(args)}")
    if after is not None:
        args.append(after)
        where.append(f"id > ${len(args)}")
    args.append(limit)
    sql = (
        f"SELECT {_COMPONENT_COLS} FROM components"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY id LIMIT ${len(args)}"
    )
    with map_pg_errors():
        rows = await conn.fetch(sql, *args)
    return [ComponentRow(**dict(r)) for r in rows]
