"""Working-time calendar for case deadlines (处置时限).

Theory of operation
-------------------
A calendar is a time zone, the daily working periods (e.g. 08:30-12:00 and 14:30-18:00) and a table of
exception days (public holidays, which are off, and 调休 weekend days, which are worked). Any day not in
the table is worked Monday to Friday and off on Saturday and Sunday.

All arithmetic happens on local wall-clock time in ``tz``: an aware instant is converted to ``tz``, its
tzinfo dropped, and the result re-attached to ``tz``. Both :meth:`WorkCalendar.add` and
:meth:`WorkCalendar.working_seconds_between` walk day by day, handling each day's periods as whole
intervals (never minute by minute), and work in exact ``timedelta`` units, so
``working_seconds_between(s, add(s, n, "hours")) == n * 3600`` holds exactly. A deadline that uses up
a period exactly lands on that period's end (e.g. 12:00), not on the next period's start.

The module is pure: no I/O and no clock. Callers pass ``now`` in and read CSV text themselves.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = [
    "WorkCalendar",
    "load_exceptions_csv",
    "parse_time_limit",
    "parse_work_hours",
    "time_limit_label",
    "unit_label",
]

Unit = Literal["hours", "days"]
Periods = tuple[tuple[time, time], ...]

MAX_SPEC_CHARS = 200
MAX_PERIODS = 12
MAX_CSV_CHARS = 1_000_000
MAX_TIME_LIMIT_CHARS = 1000
#: Give up after this many consecutive days without a working day.
MAX_IDLE_DAYS = 3650

_PERIOD_RE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_LIMIT_RE = re.compile(
    r"(\d+)\s*(?:working\s+(hours?|days?)\b|个?\s*工作\s*(小时|时|日|天))", re.IGNORECASE
)
#: English catalog wording -> the words of Chinese 立结案标准 (longest phrases first).
_LIMIT_WORDS_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), zh)
    for pattern, zh in (
        (r"(\d+)\s*working\s+hours?\b", r"\1个工作时"),
        (r"(\d+)\s*working\s+days?\b", r"\1个工作日"),
        (r"(\d+)\s*(?:natural\s+|calendar\s+)?hours?\b", r"\1小时"),
        (r"(\d+)\s*(?:natural\s+|calendar\s+)?days?\b", r"\1天"),
        (r"(\d+)\s*minutes?\b", r"\1分钟"),
        (r"\bstop(?:ping)?\s+(?:the\s+)?work\b", "责令停工"),
        (r"\bpenalt(?:y|ies)\b", "处罚"),
        (r"\bdemoli(?:sh|tion)\b", "拆除"),
        (r"\bimmediately\b|\bat\s+once\b", "立即"),
        (r"\burgent\b", "紧急"),
        (r"\bwithin\b\s*", ""),
    )
)
_PUNCT_ZH = str.maketrans({"(": "（", ")": "）", ";": "；", ",": "，", ":": "："})
_LATIN_WORD_RE = re.compile(r"[A-Za-z]{2,}")
_UNIT_ZH: Mapping[str, str] = {"hours": "个工作时", "days": "个工作日"}
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _clock(hh: str, mm: str, text: str) -> time:
    h, m = int(hh), int(mm)
    if h > 23 or m > 59:
        raise ValueError(f"invalid time of day in period {text!r}")
    return time(h, m)


def _check_periods(periods: Periods) -> None:
    if not periods:
        raise ValueError("no working periods")
    if len(periods) > MAX_PERIODS:
        raise ValueError(f"too many working periods (max {MAX_PERIODS})")
    prev_end: time | None = None
    for start, end in periods:
        if end <= start:
            raise ValueError(f"period {start:%H:%M}-{end:%H:%M} ends before it starts")
        if prev_end is not None and start < prev_end:
            raise ValueError(
                f"period {start:%H:%M}-{end:%H:%M} overlaps or precedes the previous one"
                f" (ending {prev_end:%H:%M}); list periods in order without overlap"
            )
        prev_end = end


def parse_work_hours(spec: str) -> Periods:
    """Parse ``"08:30-12:00,14:30-18:00"`` into ordered, non-overlapping ``(start, end)`` periods."""
    if len(spec) > MAX_SPEC_CHARS:
        raise ValueError(f"work hours spec longer than {MAX_SPEC_CHARS} characters")
    if not spec.strip():
        raise ValueError("empty work hours spec; expected e.g. '08:30-12:00,14:30-18:00'")
    periods: list[tuple[time, time]] = []
    for part in spec.split(","):
        m = _PERIOD_RE.fullmatch(part)
        if m is None:
            raise ValueError(f"bad period {part.strip()!r}; expected HH:MM-HH:MM")
        periods.append((_clock(m[1], m[2], part), _clock(m[3], m[4], part)))
    result = tuple(periods)
    _check_periods(result)
    return result


def _span(start: time, end: time) -> timedelta:
    return datetime.combine(date.min, end) - datetime.combine(date.min, start)


def _local(dt: datetime, tz: ZoneInfo, name: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {dt.isoformat()}")
    return dt.astimezone(tz).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """Working days and hours in one time zone; see the module docstring."""

    tz: ZoneInfo
    periods: Periods
    #: date -> is_workday, for holidays (False) and 调休 make-up working days (True).
    exceptions: Mapping[date, bool]

    def __post_init__(self) -> None:
        _check_periods(self.periods)

    def is_workday(self, d: date) -> bool:
        return self.exceptions.get(d, d.weekday() < 5)

    @property
    def day_length(self) -> timedelta:
        return sum((_span(s, e) for s, e in self.periods), timedelta())

    @property
    def hours_per_day(self) -> float:
        return self.day_length / timedelta(hours=1)

    def add(self, start: datetime, amount: int, unit: Unit) -> datetime:
        """Return the instant ``amount`` working hours or days after ``start``, aware in ``self.tz``.

        Only time inside working periods of working days counts; a ``start`` outside working time
        starts counting at the next period start. Convention for ``"days"``: N working days are
        N * ``hours_per_day`` working hours, so a case dispatched at 16:00 with 1 day is due at about
        16:00 on the next working day, and one dispatched after hours is due at the end of the next
        working day. Raises ValueError on a naive ``start``, ``amount`` <= 0, an unknown unit, or
        when no working day is found within ``MAX_IDLE_DAYS``.
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"amount must be a positive integer, got {amount!r}")
        if unit == "hours":
            remaining = timedelta(hours=amount)
        elif unit == "days":
            remaining = self.day_length * amount
        else:
            raise ValueError(f"unit must be 'hours' or 'days', got {unit!r}")
        cursor = _local(start, self.tz, "start")
        day, tod = cursor.date(), cursor.time()
        first_start, day_length = self.periods[0][0], self.day_length
        idle = 0
        while True:
            if self.is_workday(day):
                idle = 0
                if tod <= first_start and remaining > day_length:
                    remaining -= day_length  # skip a whole working day
                else:
                    for p_start, p_end in self.periods:
                        if tod >= p_end:
                            continue
                        begin = max(tod, p_start)
                        avail = _span(begin, p_end)
                        if remaining <= avail:
                            return (datetime.combine(day, begin) + remaining).replace(
                                tzinfo=self.tz
                            )
                        remaining -= avail
            else:
                idle += 1
                if idle > MAX_IDLE_DAYS:
                    raise ValueError(f"no working day within {MAX_IDLE_DAYS} days of {day}")
            day, tod = day + timedelta(days=1), time.min

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Working seconds elapsed from instant ``a`` to instant ``b`` (0.0 if ``b <= a``)."""
        la, lb = _local(a, self.tz, "a"), _local(b, self.tz, "b")
        if lb <= la:
            return 0.0
        total, day_length = timedelta(), self.day_length
        day = la.date()
        while day <= lb.date():
            if self.is_workday(day):
                lo, hi = datetime.combine(day, time.min), datetime.combine(day, time.max)
                if la <= lo and hi < lb:
                    total += day_length  # whole working day inside the range
                else:
                    for p_start, p_end in self.periods:
                        begin = max(la, datetime.combine(day, p_start))
                        end = min(lb, datetime.combine(day, p_end))
                        if end > begin:
                            total += end - begin
            day += timedelta(days=1)
        return total.total_seconds()


def load_exceptions_csv(text: str) -> dict[date, bool]:
    """Parse ``day,is_workday,note`` CSV text (e.g. ``2026-10-01,false,国庆节``) into date -> is_workday."""
    if len(text) > MAX_CSV_CHARS:
        raise ValueError(f"calendar CSV longer than {MAX_CSV_CHARS} characters")
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["day", "is_workday", "note"]:
        raise ValueError(f"line 1: expected header 'day,is_workday,note', got {header!r}")
    result: dict[date, bool] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) not in (2, 3):
            raise ValueError(f"line {line}: expected 3 columns, got {len(row)}: {row!r}")
        try:
            day = date.fromisoformat(row[0].strip())
        except ValueError:
            raise ValueError(f"line {line}: bad date {row[0]!r}; expected YYYY-MM-DD") from None
        flag = _BOOL.get(row[1].strip().lower())
        if flag is None:
            raise ValueError(f"line {line}: bad is_workday {row[1]!r}; expected true or false")
        if day in result:
            raise ValueError(f"line {line}: duplicate day {day}")
        result[day] = flag
    return result


def parse_time_limit(text: str) -> tuple[int, Unit] | None:
    """Return the first time limit in catalog text, e.g. ``"4 working hours; 7 working days"`` -> (4, "hours").

    Also understands ``4个工作小时`` / ``7个工作日``. Returns None when no positive limit is found.
    """
    m = _LIMIT_RE.search(text[:MAX_TIME_LIMIT_CHARS])
    if m is None:
        return None
    n = int(m[1])
    if n <= 0:
        return None
    word = (m[2] or m[3]).lower()
    return (n, "hours" if word.startswith("hour") or "时" in word else "days")


def unit_label(value: int, unit: str) -> str:
    """``(4, "hours")`` -> ``"4个工作时"``, ``(5, "days")`` -> ``"5个工作日"`` (the 立结案标准 wording)."""
    word = _UNIT_ZH.get(unit)
    if word is None:
        raise ValueError(f"unit must be 'hours' or 'days', got {unit!r}")
    return f"{value}{word}"


def time_limit_label(text: str) -> str:
    """The catalog's time-limit text as a Chinese page shows it.

    ``"4 working hours (stop work); 7 working days (penalty)"`` -> ``"4个工作时（责令停工）；7个工作日（处罚）"``;
    text already in Chinese is kept (half-width punctuation made full-width). Wording this function
    does not know is never shown half-translated: the label falls back to the first limit alone
    (``"4个工作时"``), or to ``""`` when the text holds no limit. ``parse_time_limit`` reads the
    label back to the same limit as the text.
    """
    text = text[:MAX_TIME_LIMIT_CHARS].strip()
    if not text:
        return ""
    zh = text
    for pattern, repl in _LIMIT_WORDS_ZH:
        zh = pattern.sub(repl, zh)
    zh = re.sub(r"\s*([(),;:])\s*", r"\1", zh).translate(_PUNCT_ZH)
    zh = re.sub(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+|\s+(?=[\u3000-\u9fff\uff00-\uffef])", "", zh)
    if not _LATIN_WORD_RE.search(zh):
        return zh
    limit = parse_time_limit(text)
    return "" if limit is None else unit_label(*limit)
