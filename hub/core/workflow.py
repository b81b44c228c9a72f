"""The case workflow: a pure, table-driven state machine (no I/O, no clock).

Theory of operation
-------------------
A case moves through the six stages of digital city management::

    report ──▶ register ──▶ dispatch ──▶ accept ──▶ handle ──▶ feedback ──▶ verify ──▶ close
      │           (seat)     (dispatcher) (dept)      (dept)     (dept)    (supervisor) (seat)
      ├─▶ reject (invalid / duplicate of another case)
      └─▶ request_confirm ──▶ confirm_pass / confirm_fail ──▶ back to reported
            (seat)              (the grid's supervisor)         (the seat registers or rejects)

``TRANSITIONS`` maps ``(state, action)`` to the next state; it is the only place that says which move
is legal. ``ACTION_ROLES`` says who may take each action; ``apply()`` adds the scope rules (department
staff act only on their department's cases, field supervisors only in their grids) and the guards
(a dispatch needs a department and a deadline, feedback needs photos, an extension approval needs a
pending request ...). ``apply()`` never mutates: it returns an ``Outcome`` (the next state, the
column changes and the event to append) or raises, leaving the case untouched.

核实 (confirmation before registration): a report the seat cannot judge from the desk (from the
public, the 12319 hotline, a sensor or a video) is sent to the grid's field supervisor, who goes to
the site and answers 属实 (``confirm_pass``) or 不属实 (``confirm_fail``, with a note); either way
the case is back with the seat, who registers or rejects it. The event records the answer
(``confirm_pass`` / ``confirm_fail``, ``data.confirmed``); the time from ``request_confirm`` to the
answer is the supervisor's 按时核实 (``storage/evaluation_posts.py``). A case with no grid has no
supervisor to send it to: ``request_confirm`` is refused (``no_grid``).

Side paths: return (回退) from the department to the command center, extension (延期) requested by the
department and approved or denied by a dispatcher, deferral (缓办) and resumption, escalation (督办:
a counter, the state stays), void (作废), rework (返工: back to the department, counted)
either by the grid supervisor failing verification or by the seat rejecting the feedback, and quick
handling (快速处置): a field supervisor reports with a before-photo while fixing the problem, files the
after-photo, and the case joins the normal verification path; quick cases are flagged and counted
separately.

Reports: every case has a ``Source`` (supervisor, hotline, video, sensor, public). ``SOURCE_ROLES``
says which source each reporting role may use (``check_source``), and ``LOCATED_SOURCES`` which
sources must carry coordinates.

Deadlines: the actions in ``DEADLINE_RESTART`` (dispatch, rework, failed verification, resumption)
restart the department's clock from the category's time limit; an approved extension moves the
deadline to the requested time; return and deferral stop the clock. The caller computes a restarted
deadline on the working-time calendar (``hub/core/workcal.py``) and passes it in the ``Command``; this
module only checks it is present and in the future.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from hub.core.errors import Forbidden, IllegalTransition, ValidationFailed


class CaseState(StrEnum):
    REPORTED = "reported"  # 待受理
    CONFIRMING = "confirming"  # 核实中 (task with the grid supervisor, before registration)
    QUICK_HANDLING = "quick_handling"  # 快速处置中
    REGISTERED = "registered"  # 待派遣
    DISPATCHED = "dispatched"  # 待签收
    RETURNED = "returned"  # 已回退 (back at the command center)
    HANDLING = "handling"  # 处置中
    DEFERRED = "deferred"  # 缓办
    FEEDBACK = "feedback"  # 已反馈, awaiting verification
    VERIFYING = "verifying"  # 核查中 (task with the grid supervisor)
    VERIFIED = "verified"  # 核查通过, awaiting close
    CLOSED = "closed"  # 已结案
    REJECTED = "rejected"  # 不予立案
    VOIDED = "voided"  # 已作废


class Action(StrEnum):
    REPORT = "report"  # creates a case (no from-state)
    QUICK_REPORT = "quick_report"  # creates a quick-handling case (no from-state)
    REGISTER = "register"
    REJECT = "reject"
    REQUEST_CONFIRM = "request_confirm"  # 发送核实 (before registration)
    CONFIRM_PASS = "confirm_pass"  # 核实属实
    CONFIRM_FAIL = "confirm_fail"  # 核实不属实
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    RETURN = "return"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    DENY_EXTENSION = "deny_extension"
    DEFER = "defer"
    RESUME = "resume"
    FEEDBACK = "feedback"
    QUICK_COMPLETE = "quick_complete"
    REQUEST_VERIFY = "request_verify"
    VERIFY_PASS = "verify_pass"
    VERIFY_FAIL = "verify_fail"
    REWORK = "rework"
    CLOSE = "close"
    ESCALATE = "escalate"
    VOID = "void"
    ADD_EVIDENCE = "add_evidence"  # 补充证据: photos, snapshots, recordings added; the state stays


class Role(StrEnum):
    ADMIN = "admin"  # 系统管理员
    SEAT = "seat"  # 监督中心坐席
    DISPATCHER = "dispatcher"  # 指挥中心派遣员
    DEPARTMENT = "department"  # 专业部门人员
    SUPERVISOR = "supervisor"  # 监督员 (field)
    AGENT = "agent"  # 12319 热线坐席
    VIEWER = "viewer"  # 只读 (big screen, leaders)


class RejectReason(StrEnum):
    INVALID = "invalid"  # 无效
    DUPLICATE = "duplicate"  # 重复


class Source(StrEnum):
    """Where a report comes from (案件来源)."""

    SUPERVISOR = "supervisor"  # 监督员上报
    HOTLINE = "hotline"  # 12319 热线
    VIDEO = "video"  # 视频巡查
    SENSOR = "sensor"  # 传感器
    PUBLIC = "public"  # 公众上报


S = CaseState
A = Action

OPEN_STATES: frozenset[CaseState] = frozenset(
    {
        S.REPORTED,
        S.CONFIRMING,
        S.QUICK_HANDLING,
        S.REGISTERED,
        S.DISPATCHED,
        S.RETURNED,
        S.HANDLING,
        S.DEFERRED,
        S.FEEDBACK,
        S.VERIFYING,
        S.VERIFIED,
    }
)
TERMINAL_STATES: frozenset[CaseState] = frozenset({S.CLOSED, S.REJECTED, S.VOIDED})
# States in which the department's deadline runs (a case here past its deadline is overdue).
DEADLINE_STATES: frozenset[CaseState] = frozenset({S.DISPATCHED, S.HANDLING})

#: Creation: the state a new case starts in.
INITIAL: Mapping[Action, CaseState] = {A.REPORT: S.REPORTED, A.QUICK_REPORT: S.QUICK_HANDLING}

#: (state, action) -> next state. Every legal move, and only those.
TRANSITIONS: Mapping[tuple[CaseState, Action], CaseState] = {
    (S.REPORTED, A.REGISTER): S.REGISTERED,
    (S.REPORTED, A.REJECT): S.REJECTED,
    # 核实: the grid's supervisor confirms the report on site; the seat then decides.
    (S.REPORTED, A.REQUEST_CONFIRM): S.CONFIRMING,
    (S.CONFIRMING, A.CONFIRM_PASS): S.REPORTED,
    (S.CONFIRMING, A.CONFIRM_FAIL): S.REPORTED,
    (S.REGISTERED, A.DISPATCH): S.DISPATCHED,
    (S.RETURNED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.ACCEPT): S.HANDLING,
    (S.DISPATCHED, A.RETURN): S.RETURNED,
    (S.HANDLING, A.RETURN): S.RETURNED,
    (S.HANDLING, A.REQUEST_EXTENSION): S.HANDLING,
    (S.HANDLING, A.APPROVE_EXTENSION): S.HANDLING,
    (S.HANDLING, A.DENY_EXTENSION): S.HANDLING,
    (S.HANDLING, A.DEFER): S.DEFERRED,
    (S.DEFERRED, A.RESUME): S.HANDLING,
    (S.HANDLING, A.FEEDBACK): S.FEEDBACK,
    (S.QUICK_HANDLING, A.QUICK_COMPLETE): S.FEEDBACK,
    (S.FEEDBACK, A.REQUEST_VERIFY): S.VERIFYING,
    (S.FEEDBACK, A.REWORK): S.HANDLING,
    (S.VERIFYING, A.VERIFY_PASS): S.VERIFIED,
    (S.VERIFYING, A.VERIFY_FAIL): S.HANDLING,
    (S.VERIFIED, A.CLOSE): S.CLOSED,
    (S.VERIFIED, A.REWORK): S.HANDLING,
    # Escalation (督办) keeps the state; it is allowed while someone still has to act.
    **{(s, A.ESCALATE): s for s in OPEN_STATES},
    # Void (作废) from any open state.
    **{(s, A.VOID): S.VOIDED for s in OPEN_STATES},
    # More evidence (补充证据: a camera snapshot, a call recording, a photo) keeps the state; it is
    # allowed while the case is open, so a closed record is never changed afterwards.
    **{(s, A.ADD_EVIDENCE): s for s in OPEN_STATES},
}

#: Rework of a case that no department holds (a quick-handling case): it goes back to the field
#: supervisor who handled it on the spot, instead of to a department (these override TRANSITIONS
#: when the case has no department).
NO_DEPARTMENT_TRANSITIONS: Mapping[tuple[CaseState, Action], CaseState] = {
    (S.FEEDBACK, A.REWORK): S.QUICK_HANDLING,
    (S.VERIFIED, A.REWORK): S.QUICK_HANDLING,
    (S.VERIFYING, A.VERIFY_FAIL): S.QUICK_HANDLING,
}

_ADMIN = frozenset({Role.ADMIN})
#: Who may take each action (admin may take every action).
ACTION_ROLES: Mapping[Action, frozenset[Role]] = {
    A.REPORT: frozenset({Role.SEAT, Role.SUPERVISOR, Role.AGENT}) | _ADMIN,
    A.QUICK_REPORT: frozenset({Role.SUPERVISOR}) | _ADMIN,
    A.REGISTER: frozenset({Role.SEAT}) | _ADMIN,
    A.REJECT: frozenset({Role.SEAT}) | _ADMIN,
    A.REQUEST_CONFIRM: frozenset({Role.SEAT}) | _ADMIN,
    A.CONFIRM_PASS: frozenset({Role.SUPERVISOR}) | _ADMIN,
    A.CONFIRM_FAIL: frozenset({Role.SUPERVISOR}) | _ADMIN,
    A.DISPATCH: frozenset({Role.DISPATCHER}) | _ADMIN,
    A.ACCEPT: frozenset({Role.DEPARTMENT}) | _ADMIN,
    A.RETURN: frozenset({Role.DEPARTMENT}) | _ADMIN,
    A.REQUEST_EXTENSION: frozenset({Role.DEPARTMENT}) | _ADMIN,
    A.APPROVE_EXTENSION: frozenset({Role.DISPATCHER}) | _ADMIN,
    A.DENY_EXTENSION: frozenset({Role.DISPATCHER}) | _ADMIN,
    A.DEFER: frozenset({Role.DISPATCHER}) | _ADMIN,
    A.RESUME: frozenset({Role.DISPATCHER}) | _ADMIN,
    A.FEEDBACK: frozenset({Role.DEPARTMENT}) | _ADMIN,
    A.QUICK_COMPLETE: frozenset({Role.SUPERVISOR}) | _ADMIN,
    A.REQUEST_VERIFY: frozenset({Role.SEAT}) | _ADMIN,
    A.VERIFY_PASS: frozenset({Role.SUPERVISOR}) | _ADMIN,
    A.VERIFY_FAIL: frozenset({Role.SUPERVISOR}) | _ADMIN,
    A.REWORK: frozenset({Role.SEAT}) | _ADMIN,
    A.CLOSE: frozenset({Role.SEAT}) | _ADMIN,
    A.ESCALATE: frozenset({Role.SEAT, Role.DISPATCHER}) | _ADMIN,
    A.VOID: frozenset({Role.SEAT}) | _ADMIN,
    A.ADD_EVIDENCE: frozenset({Role.SEAT, Role.DISPATCHER, Role.SUPERVISOR, Role.AGENT}) | _ADMIN,
}

#: Actions a department member may take only on their own department's cases.
DEPARTMENT_SCOPED: frozenset[Action] = frozenset(
    {A.ACCEPT, A.RETURN, A.REQUEST_EXTENSION, A.FEEDBACK}
)
#: Actions a field supervisor may take only in their own grids.
GRID_SCOPED: frozenset[Action] = frozenset(
    {
        A.REPORT,
        A.QUICK_REPORT,
        A.QUICK_COMPLETE,
        A.CONFIRM_PASS,
        A.CONFIRM_FAIL,
        A.VERIFY_PASS,
        A.VERIFY_FAIL,
        A.ADD_EVIDENCE,
    }
)
#: Actions that must carry a note (a reason a person can read later).
NOTE_REQUIRED: frozenset[Action] = frozenset(
    {
        A.REJECT,
        A.RETURN,
        A.REQUEST_EXTENSION,
        A.DENY_EXTENSION,
        A.DEFER,
        A.CONFIRM_FAIL,
        A.VERIFY_FAIL,
        A.REWORK,
        A.ESCALATE,
        A.VOID,
    }
)
#: Actions that must carry at least one photo.
PHOTO_REQUIRED: frozenset[Action] = frozenset(
    {A.FEEDBACK, A.QUICK_REPORT, A.QUICK_COMPLETE, A.ADD_EVIDENCE}
)
#: Actions that restart the department's clock from the category's time limit: the command must
#: carry the new deadline (the caller computes it on the working-time calendar).
DEADLINE_RESTART: frozenset[Action] = frozenset({A.DISPATCH, A.REWORK, A.VERIFY_FAIL, A.RESUME})

#: Actions that may mark a case urgent (紧急) or not: the reporter, the seat at register, the
#: dispatcher at dispatch (the deadline a dispatch sets then follows the urgent time limit).
URGENT_MARKING: frozenset[Action] = frozenset({A.REPORT, A.QUICK_REPORT, A.REGISTER, A.DISPATCH})

#: Every source, in the order forms list them.
SOURCES: tuple[Source, ...] = tuple(Source)
#: Sources whose reports must carry a location (the others may give only an address).
LOCATED_SOURCES: frozenset[Source] = frozenset({Source.SUPERVISOR, Source.VIDEO})
#: The sources each reporting role may report from. A role not listed is not limited by source
#: (whether it may report at all is ``ACTION_ROLES``' question).
SOURCE_ROLES: Mapping[Role, frozenset[Source]] = {
    Role.ADMIN: frozenset(Source),
    Role.SEAT: frozenset({Source.VIDEO, Source.PUBLIC, Source.SENSOR, Source.HOTLINE}),
    Role.SUPERVISOR: frozenset({Source.SUPERVISOR}),
    Role.AGENT: frozenset({Source.HOTLINE}),
}

#: Chinese labels, one map per enum (a state and an action may share a value, e.g. "feedback").
STATE_LABELS: Mapping[CaseState, str] = {
    S.REPORTED: "待受理",
    S.CONFIRMING: "核实中",
    S.QUICK_HANDLING: "快速处置中",
    S.REGISTERED: "待派遣",
    S.DISPATCHED: "待签收",
    S.RETURNED: "已回退",
    S.HANDLING: "处置中",
    S.DEFERRED: "缓办",
    S.FEEDBACK: "待核查",
    S.VERIFYING: "核查中",
    S.VERIFIED: "待结案",
    S.CLOSED: "已结案",
    S.REJECTED: "不予立案",
    S.VOIDED: "已作废",
}
ACTION_LABELS: Mapping[Action, str] = {
    A.REPORT: "上报",
    A.QUICK_REPORT: "快速处置上报",
    A.REGISTER: "立案",
    A.REJECT: "不予立案",
    A.REQUEST_CONFIRM: "发送核实",
    A.CONFIRM_PASS: "核实属实",
    A.CONFIRM_FAIL: "核实不属实",
    A.DISPATCH: "派遣",
    A.ACCEPT: "签收",
    A.RETURN: "回退",
    A.REQUEST_EXTENSION: "申请延期",
    A.APPROVE_EXTENSION: "批准延期",
    A.DENY_EXTENSION: "驳回延期",
    A.DEFER: "缓办",
    A.RESUME: "恢复办理",
    A.FEEDBACK: "处置反馈",
    A.QUICK_COMPLETE: "快速处置完成",
    A.REQUEST_VERIFY: "发送核查",
    A.VERIFY_PASS: "核查通过",
    A.VERIFY_FAIL: "核查不通过(返工)",
    A.REWORK: "返工",
    A.CLOSE: "结案",
    A.ESCALATE: "督办",
    A.VOID: "作废",
    A.ADD_EVIDENCE: "补充证据",
}
SOURCE_LABELS: Mapping[Source, str] = {
    Source.SUPERVISOR: "监督员上报",
    Source.HOTLINE: "12319热线",
    Source.VIDEO: "视频巡查",
    Source.SENSOR: "传感器",
    Source.PUBLIC: "公众上报",
}
ROLE_LABELS: Mapping[Role, str] = {
    Role.ADMIN: "系统管理员",
    Role.SEAT: "监督中心坐席",
    Role.DISPATCHER: "指挥中心派遣员",
    Role.DEPARTMENT: "专业部门",
    Role.SUPERVISOR: "监督员",
    Role.AGENT: "热线坐席",
    Role.VIEWER: "只读用户",
}


def label(item: CaseState | Action | Role | Source) -> str:
    """The Chinese label of a state, an action, a role or a source."""
    if isinstance(item, CaseState):
        return STATE_LABELS[item]
    if isinstance(item, Action):
        return ACTION_LABELS[item]
    if isinstance(item, Source):
        return SOURCE_LABELS[item]
    return ROLE_LABELS[item]


@dataclasses.dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: the signed-in user, with the scope their role is limited to."""

    user_id: int
    role: Role
    department_id: int | None = None
    #: Second-level grid ids a field supervisor covers (first-level assignments already expanded).
    grid_ids: frozenset[int] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the machine needs to know about a case to judge a move (each field is named after
    the ``cases`` column it is read from)."""

    state: CaseState
    version: int
    department_id: int | None
    grid_id: int | None
    deadline: datetime | None = None
    is_quick: bool = False
    rework_count: int = 0
    extension_count: int = 0
    escalation_count: int = 0
    pending_extension_until: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """An action with its arguments, as a user asked for it."""

    action: Action
    note: str = ""
    #: DISPATCH: the department to send the case to.
    department_id: int | None = None
    #: The actions in DEADLINE_RESTART: the new deadline, computed by the caller on the
    #: working-time calendar from the category's time limit.
    deadline: datetime | None = None
    #: REQUEST_EXTENSION: the deadline the department asks for.
    extension_until: datetime | None = None
    #: REJECT: why.
    reject_reason: RejectReason | None = None
    #: REJECT as duplicate: the original case.
    duplicate_of: int | None = None
    #: Photos and other evidence, already stored (attachment ids).
    attachment_ids: tuple[int, ...] = ()
    #: REPORT, QUICK_REPORT, REGISTER, DISPATCH: mark the case 紧急 (True) or not (False); None
    #: leaves it as it is. An urgent case runs on the urgent time limit and is counted apart.
    urgent: bool | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a legal move: write ``changes`` to the case row and append the event."""

    from_state: CaseState | None
    to_state: CaseState
    action: Action
    changes: Mapping[str, Any]
    event_data: Mapping[str, Any]


