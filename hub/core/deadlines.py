"""Time limits (处置时限): the countdown, its warning levels and the moments alarms fire (pure).

Theory of operation
-------------------
A department's clock is the case's ``deadline`` on the working-time calendar (``hub/core/workcal.py``)
together with ``time_limit_s``, the working seconds it was given (the category's limit at the last
restart, the urgent limit for a 紧急 case, plus the working time an approved extension added). The
*share* used is ``(limit - remaining) / limit``; ``Policy.warnings`` lists the shares at which an
alarm fires (default 0.75 = 黄灯 warning, 1.0 = 红灯 overdue). The moment a share is reached is found by
walking working time back from the deadline (``shift``), so it is exact to the second and skips nights,
weekends and holidays and counts 调休 make-up days like the deadline itself.

Pausing (``Policy.pause_defer``, ``Policy.pause_extension``): when a deferral (缓办) starts, or a
department asks for an extension, the working seconds left are kept in ``paused_remaining_s`` and no
alarm is armed. Resuming a deferral restores them (``resume_deadline``: the deadline is ``now`` plus
what was left, and that is the ``data.deadline`` of the resume event that the evaluation reads); an
approved extension moves the deadline to the approved time and grows the limit by the working time it
adds; a denied one restores what was left. Without pausing, a resumption restarts the full limit (the
workflow's rule) and an extension request changes nothing until it is decided.

Alarms are keyed by (case, share, deadline); ``clock_since`` (when the running deadline was set) keeps
a moved deadline from repeating the alarms the previous one already raised: a share whose moment falls
before ``clock_since`` is not armed.

Nothing here reads a clock or the database: ``now`` and the calendar are passed in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from hub.core.workcal import WorkCalendar
from hub.core.workflow import DEADLINE_RESTART, DEADLINE_STATES, Action, CaseState

__all__ = [
    "ALARM_ACTIONS",
    "Clock",
    "Countdown",
    "Level",
    "Policy",
    "Threshold",
    "clock_changes",
    "countdown",
    "due",
    "next_moment",
    "parse_policy",
    "remaining_s",
    "resume_deadline",
    "shift",
    "thresholds",
]

#: The system actions an alarm appends to the case's log (they keep the state).
WARNING_ACTION = "deadline_warning"  # 黄灯预警
OVERDUE_ACTION = "overdue"  # 红灯超期
ALARM_ACTIONS: frozenset[str] = frozenset({WARNING_ACTION, OVERDUE_ACTION})
ALARM_LABELS: Mapping[str, str] = {WARNING_ACTION: "黄灯预警", OVERDUE_ACTION: "红灯超期"}
#: Share precision: shares are kept to 4 decimals (the database's numeric(6, 4)).
SHARE_DIGITS = 4
MAX_SHARES = 8


class Level(StrEnum):
    NORMAL = "normal"  # 正常
    WARNING = "warning"  # 黄灯
    OVERDUE = "overdue"  # 红灯


LEVEL_LABELS: Mapping[Level, str] = {
    Level.NORMAL: "正常",
    Level.WARNING: "黄灯",
    Level.OVERDUE: "红灯",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    #: Alarm shares of the limit, ascending; 1.0 (overdue) is always among them.
    warnings: tuple[float, ...] = (0.75, 1.0)
    #: Off by default: the workflow's rule (a resumption restarts the full limit, an extension
    #: request changes nothing until decided) holds unless the city chooses to pause.
    pause_defer: bool = False
    pause_extension: bool = False
    #: The share at which the system escalates (督办) the case once; None: never.
    escalate_at: float | None = 1.0

    @property
    def shares(self) -> tuple[float, ...]:
        """Every share at which something fires (the warnings and the escalation)."""
        extra = () if self.escalate_at is None else (self.escalate_at,)
        return tuple(sorted({*self.warnings, *extra}))


def _share(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not 0 < value <= 10:
        raise ValueError(f"a share of the time limit must be in (0, 10], got {text!r}")
    return round(value, SHARE_DIGITS)


def parse_policy(warnings: str, pause: str, escalate: str) -> Policy:
    """``"0.75,1.0"``, ``"defer,extension"`` (or ``"none"``), ``"overdue"`` (or a share, or
    ``"none"``) -> a ``Policy``; raises ValueError with the reason."""
    try:
        shares = sorted({_share(p) for p in warnings.split(",") if p.strip()} | {1.0})
    except ValueError as exc:
        raise ValueError(f"CITYHUB_DEADLINE_WARNINGS: {exc}") from None
    if len(shares) > MAX_SHARES:
        raise ValueError(f"CITYHUB_DEADLINE_WARNINGS: at most {MAX_SHARES} shares")
    words = {p.strip().lower() for p in pause.split(",") if p.strip()}
    if not words <= {"defer", "extension", "none"} or ("none" in words and len(words) > 1):
        raise ValueError(f"CITYHUB_DEADLINE_PAUSE: 'defer', 'extension', both or 'none': {pause!r}")
    esc = escalate.strip().lower()
    if esc in ("", "none"):
        at: float | None = None
    elif esc == "overdue":
        at = 1.0
    else:
        try:
            at = _share(esc)
        except ValueError as exc:
            raise ValueError(f"CITYHUB_DEADLINE_ESCALATE: {exc}") from None
    return Policy(tuple(shares), "defer" in words, "extension" in words, at)


# -- working-time arithmetic -------------------------------------------------------------------


def shift(cal: WorkCalendar, start: datetime, seconds: float) -> datetime:
    """The instant ``seconds`` working seconds after ``start`` (before it, if negative), aware in
    the calendar's zone. Forward, a run that uses up a period lands on its end (as
    ``WorkCalendar.add``); backward, on the earliest instant with that much working time left."""
    if seconds == 0:
        return start.astimezone(cal.tz)
    local = start.astimezone(cal.tz).replace(tzinfo=None)
    left = timedelta(seconds=abs(seconds))
    day, idle = local.date(), 0
    forward = seconds > 0
    while True:
        if cal.is_workday(day):
            idle = 0
            periods = cal.periods if forward else tuple(reversed(cal.periods))
            for p_start, p_end in periods:
                lo, hi = datetime.combine(day, p_start), datetime.combine(day, p_end)
                if forward:
                    begin = max(lo, local)
                    if begin >= hi:
                        continue
                    if left <= hi - begin:
                        return (begin + left).replace(tzinfo=cal.tz)
                    left -= hi - begin
                else:
                    end = min(hi, local)
                    if end <= lo:
                        continue
                    if left < end - lo:
                        return (end - left).replace(tzinfo=cal.tz)
                    left -= end - lo
                    if left == timedelta():
                        # Exactly used up at a period start: the share was reached at the end of
                        # the working time before it.
                        return _previous_end(cal, lo)
        else:
            idle += 1
            if idle > 3650:
                raise ValueError("no working day within 3650 days")
        day += timedelta(days=1) if forward else -timedelta(days=1)
        local = datetime.combine(day, time.min if forward else time.max)


def _previous_end(cal: WorkCalendar, at: datetime) -> datetime:
    """The end of the last working period ending at or before local ``at``."""
    day = at.date()
    for _ in range(3650):
        if cal.is_workday(day):
            for _p_start, p_end in reversed(cal.periods):
                end = datetime.combine(day, p_end)
                if end <= at:
                    return end.replace(tzinfo=cal.tz)
        day -= timedelta(days=1)
    raise ValueError("no working day within 3650 days")


def remaining_s(cal: WorkCalendar, deadline: datetime, now: datetime) -> float:
    """Working seconds from ``now`` to ``deadline``; negative (the working time overdue) after it."""
    if now <= deadline:
        return cal.working_seconds_between(now, deadline)
    return -cal.working_seconds_between(deadline, now)


# -- a case's clock ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Clock:
    """A case's deadline facts (each named after the ``cases`` column it is read from)."""

    state: CaseState
    deadline: datetime | None
    #: The working seconds given; the caller supplies the category's limit for older rows.
    time_limit_s: int
    paused_remaining_s: int | None = None
    clock_since: datetime | None = None
    pending_extension_until: datetime | None = None

    @property
    def paused(self) -> bool:
        return self.paused_remaining_s is not None and self.state in (
            CaseState.DEFERRED,
            CaseState.HANDLING,
            CaseState.DISPATCHED,
        )

    @property
    def running(self) -> bool:
        return self.state in DEADLINE_STATES and self.deadline is not None and not self.paused


