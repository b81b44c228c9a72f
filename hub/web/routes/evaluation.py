"""``/api/evaluation/*``: the city's evaluation (综合评价) over HTTP — the city's figures with the
composite score, the department league table, the trend, the cases behind any figure, the formula
(admin edits it), the exports and the weekly report.

Every figure comes from ``storage.evaluation`` (the same SQL for a count and its drill-down); this
module parses the period in the city's time zone (``hub.web.evaluation_views``), keeps department
staff to their own department, and serialises. The contract is in ``docs/evaluation.md``.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.cases.render import case_json
from hub.core import scoring
from hub.core.errors import Forbidden, NotFound, ValidationFailed
from hub.core.workflow import Role
from hub.web import evaluation_views as v
from hub.web import exports as x
from hub.web.auth import Principal
from hub.web.evaluation_query import PeriodQuery, period_of, subtract_of
from hub.web.http import ApiRoute, JSONResponse, body_of, params_of
from hub.web.routes import evaluation_tables as t
from hub.web.routes import evaluation_weekly as weekly
from hub.web.routes.common import client_ip, hub
from hub.web.routes.users import ADMIN
from storage import cases as q
from storage import evaluation as ev
from storage import evaluation_formula as formula_store
from storage import evaluation_posts as ep
from storage import evaluation_regions as er
from storage import evaluation_sources as es
from storage import evaluation_units as eu
from storage import users as user_store
from storage.db import connect


class CityQuery(PeriodQuery, forbid_unknown_fields=True):
    department_id: (
        Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="只看一个部门的指标")] | None
    ) = None


class TrendQuery(CityQuery, forbid_unknown_fields=True):
    count: (
        Annotated[
            int,
            msgspec.Meta(ge=1, le=24, description="周期个数（含当前），默认 8；自定义时段不用"),
        ]
        | None
    ) = None


#: A custom range's trend: split into days up to this many days, into weeks beyond.
TREND_DAYS_MAX = 31
#: At most this many points: a range is at most ``v.MAX_RANGE_DAYS`` (370) days, 53 weeks.
TREND_BUCKETS_MAX = -(-v.MAX_RANGE_DAYS // 7)


def range_buckets(period: v.Period, tz: ZoneInfo) -> tuple[Literal["day", "week"], list[v.Period]]:
    """A custom range's trend points, oldest first: each local day of a range of up to
    ``TREND_DAYS_MAX`` days, otherwise consecutive 7-day spans from the range's first day (the
    last one shorter when the length is not a multiple of 7). A span that is a calendar week
    (Monday to Sunday) is labelled as that week; every bucket is a period of its own, its figures
    the city's rules over exactly that span."""
    first, last = period.first_day, period.last_day
    days = (last - first).days + 1
    if days <= TREND_DAYS_MAX:
        return "day", [v.make_period("day", first + timedelta(days=i), tz) for i in range(days)]
    out: list[v.Period] = []
    for i in range(0, days, 7):
        a, b = first + timedelta(days=i), min(first + timedelta(days=i + 6), last)
        if a.weekday() == 0 and (b - a).days == 6:
            out.append(v.make_period("week", a, tz))
        else:
            out.append(
                v.Period(
                    datetime.combine(a, time(), tz),
                    datetime.combine(b + timedelta(days=1), time(), tz),
                    None,
                    v.period_label(None, a, b),
                )
            )
    assert len(out) <= TREND_BUCKETS_MAX
    return "week", out


Table = Literal["city", "departments", "regions", "posts", "sources", "urgent"]


class CasesQuery(PeriodQuery, forbid_unknown_fields=True, kw_only=True):
    figure: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[a-z_]{1,40}$",
            description="指标（计数）：全市表为 storage.evaluation 的指标，部门表为部门指标",
        ),
    ]
    table: Annotated[Table, msgspec.Meta(description="所在的表")] = "city"
    key: (
        Annotated[
            str,
            msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="表中的行：部门编号等"),
        ]
        | None
    ) = None
    level: t.LevelParam = "street"
    post: t.PostParam | None = None  # default: a supervisor's or agent's own post
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 200
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


class ExportQuery(CityQuery, forbid_unknown_fields=True):
    table: Annotated[Table, msgspec.Meta(description="导出的表")] = "city"
    level: t.LevelParam = "street"
    post: t.PostParam = "supervisor"


