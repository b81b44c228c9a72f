"""``/api/evaluation/regions`` (streets and unit grids: problems, per km², closing rates) and
``/api/evaluation/posts`` (supervisors, seats, dispatchers, hotline agents per user), from
``storage.evaluation_regions`` and ``storage.evaluation_posts``; the row builders are shared with
the drill-down and the exports (``hub/web/routes/evaluation.py``).

Who sees what: regions are the centre's view (admin, seat, dispatcher, viewer; department staff
403). Posts: the same roles see every post; a supervisor or a hotline agent sees their own row of
their own post only (another post: 403 ``other_post``); department staff 403."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.core import scoring
from hub.core.errors import Forbidden
from hub.core.workflow import Role
from hub.web import evaluation_views as v
from hub.web.auth import Principal
from hub.web.evaluation_query import PeriodQuery, period_of, subtract_of
from hub.web.http import ApiRoute, JSONResponse, params_of
from hub.web.routes.common import hub
from storage import evaluation_posts as ep
from storage import evaluation_regions as er
from storage import evaluation_sources as es
from storage import evaluation_units as eu
from storage.db import connect

#: Regions: the centre's roles (department staff see their department, not the map's figures).
REGION_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
#: Posts: the centre's roles, and supervisors and agents for their own row.
POST_ROLES: frozenset[Role] = REGION_ROLES | {Role.SUPERVISOR, Role.AGENT}
OWN_ROW_ROLES = frozenset({Role.SUPERVISOR, Role.AGENT})

LevelParam = Annotated[er.Level, msgspec.Meta(description="street（街道）或 grid（单元网格）")]
PostParam = Annotated[
    ep.Post,
    msgspec.Meta(description="supervisor 监督员、seat 受理坐席、dispatcher 派遣员、agent 热线坐席"),
]


class RegionQuery(PeriodQuery, forbid_unknown_fields=True):
    level: LevelParam = "street"


class PostQuery(PeriodQuery, forbid_unknown_fields=True):
    post: PostParam | None = None  # default: a supervisor's or agent's own post, else supervisor


REGION_COUNT_LABELS: dict[str, str] = {f.value: lbl for f, lbl in er.REGION_FIGURE_LABELS.items()}
POST_COUNT_LABELS: dict[str, str] = {f.value: lbl for f, lbl in ep.POST_FIGURE_LABELS.items()}


def region_columns() -> list[dict[str, str]]:
    return [
        *({"key": k, "label": lbl, "kind": "count"} for k, lbl in REGION_COUNT_LABELS.items()),
        {"key": "area_km2", "label": "面积（km²）", "kind": "number"},
        {"key": "per_km2", "label": "问题密度（件/km²）", "kind": "number"},
        *({"key": k, "label": lbl, "kind": "rate"} for k, lbl in er.REGION_RATE_LABELS.items()),
    ]


def _rounded(x: float | None, places: int = 4) -> float | None:
    return None if x is None else round(x, places)


async def region_rows(
    conn: asyncpg.Connection, period: v.Period, level: er.Level, subtract: bool
) -> list[dict[str, Any]]:
    rows = await er.region_indicators(
        conn, period.start, period.end, level=level, subtract_deferred=subtract
    )
    out: list[dict[str, Any]] = []
    for r in rows:
        rates = r.rates()
        out.append(
            {
                "grid_id": r.grid_id,
                "code": r.code,
                "name": r.name,
                "area_km2": _rounded(r.area_km2),
                "counts": dict(r.counts),
                "per_km2": _rounded(r.per_km2, 2),
                "rates": {
                    "close_rate": v.rate_json(rates["close_rate"], r.counts["closed"], r.base),
                    "on_time_rate": v.rate_json(rates["on_time_rate"], r.counts["on_time"], r.base),
                },
                "by_category": dict(r.by_category),
            }
        )
    return out


def post_of(p: Principal, post: ep.Post | None) -> ep.Post:
    """The post asked for; by default a supervisor's or agent's own, otherwise supervisors."""
    if post is not None:
        return post
    if p.role is Role.AGENT:
        return "agent"
    return "supervisor"


def post_scope(p: Principal, post: str) -> int | None:
    """The one user whose row a supervisor or agent may see (their own, of their own post)."""
    if p.role not in OWN_ROW_ROLES:
        return None
    if post != p.role.value:
        raise Forbidden("只能查看本人岗位的评价", code="other_post", details={"post": post})
    return p.user.id


def post_columns(post: str) -> list[dict[str, str]]:
    return [
        *(
            {"key": f.value, "label": POST_COUNT_LABELS[f.value], "kind": "count"}
            for f in ep.POST_FIGURES[post]
        ),
        *(
            {"key": k, "label": lbl, "kind": "rate"}
            for k, (lbl, _n, _d) in ep.POST_RATES[post].items()
        ),
    ]


def post_allowances(request: Request) -> ep.PostAllowances:
    """The city's post allowances (``CITYHUB_POST_ALLOWANCES``, checked at startup)."""
    return ep.PostAllowances.parse(hub(request).settings.post_allowances)


