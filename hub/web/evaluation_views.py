"""The pieces of the evaluation API (``hub/web/routes/evaluation.py``) that are not handlers: the
period a request names (in the city's time zone, with its zh-CN label), rates and scores as JSON,
the department a caller may see, and the tables (columns and rows) the pages, the exports and the
weekly report share. No I/O except through the storage functions passed a connection."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from hub.core import scoring
from hub.core.errors import Forbidden, ValidationFailed
from hub.core.workflow import Role
from hub.web.auth import Principal
from storage import evaluation as ev
from storage import evaluation_formula as formula_store
from storage import evaluation_units as eu

PeriodKind = Literal["day", "week", "month", "quarter", "year"]
#: The longest ``start``..``end`` range a request may name (a year and a few days).
MAX_RANGE_DAYS = 370
#: Dates a request may name (beyond them a period's arithmetic would leave the calendar).
MIN_YEAR, MAX_YEAR = 1970, 2999

COUNT_KEYS: tuple[str, ...] = tuple(i.value for i in ev.Indicator)
COUNT_LABELS: dict[str, str] = {i.value: label for i, label in ev.INDICATOR_LABELS.items()}
RATE_LABELS: dict[str, str] = dict(scoring.RATES)
#: Each rate's numerator and denominator (``base`` is 应结案数, less 缓办数 in the variant).
RATE_PARTS: dict[str, tuple[str, str]] = {
    "register_rate": ("registered", "accepted"),
    "dispatch_rate": ("dispatched", "registered"),
    "close_rate": ("closed", "base"),
    "on_time_rate": ("on_time", "base"),
    "rework_rate": ("reworked", "base"),
    "extension_rate": ("extended", "base"),
}
RATE_KEYS: tuple[str, ...] = tuple(RATE_PARTS)
#: Roles that see the evaluation (department staff: their own department only). Supervisors and
#: hotline agents are refused (403): the figures are the centre's and the departments'.
EVAL_ROLES: frozenset[Role] = frozenset(
    {Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER, Role.DEPARTMENT}
)


@dataclasses.dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime
    kind: PeriodKind | None  # None: a start..end range
    label: str

    def json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "kind": self.kind,
            "label": self.label,
        }

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The last local day of the period (``end`` is exclusive)."""
        return (self.end - timedelta(days=1)).date()


def _md(d: date) -> str:
    return f"{d.month}月{d.day}日"


def period_label(kind: PeriodKind | None, first: date, last: date) -> str:
    """``2026年第48周 (11月23日–11月29日)``, ``2026年11月``, ``2026年第4季度`` …"""
    if kind == "day":
        return f"{first.year}年{_md(first)}"
    if kind == "week":
        year, week, _ = first.isocalendar()
        return f"{year}年第{week}周 ({_md(first)}–{_md(last)})"
    if kind == "month":
        return f"{first.year}年{first.month}月"
    if kind == "quarter":
        return f"{first.year}年第{(first.month - 1) // 3 + 1}季度"
    if kind == "year":
        return f"{first.year}年"
    if first.year == last.year:
        return f"{first.year}年{_md(first)}–{_md(last)}"
    return f"{first.year}年{_md(first)}–{last.year}年{_md(last)}"


def _check_day(d: date, name: str) -> None:
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise ValidationFailed(
            f"日期 {name} 超出范围（{MIN_YEAR}–{MAX_YEAR} 年）",
            code="bad_period",
            details={"field": name},
        )


def make_period(kind: PeriodKind, day: date, tz: ZoneInfo) -> Period:
    _check_day(day, "day")
    start, end = ev.period_bounds(kind, day, tz)
    return Period(start, end, kind, period_label(kind, start.date(), (end - timedelta(1)).date()))


def resolve_period(
    kind: PeriodKind,
    day: date | None,
    start: date | None,
    end: date | None,
    tz: ZoneInfo,
    today: date,
) -> Period:
    """The period of a request: ``start``..``end`` (local dates, end exclusive) or the ``kind``
    period containing ``day`` (default: today in the city's zone)."""
    if start is None and end is None:
        return make_period(kind, day or today, tz)
    if start is None or end is None:
        raise ValidationFailed(
            "自定义时段须同时提供开始日期 start 和结束日期 end",
            code="bad_period",
            details={"field": "start" if start is None else "end"},
        )
    if day is not None:
        raise ValidationFailed(
            "day 与 start/end 不能同时使用", code="bad_period", details={"field": "day"}
        )
    _check_day(start, "start")
    _check_day(end, "end")
    if end <= start:
        raise ValidationFailed(
            "结束日期 end 须晚于开始日期 start（end 不含当天）",
            code="bad_period",
            details={"field": "end"},
        )
    if (end - start).days > MAX_RANGE_DAYS:
        raise ValidationFailed(
            f"统计时段不能超过 {MAX_RANGE_DAYS} 天",
            code="bad_period",
            details={"field": "end", "max_days": MAX_RANGE_DAYS},
        )
    s, e = datetime.combine(start, time(), tz), datetime.combine(end, time(), tz)
    return Period(s, e, None, period_label(None, start, end - timedelta(days=1)))


def previous_period(p: Period, tz: ZoneInfo) -> Period:
    """The period just before ``p``, of the same kind (or the same length for a range)."""
    if p.kind is not None:
        return make_period(p.kind, p.first_day - timedelta(days=1), tz)
    days = (p.last_day - p.first_day).days + 1
    first = p.first_day - timedelta(days=days)
    s = datetime.combine(first, time(), tz)
    return Period(s, p.start, None, period_label(None, first, p.first_day - timedelta(days=1)))


# -- who sees what ---------------------------------------------------------------------------


