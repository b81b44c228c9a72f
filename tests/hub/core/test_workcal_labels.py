"""Tests for the Chinese time-limit labels of hub.core.workcal (what the pages show for 处置时限)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.workcal import parse_time_limit, time_limit_label, unit_label

SEED = Path(__file__).resolve().parents[3] / "storage" / "seed"
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def catalog_limits() -> list[str]:
    text = (SEED / "categories.csv").read_text(encoding="utf-8")
    return [row["time_limit"] for row in csv.DictReader(io.StringIO(text))]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("4 working hours", "4个工作时"),
        ("5 working days", "5个工作日"),
        ("1 working hour", "1个工作时"),
        ("1 Working Day", "1个工作日"),
        (
            "4 working hours (stop work); 7 working days (penalty); 20 working days (demolish)",
            "4个工作时（责令停工）；7个工作日（处罚）；20个工作日（拆除）",
        ),
        ("2 working hours (路面积水 4 working hours)", "2个工作时（路面积水4个工作时）"),
        ("4 working hours (渣土堆 2 working days)", "4个工作时（渣土堆2个工作日）"),
        ("immediately", "立即"),
        ("urgent: 2 hours", "紧急：2小时"),
        ("4个工作小时", "4个工作小时"),  # already Chinese: kept
        ("7个工作日(处罚)", "7个工作日（处罚）"),
        ("", ""),
        ("   ", ""),
        # Wording the glossary does not know is never shown half-translated.
        ("4 working hours (after the inspector calls)", "4个工作时"),
        ("as soon as possible", ""),
    ],
)
def test_time_limit_label(text: str, label: str) -> None:
    assert time_limit_label(text) == label


def test_every_catalog_limit_has_a_chinese_label() -> None:
    limits = [t for t in catalog_limits() if t.strip()]
    assert limits
    for text in limits:
        label = time_limit_label(text)
        assert label, text
        assert not LATIN_WORD.search(label), (text, label)
        # The label says the same limit as the text (the deadline is computed from the text).
        assert parse_time_limit(label) == parse_time_limit(text), (text, label)


def test_unit_label() -> None:
    assert unit_label(4, "hours") == "4个工作时"
    assert unit_label(5, "days") == "5个工作日"
    with pytest.raises(ValueError, match="unit"):
        unit_label(3, "weeks")


TOKENS = st.sampled_from(
    [
        "4",
        "12",
        "0",
        "working",
        "hours",
        "hour",
        "days",
        "day",
        "(",
        ")",
        ";",
        ",",
        "stop work",
        "penalty",
        "demolish",
        "immediately",
        "urgent",
        "个",
        "工作日",
        "工作时",
        "小时",
        "渣土堆",
        "x",
        "inspection",
        " ",
    ]
)


@given(st.lists(TOKENS, max_size=12).map(" ".join) | st.text(max_size=60))
def test_label_is_chinese_and_keeps_the_limit(text: str) -> None:
    label = time_limit_label(text)
    assert not LATIN_WORD.search(label), (text, label)
    if label:
        assert parse_time_limit(label) == parse_time_limit(text), (text, label)
    elif parse_time_limit(text) is not None:
        pytest.fail(f"{text!r} holds a limit but has no label")
