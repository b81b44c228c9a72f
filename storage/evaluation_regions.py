"""The regions' evaluation indicators (区域评价): problems per street (first-level grid) and per
unit grid (second-level), per km², closing rates, and a breakdown by major category.

Theory of operation
-------------------
The figures are the city's (``storage.evaluation._MEMBERS``, imported, not copied) placed where
each case is: a member case counts for its unit grid (``cases.grid_id``, found from the report's
coordinates) or, at the street level, for that grid's parent. One statement counts every region's
figures by indicator and major category; ``region_drill_down`` selects one region's figure by the
same text, so a figure and its list cannot disagree. Figures (all from the city's rules):

- 问题数 ``reported``: the problems found in the period: 受理 ``accepted`` (non-quick reports) plus
  快速处置上报 ``quick_reported``;
- 应结案 ``due``, 结案 ``closed``, 按期结案 ``on_time``, 缓办 ``deferred``, 快速处置结案
  ``quick_closed``;
- 结案率 = 结案/应结案 and 按期结案率 = 按期结案/应结案 (less 缓办 in the deferred-subtracting
  variant), 问题密度 = 问题数 / area (km²).

Cases without a grid (reported without coordinates, or outside every grid) are one row of their
own (``grid_id`` ``None``, "未落网格") when they have a figure.

The area of a grid is computed from its WGS84 lon/lat ring (``grids.boundary``) by the shoelace
formula on a local equirectangular projection: x = R·λ·cos φ₀, y = R·φ, with φ₀ the mean latitude
of the ring's vertices and R = 6,371,008.8 m (the mean Earth radius). For a grid a few kilometres
across the error against the ellipsoid is a few tenths of a percent (the sphere's radius against
the local radii of curvature), well under what a density per km² is read to.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Literal

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidRequest
from storage.evaluation import _WORK_MEM, DrillQuery, _check_period, _rate, fetch_ids
from storage.evaluation_sql import FACT_BRANCHES, counts_text, members_text

Level = Literal["street", "grid"]


class RegionFigure(StrEnum):
    REPORTED = "reported"  # 问题数
    ACCEPTED = "accepted"  # 受理数
    QUICK_REPORTED = "quick_reported"  # 快速处置上报数
    DUE = "due"  # 应结案数
    CLOSED = "closed"  # 结案数
    ON_TIME = "on_time"  # 按期结案数
    DEFERRED = "deferred"  # 缓办数
    QUICK_CLOSED = "quick_closed"  # 快速处置结案数


REGION_FIGURE_LABELS: dict[RegionFigure, str] = {
    RegionFigure.REPORTED: "问题数",
    RegionFigure.ACCEPTED: "受理数",
    RegionFigure.QUICK_REPORTED: "快速处置上报数",
    RegionFigure.DUE: "应结案数",
    RegionFigure.CLOSED: "结案数",
    RegionFigure.ON_TIME: "按期结案数",
    RegionFigure.DEFERRED: "缓办数",
    RegionFigure.QUICK_CLOSED: "快速处置结案数",
}
REGION_RATE_LABELS: dict[str, str] = {"close_rate": "结案率", "on_time_rate": "按期结案率"}
NO_GRID_NAME = "未落网格"

_REGION_CITY = (
    "accepted",
    "quick_reported",
    "due",
    "closed",
    "on_time",
    "deferred",
    "quick_closed",
)
#: 问题数: the problems found in the period, quick ones too.
_REPORTED = " OR ".join(f"({FACT_BRANCHES[i][0]})" for i in ("accepted", "quick_reported"))

#: Every unit grid's figures of the period as rows (grid, major, figure, n): the city's figures
#: by grid (major NULL), and 问题数 by grid and major category; $1 = start, $2 = end. Streets and
#: major categories are sums of these (``region_indicators``).
_REGION_COUNTS = counts_text(
    lambda dep: ("grid_id", "NULL::integer"),
    only=_REGION_CITY,
    # by major category (大类), each named by its smallest category id: a row per grid and major
    extra_counted=(
        "SELECT f.grid_id, k.major_id, 'reported', count(*) FROM case_facts f"
        " JOIN (SELECT id, min(id) OVER (PARTITION BY major_name) AS major_id FROM categories) k"
        f" ON k.id = f.category_id WHERE {_REPORTED} GROUP BY 1, 2"
    ),
)

#: Where a case counts at a level ($3): its unit grid, or at the street level that grid's parent.
_REGION_OF = "CASE WHEN $3::text = 'street' AND g.level = 2 THEN g.parent_id ELSE m.grid_id END"


@functools.cache
def _region_drill_text(figure: str) -> str:
    """One region's figure: $3 = the level, $4 = the grid (NULL: none), $5 = a major category."""
    inds = ["accepted", "quick_reported"] if figure == "reported" else [figure]
    return (
        members_text(inds)
        + "\nSELECT m.case_id FROM members m"
        + " LEFT JOIN grids g ON g.id = m.grid_id LEFT JOIN categories k ON k.id = m.category_id"
        + f" WHERE ({_REGION_OF}) IS NOT DISTINCT FROM $4::integer"
        + " AND ($5::text IS NULL OR k.major_name = $5)"
    )


