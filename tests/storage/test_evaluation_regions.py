"""The regions' indicators (``storage.evaluation_regions``) on a real PostgreSQL, from cases driven
through the real workflow with an injected clock and reported at coordinates inside the demo city's
grids: a hand-counted week per street and per unit grid, by major category, every drill-down list;
the grid areas from their polygons."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.state import HubState
from storage import evaluation_regions as er
from storage.db import connect
from storage.errors import InvalidRequest
from tests.storage.test_evaluation import WEEK, Driver, at, drive, m

__all__ = ["drive"]  # the fixture, imported for this module's tests

A = wf.Action


async def report_at(
    d: Driver,
    when: datetime,
    point: tuple[float, float] | None,
    category: int,
    *,
    quick: bool = False,
) -> int:
    d.now = when
    new = NewCase(
        category_id=category,
        source="public",
        description="区域评价测试",
        address="测试路1号",
        lon=None if point is None else point[0],
        lat=None if point is None else point[1],
        quick=quick,
        attachment_ids=(await d.photo(),) if quick else (),
    )
    body = await d.svc.create(d.actor, new)
    d.version[body["id"]] = body["version"]
    return int(body["id"])


def centre(ring: list[tuple[float, float]]) -> tuple[float, float]:
    return (
        sum(p[0] for p in ring) / len(ring),
        sum(p[1] for p in ring) / len(ring),
    )


async def test_a_hand_counted_region_week(drive: tuple[Driver, list[int]]) -> None:
    d, (dep, _) = drive
    async with connect(d.state.pool) as conn:
        streets = await conn.fetch("SELECT id, code FROM grids WHERE level = 1 ORDER BY code")
        s1, s2 = int(streets[0]["id"]), int(streets[1]["id"])
        kids = await conn.fetch(
            "SELECT id, parent_id, boundary::text AS b, area_m2 FROM grids WHERE level = 2"
            " ORDER BY code"
        )
    g1, g2 = [k for k in kids if k["parent_id"] == s1][:2]
    g3 = next(k for k in kids if k["parent_id"] == s2)
    pt = {int(k["id"]): centre(er.parse_polygon(k["b"])) for k in (g1, g2, g3)}
    cats = d.state.catalog.categories.values()
    x = next(c for c in cats if c.id == d.category_id)  # limited to 4 working hours
    y = next(c for c in cats if c.active and c.major_name != x.major_name)
    i1, i2, i3 = int(g1["id"]), int(g2["id"]), int(g3["id"])

    async def dispatched(when: datetime, point: tuple[float, float] | None) -> int:
        cid = await report_at(d, when - timedelta(minutes=10), point, x.id)
        await d.path(
            cid, m(A.REGISTER, when - timedelta(minutes=5)), m(A.DISPATCH, when, department_id=dep)
        )
        return cid

    p0 = await dispatched(at(3, 17), pt[i2])  # before the week, in g2, due Monday 11:30
    r1 = await dispatched(at(6, 9, 10), pt[i1])  # g1: handled and closed on time
    await d.path(
        r1,
        m(A.ACCEPT, at(6, 9, 20)),
        m(A.FEEDBACK, at(6, 10)),
        m(A.REQUEST_VERIFY, at(6, 10, 10)),
        m(A.VERIFY_PASS, at(6, 10, 20)),
        m(A.CLOSE, at(6, 10, 30)),
    )
    r2 = await report_at(d, at(6, 9), pt[i1], y.id)  # g1, the other major category: rejected
    await d.act(r2, A.REJECT, at(6, 9, 30))
    r3 = await dispatched(at(6, 9, 10), pt[i2])  # g2: due 15:40, never handled
    r4 = await report_at(d, at(6, 9), pt[i3], x.id, quick=True)  # g3 (street 2): quick
    await d.path(
        r4,
        m(A.QUICK_COMPLETE, at(6, 9, 30)),
        m(A.REQUEST_VERIFY, at(6, 9, 40)),
        m(A.VERIFY_PASS, at(6, 9, 50)),
        m(A.CLOSE, at(6, 10)),
    )
    r5 = await report_at(d, at(6, 9), None, x.id)  # no coordinates: no grid

    async def table(level: er.Level, **kw: Any) -> dict[int | None, er.RegionRow]:
        async with connect(d.state.pool) as conn:
            return {
                r.grid_id: r for r in await er.region_indicators(conn, *WEEK, level=level, **kw)
            }

    async def lists(level: er.Level, gid: int | None, major: str | None = None) -> dict[str, Any]:
        async with connect(d.state.pool) as conn:
            out = {}
            for f in er.RegionFigure:
                ids = await er.region_drill_down(
                    conn, f, *WEEK, grid_id=gid, level=level, major_name=major
                )
                if ids:
                    out[f.value] = ids
            return out

    # By hand. Street 1 (g1, g2): 问题 r1 r2 r3 (受理 the same); 应结案 p0 (Mon 11:30, open),
    # r1 (closed), r3 (15:40, open); 结案 and 按期 r1; by category: x 2 (r1 r3), y 1 (r2).
    # Street 2 (g3): r4, a quick case: 问题 and 快速处置上报 r4, 快速处置结案 r4.
    # Without a grid: r5 (受理, 问题).
    streets_want: dict[int | None, dict[str, list[int]]] = {
        s1: {
            "reported": [r1, r2, r3],
            "accepted": [r1, r2, r3],
            "due": [p0, r1, r3],
            "closed": [r1],
            "on_time": [r1],
        },
        s2: {"reported": [r4], "quick_reported": [r4], "quick_closed": [r4]},
        None: {"reported": [r5], "accepted": [r5]},
    }
    st = await table("street")
    assert len([k for k in st if k is not None]) == len(streets)
    for gid, want in streets_want.items():
        want = {k: sorted(v) for k, v in want.items()}
        assert {k: v for k, v in st[gid].counts.items() if v} == {
            k: len(v) for k, v in want.items()
        }
        assert await lists("street", gid) == want
    assert all(not any(r.counts.values()) for k, r in st.items() if k not in streets_want)
    assert st[s1].by_category == dict(sorted({x.major_name: 2, y.major_name: 1}.items()))
    assert await lists("street", s1, y.major_name) == {"reported": [r2], "accepted": [r2]}
    assert st[s1].rates() == {"close_rate": Fraction(1, 3), "on_time_rate": Fraction(1, 3)}
    assert st[s2].rates() == {"close_rate": None, "on_time_rate": None}
    assert st[None].name == er.NO_GRID_NAME and st[None].per_km2 is None

    # Unit grids: g1 r1 r2; g2 r3 and p0's due; g3 r4.
    gr = await table("grid")
    assert await lists("grid", i1) == {
        "reported": sorted([r1, r2]),
        "accepted": sorted([r1, r2]),
        "due": [r1],
        "closed": [r1],
        "on_time": [r1],
    }
    assert await lists("grid", i2) == {
        "reported": [r3],
        "accepted": [r3],
        "due": sorted([p0, r3]),
    }
    assert gr[i3].counts["quick_reported"] == 1 and gr[i3].counts["reported"] == 1
    # Density: 问题数 / the area computed from the polygon (the demo stores its own, from the
    # ellipsoid: they agree within half a percent).
    for g in (g1, g2):
        row = gr[int(g["id"])]
        assert row.area_km2 is not None
        assert abs(row.area_km2 * 1e6 - float(g["area_m2"])) <= 0.005 * float(g["area_m2"])
        assert row.per_km2 == row.counts["reported"] / row.area_km2
    assert sum(r.counts["reported"] for r in gr.values()) == 5


def test_ring_area() -> None:
    # A 0.01° x 0.01° square at the equator: (0.01 · π/180 · R)² = 1.2364 km².
    sq = [(0.0, 0.0), (0.01, 0.0), (0.01, 0.01), (0.0, 0.01)]
    side = 0.01 * math.pi / 180 * er.EARTH_RADIUS_M / 1000
    assert abs(er.ring_area_km2(sq) - side * side) < 1e-5 * side * side  # cos 0.005° ≈ 1
    # At 60° north the same square in degrees is half as wide (cos 60° = 1/2), either orientation.
    north = [(lon, lat + 60) for lon, lat in reversed(sq)]
    assert abs(er.ring_area_km2(north) - side * side / 2) < 0.001 * side * side
    assert er.ring_area_km2(sq[:2]) == 0.0


async def test_refusals(hub_state: HubState) -> None:
    async with connect(hub_state.pool) as conn:
        with pytest.raises(InvalidRequest) as exc:
            await er.region_indicators(conn, *WEEK, level="city")  # type: ignore[arg-type]
        assert exc.value.code == "bad_level"
        with pytest.raises(InvalidRequest) as exc:
            await er.region_drill_down(conn, "nope", *WEEK, grid_id=None)
        assert exc.value.code == "unknown_indicator"