def _check_role(actor: Actor, action: Action) -> None:
    if actor.role not in ACTION_ROLES[action]:
        raise Forbidden(
            f"角色“{label(actor.role)}”不能执行“{label(action)}”",
            details={"action": action.value, "role": actor.role.value},
            code="role_forbidden",
        )


def _check_scope(
    actor: Actor, action: Action, department_id: int | None, grid_id: int | None
) -> None:
    if (
        actor.role is Role.DEPARTMENT
        and action in DEPARTMENT_SCOPED
        and (department_id is None or department_id != actor.department_id)
    ):
        raise Forbidden(
            "该案件不属于本部门", details={"action": action.value}, code="out_of_department"
        )
    if (
        actor.role is Role.SUPERVISOR
        and action in GRID_SCOPED
        and (grid_id is None or grid_id not in actor.grid_ids)
    ):
        raise Forbidden(
            "该位置不在您负责的网格内", details={"action": action.value}, code="out_of_grid"
        )


def _check_args(cmd: Command, now: datetime) -> None:
    a = cmd.action
    if a in NOTE_REQUIRED and not cmd.note.strip():
        raise ValidationFailed(
            f"“{label(a)}”需要填写说明", details={"field": "note"}, code="note_required"
        )
    if a in PHOTO_REQUIRED and not cmd.attachment_ids:
        raise ValidationFailed(
            f"“{label(a)}”需要上传照片", details={"field": "attachments"}, code="photo_required"
        )
    if a is A.DISPATCH and cmd.department_id is None:
        raise ValidationFailed("派遣需要选择部门", details={"field": "department_id"})
    if a in DEADLINE_RESTART and (cmd.deadline is None or cmd.deadline <= now):
        raise ValidationFailed("处置时限无效", details={"field": "deadline"})
    if a is A.REJECT:
        if cmd.reject_reason is None:
            raise ValidationFailed("请选择不予立案的原因", details={"field": "reject_reason"})
        if cmd.reject_reason is RejectReason.DUPLICATE and cmd.duplicate_of is None:
            raise ValidationFailed("重复案件需要关联原案件", details={"field": "duplicate_of"})
    if a is A.REQUEST_EXTENSION and (cmd.extension_until is None or cmd.extension_until <= now):
        raise ValidationFailed("延期时间必须晚于当前时间", details={"field": "extension_until"})
    if cmd.urgent is not None and a not in URGENT_MARKING:
        raise ValidationFailed(
            f"“{label(a)}”不能标记紧急", details={"field": "urgent"}, code="urgent_not_allowed"
        )