async def post_rows(
    conn: asyncpg.Connection,
    period: v.Period,
    post: ep.Post,
    user_id: int | None,
    allowances: ep.PostAllowances,
) -> list[dict[str, Any]]:
    rows = await ep.post_indicators(
        conn, period.start, period.end, post, user_id=user_id, allowances=allowances
    )
    out: list[dict[str, Any]] = []
    for r in rows:
        rates = r.rates()
        out.append(
            {
                "user_id": r.user_id,
                "name": r.name,
                "counts": dict(r.counts),
                "rates": {
                    k: v.rate_json(rates[k], r.counts[num.value], r.counts[den.value])
                    for k, (_lbl, num, den) in ep.POST_RATES[post].items()
                },
            }
        )
    return out


def department_name(request: Request, department_id: int | None) -> str | None:
    if department_id is None:
        return None
    dep = hub(request).catalog.departments.get(department_id)
    return dep.name if dep is not None else None


async def department_rows(
    request: Request, p: Principal, period: v.Period, subtract: bool
) -> list[dict[str, Any]]:
    """The league table: every department's figures (``storage.evaluation_units``, one
    statement) and score, ranked (department staff: their own row only, with its rank among
    all)."""
    async with connect(hub(request).pool) as conn:
        formula, _ = await v.current_formula(conn)
        found = await eu.department_indicators(
            conn, period.start, period.end, subtract_deferred=subtract
        )
    rows: list[dict[str, Any]] = []
    for d in found:
        s = scoring.score(d.indicators, formula)
        rows.append(
            {
                "department_id": d.department_id,
                "name": d.name,
                "counts": dict(d.counts),
                "rates": v.unit_rates_json(d),
                "score": {
                    "total": v.number(s.total),
                    "total_text": scoring.fmt(s.total),
                    "max": v.number(s.max_points),
                },
                "_total": s.total,
            }
        )
    out = v.ranked(rows)
    own = v.own_department(p)
    if own is not None:
        out = [r for r in out if r["department_id"] == own]
    return out


def department_columns() -> list[dict[str, str]]:
    return v.unit_columns()


SOURCE_COUNT_LABELS: dict[str, str] = {f.value: es.FIGURE_LABELS[f.value] for f in es.SourceFigure}
URGENT_COUNT_LABELS: dict[str, str] = {f.value: es.FIGURE_LABELS[f.value] for f in es.UrgentFigure}
_SOURCE_RATES = ("register_rate", "close_rate", "on_time_rate")


def source_columns() -> list[dict[str, str]]:
    return [
        *({"key": k, "label": lbl, "kind": "count"} for k, lbl in SOURCE_COUNT_LABELS.items()),
        {"key": "share", "label": es.RATE_LABELS["share"], "kind": "rate"},
        *({"key": k, "label": es.RATE_LABELS[k], "kind": "rate"} for k in _SOURCE_RATES),
    ]


