"""The city / period evaluation indicators (综合评价), computed in SQL from the case event log.

Theory of operation
-------------------
Every figure of a period ``[start, end)`` is a set of cases, written once as a condition on a
summary row (``storage.evaluation_sql``): the counts are one filtered ``count(*)`` per figure over
the period's rows, and a drill-down selects the rows of the same condition, so a figure and the
list behind it can never disagree.
The exact rules, with where each comes from, are in ``docs/evaluation.md``; in short:

- 受理数 ``accepted``: non-quick cases whose ``report`` event is in the period (later rejected,
  voided or still waiting ones included).
- 立案数 ``registered``: cases whose ``register`` event is in the period (a case has at most one).
- 派遣数 ``dispatched``: cases whose *first* ``dispatch`` is in the period (a re-dispatch after a
  return does not count the case again).
- 应结案数 ``due``: cases closed in the period, plus cases whose deadline *as of the period's end*
  falls in the period and that were still open at that deadline.
- 结案数 ``closed``: cases whose ``close`` event is in the period (all of them are in ``due``).
- 按期结案数 ``on_time``: closed cases whose last ``feedback`` was at or before that deadline.
- 返工数 ``reworked``: cases with a ``rework`` or ``verify_fail`` event in the period.
- 延期数 ``extended``: cases with an ``approve_extension`` event in the period.
- 缓办数 ``deferred``: cases in ``due`` that are deferred (缓办) at the period's end; the
  ``subtract_deferred`` variant takes them out of the rates' denominator.
- 快速处置 ``quick_reported`` / ``quick_closed``: quick cases, counted apart from all the above.

Only events before ``end`` are read, so a case that moves after the period never changes a closed
period's figures. The deadline of a case at a moment is the one set by the last ``dispatch``,
``rework``/``verify_fail``, ``resume`` or ``approve_extension`` (whose new deadline is the
``extension_until`` of the request it approves) before that moment; deferral and return stop the
department's clock but do not remove the deadline from the count (so a deferred case stays due,
which is what the deferred-subtracting variant is for).

The history is not folded at query time: the trigger of migration 0016 keeps, in each event's
transaction, one ``case_facts`` row per case (the report, registration, first dispatch, close and
end, which never change once they happened, and what a closed case's 按期 is judged by) and one
``case_spans`` row per event that opens a span (a deadline, until the next one; a feedback; a
deferral; a return). "As of the end" is then a range condition on a span (``at < end`` and
``until`` absent or at or after ``end``), so each branch is an index range scan of the rows of its
period, and a month reads a few rows per case instead of every event of every candidate
(``docs/benchmarks.md``: 6.8 s before, over 1,000,000 cases). Migration 0021 adds the case's keys
and end to the rows, so that no statement needs a join. Rates are exact
``Fraction``s; ``percent`` rounds only for display (half up, two decimals, as reports print them).

With ``department_id`` every figure keeps the cases whose responsible department *for that figure*
is the one given: the first dispatch's department (派遣), the department at the close (结案, 按期,
and 应结案 for a closed case), the department that set the due deadline (应结案 otherwise, 缓办),
the department at the rework or the approved extension. 受理 and 立案 belong to the centre and are 0
for a department.
"""

from __future__ import annotations

import calendar as _calendar
import dataclasses
import functools
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidRequest
from storage.evaluation_sql import counts_text, members_text


class Indicator(StrEnum):
    ACCEPTED = "accepted"  # 受理数
    REGISTERED = "registered"  # 立案数
    DISPATCHED = "dispatched"  # 派遣数
    DUE = "due"  # 应结案数
    CLOSED = "closed"  # 结案数
    ON_TIME = "on_time"  # 按期结案数
    REWORKED = "reworked"  # 返工数
    EXTENDED = "extended"  # 延期数
    DEFERRED = "deferred"  # 缓办数 (of the due cases)
    QUICK_REPORTED = "quick_reported"  # 快速处置上报数
    QUICK_CLOSED = "quick_closed"  # 快速处置结案数