def may_report_from(role: Role, source: Source) -> bool:
    """Whether ``role`` may file a report from ``source`` (see ``SOURCE_ROLES``)."""
    allowed = SOURCE_ROLES.get(role)
    return allowed is None or source in allowed


def check_source(role: Role, source: Source) -> None:
    """Raise ``Forbidden`` (``source_forbidden``) when ``role`` may not report from ``source``."""
    if not may_report_from(role, source):
        raise Forbidden(
            "该角色不能以此来源上报", code="source_forbidden", details={"source": source.value}
        )


def create(actor: Actor, cmd: Command, grid_id: int | None, now: datetime) -> Outcome:
    """A new case: REPORT or QUICK_REPORT."""
    if cmd.action not in INITIAL:
        raise IllegalTransition(
            f"“{label(cmd.action)}”不能用于新建案件", details={"action": cmd.action.value}
        )
    _check_role(actor, cmd.action)
    _check_scope(actor, cmd.action, None, grid_id)
    _check_args(cmd, now)
    to = INITIAL[cmd.action]
    changes: dict[str, Any] = {"state": to, "is_quick": cmd.action is A.QUICK_REPORT}
    if cmd.urgent is not None:
        changes["is_urgent"] = cmd.urgent
    return Outcome(None, to, cmd.action, changes, _event_data(cmd))


