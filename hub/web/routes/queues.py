"""``GET /api/queues`` (the signed-in user's work queues with their counts, and the state groups) and
``GET /api/calendar`` (the working-time calendar the pages count deadlines with).

The definitions are pure (``hub/core/queues.py``, ``hub/core/workcal.py``); these handlers only
count within the user's scope and serialise.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hub.core import queues as wq
from hub.core.workcal import WorkCalendar
from hub.web.auth import ALL_ROLES, Principal
from hub.web.http import ApiRoute, JSONResponse
from hub.web.routes.common import hub
from storage.db import connect, map_pg_errors

#: The calendar window served: this many days back (overdue cases) and ahead (deadlines).
CALENDAR_DAYS_BACK = 60
CALENDAR_DAYS_AHEAD = 400


async def list_queues(request: Request, p: Principal) -> Response:
    h = hub(request)
    mine = wq.queues_for(p.role)
    states = sorted({s.value for qu in mine for s in qu.states})
    counts: dict[str, int] = {}
    if states:
        scope = h.cases.scope_for(p.actor)
        where = ["c.state = ANY($1::text[])"]
        args: list[Any] = [states]
        if scope.department_id is not None:
            args.append(scope.department_id)
            where.append(f"c.department_id = ${len(args)}")
        if scope.grid_ids is not None:
            args.append(list(scope.grid_ids))
            where.append(f"c.grid_id = ANY(${len(args)}::int[])")
        sql = (
            "SELECT c.state, count(*) AS n FROM cases c WHERE "
            + " AND ".join(where)
            + " GROUP BY c.state"
        )
        async with connect(h.pool) as conn:
            with map_pg_errors():
                rows = await conn.fetch(sql, *args)
        counts = {r["state"]: int(r["n"]) for r in rows}
    default = wq.default_queue(p.role)
    return JSONResponse(
        {
            "items": [
                wq.queue_json(qu, sum(counts.get(s.value, 0) for s in qu.states)) for qu in mine
            ],
            "default": None if default is None else default.name,
            "state_groups": {k: [s.value for s in v] for k, v in wq.STATE_GROUPS.items()},
        }
    )


def calendar_json(cal: WorkCalendar, start: date, end: date) -> dict[str, Any]:
    """The calendar as the pages read it (realtime_ui/static/countdown.js), for days start..end."""
    return {
        "timezone": cal.tz.key,
        "periods": [[f"{s:%H:%M}", f"{e:%H:%M}"] for s, e in cal.periods],
        "exceptions": {
            d.isoformat(): flag for d, flag in sorted(cal.exceptions.items()) if start <= d <= end
        },
        "from": start.isoformat(),
        "until": end.isoformat(),
    }


async def get_calendar(request: Request, p: Principal) -> Response:
    h = hub(request)
    cal = h.cases.calendar
    today = h.cases.clock().astimezone(cal.tz).date()
    out = calendar_json(
        cal, today - timedelta(days=CALENDAR_DAYS_BACK), today + timedelta(days=CALENDAR_DAYS_AHEAD)
    )
    out["default_time_limit_hours"] = h.cases.default_time_limit_hours
    return JSONResponse(out)


ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET",
        "/api/queues",
        list_queues,
        "我的待办（各角色的工作队列与件数，含状态分组）",
        ALL_ROLES,
        tag="cases",
    ),
    ApiRoute(
        "GET",
        "/api/calendar",
        get_calendar,
        "工作日历（工作时段与前后一段时间的节假日、调休）",
        ALL_ROLES,
        tag="reference",
    ),
]