EARTH_RADIUS_M = 6_371_008.8
_POINT = re.compile(r"\(([-0-9.eE+]+),([-0-9.eE+]+)\)")


def ring_area_km2(ring: list[tuple[float, float]]) -> float:
    """The area of a lon/lat ring (degrees, WGS84) in km², on a local equirectangular projection
    (see the module's docstring for the approximation)."""
    if len(ring) < 3:
        return 0.0
    phi0 = math.radians(sum(lat for _, lat in ring) / len(ring))
    k = math.pi / 180 * EARTH_RADIUS_M
    pts = [(lon * k * math.cos(phi0), lat * k) for lon, lat in ring]
    twice = sum(
        x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True)
    )
    return abs(twice) / 2 / 1_000_000


def parse_polygon(text: str) -> list[tuple[float, float]]:
    """PostgreSQL's polygon text ``((x,y),...)`` as (lon, lat) pairs."""
    return [(float(x), float(y)) for x, y in _POINT.findall(text)]


@dataclasses.dataclass(frozen=True, slots=True)
class RegionRow:
    """One region's figures for a period (``grid_id`` ``None``: the cases without a grid)."""

    grid_id: int | None
    code: str
    name: str
    area_km2: float | None
    counts: dict[str, int]
    #: 问题数 by major category (大类名称), only categories with problems.
    by_category: dict[str, int]
    subtract_deferred: bool

    def count(self, figure: RegionFigure | str) -> int:
        return self.counts[RegionFigure(figure).value]

    @property
    def per_km2(self) -> float | None:
        """问题数 per km² (None without an area)."""
        if not self.area_km2:
            return None
        return self.counts["reported"] / self.area_km2

    @property
    def base(self) -> int:
        due, deferred = self.counts["due"], self.counts["deferred"]
        return due - deferred if self.subtract_deferred else due

    def rates(self) -> dict[str, Fraction | None]:
        return {
            "close_rate": _rate(self.counts["closed"], self.base),
            "on_time_rate": _rate(self.counts["on_time"], self.base),
        }


def _check_level(level: str) -> None:
    if level not in ("street", "grid"):
        raise InvalidRequest(
            "区域层级须为 street（街道）或 grid（单元网格）",
            code="bad_level",
            details={"level": str(level)},
        )


async def region_indicators(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    *,
    level: Level = "street",
    subtract_deferred: bool = False,
) -> list[RegionRow]:
    """Every street's (``level='street'``) or unit grid's (``'grid'``) row of ``[start, end)``,
    ordered by grid code, all grids of the level included (zeros too); the cases without a grid
    last, when they have a figure."""
    _check_period(start, end)
    _check_level(level)
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(_REGION_COUNTS, start, end)
            every = await conn.fetch("SELECT id, code, name, level, parent_id, boundary::text AS b"
                                     " FROM grids ORDER BY code")  # fmt: skip
            majors = dict(await conn.fetch("SELECT id, major_name FROM categories"))
    # the level's region of each grid (as _REGION_OF does in SQL)
    region: dict[int | None, int | None] = {None: None}
    for g in every:
        street = level == "street" and int(g["level"]) == 2
        region[int(g["id"])] = g["parent_id"] if street else int(g["id"])
    grids = [g for g in every if int(g["level"]) == (1 if level == "street" else 2)]
    counts: dict[int | None, dict[str, int]] = {}
    cats: dict[int | None, dict[str, int]] = {}
    for r in rows:
        key = region.get(r["k1"], r["k1"])
        c = counts.setdefault(key, {f.value: 0 for f in RegionFigure})
        c[str(r["indicator"])] += int(r["n"])
        if r["indicator"] == "reported":
            by = cats.setdefault(key, {})
            major = str(majors.get(r["k2"], ""))
            by[major] = by.get(major, 0) + int(r["n"])
    zero = {f.value: 0 for f in RegionFigure}
    out = [
        RegionRow(
            int(g["id"]),
            str(g["code"]),
            str(g["name"]),
            ring_area_km2(parse_polygon(str(g["b"]))),
            counts.get(int(g["id"]), dict(zero)),
            dict(sorted(cats.get(int(g["id"]), {}).items())),
            subtract_deferred,
        )
        for g in grids
    ]
    if None in counts:
        out.append(
            RegionRow(
                None,
                "",
                NO_GRID_NAME,
                None,
                counts[None],
                dict(sorted(cats.get(None, {}).items())),
                subtract_deferred,
            )
        )
    return out


