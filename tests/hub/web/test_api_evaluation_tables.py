"""Regions and posts over HTTP: a case reported, registered and dispatched through the API moves
exactly its grid's and its actors' figures (before and after, in the current week), the drill-down
lists it, the exports carry the same rows; supervisors see their own post row only, department
staff none of these tables."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.conftest import Api
from tests.helpers import category_id
from tests.hub.web.test_api_cases import report
from tests.hub.web.test_api_evaluation import Week, week

__all__ = ["week"]


async def get(api: Api, url: str, **params: Any) -> dict[str, Any]:
    r = await api.get(url, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def row_of(rows: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any]:
    return next(r for r in rows if r[key] == value)


async def test_a_case_moves_its_grid_and_its_actors(login: Any) -> None:
    viewer, sup, seat, disp = (
        await login("bigscreen"),
        await login("sup01"),
        await login("seat1"),
        await login("dispatch1"),
    )
    grids0 = (await get(viewer, "/api/evaluation/regions", level="grid"))["rows"]
    seats0 = (await get(viewer, "/api/evaluation/posts", post="seat"))["rows"]
    disp0 = (await get(viewer, "/api/evaluation/posts", post="dispatcher"))["rows"]
    case = await report(sup)
    grid_id = case["grid"]["id"]
    assert (await seat.act(case["id"], "register")).status_code == 200
    dep = (await category_id(seat))["default_department_id"]
    assert (await disp.act(case["id"], "dispatch", department_id=dep)).status_code == 200

    regions = await get(viewer, "/api/evaluation/regions", level="grid")
    before, after = row_of(grids0, "grid_id", grid_id), row_of(regions["rows"], "grid_id", grid_id)
    assert after["counts"]["reported"] == before["counts"]["reported"] + 1
    assert after["counts"]["accepted"] == before["counts"]["accepted"] + 1
    assert after["area_km2"] > 0
    assert abs(after["per_km2"] - after["counts"]["reported"] / after["area_km2"]) < 0.01
    assert {c["key"] for c in regions["columns"]} >= {"reported", "per_km2", "close_rate"}
    drill = await get(
        viewer,
        "/api/evaluation/cases",
        table="regions",
        level="grid",
        key=str(grid_id),
        figure="reported",
    )
    assert case["id"] in [c["id"] for c in drill["cases"]]
    assert drill["count"] == after["counts"]["reported"]

    seats = (await get(viewer, "/api/evaluation/posts", post="seat"))["rows"]
    me0, me = row_of(seats0, "user_id", seat.user["id"]), row_of(seats, "user_id", seat.user["id"])
    assert me["counts"]["registered"] == me0["counts"]["registered"] + 1
    assert me["counts"]["decided"] == me0["counts"]["decided"] + 1
    assert me["rates"]["register_on_time_rate"]["den"] == me["counts"]["registered"]
    others = [r for r in seats if r["user_id"] != seat.user["id"]]
    assert others == [r for r in seats0 if r["user_id"] != seat.user["id"]]
    d0 = row_of(disp0, "user_id", disp.user["id"])
    d1 = row_of(
        (await get(viewer, "/api/evaluation/posts", post="dispatcher"))["rows"],
        "user_id",
        disp.user["id"],
    )
    assert d1["counts"]["dispatched"] == d0["counts"]["dispatched"] + 1
    drill = await get(
        viewer,
        "/api/evaluation/cases",
        table="posts",
        post="seat",
        key=str(seat.user["id"]),
        figure="registered",
    )
    assert (
        case["id"] in [c["id"] for c in drill["cases"]]
        and drill["count"] == me["counts"]["registered"]
    )

    # The export carries the same rows.
    r = await viewer.get("/api/evaluation/export.csv", params={"table": "posts", "post": "seat"})
    assert r.status_code == 200
    got = {row["姓名"]: row for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))}
    assert int(got[me["name"]]["立案数"]) == me["counts"]["registered"]
    r = await viewer.get(
        "/api/evaluation/export.xlsx", params={"table": "regions", "level": "grid"}
    )
    assert r.status_code == 200 and r.content.startswith(b"PK")


async def test_who_sees_regions_and_posts(week: tuple[Week, dict[str, Api]], login: Any) -> None:
    w, u = week
    sup = u["sup"]
    mine = await get(sup, "/api/evaluation/posts", post="supervisor")
    assert [r["user_id"] for r in mine["rows"]] == [sup.user["id"]]
    for params in ({"post": "seat"}, {"post": "agent"}):
        r = await sup.get("/api/evaluation/posts", params=params)
        assert r.status_code == 403 and r.json()["error"]["code"] == "other_post"
    other = next(
        r["user_id"]
        for r in (await get(u["viewer"], "/api/evaluation/posts", post="supervisor"))["rows"]
        if r["user_id"] != sup.user["id"]
    )
    r = await sup.get(
        "/api/evaluation/cases",
        params={"table": "posts", "post": "supervisor", "key": other, "figure": "reported"},
    )
    assert r.status_code == 403
    r = await sup.get("/api/evaluation/cases", params={"table": "city", "figure": "accepted"})
    assert r.status_code == 403
    r = await sup.get("/api/evaluation/regions")
    assert r.status_code == 403
    dept = u["dept_b"]
    for url, params in (
        ("/api/evaluation/regions", {}),
        ("/api/evaluation/posts", {"post": "seat"}),
        ("/api/evaluation/cases", {"table": "regions", "key": "none", "figure": "reported"}),
        ("/api/evaluation/export.csv", {"table": "regions"}),
    ):
        r = await dept.get(url, params=params)
        assert r.status_code == 403, (url, r.text)
    # The week's cases were reported without a location: the "未落网格" row.
    regions = await get(u["viewer"], "/api/evaluation/regions", day="2028-03-08")
    none = row_of(regions["rows"], "grid_id", None)
    assert none["name"] == "未落网格" and none["counts"]["reported"] == 3
    drill = await get(
        u["viewer"],
        "/api/evaluation/cases",
        table="regions",
        key="none",
        figure="reported",
        day="2028-03-08",
    )
    assert sorted(c["id"] for c in drill["cases"]) == sorted([w.on_time, w.rejected, w.late])
