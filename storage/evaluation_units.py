"""The departments' evaluation indicators (专业部门评价), computed in SQL from the case event log.

Theory of operation
-------------------
As in ``storage.evaluation``, every figure of a period ``[start, end)`` is a set of cases and every
set is one branch of one SQL text (``_UNIT_MEMBERS``) yielding ``(indicator, case_id,
department_id)`` rows: ``department_indicators`` counts them per department and indicator in one
statement, ``department_drill_down`` lists one (department, figure) by the same text, so a figure
and its list cannot disagree. The text is the city's ``_MEMBERS`` (imported, not copied: the
department variant of the city figures is its rows with a department) followed by the
department-only branches, which read the same per-case summary (``case_spans`` of migration 0016:
the last feedback before the end is the feedback span in force at the end; the deadline as of the
end is the deadline span in force then, with the first answer to it):

- the city figures by department (派遣 ``dispatched``, 应结案 ``due``, 结案 ``closed``, 按期结案
  ``on_time``, 返工 ``reworked``, 延期 ``extended``, 缓办 ``deferred``), with the responsible
  department the city module gives each (``docs/evaluation.md``); they feed the composite score.
- 处置数 ``handled``: cases whose *last* ``feedback`` before the end is in the period, for the
  department that gave it.
- 应处置数 ``to_handle``: the handled cases, plus the cases whose deadline as of the end falls in
  the period, set for the department, and that had not been fed back, returned, deferred (缓办:
  the centre's decision), closed or voided — after the event that set that deadline — by the
  deadline (as 应结案 takes the closed cases plus the ones due and still open at their deadline).
- 按期处置数 ``handled_on_time``: handled cases whose last feedback was at or before the deadline
  in force when it was given, and that are not due-and-unhandled again (a rework's deadline passed
  without a new feedback).
- 超期数 ``overdue``: 应处置 less 按期处置 — due in the period and not fed back by the deadline,
  or fed back late.
- 回退数 ``returned``: cases with a ``return`` event in the period, for the department that held
  the case before it (the event records the department after it: none).

Rates (exact ``Fraction``s): 处置率 = 处置/应处置, 按期处置率 = 按期处置/应处置, 超期率 =
超期/应处置; the score's rates (``close_rate``, ``on_time_rate``, ``rework_rate``,
``extension_rate`` …) are the city's department variant (``CityIndicators`` with the department's
counts), so ``hub.core.scoring.figures(row.indicators)`` gives a formula what it reads.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidRequest
from storage.evaluation import (
    _WORK_MEM,
    CityIndicators,
    DrillQuery,
    _check_period,
    _rate,
    fetch_ids,
)
from storage.evaluation_sql import DL_CTE, MV_CTE, counts_text, members_text


class UnitFigure(StrEnum):
    TO_HANDLE = "to_handle"  # 应处置数
    HANDLED = "handled"  # 处置数
    HANDLED_ON_TIME = "handled_on_time"  # 按期处置数
    OVERDUE = "overdue"  # 超期数
    RETURNED = "returned"  # 回退数
    DISPATCHED = "dispatched"  # 派遣数
    DUE = "due"  # 应结案数
    CLOSED = "closed"  # 结案数
    ON_TIME = "on_time"  # 按期结案数
    REWORKED = "reworked"  # 返工数
    EXTENDED = "extended"  # 延期数
    DEFERRED = "deferred"  # 缓办数


UNIT_FIGURE_LABELS: dict[UnitFigure, str] = {
    UnitFigure.TO_HANDLE: "应处置数",
    UnitFigure.HANDLED: "处置数",
    UnitFigure.HANDLED_ON_TIME: "按期处置数",
    UnitFigure.OVERDUE: "超期数",
    UnitFigure.RETURNED: "回退数",
    UnitFigure.DISPATCHED: "派遣数",
    UnitFigure.DUE: "应结案数",
    UnitFigure.CLOSED: "结案数",
    UnitFigure.ON_TIME: "按期结案数",
    UnitFigure.REWORKED: "返工数",
    UnitFigure.EXTENDED: "延期数",
    UnitFigure.DEFERRED: "缓办数",
}

#: The department's own rates, with their labels (the score's rates are ``CityIndicators``').
UNIT_RATE_LABELS: dict[str, str] = {
    "handle_rate": "处置率",
    "handle_on_time_rate": "按期处置率",
    "overdue_rate": "超期率",
    "close_rate": "结案率",
    "on_time_rate": "按期结案率",
    "rework_rate": "返工率",
    "extension_rate": "延期率",
}

_CITY_BY_DEPARTMENT = ("dispatched", "due", "closed", "on_time", "reworked", "extended", "deferred")

#: A department's last feedback before the end, given in the period (on a ``case_spans`` row
#: ``s``), and an unanswered deadline (on a ``dl`` row ``p``): 处置 and the rest of 应处置.
_HANDLED = (
    "s.kind = 'feedback' AND s.at >= $1 AND s.at < $2"
    " AND (s.until IS NULL OR s.until >= $2) AND s.department_id IS NOT NULL"
)
_PENDING = "p.department_id IS NOT NULL AND (p.answered_at IS NULL OR p.answered_at > p.deadline)"
_IN_TIME = "s.at <= s.deadline"
#: 回退: a return of the period, for the department that held the case before it.
_RETURNED = """u_returned AS (
    SELECT DISTINCT case_id, department_id AS dep FROM case_spans
     WHERE kind = 'return' AND at >= $1 AND at < $2 AND department_id IS NOT NULL
)"""

#: The department-only rows (the drill-downs'), after the shared ``dl`` and ``mv``.
_UNIT_CTES = f""",
u_handled AS (
    -- the last feedback before the end, given in the period, with the deadline in force then
    SELECT s.case_id, s.department_id AS dep, {_IN_TIME} AS in_time FROM case_spans s
     WHERE {_HANDLED}
),
u_pending AS (
    -- the deadline as of the end, set for a department, falling in the period, and not answered
    -- (fed back, returned, deferred, closed or voided) by it
    SELECT p.case_id, p.department_id AS dep FROM dl p WHERE {_PENDING}
),
u_rows AS (
    -- one row per (case, department) handled or pending: a case has at most one of each
    SELECT coalesce(h.case_id, p.case_id) AS case_id, coalesce(h.dep, p.dep) AS dep,
           h.case_id IS NOT NULL AS handled,
           (h.in_time AND p.case_id IS NULL) IS TRUE AS on_time
      FROM u_handled h FULL JOIN u_pending p ON p.case_id = h.case_id AND p.dep = h.dep
),
{_RETURNED}"""

#: The department-only figures: figure -> (CTE, condition on its rows).
_UNIT_BRANCHES: dict[str, tuple[str, str]] = {
    "handled": ("u_rows", "handled"),
    "to_handle": ("u_rows", "true"),
    "handled_on_time": ("u_rows", "on_time"),
    "overdue": ("u_rows", "NOT on_time"),
    "returned": ("u_returned", "true"),
}

#: The same figures counted without the full join of every feedback with every pending deadline
#: (a year: 700,000 rows hashed in one process): per department, the handled ones (h), the pending
#: ones (p) and the pending ones also handled (b, each with whether the feedback was in time), so
#: 应处置 = h + p − b, 按期处置 = h in time − b in time, 超期 = 应处置 − 按期处置 — the sizes of
#: ``u_rows``' sets, which the drill-downs list (each family's tests compare the two).
_UNIT_COUNT_CTES = f""",
u_h AS (
    SELECT s.department_id AS dep, count(*) AS h, count(*) FILTER (WHERE {_IN_TIME}) AS h_in_time
      FROM case_spans s WHERE {_HANDLED} GROUP BY 1
),
u_p AS (
    -- the pending deadlines are few: each probes its case's spans (at most one matches)
    SELECT p.department_id AS dep, count(*) AS p, count(b.in_time) AS b,
           count(*) FILTER (WHERE b.in_time) AS b_in_time
      FROM dl p LEFT JOIN LATERAL (
            SELECT {_IN_TIME} AS in_time FROM case_spans s
             WHERE s.case_id = p.case_id AND s.department_id = p.department_id AND {_HANDLED}
             LIMIT 1) b ON true
     WHERE {_PENDING} GROUP BY 1
),
u_n AS (
    SELECT coalesce(u_h.dep, u_p.dep) AS dep, coalesce(h, 0) AS handled,
           coalesce(h, 0) + coalesce(p, 0) - coalesce(b, 0) AS to_handle,
           coalesce(h_in_time, 0) - coalesce(b_in_time, 0) AS handled_on_time
      FROM u_h FULL JOIN u_p USING (dep)
),
{_RETURNED}"""
_UNIT_COUNTED = """SELECT x.dep, v.indicator, v.n FROM u_n x CROSS JOIN LATERAL (VALUES
        ('handled', x.handled), ('to_handle', x.to_handle),
        ('handled_on_time', x.handled_on_time), ('overdue', x.to_handle - x.handled_on_time)
    ) v (indicator, n)
    UNION ALL
    SELECT dep, 'returned', count(*) FROM u_returned GROUP BY dep"""

#: Every department's figures of the period, as rows (department, figure, n); $1 = start, $2 =
#: end. The city's figures are keyed by the department each names (``FACT_BRANCHES``).
_UNIT_COUNTS = counts_text(
    lambda dep: None if dep == "NULL::integer" else (dep,),
    only=_CITY_BY_DEPARTMENT,
    extra_ctes=_UNIT_COUNT_CTES,
    extra_counted=_UNIT_COUNTED,
)


@functools.cache
def _unit_drill_text(figure: str) -> str:
    """One department's figure ($3): the figure's branch alone."""
    if figure in _UNIT_BRANCHES:
        cte, cond = _UNIT_BRANCHES[figure]
        return (
            f"WITH {DL_CTE},\n{MV_CTE}{_UNIT_CTES}\n"
            f"SELECT case_id FROM {cte} WHERE dep = $3 AND {cond}"
        )
    return members_text([figure]) + "\nSELECT case_id FROM members WHERE department_id = $3"


@dataclasses.dataclass(frozen=True, slots=True)
class DepartmentRow:
    """One department's figures for a period (every count by ``UnitFigure`` value)."""

    department_id: int
    name: str
    counts: dict[str, int]
    indicators: CityIndicators  # the city figures of the department: what the score reads

    def count(self, figure: UnitFigure | str) -> int:
        return self.counts[UnitFigure(figure).value]

    @property
    def handle_rate(self) -> Fraction | None:  # 处置率
        return _rate(self.counts["handled"], self.counts["to_handle"])

    @property
    def handle_on_time_rate(self) -> Fraction | None:  # 按期处置率
        return _rate(self.counts["handled_on_time"], self.counts["to_handle"])

    @property
    def overdue_rate(self) -> Fraction | None:  # 超期率
        return _rate(self.counts["overdue"], self.counts["to_handle"])

    def rates(self) -> dict[str, Fraction | None]:
        """The department's rates and the score's (``hub.core.scoring.RATES`` names)."""
        city = self.indicators.rates()
        return {
            "handle_rate": self.handle_rate,
            "handle_on_time_rate": self.handle_on_time_rate,
            "overdue_rate": self.overdue_rate,
            "close_rate": city["close_rate"],
            "on_time_rate": city["on_time_rate"],
            "rework_rate": city["rework_rate"],
            "extension_rate": city["extension_rate"],
        }