def apply(case: CaseFacts, actor: Actor, cmd: Command, now: datetime) -> Outcome:
    """Judge ``cmd`` on ``case``; return the outcome or raise (the case is untouched either way)."""
    a = cmd.action
    to = TRANSITIONS.get((case.state, a))
    if to is None:
        raise IllegalTransition(
            f"案件处于“{label(case.state)}”状态，不能“{label(a)}”",
            details={"state": case.state.value, "action": a.value},
        )
    _check_role(actor, a)
    _check_scope(actor, a, case.department_id, case.grid_id)
    if a is A.REQUEST_CONFIRM and case.grid_id is None:
        raise IllegalTransition(
            "案件没有所属网格，无法发送监督员核实", code="no_grid", details={"action": a.value}
        )
    _check_args(cmd, now)

    changes: dict[str, Any] = {"state": to}
    if cmd.urgent is not None:
        changes["is_urgent"] = cmd.urgent
    if a is A.REGISTER:
        changes["registered_at"] = now
    elif a is A.REJECT:
        if cmd.duplicate_of is not None and cmd.reject_reason is RejectReason.DUPLICATE:
            changes["duplicate_of"] = cmd.duplicate_of
        changes["reject_reason"] = cmd.reject_reason
        changes["closed_at"] = now
    elif a is A.DISPATCH:
        changes.update(
            department_id=cmd.department_id,
            deadline=cmd.deadline,
            dispatched_at=now,
            pending_extension_until=None,
        )
    elif a is A.ACCEPT:
        changes["accepted_at"] = now
    elif a is A.RETURN:
        changes.update(department_id=None, deadline=None, pending_extension_until=None)
    elif a is A.REQUEST_EXTENSION:
        if case.pending_extension_until is not None:
            raise IllegalTransition("已有待审批的延期申请", code="extension_pending")
        if (
            case.deadline is not None
            and cmd.extension_until is not None
            and cmd.extension_until <= case.deadline
        ):
            raise ValidationFailed(
                "延期时间必须晚于当前处置时限", details={"field": "extension_until"}
            )
        changes["pending_extension_until"] = cmd.extension_until
    elif a in (A.APPROVE_EXTENSION, A.DENY_EXTENSION):
        if case.pending_extension_until is None:
            raise IllegalTransition("没有待审批的延期申请", code="no_pending_extension")
        changes["pending_extension_until"] = None
        if a is A.APPROVE_EXTENSION:
            if case.pending_extension_until <= now:
                raise ValidationFailed(
                    "申请的延期时间已过，请驳回后由部门重新申请", code="extension_expired"
                )
            changes["deadline"] = case.pending_extension_until
            changes["extension_count"] = case.extension_count + 1
    elif a is A.DEFER:
        changes.update(deadline=None, pending_extension_until=None)
    elif a is A.RESUME:
        changes["deadline"] = cmd.deadline
    elif a in (A.FEEDBACK, A.QUICK_COMPLETE):
        # The work is done: an extension request still open is moot (left pending, it would block
        # a new request after a rework and could be approved over the rework's deadline).
        changes.update(handled_at=now, pending_extension_until=None)
    elif a in (A.REWORK, A.VERIFY_FAIL):
        if case.department_id is None and (case.state, a) in NO_DEPARTMENT_TRANSITIONS:
            to = NO_DEPARTMENT_TRANSITIONS[(case.state, a)]
            changes.update(state=to, deadline=None, rework_count=case.rework_count + 1)
        else:
            changes.update(deadline=cmd.deadline, rework_count=case.rework_count + 1)
    elif a is A.VERIFY_PASS:
        changes["verified_at"] = now
    elif a is A.CLOSE:
        changes["closed_at"] = now
    elif a is A.ESCALATE:
        changes["escalation_count"] = case.escalation_count + 1
    elif a is A.VOID:
        changes.update(closed_at=now, pending_extension_until=None)
    data = _event_data(cmd)
    if a in (A.CONFIRM_PASS, A.CONFIRM_FAIL):
        data["confirmed"] = a is A.CONFIRM_PASS
    return Outcome(case.state, to, a, changes, data)


