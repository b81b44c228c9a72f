"""Reference data queries: categories, departments, grids (small tables, cached by the hub)."""

from __future__ import annotations

import dataclasses
import re

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


async def grid_boundary(conn: asyncpg.Connection, grid_id: int) -> list[list[float]] | None:
    with map_pg_errors():
        text = await conn.fetchval("SELECT boundary::text FROM grids WHERE id = $1", grid_id)
    if text is None:
        return None
    return [[float(x), float(y)] for x, y in _POINT.findall(text)]
