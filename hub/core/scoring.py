"""The composite score (综合评价得分) as data: a formula a city edits, and its arithmetic shown.

Theory of operation
-------------------
A ``Formula`` is a list of terms, each worth at most ``points``:

- a **rate** term (``"kind": "rate"``) reads one rate (``on_time_rate``, ``close_rate`` …, the
  names of ``storage.evaluation.CityIndicators``): at or above ``threshold`` per cent it earns all
  its points; below, it loses ``per_point_short`` for every percentage point short (exactly, not
  rounded to whole points), never below 0. With no denominator (nothing was due) it earns
  ``no_cases`` = ``"full"`` (default: nothing failed) or ``"zero"``.
- a **penalty** term (``"kind": "penalty"``) reads one count (``reworked``, ``extended`` …) and
  loses ``per_unit`` for each, never below 0 ("本项扣完为止").

``parse_formula`` reads the JSON object a city keeps (checked with Chinese messages naming the
field at fault: ``ValidationFailed`` with ``details.field``); ``DEFAULT_FORMULA`` is the documented
default, after the Jinhua rules the issue quotes (按期结案率 ≥ 70 % earns 50 points minus 1 per
point short; 结案率 ≥ 90 % earns 20 points minus 1 per point short; each reworked case −0.2 from
a 5-point term). ``score`` returns the total with one ``TermScore`` per term (value, points lost,
points earned and a sentence), so a leader sees the arithmetic. All arithmetic is on ``Fraction``s;
``fmt`` rounds (half up, two decimals) for display only. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Literal

from hub.core.errors import ValidationFailed

#: Rates a rate term may read, with their labels.
RATES: Mapping[str, str] = {
    "register_rate": "立案率",
    "dispatch_rate": "派遣率",
    "close_rate": "结案率",
    "on_time_rate": "按期结案率",
    "rework_rate": "返工率",
    "extension_rate": "延期率",
}
#: Counts a penalty term may read, with their labels.
COUNTS: Mapping[str, str] = {
    "accepted": "受理数",
    "registered": "立案数",
    "dispatched": "派遣数",
    "due": "应结案数",
    "closed": "结案数",
    "on_time": "按期结案数",
    "reworked": "返工数",
    "extended": "延期数",
    "deferred": "缓办数",
}
#: Bounds of what a formula may say (a formula is data from an editor, not trusted).
MAX_TERMS = 50
MAX_JSON_BYTES = 64 * 1024
MAX_POINTS = 1000

Number = Fraction | int


def fmt(x: Fraction | int, places: int = 2) -> str:
    """A number for display, half up: ``fmt(Fraction(2, 3)) == "0.67"``."""
    f = Fraction(x)
    d = Decimal(f.numerator) / Decimal(f.denominator)
    return str(d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


@dataclasses.dataclass(frozen=True, slots=True)
class RateTerm:
    indicator: str
    points: Fraction
    threshold: Fraction  # per cent
    per_point_short: Fraction
    no_cases: Literal["full", "zero"] = "full"
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or RATES[self.indicator]


@dataclasses.dataclass(frozen=True, slots=True)
class PenaltyTerm:
    indicator: str
    points: Fraction
    per_unit: Fraction
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or COUNTS[self.indicator]


Term = RateTerm | PenaltyTerm


@dataclasses.dataclass(frozen=True, slots=True)
class Formula:
    name: str
    terms: tuple[Term, ...]

    @property
    def max_points(self) -> Fraction:
        return sum((t.points for t in self.terms), Fraction(0))


@dataclasses.dataclass(frozen=True, slots=True)
class TermScore:
    title: str
    indicator: str
    #: The rate (a fraction, not per cent) or the count the term read; None: no denominator.
    value: Fraction | int | None
    max_points: Fraction
    lost: Fraction
    points: Fraction
    explanation: str


@dataclasses.dataclass(frozen=True, slots=True)
class Score:
    formula: str
    total: Fraction
    max_points: Fraction
    terms: tuple[TermScore, ...]

    def lines(self) -> list[str]:
        """The arithmetic, one line per term and the total (zh-CN)."""
        out = [t.explanation for t in self.terms]
        out.append(f"合计 {fmt(self.total)} 分（满分 {fmt(self.max_points)} 分）")
        return out


def _fail(message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, code="bad_formula", details={"field": field})


def _number(raw: Any, field: str, *, low: Fraction, high: Fraction) -> Fraction:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _fail(f"“{field}”必须是数字", field)
    try:
        value = Fraction(str(raw)) if not isinstance(raw, int) else Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise _fail(f"“{field}”必须是数字", field) from None
    if not low <= value <= high:
        raise _fail(f"“{field}”须在 {fmt(low)} 到 {fmt(high)} 之间", field)
    return value


def _text(raw: Any, field: str, max_len: int = 60) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > max_len:
        raise _fail(f"“{field}”必须是不超过 {max_len} 个字的文字", field)
    return raw.strip()


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise _fail(f"“{where}”中有未知的设置项：{'、'.join(extra)}", f"{where}.{extra[0]}")


def parse_formula(raw: Mapping[str, Any] | str | bytes) -> Formula:
    """Read and check a formula (a JSON text or the decoded object)."""
    if isinstance(raw, str | bytes):
        if len(raw) > MAX_JSON_BYTES:
            raise _fail("评价公式过长", "formula")
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _fail("评价公式不是有效的 JSON", "formula") from None
    if not isinstance(raw, Mapping):
        raise _fail("评价公式必须是一个对象", "formula")
    _only(raw, {"name", "terms"}, "formula")
    name = _text(raw.get("name"), "name") or "综合评价"
    terms_raw = raw.get("terms")
    if not isinstance(terms_raw, list) or not terms_raw:
        raise _fail("评价公式至少需要一项指标", "terms")
    if len(terms_raw) > MAX_TERMS:
        raise _fail(f"评价公式最多 {MAX_TERMS} 项", "terms")
    terms: list[Term] = []
    for i, t in enumerate(terms_raw):
        where = f"terms[{i}]"
        if not isinstance(t, Mapping):
            raise _fail(f"第 {i + 1} 项必须是一个对象", where)
        kind = t.get("kind")
        indicator = t.get("indicator")
        label = _text(t.get("label"), f"{where}.label")
        points = _number(
            t.get("points"), f"{where}.points", low=Fraction(0), high=Fraction(MAX_POINTS)
        )
        if kind == "rate":
            _only(
                t,
                {
                    "kind",
                    "indicator",
                    "label",
                    "points",
                    "threshold",
                    "per_point_short",
                    "no_cases",
                },
                where,
            )
            if indicator not in RATES:
                raise _fail(
                    f"第 {i + 1} 项的比率指标未知：{indicator}（可用：{'、'.join(RATES)}）",
                    f"{where}.indicator",
                )
            no_cases = t.get("no_cases", "full")
            if no_cases not in ("full", "zero"):
                raise _fail(f"第 {i + 1} 项的“no_cases”只能是 full 或 zero", f"{where}.no_cases")
            terms.append(
                RateTerm(
                    indicator=str(indicator),
                    points=points,
                    threshold=_number(
                        t.get("threshold"),
                        f"{where}.threshold",
                        low=Fraction(0),
                        high=Fraction(100),
                    ),
                    per_point_short=_number(
                        t.get("per_point_short", 1),
                        f"{where}.per_point_short",
                        low=Fraction(0),
                        high=Fraction(MAX_POINTS),
                    ),
                    no_cases=no_cases,
                    label=label,
                )
            )
        elif kind == "penalty":
            _only(t, {"kind", "indicator", "label", "points", "per_unit"}, where)
            if indicator not in COUNTS:
                raise _fail(
                    f"第 {i + 1} 项的计数指标未知：{indicator}（可用：{'、'.join(COUNTS)}）",
                    f"{where}.indicator",
                )
            terms.append(
                PenaltyTerm(
                    indicator=str(indicator),
                    points=points,
                    per_unit=_number(
                        t.get("per_unit"),
                        f"{where}.per_unit",
                        low=Fraction(0),
                        high=Fraction(MAX_POINTS),
                    ),
                    label=label,
                )
            )
        else:
            raise _fail(
                f"第 {i + 1} 项的类型只能是 rate（比率）或 penalty（扣分）", f"{where}.kind"
            )
    return Formula(name, tuple(terms))


#: The documented default (docs/evaluation.md): the Jinhua rules' first three items.
DEFAULT_FORMULA_JSON: Mapping[str, Any] = {
    "name": "默认综合评价（参照金华市区数字化城市管理考核细则）",
    "terms": [
        {
            "kind": "rate",
            "indicator": "on_time_rate",
            "points": 50,
            "threshold": 70,
            "per_point_short": 1,
        },
        {
            "kind": "rate",
            "indicator": "close_rate",
            "points": 20,
            "threshold": 90,
            "per_point_short": 1,
        },
        {"kind": "penalty", "indicator": "reworked", "points": 5, "per_unit": "0.2"},
    ],
}
DEFAULT_FORMULA = parse_formula(DEFAULT_FORMULA_JSON)


def figures(indicators: object) -> dict[str, Fraction | int | None]:
    """The rates and counts a formula may read, taken from any object carrying them as
    attributes (``storage.evaluation.CityIndicators``)."""
    out: dict[str, Fraction | int | None] = {}
    for name in (*RATES, *COUNTS):
        if hasattr(indicators, name):
            out[name] = getattr(indicators, name)
    return out


def _percent(rate: Fraction) -> str:
    return fmt(rate * 100) + "%"


def _rate_term(t: RateTerm, value: Fraction | int | None) -> TermScore:
    if value is None:
        earned = t.points if t.no_cases == "full" else Fraction(0)
        text = f"{t.title}：无应计案件，得 {fmt(earned)} 分（满分 {fmt(t.points)}）"
        return TermScore(t.title, t.indicator, None, t.points, t.points - earned, earned, text)
    rate = Fraction(value)
    pct = rate * 100
    if pct >= t.threshold:
        text = f"{t.title} {_percent(rate)}，达到 {fmt(t.threshold)}%，得 {fmt(t.points)} 分"
        return TermScore(t.title, t.indicator, rate, t.points, Fraction(0), t.points, text)
    short = t.threshold - pct
    lost = min(t.points, short * t.per_point_short)
    earned = t.points - lost
    text = (
        f"{t.title} {_percent(rate)}，低于 {fmt(t.threshold)}% {fmt(short)} 个百分点，"
        f"每个百分点扣 {fmt(t.per_point_short)} 分，扣 {fmt(lost)} 分，"
        f"得 {fmt(earned)} 分（满分 {fmt(t.points)}）"
    )
    return TermScore(t.title, t.indicator, rate, t.points, lost, earned, text)


def _penalty_term(t: PenaltyTerm, value: Fraction | int | None) -> TermScore:
    count = int(value or 0)
    lost = min(t.points, count * t.per_unit)
    earned = t.points - lost
    text = (
        f"{t.title} {count} 件，每件扣 {fmt(t.per_unit)} 分，扣 {fmt(lost)} 分，"
        f"得 {fmt(earned)} 分（满分 {fmt(t.points)}）"
    )
    return TermScore(t.title, t.indicator, count, t.points, lost, earned, text)


def score(indicators: Mapping[str, Fraction | int | None] | object, formula: Formula) -> Score:
    """Apply ``formula`` to one evaluation object's figures (a mapping by name, or an object
    carrying them, e.g. ``CityIndicators``)."""
    values = indicators if isinstance(indicators, Mapping) else figures(indicators)
    parts: list[TermScore] = []
    for t in formula.terms:
        if t.indicator not in values:
            raise ValidationFailed(
                f"缺少指标“{t.title}”的数据",
                code="missing_indicator",
                details={"indicator": t.indicator},
            )
        value = values[t.indicator]
        if isinstance(t, RateTerm):
            parts.append(_rate_term(t, value))
        else:
            parts.append(_penalty_term(t, value))
    total = sum((p.points for p in parts), Fraction(0))
    return Score(formula.name, total, formula.max_points, tuple(parts))