class FormulaBody(msgspec.Struct, forbid_unknown_fields=True):
    terms: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=scoring.MAX_TERMS)]
    name: Annotated[str, msgspec.Meta(max_length=60)] | None = None


# -- helpers -----------------------------------------------------------------------------------


# -- handlers ----------------------------------------------------------------------------------


async def get_city(request: Request, p: Principal) -> Response:
    args = params_of(request, CityQuery)
    period = period_of(request, args)
    dep = v.department_scope(p, args.department_id)
    if dep is not None and dep > 0 and t.department_name(request, dep) is None:
        raise NotFound("部门不存在", code="unknown_department", details={"department_id": dep})
    async with connect(hub(request).pool) as conn:
        formula, _ = await v.current_formula(conn)
        ind = await ev.city_indicators(
            conn,
            period.start,
            period.end,
            department_id=dep,
            subtract_deferred=subtract_of(request, args),
        )
        # The urgent cases' figures are the city's (not split by department).
        urgent = (
            None if dep is not None else await t.urgent_json(conn, period, ind.subtract_deferred)
        )
    return JSONResponse(
        {
            "period": period.json(),
            "urgent": urgent,
            "department": None
            if dep is None
            else {"id": dep, "name": t.department_name(request, dep)},
            "subtract_deferred": ind.subtract_deferred,
            **v.figures_json(ind, formula),
            "labels": {**v.COUNT_LABELS, **v.RATE_LABELS},
        }
    )


async def get_departments(request: Request, p: Principal) -> Response:
    args = params_of(request, PeriodQuery)
    period = period_of(request, args)
    rows = await t.department_rows(request, p, period, subtract_of(request, args))
    return JSONResponse({"period": period.json(), "rows": rows, "columns": t.department_columns()})


async def get_trend(request: Request, p: Principal) -> Response:
    args = params_of(request, TrendQuery)
    h = hub(request)
    tz = h.cases.calendar.tz
    last = period_of(request, args)
    bucket: str
    if last.kind is None:  # a start..end range: by day or by week (``range_buckets``)
        if args.count is not None:
            raise ValidationFailed(
                "自定义时段的趋势按天或按周自动分段，不能指定 count",
                code="bad_period",
                details={"field": "count"},
            )
        bucket, periods = range_buckets(last, tz)
    else:
        bucket, periods = last.kind, [last]
        for _ in range((args.count or 8) - 1):
            periods.append(v.previous_period(periods[-1], tz))
        periods.reverse()
    dep = v.department_scope(p, args.department_id)
    subtract = subtract_of(request, args)
    points: list[dict[str, Any]] = []
    async with connect(h.pool) as conn:
        formula, _ = await v.current_formula(conn)
        for per in periods:
            ind = await ev.city_indicators(
                conn, per.start, per.end, department_id=dep, subtract_deferred=subtract
            )
            s = scoring.score(ind, formula)
            points.append(
                {
                    "period": per.json(),
                    "counts": v.counts_json(ind),
                    "rates": v.rates_json(ind),
                    "score": {"total": v.number(s.total), "max": v.number(s.max_points)},
                }
            )
    return JSONResponse({"period": last.json(), "bucket": bucket, "points": points})


def _key_id(table: str, key: str | None, what: str) -> int:
    if key is None or not key.isdigit() or not 0 < int(key) < 2**31:
        raise ValidationFailed(
            f"请用 key 指定{what}", code="bad_key", details={"field": "key", "table": table}
        )
    return int(key)


def _drill_department(p: Principal, table: str, key: str | None) -> int | None:
    if table == "city":
        return v.department_scope(p, None)
    return v.department_scope(p, _key_id(table, key, "部门编号"))


def _table_access(p: Principal, table: str) -> None:
    """Department staff: their department's tables only; supervisors and agents: posts only."""
    if p.role is Role.DEPARTMENT and table not in ("city", "departments"):
        raise Forbidden("部门人员只能查看本部门的评价", code="other_department")
    if p.role in t.OWN_ROW_ROLES and table != "posts":
        raise Forbidden("只能查看本人岗位的评价", code="other_post")


