"""The composite score (``hub.core.scoring``): the default formula's arithmetic on the published
Zhengzhou week and on hand-made figures, a city's own formula from JSON, and the refusals (each
naming the field at fault, in Chinese)."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from hub.core import scoring
from hub.core.errors import ValidationFailed


def figs(on_time: Fraction | None, close: Fraction | None, reworked: int) -> dict[str, Any]:
    return {"on_time_rate": on_time, "close_rate": close, "reworked": reworked}


def test_the_default_formula_on_the_published_week() -> None:
    # 按期结案率 40394/52434 = 77.04% >= 70: 50; 结案率 43523/52434 = 83.01%: 6.99 points short
    # of 90 -> 13.01; 276 reworked cases x 0.2 = 55.2 > 5: the term is used up -> 0.
    s = scoring.score(
        figs(Fraction(40394, 52434), Fraction(43523, 52434), 276), scoring.DEFAULT_FORMULA
    )
    assert [t.points for t in s.terms] == [
        Fraction(50),
        Fraction(20) - (90 - Fraction(43523, 52434) * 100),
        Fraction(0),
    ]
    assert scoring.fmt(s.total) == "63.01"
    assert s.max_points == 75
    assert s.lines() == [
        "按期结案率 77.04%，达到 70.00%，得 50.00 分",
        "结案率 83.01%，低于 90.00% 6.99 个百分点，每个百分点扣 1.00 分，扣 6.99 分，"
        "得 13.01 分（满分 20.00）",
        "返工数 276 件，每件扣 0.20 分，扣 5.00 分，得 0.00 分（满分 5.00）",
        "合计 63.01 分（满分 75.00 分）",
    ]


def test_points_short_are_exact_and_floored_at_zero() -> None:
    s = scoring.score(figs(Fraction(65, 100), Fraction(1, 100), 3), scoring.DEFAULT_FORMULA)
    on_time, close, rework = s.terms
    assert (on_time.lost, on_time.points) == (Fraction(5), Fraction(45))  # 5 points short of 70
    assert (close.lost, close.points) == (
        Fraction(20),
        Fraction(0),
    )  # 89 points short: no lower than 0
    assert rework.points == Fraction(5) - Fraction(6, 10)  # 3 x 0.2
    assert s.total == Fraction(45) + Fraction(44, 10)


def test_nothing_due_earns_the_full_points_unless_the_city_says_zero() -> None:
    s = scoring.score(figs(None, None, 0), scoring.DEFAULT_FORMULA)
    assert s.total == 75
    assert s.terms[0].explanation.startswith("按期结案率：无应计案件")
    strict = scoring.parse_formula(
        {
            "terms": [
                {
                    "kind": "rate",
                    "indicator": "on_time_rate",
                    "points": 10,
                    "threshold": 95,
                    "no_cases": "zero",
                }
            ]
        }
    )
    assert scoring.score(figs(None, None, 0), strict).total == 0


def test_a_citys_own_formula_from_json() -> None:
    text = json.dumps(
        {
            "name": "某区部门考核",
            "terms": [
                {
                    "kind": "rate",
                    "indicator": "on_time_rate",
                    "label": "按期处置",
                    "points": 60,
                    "threshold": "92.5",
                    "per_point_short": 2,
                },
                {"kind": "penalty", "indicator": "extended", "points": 10, "per_unit": 0.5},
            ],
        },
        ensure_ascii=False,
    )
    f = scoring.parse_formula(text)
    assert isinstance(f.terms[0], scoring.RateTerm)
    assert f.terms[0].threshold == Fraction(185, 2)
    s = scoring.score({"on_time_rate": Fraction(9, 10), "extended": 4}, f)
    assert [t.points for t in s.terms] == [Fraction(55), Fraction(8)]  # 2.5 short x 2; 4 x 0.5
    assert s.terms[0].title == "按期处置"
    assert s.formula == "某区部门考核"


def test_the_score_reads_an_indicators_object() -> None:
    class Figures:
        on_time_rate = Fraction(7, 10)
        close_rate = Fraction(9, 10)
        reworked = 0

    assert scoring.score(Figures(), scoring.DEFAULT_FORMULA).total == 75


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ("{not json", "formula", "JSON"),
        ([], "formula", "对象"),
        ({"terms": []}, "terms", "至少"),
        ({"terms": [1]}, "terms[0]", "对象"),
        ({"terms": [{"kind": "bonus", "points": 1}]}, "terms[0].kind", "rate"),
        (
            {"terms": [{"kind": "rate", "indicator": "speed", "points": 1, "threshold": 1}]},
            "terms[0].indicator",
            "比率指标未知",
        ),
        (
            {"terms": [{"kind": "penalty", "indicator": "close_rate", "points": 1, "per_unit": 1}]},
            "terms[0].indicator",
            "计数指标未知",
        ),
        (
            {"terms": [{"kind": "rate", "indicator": "close_rate", "points": 1, "threshold": 101}]},
            "terms[0].threshold",
            "0.00 到 100.00",
        ),
        (
            {"terms": [{"kind": "rate", "indicator": "close_rate", "points": -1, "threshold": 1}]},
            "terms[0].points",
            "之间",
        ),
        (
            {
                "terms": [
                    {"kind": "rate", "indicator": "close_rate", "points": True, "threshold": 1}
                ]
            },
            "terms[0].points",
            "数字",
        ),
        (
            {"terms": [{"kind": "penalty", "indicator": "reworked", "points": 5, "per_unit": "x"}]},
            "terms[0].per_unit",
            "数字",
        ),
        (
            {
                "terms": [
                    {"kind": "rate", "indicator": "close_rate", "points": 1, "threshold": 1, "w": 1}
                ]
            },
            "terms[0].w",
            "未知的设置项",
        ),
        ({"terms": [{"kind": "rate"}] * 51}, "terms", "最多"),
        ("x" * (scoring.MAX_JSON_BYTES + 1), "formula", "过长"),
    ],
)
def test_refusals_name_the_field(raw: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        scoring.parse_formula(raw)
    assert exc.value.code == "bad_formula"
    assert exc.value.details == {"field": field}
    assert words in str(exc.value)


def test_a_missing_figure_is_refused() -> None:
    with pytest.raises(ValidationFailed) as exc:
        scoring.score({"on_time_rate": Fraction(1)}, scoring.DEFAULT_FORMULA)
    assert exc.value.code == "missing_indicator"
    assert "结案率" in str(exc.value)