def own_department(p: Principal) -> int | None:
    """The one department a department user may see (-1 for one with none); None: any."""
    if p.role is Role.DEPARTMENT:
        return p.actor.department_id or -1
    return None


def department_scope(p: Principal, requested: int | None) -> int | None:
    """The department whose figures a request reads: a department user's own (asking for another
    is refused), otherwise the one asked for (None: the whole city)."""
    own = own_department(p)
    if own is None:
        return requested
    if requested is not None and requested != own:
        raise Forbidden(
            "部门人员只能查看本部门的评价",
            code="other_department",
            details={"department_id": requested},
        )
    return own


# -- JSON ------------------------------------------------------------------------------------


def number(x: Fraction | int) -> float | int:
    """A figure as a JSON number: counts exact, fractions rounded half up to two decimals."""
    if isinstance(x, int):
        return x
    if x.denominator == 1:
        return int(x.numerator)
    return float(Decimal(scoring.fmt(x)))


def rate_json(value: Fraction | None, num: int, den: int) -> dict[str, Any]:
    return {
        "value": None if value is None else round(float(value), 6),
        "text": ev.percent(value),
        "num": num,
        "den": den,
    }


def counts_json(ind: ev.CityIndicators) -> dict[str, int]:
    return {k: ind.count(ev.Indicator(k)) for k in COUNT_KEYS}


def rates_json(ind: ev.CityIndicators) -> dict[str, dict[str, Any]]:
    values = ind.rates()
    out: dict[str, dict[str, Any]] = {}
    for key, (num, den) in RATE_PARTS.items():
        n = int(getattr(ind, num))
        d = ind.base if den == "base" else int(getattr(ind, den))
        out[key] = rate_json(values[key], n, d)
    return out


#: A department's rates: its own (处置 …, over 应处置数) and the score's (over 应结案数).
UNIT_RATE_PARTS: dict[str, tuple[str, str]] = {
    "handle_rate": ("handled", "to_handle"),
    "handle_on_time_rate": ("handled_on_time", "to_handle"),
    "overdue_rate": ("overdue", "to_handle"),
    "close_rate": ("closed", "base"),
    "on_time_rate": ("on_time", "base"),
    "rework_rate": ("reworked", "base"),
    "extension_rate": ("extended", "base"),
}
UNIT_COUNT_LABELS: dict[str, str] = {f.value: label for f, label in eu.UNIT_FIGURE_LABELS.items()}


def unit_rates_json(row: eu.DepartmentRow) -> dict[str, dict[str, Any]]:
    values = row.rates()
    out: dict[str, dict[str, Any]] = {}
    for key, (num, den) in UNIT_RATE_PARTS.items():
        d = row.indicators.base if den == "base" else row.counts[den]
        out[key] = rate_json(values[key], row.counts[num], d)
    return out


def unit_columns() -> list[dict[str, str]]:
    return [
        *({"key": k, "label": label, "kind": "count"} for k, label in UNIT_COUNT_LABELS.items()),
        *({"key": k, "label": eu.UNIT_RATE_LABELS[k], "kind": "rate"} for k in UNIT_RATE_PARTS),
        {"key": "score", "label": "综合得分", "kind": "score"},
    ]


def _term_value_text(t: scoring.TermScore) -> str:
    if t.value is None:
        return "—"
    if t.indicator in scoring.RATES:
        return ev.percent(Fraction(t.value))
    return f"{int(t.value)} 件"


def score_json(s: scoring.Score) -> dict[str, Any]:
    return {
        "formula": s.formula,
        "total": number(s.total),
        "total_text": scoring.fmt(s.total),
        "max": number(s.max_points),
        "terms": [
            {
                "label": t.title,
                "indicator": t.indicator,
                "value_text": _term_value_text(t),
                "earned": number(t.points),
                "lost": number(t.lost),
                "max": number(t.max_points),
                "text": t.explanation,
            }
            for t in s.terms
        ],
        "lines": s.lines(),
    }


def figures_json(ind: ev.CityIndicators, formula: scoring.Formula) -> dict[str, Any]:
    return {
        "counts": counts_json(ind),
        "rates": rates_json(ind),
        "score": score_json(scoring.score(ind, formula)),
    }


def count_columns() -> list[dict[str, str]]:
    return [{"key": k, "label": COUNT_LABELS[k], "kind": "count"} for k in COUNT_KEYS]


def rate_columns() -> list[dict[str, str]]:
    return [{"key": k, "label": RATE_LABELS[k], "kind": "rate"} for k in RATE_KEYS]


async def current_formula(conn: asyncpg.Connection) -> tuple[scoring.Formula, dict[str, Any]]:
    """The city's formula (the stored one, or the documented default) and how it was stored."""
    stored = await formula_store.get_formula(conn)
    if stored is None:
        return scoring.DEFAULT_FORMULA, {
            "formula": dict(scoring.DEFAULT_FORMULA_JSON),
            "is_default": True,
            "updated_at": None,
            "updated_by": None,
        }
    return scoring.parse_formula(stored.formula), {
        "formula": stored.formula,
        "is_default": False,
        "updated_at": stored.updated_at.isoformat(),
        "updated_by": None
        if stored.updated_by is None
        else {"id": stored.updated_by, "display_name": stored.updated_by_name},
    }


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by score (desc), then name; ``rank`` 1, 2, 2, 4 … for equal totals."""
    rows.sort(key=lambda r: (-r["_total"], r["name"]))
    prev: Fraction | None = None
    rank = 0
    for i, r in enumerate(rows, start=1):
        if r["_total"] != prev:
            rank, prev = i, r["_total"]
        r["rank"] = rank
    for r in rows:
        del r["_total"]
    return rows