def _figures_of(p: Principal, args: CasesQuery) -> dict[str, str]:
    """The figures of the asked table (and post), with their labels."""
    if args.table == "regions":
        return t.REGION_COUNT_LABELS
    if args.table == "posts":
        post = t.post_of(p, args.post)
        return {f.value: t.POST_COUNT_LABELS[f.value] for f in ep.POST_FIGURES[post]}
    if args.table == "departments":
        return v.UNIT_COUNT_LABELS
    if args.table == "sources":
        return t.SOURCE_COUNT_LABELS
    if args.table == "urgent":
        return t.URGENT_COUNT_LABELS
    return v.COUNT_LABELS


def _drill_query(
    p: Principal, args: CasesQuery, period: v.Period, request: Request
) -> tuple[ev.DrillQuery, str]:
    """The statement of the ids behind one figure of one row of one table (the figure's own
    SQL), and the figure's label."""
    _table_access(p, args.table)
    if args.figure not in _figures_of(p, args):
        raise ValidationFailed(
            f"该表没有指标 {args.figure}（可用：{'、'.join(_figures_of(p, args))}）",
            code="unknown_indicator",
            details={"field": "figure", "table": args.table},
        )
    if args.table == "regions":
        grid = None if args.key == "none" else _key_id("regions", args.key, "网格编号或 none")
        query = er.region_drill_query(
            args.figure, period.start, period.end, grid_id=grid, level=args.level
        )
        return query, t.REGION_COUNT_LABELS[args.figure]
    if args.table == "sources":
        if args.key not in es.SOURCE_LABELS:
            raise ValidationFailed(
                f"请用 key 指定来源（{'、'.join(es.SOURCE_LABELS)}）",
                code="bad_key",
                details={"field": "key", "table": "sources"},
            )
        query = es.source_drill_query(args.figure, period.start, period.end, source=args.key)
        return query, t.SOURCE_COUNT_LABELS[args.figure]
    if args.table == "urgent":
        query = es.urgent_drill_query(args.figure, period.start, period.end)
        return query, t.URGENT_COUNT_LABELS[args.figure]
    if args.table == "posts":
        user = _key_id("posts", args.key, "用户编号")
        post = t.post_of(p, args.post)
        own = t.post_scope(p, post)
        if own is not None and own != user:
            raise Forbidden("只能查看本人岗位的评价", code="other_post", details={"key": user})
        query = ep.post_drill_query(
            post,
            args.figure,
            period.start,
            period.end,
            user_id=user,
            allowances=t.post_allowances(request),
        )
        return query, t.POST_COUNT_LABELS[args.figure]
    dep = _drill_department(p, args.table, args.key)
    if args.table == "departments":
        assert dep is not None
        if t.department_name(request, dep) is None:
            raise NotFound("部门不存在", code="unknown_department", details={"department_id": dep})
        query = eu.department_drill_query(args.figure, period.start, period.end, department_id=dep)
        return query, v.UNIT_COUNT_LABELS[args.figure]
    query = ev.drill_query(args.figure, period.start, period.end, department_id=dep)
    return query, v.COUNT_LABELS[args.figure]


def drill_case_json(c: dict[str, Any]) -> dict[str, Any]:
    cat = c["category"]
    dep = c["department"]
    return {
        "id": c["id"],
        "number": c["case_no"],
        "category": None if cat is None else cat["name"],
        "category_major": None if cat is None else cat["major_name"],
        "state": c["state"],
        "state_label": c["state_label"],
        "department": None if dep is None else dep["name"],
        "department_id": None if dep is None else dep["id"],
        "deadline": c["deadline"],
        "reported_at": c["reported_at"],
        "closed_at": c["closed_at"],
    }


async def get_cases(request: Request, p: Principal) -> Response:
    args = params_of(request, CasesQuery)
    period = period_of(request, args)
    h = hub(request)
    calls = args.table == "posts" and args.figure == "answered"  # a call list, not cases
    query, label = _drill_query(p, args, period, request)
    async with connect(h.pool) as conn:
        found = await ev.fetch_page(conn, query, offset=args.offset, limit=args.limit)
        page = found.ids
        rows = {} if calls else {c.id: c for c in await q.get_cases(conn, page)}
    now = h.cases.clock()
    cases = [drill_case_json(case_json(h.catalog, rows[i], now)) for i in page if i in rows]
    return JSONResponse(
        {
            "period": period.json(),
            "table": args.table,
            "key": args.key,
            "figure": args.figure,
            "label": label,
            "count": found.total,
            "limit": args.limit,
            "offset": args.offset,
            "cases": cases,
            "calls": page if calls else [],
        }
    )


