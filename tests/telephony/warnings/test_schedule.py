"""The schedule recurrence: which local slots fire, in the city's zone, once each, no backlog."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from telephony.warnings.schedule import Recurrence, ScheduleError, parse_time

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS = frozenset({1, 2, 3, 4, 5})


def market_gate() -> Recurrence:
    """Every 15 minutes from 08:00 to 20:00, weekdays only (the issue's example)."""
    return Recurrence(15, time(8, 0), time(20, 0), WEEKDAYS, SHANGHAI)


def local(y: int, m: int, d: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SHANGHAI)


class TestSlots:
    def test_a_weekday_has_49_slots_from_0800_to_2000(self) -> None:
        slots = market_gate().slots_on(date(2026, 12, 2))  # a Wednesday
        assert len(slots) == 49
        assert slots[0] == local(2026, 12, 2, 8, 0)
        assert slots[-1] == local(2026, 12, 2, 20, 0)
        assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(slots))

    def test_weekends_have_none(self) -> None:
        assert market_gate().slots_on(date(2026, 12, 5)) == []  # Saturday
        assert market_gate().slots_on(date(2026, 12, 6)) == []  # Sunday

    def test_until_not_on_the_step_is_not_overrun(self) -> None:
        r = Recurrence(25, time(8, 0), time(9, 0), WEEKDAYS, SHANGHAI)
        assert [s.strftime("%H:%M") for s in r.slots_on(date(2026, 12, 2))] == [
            "08:00",
            "08:25",
            "08:50",
        ]

    def test_the_zone_is_the_citys_not_utc(self) -> None:
        first = market_gate().slots_on(date(2026, 12, 2))[0]
        assert first.astimezone(UTC) == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


class TestNextAfter:
    def test_friday_evening_goes_to_monday_morning(self) -> None:
        friday_late = local(2026, 12, 4, 20, 0, 1)
        assert market_gate().next_after(friday_late) == local(2026, 12, 7, 8, 0)

    def test_strictly_after(self) -> None:
        at = local(2026, 12, 2, 8, 15)
        assert market_gate().next_after(at) == local(2026, 12, 2, 8, 30)


class TestDue:
    def test_fires_once_per_slot(self) -> None:
        r = market_gate()
        now = local(2026, 12, 2, 8, 15, 3)
        slot = r.due(None, now)
        assert slot == local(2026, 12, 2, 8, 15)
        assert r.due(slot, now + timedelta(seconds=30)) is None
        assert r.due(slot, local(2026, 12, 2, 8, 30, 1)) == local(2026, 12, 2, 8, 30)

    def test_no_backlog_after_an_outage(self) -> None:
        r = market_gate()
        last = local(2026, 12, 2, 9, 0)
        # down from 09:01 to 10:31: only 10:30 plays, not the five slots in between
        assert r.due(last, local(2026, 12, 2, 10, 31)) == local(2026, 12, 2, 10, 30)

    def test_a_slot_older_than_the_grace_is_skipped(self) -> None:
        r = market_gate()
        assert r.due(None, local(2026, 12, 2, 8, 10)) is None  # 08:00 was ten minutes ago
        assert r.due(None, local(2026, 12, 2, 8, 10), grace=timedelta(minutes=15)) is not None

    def test_nothing_at_the_weekend(self) -> None:
        assert market_gate().due(None, local(2026, 12, 5, 8, 0, 30)) is None


class TestChecks:
    @pytest.mark.parametrize(
        ("every", "start", "until", "days"),
        [
            (0, time(8), time(9), WEEKDAYS),
            (15, time(9), time(8), WEEKDAYS),
            (15, time(8), time(9), frozenset()),
            (15, time(8), time(9), frozenset({0, 8})),
        ],
    )
    def test_impossible_recurrences_are_refused_in_chinese(
        self, every: int, start: time, until: time, days: frozenset[int]
    ) -> None:
        with pytest.raises(ScheduleError) as e:
            Recurrence(every, start, until, days, SHANGHAI)
        assert any("\u4e00" <= c <= "\u9fff" for c in str(e.value))

    def test_parse_time(self) -> None:
        assert parse_time("08:05") == time(8, 5)
        with pytest.raises(ScheduleError):
            parse_time("25:00")
        with pytest.raises(ScheduleError):
            parse_time("8点")

    def test_describe(self) -> None:
        assert market_gate().describe() == "周一至周五 08:00–20:00 每 15 分钟"