@dataclasses.dataclass(frozen=True, slots=True)
class Countdown:
    level: Level
    #: Working seconds left (negative: overdue by that much working time).
    remaining_s: int
    limit_s: int
    #: Share of the limit used, e.g. 0.8.
    share: float
    paused: bool
    #: The next moment an alarm fires (None while paused or when every share has passed).
    next_at: datetime | None

    def json(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "level_label": "已暂停" if self.paused else LEVEL_LABELS[self.level],
            "remaining_s": self.remaining_s,
            "limit_s": self.limit_s,
            "share": round(self.share, SHARE_DIGITS),
            "paused": self.paused,
            "next_at": None if self.next_at is None else self.next_at.isoformat(),
        }


def is_overdue(
    state: str, deadline: datetime | None, paused_remaining_s: int | None, now: datetime
) -> bool:
    """Past its deadline while the department's clock runs (not paused: a paused countdown keeps
    the time it had left, whatever the stored deadline says)."""
    return (
        state in DEADLINE_STATES
        and deadline is not None
        and paused_remaining_s is None
        and deadline < now
    )


def _level(share: float, policy: Policy) -> Level:
    if share >= 1.0:
        return Level.OVERDUE
    if any(s <= share for s in policy.warnings if s < 1.0):
        return Level.WARNING
    return Level.NORMAL