def _event_data(cmd: Command) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if cmd.department_id is not None:
        data["department_id"] = cmd.department_id
    if cmd.deadline is not None:
        data["deadline"] = cmd.deadline.isoformat()
    if cmd.extension_until is not None:
        data["extension_until"] = cmd.extension_until.isoformat()
    if cmd.reject_reason is not None:
        data["reject_reason"] = cmd.reject_reason.value
    if cmd.duplicate_of is not None and cmd.reject_reason is RejectReason.DUPLICATE:
        data["duplicate_of"] = cmd.duplicate_of
    if cmd.urgent is not None:
        data["urgent"] = cmd.urgent
    return data


def allowed_actions(case: CaseFacts, actor: Actor) -> list[Action]:
    """The actions ``actor`` may try on ``case`` now (for the UI's buttons); guards on arguments
    (notes, photos, deadlines) are not judged here."""
    out: list[Action] = []
    for (state, action), _to in TRANSITIONS.items():
        if state is not case.state:
            continue
        if actor.role not in ACTION_ROLES[action]:
            continue
        try:
            _check_scope(actor, action, case.department_id, case.grid_id)
        except Forbidden:
            continue
        if action is A.REQUEST_EXTENSION and case.pending_extension_until is not None:
            continue
        if (
            action in (A.APPROVE_EXTENSION, A.DENY_EXTENSION)
            and case.pending_extension_until is None
        ):
            continue
        if action is A.REQUEST_CONFIRM and case.grid_id is None:
            continue
        out.append(action)
    return out
