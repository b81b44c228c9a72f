"""CITYHUB_HOTLINE_HOURS: empty is 24 hours; one range, several, over midnight; on the city's zone;
bad text refused with a message that says what is wrong."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.workcal import WorkCalendar, parse_work_hours
from telephony.hotline.hours import HoursError, parse_hours

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(hhmmss: str, tz: ZoneInfo = SHANGHAI) -> float:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return datetime(2026, 12, 2, h, m, s, tzinfo=tz).timestamp()


def is_open(text: str, hhmmss: str) -> bool:
    return parse_hours(text, SHANGHAI).open_at(at(hhmmss))


class TestParse:
    @pytest.mark.parametrize("text", ["", "  ", "00:00-24:00"])
    def test_all_day(self, text: str) -> None:
        hours = parse_hours(text, SHANGHAI)
        assert hours.always and hours.describe() == "全天 24 小时"
        assert all(hours.open_at(at(f"{h:02d}:30:00")) for h in range(24))

    def test_one_range_includes_its_start_and_not_its_end(self) -> None:
        text = "08:00-20:00"
        assert not is_open(text, "07:59:59")
        assert is_open(text, "08:00:00") and is_open(text, "19:59:59")
        assert not is_open(text, "20:00:00")

    def test_several_ranges_closed_at_lunch(self) -> None:
        text = "08:00-12:00, 13:00-20:00"
        assert is_open(text, "11:59:00") and not is_open(text, "12:30:00")
        assert is_open(text, "13:00:00") and not is_open(text, "21:00:00")
        assert parse_hours(text, SHANGHAI).describe() == "08:00–12:00、13:00–20:00"

    def test_a_night_line_over_midnight(self) -> None:
        text = "20:00-08:00"
        assert is_open(text, "20:00:00") and is_open(text, "23:59:59")
        assert is_open(text, "00:00:00") and is_open(text, "07:59:59")
        assert not is_open(text, "08:00:00") and not is_open(text, "12:00:00")
        assert parse_hours(text, SHANGHAI).describe() == "20:00–（次日）08:00"

    def test_an_evening_until_midnight(self) -> None:
        assert is_open("18:00-24:00", "23:59:59") and not is_open("18:00-24:00", "00:00:00")

    def test_the_citys_zone_decides(self) -> None:
        instant = at("07:00:00")  # 07:00 in Shanghai is 23:00 UTC
        assert not parse_hours("08:00-20:00", SHANGHAI).open_at(instant)
        assert not parse_hours("08:00-20:00", ZoneInfo("UTC")).open_at(instant)
        assert parse_hours("20:00-24:00", ZoneInfo("UTC")).open_at(instant)

    def test_aware_datetimes_too(self) -> None:
        hours = parse_hours("08:00-20:00", SHANGHAI)
        assert hours.open_at(datetime(2026, 12, 2, 2, 0, tzinfo=ZoneInfo("UTC")))  # 10:00 local
        assert not hours.open_at(datetime(2026, 12, 2, 13, 0, tzinfo=ZoneInfo("UTC")))  # 21:00


class TestRefusals:
    @pytest.mark.parametrize(
        ("text", "quoted"),
        [
            ("8-20", "8"),
            ("08:00", "08:00"),
            ("08:00~20:00", "08:00~20:00"),
            ("08:00-25:00", "25:00"),
            ("08:60-09:00", "08:60"),
            ("24:00-08:00", "24:00"),
            ("08:00-08:00", "08:00-08:00"),
            ("08:00-12:00,", "''"),
            ("08:00-12:00-13:00", "08:00-12:00-13:00"),
        ],
    )
    def test_bad_text_says_what_is_wrong(self, text: str, quoted: str) -> None:
        with pytest.raises(HoursError) as e:
            parse_hours(text, SHANGHAI)
        message = str(e.value)
        assert quoted in message and "服务时间" in message
        assert isinstance(e.value, ValueError)

    def test_too_long(self) -> None:
        with pytest.raises(HoursError, match="过长"):
            parse_hours("08:00-09:00," * 40, SHANGHAI)

    def test_too_many_ranges(self) -> None:
        with pytest.raises(HoursError, match="最多"):
            parse_hours(",".join(f"{h:02d}:00-{h:02d}:30" for h in range(9)), SHANGHAI)


times = st.times().map(lambda t: time(t.hour, t.minute))


class TestProperties:
    @settings(max_examples=300, database=None, deadline=None)
    @given(a=times, b=times, moment=st.times())
    def test_a_range_and_its_reverse_split_the_day(self, a: time, b: time, moment: time) -> None:
        """ "A-B" and "B-A" are complements: at any moment exactly one of them is open."""
        if a == b:
            return
        instant = datetime.combine(datetime(2026, 12, 2).date(), moment, SHANGHAI).timestamp()
        ab = parse_hours(f"{a:%H:%M}-{b:%H:%M}", SHANGHAI).open_at(instant)
        ba = parse_hours(f"{b:%H:%M}-{a:%H:%M}", SHANGHAI).open_at(instant)
        assert ab != ba
        local = (moment.hour, moment.minute) >= (a.hour, a.minute)
        before_end = (moment.hour, moment.minute) < (b.hour, b.minute)
        assert ab == ((local and before_end) if a < b else (local or before_end))


class TestWorkingDaysOnly:
    """``workdays 08:30-17:30`` on the working calendar: 2026-10-01..08 is the National Day
    holiday (Thursday 10-01 closed), Saturday 2026-10-10 a make-up working day (调休, open)."""

    calendar = WorkCalendar(
        tz=SHANGHAI,
        periods=parse_work_hours("08:30-12:00,14:30-18:00"),
        exceptions={date(2026, 10, 1): False, date(2026, 10, 10): True},
    )

    def open_on(self, text: str, day: date, clock: time) -> bool:
        hours = parse_hours(text, SHANGHAI, self.calendar.is_workday)
        return hours.open_at(datetime.combine(day, clock, SHANGHAI))

    def test_a_working_day_opens_in_its_range_only(self) -> None:
        tuesday = date(2026, 9, 29)
        assert self.open_on("workdays 08:30-17:30", tuesday, time(9))
        assert not self.open_on("workdays 08:30-17:30", tuesday, time(18))
        assert not self.open_on("workdays 08:30-17:30", date(2026, 10, 3), time(9))  # Saturday

    def test_a_holiday_closes_and_a_make_up_saturday_opens(self) -> None:
        assert not self.open_on("工作日 08:30-17:30", date(2026, 10, 1), time(9))
        assert self.open_on("工作日 08:30-17:30", date(2026, 10, 10), time(9))

    def test_a_night_belongs_to_the_day_it_starts_on(self) -> None:
        night = "workdays 20:00-08:00"
        assert self.open_on(night, date(2026, 9, 30), time(23))  # Wednesday evening
        # the holiday's small hours are Wednesday's night
        assert self.open_on(night, date(2026, 10, 1), time(3))
        assert not self.open_on(night, date(2026, 10, 1), time(23))  # the holiday's own evening
        assert not self.open_on(night, date(2026, 10, 2), time(3))

    def test_workdays_alone_is_all_day_and_without_a_calendar_monday_to_friday(self) -> None:
        assert self.open_on("workdays", date(2026, 9, 29), time(3))
        assert not self.open_on("workdays", date(2026, 10, 1), time(12))
        plain = parse_hours("workdays", SHANGHAI)
        assert plain.open_at(datetime(2026, 10, 1, 12, tzinfo=SHANGHAI))  # a Thursday: no calendar
        assert not plain.open_at(datetime(2026, 10, 3, 12, tzinfo=SHANGHAI))
        assert not plain.always
        assert plain.describe() == "工作日 全天"
        assert parse_hours("workdays 08:30-17:30", SHANGHAI).describe() == "工作日 08:30–17:30"

    def test_a_bad_range_after_workdays_still_says_what_is_wrong(self) -> None:
        with pytest.raises(HoursError, match="25:00"):
            parse_hours("workdays 08:00-25:00", SHANGHAI)
