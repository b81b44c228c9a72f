"""The countdown, its levels and the alarm moments (hub/core/deadlines.py), hand-computed on a
working calendar with a weekend, the National Day holidays and a 调休 make-up Saturday."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.core import deadlines as dl
from hub.core.workcal import WorkCalendar, parse_work_hours
from hub.core.workflow import Action, CaseState

TZ = ZoneInfo("Asia/Shanghai")
# 2026: Oct 1-7 off (a Thursday to a Wednesday), Saturday Oct 10 worked (调休).
HOLIDAYS = {date(2026, 10, d): False for d in range(1, 8)}
CAL = WorkCalendar(
    tz=TZ,
    periods=parse_work_hours("08:30-12:00,14:30-18:00"),  # 7 working hours a day
    exceptions={**HOLIDAYS, date(2026, 10, 10): True},
)
POLICY = dl.parse_policy("0.75,1.0", "defer,extension", "overdue")
H = 3600


def at(day: int, hh: int, mm: int = 0, month: int = 9) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=TZ)


def running(deadline: datetime, limit_s: int, since: datetime) -> dl.Clock:
    return dl.Clock(CaseState.HANDLING, deadline, limit_s, None, since)


# -- working-time arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [at(14, 9), at(18, 16), at(19, 11), at(14, 12, 30), at(30, 17, 59), at(14, 18), at(25, 3)],
    ids=["mon-morning", "fri-afternoon", "saturday", "lunch", "before-holidays", "end", "night"],
)
@pytest.mark.parametrize("hours", [1, 3, 7, 8, 24])
def test_shift_forward_is_the_calendars_deadline(start: datetime, hours: int) -> None:
    assert dl.shift(CAL, start, hours * H) == CAL.add(start, hours, "hours")


def test_shift_back_lands_on_the_earliest_instant_with_that_much_left() -> None:
    deadline = at(21, 17)  # Monday 17:00
    assert dl.shift(CAL, deadline, -2 * H) == at(21, 15)
    # Exactly the afternoon's 2.5 h: the share was reached when the morning ended, not at 14:30.
    assert dl.shift(CAL, deadline, -2.5 * H) == at(21, 12)
    # Over the weekend: 3 h back from Monday 09:30 is Friday 16:00.
    assert dl.shift(CAL, at(21, 9, 30), -3 * H) == at(18, 16)
    for back in (600, 3 * H, 9 * H, 20 * H):
        assert CAL.working_seconds_between(dl.shift(CAL, deadline, -back), deadline) == back


def test_remaining_is_negative_past_the_deadline() -> None:
    assert dl.remaining_s(CAL, at(21, 17), at(21, 15)) == 2 * H
    # Overdue from Friday 17:00 to Monday 09:00: 1 h on Friday, 0.5 h on Monday.
    assert dl.remaining_s(CAL, at(18, 17), at(21, 9)) == -1.5 * H


# -- levels and moments --------------------------------------------------------------------------


def test_a_clock_across_a_weekend_warns_and_goes_overdue_at_the_right_seconds() -> None:
    # Dispatched Friday 16:00 with 8 working hours: 2 h Friday, 3.5 + 2.5 h Monday -> 17:00.
    start = at(18, 16)
    deadline = CAL.add(start, 8, "hours")
    assert deadline == at(21, 17)
    clock = running(deadline, 8 * H, start)
    warn, over = dl.thresholds(clock, CAL, POLICY)
    # 75 % used = 2 h left before Monday 17:00 = Monday 15:00.
    assert (warn.kind, warn.share, warn.due_at) == ("warning", 0.75, at(21, 15))
    assert (over.kind, over.share, over.due_at, over.escalate) == ("overdue", 1.0, deadline, True)
    second = timedelta(seconds=1)
    saturday = dl.countdown(clock, CAL, POLICY, at(19, 10))
    assert saturday is not None
    assert (saturday.level, saturday.remaining_s, saturday.next_at) == (
        dl.Level.NORMAL,
        6 * H,
        at(21, 15),
    )
    before = dl.countdown(clock, CAL, POLICY, at(21, 15) - second)
    assert before is not None and before.level is dl.Level.NORMAL
    yellow = dl.countdown(clock, CAL, POLICY, at(21, 15))
    assert yellow is not None and yellow.level is dl.Level.WARNING
    assert yellow.remaining_s == 2 * H and yellow.next_at == deadline
    assert dl.due(clock, CAL, POLICY, at(21, 15)) == [warn]
    red = dl.countdown(clock, CAL, POLICY, deadline)
    assert red is not None and red.level is dl.Level.OVERDUE and red.next_at is None
    assert dl.due(clock, CAL, POLICY, deadline + second) == [warn, over]


def test_holidays_and_a_make_up_saturday() -> None:
    # Wednesday Sep 30 16:00 with 3 working days (21 h): 2 h that day, Oct 1-7 off, 7 h on Oct 8
    # and Oct 9, then the 调休 Saturday Oct 10: 3.5 h in the morning and 1.5 h -> 16:00.
    start = at(30, 16)
    deadline = CAL.add(start, 3, "days")
    assert deadline == at(10, 16, month=10)
    clock = running(deadline, 21 * H, start)
    holiday = dl.countdown(clock, CAL, POLICY, at(5, 10, month=10))
    assert holiday is not None and holiday.remaining_s == 19 * H
    assert holiday.level is dl.Level.NORMAL
    # 75 % = 5.25 h left: 1.5 h + 3.5 h on the Saturday, the last quarter hour on Friday 17:45.
    warn = dl.thresholds(clock, CAL, POLICY)[0]
    assert warn.due_at == at(9, 17, 45, month=10)


def test_clock_since_disarms_alarms_passed_under_a_previous_deadline() -> None:
    clock = running(at(21, 17), 8 * H, since=at(21, 15, 30))
    assert [t.kind for t in dl.thresholds(clock, CAL, POLICY)] == ["overdue"]


def test_no_alarm_while_stopped_or_paused() -> None:
    deferred = dl.Clock(CaseState.DEFERRED, None, 8 * H, 3 * H, at(21, 9))
    assert dl.thresholds(deferred, CAL, POLICY) == []
    c = dl.countdown(deferred, CAL, POLICY, at(28, 9))
    assert c is not None and c.paused and c.remaining_s == 3 * H and c.next_at is None
    closed = dl.Clock(CaseState.CLOSED, at(21, 17), 8 * H, None, at(21, 9))
    assert dl.countdown(closed, CAL, POLICY, at(22, 9)) is None


# -- pausing across workflow moves ----------------------------------------------------------------


def changes(action: Action, before: dl.Clock, now: datetime, **kw: object) -> dict[str, object]:
    args: dict[str, object] = {"new_deadline": None, "restart_limit_s": 8 * H, **kw}
    return dl.clock_changes(action, before, CAL, POLICY, now, **args)  # type: ignore[arg-type]


def test_a_deferral_keeps_the_time_left_and_the_resumption_restores_it() -> None:
    # Dispatched Monday 09:00 with 8 h -> Tuesday 10:00. Deferred Monday 15:00: 3.5 h used.
    start = at(21, 9)
    deadline = CAL.add(start, 8, "hours")
    clock = running(deadline, 8 * H, start)
    ch = changes(Action.DEFER, clock, at(21, 15))
    assert ch == {"paused_remaining_s": int(4.5 * H)}
    deferred = dl.Clock(CaseState.DEFERRED, None, 8 * H, int(4.5 * H), start)
    # Resumed Wednesday 10:00: 4.5 h from then is Wednesday 17:00, the resume event's deadline.
    restored = dl.resume_deadline(deferred, CAL, POLICY, at(23, 10))
    assert restored == at(23, 17)
    ch = changes(Action.RESUME, deferred, at(23, 10))
    assert ch == {"time_limit_s": 8 * H, "paused_remaining_s": None, "clock_since": at(23, 10)}
    resumed = running(at(23, 17), 8 * H, at(23, 10))
    warn = dl.thresholds(resumed, CAL, POLICY)[0]
    assert warn.due_at == at(23, 15)  # 2 h left before 17:00


def test_without_pausing_a_resumption_restarts_the_full_limit() -> None:
    policy = dl.parse_policy("0.75", "none", "none")
    clock = running(at(22, 10), 8 * H, at(21, 9))
    assert dl.clock_changes(
        Action.DEFER, clock, CAL, policy, at(21, 15), new_deadline=None, restart_limit_s=8 * H
    ) == {"paused_remaining_s": None}
    deferred = dl.Clock(CaseState.DEFERRED, None, 8 * H, None, at(21, 9))
    assert dl.resume_deadline(deferred, CAL, policy, at(23, 10)) is None
    assert (
        dl.clock_changes(
            Action.REQUEST_EXTENSION,
            clock,
            CAL,
            policy,
            at(21, 15),
            new_deadline=None,
            restart_limit_s=8 * H,
        )
        == {}
    )


def test_a_pending_extension_pauses_and_an_approval_grows_the_limit() -> None:
    # 7 h from Monday 08:30 -> Monday 18:00; the request at 15:30 leaves 2.5 h.
    clock = running(at(21, 18), 7 * H, at(21, 8, 30))
    assert changes(Action.REQUEST_EXTENSION, clock, at(21, 15, 30)) == {
        "paused_remaining_s": int(2.5 * H)
    }
    pending = dl.Clock(CaseState.HANDLING, at(21, 18), 7 * H, int(2.5 * H), at(21, 8, 30))
    assert dl.thresholds(pending, CAL, POLICY) == []  # no alarm while it waits
    c = dl.countdown(pending, CAL, POLICY, at(22, 17))
    assert c is not None and c.paused and c.remaining_s == 2.5 * H
    # Approved Tuesday 09:00 to Tuesday 18:00: 4.5 h used + 6.5 h to go = an 11 h limit.
    ch = changes(Action.APPROVE_EXTENSION, pending, at(22, 9), new_deadline=at(22, 18))
    assert ch == {"time_limit_s": 11 * H, "paused_remaining_s": None, "clock_since": at(22, 9)}
    approved = running(at(22, 18), 11 * H, at(22, 9))
    assert dl.thresholds(approved, CAL, POLICY)[0].due_at == at(22, 15, 15)  # 2.75 h left


def test_a_denied_extension_restores_the_time_left() -> None:
    pending = dl.Clock(CaseState.HANDLING, at(21, 18), 7 * H, int(2.5 * H), at(21, 8, 30))
    ch = changes(Action.DENY_EXTENSION, pending, at(22, 9))
    assert ch == {"deadline": at(22, 11, 30), "paused_remaining_s": None, "clock_since": at(22, 9)}
    denied = running(at(22, 11, 30), 7 * H, at(22, 9))
    # 64 % was used at the request: the warning (1.75 h left = 09:45) is still to come.
    assert [t.due_at for t in dl.thresholds(denied, CAL, POLICY)] == [at(22, 9, 45), at(22, 11, 30)]
    # Asked at Monday 17:00 (86 % used, the warning already raised): denied, only overdue remains.
    late = dl.Clock(CaseState.HANDLING, at(21, 18), 7 * H, 1 * H, at(21, 8, 30))
    ch = changes(Action.DENY_EXTENSION, late, at(22, 9))
    relaunched = running(ch["deadline"], 7 * H, at(22, 9))  # type: ignore[arg-type]
    assert [t.kind for t in dl.thresholds(relaunched, CAL, POLICY)] == ["overdue"]


def test_a_return_stops_the_clock() -> None:
    clock = running(at(22, 10), 8 * H, at(21, 9))
    assert changes(Action.RETURN, clock, at(21, 10)) == {
        "time_limit_s": None,
        "paused_remaining_s": None,
        "clock_since": None,
    }


# -- settings -------------------------------------------------------------------------------------


def test_policies_parse_and_refuse_nonsense() -> None:
    p = dl.parse_policy("0.5, 0.75", "defer", "0.9")
    assert p.warnings == (0.5, 0.75, 1.0) and p.pause_defer and not p.pause_extension
    assert p.escalate_at == 0.9 and p.shares == (0.5, 0.75, 0.9, 1.0)
    assert dl.Policy(pause_defer=True, pause_extension=True) == POLICY
    assert dl.parse_policy("0.75,1.0", "none", "overdue") == dl.Policy()  # the defaults
    for bad in (("abc", "none", "none"), ("0", "none", "none"), ("0.75", "later", "none")):
        with pytest.raises(ValueError):
            dl.parse_policy(*bad)
    with pytest.raises(ValueError):
        dl.parse_policy("0.75", "none", "nan")


def test_a_paused_clock_is_not_overdue() -> None:
    now = datetime(2028, 3, 6, 10, tzinfo=TZ)
    past = now - timedelta(hours=1)
    assert dl.is_overdue("handling", past, None, now)
    assert not dl.is_overdue("handling", past, 3600, now)  # paused with an hour left
    assert not dl.is_overdue("handling", now + timedelta(minutes=1), None, now)
    assert not dl.is_overdue("feedback", past, None, now)  # the department's part is done
    assert not dl.is_overdue("dispatched", None, None, now)
