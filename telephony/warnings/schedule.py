"""When a scheduled warning fires: a recurrence in the city's time zone, as plain arithmetic.

Theory of operation: a schedule plays a clip "every N minutes from HH:MM until HH:MM on these
weekdays" (every 15 minutes from 08:00 to 20:00 at a market gate, Monday to Friday). Its *slots* are
the local times ``from + k·N`` (k = 0, 1, …) not later than ``until``, on the chosen ISO weekdays
(1 = Monday … 7 = Sunday), turned into instants in the schedule's zone.

``due(last_fire, now)`` says which slot, if any, should fire now: the latest slot at or before
``now`` that is later than ``last_fire`` and not older than ``grace``. A hub that was down for an
hour therefore plays the current slot once, not the hour's backlog. Exactly-once across processes is
not this module's business: the scheduler claims a slot in PostgreSQL (``claim_schedule_fire``), and
only the process whose claim succeeds plays it.

No I/O and no clock: instants come in as aware datetimes.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
#: How late a slot may still be played (a restart, a slow tick) before it is skipped.
DEFAULT_GRACE = timedelta(minutes=2)
_SEARCH_DAYS = 8


class ScheduleError(ValueError):
    """A recurrence that cannot be: the message is zh-CN, for the operator."""


@dataclasses.dataclass(frozen=True, slots=True)
class Recurrence:
    every_minutes: int
    start: time
    until: time
    weekdays: frozenset[int]
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if not 1 <= self.every_minutes <= 1440:
            raise ScheduleError("间隔须在 1 到 1440 分钟之间")
        if self.until < self.start:
            raise ScheduleError("结束时间不能早于开始时间")
        if not self.weekdays:
            raise ScheduleError("至少选择一天")
        if not self.weekdays <= frozenset(range(1, 8)):
            raise ScheduleError("星期须为 1（周一）到 7（周日）")
        if self.start.tzinfo is not None or self.until.tzinfo is not None:
            raise ScheduleError("开始和结束时间是本地时间，不带时区")

    def slots_on(self, day: date) -> list[datetime]:
        """Every slot of one local day, as aware instants, in order (none on other weekdays)."""
        if day.isoweekday() not in self.weekdays:
            return []
        first = datetime.combine(day, self.start, self.tz)
        last = datetime.combine(day, self.until, self.tz)
        step = timedelta(minutes=self.every_minutes)
        count = int((last - first) / step) + 1
        return [first + k * step for k in range(count)]

    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after ``after`` (None only if there is none within a week,
        which a valid recurrence never gives)."""
        day = after.astimezone(self.tz).date()
        for offset in range(_SEARCH_DAYS):
            for slot in self.slots_on(day + timedelta(days=offset)):
                if slot > after:
                    return slot
        return None

    def latest_at(self, now: datetime) -> datetime | None:
        """The last slot at or before ``now`` within the past week."""
        day = now.astimezone(self.tz).date()
        for offset in range(_SEARCH_DAYS):
            slots = [s for s in self.slots_on(day - timedelta(days=offset)) if s <= now]
            if slots:
                return slots[-1]
        return None

    def due(
        self, last_fire: datetime | None, now: datetime, grace: timedelta = DEFAULT_GRACE
    ) -> datetime | None:
        """The slot to fire now, or None: the latest slot at or before ``now`` that is after
        ``last_fire`` and no older than ``grace``."""
        slot = self.latest_at(now)
        if slot is None or now - slot > grace:
            return None
        if last_fire is not None and slot <= last_fire:
            return None
        return slot

    def describe(self) -> str:
        """The recurrence in words, for the console: "周一至周五 08:00–20:00 每 15 分钟"."""
        days = sorted(self.weekdays)
        if days == list(range(1, 8)):
            which = "每天"
        elif len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
            which = f"{WEEKDAY_NAMES[days[0] - 1]}至{WEEKDAY_NAMES[days[-1] - 1]}"
        else:
            which = "、".join(WEEKDAY_NAMES[d - 1] for d in days)
        return f"{which} {self.start:%H:%M}–{self.until:%H:%M} 每 {self.every_minutes} 分钟"


def parse_time(text: str) -> time:
    """ "HH:MM" → a local time; ScheduleError (zh-CN) otherwise."""
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ScheduleError(f"时间格式应为 HH:MM：{text!r}") from None
