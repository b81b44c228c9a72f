"""The demo city's case histories (pure: no I/O; deterministic for a seed).

Every history is produced by driving the real workflow machine (``hub.core.workflow.create`` /
``apply``) with the actor a real deployment would have (seat, dispatcher, the department's user, a
supervisor of the case's grid), so every stored event is a legal move, and the row columns are the
fold of the outcomes' ``changes``. Deadlines come from the working calendar (``calendar.add``) and
the category's time limit (24 working hours when none). Case ids, attachment ids and the per-day
case numbers are assigned here (offset from what the database already holds).

About 94 % of reports are registered and about 91 % of registered cases closed, with returns,
extensions, rework, deferrals and escalations along the way (``hub.demo.reports.plan_case``). A
share of hotline, public and sensor reports is first sent to the grid's supervisor to confirm on
site (核实: ``request_confirm``, then ``confirm_pass`` and registration, or ``confirm_fail`` and
rejection), some answered after the allowance. About 4 % of cases are urgent (紧急, marked by the
reporter, at registration or at dispatch, a few un-marked later: ``plan_urgency``); an urgent
case's clock runs on the urgent limit (``urgent_limit_hours`` working hours when shorter than the
category's), as ``hub.cases.service.CaseService.deadline_for`` computes it, and its department acts
at once, office hours or not. The countdown columns are folded as the service writes them
(``hub.core.deadlines.clock_changes`` under the default policy), except ``clock_since``: the
history's clocks predate the alarm scheduler, which leaves them alone (``docs/architecture.md``).
The newest cases are driven to every open state in turn (replayed at a faster pace when the
realistic one would not get there before ``now``), some of them overdue.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from hub.core import deadlines as dl
from hub.core import workflow as wf
from hub.core.workcal import WorkCalendar
from hub.demo.organisation import COORDINATING, WRONG_DEPARTMENT
from hub.demo.records import (
    ROW_DEFAULTS,
    CategoryInfo,
    DemoChunk,
    DemoOrg,
    History,
    case_row,
    event_key,
)
from hub.demo.reports import (
    Forced,
    ForcedFates,
    Plan,
    category_mixes,
    new_case,
    plan_case,
    plan_urgency,
    skeletons,
)
from hub.demo.text import FEEDBACK_COMPONENT, FEEDBACK_EVENT, REPORT_NOTES
from storage.attachments import StoredBlob

S = wf.CaseState
A = wf.Action
R = wf.Role
CaseState = wf.CaseState

_MIN_STEP: Final = timedelta(seconds=30)
#: The countdown's columns the history keeps (``clock_since`` stays empty, see the docstring), and
#: the actions that change any of the countdown's columns (``dl.clock_changes``).
_CLOCK_KEPT: Final = ("time_limit_s", "paused_remaining_s")
_CLOCK_ACTIONS: Final = wf.DEADLINE_RESTART | {
    A.DEFER, A.REQUEST_EXTENSION, A.APPROVE_EXTENSION, A.DENY_EXTENSION, A.RETURN, A.FEEDBACK,
    A.QUICK_COMPLETE, A.VOID,
}  # fmt: skip


class _Stop(Exception):
    """The history ends here (the next move would be after ``now``, or the target state is reached)."""


class HistoryGenerator:
    """Generates case histories by driving ``hub.core.workflow``; deterministic for a given seed."""

    def __init__(
        self,
        org: DemoOrg,
        calendar: WorkCalendar,
        photos: Sequence[StoredBlob],
        now: datetime,
        seed: int,
        *,
        first_case_id: int = 1,
        first_attachment_id: int = 1,
        counters: Mapping[date, int] | None = None,
        urgent_limit_hours: int = 2,
    ) -> None:
        self.org = org
        self.urgent_limit_hours = urgent_limit_hours
        self.policy = dl.Policy()
        self._day_s = calendar.day_length.total_seconds()
        self.cal = calendar
        self.tz = calendar.tz
        self.photos = photos
        self.now = now.astimezone(UTC)
        self.rng = random.Random(seed)
        self.next_case_id = first_case_id
        self.next_attachment_id = first_attachment_id
        self.counters: dict[date, int] = dict(counters or {})
        self.f = 1.0  # time compression of the current history (1 = realistic pace)
        self.mixes = category_mixes(org.categories)
        u = org.users
        self.seats = [a for n, a in u.items() if a.role is R.SEAT]
        self.dispatchers = [a for n, a in u.items() if a.role is R.DISPATCHER]
        self.agents = [a for n, a in u.items() if a.role is R.AGENT]
        self.dept_actor = {a.department_id: a for a in u.values() if a.role is R.DEPARTMENT}
        self.sups = {st: [u[n] for n in names] for st, names in org.street_supervisors.items()}

    # -- one history -------------------------------------------------------------------------

    def _at(self, h: History, minutes: float, hours: tuple[float, float, bool] | None) -> datetime:
        """The next move's instant: ``minutes`` after the previous (compressed by ``self.f``),
        moved into the actor's working hours (start, end, workdays only) at realistic pace."""
        at = h.t + max(_MIN_STEP, timedelta(minutes=minutes * self.f))
        if hours is not None and self.f == 1.0:
            at = self._shift(at, *hours)
        if at > self.now:
            raise _Stop
        return at

    def _shift(self, at: datetime, start: float, end: float, workdays: bool) -> datetime:
        local = at.astimezone(self.tz)
        hour = local.hour + local.minute / 60
        day = local.date()
        if start <= hour < end and (not workdays or self.cal.is_workday(day)):
            return at
        if hour >= end:
            day += timedelta(days=1)
        while workdays and not self.cal.is_workday(day):
            day += timedelta(days=1)
        begin = datetime.combine(day, time(0), self.tz) + timedelta(
            hours=start, minutes=self.rng.uniform(5, 90)
        )
        return begin.astimezone(UTC).replace(microsecond=0)

    _SEAT = (7.0, 22.0, False)
    _OFFICE = (8.0, 18.5, True)
    _FIELD = (7.5, 19.0, False)

    def _deadline(
        self, h: History, cat: CategoryInfo, at: datetime, urgent: bool | None = None
    ) -> datetime:
        """A clock restarted at ``at``: the category's limit, or the urgent one when the case is
        (or the command makes it) urgent and that is shorter (``CaseService.deadline_for``)."""
        value, unit = cat.limit
        due = self.cal.add(at, value, "hours" if unit == "hours" else "days")
        if h.row["is_urgent"] if urgent is None else urgent:
            due = min(due, self.cal.add(at, self.urgent_limit_hours, "hours"))
        return due.astimezone(UTC)

    def _limit_s(self, cat: CategoryInfo, urgent: bool) -> int:
        """The working seconds a restart gives (``CaseService.time_limit_s``)."""
        value, unit = cat.limit
        limit = value * 3600 if unit == "hours" else int(value * self._day_s)
        return min(limit, self.urgent_limit_hours * 3600) if urgent else limit

    def _clock(self, h: History, out: wf.Outcome, at: datetime) -> dict[str, Any]:
        """The countdown columns the move changes, as ``CaseService._with_clock`` merges them."""
        row, cat = h.row, h.category
        assert cat is not None
        before = dl.Clock(
            row["state"],
            row["deadline"],
            row["time_limit_s"] or self._limit_s(cat, row["is_urgent"]),
            row["paused_remaining_s"],
            row["clock_since"],
            row["pending_extension_until"],
        )
        urgent = bool(out.changes.get("is_urgent", row["is_urgent"]))
        extra = dl.clock_changes(
            out.action, before, self.cal, self.policy, at,
            new_deadline=out.changes.get("deadline"), restart_limit_s=self._limit_s(cat, urgent),
        )  # fmt: skip
        return {k: v for k, v in extra.items() if k in _CLOCK_KEPT}

    def _photos(self, h: History, actor: wf.Actor, at: datetime, n: int) -> tuple[int, ...]:
        ids = []
        local = at.astimezone(self.tz)
        for k in range(n):
            blob = self.photos[self.rng.randrange(len(self.photos))]
            aid = self.next_attachment_id
            self.next_attachment_id += 1
            ids.append(aid)
            h.attachments.append(
                (
                    aid,
                    blob.sha256,
                    blob.media_type,
                    blob.size,
                    "photo",
                    f"IMG_{local:%Y%m%d_%H%M%S}_{k + 1}.png",
                    h.case_id,
                    actor.user_id,
                    at - timedelta(seconds=20 + 10 * k),
                )
            )
        return tuple(ids)

    def _record(
        self, h: History, out: wf.Outcome, actor: wf.Actor, at: datetime, cmd: wf.Command
    ) -> None:
        row = h.row
        clock = (
            self._clock(h, out, at)
            if out.from_state is not None and out.action in _CLOCK_ACTIONS
            else {}
        )
        for key, value in out.changes.items():
            row[key] = value
        row.update(clock)
        h.version += 1
        h.t = at
        h.events.append(
            (
                h.case_id,
                h.version,
                out.action._value_,
                actor.user_id,
                at,
                None if out.from_state is None else out.from_state._value_,
                out.to_state._value_,
                cmd.note,
                out.event_data,
                list(cmd.attachment_ids),
            )
        )
        if h.target is not None and out.to_state is h.target:
            raise _Stop

    def _do(
        self,
        h: History,
        actor: wf.Actor,
        action: wf.Action,
        at: datetime,
        *,
        photos: int = 0,
        **kwargs: Any,
    ) -> None:
        ids = self._photos(h, actor, at, photos) if photos else ()
        cmd = wf.Command(action, attachment_ids=ids, **kwargs)
        self._record(h, wf.apply(h.facts(), actor, cmd, at), actor, at, cmd)

    def _history(
        self, case: dict[str, Any], cat: CategoryInfo, plan: Plan, reporter: wf.Actor
    ) -> History:
        r = self.rng
        row = dict(ROW_DEFAULTS)
        row.update(state=None, is_quick=False, grid_id=case["grid_id"])
        h = History(case["id"], case["reported_at"], plan.target, row, category=cat)
        street_sups = self.sups[case["street"]]
        dep = self.org.departments
        try:
            # 1. report (or quick report: the supervisor fixes it on the spot)
            at = case["reported_at"]
            if plan.quick:
                ids = self._photos(h, reporter, at, 1)
                cmd = wf.Command(A.QUICK_REPORT, note="快速处置上报", attachment_ids=ids)
            else:
                source = case["source"]
                n = 0  # hotline and sensor reports come without photos
                if source == "supervisor":
                    n = 1 + (r.random() < 0.2)
                elif source == "video" or (source == "public" and r.random() < 0.6):
                    n = 1  # a snapshot of the feed, or the citizen's photo
                ids = self._photos(h, reporter, at, n)
                cmd = wf.Command(
                    A.REPORT, note=REPORT_NOTES[case["source"]], attachment_ids=ids,
                    urgent=self._mark(plan, "report"),
                )  # fmt: skip
            self._record(h, wf.create(reporter, cmd, case["grid_id"], at), reporter, at, cmd)
            if plan.quick:
                self._quick_complete(h, reporter, r.uniform(5, 40))
                # Reworked, the case goes back to the supervisor who handled it on the spot.
                redo = functools.partial(self._quick_complete, h, reporter, r.uniform(20, 240))
                self._verify_and_close(h, plan, cat, street_sups, redo)
                return h
            # 2. registration (立案) or rejection
            seat = r.choice(self.seats)
            at = self._at(h, r.uniform(3, 30), self._SEAT)
            if plan.confirm is not None:
                # 核实: the seat sends the report to one of the street's supervisors first.
                self._do(h, seat, A.REQUEST_CONFIRM, at, note="请监督员现场核实")
                self._confirm(h, plan, r.choice(street_sups))
                at = self._at(h, r.uniform(2, 20), self._SEAT)
            if plan.reject is wf.RejectReason.DUPLICATE:
                orig = case["duplicate_of"]
                self._do(
                    h, seat, A.REJECT, at, reject_reason=plan.reject, duplicate_of=orig[0],
                    note=f"与案件{orig[1]}重复，合并处理",
                )  # fmt: skip
                return h
            if plan.reject is wf.RejectReason.INVALID:
                note = r.choice(
                    ("经视频核实现场无此问题", "不属于数字城管受理范围", "信息不全，无法核实")
                )
                if plan.confirm == "fail":
                    note = "经监督员现场核实不属实，不予立案"
                elif plan.confirm == "pass":
                    note = "不属于数字城管受理范围"
                self._do(h, seat, A.REJECT, at, reject_reason=plan.reject, note=note)
                return h
            self._do(
                h, seat, A.REGISTER, at, note="符合立案标准", urgent=self._mark(plan, "register")
            )
            if plan.void:
                at = self._at(h, r.uniform(10, 120), self._SEAT)
                self._do(h, seat, A.VOID, at, note="上报信息有误，经核实作废")
                return h
            # 3. dispatch (派遣), possibly first to the wrong department, which returns it
            final = dep[COORDINATING if plan.coordinating else cat.department_code]
            first = final
            if plan.wrong_first:
                first = dep[r.choice(WRONG_DEPARTMENT.get(cat.department_code, (COORDINATING,)))]
                if first == final:
                    first = dep[COORDINATING] if final != dep[COORDINATING] else dep["CGZF"]
            dispatcher = r.choice(self.dispatchers)
            urgent = self._mark(plan, "dispatch")
            hurry = h.row["is_urgent"] if urgent is None else urgent
            at = self._at(h, r.uniform(2, 15) if hurry else r.uniform(5, 45), self._SEAT)
            self._do(
                h, dispatcher, A.DISPATCH, at, department_id=first, urgent=urgent,
                deadline=self._deadline(h, cat, at, urgent),
            )  # fmt: skip
            if plan.stuck is S.DISPATCHED:
                self._maybe_escalate(h, plan, dispatcher)
                return h
            if plan.wrong_first:
                wrong = self.dept_actor[first]
                if plan.return_after_accept:
                    self._do(h, wrong, A.ACCEPT, self._at(h, r.uniform(10, 120), self._OFFICE))
                at = self._at(h, r.uniform(20, 240), self._OFFICE)
                self._do(h, wrong, A.RETURN, at, note="经核实不属于本部门职责范围，申请回退")
                at = self._at(h, r.uniform(10, 60), self._SEAT)
                self._do(
                    h, dispatcher, A.DISPATCH, at, department_id=final,
                    deadline=self._deadline(h, cat, at), note="重新派遣至责任部门",
                )  # fmt: skip
            # 4. handling (处置) by the department (at once, office hours or not, when urgent)
            staff = self.dept_actor[final]
            urgent_now = cat.urgency == 1 or h.row["is_urgent"]
            office = None if urgent_now else self._OFFICE
            accept = r.uniform(5, 30) if h.row["is_urgent"] else r.uniform(10, 150)
            self._do(h, staff, A.ACCEPT, self._at(h, accept, office))
            if plan.defer is not None:
                at = self._at(h, r.uniform(120, 2880), self._OFFICE)
                note = r.choice(("涉及多部门协调，需列入专项整治计划", "需申请专项资金，暂缓办理"))
                self._do(h, dispatcher, A.DEFER, at, note=note)
                if plan.defer == "stay":
                    return h
                at = self._at(h, r.uniform(5, 40) * 1440, self._OFFICE)
                self._do(
                    h, dispatcher, A.RESUME, at, deadline=self._deadline(h, cat, at),
                    note="专项资金已落实，恢复办理",
                )  # fmt: skip
            if plan.extension is not None:
                self._extension(h, plan, cat, staff, dispatcher)
            if plan.escalate:
                self._maybe_escalate(h, plan, r.choice((dispatcher, seat)))
            if plan.stuck is S.HANDLING:
                return h
            self._feedback(h, plan, cat, staff, office)
            # 5. verification (核查) and closing (结案), with rework if it fails
            redo = functools.partial(self._feedback, h, plan, cat, staff, office)
            self._verify_and_close(h, plan, cat, street_sups, redo)
        except _Stop:
            pass
        return h

    @staticmethod
    def _mark(plan: Plan, step: str) -> bool | None:
        """The 紧急 mark the command of ``step`` carries: True where the plan marks the case,
        False where it un-marks it, None (left as it is) elsewhere."""
        if plan.urgent_at == step:
            return True
        return False if plan.unmark_at == step else None

    def _confirm(self, h: History, plan: Plan, sup: wf.Actor) -> None:
        """The supervisor's answer to a confirmation request: most within the allowance, some
        late (and any request the field hours put off to the next morning)."""
        r = self.rng
        minutes = r.uniform(35, 240) if plan.confirm_late else r.uniform(6, 28)
        at = self._at(h, minutes, self._FIELD)
        if plan.confirm == "fail":
            note = r.choice(("经现场核实，现场无此问题", "现场查看问题已不存在，反映不属实"))
            self._do(h, sup, A.CONFIRM_FAIL, at, note=note, photos=1)
        else:
            note = r.choice(("经现场核实，问题属实", "现场核实属实，建议立案"))
            self._do(h, sup, A.CONFIRM_PASS, at, note=note, photos=int(r.random() < 0.8))

    def _maybe_escalate(self, h: History, plan: Plan, actor: wf.Actor) -> None:
        deadline = h.row["deadline"]
        if not plan.escalate or deadline is None:
            return
        at = max(h.t + _MIN_STEP, deadline + timedelta(hours=self.rng.uniform(-2, 30) * self.f))
        if at > self.now:
            raise _Stop
        self._do(h, actor, A.ESCALATE, at, note="超时未处置，请加快办理（督办）")

    def _extension(
        self, h: History, plan: Plan, cat: CategoryInfo, staff: wf.Actor, dispatcher: wf.Actor
    ) -> None:
        r = self.rng
        deadline = h.row["deadline"]
        span = max(0.0, (deadline - h.t).total_seconds() / 60) if deadline else 60.0
        at = self._at(h, span * r.uniform(0.3, 0.7), None)
        value, unit = cat.limit
        until = self.cal.add(max(at, deadline or at), value, "hours" if unit == "hours" else "days")
        self._do(
            h, staff, A.REQUEST_EXTENSION, at, extension_until=until.astimezone(UTC),
            note=r.choice(("需协调施工队伍和材料，申请延期", "涉及产权单位确认，申请延期")),
        )  # fmt: skip
        at = self._at(h, r.uniform(10, 120), None)
        if plan.extension == "approve" and at < h.row["pending_extension_until"]:
            self._do(h, dispatcher, A.APPROVE_EXTENSION, at, note="同意延期")
        else:  # an extension may not be approved once the date asked for has passed
            self._do(h, dispatcher, A.DENY_EXTENSION, at, note="延期理由不充分，请按期处置")

    def _feedback(
        self,
        h: History,
        plan: Plan,
        cat: CategoryInfo,
        staff: wf.Actor,
        office: tuple[float, float, bool] | None,
    ) -> None:
        r = self.rng
        deadline = h.row["deadline"]
        span = max(1.0, (deadline - h.t).total_seconds() / 60) if deadline else 240.0
        if plan.late:
            minutes = span + r.uniform(60, 72 * 60)
            plan.late = False  # late once at most
        else:
            minutes = span * r.uniform(0.1, 0.85)
        at = self._at(h, minutes, office)
        notes = FEEDBACK_COMPONENT if cat.kind == "component" else FEEDBACK_EVENT
        self._do(h, staff, A.FEEDBACK, at, note=r.choice(notes), photos=1 + (r.random() < 0.3))

    def _quick_complete(self, h: History, sup: wf.Actor, minutes: float) -> None:
        at = self._at(h, minutes, None if minutes < 60 else self._FIELD)
        photos = 1 + (self.rng.random() < 0.3)
        self._do(h, sup, A.QUICK_COMPLETE, at, note="已现场处置完毕", photos=photos)

    def _verify_and_close(
        self,
        h: History,
        plan: Plan,
        cat: CategoryInfo,
        street_sups: Sequence[wf.Actor],
        redo: Callable[[], None],
    ) -> None:
        """Send to verification, verify on site, close; a rework (by the seat, or a failed
        verification) sends the case back and ``redo`` hands it in again."""
        r = self.rng
        seat = r.choice(self.seats)
        while True:
            at = self._at(h, r.uniform(5, 40), self._SEAT)
            if plan.rework == "seat":
                plan.rework = None
                self._do(
                    h, seat, A.REWORK, at, deadline=self._deadline(h, cat, at),
                    note="反馈照片未体现处置结果，返工",
                )  # fmt: skip
                redo()
                continue
            self._do(h, seat, A.REQUEST_VERIFY, at)
            sup = r.choice(street_sups)
            at = self._at(h, r.uniform(30, 360), self._FIELD)
            if plan.rework == "verify_fail":
                plan.rework = None
                self._do(
                    h, sup, A.VERIFY_FAIL, at, deadline=self._deadline(h, cat, at), photos=1,
                    note="现场核查问题仍然存在，返工",
                )  # fmt: skip
                redo()
                continue
            self._do(
                h, sup, A.VERIFY_PASS, at, note="现场核查已处置到位", photos=int(r.random() < 0.5)
            )
            break
        self._do(h, seat, A.CLOSE, self._at(h, r.uniform(5, 45), self._SEAT), note="结案")

    # -- all cases ---------------------------------------------------------------------------

    def stream(self, n: int, chunk: int = 500, tick: int = 4) -> Iterator[DemoChunk | None]:
        """Generate ``n`` cases in report order, yielding a ``DemoChunk`` every ``chunk`` cases and
        ``None`` every ``tick`` cases (a point where the caller may let other tasks run).

        Events are released in their global order (time, case id, version), so that a writer can
        append them as they come and ``case_events.seq`` still follows time: an event is released
        once every case still to come is reported after it."""
        skeletons_ = skeletons(self.rng, self.now, self.tz, n)
        forced_from = n - min(n, max(60, n // 100))
        fates = ForcedFates()
        out = DemoChunk([], [], [])
        pending: list[tuple[Any, ...]] = []
        recent: list[dict[str, Any]] = []  # earlier registered cases, for duplicates
        for index, (reported_at, source, quick) in enumerate(skeletons_):
            forced = fates.next(source, quick) if index >= forced_from else None
            case, h = self._one(reported_at, source, quick, forced, recent)
            pending.extend(h.events)
            out.attachments.extend(h.attachments)
            out.cases.append(case)
            if (index + 1) % tick == 0:
                yield None
            if (index + 1) % chunk == 0 and index + 1 < n:
                pending.sort(key=event_key)
                cut = bisect.bisect_left(
                    pending, (skeletons_[index + 1][0], self.next_case_id, 0), key=event_key
                )
                out.events, pending = pending[:cut], pending[cut:]
                yield out
                out = DemoChunk([], [], [])
        pending.sort(key=event_key)
        out.events = pending
        yield out

    def generate(self, n: int) -> DemoChunk:
        """All ``n`` cases at once (events in global order)."""
        whole = DemoChunk([], [], [])
        for part in self.stream(n):
            if part is not None:
                whole.cases.extend(part.cases)
                whole.attachments.extend(part.attachments)
                whole.events.extend(part.events)
        return whole

    def _one(
        self,
        reported_at: datetime,
        source: str,
        quick: bool,
        forced: Forced | None,
        recent: list[dict[str, Any]],
    ) -> tuple[tuple[Any, ...], History]:
        case_id = self.next_case_id
        self.next_case_id += 1
        target = None if forced is None else forced.target
        plan0 = plan_case(self.rng, quick, target, source)
        if plan0.reject is wf.RejectReason.DUPLICATE and not recent:
            plan0.reject = wf.RejectReason.INVALID
        case = new_case(
            self.rng, self.org.cells, self.mixes, self.counters, self.tz,
            case_id, reported_at, source, plan0, recent,
        )  # fmt: skip
        cat = case["category"]
        plan_urgency(self.rng, plan0, cat)
        if forced is not None:
            forced.apply(plan0)
        reporter = self._reporter(source, case["street"])
        if target is None:
            h = self._history(case, cat, plan0, reporter)
        else:
            # The newest cases must reach their target state before ``now``: if the realistic
            # pace does not get there, replay the same history faster.
            checkpoint = (self.next_attachment_id, self.rng.getstate())
            for f in (1.0, 0.25, 0.05, 0.01, 0.002):
                self.f = f
                self.next_attachment_id = checkpoint[0]
                self.rng.setstate(checkpoint[1])
                h = self._history(case, cat, dataclasses.replace(plan0), reporter)
                if h.row["state"] is target:
                    break
            self.f = 1.0
        if not quick and plan0.reject is None:
            recent.append(case)
            if len(recent) > 40:
                recent.pop(0)
        return case_row(case, h, reporter), h

    def _reporter(self, source: str, street: str) -> wf.Actor:
        r = self.rng
        if source == "supervisor":
            return r.choice(self.sups[street])
        if source == "hotline":
            return r.choice(self.agents)
        return r.choice(self.seats)
