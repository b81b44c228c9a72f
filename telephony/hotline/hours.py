"""The hotline's service hours (``CITYHUB_HOTLINE_HOURS``) on the city's time zone, as plain arithmetic.

Theory of operation: the setting is empty (open 24 hours a day, as most 12319 lines run) or a
comma-separated list of local ranges ``HH:MM-HH:MM``: ``08:00-20:00``; ``08:00-12:00,13:00-20:00``
(closed at lunch); ``20:00-08:00`` (a night line: a range whose end is not after its start runs over
midnight). A range includes its start and excludes its end; ``24:00`` may end a range
(``00:00-24:00`` is the whole day). A leading ``workdays`` (or ``工作日``) keeps the line open on
working days only: ``workdays 08:30-17:30``; ``workdays`` alone is all day on working days. Which
days work is the caller's ``is_workday`` (the hub passes the case deadlines' working calendar, so
public holidays and make-up working days 调休 apply); without one, Monday to Friday. A range over
midnight belongs to the day it starts on. ``parse_hours(text, tz, is_workday)`` gives
``ServiceHours``, whose ``open_at(instant)`` the ACD calls with ``now`` (float epoch seconds, or an
aware datetime): the instant's local time of day in ``tz`` falls in one of the ranges (on a working
day, if so restricted).

Bad text raises ``HoursError`` (a ``ValueError``) whose zh-CN message quotes the part that is wrong.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MAX_TEXT = 256
MAX_RANGES = 8
DAY = 24 * 3600
_TIME = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")
_WORKDAYS = ("workdays", "工作日")


def _monday_to_friday(d: date) -> bool:
    return d.weekday() < 5


class HoursError(ValueError):
    """A service-hours setting that does not parse; the message is zh-CN, for the operator."""


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceHours:
    #: (start, end) in seconds of the local day; end ≤ start means the range runs over midnight.
    #: Empty: open all day.
    ranges: tuple[tuple[int, int], ...]
    tz: ZoneInfo
    #: None: every day; otherwise the line is open only on the days this says are working days.
    is_workday: Callable[[date], bool] | None = None

    @property
    def always(self) -> bool:
        return not self.ranges and self.is_workday is None

    def open_at(self, instant: float | datetime) -> bool:
        if self.always:
            return True
        local = (
            instant.astimezone(self.tz)
            if isinstance(instant, datetime)
            else datetime.fromtimestamp(instant, self.tz)
        )
        today = local.date()
        works = self.is_workday or (lambda d: True)
        if not self.ranges:
            return works(today)
        t = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        for start, end in self.ranges:
            if start < end:
                if start <= t < end and works(today):
                    return True
            elif (t >= start and works(today)) or (
                t < end and works(today - timedelta(days=1))  # the night began yesterday
            ):
                return True
        return False

    def describe(self) -> str:
        """For the console: "全天 24 小时", "08:00–12:00、13:00–20:00" or "工作日 08:30–17:30"."""
        if self.is_workday is not None:
            whole = ServiceHours(self.ranges, self.tz).describe()
            return "工作日 " + ("全天" if not self.ranges else whole)
        if not self.ranges:
            return "全天 24 小时"

        def hhmm(seconds: int) -> str:
            return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"

        parts = []
        for start, end in self.ranges:
            night = "（次日）" if end <= start else ""
            parts.append(f"{hhmm(start)}–{night}{hhmm(end)}")
        return "、".join(parts)


def _parse_time(text: str, *, end: bool) -> int:
    m = _TIME.match(text)
    if m is None:
        raise HoursError(f"服务时间格式应为 HH:MM-HH:MM：{text!r} 不是 HH:MM")
    hours, minutes = int(m[1]), int(m[2])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise HoursError(f"服务时间中没有这个时刻：{text!r}（00:00 至 23:59，结束时间可为 24:00）")
    return hours * 3600 + minutes * 60


def parse_hours(
    text: str, tz: ZoneInfo, is_workday: Callable[[date], bool] | None = None
) -> ServiceHours:
    """``CITYHUB_HOTLINE_HOURS`` → ``ServiceHours`` ("" = 24 hours); ``HoursError`` for bad text.
    ``is_workday`` decides the working days of a ``workdays`` setting (default Monday to Friday)."""
    if len(text) > MAX_TEXT:
        raise HoursError(f"服务时间设置过长（最多 {MAX_TEXT} 个字符）")
    text = text.strip()
    workdays: Callable[[date], bool] | None = None
    for word in _WORKDAYS:
        if text == word or text.startswith(word + " "):
            workdays = is_workday or _monday_to_friday
            text = text[len(word) :].strip()
            break
    if not text:
        return ServiceHours((), tz, workdays)
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        pieces = part.split("-")
        if len(pieces) != 2:
            raise HoursError(f"服务时间段应为 HH:MM-HH:MM：{part!r}")
        start = _parse_time(pieces[0].strip(), end=False)
        end = _parse_time(pieces[1].strip(), end=True)
        if start == end:
            raise HoursError(f"服务时间段的开始和结束相同：{part!r}（全天服务请留空）")
        ranges.append((start, end))
        if len(ranges) > MAX_RANGES:
            raise HoursError(f"服务时间段最多 {MAX_RANGES} 个")
    if any(start == 0 and end == DAY for start, end in ranges):
        return ServiceHours((), tz, workdays)
    return ServiceHours(tuple(ranges), tz, workdays)