INDICATOR_LABELS: dict[Indicator, str] = {
    Indicator.ACCEPTED: "受理数",
    Indicator.REGISTERED: "立案数",
    Indicator.DISPATCHED: "派遣数",
    Indicator.DUE: "应结案数",
    Indicator.CLOSED: "结案数",
    Indicator.ON_TIME: "按期结案数",
    Indicator.REWORKED: "返工数",
    Indicator.EXTENDED: "延期数",
    Indicator.DEFERRED: "缓办数",
    Indicator.QUICK_REPORTED: "快速处置上报数",
    Indicator.QUICK_CLOSED: "快速处置结案数",
}

#: The city's counts: every figure in one statement, each one filtered count over its rows (a
#: year is each facts row once, not four million member rows); $3 = a department, or NULL.
_COUNTS = counts_text(lambda dep: (), where=lambda dep: f"($3::integer IS NULL OR {dep} = $3)")


@functools.cache
def _drill_text(indicator: str) -> str:
    """One figure's members ($3 = a department, or NULL): the figure's branch alone."""
    return (
        members_text([indicator])
        + "\nSELECT case_id FROM members WHERE $3::integer IS NULL OR department_id = $3"
    )


#: The branches' sorts and hashes (the departments' UNION, DISTINCT ON) are of a period's cases: with
#: the default 4 MB a year of a large city spills to disk (bench/evaluation.py); the setting lasts
#: to the end of the statement's transaction only.
_WORK_MEM = "SET LOCAL work_mem = '256MB'"


def percent(rate: Fraction | None, places: int = 2) -> str:
    """A rate as reports print it: ``99.34%`` (half up), or ``—`` when it has no denominator."""
    if rate is None:
        return "—"
    value = Decimal(rate.numerator * 100) / Decimal(rate.denominator)
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)}%"


