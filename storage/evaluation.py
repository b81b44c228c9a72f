"""The city / period evaluation indicators (综合评价), computed in SQL from the case event log.

Theory of operation
-------------------
Every figure of a period ``[start, end)`` is a set of cases, and every set is one branch of one
SQL text (``_MEMBERS``): the counts are ``COUNT(*)`` over it grouped by indicator, and a drill-down
is the same text filtered to one indicator, so a figure and the list behind it can never disagree.
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

Candidates are found through two indexes of migration 0010 (events in the period, and deadlines
falling in it); each candidate's history is then folded with aggregates. Rates are exact
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
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidRequest


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

#: One row per (indicator, case) for the period; $1 = start, $2 = end. Every figure and every
#: drill-down reads this text and nothing else.
_MEMBERS = """
WITH cand AS (
    SELECT case_id FROM case_events WHERE at >= $1 AND at < $2
    UNION
    SELECT case_id FROM case_events
     WHERE action IN ('dispatch', 'rework', 'verify_fail', 'resume', 'request_extension',
                      'deny_extension')
       AND cityhub_event_deadline(action, data) >= $1
       AND cityhub_event_deadline(action, data) < $2
       AND at < $2
),
ev AS (
    SELECT e.case_id, e.version, e.action, e.at, e.to_state, e.department_id,
           CASE WHEN e.action IN ('dispatch', 'rework', 'verify_fail', 'resume', 'deny_extension')
                THEN (e.data ->> 'deadline')::timestamptz END AS set_deadline
      FROM cand JOIN case_events e ON e.case_id = cand.case_id
     WHERE e.at < $2
),
due AS (
    SELECT DISTINCT ON (x.case_id) x.case_id, x.department_id AS due_dep,
           CASE WHEN x.action = 'approve_extension' THEN (
                    SELECT (r.data ->> 'extension_until')::timestamptz FROM case_events r
                     WHERE r.case_id = x.case_id AND r.version < x.version
                       AND r.action = 'request_extension'
                     ORDER BY r.version DESC LIMIT 1)
                ELSE x.set_deadline END AS deadline
      FROM ev x
     WHERE x.action IN ('dispatch', 'rework', 'verify_fail', 'resume', 'approve_extension')
        OR (x.action = 'deny_extension' AND x.set_deadline IS NOT NULL)  -- a paused clock restored
     ORDER BY x.case_id, x.version DESC
),
f AS (
    SELECT ev.case_id,
           bool_or(ev.action = 'report' AND ev.at >= $1) AS reported_in,
           bool_or(ev.action = 'quick_report' AND ev.at >= $1) AS quick_reported_in,
           bool_or(ev.action = 'register' AND ev.at >= $1) AS registered_in,
           min(ev.at) FILTER (WHERE ev.action = 'dispatch') AS first_dispatch_at,
           (min(ARRAY[ev.version, ev.department_id])
               FILTER (WHERE ev.action = 'dispatch'))[2] AS dispatch_dep,
           max(ev.at) FILTER (WHERE ev.action = 'close') AS closed_at,
           (max(ARRAY[ev.version, ev.department_id])
               FILTER (WHERE ev.action = 'close'))[2] AS close_dep,
           min(ev.at) FILTER (WHERE ev.action IN ('close', 'void')) AS ended_at,
           max(ev.at) FILTER (WHERE ev.action = 'feedback') AS handled_at,
           (max(ARRAY[ev.version, ev.department_id])
               FILTER (WHERE ev.action IN ('rework', 'verify_fail') AND ev.at >= $1))[2]
               AS rework_dep,
           bool_or(ev.action IN ('rework', 'verify_fail') AND ev.at >= $1) AS reworked_in,
           (max(ARRAY[ev.version, ev.department_id])
               FILTER (WHERE ev.action = 'approve_extension' AND ev.at >= $1))[2]
               AS extension_dep,
           bool_or(ev.action = 'approve_extension' AND ev.at >= $1) AS extended_in,
           substr(max(lpad(ev.version::text, 10, '0') || ev.to_state), 11) AS state_at_end
      FROM ev
     GROUP BY ev.case_id
),
g AS (
    SELECT f.*, c.is_quick, due.deadline, due.due_dep,
           (f.closed_at IS NOT NULL AND f.closed_at >= $1) AS closed_in,
           (due.deadline >= $1 AND due.deadline < $2
               AND (f.ended_at IS NULL OR f.ended_at >= due.deadline)) AS fell_due
      FROM f JOIN cases c ON c.id = f.case_id LEFT JOIN due ON due.case_id = f.case_id
),
members (indicator, case_id, department_id) AS (
    SELECT 'accepted', case_id, NULL::integer FROM g WHERE reported_in AND NOT is_quick
    UNION ALL
    SELECT 'registered', case_id, NULL FROM g WHERE registered_in AND NOT is_quick
    UNION ALL
    SELECT 'dispatched', case_id, dispatch_dep FROM g
     WHERE NOT is_quick AND first_dispatch_at >= $1
    UNION ALL
    SELECT 'due', case_id, CASE WHEN closed_in THEN close_dep ELSE due_dep END FROM g
     WHERE NOT is_quick AND (closed_in OR fell_due)
    UNION ALL
    SELECT 'closed', case_id, close_dep FROM g WHERE NOT is_quick AND closed_in
    UNION ALL
    SELECT 'on_time', case_id, close_dep FROM g
     WHERE NOT is_quick AND closed_in AND handled_at <= deadline
    UNION ALL
    SELECT 'reworked', case_id, rework_dep FROM g WHERE NOT is_quick AND reworked_in
    UNION ALL
    SELECT 'extended', case_id, extension_dep FROM g WHERE NOT is_quick AND extended_in
    UNION ALL
    SELECT 'deferred', case_id, due_dep FROM g
     WHERE NOT is_quick AND fell_due AND NOT closed_in AND state_at_end = 'deferred'
    UNION ALL
    SELECT 'quick_reported', case_id, NULL FROM g WHERE is_quick AND quick_reported_in
    UNION ALL
    SELECT 'quick_closed', case_id, NULL FROM g WHERE is_quick AND closed_in
)
"""

_COUNTS = (
    _MEMBERS
    + "SELECT indicator, count(*) AS n FROM members"
    + " WHERE $3::integer IS NULL OR department_id = $3 GROUP BY indicator"
)
_DRILL = (
    _MEMBERS
    + "SELECT case_id FROM members WHERE indicator = $4"
    + " AND ($3::integer IS NULL OR department_id = $3) ORDER BY case_id"
)

#: The per-case fold hashes every candidate's events: with the default 4 MB a month of a large
#: city spills to disk (bench/evaluation.py); the setting lasts to the end of the statement's
#: transaction only.
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


async def drill_down(
    conn: asyncpg.Connection,
    indicator: Indicator | str,
    start: datetime,
    end: datetime,
    *,
    department_id: int | None = None,
) -> list[int]:
    """The ids of exactly the cases behind one figure (ascending), by the figure's own SQL."""
    _check_period(start, end)
    try:
        ind = Indicator(indicator)
    except ValueError:
        raise InvalidRequest(
            "未知的评价指标", code="unknown_indicator", details={"indicator": str(indicator)}
        ) from None
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(_DRILL, start, end, department_id, ind.value)
    return [int(r["case_id"]) for r in rows]


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