async def export_sheet(request: Request, p: Principal, args: ExportQuery) -> x.Sheet:
    period = period_of(request, args)
    subtract = subtract_of(request, args)
    score_col = {"key": "score", "label": "综合得分", "kind": "score"}
    _table_access(p, args.table)
    if args.table == "regions":
        async with connect(hub(request).pool) as conn:
            regions = await t.region_rows(conn, period, args.level, subtract)
        cols = [
            {"key": "code", "label": "编码", "kind": "text"},
            {"key": "name", "label": "街道" if args.level == "street" else "网格", "kind": "text"},
            *t.region_columns(),
        ]
        flat = [
            {
                "code": r["code"],
                "name": r["name"],
                **r["counts"],
                "area_km2": r["area_km2"],
                "per_km2": r["per_km2"],
                **r["rates"],
            }
            for r in regions
        ]
        title = "街道评价" if args.level == "street" else "网格评价"
        return x.Sheet(title, period, x.columns_of(cols), flat, frozen_columns=2)
    if args.table == "sources":
        async with connect(hub(request).pool) as conn:
            sources = await t.source_rows(conn, period, subtract)
        cols = [{"key": "label", "label": "来源", "kind": "text"}, *t.source_columns()]
        flat = [
            {"label": r["label"], **r["counts"], "share": r["share"], **r["rates"]} for r in sources
        ]
        return x.Sheet("来源分析", period, x.columns_of(cols), flat)
    if args.table == "urgent":
        async with connect(hub(request).pool) as conn:
            u = await t.urgent_json(conn, period, subtract)
        cols = [
            {"key": "period", "label": "统计时段", "kind": "text"},
            *({"key": k, "label": lbl, "kind": "count"} for k, lbl in u["labels"].items()),
            *({"key": k, "label": v.RATE_LABELS[k], "kind": "rate"} for k in u["rates"]),
            {"key": "hours", "label": "平均处置时长（小时）", "kind": "number"},
        ]
        avg = u["average_handling_s"]
        row = {
            "period": period.label,
            **u["counts"],
            **u["rates"],
            "hours": None if avg is None else avg / 3600,
        }
        return x.Sheet("紧急案件", period, x.columns_of(cols), [row])
    if args.table == "posts":
        async with connect(hub(request).pool) as conn:
            posts = await t.post_rows(conn, period, args.post, None, t.post_allowances(request))
        cols = [{"key": "name", "label": "姓名", "kind": "text"}, *t.post_columns(args.post)]
        flat = [{"name": r["name"], **r["counts"], **r["rates"]} for r in posts]
        title = f"{ep.POST_LABELS[args.post]}评价"
        return x.Sheet(title, period, x.columns_of(cols), flat)
    if args.table == "departments":
        rows = await t.department_rows(request, p, period, subtract)
        flat = [
            {
                "rank": r["rank"],
                "name": r["name"],
                **r["counts"],
                **r["rates"],
                "score": r["score"]["total"],
            }
            for r in rows
        ]
        cols = [
            {"key": "rank", "label": "名次", "kind": "count"},
            {"key": "name", "label": "部门", "kind": "text"},
            *t.department_columns(),
        ]
        return x.Sheet("部门评价", period, x.columns_of(cols), flat, frozen_columns=2)
    dep = v.department_scope(p, args.department_id)
    async with connect(hub(request).pool) as conn:
        formula, _ = await v.current_formula(conn)
        ind = await ev.city_indicators(
            conn, period.start, period.end, department_id=dep, subtract_deferred=subtract
        )
    fig = v.figures_json(ind, formula)
    name = t.department_name(request, dep) if dep is not None else None
    row = {
        "period": period.label,
        **fig["counts"],
        **fig["rates"],
        "score": fig["score"]["total"],
    }
    cols = [
        {"key": "period", "label": "统计时段", "kind": "text"},
        *v.count_columns(),
        *v.rate_columns(),
        score_col,
    ]
    title = "全市评价" if dep is None else f"{name or '部门'}评价"
    return x.Sheet(title, period, x.columns_of(cols), [row])


