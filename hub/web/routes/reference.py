"""``/api`` reference data: categories, departments, grids (with boundaries), components."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hub.cases.service import check_coordinates
from hub.core.codes import ComponentId
from hub.core.errors import (
    NotFound,
)
from hub.core.workcal import time_limit_label
from hub.state import HubState
from hub.web.http import JSONResponse
from hub.web.routes.common import (
    hub,
    path_int,
    principal,
    query_float,
    query_int,
)
from storage.catalog import (
    ComponentRow,
    get_component,
    grid_at,
    grid_boundaries,
    grid_boundary,
    list_components,
)
from storage.db import connect

# -- reference data ------------------------------------------------------------------------


async def list_categories(request: Request) -> Response:
    await principal(request)
    cats = hub(request).catalog.categories.values()
    return JSONResponse(
        {
            "items": [
                {
                    "id": c.id,
                    "code": c.code,
                    "kind": c.kind,
                    "major_code": c.major_code,
                    "major_name": c.major_name,
                    "minor_code": c.minor_code,
                    "name": c.minor_name,
                    "time_limit": None
                    if c.time_limit_value is None
                    else {
                        "value": c.time_limit_value,
                        "unit": c.time_limit_unit,
                        "text": c.time_limit_text,
                    },
                    "time_limit_label": time_limit_label(c.time_limit_text) or None,
                    "urgency": c.urgency,
                    "default_department_id": c.default_department_id,
                }
                for c in cats
                if c.active
            ]
        }
    )


async def list_departments(request: Request) -> Response:
    await principal(request)
    deps = hub(request).catalog.departments.values()
    return JSONResponse(
        {
            "items": [
                {"id": d.id, "code": d.code, "name": d.name, "is_coordinating": d.is_coordinating}
                for d in deps
                if d.active
            ]
        }
    )


def _grid_json(g: Any) -> dict[str, Any]:
    return {
        "id": g.id,
        "code": g.code,
        "name": g.name,
        "level": g.level,
        "parent_id": g.parent_id,
        "area_m2": g.area_m2,
    }


async def list_grids(request: Request) -> Response:
    await principal(request)
    level = query_int(request, "level", lo=1, hi=2)
    parent = query_int(request, "parent_id")
    with_boundary = request.query_params.get("with_boundary", "") in ("1", "true")
    items = [
        _grid_json(g)
        for g in hub(request).catalog.grids.values()
        if (level is None or g.level == level) and (parent is None or g.parent_id == parent)
    ]
    if with_boundary:
        async with connect(hub(request).pool) as conn:
            rings = await grid_boundaries(conn, level)
        for item in items:
            item["boundary"] = rings.get(item["id"])
    return JSONResponse({"items": items})


async def get_grid(request: Request) -> Response:
    await principal(request)
    h = hub(request)
    gid = path_int(request, "grid_id")
    g = h.catalog.grids.get(gid)
    if g is None:
        raise NotFound("网格不存在")
    async with connect(h.pool) as conn:
        boundary = await grid_boundary(conn, gid)
    return JSONResponse({**_grid_json(g), "boundary": boundary})


async def lookup_grid(request: Request) -> Response:
    await principal(request)
    h = hub(request)
    lon, lat = query_float(request, "lon"), query_float(request, "lat")
    check_coordinates(lon, lat)
    async with connect(h.pool) as conn:
        gid = await grid_at(conn, lon, lat)
    if gid is None:
        raise NotFound("该位置不在任何网格内", code="outside_city")
    return JSONResponse(_grid_json(h.catalog.grids[gid]))


def _component_json(c: ComponentRow, h: HubState) -> dict[str, Any]:
    cat = h.catalog.categories.get(c.category_id)
    code = ComponentId.parse(c.id)
    return {
        "id": c.id,
        "county_code": code.county,
        "class_code": code.class_code,
        "serial": code.serial,
        "category": None
        if cat is None
        else {"id": cat.id, "code": cat.code, "name": cat.minor_name},
        "name": c.name,
        "owner_department_id": c.owner_department_id,
        "maintainer_department_id": c.maintainer_department_id,
        "grid_id": c.grid_id,
        "state": c.state,
        "lon": c.lon,
        "lat": c.lat,
        "data_source": c.data_source,
        "installed_on": c.installed_on,
        "updated_at": c.updated_at,
    }


async def list_components_endpoint(request: Request) -> Response:
    await principal(request)
    h = hub(request)
    grid_id = query_int(request, "grid_id")
    grid_ids = tuple(sorted(h.catalog.expand_grids([grid_id]))) or (-1,) if grid_id else ()
    after = request.query_params.get("after")
    if after is not None:
        ComponentId.parse(after)
    limit = query_int(request, "limit", lo=1, hi=500) or 100
    async with connect(h.pool) as conn:
        rows = await list_components(
            conn,
            grid_ids=grid_ids,
            category_id=query_int(request, "category_id"),
            after=after,
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "items": [_component_json(c, h) for c in rows],
            "next_after": rows[-1].id if more and rows else None,
        }
    )


async def get_component_endpoint(request: Request) -> Response:
    await principal(request)
    h = hub(request)
    cid = request.path_params["component_id"]
    ComponentId.parse(cid)
    async with connect(h.pool) as conn:
        row = await get_component(conn, cid)
    if row is None:
        raise NotFound("部件不存在", details={"component_id": cid})
    return JSONResponse(_component_json(row, h))