async def source_rows(
    conn: asyncpg.Connection, period: v.Period, subtract: bool
) -> list[dict[str, Any]]:
    rows = await es.source_indicators(conn, period.start, period.end, subtract_deferred=subtract)
    out: list[dict[str, Any]] = []
    for r in rows:
        rates = r.rates()
        c = r.counts
        out.append(
            {
                "source": r.source,
                "label": r.label,
                "counts": dict(c),
                "share": v.rate_json(rates["share"], c["accepted"], r.total_accepted),
                "rates": {
                    "register_rate": v.rate_json(
                        rates["register_rate"], c["registered"], c["accepted"]
                    ),
                    "close_rate": v.rate_json(rates["close_rate"], c["closed"], r.base),
                    "on_time_rate": v.rate_json(rates["on_time_rate"], c["on_time"], r.base),
                },
            }
        )
    return out


async def urgent_json(conn: asyncpg.Connection, period: v.Period, subtract: bool) -> dict[str, Any]:
    """The urgent cases' figures (紧急案件: urgent as of the period's end)."""
    u = await es.urgent_indicators(conn, period.start, period.end, subtract_deferred=subtract)
    c, rates = u.counts, u.rates()
    avg = u.average_handling_s
    return {
        "counts": dict(c),
        "labels": dict(URGENT_COUNT_LABELS),
        "rates": {
            "register_rate": v.rate_json(rates["register_rate"], c["registered"], c["accepted"]),
            "dispatch_rate": v.rate_json(rates["dispatch_rate"], c["dispatched"], c["registered"]),
            "close_rate": v.rate_json(rates["close_rate"], c["closed"], u.base),
            "on_time_rate": v.rate_json(rates["on_time_rate"], c["on_time"], u.base),
        },
        "average_handling_s": None if avg is None else round(avg, 1),
        "average_handling_text": "—" if avg is None else f"{avg / 3600:.1f} 小时",
    }


async def get_sources(request: Request, p: Principal) -> Response:
    args = params_of(request, PeriodQuery)
    period = period_of(request, args)
    async with connect(hub(request).pool) as conn:
        rows = await source_rows(conn, period, subtract_of(request, args))
    return JSONResponse({"period": period.json(), "rows": rows, "columns": source_columns()})


async def get_regions(request: Request, p: Principal) -> Response:
    args = params_of(request, RegionQuery)
    period = period_of(request, args)
    async with connect(hub(request).pool) as conn:
        rows = await region_rows(conn, period, args.level, subtract_of(request, args))
    return JSONResponse(
        {
            "period": period.json(),
            "level": args.level,
            "rows": rows,
            "columns": region_columns(),
        }
    )


async def get_posts(request: Request, p: Principal) -> Response:
    args = params_of(request, PostQuery)
    period = period_of(request, args)
    post = post_of(p, args.post)
    user = post_scope(p, post)
    async with connect(hub(request).pool) as conn:
        rows = await post_rows(conn, period, post, user, post_allowances(request))
    return JSONResponse(
        {
            "period": period.json(),
            "post": post,
            "post_label": ep.POST_LABELS[post],
            "rows": rows,
            "columns": post_columns(post),
        }
    )


ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET",
        "/api/evaluation/sources",
        get_sources,
        "来源分析：各来源的受理、立案、结案与占比",
        REGION_ROLES,
        params=PeriodQuery,
        errors=(422,),
        tag="evaluation",
        description="部门人员、监督员与热线坐席：403。",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/regions",
        get_regions,
        "区域评价：街道或单元网格的问题数、问题密度与结案率",
        REGION_ROLES,
        params=RegionQuery,
        errors=(422,),
        tag="evaluation",
        description="部门人员、监督员与热线坐席：403。",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/posts",
        get_posts,
        "岗位评价：监督员、受理坐席、派遣员、热线坐席（每人一行）",
        POST_ROLES,
        params=PostQuery,
        errors=(422,),
        tag="evaluation",
        description="监督员与热线坐席只看到本人一行（其他岗位：403 other_post）；部门人员：403。",
    ),
]
