"""``GET /api/evaluation/weekly``: the weekly report (周报) of the week containing ``day``, for the
city (department staff: their department's), rendered by ``hub.web.weekly``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.web import evaluation_views as v
from hub.web import weekly as wk
from hub.web.auth import Principal
from hub.web.evaluation_query import Day
from hub.web.http import ApiRoute, params_of
from hub.web.routes.common import hub
from hub.web.routes.evaluation_tables import department_name, department_rows
from storage import evaluation as ev
from storage import evaluation_regions as er
from storage.db import connect


class WeeklyQuery(msgspec.Struct, forbid_unknown_fields=True):
    day: Annotated[Day, msgspec.Meta(description="周内任一天，默认今天（周一开始）")] | None = None
    subtract_deferred: bool | None = None


HOT_SPOTS = 5


async def get_weekly(request: Request, p: Principal) -> Response:
    args = params_of(request, WeeklyQuery)
    h = hub(request)
    tz = h.cases.calendar.tz
    today = h.cases.clock().astimezone(tz).date()
    period = v.make_period("week", args.day or today, tz)
    previous = v.previous_period(period, tz)
    subtract = (
        args.subtract_deferred
        if args.subtract_deferred is not None
        else h.settings.evaluation_subtract_deferred
    )
    dep = v.own_department(p)
    figures: list[dict[str, Any]] = []
    async with connect(h.pool) as conn:
        formula, _ = await v.current_formula(conn)
        for per in (period, previous):
            ind = await ev.city_indicators(
                conn, per.start, per.end, department_id=dep, subtract_deferred=subtract
            )
            figures.append(v.figures_json(ind, formula))
        # Hot spots: the week's reports (a department: the cases dispatched to it) by category
        # and by grid, counted in SQL from the figure's own members.
        hot = await er.hot_spots(conn, period.start, period.end, department_id=dep, limit=HOT_SPOTS)
    rows = await department_rows(request, p, period, subtract)
    data = wk.WeeklyData(
        city_name="",
        scope="全市" if dep is None else (department_name(request, dep) or "本部门"),
        period=period,
        previous=previous,
        now=figures[0],
        before=figures[1],
        departments=rows,
        hot_categories=hot.categories,
        hot_grids=hot.grids,
        generated_at=h.cases.clock().astimezone(tz),
    )
    return Response(
        wk.render_weekly(data),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": wk.CSP, "Cache-Control": "no-store"},
    )


ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET",
        "/api/evaluation/weekly",
        get_weekly,
        "周报（可打印的 HTML，A4）：本周指标与环比、得分、部门排名、督办部门、超期、热点",
        v.EVAL_ROLES,
        params=WeeklyQuery,
        errors=(422,),
        produces=("text/html",),
        tag="evaluation",
    ),
]
