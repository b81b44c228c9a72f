"""GET /api/cases/markers: every open case's map marker in one answer (the big screen's first load).

A marker is what the map and its counters draw: the case's number, place, state, category,
department, countdown level (正常/黄灯/红灯, or paused) and whether it is urgent (紧急) or overdue, with
its version so that live events newer than the answer win. Nothing personal (no reporter, contact
name or phone, description or address). Names are given once per answer (``categories``,
``departments``: id -> name), not per marker. Department staff see only their department's cases,
field supervisors their grids' (the case list's scope).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.core import deadlines as dl
from hub.core import workflow as wf
from hub.state import HubState
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, params_of
from hub.web.routes.common import hub
from storage.db import connect
from storage.markers import MarkerRow, open_markers

#: Who reads the markers: everyone who works the cases or watches them (not the hotline's agents).
MARKER_READERS = frozenset(
    {
        wf.Role.ADMIN,
        wf.Role.SEAT,
        wf.Role.DISPATCHER,
        wf.Role.VIEWER,
        wf.Role.DEPARTMENT,
        wf.Role.SUPERVISOR,
    }
)
#: The open states, in a fixed order (the query's argument).
OPEN_STATES: tuple[str, ...] = tuple(sorted(s.value for s in wf.OPEN_STATES))
MAX_MARKERS = 50_000


class MarkerQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_MARKERS)] = 20_000


def _level(h: HubState, m: MarkerRow, now: datetime) -> str | None:
    """The countdown level ("normal", "warning", "overdue", "paused"), or None without a clock."""
    svc = h.cases
    clock = dl.Clock(
        wf.CaseState(m.state),
        m.deadline,
        m.time_limit_s or svc.time_limit_s(m.category_id, m.is_urgent),
        m.paused_remaining_s,
        m.clock_since,
        m.pending_extension_until,
    )
    if clock.paused:
        return "paused"
    if not clock.running or clock.deadline is None:
        return None
    if now >= clock.deadline:
        # No working time left (share >= 1): 红灯, without counting the working time overdue, which
        # for a case overdue for months walks every day since (the summary's `remaining_s`).
        return dl.Level.OVERDUE.value
    cd = dl.countdown(clock, svc.calendar, svc.policy, now)
    return None if cd is None else cd.level.value


def marker_json(h: HubState, m: MarkerRow, now: datetime) -> dict[str, Any]:
    return {
        "id": m.id,
        "case_no": m.case_no,
        "version": m.version,
        "lon": None if m.lon is None else round(m.lon, 6),
        "lat": None if m.lat is None else round(m.lat, 6),
        "state": m.state,
        "category_id": m.category_id,
        "department_id": m.department_id,
        "level": _level(h, m, now),
        "urgent": m.is_urgent,
        "overdue": dl.is_overdue(m.state, m.deadline, m.paused_remaining_s, now),
        "reported_at": m.reported_at,
    }


async def list_markers(request: Request, p: Principal) -> Response:
    h = hub(request)
    args = params_of(request, MarkerQuery)
    scope = h.cases.scope_for(p.actor)
    async with connect(h.pool) as conn:
        rows = await open_markers(conn, OPEN_STATES, scope, limit=args.limit + 1)
    truncated = len(rows) > args.limit
    rows = rows[: args.limit]
    now = h.cases.clock()
    cats, deps = h.catalog.categories, h.catalog.departments
    cat_ids = {m.category_id for m in rows}
    dep_ids = {m.department_id for m in rows if m.department_id is not None}
    return JSONResponse(
        {
            "items": [marker_json(h, m, now) for m in rows],
            "categories": {i: cats[i].minor_name for i in sorted(cat_ids) if i in cats},
            "departments": {i: deps[i].name for i in sorted(dep_ids) if i in deps},
            "truncated": truncated,
            "at": now,
        }
    )


MARKER_ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET",
        "/api/cases/markers",
        list_markers,
        "全部在办案件的地图标记（一次返回；不含个人信息；部门人员只看本部门）",
        MARKER_READERS,
        params=MarkerQuery,
        tag="cases",
    ),
]