async def export_xlsx(request: Request, p: Principal) -> Response:
    sheet = await export_sheet(request, p, params_of(request, ExportQuery))
    return Response(
        x.xlsx_bytes(sheet),
        media_type=x.XLSX_TYPE,
        headers={"Content-Disposition": x.content_disposition(sheet.file_stem + ".xlsx")},
    )


async def export_csv(request: Request, p: Principal) -> Response:
    sheet = await export_sheet(request, p, params_of(request, ExportQuery))
    return Response(
        x.csv_bytes(sheet),
        media_type=x.CSV_TYPE,
        headers={"Content-Disposition": x.content_disposition(sheet.file_stem + ".csv")},
    )


async def get_formula(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        formula, stored = await v.current_formula(conn)
    return JSONResponse(
        {
            **stored,
            "max_points": v.number(formula.max_points),
            "rates": dict(scoring.RATES),
            "counts": dict(scoring.COUNTS),
        }
    )


async def put_formula(request: Request, p: Principal) -> Response:
    body = body_of(request, FormulaBody)
    raw: dict[str, Any] = {"terms": body.terms}
    if body.name is not None:
        raw["name"] = body.name
    formula = scoring.parse_formula(raw)  # ValidationFailed (422) naming the field
    clean = {"name": formula.name, "terms": body.terms}
    async with connect(hub(request).pool) as conn:
        async with conn.transaction():
            await formula_store.put_formula(conn, clean, p.user.id)
            await user_store.audit(
                conn,
                user_id=p.user.id,
                action="evaluation_formula",
                target="evaluation_formula",
                detail={"name": formula.name, "terms": len(formula.terms)},
                ip=client_ip(request),
            )
        _, stored = await v.current_formula(conn)
    return JSONResponse({**stored, "max_points": v.number(formula.max_points)})


ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET",
        "/api/evaluation/city",
        get_city,
        "综合评价：全市（或一个部门）的指标、比率与得分",
        v.EVAL_ROLES,
        params=CityQuery,
        errors=(404, 422),
        tag="evaluation",
        description="部门人员只能看本部门（指定其他部门：403 other_department）；"
        "监督员与热线坐席：403。",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/departments",
        get_departments,
        "综合评价：部门排名（按得分）",
        v.EVAL_ROLES,
        params=PeriodQuery,
        errors=(422,),
        tag="evaluation",
        description="部门人员只看到本部门一行（名次为全部部门中的名次）。",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/trend",
        get_trend,
        "综合评价：最近若干周期的趋势；自定义时段按天（≤31 天）或按周分段",
        v.EVAL_ROLES,
        params=TrendQuery,
        errors=(404, 422),
        tag="evaluation",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/cases",
        get_cases,
        "综合评价：一个指标背后的案件（与指标同一 SQL，count 即指标数）",
        t.POST_ROLES | v.EVAL_ROLES,
        params=CasesQuery,
        errors=(404, 422),
        tag="evaluation",
        description="部门人员：本部门的全市表与部门表；监督员与热线坐席：本人的岗位表；"
        "table=posts 且 figure=answered 时列出通话编号（calls）。",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/export.xlsx",
        export_xlsx,
        "综合评价导出为 Excel（table=city|departments，与接口同一数据）",
        v.EVAL_ROLES,
        params=ExportQuery,
        errors=(422,),
        produces=(x.XLSX_TYPE,),
        tag="evaluation",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/export.csv",
        export_csv,
        "综合评价导出为 CSV（UTF-8 带 BOM）",
        v.EVAL_ROLES,
        params=ExportQuery,
        errors=(422,),
        produces=("text/csv",),
        tag="evaluation",
    ),
    ApiRoute(
        "GET",
        "/api/evaluation/formula",
        get_formula,
        "综合评价公式（当前使用的）",
        v.EVAL_ROLES,
        tag="evaluation",
    ),
    ApiRoute(
        "PUT",
        "/api/evaluation/formula",
        put_formula,
        "修改综合评价公式（管理员；校验失败 422，details.field 指出字段）",
        ADMIN,
        FormulaBody,
        errors=(422,),
        tag="evaluation",
    ),
    *t.ROUTES,
    *weekly.ROUTES,
]