def region_drill_query(
    figure: RegionFigure | str,
    start: datetime,
    end: datetime,
    *,
    grid_id: int | None,
    level: Level = "street",
    major_name: str | None = None,
) -> DrillQuery:
    """The statement of exactly the cases behind one region's figure (see region_drill_down)."""
    _check_period(start, end)
    _check_level(level)
    try:
        fig = RegionFigure(figure)
    except ValueError:
        raise InvalidRequest(
            "未知的评价指标", code="unknown_indicator", details={"indicator": str(figure)}
        ) from None
    return DrillQuery(_region_drill_text(fig.value), (start, end, level, grid_id, major_name))


async def region_drill_down(
    conn: asyncpg.Connection,
    figure: RegionFigure | str,
    start: datetime,
    end: datetime,
    *,
    grid_id: int | None,
    level: Level = "street",
    major_name: str | None = None,
) -> list[int]:
    """The ids of exactly the cases behind one region's figure (ascending), optionally of one
    major category; ``grid_id=None``: the cases without a grid."""
    q = region_drill_query(figure, start, end, grid_id=grid_id, level=level, major_name=major_name)
    return await fetch_ids(conn, q)


#: $1 = start, $2 = end, $3 = the indicator, $4 = the department (or NULL), $5 = how many.
_HOT_SPOTS = (
    members_text(["accepted", "dispatched"])
    + """,
hot AS (
    SELECT category_id, grid_id FROM members
     WHERE indicator = $3 AND ($4::integer IS NULL OR department_id = $4)
),
by_category AS (
    SELECT k.major_name || '·' || k.minor_name AS name, count(*) AS n
      FROM hot h JOIN categories k ON k.id = h.category_id GROUP BY 1
),
by_grid AS (
    SELECT g.name || '（' || g.code || '）' AS name, count(*) AS n
      FROM hot h JOIN grids g ON g.id = h.grid_id GROUP BY 1
)
(SELECT 'category' AS kind, name, n FROM by_category ORDER BY n DESC, name COLLATE "C" LIMIT $5)
UNION ALL
(SELECT 'grid', name, n FROM by_grid ORDER BY n DESC, name COLLATE "C" LIMIT $5)"""
)


@dataclasses.dataclass(frozen=True, slots=True)
class HotSpots:
    """The most reported categories (``大类·小类``) and unit grids (``名称（编码）``) of a period,
    each a list of (name, count), most first, ties by name (code-point order)."""

    categories: list[tuple[str, int]]
    grids: list[tuple[str, int]]


async def hot_spots(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    *,
    department_id: int | None = None,
    limit: int = 5,
) -> HotSpots:
    """The hot spots (问题热点) of ``[start, end)``, counted in one statement: the period's 受理
    cases (with ``department_id``: the cases first dispatched to it in the period, its 派遣数)
    grouped by category and by unit grid, the top ``limit`` of each. A case without a grid counts
    for its category only."""
    _check_period(start, end)
    if not 1 <= limit <= 100:
        raise InvalidRequest(
            "热点数量须在 1 到 100 之间", code="bad_limit", details={"limit": limit}
        )
    figure = "accepted" if department_id is None else "dispatched"
    with map_pg_errors():
        rows = await conn.fetch(_HOT_SPOTS, start, end, figure, department_id, limit)
    out: dict[str, list[tuple[str, int]]] = {"category": [], "grid": []}
    for r in rows:
        out[str(r["kind"])].append((str(r["name"]), int(r["n"])))
    return HotSpots(out["category"], out["grid"])