def countdown(clock: Clock, cal: WorkCalendar, policy: Policy, now: datetime) -> Countdown | None:
    """The countdown at ``now``, or None when no department clock runs or is paused."""
    limit = max(clock.time_limit_s, 1)
    if clock.paused:
        left = float(clock.paused_remaining_s or 0)
        nxt = None
    elif clock.running and clock.deadline is not None:
        left = remaining_s(cal, clock.deadline, now)
        nxt = next_moment(clock, cal, policy, now)
    else:
        return None
    share = (limit - left) / limit
    return Countdown(_level(share, policy), math.floor(left), limit, share, clock.paused, nxt)


@dataclasses.dataclass(frozen=True, slots=True)
class Threshold:
    share: float
    #: "warning" below 1, "overdue" from 1.
    kind: str
    due_at: datetime
    deadline: datetime
    #: Whether reaching it escalates the case (督办).
    escalate: bool = False

    @property
    def action(self) -> str:
        return OVERDUE_ACTION if self.kind == "overdue" else WARNING_ACTION


def thresholds(clock: Clock, cal: WorkCalendar, policy: Policy) -> list[Threshold]:
    """The armed alarms of a running clock, in time order (none while paused or stopped)."""
    if not clock.running or clock.deadline is None:
        return []
    limit = max(clock.time_limit_s, 1)
    out: list[Threshold] = []
    for s in policy.shares:
        at = shift(cal, clock.deadline, (s - 1.0) * limit) if s != 1.0 else clock.deadline
        if clock.clock_since is not None and at < clock.clock_since:
            continue
        out.append(
            Threshold(
                s,
                "overdue" if s >= 1.0 else "warning",
                at,
                clock.deadline,
                escalate=policy.escalate_at == s,
            )
        )
    return out


def due(clock: Clock, cal: WorkCalendar, policy: Policy, now: datetime) -> list[Threshold]:
    """The armed alarms whose moment has come (fired or not: the database knows which fired)."""
    return [t for t in thresholds(clock, cal, policy) if t.due_at <= now]


def next_moment(clock: Clock, cal: WorkCalendar, policy: Policy, now: datetime) -> datetime | None:
    """The next moment an alarm of this clock fires after ``now``."""
    later = [t.due_at for t in thresholds(clock, cal, policy) if t.due_at > now]
    return min(later) if later else None


# -- the clock across workflow moves -------------------------------------------------------------


def _left_now(clock: Clock, cal: WorkCalendar, now: datetime) -> float | None:
    if clock.paused:
        return float(clock.paused_remaining_s or 0)
    if clock.deadline is not None:
        return remaining_s(cal, clock.deadline, now)
    return None


def resume_deadline(
    clock: Clock, cal: WorkCalendar, policy: Policy, now: datetime
) -> datetime | None:
    """The deadline a resumption restores (now plus the working time left at the deferral), or
    None when the full limit restarts (no pausing, nothing kept, or nothing was left)."""
    if not policy.pause_defer or clock.paused_remaining_s is None or clock.paused_remaining_s <= 0:
        return None
    return shift(cal, now, clock.paused_remaining_s)


def clock_changes(
    action: Action,
    before: Clock,
    cal: WorkCalendar,
    policy: Policy,
    now: datetime,
    *,
    new_deadline: datetime | None,
    restart_limit_s: int,
) -> dict[str, Any]:
    """The countdown columns an action changes (to merge into the workflow's ``changes``).
    ``new_deadline`` is the deadline the workflow sets (None when it sets none);
    ``restart_limit_s`` the category's (or urgent) limit a restart gives. A denied extension that
    restores a paused countdown also sets ``deadline``."""
    a = action
    if a is Action.RESUME:
        restored = resume_deadline(before, cal, policy, now)
        limit = before.time_limit_s if restored is not None else restart_limit_s
        return {"time_limit_s": limit, "paused_remaining_s": None, "clock_since": now}
    if a in DEADLINE_RESTART:
        return {"time_limit_s": restart_limit_s, "paused_remaining_s": None, "clock_since": now}
    if a is Action.DEFER:
        left = _left_now(before, cal, now) if policy.pause_defer else None
        return {"paused_remaining_s": None if left is None else math.floor(left)}
    if a is Action.REQUEST_EXTENSION:
        if not policy.pause_extension:
            return {}
        left = _left_now(before, cal, now)
        return {"paused_remaining_s": None if left is None else math.floor(left)}
    if a is Action.APPROVE_EXTENSION and new_deadline is not None:
        left = _left_now(before, cal, now) or 0.0
        used = before.time_limit_s - left
        limit = max(1, math.ceil(used + remaining_s(cal, new_deadline, now)))
        return {"time_limit_s": limit, "paused_remaining_s": None, "clock_since": now}
    if a is Action.DENY_EXTENSION:
        if before.paused_remaining_s is None:
            return {}
        deadline = shift(cal, now, before.paused_remaining_s)
        return {"deadline": deadline, "paused_remaining_s": None, "clock_since": now}
    if a is Action.RETURN:
        return {"time_limit_s": None, "paused_remaining_s": None, "clock_since": None}
    if a in (Action.FEEDBACK, Action.QUICK_COMPLETE, Action.VOID):
        return {"paused_remaining_s": None}
    return {}