def _rate(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den > 0 else None


@dataclasses.dataclass(frozen=True, slots=True)
class CityIndicators:
    """The counts of one period (and department, if given) and the rates made of them."""

    start: datetime
    end: datetime
    department_id: int | None
    subtract_deferred: bool
    accepted: int
    registered: int
    dispatched: int
    due: int
    closed: int
    on_time: int
    reworked: int
    extended: int
    deferred: int
    quick_reported: int
    quick_closed: int

    @property
    def base(self) -> int:
        """The denominator of the closing rates: 应结案数, less 缓办数 in the variant."""
        return self.due - self.deferred if self.subtract_deferred else self.due

    @property
    def register_rate(self) -> Fraction | None:  # 立案率
        return _rate(self.registered, self.accepted)

    @property
    def dispatch_rate(self) -> Fraction | None:  # 派遣率
        return _rate(self.dispatched, self.registered)

    @property
    def close_rate(self) -> Fraction | None:  # 结案率
        return _rate(self.closed, self.base)

    @property
    def on_time_rate(self) -> Fraction | None:  # 按期结案率
        return _rate(self.on_time, self.base)

    @property
    def rework_rate(self) -> Fraction | None:  # 返工率
        return _rate(self.reworked, self.base)

    @property
    def extension_rate(self) -> Fraction | None:  # 延期率
        return _rate(self.extended, self.base)

    def count(self, indicator: Indicator) -> int:
        value: int = getattr(self, indicator.value)
        return value

    def rates(self) -> dict[str, Fraction | None]:
        """The rates by name (as ``hub.core.scoring`` reads them)."""
        return {
            "register_rate": self.register_rate,
            "dispatch_rate": self.dispatch_rate,
            "close_rate": self.close_rate,
            "on_time_rate": self.on_time_rate,
            "rework_rate": self.rework_rate,
            "extension_rate": self.extension_rate,
        }


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("统计时段须带时区", code="bad_period")
    if end <= start:
        raise InvalidRequest(
            "统计时段的结束须晚于开始",
            code="bad_period",
            details={"start": start.isoformat(), "end": end.isoformat()},
        )


async def city_indicators(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    *,
    department_id: int | None = None,
    subtract_deferred: bool = False,
) -> CityIndicators:
    """Every city / period figure of ``[start, end)`` in one statement."""
    _check_period(start, end)
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(_COUNTS, start, end, department_id)
    counts = {ind.value: 0 for ind in Indicator}
    counts.update({r["indicator"]: int(r["n"]) for r in rows})
    return CityIndicators(
        start=start,
        end=end,
        department_id=department_id,
        subtract_deferred=subtract_deferred,
        **counts,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class DrillQuery:
    """One figure's drill-down: a statement whose rows are the ids behind the figure, one column
    ``case_id`` (a call id for the agents' 接听数), each once, and its arguments. Every family's
    ``*_drill_query`` checks its inputs and returns one; ``fetch_ids`` reads the whole list,
    ``fetch_page`` one page of it with the list's length, cut in SQL."""

    sql: str
    args: tuple[object, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class DrillPage:
    """``ids[offset:offset + limit]`` of a drill-down's ascending list, and the list's length."""

    total: int
    ids: list[int]


async def fetch_ids(conn: asyncpg.Connection, query: DrillQuery) -> list[int]:
    """Every id of the drill-down, ascending."""
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(
                f"SELECT case_id FROM ({query.sql}) d ORDER BY case_id", *query.args
            )
    return [int(r["case_id"]) for r in rows]


async def fetch_page(
    conn: asyncpg.Connection, query: DrillQuery, *, offset: int = 0, limit: int = 200
) -> DrillPage:
    """One page of the drill-down (ascending ids) and the whole list's length: only the page's
    ids leave the server. The length is a window count over the same (parallel) sort that cuts
    the page; a page past the end has no row to carry it, and asks for the count alone."""
    if offset < 0 or limit < 1:
        raise InvalidRequest(
            "分页参数无效", code="bad_page", details={"offset": offset, "limit": limit}
        )
    n = len(query.args)
    sql = (
        f"SELECT case_id, count(*) OVER () AS total FROM ({query.sql}) d"
        f" ORDER BY case_id OFFSET ${n + 1} LIMIT ${n + 2}"
    )
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(sql, *query.args, offset, limit)
            if rows:
                return DrillPage(int(rows[0]["total"]), [int(r["case_id"]) for r in rows])
            total = await conn.fetchval(f"SELECT count(*) FROM ({query.sql}) d", *query.args)
    return DrillPage(int(total), [])


def drill_query(
    indicator: Indicator | str,
    start: datetime,
    end: datetime,
    *,
    department_id: int | None = None,
) -> DrillQuery:
    """The statement of exactly the cases behind one city figure, by the figure's own SQL."""
    _check_period(start, end)
    try:
        ind = Indicator(indicator)
    except ValueError:
        raise InvalidRequest(
            "未知的评价指标", code="unknown_indicator", details={"indicator": str(indicator)}
        ) from None
    return DrillQuery(_drill_text(ind.value), (start, end, department_id))


async def drill_down(
    conn: asyncpg.Connection,
    indicator: Indicator | str,
    start: datetime,
    end: datetime,
    *,
    department_id: int | None = None,
) -> list[int]:
    """The ids of exactly the cases behind one figure (ascending), by the figure's own SQL."""
    return await fetch_ids(conn, drill_query(indicator, start, end, department_id=department_id))


PeriodKind = Literal["day", "week", "month", "quarter", "year"]


def period_bounds(kind: PeriodKind, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The period of ``kind`` containing ``day``, as aware instants at local midnights in ``tz``
    (weeks start on Monday, as the city reports' 周报 do)."""
    if kind == "day":
        first, nxt = day, day + timedelta(days=1)
    elif kind == "week":
        first = day - timedelta(days=day.weekday())
        nxt = first + timedelta(days=7)
    elif kind == "month":
        first = day.replace(day=1)
        nxt = first + timedelta(days=_calendar.monthrange(day.year, day.month)[1])
    elif kind == "quarter":
        m = 3 * ((day.month - 1) // 3) + 1
        first = date(day.year, m, 1)
        nxt = date(day.year + (m == 10), 1 if m == 10 else m + 3, 1)
    elif kind == "year":
        first, nxt = date(day.year, 1, 1), date(day.year + 1, 1, 1)
    else:
        raise InvalidRequest("未知的统计周期", code="bad_period", details={"kind": str(kind)})
    return datetime.combine(first, time(), tz), datetime.combine(nxt, time(), tz)
