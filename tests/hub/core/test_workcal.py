"""Tests for hub.core.workcal: the working-time calendar behind case deadlines (处置时限)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.workcal import (
    WorkCalendar,
    load_exceptions_csv,
    parse_time_limit,
    parse_work_hours,
)

SEED = Path(__file__).resolve().parents[3] / "storage" / "seed"
SH = ZoneInfo("Asia/Shanghai")
PERIODS = parse_work_hours("08:30-12:00,14:30-18:00")
CN = load_exceptions_csv((SEED / "calendar_cn.csv").read_text(encoding="utf-8"))
CAL = WorkCalendar(tz=SH, periods=PERIODS, exceptions=CN)


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: ZoneInfo = SH) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz)


# --- parse_work_hours -------------------------------------------------------------------------


def test_parse_work_hours_default() -> None:
    assert parse_work_hours("08:30-12:00,14:30-18:00") == (
        (time(8, 30), time(12, 0)),
        (time(14, 30), time(18, 0)),
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("09:00-17:00", ((time(9), time(17)),)),
        (" 8:30 - 12:00 , 14:30-18:00 ", ((time(8, 30), time(12)), (time(14, 30), time(18)))),
        ("08:00-12:00,12:00-16:00", ((time(8), time(12)), (time(12), time(16)))),
    ],
)
def test_parse_work_hours_good(spec: str, expected: tuple[tuple[time, time], ...]) -> None:
    assert parse_work_hours(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("08:30", "bad period"),
        ("08:30-12:00,", "bad period"),
        ("8h-12h", "bad period"),
        ("08:30-12:00;14:30-18:00", "bad period"),
        ("25:00-26:00", "invalid time"),
        ("08:60-09:00", "invalid time"),
        ("12:00-08:30", "ends before"),
        ("08:30-08:30", "ends before"),
        ("08:30-12:00,11:00-18:00", "overlaps"),
        ("14:30-18:00,08:30-12:00", "overlaps"),
        ("08:00-09:00," * 40 + "10:00-11:00", "longer than"),
    ],
)
def test_parse_work_hours_bad(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_work_hours(spec)


def test_calendar_rejects_bad_periods() -> None:
    with pytest.raises(ValueError, match="no working periods"):
        WorkCalendar(tz=SH, periods=(), exceptions={})


def test_hours_per_day() -> None:
    assert CAL.hours_per_day == 7.0


# --- the shipped calendar and is_workday ------------------------------------------------------


def test_is_workday() -> None:
    assert CAL.is_workday(date(2026, 3, 10))  # Tuesday
    assert not CAL.is_workday(date(2026, 3, 14))  # Saturday
    assert not CAL.is_workday(date(2026, 3, 15))  # Sunday
    assert not CAL.is_workday(date(2026, 10, 1))  # 国庆节, Thursday
    assert not CAL.is_workday(date(2026, 2, 16))  # 春节, Monday
    assert CAL.is_workday(date(2026, 10, 10))  # 国庆节调休上班, Saturday
    assert CAL.is_workday(date(2025, 1, 26))  # 春节调休上班, Sunday
    assert CAL.is_workday(date(2026, 10, 8))  # after the 2026 National Day week
    assert not CAL.is_workday(date(2025, 10, 8))  # 2025: National Day + Mid-Autumn run to Oct 8


def test_shipped_calendar_shape() -> None:
    for day, is_workday in CN.items():
        # make-up working days (调休) are all weekend days
        assert not is_workday or day.weekday() >= 5, day
    # 13 statutory holidays since 2025; make-up days keep the year at 248 working days
    for year in (2025, 2026):
        days = (date(year, 1, 1) + timedelta(n) for n in range(365))
        assert sum(CAL.is_workday(d) for d in days) == 248


# --- add --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (at(2026, 3, 10, 9), 2, at(2026, 3, 10, 11)),  # within one period
        (at(2026, 3, 10, 10), 2, at(2026, 3, 10, 12)),  # ends exactly at the period end
        (at(2026, 3, 10, 11), 2, at(2026, 3, 10, 15, 30)),  # across the lunch break
        (at(2026, 3, 10, 17), 2, at(2026, 3, 11, 9, 30)),  # across a night
        (at(2026, 3, 13, 17), 2, at(2026, 3, 16, 9, 30)),  # Friday -> Monday
        (at(2026, 3, 10, 6), 1, at(2026, 3, 10, 9, 30)),  # before work
        (at(2026, 3, 10, 12, 30), 1, at(2026, 3, 10, 15, 30)),  # during lunch
        (at(2026, 3, 10, 20), 1, at(2026, 3, 11, 9, 30)),  # after work
        (at(2026, 3, 14, 10), 1, at(2026, 3, 16, 9, 30)),  # on a Saturday
        (at(2026, 10, 3, 10), 1, at(2026, 10, 8, 9, 30)),  # on a holiday
        (at(2026, 5, 1, 10), 4, at(2026, 5, 6, 15)),  # Labour Day week
        (at(2026, 10, 9, 17), 2, at(2026, 10, 10, 9, 30)),  # into a 调休 Saturday
        (at(2026, 2, 13, 17), 2, at(2026, 2, 14, 9, 30)),  # Spring Festival make-up Saturday
        (at(2026, 2, 14, 17), 2, at(2026, 2, 24, 9, 30)),  # over the Spring Festival
        (at(2026, 3, 9, 8, 30), 35, at(2026, 3, 13, 18)),  # five whole days
    ],
)
def test_add_hours(start: datetime, hours: int, expected: datetime) -> None:
    got = CAL.add(start, hours, "hours")
    assert got == expected
    assert got.tzinfo is SH


def test_add_national_day_week_2026() -> None:
    # Sep 30 16:00-18:00 gives 2 h; Oct 1-7 are off; Oct 8 (Thursday) is a working day:
    # 08:30-12:00 gives 3.5 h, the last 1.5 h run 14:30-16:00.
    due = CAL.add(at(2026, 9, 30, 16), 1, "days")
    assert due == at(2026, 10, 8, 16)
    assert due.isoformat() == "2026-10-08T16:00:00+08:00"


def test_add_national_day_week_2025() -> None:
    # 2025: National Day and Mid-Autumn together run Oct 1-8, so the deadline moves to Oct 9.
    assert CAL.add(at(2025, 9, 30, 16), 1, "days") == at(2025, 10, 9, 16)


def test_add_days_convention() -> None:
    # N working days == N * hours_per_day working hours.
    start = at(2026, 3, 10, 16)
    assert CAL.add(start, 1, "days") == at(2026, 3, 11, 16)
    for n in (1, 3, 7, 20):
        assert CAL.add(start, n, "days") == CAL.add(start, 7 * n, "hours")
    # dispatched after hours: due at the end of the next working day
    assert CAL.add(at(2026, 3, 10, 20), 1, "days") == at(2026, 3, 11, 18)
    # dispatched before work on a working day: due at the end of that day
    assert CAL.add(at(2026, 3, 10, 7), 1, "days") == at(2026, 3, 10, 18)
    # 7 working days from Sep 30 2026 skip the National Day week
    assert CAL.add(at(2026, 9, 30, 9), 7, "days") == at(2026, 10, 15, 9)


def test_add_other_input_zone_and_fixed_offset() -> None:
    start = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    got = CAL.add(start, 1, "hours")
    assert got == datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    assert got.tzinfo is SH
    # Asia/Shanghai has no DST: the offset is +08:00 all year
    for month in (1, 7):
        assert CAL.add(at(2026, month, 6, 9), 1, "hours").utcoffset() == timedelta(hours=8)


def test_add_across_dst_uses_wall_clock() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    cal = WorkCalendar(tz=berlin, periods=PERIODS, exceptions={})
    start = datetime(2026, 3, 27, 17, tzinfo=berlin)  # Friday, CET; DST starts Sunday Mar 29
    due = cal.add(start, 2, "hours")
    assert due == datetime(2026, 3, 30, 9, 30, tzinfo=berlin)
    assert due.utcoffset() == timedelta(hours=2)
    assert cal.working_seconds_between(start, due) == 7200


def test_add_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add(datetime(2026, 3, 10, 9), 1, "hours")
    for amount in (0, -1):
        with pytest.raises(ValueError, match="positive"):
            CAL.add(at(2026, 3, 10, 9), amount, "hours")
    with pytest.raises(ValueError, match="unit"):
        CAL.add(at(2026, 3, 10, 9), 1, "weeks")  # type: ignore[arg-type]


class _NeverWork(Mapping[date, bool]):
    def __getitem__(self, key: date) -> bool:
        return False

    def __iter__(self) -> Iterator[date]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_add_gives_up_without_working_days() -> None:
    cal = WorkCalendar(tz=SH, periods=PERIODS, exceptions=_NeverWork())
    with pytest.raises(ValueError, match="no working day within 3650 days"):
        cal.add(at(2026, 3, 10, 9), 1, "hours")


def test_add_large_amount_is_fast() -> None:
    # 10 years of working days; walks day by day, not minute by minute
    due = CAL.add(at(2026, 1, 5, 8, 30), 2500, "days")
    assert CAL.working_seconds_between(at(2026, 1, 5, 8, 30), due) == 2500 * 7 * 3600


# --- working_seconds_between ------------------------------------------------------------------


def test_working_seconds_between() -> None:
    assert CAL.working_seconds_between(at(2026, 3, 10, 9), at(2026, 3, 10, 15)) == 3.5 * 3600
    assert CAL.working_seconds_between(at(2026, 3, 10, 12), at(2026, 3, 10, 14, 30)) == 0
    assert CAL.working_seconds_between(at(2026, 9, 30, 16), at(2026, 10, 8, 16)) == 7 * 3600
    assert CAL.working_seconds_between(at(2026, 3, 10, 15), at(2026, 3, 10, 9)) == 0
    assert CAL.working_seconds_between(at(2026, 3, 10, 9), at(2026, 3, 10, 9)) == 0
    year = CAL.working_seconds_between(at(2026, 1, 1), at(2027, 1, 1))
    assert year == 248 * 7 * 3600


def test_working_seconds_between_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.working_seconds_between(datetime(2026, 3, 10, 9), at(2026, 3, 10, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.working_seconds_between(at(2026, 3, 10, 9), datetime(2026, 3, 10, 10))


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1),
        max_value=datetime(2026, 12, 31, 23, 59, 59),
        timezones=st.just(SH),
    ),
    n=st.integers(min_value=1, max_value=200),
)
def test_add_consistent_with_working_seconds(start: datetime, n: int) -> None:
    due = CAL.add(start, n, "hours")
    assert due > start
    assert CAL.working_seconds_between(start, due) == n * 3600
    # the deadline is the earliest such instant: it lies inside (or at the end of) a working period
    local = due.astimezone(SH)
    assert CAL.is_workday(local.date())
    assert any(s < local.time() <= e for s, e in PERIODS)


# --- load_exceptions_csv ----------------------------------------------------------------------


def test_load_exceptions_csv() -> None:
    text = "\ufeffday,is_workday,note\n2026-10-01,false,国庆节\n\n2026-10-10,TRUE,国庆节调休上班\n"
    assert load_exceptions_csv(text) == {date(2026, 10, 1): False, date(2026, 10, 10): True}
    assert load_exceptions_csv("day,is_workday,note\n") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: expected header"),
        ("date,workday\n2026-10-01,false\n", "line 1: expected header"),
        ("day,is_workday,note\n2026-10-01,false,国庆节\n2026-13-01,false,x\n", "line 3: bad date"),
        ("day,is_workday,note\n2026-10-01,maybe,国庆节\n", "line 2: bad is_workday"),
        ("day,is_workday,note\n2026-10-01\n", "line 2: expected 3 columns"),
        ("day,is_workday,note\n2026-10-01,false,a\n2026-10-01,false,b\n", "line 3: duplicate"),
    ],
)
def test_load_exceptions_csv_bad(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_exceptions_csv(text)


# --- parse_time_limit -------------------------------------------------------------------------

KNOWN_LIMITS = {
    "4 working hours": (4, "hours"),
    "5 working days": (5, "days"),
    "4 working hours (stop work); 7 working days (penalty); 20 working days (demolish)": (
        4,
        "hours",
    ),
    "2 working hours (路面积水 4 working hours)": (2, "hours"),
    "4 working hours (渣土堆 2 working days)": (4, "hours"),
}


def test_parse_time_limit_catalog() -> None:
    text = (SEED / "categories.csv").read_text(encoding="utf-8")
    limits = [row["time_limit"] for row in csv.DictReader(io.StringIO(text))]
    non_empty = [t for t in limits if t.strip()]
    assert non_empty
    for value in non_empty:
        assert parse_time_limit(value) is not None, value
        if value in KNOWN_LIMITS:
            assert parse_time_limit(value) == KNOWN_LIMITS[value]
    for value in limits:
        if not value.strip():
            assert parse_time_limit(value) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *KNOWN_LIMITS.items(),
        ("1 working hour", (1, "hours")),
        ("1 Working Day", (1, "days")),
        ("7 working days", (7, "days")),
        ("4个工作小时", (4, "hours")),
        ("7个工作日", (7, "days")),
        ("", None),
        ("   ", None),
        ("immediately", None),
        ("0 working hours", None),
        ("24 hours", None),
    ],
)
def test_parse_time_limit(text: str, expected: tuple[int, str] | None) -> None:
    assert parse_time_limit(text) == expected