async def department_indicators(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    *,
    department_id: int | None = None,
    subtract_deferred: bool = False,
) -> list[DepartmentRow]:
    """Every department's row of ``[start, end)`` in one statement (ordered by id; inactive
    departments only when they have a figure). ``department_id`` keeps that department's row
    only (department staff)."""
    _check_period(start, end)
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(_UNIT_COUNTS, start, end)
            deps = await conn.fetch("SELECT id, name, active FROM departments ORDER BY id")
    names = {int(d["id"]): (str(d["name"]), bool(d["active"])) for d in deps}
    counts: dict[int, dict[str, int]] = {
        dep: {f.value: 0 for f in UnitFigure}
        for dep in names
        if department_id is None or dep == department_id
    }
    for r in rows:
        if r["k1"] is not None and int(r["k1"]) in counts:
            counts[int(r["k1"])][str(r["indicator"])] = int(r["n"])
    out: list[DepartmentRow] = []
    for dep, c in counts.items():
        name, active = names[dep]
        if not active and not any(c.values()):
            continue
        city = CityIndicators(
            start=start,
            end=end,
            department_id=dep,
            subtract_deferred=subtract_deferred,
            accepted=0,
            registered=0,
            quick_reported=0,
            quick_closed=0,
            **{k: c[k] for k in _CITY_BY_DEPARTMENT},
        )
        out.append(DepartmentRow(dep, name, c, city))
    return out


def department_drill_query(
    figure: UnitFigure | str,
    start: datetime,
    end: datetime,
    *,
    department_id: int,
) -> DrillQuery:
    """The statement of exactly the cases behind one department's figure, by its SQL."""
    _check_period(start, end)
    try:
        fig = UnitFigure(figure)
    except ValueError:
        raise InvalidRequest(
            "未知的评价指标", code="unknown_indicator", details={"indicator": str(figure)}
        ) from None
    return DrillQuery(_unit_drill_text(fig.value), (start, end, department_id))


async def department_drill_down(
    conn: asyncpg.Connection,
    figure: UnitFigure | str,
    start: datetime,
    end: datetime,
    *,
    department_id: int,
) -> list[int]:
    """The ids of exactly the cases behind one department's figure (ascending), by its SQL."""
    return await fetch_ids(
        conn, department_drill_query(figure, start, end, department_id=department_id)
    )
