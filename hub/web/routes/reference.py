"""``/api`` reference data: categories, departments, grids (with boundaries), components."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.cases.service import check_coordinates
from hub.core.codes import ComponentId
from hub.core.errors import (
    NotFound,
)
from hub.core.workcal import time_limit_label
from hub.state import HubState
from hub.web.auth import Principal
from hub.web.http import JSONResponse, params_of
from hub.web.routes.common import Id, hub
from storage.catalog import (
    ComponentRow,
    get_component,
    grid_at,
    grid_boundaries,
    grid_boundary,
    list_components,
)
from storage.db import connect

#: A component's code: 6-digit county, 2-digit major and minor class, 6-digit serial.
ComponentCode = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{16}$", description="16 位部件编码（区县码 + 大类 + 小类 + 序号）"
    ),
]


class GridListQuery(msgspec.Struct, forbid_unknown_fields=True):
    level: Annotated[int, msgspec.Meta(ge=1, le=2, description="1 街道 / 2 单元网格")] | None = None
    parent_id: Id | None = None
    with_boundary: Annotated[bool, msgspec.Meta(description="附带边界坐标")] = False


class GridRef(msgspec.Struct, forbid_unknown_fields=True):
    grid_id: Id


class Point(msgspec.Struct, forbid_unknown_fields=True):
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180, description="经度 WGS84")]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90, description="纬度 WGS84")]


class ComponentListQuery(msgspec.Struct, forbid_unknown_fields=True):
    grid_id: Annotated[Id, msgspec.Meta(description="一级网格包含其下二级网格")] | None = None
    category_id: Id | None = None
    after: Annotated[ComponentCode, msgspec.Meta(description="上一页最后的部件编码")] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100


class ComponentRef(msgspec.Struct, forbid_unknown_fields=True):
    component_id: ComponentCode


# -- reference data ------------------------------------------------------------------------


async def list_categories(request: Request, p: Principal) -> Response:
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


async def list_departments(request: Request, p: Principal) -> Response:
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


async def list_grids(request: Request, p: Principal) -> Response:
    args = params_of(request, GridListQuery)
    level, parent = args.level, args.parent_id
    items = [
        _grid_json(g)
        for g in hub(request).catalog.grids.values()
        if (level is None or g.level == level) and (parent is None or g.parent_id == parent)
    ]
    if args.with_boundary:
        async with connect(hub(request).pool) as conn:
            rings = await grid_boundaries(conn, level)
        for item in items:
            item["boundary"] = rings.get(item["id"])
    return JSONResponse({"items": items})


async def get_grid(request: Request, p: Principal) -> Response:
    h = hub(request)
    gid = params_of(request, GridRef).grid_id
    g = h.catalog.grids.get(gid)
    if g is None:
        raise NotFound("网格不存在")
    async with connect(h.pool) as conn:
        boundary = await grid_boundary(conn, gid)
    return JSONResponse({**_grid_json(g), "boundary": boundary})


async def lookup_grid(request: Request, p: Principal) -> Response:
    h = hub(request)
    point = params_of(request, Point)
    lon, lat = point.lon, point.lat
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


async def list_components_endpoint(request: Request, p: Principal) -> Response:
    h = hub(request)
    args = params_of(request, ComponentListQuery)
    grid_id, after, limit = args.grid_id, args.after, args.limit
    grid_ids = tuple(sorted(h.catalog.expand_grids([grid_id]))) or (-1,) if grid_id else ()
    async with connect(h.pool) as conn:
        rows = await list_components(
            conn,
            grid_ids=grid_ids,
            category_id=args.category_id,
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


async def get_component_endpoint(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, ComponentRef).component_id
    async with connect(h.pool) as conn:
        row = await get_component(conn, cid)
    if row is None:
        raise NotFound("部件不存在", details={"component_id": cid})
    return JSONResponse(_component_json(row, h))
