"""The period parameters every evaluation endpoint takes, and reading them from a request (the
city's time zone and clock, the city's ``subtract_deferred`` choice)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec
from starlette.requests import Request

from hub.web import evaluation_views as v
from hub.web.routes.common import hub

Day = Annotated[date, msgspec.Meta(description="本地日期 YYYY-MM-DD（城市时区）")]


class PeriodQuery(msgspec.Struct, forbid_unknown_fields=True):
    period: Annotated[
        v.PeriodKind, msgspec.Meta(description="统计周期（与 day 一起用；默认 week，周一开始）")
    ] = "week"
    day: Annotated[Day, msgspec.Meta(description="周期内的任一天，默认今天")] | None = None
    start: Annotated[Day, msgspec.Meta(description="自定义时段开始（含）")] | None = None
    end: Annotated[Day, msgspec.Meta(description="自定义时段结束（不含），最长 370 天")] | None = (
        None
    )
    subtract_deferred: (
        Annotated[bool, msgspec.Meta(description="结案类比率的分母扣除缓办数（默认：城市设置）")]
        | None
    ) = None


def period_of(request: Request, args: PeriodQuery) -> v.Period:
    h = hub(request)
    tz = h.cases.calendar.tz
    today = h.cases.clock().astimezone(tz).date()
    return v.resolve_period(args.period, args.day, args.start, args.end, tz, today)


def subtract_of(request: Request, args: PeriodQuery) -> bool:
    if args.subtract_deferred is not None:
        return args.subtract_deferred
    return hub(request).settings.evaluation_subtract_deferred
