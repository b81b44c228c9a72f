"""Exhaustive tests of the case workflow table (``hub/workflow.py``).

The module is pure, so every test is a plain function call with a fixed ``NOW``: no clock, no I/O.
One class per concern of the module: the transition table, roles, scope, argument guards, whole
journeys folded move by move, ``allowed_actions()``, and randomized walks.

The expectations never come from the module's own tables (``TRANSITIONS``, ``ACTION_ROLES``,
``NOTE_REQUIRED`` ...): they are written out by hand from the domain description (the six stages and
the side paths of ``shared/domain/README.md``), so that a wrong table entry makes tests fail instead
of being copied into the expectation.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from hub.core.errors import Conflict, Forbidden, IllegalTransition, ValidationFailed
from hub.core.workflow import (
    ACTION_ROLES,
    DEADLINE_RESTART,
    DEADLINE_STATES,
    DEPARTMENT_SCOPED,
    GRID_SCOPED,
    INITIAL,
    LOCATED_SOURCES,
    NO_DEPARTMENT_TRANSITIONS,
    NOTE_REQUIRED,
    OPEN_STATES,
    PHOTO_REQUIRED,
    SOURCE_ROLES,
    SOURCES,
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    Actor,
    CaseFacts,
    CaseState,
    Command,
    Outcome,
    RejectReason,
    Role,
    Source,
    allowed_actions,
    apply,
    check_source,
    create,
    label,
    may_report_from,
)
from storage.cases import CASE_FIELDS as CASE_COLUMNS
from storage.cases import MUTABLE_FIELDS

S = CaseState
A = Action

# --------------------------------------------------------------------------------------------------
# Fixed time, places and people
# --------------------------------------------------------------------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=SHANGHAI)
PAST = NOW - timedelta(hours=1)
#: A command's new deadline (dispatch, rework, verify_fail, resume).
NEW_DEADLINE = NOW + timedelta(days=2)
#: The deadline a case in handling already has.
DEADLINE = NOW + timedelta(days=3)
#: An extension the department asks for: after DEADLINE.
EXTENDED = NOW + timedelta(days=6)

DEPT, OTHER_DEPT = 7, 8
GRID, GRID_2, OTHER_GRID = 101, 102, 202
PHOTOS = (501, 502)
NOTE = "现场已核实"
BLANK_NOTES = ["", "   ", "\n\t", "\u3000"]  # the last is a full-width (ideographic) space

ADMIN = Actor(1, Role.ADMIN)
SEAT = Actor(2, Role.SEAT)
DISPATCHER = Actor(3, Role.DISPATCHER)
DEPARTMENT = Actor(4, Role.DEPARTMENT, department_id=DEPT)
SUPERVISOR = Actor(5, Role.SUPERVISOR, grid_ids=frozenset({GRID, GRID_2}))
AGENT = Actor(6, Role.AGENT)
VIEWER = Actor(7, Role.VIEWER)
OTHER_DEPARTMENT = Actor(14, Role.DEPARTMENT, department_id=OTHER_DEPT)
OTHER_SUPERVISOR = Actor(15, Role.SUPERVISOR, grid_ids=frozenset({OTHER_GRID}))
HOMELESS_DEPARTMENT = Actor(16, Role.DEPARTMENT)  # a department account not linked to one

#: For each role, an actor whose scope covers the standard case built by ``case_in``.
IN_SCOPE: dict[Role, Actor] = {
    Role.ADMIN: ADMIN,
    Role.SEAT: SEAT,
    Role.DISPATCHER: DISPATCHER,
    Role.DEPARTMENT: DEPARTMENT,
    Role.SUPERVISOR: SUPERVISOR,
    Role.AGENT: AGENT,
    Role.VIEWER: VIEWER,
}
ALL_ACTORS = [*IN_SCOPE.values(), OTHER_DEPARTMENT, OTHER_SUPERVISOR, HOMELESS_DEPARTMENT]

#: States reached only after a dispatch, where the case belongs to a department.
_DEPARTMENT_STATES = frozenset({S.DISPATCHED, S.HANDLING, S.DEFERRED, S.FEEDBACK, S.VERIFYING})
_DEPARTMENT_STATES |= {S.VERIFIED, S.CLOSED}

#: Hand-written from the domain description, independently of OPEN_STATES: every state in which
#: someone still has to act (everything but closed, rejected and voided).
EXPECTED_OPEN = frozenset(
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
#: Hand-written: the finished states.
EXPECTED_TERMINAL = frozenset({S.CLOSED, S.REJECTED, S.VOIDED})
#: Hand-written: the states where escalation (督办) is allowed, keeping the state: every open one.
EXPECTED_ESCALATE_STATES = EXPECTED_OPEN

#: Every legal move, written out from the domain description independently of TRANSITIONS:
#: (state, action) -> next state. The six stages: 信息收集 (report) → 立案 (register, or reject)
#: → 任务派遣 (dispatch) → 任务处理 (accept, handle) → 处理反馈 (feedback) → 核实结案 (verify on
#: site, close).
EXPECTED_TRANSITIONS: dict[tuple[CaseState, Action], CaseState] = {
    (S.REPORTED, A.REGISTER): S.REGISTERED,
    (S.REPORTED, A.REJECT): S.REJECTED,  # invalid, or a duplicate of another case
    # 核实: before deciding, the seat may send the grid's supervisor to see whether the problem
    # is there; 属实 or 不属实, the case comes back to the seat, who registers or rejects it.
    (S.REPORTED, A.REQUEST_CONFIRM): S.CONFIRMING,
    (S.CONFIRMING, A.CONFIRM_PASS): S.REPORTED,
    (S.CONFIRMING, A.CONFIRM_FAIL): S.REPORTED,
    (S.REGISTERED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.ACCEPT): S.HANDLING,  # the department signs for it
    (S.HANDLING, A.FEEDBACK): S.FEEDBACK,
    (S.FEEDBACK, A.REQUEST_VERIFY): S.VERIFYING,  # the seat sends the grid's supervisor
    (S.VERIFYING, A.VERIFY_PASS): S.VERIFIED,  # match on site
    (S.VERIFIED, A.CLOSE): S.CLOSED,
    # 回退: the department gives a wrongly dispatched case back, before or after accepting it;
    # the command center dispatches it again (to wait for a signature, not straight to work).
    (S.DISPATCHED, A.RETURN): S.RETURNED,
    (S.HANDLING, A.RETURN): S.RETURNED,
    (S.RETURNED, A.DISPATCH): S.DISPATCHED,
    # 延期: asked by the department, approved or denied by a dispatcher; the case stays in work.
    (S.HANDLING, A.REQUEST_EXTENSION): S.HANDLING,
    (S.HANDLING, A.APPROVE_EXTENSION): S.HANDLING,
    (S.HANDLING, A.DENY_EXTENSION): S.HANDLING,
    # 缓办 and resumption.
    (S.HANDLING, A.DEFER): S.DEFERRED,
    (S.DEFERRED, A.RESUME): S.HANDLING,
    # 返工: mismatch on site, or the seat refuses the feedback or the verification: back to work.
    (S.VERIFYING, A.VERIFY_FAIL): S.HANDLING,
    (S.FEEDBACK, A.REWORK): S.HANDLING,
    (S.VERIFIED, A.REWORK): S.HANDLING,
    # 快速处置: the supervisor files the after-photo and the case joins verification.
    (S.QUICK_HANDLING, A.QUICK_COMPLETE): S.FEEDBACK,
    # 督办 keeps the state and 作废 ends the case, from every open state.
    **{(s, A.ESCALATE): s for s in EXPECTED_OPEN},
    **{(s, A.VOID): S.VOIDED for s in EXPECTED_OPEN},
    # 补充证据 (a snapshot from the video wall, a call recording) keeps the state, while open.
    **{(s, A.ADD_EVIDENCE): s for s in EXPECTED_OPEN},
}
#: Hand-written: the rework moves, and where they send a case that no department holds (a quick
#: case: back to the field supervisor) and one a department holds (back to the department).
EXPECTED_REWORK_WITHOUT_DEPARTMENT: dict[tuple[CaseState, Action], CaseState] = {
    (S.FEEDBACK, A.REWORK): S.QUICK_HANDLING,
    (S.VERIFIED, A.REWORK): S.QUICK_HANDLING,
    (S.VERIFYING, A.VERIFY_FAIL): S.QUICK_HANDLING,
}
EXPECTED_REWORK_WITH_DEPARTMENT: dict[tuple[CaseState, Action], CaseState] = {
    (S.FEEDBACK, A.REWORK): S.HANDLING,
    (S.VERIFIED, A.REWORK): S.HANDLING,
    (S.VERIFYING, A.VERIFY_FAIL): S.HANDLING,
}

# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

ALL_PAIRS = list(itertools.product(CaseState, Action))
LEGAL = [pair for pair in ALL_PAIRS if pair in EXPECTED_TRANSITIONS]
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in EXPECTED_TRANSITIONS]
NON_CREATION = [a for a in Action if a not in INITIAL]


def ids(rows: Iterable[tuple[Any, ...]]) -> list[str]:
    """Readable test ids: ``handling-request_extension-department``."""
    return ["-".join(str(getattr(x, "value", x)) for x in row) for row in rows]


def target(state: CaseState, action: Action, department_id: int | None) -> CaseState:
    """Where a legal move leads (by the hand-written tables): back to the field supervisor for a
    rework of a case no department holds, else ``EXPECTED_TRANSITIONS``."""
    if department_id is None and (state, action) in EXPECTED_REWORK_WITHOUT_DEPARTMENT:
        return EXPECTED_REWORK_WITHOUT_DEPARTMENT[state, action]
    return EXPECTED_TRANSITIONS[state, action]


def first_state(action: Action) -> CaseState:
    """The first state (in table order) in which ``action`` is legal."""
    return next(s for (s, a) in EXPECTED_TRANSITIONS if a is action)


def case_in(state: CaseState, *, pending: bool = False, **overrides: Any) -> CaseFacts:
    """A plausible case in ``state``: department DEPT once dispatched, in grid GRID, with DEADLINE
    while the department's clock runs, and (if ``pending``) an extension request up to EXTENDED."""
    facts = CaseFacts(
        state=state,
        version=5,
        department_id=DEPT if state in _DEPARTMENT_STATES else None,
        grid_id=GRID,
        deadline=DEADLINE if state in DEADLINE_STATES else None,
        is_quick=state is S.QUICK_HANDLING,
        pending_extension_until=EXTENDED if pending else None,
    )
    return dataclasses.replace(facts, **overrides)


def case_for(state: CaseState, action: Action, **overrides: Any) -> CaseFacts:
    """``case_in`` with a pending extension when ``action`` needs one."""
    pending = action in (A.APPROVE_EXTENSION, A.DENY_EXTENSION)
    return case_in(state, pending=pending, **overrides)


def full_command(action: Action, **overrides: Any) -> Command:
    """``action`` carrying every argument any action may require, all valid."""
    cmd = Command(
        action,
        note=NOTE,
        department_id=DEPT,
        deadline=NEW_DEADLINE,
        extension_until=EXTENDED,
        reject_reason=RejectReason.DUPLICATE,
        duplicate_of=42,
        attachment_ids=PHOTOS,
    )
    return dataclasses.replace(cmd, **overrides)


def proper_command(case: CaseFacts, action: Action) -> Command:
    """``full_command`` fitted to an arbitrary case (an extension must pass its deadline)."""
    base = max(case.deadline or NOW, NOW)
    return full_command(action, extension_until=base + timedelta(days=1))


def attempt(actor: Actor, state: CaseState, action: Action, **cmd_overrides: Any) -> Outcome:
    """Try ``action`` as ``actor`` on the standard case in ``state`` (or create it)."""
    cmd = full_command(action, **cmd_overrides)
    if action in INITIAL:
        return create(actor, cmd, GRID, NOW)
    return apply(case_for(state, action), actor, cmd, NOW)


CASE_FIELDS = frozenset(f.name for f in dataclasses.fields(CaseFacts))


def fold(case: CaseFacts, outcome: Outcome) -> CaseFacts:
    """The case after ``outcome``: its changes written, the version bumped (as storage does)."""
    assert outcome.from_state is case.state
    facts = {k: v for k, v in outcome.changes.items() if k in CASE_FIELDS}
    return dataclasses.replace(case, **facts, version=case.version + 1)


@dataclasses.dataclass
class Journey:
    """A case followed through real moves: the facts, every column written, and the states seen."""

    case: CaseFacts
    row: dict[str, Any]
    trail: list[CaseState]

    @classmethod
    def start(cls, actor: Actor, action: Action, grid_id: int | None = GRID) -> Journey:
        out = create(actor, Command(action, attachment_ids=PHOTOS), grid_id, NOW)
        case = CaseFacts(
            state=out.to_state,
            version=1,
            department_id=None,
            grid_id=grid_id,
            is_quick=out.changes["is_quick"],
        )
        return cls(case, dict(out.changes), [out.to_state])

    def do(self, actor: Actor, action: Action, **args: Any) -> Journey:
        out = apply(self.case, actor, Command(action, **args), NOW)
        assert out.changes["state"] is out.to_state
        self.case = fold(self.case, out)
        self.row.update(out.changes)
        self.trail.append(out.to_state)
        return self


# The main-path steps, each as the role that takes it in practice.
def register(j: Journey) -> Journey:
    return j.do(SEAT, A.REGISTER)


def dispatch(j: Journey, department_id: int = DEPT) -> Journey:
    return j.do(DISPATCHER, A.DISPATCH, department_id=department_id, deadline=DEADLINE)


def accept(j: Journey) -> Journey:
    return j.do(DEPARTMENT, A.ACCEPT)


def feedback(j: Journey) -> Journey:
    return j.do(DEPARTMENT, A.FEEDBACK, note="已清理", attachment_ids=PHOTOS)


def request_verify(j: Journey) -> Journey:
    return j.do(SEAT, A.REQUEST_VERIFY)


def verify_pass(j: Journey) -> Journey:
    return j.do(SUPERVISOR, A.VERIFY_PASS, attachment_ids=PHOTOS)


def close(j: Journey) -> Journey:
    return j.do(SEAT, A.CLOSE)


#: How to reach each state by legal moves: (previous state, step).
ROUTE: dict[CaseState, tuple[CaseState, Callable[[Journey], Journey]]] = {
    S.REGISTERED: (S.REPORTED, register),
    S.CONFIRMING: (S.REPORTED, lambda j: j.do(SEAT, A.REQUEST_CONFIRM)),
    S.REJECTED: (
        S.REPORTED,
        lambda j: j.do(SEAT, A.REJECT, note="无效", reject_reason=RejectReason.INVALID),
    ),
    S.DISPATCHED: (S.REGISTERED, dispatch),
    S.RETURNED: (S.DISPATCHED, lambda j: j.do(DEPARTMENT, A.RETURN, note="非本部门职责")),
    S.HANDLING: (S.DISPATCHED, accept),
    S.DEFERRED: (S.HANDLING, lambda j: j.do(DISPATCHER, A.DEFER, note="需列入年度计划")),
    S.FEEDBACK: (S.HANDLING, feedback),
    S.VERIFYING: (S.FEEDBACK, request_verify),
    S.VERIFIED: (S.VERIFYING, verify_pass),
    S.CLOSED: (S.VERIFIED, close),
    S.VOIDED: (S.REPORTED, lambda j: j.do(SEAT, A.VOID, note="误报")),
}


def reach(state: CaseState) -> Journey:
    """A journey that has arrived in ``state`` through legal moves only."""
    if state is S.REPORTED:
        return Journey.start(SUPERVISOR, A.REPORT)
    if state is S.QUICK_HANDLING:
        return Journey.start(SUPERVISOR, A.QUICK_REPORT)
    previous, step = ROUTE[state]
    j = step(reach(previous))
    assert j.case.state is state
    return j


def accepts(case: CaseFacts, actor: Actor, action: Action) -> bool:
    """Whether ``apply`` takes ``action`` with proper arguments; a refusal must be a 403 or 409."""
    try:
        apply(case, actor, proper_command(case, action), NOW)
    except (Forbidden, IllegalTransition):
        return False
    return True


# --------------------------------------------------------------------------------------------------
# 1. The table: every state x every action
# --------------------------------------------------------------------------------------------------


class TestTransitionTable:
    def test_table_is_the_domain_workflow(self) -> None:
        table = dict(TRANSITIONS)
        missing = {k: v for k, v in EXPECTED_TRANSITIONS.items() if k not in table}
        extra = {k: v for k, v in table.items() if k not in EXPECTED_TRANSITIONS}
        wrong = {k: v for k, v in table.items() if k in EXPECTED_TRANSITIONS}
        wrong = {k: v for k, v in wrong.items() if v is not EXPECTED_TRANSITIONS[k]}
        assert (missing, extra, wrong) == ({}, {}, {})
        assert all(isinstance(to, CaseState) for to in TRANSITIONS.values())

    @pytest.mark.parametrize(("state", "action"), ALL_PAIRS, ids=ids(ALL_PAIRS))
    def test_every_state_and_action(self, state: CaseState, action: Action) -> None:
        case = case_for(state, action)
        snapshot = dataclasses.replace(case)
        if (state, action) in EXPECTED_TRANSITIONS:
            out = apply(case, ADMIN, full_command(action), NOW)
            assert out.from_state is state
            assert out.action is action
            assert out.to_state is EXPECTED_TRANSITIONS[state, action]
            assert out.changes["state"] is out.to_state
        else:
            with pytest.raises(IllegalTransition) as info:
                apply(case, ADMIN, full_command(action), NOW)
            assert isinstance(info.value, Conflict)
            assert info.value.code == "illegal_transition"
            assert info.value.details == {"state": state.value, "action": action.value}
        assert case == snapshot

    @pytest.mark.parametrize(("state", "action"), LEGAL, ids=ids(LEGAL))
    def test_every_legal_move_with_a_department(self, state: CaseState, action: Action) -> None:
        # A case a department holds follows the table, rework included (back to handling).
        case = case_for(state, action, department_id=DEPT)
        out = apply(case, ADMIN, full_command(action), NOW)
        assert out.to_state is EXPECTED_TRANSITIONS[state, action]
        assert out.to_state is EXPECTED_REWORK_WITH_DEPARTMENT.get((state, action), out.to_state)
        assert out.changes["state"] is out.to_state

    @pytest.mark.parametrize(("state", "action"), LEGAL, ids=ids(LEGAL))
    def test_every_legal_move_without_a_department(self, state: CaseState, action: Action) -> None:
        # A case no department holds: rework goes back to quick handling, every other move as in
        # the table. Judged on the department, not on the quick flag.
        for quick in (False, True):
            case = case_for(state, action, department_id=None, is_quick=quick)
            out = apply(case, ADMIN, full_command(action), NOW)
            expected = EXPECTED_REWORK_WITHOUT_DEPARTMENT.get(
                (state, action), EXPECTED_TRANSITIONS[state, action]
            )
            assert out.to_state is expected is target(state, action, None)
            assert out.changes["state"] is out.to_state

    def test_no_department_table_matches_hand_written_expectation(self) -> None:
        assert dict(NO_DEPARTMENT_TRANSITIONS) == EXPECTED_REWORK_WITHOUT_DEPARTMENT
        # It only overrides legal moves, each of which otherwise goes back to the department.
        for pair in EXPECTED_REWORK_WITHOUT_DEPARTMENT:
            assert EXPECTED_TRANSITIONS[pair] is EXPECTED_REWORK_WITH_DEPARTMENT[pair]

    @pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=ids(ILLEGAL))
    def test_illegal_move_is_refused_before_role_and_arguments(
        self, state: CaseState, action: Action
    ) -> None:
        # Even a viewer with an empty command is told the move is illegal, not forbidden/invalid.
        with pytest.raises(IllegalTransition):
            apply(case_in(state), VIEWER, Command(action), NOW)

    @pytest.mark.parametrize("state", list(CaseState), ids=ids((s,) for s in CaseState))
    @pytest.mark.parametrize("action", list(INITIAL), ids=ids((a,) for a in INITIAL))
    def test_apply_refuses_creation_actions(self, state: CaseState, action: Action) -> None:
        with pytest.raises(IllegalTransition):
            apply(case_in(state), ADMIN, full_command(action), NOW)

    @pytest.mark.parametrize(
        ("action", "state", "quick"),
        [(A.REPORT, S.REPORTED, False), (A.QUICK_REPORT, S.QUICK_HANDLING, True)],
        ids=["report", "quick_report"],
    )
    def test_create_accepts_creation_actions(
        self, action: Action, state: CaseState, quick: bool
    ) -> None:
        out = create(ADMIN, full_command(action), GRID, NOW)
        assert out.from_state is None
        assert out.to_state is state is INITIAL[action]
        assert out.action is action
        assert out.changes == {"state": state, "is_quick": quick}

    @pytest.mark.parametrize("action", NON_CREATION, ids=ids((a,) for a in NON_CREATION))
    def test_create_refuses_other_actions(self, action: Action) -> None:
        with pytest.raises(IllegalTransition):
            create(ADMIN, full_command(action), GRID, NOW)

    def test_terminal_states_have_no_moves(self) -> None:
        assert TERMINAL_STATES == EXPECTED_TERMINAL
        assert not [pair for pair in TRANSITIONS if pair[0] in EXPECTED_TERMINAL]
        assert set(CaseState) == EXPECTED_OPEN | EXPECTED_TERMINAL
        assert not EXPECTED_OPEN & EXPECTED_TERMINAL

    def test_every_open_state_can_be_voided(self) -> None:
        assert EXPECTED_OPEN == OPEN_STATES
        for state in OPEN_STATES:
            assert TRANSITIONS[state, A.VOID] is S.VOIDED

    def test_escalation_keeps_the_state(self) -> None:
        escalations = {s: to for (s, a), to in TRANSITIONS.items() if a is A.ESCALATE}
        assert set(escalations) == EXPECTED_ESCALATE_STATES
        assert all(s is to for s, to in escalations.items())

    def test_every_state_is_reachable_and_every_open_state_can_finish(self) -> None:
        moves = [*TRANSITIONS.items(), *NO_DEPARTMENT_TRANSITIONS.items()]
        reachable = set(INITIAL.values())
        frontier = list(reachable)
        while frontier:
            here = frontier.pop()
            for (s, _a), to in moves:
                if s is here and to not in reachable:
                    reachable.add(to)
                    frontier.append(to)
        assert reachable == set(CaseState)
        # Closing (not merely voiding) stays reachable from every open state.
        for start in OPEN_STATES:
            seen, frontier = {start}, [start]
            while frontier:
                here = frontier.pop()
                for (s, a), to in moves:
                    if s is here and a is not A.VOID and to not in seen:
                        seen.add(to)
                        frontier.append(to)
            assert S.CLOSED in seen, start

    def test_every_state_action_and_role_has_a_label(self) -> None:
        for item in [*CaseState, *Action, *Role]:
            assert label(item)
        # A state and an action may share a value ("feedback"): each keeps its own label.
        assert label(CaseState.FEEDBACK) == "待核查"
        assert label(Action.FEEDBACK) == "处置反馈"

    @pytest.mark.parametrize("department", [DEPT, None], ids=["department", "no-department"])
    @pytest.mark.parametrize(("state", "action"), LEGAL, ids=ids(LEGAL))
    def test_changes_are_case_columns(
        self, state: CaseState, action: Action, department: int | None
    ) -> None:
        case = case_for(state, action, department_id=department)
        out = apply(case, ADMIN, full_command(action), NOW)
        # Storage writes only these (anything else is refused there, after the move was judged).
        assert set(out.changes) <= MUTABLE_FIELDS <= set(CASE_COLUMNS)
        assert "version" not in out.changes  # storage bumps it

    def test_event_data_is_json_ready(self) -> None:
        out = apply(case_in(S.REGISTERED), DISPATCHER, full_command(A.DISPATCH), NOW)
        assert out.event_data["department_id"] == DEPT
        assert out.event_data["deadline"] == NEW_DEADLINE.isoformat()
        out = apply(case_in(S.REPORTED), SEAT, full_command(A.REJECT), NOW)
        assert out.event_data["reject_reason"] == "duplicate"
        assert out.event_data["duplicate_of"] == 42
        empty = apply(case_in(S.REPORTED), SEAT, Command(A.REGISTER), NOW)
        assert empty.event_data == {}

    @pytest.mark.parametrize(
        ("reason", "expected"),
        [
            (RejectReason.DUPLICATE, {"reject_reason": "duplicate", "duplicate_of": 9}),
            (RejectReason.INVALID, {"reject_reason": "invalid"}),
        ],
        ids=["duplicate", "invalid"],
    )
    def test_event_data_names_the_original_only_for_a_duplicate(
        self, reason: RejectReason, expected: dict[str, Any]
    ) -> None:
        cmd = Command(A.REJECT, note="不予立案", reject_reason=reason, duplicate_of=9)
        assert apply(case_in(S.REPORTED), SEAT, cmd, NOW).event_data == expected

    def test_event_data_ignores_a_stray_original(self) -> None:
        # An original case sent with anything but a duplicate rejection is not recorded.
        out = apply(case_in(S.REPORTED), SEAT, Command(A.REGISTER, duplicate_of=9), NOW)
        assert out.event_data == {}
        cmd = Command(A.ESCALATE, note="督办", duplicate_of=9)
        assert apply(case_in(S.HANDLING), SEAT, cmd, NOW).event_data == {}
        assert create(SEAT, Command(A.REPORT, duplicate_of=9), GRID, NOW).event_data == {}
        cmd = Command(A.DISPATCH, department_id=DEPT, deadline=NEW_DEADLINE, duplicate_of=9)
        assert apply(case_in(S.REGISTERED), DISPATCHER, cmd, NOW).event_data == {
            "department_id": DEPT,
            "deadline": NEW_DEADLINE.isoformat(),
        }


# --------------------------------------------------------------------------------------------------
# 2. Roles
# --------------------------------------------------------------------------------------------------

ROLE_CASES = [(s, a, r) for (s, a) in LEGAL for r in Role]
CREATE_ROLE_CASES = [(a, r) for a in INITIAL for r in Role]

#: Written from the domain description, independently of ACTION_ROLES: the non-admin roles that
#: take each action.
EXPECTED_ROLES: dict[Action, frozenset[Role]] = {
    A.REPORT: frozenset({Role.SEAT, Role.SUPERVISOR, Role.AGENT}),
    A.QUICK_REPORT: frozenset({Role.SUPERVISOR}),
    A.REGISTER: frozenset({Role.SEAT}),
    A.REJECT: frozenset({Role.SEAT}),
    A.REQUEST_CONFIRM: frozenset({Role.SEAT}),
    A.CONFIRM_PASS: frozenset({Role.SUPERVISOR}),
    A.CONFIRM_FAIL: frozenset({Role.SUPERVISOR}),
    A.REQUEST_VERIFY: frozenset({Role.SEAT}),
    A.CLOSE: frozenset({Role.SEAT}),
    A.REWORK: frozenset({Role.SEAT}),
    A.VOID: frozenset({Role.SEAT}),
    A.DISPATCH: frozenset({Role.DISPATCHER}),
    A.APPROVE_EXTENSION: frozenset({Role.DISPATCHER}),
    A.DENY_EXTENSION: frozenset({Role.DISPATCHER}),
    A.ACCEPT: frozenset({Role.DEPARTMENT}),
    A.RETURN: frozenset({Role.DEPARTMENT}),
    A.FEEDBACK: frozenset({Role.DEPARTMENT}),
    A.REQUEST_EXTENSION: frozenset({Role.DEPARTMENT}),
    A.VERIFY_PASS: frozenset({Role.SUPERVISOR}),
    A.VERIFY_FAIL: frozenset({Role.SUPERVISOR}),
    A.QUICK_COMPLETE: frozenset({Role.SUPERVISOR}),
    A.DEFER: frozenset({Role.DISPATCHER}),
    A.RESUME: frozenset({Role.DISPATCHER}),
    A.ESCALATE: frozenset({Role.SEAT, Role.DISPATCHER}),
    A.ADD_EVIDENCE: frozenset({Role.SEAT, Role.DISPATCHER, Role.SUPERVISOR, Role.AGENT}),
}
EXPECTED_ROLE_CASES = [(a, r) for a in EXPECTED_ROLES for r in Role]


class TestRoles:
    @pytest.mark.parametrize(("state", "action", "role"), ROLE_CASES, ids=ids(ROLE_CASES))
    def test_action_roles_on_every_legal_move(
        self, state: CaseState, action: Action, role: Role
    ) -> None:
        actor = IN_SCOPE[role]
        if role is Role.ADMIN or role in EXPECTED_ROLES[action]:
            assert attempt(actor, state, action).to_state is EXPECTED_TRANSITIONS[state, action]
        else:
            case = case_for(state, action)
            with pytest.raises(Forbidden) as info:
                apply(case, actor, full_command(action), NOW)
            assert info.value.code == "role_forbidden"
            assert info.value.details == {"action": action.value, "role": role.value}

    @pytest.mark.parametrize(("action", "role"), CREATE_ROLE_CASES, ids=ids(CREATE_ROLE_CASES))
    def test_action_roles_on_creation(self, action: Action, role: Role) -> None:
        if role is Role.ADMIN or role in EXPECTED_ROLES[action]:
            assert (
                create(IN_SCOPE[role], full_command(action), GRID, NOW).to_state is INITIAL[action]
            )
        else:
            with pytest.raises(Forbidden) as info:
                create(IN_SCOPE[role], full_command(action), GRID, NOW)
            assert info.value.code == "role_forbidden"

    def test_admin_may_take_every_action(self) -> None:
        assert set(EXPECTED_ROLES) == set(Action)
        assert {a: roles - {Role.ADMIN} for a, roles in ACTION_ROLES.items()} == EXPECTED_ROLES
        assert all(Role.ADMIN in roles for roles in ACTION_ROLES.values())

    @pytest.mark.parametrize(("action", "role"), EXPECTED_ROLE_CASES, ids=ids(EXPECTED_ROLE_CASES))
    def test_hand_written_expectation(self, action: Action, role: Role) -> None:
        expected = role is Role.ADMIN or role in EXPECTED_ROLES[action]
        state = S.REPORTED if action in INITIAL else first_state(action)
        try:
            attempt(IN_SCOPE[role], state, action)
        except Forbidden as e:
            assert not expected, f"{role} should be able to {action}: {e.code}"
            assert e.code == "role_forbidden"
        else:
            assert expected, f"{role} must not be able to {action}"

    def test_agent_can_only_report_and_add_evidence(self) -> None:
        can = {a for a in Action if Role.AGENT in ACTION_ROLES[a]}
        assert can == {A.REPORT, A.ADD_EVIDENCE}
        for state, action in LEGAL:
            if action is A.ADD_EVIDENCE:  # a call's recording onto the case it is about
                apply(case_for(state, action), AGENT, full_command(action), NOW)
                continue
            with pytest.raises(Forbidden):
                apply(case_for(state, action), AGENT, full_command(action), NOW)
        assert create(AGENT, Command(A.REPORT), None, NOW).to_state is S.REPORTED

    def test_viewer_can_do_nothing(self) -> None:
        assert not [a for a in Action if Role.VIEWER in ACTION_ROLES[a]]
        for state, action in LEGAL:
            with pytest.raises(Forbidden):
                apply(case_for(state, action), VIEWER, full_command(action), NOW)
        for action in INITIAL:
            with pytest.raises(Forbidden):
                create(VIEWER, full_command(action), GRID, NOW)

    def test_role_is_judged_before_arguments(self) -> None:
        with pytest.raises(Forbidden):
            apply(case_in(S.REPORTED), DISPATCHER, Command(A.REJECT), NOW)


# --------------------------------------------------------------------------------------------------
# 3. Scope: departments act on their own cases, supervisors in their own grids
# --------------------------------------------------------------------------------------------------

#: Hand-written: the department's own moves.
DEPARTMENT_MOVES = [
    (S.DISPATCHED, A.ACCEPT),
    (S.DISPATCHED, A.RETURN),
    (S.HANDLING, A.RETURN),
    (S.HANDLING, A.REQUEST_EXTENSION),
    (S.HANDLING, A.FEEDBACK),
]
#: Hand-written: the field supervisor's moves on a case in a grid.
SUPERVISOR_MOVES = [
    (S.CONFIRMING, A.CONFIRM_PASS),
    (S.CONFIRMING, A.CONFIRM_FAIL),
    (S.VERIFYING, A.VERIFY_PASS),
    (S.VERIFYING, A.VERIFY_FAIL),
    (S.QUICK_HANDLING, A.QUICK_COMPLETE),
    # 补充证据 in every open state, only in the supervisor's own grids
    *((s, A.ADD_EVIDENCE) for s in sorted(EXPECTED_OPEN)),
]


class TestDepartmentScope:
    def test_table_matches_hand_written_moves(self) -> None:
        assert {a for _s, a in DEPARTMENT_MOVES} == DEPARTMENT_SCOPED
        assert {p for p in LEGAL if p[1] in DEPARTMENT_SCOPED} == set(DEPARTMENT_MOVES)

    @pytest.mark.parametrize(("state", "action"), DEPARTMENT_MOVES, ids=ids(DEPARTMENT_MOVES))
    def test_own_department(self, state: CaseState, action: Action) -> None:
        out = apply(case_in(state), DEPARTMENT, full_command(action), NOW)
        assert out.to_state is EXPECTED_TRANSITIONS[state, action]

    @pytest.mark.parametrize(
        ("case_department", "actor"),
        [
            (OTHER_DEPT, DEPARTMENT),
            (DEPT, OTHER_DEPARTMENT),
            (None, DEPARTMENT),
            (DEPT, HOMELESS_DEPARTMENT),
        ],
        ids=[
            "other-department's-case",
            "other-department-user",
            "case-without-department",
            "user-without-department",
        ],
    )
    @pytest.mark.parametrize(("state", "action"), DEPARTMENT_MOVES, ids=ids(DEPARTMENT_MOVES))
    def test_not_own_department(
        self, state: CaseState, action: Action, case_department: int | None, actor: Actor
    ) -> None:
        case = case_in(state, department_id=case_department)
        with pytest.raises(Forbidden) as info:
            apply(case, actor, full_command(action), NOW)
        assert info.value.code == "out_of_department"
        assert case == case_in(state, department_id=case_department)

    @pytest.mark.parametrize(("state", "action"), DEPARTMENT_MOVES, ids=ids(DEPARTMENT_MOVES))
    def test_admin_is_not_department_scoped(self, state: CaseState, action: Action) -> None:
        apply(case_in(state, department_id=OTHER_DEPT), ADMIN, full_command(action), NOW)

    def test_dispatcher_is_not_department_scoped(self) -> None:
        case = case_in(S.HANDLING, pending=True, department_id=OTHER_DEPT)
        apply(case, DISPATCHER, full_command(A.APPROVE_EXTENSION), NOW)
        apply(case, DISPATCHER, full_command(A.DEFER), NOW)


class TestGridScope:
    def test_table_matches_hand_written_moves(self) -> None:
        assert {a for _s, a in SUPERVISOR_MOVES} | {A.REPORT, A.QUICK_REPORT} == GRID_SCOPED

    @pytest.mark.parametrize("grid", [GRID, GRID_2])
    @pytest.mark.parametrize(("state", "action"), SUPERVISOR_MOVES, ids=ids(SUPERVISOR_MOVES))
    def test_inside_own_grids(self, state: CaseState, action: Action, grid: int) -> None:
        out = apply(case_in(state, grid_id=grid), SUPERVISOR, full_command(action), NOW)
        assert out.to_state is EXPECTED_TRANSITIONS[state, action]

    @pytest.mark.parametrize("grid", [OTHER_GRID, None], ids=["other-grid", "no-grid"])
    @pytest.mark.parametrize(("state", "action"), SUPERVISOR_MOVES, ids=ids(SUPERVISOR_MOVES))
    def test_outside_own_grids(self, state: CaseState, action: Action, grid: int | None) -> None:
        case = case_in(state, grid_id=grid)
        with pytest.raises(Forbidden) as info:
            apply(case, SUPERVISOR, full_command(action), NOW)
        assert info.value.code == "out_of_grid"
        assert case == case_in(state, grid_id=grid)

    @pytest.mark.parametrize(("state", "action"), SUPERVISOR_MOVES, ids=ids(SUPERVISOR_MOVES))
    def test_other_supervisor(self, state: CaseState, action: Action) -> None:
        with pytest.raises(Forbidden) as info:
            apply(case_in(state), OTHER_SUPERVISOR, full_command(action), NOW)
        assert info.value.code == "out_of_grid"

    @pytest.mark.parametrize("action", [A.REPORT, A.QUICK_REPORT])
    def test_create_in_own_grid(self, action: Action) -> None:
        assert create(SUPERVISOR, full_command(action), GRID_2, NOW).to_state is INITIAL[action]

    @pytest.mark.parametrize("grid", [OTHER_GRID, None], ids=["other-grid", "no-grid"])
    @pytest.mark.parametrize("action", [A.REPORT, A.QUICK_REPORT])
    def test_create_outside_own_grids(self, action: Action, grid: int | None) -> None:
        with pytest.raises(Forbidden) as info:
            create(SUPERVISOR, full_command(action), grid, NOW)
        assert info.value.code == "out_of_grid"

    @pytest.mark.parametrize("actor", [SEAT, AGENT, ADMIN], ids=["seat", "agent", "admin"])
    @pytest.mark.parametrize(
        "grid", [GRID, OTHER_GRID, None], ids=["grid", "other-grid", "no-grid"]
    )
    def test_other_reporters_are_not_grid_scoped(self, actor: Actor, grid: int | None) -> None:
        assert create(actor, Command(A.REPORT), grid, NOW).to_state is S.REPORTED

    def test_seat_requests_verification_anywhere(self) -> None:
        apply(case_in(S.FEEDBACK, grid_id=OTHER_GRID), SEAT, Command(A.REQUEST_VERIFY), NOW)


# --------------------------------------------------------------------------------------------------
# 4. Guards on arguments, and what each move writes
# --------------------------------------------------------------------------------------------------

#: Hand-written: every refusal, detour and cancellation must say why.
EXPECTED_NOTE_ACTIONS = frozenset(
    {A.REJECT, A.RETURN, A.REQUEST_EXTENSION, A.DENY_EXTENSION, A.DEFER}
    | {A.CONFIRM_FAIL, A.VERIFY_FAIL, A.REWORK, A.ESCALATE, A.VOID}
)
#: Hand-written: the after-photo of the work (and the before-photo of a quick report).
EXPECTED_PHOTO_ACTIONS = frozenset({A.FEEDBACK, A.QUICK_REPORT, A.QUICK_COMPLETE, A.ADD_EVIDENCE})
NOTE_CASES = [(a, n) for a in sorted(EXPECTED_NOTE_ACTIONS) for n in BLANK_NOTES]
NO_NOTE_MOVES = [(s, a) for (s, a) in LEGAL if a not in EXPECTED_NOTE_ACTIONS]
NO_PHOTO_MOVES = [(s, a) for (s, a) in LEGAL if a not in EXPECTED_PHOTO_ACTIONS]
#: Hand-written: dispatch, rework (either way) and resumption restart the department's clock.
DEADLINE_ACTIONS = [A.DISPATCH, A.REWORK, A.VERIFY_FAIL, A.RESUME]
NO_DEADLINE_MOVES = [(s, a) for (s, a) in LEGAL if a not in DEADLINE_ACTIONS]
REWORK_MOVES = [(S.FEEDBACK, A.REWORK), (S.VERIFIED, A.REWORK), (S.VERIFYING, A.VERIFY_FAIL)]
ESCALATE_STATES = [s for (s, a) in LEGAL if a is A.ESCALATE]


def refused(
    exc: type[Exception], case: CaseFacts, actor: Actor, cmd: Command
) -> pytest.ExceptionInfo[Any]:
    """Assert ``apply`` refuses with ``exc`` and leaves ``case`` as it was."""
    snapshot = dataclasses.replace(case)
    with pytest.raises(exc) as info:
        apply(case, actor, cmd, NOW)
    assert case == snapshot
    return info


class TestNotesAndPhotos:
    def test_hand_written_note_actions(self) -> None:
        assert EXPECTED_NOTE_ACTIONS == NOTE_REQUIRED

    @pytest.mark.parametrize(("action", "note"), NOTE_CASES, ids=ids(NOTE_CASES))
    def test_note_required(self, action: Action, note: str) -> None:
        state = first_state(action)
        info = refused(
            ValidationFailed, case_for(state, action), ADMIN, full_command(action, note=note)
        )
        assert info.value.code == "note_required"
        assert info.value.details == {"field": "note"}

    @pytest.mark.parametrize(("state", "action"), NO_NOTE_MOVES, ids=ids(NO_NOTE_MOVES))
    def test_other_actions_need_no_note(self, state: CaseState, action: Action) -> None:
        apply(case_for(state, action), ADMIN, full_command(action, note=""), NOW)

    def test_hand_written_photo_actions(self) -> None:
        assert EXPECTED_PHOTO_ACTIONS == PHOTO_REQUIRED

    @pytest.mark.parametrize(
        ("state", "action"),
        [(S.HANDLING, A.FEEDBACK), (S.QUICK_HANDLING, A.QUICK_COMPLETE)],
        ids=["feedback", "quick_complete"],
    )
    def test_photo_required(self, state: CaseState, action: Action) -> None:
        info = refused(
            ValidationFailed, case_in(state), ADMIN, full_command(action, attachment_ids=())
        )
        assert info.value.code == "photo_required"

    def test_quick_report_needs_a_photo(self) -> None:
        with pytest.raises(ValidationFailed) as info:
            create(SUPERVISOR, full_command(A.QUICK_REPORT, attachment_ids=()), GRID, NOW)
        assert info.value.code == "photo_required"

    def test_plain_report_needs_no_photo(self) -> None:
        assert create(AGENT, Command(A.REPORT), None, NOW).to_state is S.REPORTED

    @pytest.mark.parametrize(("state", "action"), NO_PHOTO_MOVES, ids=ids(NO_PHOTO_MOVES))
    def test_other_actions_need_no_photo(self, state: CaseState, action: Action) -> None:
        apply(case_for(state, action), ADMIN, full_command(action, attachment_ids=()), NOW)


class TestDispatchAndDeadlines:
    def test_hand_written_deadline_restart(self) -> None:
        assert set(DEADLINE_ACTIONS) == DEADLINE_RESTART

    @pytest.mark.parametrize(("state", "action"), NO_DEADLINE_MOVES, ids=ids(NO_DEADLINE_MOVES))
    def test_other_actions_need_no_deadline(self, state: CaseState, action: Action) -> None:
        apply(case_for(state, action), ADMIN, full_command(action, deadline=None), NOW)

    def test_dispatch_needs_a_department(self) -> None:
        info = refused(
            ValidationFailed,
            case_in(S.REGISTERED),
            DISPATCHER,
            full_command(A.DISPATCH, department_id=None),
        )
        assert info.value.details == {"field": "department_id"}

    @pytest.mark.parametrize("deadline", [None, PAST, NOW], ids=["none", "past", "now"])
    @pytest.mark.parametrize("action", DEADLINE_ACTIONS, ids=ids((a,) for a in DEADLINE_ACTIONS))
    def test_deadline_must_be_in_the_future(
        self, action: Action, deadline: datetime | None
    ) -> None:
        case = case_in(first_state(action))
        info = refused(ValidationFailed, case, ADMIN, full_command(action, deadline=deadline))
        assert info.value.details == {"field": "deadline"}

    @pytest.mark.parametrize("state", [S.REGISTERED, S.RETURNED])
    def test_dispatch_writes_department_and_deadline(self, state: CaseState) -> None:
        out = apply(
            case_in(state), DISPATCHER, full_command(A.DISPATCH, department_id=OTHER_DEPT), NOW
        )
        assert out.to_state is S.DISPATCHED
        assert out.changes["department_id"] == OTHER_DEPT
        assert out.changes["deadline"] == NEW_DEADLINE
        assert out.changes["dispatched_at"] == NOW
        assert out.changes["pending_extension_until"] is None

    @pytest.mark.parametrize("state", [S.DISPATCHED, S.HANDLING])
    def test_return_clears_department_and_deadline(self, state: CaseState) -> None:
        out = apply(
            case_in(state, pending=state is S.HANDLING), DEPARTMENT, full_command(A.RETURN), NOW
        )
        assert out.to_state is S.RETURNED
        assert out.changes["department_id"] is None
        assert out.changes["deadline"] is None
        assert out.changes["pending_extension_until"] is None

    def test_defer_stops_the_clock_and_resume_restarts_it(self) -> None:
        out = apply(case_in(S.HANDLING, pending=True), DISPATCHER, full_command(A.DEFER), NOW)
        assert out.to_state is S.DEFERRED
        assert out.changes["deadline"] is None
        assert out.changes["pending_extension_until"] is None
        out = apply(case_in(S.DEFERRED), DISPATCHER, full_command(A.RESUME), NOW)
        assert out.to_state is S.HANDLING
        assert out.changes["deadline"] == NEW_DEADLINE

    @pytest.mark.parametrize(
        ("state", "action", "column"),
        [
            (S.REPORTED, A.REGISTER, "registered_at"),
            (S.REGISTERED, A.DISPATCH, "dispatched_at"),
            (S.DISPATCHED, A.ACCEPT, "accepted_at"),
            (S.HANDLING, A.FEEDBACK, "handled_at"),
            (S.QUICK_HANDLING, A.QUICK_COMPLETE, "handled_at"),
            (S.VERIFYING, A.VERIFY_PASS, "verified_at"),
            (S.VERIFIED, A.CLOSE, "closed_at"),
            (S.REPORTED, A.REJECT, "closed_at"),
            (S.HANDLING, A.VOID, "closed_at"),
        ],
        ids=lambda x: str(getattr(x, "value", x)),
    )
    def test_timestamps(self, state: CaseState, action: Action, column: str) -> None:
        assert apply(case_in(state), ADMIN, full_command(action), NOW).changes[column] == NOW


#: Hand-written: the sources each reporting role may use. A seat takes video patrols, the public,
#: sensors and calls; a field supervisor reports what they find; a hotline agent only calls.
EXPECTED_SOURCES: dict[Role, frozenset[Source]] = {
    Role.ADMIN: frozenset(Source),
    Role.SEAT: frozenset({Source.VIDEO, Source.PUBLIC, Source.SENSOR, Source.HOTLINE}),
    Role.SUPERVISOR: frozenset({Source.SUPERVISOR}),
    Role.AGENT: frozenset({Source.HOTLINE}),
}
SOURCE_CASES = [(r, src) for r in Role for src in Source]


class TestSources:
    def test_the_five_sources(self) -> None:
        assert [s.value for s in SOURCES] == ["supervisor", "hotline", "video", "sensor", "public"]
        assert {label(s) for s in Source} == {
            "监督员上报",
            "12319热线",
            "视频巡查",
            "传感器",
            "公众上报",
        }

    def test_located_sources(self) -> None:
        # A supervisor stands at the spot and a camera looks at it: both know where it is.
        assert {Source.SUPERVISOR, Source.VIDEO} == LOCATED_SOURCES

    def test_table_matches_hand_written(self) -> None:
        assert dict(SOURCE_ROLES) == EXPECTED_SOURCES

    @pytest.mark.parametrize(("role", "source"), SOURCE_CASES, ids=ids(SOURCE_CASES))
    def test_who_reports_from_which_source(self, role: Role, source: Source) -> None:
        # Roles that do not report are not judged by source (the action's role check refuses them).
        expected = role not in EXPECTED_SOURCES or source in EXPECTED_SOURCES[role]
        assert may_report_from(role, source) is expected
        if expected:
            check_source(role, source)
        else:
            with pytest.raises(Forbidden) as info:
                check_source(role, source)
            assert info.value.code == "source_forbidden"
            assert info.value.details == {"source": source.value}


class TestReject:
    def test_reason_required(self) -> None:
        info = refused(
            ValidationFailed, case_in(S.REPORTED), SEAT, full_command(A.REJECT, reject_reason=None)
        )
        assert info.value.details == {"field": "reject_reason"}

    def test_duplicate_needs_the_original(self) -> None:
        cmd = full_command(A.REJECT, reject_reason=RejectReason.DUPLICATE, duplicate_of=None)
        info = refused(ValidationFailed, case_in(S.REPORTED), SEAT, cmd)
        assert info.value.details == {"field": "duplicate_of"}

    def test_duplicate(self) -> None:
        out = apply(case_in(S.REPORTED), SEAT, full_command(A.REJECT, duplicate_of=9), NOW)
        assert out.to_state is S.REJECTED
        assert out.changes["reject_reason"] is RejectReason.DUPLICATE
        assert out.changes["duplicate_of"] == 9

    def test_invalid_ignores_a_stray_original(self) -> None:
        cmd = full_command(A.REJECT, reject_reason=RejectReason.INVALID, duplicate_of=9)
        out = apply(case_in(S.REPORTED), SEAT, cmd, NOW)
        assert out.changes["reject_reason"] is RejectReason.INVALID
        assert "duplicate_of" not in out.changes
        assert "duplicate_of" not in out.event_data
        assert out.event_data["reject_reason"] == "invalid"

    def test_duplicate_event_names_the_original(self) -> None:
        cmd = full_command(A.REJECT, reject_reason=RejectReason.DUPLICATE, duplicate_of=9)
        out = apply(case_in(S.REPORTED), SEAT, cmd, NOW)
        assert out.event_data["duplicate_of"] == 9
        assert out.event_data["reject_reason"] == "duplicate"


class TestExtension:
    def test_request(self) -> None:
        out = apply(case_in(S.HANDLING), DEPARTMENT, full_command(A.REQUEST_EXTENSION), NOW)
        assert out.to_state is S.HANDLING
        assert out.changes == {"state": S.HANDLING, "pending_extension_until": EXTENDED}

    def test_request_while_one_is_pending(self) -> None:
        info = refused(
            IllegalTransition,
            case_in(S.HANDLING, pending=True),
            DEPARTMENT,
            full_command(A.REQUEST_EXTENSION, extension_until=EXTENDED + timedelta(days=1)),
        )
        assert info.value.code == "extension_pending"

    @pytest.mark.parametrize(
        "until",
        [None, PAST, NOW, DEADLINE - timedelta(hours=1), DEADLINE],
        ids=["none", "past", "now", "before-deadline", "at-deadline"],
    )
    def test_request_must_pass_now_and_the_deadline(self, until: datetime | None) -> None:
        cmd = full_command(A.REQUEST_EXTENSION, extension_until=until)
        info = refused(ValidationFailed, case_in(S.HANDLING), DEPARTMENT, cmd)
        assert info.value.details == {"field": "extension_until"}

    @pytest.mark.parametrize("action", [A.APPROVE_EXTENSION, A.DENY_EXTENSION])
    def test_decide_without_a_request(self, action: Action) -> None:
        info = refused(IllegalTransition, case_in(S.HANDLING), DISPATCHER, full_command(action))
        assert info.value.code == "no_pending_extension"

    def test_approve(self) -> None:
        case = case_in(S.HANDLING, pending=True, extension_count=1)
        out = apply(case, DISPATCHER, Command(A.APPROVE_EXTENSION), NOW)
        assert out.to_state is S.HANDLING
        assert out.changes["deadline"] == EXTENDED
        assert out.changes["extension_count"] == 2
        assert out.changes["pending_extension_until"] is None

    def test_deny(self) -> None:
        case = case_in(S.HANDLING, pending=True, extension_count=1)
        out = apply(case, DISPATCHER, Command(A.DENY_EXTENSION, note="理由不充分"), NOW)
        assert out.changes == {"state": S.HANDLING, "pending_extension_until": None}

    @pytest.mark.parametrize(
        "until",
        [PAST, NOW - timedelta(seconds=1), NOW],
        ids=["an-hour-ago", "a-second-ago", "now"],
    )
    @pytest.mark.parametrize("actor", [DISPATCHER, ADMIN], ids=["dispatcher", "admin"])
    def test_approve_an_expired_request(self, actor: Actor, until: datetime) -> None:
        # The requested time is not after now: approving it would set a deadline already passed.
        case = case_in(S.HANDLING, pending_extension_until=until, extension_count=1)
        info = refused(ValidationFailed, case, actor, Command(A.APPROVE_EXTENSION))
        assert info.value.code == "extension_expired"
        # The way out: deny it (the department may then ask again).
        out = apply(case, actor, Command(A.DENY_EXTENSION, note="已过期"), NOW)
        assert out.changes == {"state": S.HANDLING, "pending_extension_until": None}

    def test_approve_a_request_just_in_time(self) -> None:
        until = NOW + timedelta(seconds=1)
        case = case_in(S.HANDLING, pending_extension_until=until)
        out = apply(case, DISPATCHER, Command(A.APPROVE_EXTENSION), NOW)
        assert out.changes == {
            "state": S.HANDLING,
            "pending_extension_until": None,
            "deadline": until,
            "extension_count": 1,
        }

    def test_expiry_is_judged_at_the_time_of_approval(self) -> None:
        case = case_in(S.HANDLING, pending=True)  # asks for EXTENDED
        later = EXTENDED + timedelta(minutes=1)
        with pytest.raises(ValidationFailed) as info:
            apply(case, DISPATCHER, Command(A.APPROVE_EXTENSION), later)
        assert info.value.code == "extension_expired"
        with pytest.raises(ValidationFailed):
            apply(case, DISPATCHER, Command(A.APPROVE_EXTENSION), EXTENDED)
        before = EXTENDED - timedelta(minutes=1)
        out = apply(case, DISPATCHER, Command(A.APPROVE_EXTENSION), before)
        assert out.changes["deadline"] == EXTENDED

    def test_no_request_is_judged_before_expiry(self) -> None:
        info = refused(
            IllegalTransition, case_in(S.HANDLING), DISPATCHER, Command(A.APPROVE_EXTENSION)
        )
        assert info.value.code == "no_pending_extension"

    def test_role_is_judged_before_expiry(self) -> None:
        case = case_in(S.HANDLING, pending_extension_until=PAST)
        info = refused(Forbidden, case, DEPARTMENT, Command(A.APPROVE_EXTENSION))
        assert info.value.code == "role_forbidden"

    @pytest.mark.parametrize(
        ("state", "action", "actor"),
        [(S.HANDLING, A.FEEDBACK, DEPARTMENT), (S.QUICK_HANDLING, A.QUICK_COMPLETE, SUPERVISOR)],
        ids=["feedback", "quick_complete"],
    )
    def test_finishing_the_work_withdraws_a_pending_request(
        self, state: CaseState, action: Action, actor: Actor
    ) -> None:
        case = case_in(state, pending=True)
        out = apply(case, actor, Command(action, attachment_ids=PHOTOS), NOW)
        assert out.changes == {
            "state": S.FEEDBACK,
            "handled_at": NOW,
            "pending_extension_until": None,
        }


class TestVoid:
    @pytest.mark.parametrize("pending", [True, False], ids=["pending", "no-request"])
    @pytest.mark.parametrize("state", sorted(EXPECTED_OPEN), ids=str)
    def test_void_closes_and_clears_a_pending_extension(
        self, state: CaseState, pending: bool
    ) -> None:
        case = case_in(state, pending=pending)
        out = apply(case, SEAT, Command(A.VOID, note="误报"), NOW)
        assert out.to_state is S.VOIDED
        assert out.changes == {
            "state": S.VOIDED,
            "closed_at": NOW,
            "pending_extension_until": None,
        }

    def test_voided_case_keeps_no_open_request(self) -> None:
        j = reach(S.HANDLING)
        j.do(DEPARTMENT, A.REQUEST_EXTENSION, note="材料未到", extension_until=EXTENDED)
        assert A.APPROVE_EXTENSION in allowed_actions(j.case, DISPATCHER)
        j.do(SEAT, A.VOID, note="重复录入")
        assert (j.case.state, j.case.pending_extension_until) == (S.VOIDED, None)
        assert j.row["pending_extension_until"] is None
        assert allowed_actions(j.case, DISPATCHER) == []


class TestCounters:
    @pytest.mark.parametrize(("state", "action"), REWORK_MOVES, ids=ids(REWORK_MOVES))
    def test_rework_is_counted(self, state: CaseState, action: Action) -> None:
        out = apply(case_in(state, rework_count=1), ADMIN, full_command(action), NOW)
        assert out.to_state is S.HANDLING
        assert out.changes["rework_count"] == 2
        assert out.changes["deadline"] == NEW_DEADLINE
        assert out.changes == {"state": S.HANDLING, "deadline": NEW_DEADLINE, "rework_count": 2}

    def test_hand_written_rework_moves(self) -> None:
        assert set(REWORK_MOVES) == set(EXPECTED_REWORK_WITHOUT_DEPARTMENT)
        assert set(REWORK_MOVES) == set(EXPECTED_REWORK_WITH_DEPARTMENT)

    @pytest.mark.parametrize("quick", [True, False], ids=["quick", "not-quick"])
    @pytest.mark.parametrize(("state", "action"), REWORK_MOVES, ids=ids(REWORK_MOVES))
    def test_rework_without_a_department_goes_back_to_quick_handling(
        self, state: CaseState, action: Action, quick: bool
    ) -> None:
        # No department to send it to: back to the field supervisor, with no department deadline.
        case = case_in(state, department_id=None, is_quick=quick, rework_count=1)
        out = apply(case, ADMIN, full_command(action), NOW)
        assert out.from_state is state
        assert out.to_state is S.QUICK_HANDLING
        assert out.changes == {"state": S.QUICK_HANDLING, "deadline": None, "rework_count": 2}

    @pytest.mark.parametrize("quick", [True, False], ids=["quick", "not-quick"])
    @pytest.mark.parametrize(("state", "action"), REWORK_MOVES, ids=ids(REWORK_MOVES))
    def test_rework_with_a_department_goes_back_to_handling(
        self, state: CaseState, action: Action, quick: bool
    ) -> None:
        case = case_in(state, department_id=OTHER_DEPT, is_quick=quick, rework_count=0)
        out = apply(case, ADMIN, full_command(action), NOW)
        assert out.to_state is S.HANDLING
        assert out.changes == {"state": S.HANDLING, "deadline": NEW_DEADLINE, "rework_count": 1}

    @pytest.mark.parametrize("department", [DEPT, None], ids=["department", "no-department"])
    def test_quick_rework_still_checks_the_rework_guards(self, department: int | None) -> None:
        case = case_in(S.FEEDBACK, department_id=department)
        info = refused(ValidationFailed, case, SEAT, full_command(A.REWORK, note=" "))
        assert info.value.code == "note_required"
        info = refused(Forbidden, case, DISPATCHER, full_command(A.REWORK))
        assert info.value.code == "role_forbidden"

    def test_escalate_states_match_hand_written(self) -> None:
        assert set(ESCALATE_STATES) == EXPECTED_ESCALATE_STATES

    @pytest.mark.parametrize(
        "actor", [SEAT, DISPATCHER, ADMIN], ids=["seat", "dispatcher", "admin"]
    )
    @pytest.mark.parametrize("state", ESCALATE_STATES, ids=ids((s,) for s in ESCALATE_STATES))
    def test_escalate_counts_and_keeps_the_state(self, state: CaseState, actor: Actor) -> None:
        out = apply(case_in(state, escalation_count=2), actor, full_command(A.ESCALATE), NOW)
        assert out.from_state is out.to_state is state
        assert out.changes == {"state": state, "escalation_count": 3}

    @pytest.mark.parametrize(
        "actor", [DEPARTMENT, SUPERVISOR, AGENT, VIEWER], ids=lambda a: a.role.value
    )
    @pytest.mark.parametrize("state", sorted(EXPECTED_ESCALATE_STATES), ids=str)
    def test_only_seat_and_dispatcher_escalate(self, state: CaseState, actor: Actor) -> None:
        info = refused(Forbidden, case_in(state), actor, full_command(A.ESCALATE))
        assert info.value.code == "role_forbidden"

    @pytest.mark.parametrize("state", sorted(TERMINAL_STATES), ids=str)
    def test_no_escalation_once_finished(self, state: CaseState) -> None:
        refused(IllegalTransition, case_in(state), SEAT, full_command(A.ESCALATE))

    @pytest.mark.parametrize(("state", "action"), LEGAL, ids=ids(LEGAL))
    def test_only_their_own_moves_touch_the_counters(
        self, state: CaseState, action: Action
    ) -> None:
        out = apply(case_for(state, action), ADMIN, full_command(action), NOW)
        assert ("rework_count" in out.changes) == (action in (A.REWORK, A.VERIFY_FAIL))
        assert ("escalation_count" in out.changes) == (action is A.ESCALATE)
        assert ("extension_count" in out.changes) == (action is A.APPROVE_EXTENSION)


# --------------------------------------------------------------------------------------------------
# 5. Whole journeys
# --------------------------------------------------------------------------------------------------


class TestConfirmation:
    """核实: a report sent to the grid's supervisor before the seat decides on it."""

    def public_report(self, grid_id: int | None = GRID) -> Journey:
        return Journey.start(SEAT, A.REPORT, grid_id=grid_id)

    def test_confirmed_then_registered(self) -> None:
        j = self.public_report().do(SEAT, A.REQUEST_CONFIRM)
        out = apply(j.case, SUPERVISOR, Command(A.CONFIRM_PASS, attachment_ids=PHOTOS), NOW)
        assert (out.from_state, out.to_state) == (S.CONFIRMING, S.REPORTED)
        assert out.event_data == {"confirmed": True}
        assert dict(out.changes) == {"state": S.REPORTED}  # no column but the state
        register(j.do(SUPERVISOR, A.CONFIRM_PASS))
        assert j.trail == [S.REPORTED, S.CONFIRMING, S.REPORTED, S.REGISTERED]
        assert j.row["registered_at"] == NOW

    def test_a_photo_is_welcome_not_required(self) -> None:
        j = self.public_report().do(SEAT, A.REQUEST_CONFIRM)
        assert apply(j.case, SUPERVISOR, Command(A.CONFIRM_PASS), NOW).to_state is S.REPORTED

    def test_not_confirmed_needs_a_note_then_rejected(self) -> None:
        j = self.public_report().do(SEAT, A.REQUEST_CONFIRM)
        e = refused(ValidationFailed, j.case, SUPERVISOR, Command(A.CONFIRM_FAIL, note="  "))
        assert e.value.code == "note_required"
        out = apply(j.case, SUPERVISOR, Command(A.CONFIRM_FAIL, note="现场未发现"), NOW)
        assert out.event_data == {"confirmed": False}
        j.do(SUPERVISOR, A.CONFIRM_FAIL, note="现场未发现")
        j.do(SEAT, A.REJECT, note="核实不属实", reject_reason=RejectReason.INVALID)
        assert j.trail == [S.REPORTED, S.CONFIRMING, S.REPORTED, S.REJECTED]

    def test_sent_again_after_an_answer(self) -> None:
        j = self.public_report().do(SEAT, A.REQUEST_CONFIRM)
        j.do(SUPERVISOR, A.CONFIRM_FAIL, note="未找到").do(SEAT, A.REQUEST_CONFIRM)
        assert j.case.state is S.CONFIRMING

    def test_the_seat_waits_for_the_answer(self) -> None:
        case = case_in(S.CONFIRMING)
        for action in (A.REGISTER, A.REJECT, A.REQUEST_CONFIRM):
            refused(IllegalTransition, case, SEAT, full_command(action))

    def test_only_the_grids_supervisor_answers(self) -> None:
        case = case_in(S.CONFIRMING)
        for action in (A.CONFIRM_PASS, A.CONFIRM_FAIL):
            e = refused(Forbidden, case, OTHER_SUPERVISOR, full_command(action))
            assert e.value.code == "out_of_grid"
            e = refused(Forbidden, case, SEAT, full_command(action))
            assert e.value.code == "role_forbidden"
        assert allowed_actions(case, OTHER_SUPERVISOR) == []

    def test_a_case_without_a_grid_cannot_be_sent(self) -> None:
        case = self.public_report(grid_id=None).case
        e = refused(IllegalTransition, case, SEAT, Command(A.REQUEST_CONFIRM))
        assert e.value.code == "no_grid"
        assert A.REQUEST_CONFIRM not in allowed_actions(case, SEAT)
        assert A.REQUEST_CONFIRM not in allowed_actions(case, ADMIN)
        assert A.REGISTER in allowed_actions(case, SEAT)

    def test_voided_or_escalated_while_confirming(self) -> None:
        j = self.public_report().do(SEAT, A.REQUEST_CONFIRM)
        j.do(SEAT, A.ESCALATE, note="请尽快核实")
        assert (j.case.state, j.case.escalation_count) == (S.CONFIRMING, 1)
        j.do(SUPERVISOR, A.ADD_EVIDENCE, attachment_ids=PHOTOS)
        j.do(SEAT, A.VOID, note="重复来电")
        assert j.case.state is S.VOIDED

    def test_labels(self) -> None:
        assert label(S.CONFIRMING) == "核实中"
        assert [label(a) for a in (A.REQUEST_CONFIRM, A.CONFIRM_PASS, A.CONFIRM_FAIL)] == [
            "发送核实",
            "核实属实",
            "核实不属实",
        ]


class TestJourneys:
    def test_standard_six_stages(self) -> None:
        j = close(
            verify_pass(request_verify(feedback(accept(dispatch(register(reach(S.REPORTED)))))))
        )
        assert j.trail == [
            S.REPORTED,
            S.REGISTERED,
            S.DISPATCHED,
            S.HANDLING,
            S.FEEDBACK,
            S.VERIFYING,
            S.VERIFIED,
            S.CLOSED,
        ]
        assert j.case.version == 8
        assert j.case.department_id == DEPT
        assert j.case.deadline == DEADLINE
        assert not j.case.is_quick
        assert (j.case.rework_count, j.case.extension_count, j.case.escalation_count) == (0, 0, 0)
        for column in ("registered_at", "dispatched_at", "accepted_at", "handled_at"):
            assert j.row[column] == NOW
        assert j.row["verified_at"] == j.row["closed_at"] == NOW

    def test_reject_as_duplicate(self) -> None:
        j = Journey.start(AGENT, A.REPORT, grid_id=None)
        j.do(
            SEAT,
            A.REJECT,
            note="与 42 号重复",
            reject_reason=RejectReason.DUPLICATE,
            duplicate_of=42,
        )
        assert j.trail == [S.REPORTED, S.REJECTED]
        assert j.row["reject_reason"] is RejectReason.DUPLICATE
        assert j.row["duplicate_of"] == 42
        assert j.row["closed_at"] == NOW

    def test_return_then_redispatch(self) -> None:
        j = dispatch(register(reach(S.REPORTED)), department_id=OTHER_DEPT)
        with pytest.raises(Forbidden):
            accept(j)  # DEPARTMENT is not OTHER_DEPT
        j.do(OTHER_DEPARTMENT, A.RETURN, note="非本部门职责")
        assert (j.case.state, j.case.department_id, j.case.deadline) == (S.RETURNED, None, None)
        assert allowed_actions(j.case, OTHER_DEPARTMENT) == []
        accept(dispatch(j, department_id=DEPT))
        assert j.trail[-4:] == [S.DISPATCHED, S.RETURNED, S.DISPATCHED, S.HANDLING]
        assert j.case.department_id == DEPT

    def test_rework_twice_then_close(self) -> None:
        j = request_verify(feedback(reach(S.HANDLING)))
        j.do(
            SUPERVISOR, A.VERIFY_FAIL, note="仍有垃圾", deadline=NEW_DEADLINE, attachment_ids=PHOTOS
        )
        assert (j.case.state, j.case.rework_count, j.case.deadline) == (S.HANDLING, 1, NEW_DEADLINE)
        feedback(j).do(SEAT, A.REWORK, note="照片不清", deadline=NEW_DEADLINE)
        assert (j.case.state, j.case.rework_count) == (S.HANDLING, 2)
        close(verify_pass(request_verify(feedback(j))))
        assert j.case.state is S.CLOSED
        assert j.case.rework_count == 2

    def test_rework_after_verification(self) -> None:
        j = reach(S.VERIFIED).do(SEAT, A.REWORK, note="复核不通过", deadline=NEW_DEADLINE)
        assert (j.case.state, j.case.rework_count) == (S.HANDLING, 1)

    def test_department_case_rework_goes_back_to_the_department(self) -> None:
        # Every rework of a dispatched case lands in handling with the same department.
        j = feedback(reach(S.HANDLING))
        j.do(SEAT, A.REWORK, note="照片不清", deadline=NEW_DEADLINE)
        assert (j.case.state, j.case.department_id, j.case.deadline) == (
            S.HANDLING,
            DEPT,
            NEW_DEADLINE,
        )
        assert A.FEEDBACK in allowed_actions(j.case, DEPARTMENT)
        assert allowed_actions(j.case, SUPERVISOR) == [A.ADD_EVIDENCE]
        later = NEW_DEADLINE + timedelta(days=1)
        request_verify(feedback(j)).do(
            SUPERVISOR, A.VERIFY_FAIL, note="仍有垃圾", deadline=later, attachment_ids=PHOTOS
        )
        assert (j.case.state, j.case.department_id, j.case.deadline) == (S.HANDLING, DEPT, later)
        verify_pass(request_verify(feedback(j))).do(
            SEAT, A.REWORK, note="复核不通过", deadline=NEW_DEADLINE
        )
        assert (j.case.state, j.case.department_id, j.case.deadline) == (
            S.HANDLING,
            DEPT,
            NEW_DEADLINE,
        )
        assert j.case.rework_count == 3
        close(verify_pass(request_verify(feedback(j))))
        assert j.trail[3:] == [
            S.HANDLING,
            S.FEEDBACK,
            S.HANDLING,
            S.FEEDBACK,
            S.VERIFYING,
            S.HANDLING,
            S.FEEDBACK,
            S.VERIFYING,
            S.VERIFIED,
            S.HANDLING,
            S.FEEDBACK,
            S.VERIFYING,
            S.VERIFIED,
            S.CLOSED,
        ]
        assert not j.case.is_quick

    def test_quick_case_rework_goes_back_to_the_supervisor(self) -> None:
        # A quick case has no department: each rework returns it to the field supervisor of its
        # grid, who fixes it again; nobody else can complete it.
        j = Journey.start(SUPERVISOR, A.QUICK_REPORT, grid_id=GRID_2)
        j.do(SUPERVISOR, A.QUICK_COMPLETE, attachment_ids=PHOTOS)
        j.do(SEAT, A.REWORK, note="照片不清", deadline=NEW_DEADLINE)
        assert j.case.state is S.QUICK_HANDLING
        assert (j.case.department_id, j.case.deadline, j.case.rework_count) == (None, None, 1)
        assert j.case.is_quick
        assert allowed_actions(j.case, SUPERVISOR) == [A.QUICK_COMPLETE, A.ADD_EVIDENCE]
        assert allowed_actions(j.case, OTHER_SUPERVISOR) == []
        assert allowed_actions(j.case, DEPARTMENT) == []
        with pytest.raises(Forbidden) as info:
            apply(j.case, OTHER_SUPERVISOR, Command(A.QUICK_COMPLETE, attachment_ids=PHOTOS), NOW)
        assert info.value.code == "out_of_grid"
        with pytest.raises(IllegalTransition):
            apply(j.case, DEPARTMENT, Command(A.FEEDBACK, attachment_ids=PHOTOS), NOW)

        # Completed again, then failed on verification: back to the supervisor once more.
        j.do(SUPERVISOR, A.QUICK_COMPLETE, attachment_ids=PHOTOS)
        request_verify(j).do(
            SUPERVISOR, A.VERIFY_FAIL, note="仍有垃圾", deadline=NEW_DEADLINE, attachment_ids=PHOTOS
        )
        assert (j.case.state, j.case.deadline, j.case.rework_count) == (S.QUICK_HANDLING, None, 2)

        # Completed again and verified, then reworked by the seat: still the supervisor's.
        j.do(SUPERVISOR, A.QUICK_COMPLETE, attachment_ids=PHOTOS)
        verify_pass(request_verify(j)).do(SEAT, A.REWORK, note="复核不通过", deadline=NEW_DEADLINE)
        assert (j.case.state, j.case.deadline, j.case.rework_count) == (S.QUICK_HANDLING, None, 3)

        close(
            verify_pass(request_verify(j.do(SUPERVISOR, A.QUICK_COMPLETE, attachment_ids=PHOTOS)))
        )
        assert j.trail == [
            S.QUICK_HANDLING,
            S.FEEDBACK,
            S.QUICK_HANDLING,
            S.FEEDBACK,
            S.VERIFYING,
            S.QUICK_HANDLING,
            S.FEEDBACK,
            S.VERIFYING,
            S.VERIFIED,
            S.QUICK_HANDLING,
            S.FEEDBACK,
            S.VERIFYING,
            S.VERIFIED,
            S.CLOSED,
        ]
        assert (j.case.department_id, j.case.rework_count, j.case.is_quick) == (None, 3, True)
        assert j.case.version == len(j.trail)

    def test_quick_case_escalated_while_the_supervisor_works(self) -> None:
        j = reach(S.QUICK_HANDLING)
        j.do(SEAT, A.ESCALATE, note="尽快处置").do(DISPATCHER, A.ESCALATE, note="再次督办")
        assert (j.case.state, j.case.escalation_count) == (S.QUICK_HANDLING, 2)
        j.do(SUPERVISOR, A.QUICK_COMPLETE, attachment_ids=PHOTOS)
        assert j.case.state is S.FEEDBACK

    def test_quick_handling(self) -> None:
        j = reach(S.QUICK_HANDLING)
        assert j.case.is_quick
        j.do(SUPERVISOR, A.QUICK_COMPLETE, attachment_ids=PHOTOS)
        close(verify_pass(request_verify(j)))
        assert j.trail == [S.QUICK_HANDLING, S.FEEDBACK, S.VERIFYING, S.VERIFIED, S.CLOSED]
        assert j.case.is_quick
        assert j.case.department_id is None
        assert j.row["handled_at"] == NOW

    def test_defer_and_resume(self) -> None:
        j = reach(S.DEFERRED)
        assert j.case.deadline is None
        assert allowed_actions(j.case, DEPARTMENT) == []
        j.do(DISPATCHER, A.RESUME, deadline=NEW_DEADLINE)
        assert j.case.state is S.HANDLING
        assert j.case.deadline == NEW_DEADLINE
        done = close(verify_pass(request_verify(feedback(j))))
        assert done.case.state is S.CLOSED

    def test_extension_approved_then_denied(self) -> None:
        j = reach(S.HANDLING)
        j.do(DEPARTMENT, A.REQUEST_EXTENSION, note="材料未到", extension_until=EXTENDED)
        assert j.case.pending_extension_until == EXTENDED
        j.do(DISPATCHER, A.APPROVE_EXTENSION)
        assert (j.case.deadline, j.case.extension_count) == (EXTENDED, 1)
        assert j.case.pending_extension_until is None
        later = EXTENDED + timedelta(days=2)
        j.do(DEPARTMENT, A.REQUEST_EXTENSION, note="仍未到", extension_until=later)
        j.do(DISPATCHER, A.DENY_EXTENSION, note="不予批准")
        assert (j.case.deadline, j.case.extension_count) == (EXTENDED, 1)
        assert j.case.pending_extension_until is None
        assert j.case.state is S.HANDLING

    def test_feedback_withdraws_a_pending_extension(self) -> None:
        # Finishing the work makes the open request moot: after a rework the department must be
        # able to ask again, and a dispatcher must not approve the stale request (which would
        # replace the fresh rework deadline with the old date and count an extension).
        j = reach(S.HANDLING)
        j.do(DEPARTMENT, A.REQUEST_EXTENSION, note="材料未到", extension_until=EXTENDED)
        feedback(j)
        assert j.case.pending_extension_until is None
        j.do(SEAT, A.REWORK, note="照片不清", deadline=NEW_DEADLINE)
        assert A.APPROVE_EXTENSION not in allowed_actions(j.case, DISPATCHER)
        assert A.REQUEST_EXTENSION in allowed_actions(j.case, DEPARTMENT)

    def test_escalation_on_the_way(self) -> None:
        j = reach(S.HANDLING)
        j.do(SEAT, A.ESCALATE, note="超期督办").do(DISPATCHER, A.ESCALATE, note="再次督办")
        assert (j.case.state, j.case.escalation_count, j.case.version) == (S.HANDLING, 2, 6)

    @pytest.mark.parametrize("state", sorted(EXPECTED_ESCALATE_STATES), ids=str)
    def test_escalation_in_every_open_state(self, state: CaseState) -> None:
        j = reach(state)
        version = j.case.version
        j.do(SEAT, A.ESCALATE, note="督办").do(DISPATCHER, A.ESCALATE, note="再次督办")
        assert (j.case.state, j.case.escalation_count) == (state, 2)
        assert j.case.version == version + 2
        assert j.trail[-3:] == [state, state, state]
        assert A.ESCALATE in allowed_actions(j.case, SEAT)
        assert A.ESCALATE in allowed_actions(j.case, DISPATCHER)

    def test_expired_extension_is_denied_then_asked_again(self) -> None:
        # Request at NOW, still undecided when the requested time has passed: approving is refused,
        # denying frees the department to ask again, and the new request can be approved.
        j = reach(S.HANDLING)
        j.do(DEPARTMENT, A.REQUEST_EXTENSION, note="材料未到", extension_until=EXTENDED)
        later = EXTENDED + timedelta(hours=1)
        with pytest.raises(ValidationFailed) as info:
            apply(j.case, DISPATCHER, Command(A.APPROVE_EXTENSION), later)
        assert info.value.code == "extension_expired"
        assert j.case.pending_extension_until == EXTENDED
        out = apply(j.case, DISPATCHER, Command(A.DENY_EXTENSION, note="已过期"), later)
        j.case = fold(j.case, out)
        assert j.case.pending_extension_until is None
        again = later + timedelta(days=2)
        cmd = Command(A.REQUEST_EXTENSION, note="重新申请", extension_until=again)
        j.case = fold(j.case, apply(j.case, DEPARTMENT, cmd, later))
        j.case = fold(j.case, apply(j.case, DISPATCHER, Command(A.APPROVE_EXTENSION), later))
        assert (j.case.state, j.case.deadline, j.case.extension_count) == (S.HANDLING, again, 1)
        assert j.case.pending_extension_until is None

    @pytest.mark.parametrize("state", sorted(CaseState), ids=str)
    def test_every_state_is_reachable(self, state: CaseState) -> None:
        j = reach(state)
        assert j.case.state is state
        assert j.case.version == len(j.trail)

    @pytest.mark.parametrize("state", sorted(OPEN_STATES), ids=str)
    def test_void_from_every_open_state(self, state: CaseState) -> None:
        j = reach(state).do(SEAT, A.VOID, note="重复录入")
        assert j.case.state is S.VOIDED
        assert j.row["closed_at"] == NOW

    @pytest.mark.parametrize("state", sorted(TERMINAL_STATES), ids=str)
    def test_terminal_states_allow_nothing(self, state: CaseState) -> None:
        j = reach(state)
        for actor in ALL_ACTORS:
            assert allowed_actions(j.case, actor) == []
            for action in Action:
                with pytest.raises(IllegalTransition):
                    apply(j.case, actor, proper_command(j.case, action), NOW)


# --------------------------------------------------------------------------------------------------
# 6. allowed_actions()
# --------------------------------------------------------------------------------------------------

AGREEMENT_CASES = [
    (s, actor, pending)
    for s in CaseState
    for actor in ALL_ACTORS
    for pending in ((False, True) if s is S.HANDLING else (False,))
]

case_facts = st.builds(
    CaseFacts,
    state=st.sampled_from(CaseState),
    version=st.integers(1, 50),
    department_id=st.sampled_from([None, DEPT, OTHER_DEPT]),
    grid_id=st.sampled_from([None, GRID, GRID_2, OTHER_GRID]),
    deadline=st.sampled_from([None, PAST, NEW_DEADLINE, DEADLINE, EXTENDED]),
    is_quick=st.booleans(),
    rework_count=st.integers(0, 3),
    extension_count=st.integers(0, 3),
    escalation_count=st.integers(0, 3),
    pending_extension_until=st.sampled_from([None, EXTENDED]),
)
actors = st.builds(
    Actor,
    user_id=st.just(99),
    role=st.sampled_from(Role),
    department_id=st.sampled_from([None, DEPT, OTHER_DEPT]),
    grid_ids=st.frozensets(st.sampled_from([GRID, GRID_2, OTHER_GRID]), max_size=2),
)


class TestAllowedActions:
    def test_department_on_its_dispatched_case(self) -> None:
        offered = allowed_actions(case_in(S.DISPATCHED), DEPARTMENT)
        assert sorted(offered) == sorted([A.ACCEPT, A.RETURN])

    def test_department_on_another_departments_case(self) -> None:
        assert allowed_actions(case_in(S.DISPATCHED), OTHER_DEPARTMENT) == []
        assert allowed_actions(case_in(S.HANDLING), OTHER_DEPARTMENT) == []

    def test_department_in_handling(self) -> None:
        offered = allowed_actions(case_in(S.HANDLING), DEPARTMENT)
        assert set(offered) == {A.RETURN, A.REQUEST_EXTENSION, A.FEEDBACK}
        offered = allowed_actions(case_in(S.HANDLING, pending=True), DEPARTMENT)
        assert set(offered) == {A.RETURN, A.FEEDBACK}

    def test_dispatcher_sees_the_extension_decision_only_when_pending(self) -> None:
        decide = {A.APPROVE_EXTENSION, A.DENY_EXTENSION}
        assert not decide & set(allowed_actions(case_in(S.HANDLING), DISPATCHER))
        assert decide <= set(allowed_actions(case_in(S.HANDLING, pending=True), DISPATCHER))

    def test_supervisor_outside_the_grid(self) -> None:
        assert allowed_actions(case_in(S.VERIFYING), SUPERVISOR) == [
            A.VERIFY_PASS,
            A.VERIFY_FAIL,
            A.ADD_EVIDENCE,
        ]
        assert allowed_actions(case_in(S.VERIFYING), OTHER_SUPERVISOR) == []

    def test_escalation_offered_in_every_open_state(self) -> None:
        ev = A.ADD_EVIDENCE  # offered beside everything while the case is open

        def offered(state: CaseState, actor: Actor) -> set[Action]:
            return set(allowed_actions(case_in(state), actor))

        assert offered(S.REPORTED, SEAT) == {
            A.REGISTER,
            A.REJECT,
            A.REQUEST_CONFIRM,
            A.ESCALATE,
            A.VOID,
            ev,
        }
        assert offered(S.REPORTED, DISPATCHER) == {A.ESCALATE, ev}
        assert offered(S.CONFIRMING, SEAT) == {A.ESCALATE, A.VOID, ev}
        assert offered(S.CONFIRMING, DISPATCHER) == {A.ESCALATE, ev}
        assert offered(S.CONFIRMING, SUPERVISOR) == {A.CONFIRM_PASS, A.CONFIRM_FAIL, ev}
        assert offered(S.QUICK_HANDLING, SEAT) == {A.ESCALATE, A.VOID, ev}
        assert offered(S.QUICK_HANDLING, DISPATCHER) == {A.ESCALATE, ev}
        assert offered(S.QUICK_HANDLING, SUPERVISOR) == {A.QUICK_COMPLETE, ev}
        assert offered(S.VERIFYING, SEAT) == {A.ESCALATE, A.VOID, ev}
        assert offered(S.VERIFYING, DISPATCHER) == {A.ESCALATE, ev}
        assert offered(S.VERIFIED, SEAT) == {A.CLOSE, A.REWORK, A.ESCALATE, A.VOID, ev}
        assert offered(S.VERIFIED, DISPATCHER) == {A.ESCALATE, ev}
        for state in sorted(EXPECTED_OPEN):
            for actor in (SEAT, DISPATCHER, ADMIN):
                assert A.ESCALATE in allowed_actions(case_in(state), actor), (state, actor)
            for actor in (DEPARTMENT, SUPERVISOR, AGENT, VIEWER):
                assert A.ESCALATE not in allowed_actions(case_in(state), actor), (state, actor)

    @pytest.mark.parametrize("state", list(CaseState), ids=str)
    def test_viewer_never(self, state: CaseState) -> None:
        for pending in (False, True):
            assert allowed_actions(case_in(state, pending=pending), VIEWER) == []

    @pytest.mark.parametrize("state", list(CaseState), ids=str)
    def test_admin_gets_the_table(self, state: CaseState) -> None:
        offered = set(allowed_actions(case_in(state, pending=True), ADMIN))
        expected = {
            a for (s, a) in EXPECTED_TRANSITIONS if s is state and a is not A.REQUEST_EXTENSION
        }
        assert offered == expected

    @pytest.mark.parametrize(
        ("state", "actor", "pending"),
        AGREEMENT_CASES,
        ids=[
            f"{s}-{a.role}{a.user_id}-{'pending' if p else 'none'}" for s, a, p in AGREEMENT_CASES
        ],
    )
    def test_offers_exactly_what_apply_accepts(
        self, state: CaseState, actor: Actor, pending: bool
    ) -> None:
        case = case_in(state, pending=pending)
        offered = allowed_actions(case, actor)
        assert len(offered) == len(set(offered))
        assert set(offered) == {a for a in NON_CREATION if accepts(case, actor, a)}

    @settings(max_examples=400, database=None, deadline=None)
    @given(case=case_facts, actor=actors)
    def test_offers_exactly_what_apply_accepts_property(
        self, case: CaseFacts, actor: Actor
    ) -> None:
        offered = allowed_actions(case, actor)
        assert set(offered) == {a for a in NON_CREATION if accepts(case, actor, a)}
        assert set(offered) <= {a for (s, a) in EXPECTED_TRANSITIONS if s is case.state}

    @settings(max_examples=400, database=None, deadline=None)
    @given(case=case_facts, actor=actors)
    def test_offered_moves_lead_where_the_tables_say(self, case: CaseFacts, actor: Actor) -> None:
        for action in allowed_actions(case, actor):
            out = apply(case, actor, proper_command(case, action), NOW)
            assert out.to_state is target(case.state, action, case.department_id)
            rework = (case.state, action) in EXPECTED_REWORK_WITHOUT_DEPARTMENT
            if rework and case.department_id is None:
                assert out.to_state is S.QUICK_HANDLING
                assert out.changes["deadline"] is None
            elif rework:
                assert out.to_state is S.HANDLING
                assert out.changes["deadline"] == NEW_DEADLINE


# --------------------------------------------------------------------------------------------------
# 7. Random walks
# --------------------------------------------------------------------------------------------------

NOTES = st.sampled_from(["", " ", NOTE])
MAYBE_PHOTOS = st.sampled_from([(), PHOTOS])
DEADLINES = st.sampled_from([None, PAST, NOW, NEW_DEADLINE, DEADLINE, EXTENDED])
EXTENSIONS = st.sampled_from([None, PAST, DEADLINE, EXTENDED, EXTENDED + timedelta(days=3)])
DEPARTMENTS = st.sampled_from([None, DEPT, OTHER_DEPT])
REASONS = st.sampled_from([None, RejectReason.INVALID, RejectReason.DUPLICATE])
DUPLICATES = st.sampled_from([None, 42])
#: Moves that end a walk at once; random walks take them only through the "anything" path.
ENDINGS = (A.VOID, A.REJECT)
#: When a dispatcher may get round to an extension request (some after the time asked for).
LATER = [
    NOW,
    EXTENDED - timedelta(minutes=1),
    EXTENDED,
    EXTENDED + timedelta(days=2),
    EXTENDED + timedelta(days=3),
    EXTENDED + timedelta(days=4),
]
#: Every move the walks must take at least once, with where it leads: the table (but the endings),
#: and the rework of a case no department holds.
EXPECTED_MOVES = {(s, a, EXPECTED_TRANSITIONS[s, a]) for (s, a) in LEGAL if a not in ENDINGS}
EXPECTED_MOVES |= {(s, a, to) for (s, a), to in EXPECTED_REWORK_WITHOUT_DEPARTMENT.items()}


class Walk:
    """One case pushed around by many people, with the history its facts must agree with."""

    def __init__(self, quick: bool) -> None:
        action = A.QUICK_REPORT if quick else A.REPORT
        out = create(SUPERVISOR, Command(action, attachment_ids=PHOTOS), GRID, NOW)
        self.case = CaseFacts(out.to_state, 1, None, GRID, is_quick=quick)
        self.quick = quick
        self.moves = 0
        self.reworks = 0
        self.escalations = 0
        self.extensions = 0
        self.terminal: CaseState | None = None
        # The walk's own model of the columns the moves write (not read back from the case).
        self.department: int | None = None
        self.deadline: datetime | None = None
        self.pending: datetime | None = None
        #: The last move taken: (from state, action, to state).
        self.last: tuple[CaseState, Action, CaseState] | None = None

    def offered(self) -> list[tuple[Actor, Action]]:
        """Every (person, button) the UI shows now, except the endings and 补充证据 (offered to
        four roles in every open state, it would crowd out the moves; the walks' "anyone trying
        anything" steps still take it)."""
        return [
            (actor, action)
            for actor in ALL_ACTORS
            for action in allowed_actions(self.case, actor)
            if action not in ENDINGS and action is not A.ADD_EVIDENCE
        ]

    def evidence_offered(self) -> list[Actor]:
        """Who is offered 补充证据 now."""
        return [a for a in ALL_ACTORS if A.ADD_EVIDENCE in allowed_actions(self.case, a)]

    def expected_target(self, action: Action) -> CaseState:
        """Where a legal ``action`` leads now (by the hand-written tables): back to the field
        supervisor while (by the walk's own model) no department holds the case."""
        return target(self.case.state, action, self.department)

    def attempt(self, actor: Actor, cmd: Command, now: datetime = NOW) -> bool:
        before = self.case
        a = cmd.action
        try:
            out = apply(before, actor, cmd, now)
        except (IllegalTransition, Forbidden, ValidationFailed) as e:
            assert self.case == before
            if e.code == "extension_expired":
                assert isinstance(e, ValidationFailed)
                assert a is A.APPROVE_EXTENSION
                assert self.pending is not None
                assert self.pending <= now
            return False
        assert before.state not in TERMINAL_STATES, f"{a} moved a {before.state} case"
        expected = self.expected_target(a)
        assert out.to_state is expected
        assert out.to_state is target(before.state, a, before.department_id)
        duplicate = cmd.duplicate_of is not None and cmd.reject_reason is RejectReason.DUPLICATE
        assert ("duplicate_of" in out.event_data) is duplicate
        if duplicate:
            assert out.event_data["duplicate_of"] == cmd.duplicate_of
        self.case = fold(before, out)
        assert self.case.version > before.version
        self.moves += 1
        self.reworks += a in (A.REWORK, A.VERIFY_FAIL)
        self.escalations += a is A.ESCALATE
        self.extensions += a is A.APPROVE_EXTENSION
        self.last = (before.state, a, out.to_state)
        # The model of what the move writes.
        if a is A.DISPATCH:
            self.department, self.deadline, self.pending = cmd.department_id, cmd.deadline, None
        elif a is A.RETURN:
            self.department, self.deadline, self.pending = None, None, None
        elif a is A.REQUEST_EXTENSION:
            self.pending = cmd.extension_until
        elif a is A.APPROVE_EXTENSION:
            assert self.pending is not None
            assert self.pending > now  # an expired request is never approved
            self.deadline, self.pending = self.pending, None
        elif a in (A.DENY_EXTENSION, A.FEEDBACK, A.QUICK_COMPLETE, A.VOID):
            self.pending = None
        elif a is A.DEFER:
            self.deadline, self.pending = None, None
        elif a is A.RESUME:
            self.deadline = cmd.deadline
        elif a in (A.REWORK, A.VERIFY_FAIL):
            # Back to the department with the new deadline, or back to the field supervisor.
            self.deadline = None if expected is S.QUICK_HANDLING else cmd.deadline
        self.check()
        return True

    def check(self) -> None:
        case = self.case
        assert isinstance(case.state, CaseState)
        if self.terminal is not None:
            assert case.state is self.terminal
        elif case.state in TERMINAL_STATES:
            self.terminal = case.state
        assert case.version == 1 + self.moves
        assert case.rework_count == self.reworks
        assert case.escalation_count == self.escalations
        assert case.extension_count == self.extensions
        assert case.is_quick is self.quick
        if case.state in DEADLINE_STATES:
            assert case.deadline is not None
        if case.state is S.DISPATCHED:
            assert case.department_id is not None
        if case.state is S.RETURNED:
            assert (case.department_id, case.deadline) == (None, None)
        assert case.department_id == self.department
        assert case.deadline == self.deadline
        assert case.pending_extension_until == self.pending
        if case.pending_extension_until is not None:
            # Only a case in handling has an open extension request (voiding withdraws it).
            assert case.state is S.HANDLING
        if self.quick:
            # A quick case never reaches a department: every rework returns it to the supervisor.
            assert case.department_id is None
            assert case.state not in {S.REPORTED, S.CONFIRMING, S.REGISTERED, S.DISPATCHED}
            assert case.state is not S.RETURNED
            assert case.state not in {S.HANDLING, S.DEFERRED, S.REJECTED}
        else:
            # Any other case is held by a department from dispatch on, and reworked back to it.
            assert case.state is not S.QUICK_HANDLING
            if case.state in (S.FEEDBACK, S.VERIFYING, S.VERIFIED, S.CLOSED):
                assert case.department_id is not None
        if case.state is S.QUICK_HANDLING:
            assert case.deadline is None


class CaseLife(RuleBasedStateMachine):
    """Hypothesis drives a ``Walk``: offered buttons pressed well or badly, and random commands."""

    walk: Walk

    @initialize(quick=st.booleans())
    def open_case(self, quick: bool) -> None:
        self.walk = Walk(quick)

    @rule(
        actor=st.sampled_from(ALL_ACTORS),
        action=st.sampled_from(Action),
        note=NOTES,
        photos=MAYBE_PHOTOS,
        department=DEPARTMENTS,
        deadline=DEADLINES,
        extension=EXTENSIONS,
        reason=REASONS,
        duplicate_of=DUPLICATES,
    )
    def anything(
        self,
        actor: Actor,
        action: Action,
        note: str,
        photos: tuple[int, ...],
        department: int | None,
        deadline: datetime | None,
        extension: datetime | None,
        reason: RejectReason | None,
        duplicate_of: int | None,
    ) -> None:
        cmd = Command(action, note, department, deadline, extension, reason, duplicate_of, photos)
        self.walk.attempt(actor, cmd)

    @precondition(lambda self: self.walk.case.state not in TERMINAL_STATES)
    @rule(data=st.data(), department=st.sampled_from([DEPT, OTHER_DEPT]))
    def offered_well_formed(self, data: st.DataObject, department: int) -> None:
        offered = self.walk.offered()
        if offered:
            actor, action = data.draw(st.sampled_from(offered))
            cmd = proper_command(self.walk.case, action)
            assert self.walk.attempt(actor, dataclasses.replace(cmd, department_id=department))

    @precondition(lambda self: self.walk.case.state not in TERMINAL_STATES)
    @rule(
        data=st.data(),
        note=NOTES,
        photos=MAYBE_PHOTOS,
        department=DEPARTMENTS,
        deadline=DEADLINES,
        extension=EXTENSIONS,
        reason=REASONS,
    )
    def offered_sloppy(
        self,
        data: st.DataObject,
        note: str,
        photos: tuple[int, ...],
        department: int | None,
        deadline: datetime | None,
        extension: datetime | None,
        reason: RejectReason | None,
    ) -> None:
        offered = self.walk.offered()
        if offered:
            actor, action = data.draw(st.sampled_from(offered))
            cmd = Command(action, note, department, deadline, extension, reason, 42, photos)
            self.walk.attempt(actor, cmd)

    @precondition(lambda self: self.walk.case.pending_extension_until is not None)
    @rule(actor=st.sampled_from([DISPATCHER, ADMIN]), when=st.sampled_from(LATER))
    def decide_extension_later(self, actor: Actor, when: datetime) -> None:
        pending = self.walk.case.pending_extension_until
        assert pending is not None
        ok = self.walk.attempt(actor, Command(A.APPROVE_EXTENSION), now=when)
        assert ok is (pending > when)

    @invariant()
    def consistent(self) -> None:
        self.walk.check()


CaseLife.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, database=None, deadline=None
)
TestCaseLife = CaseLife.TestCase


def random_command(rng: random.Random, action: Action) -> Command:
    return Command(
        action,
        note=rng.choice(["", " ", NOTE]),
        department_id=rng.choice([None, DEPT, OTHER_DEPT]),
        deadline=rng.choice([None, PAST, NOW, NEW_DEADLINE, DEADLINE]),
        extension_until=rng.choice([None, PAST, DEADLINE, EXTENDED]),
        reject_reason=rng.choice([None, *RejectReason]),
        duplicate_of=rng.choice([None, 42]),
        attachment_ids=rng.choice([(), PHOTOS]),
    )


class TestSeededRandomWalks:
    """Plain seeded walks, long and many, to reach the deep corners (rework after an extension
    request, extension after a resume ...) that a shrinking search visits rarely."""

    @pytest.mark.parametrize("seed", range(8))
    def test_walks(self, seed: int) -> None:
        rng = random.Random(seed)
        ev_rng = random.Random(-1 - seed)
        moved: set[tuple[CaseState, Action, CaseState]] = set()
        late_approvals = {True: 0, False: 0}
        for _ in range(60):
            walk = Walk(quick=rng.random() < 0.3)
            for _ in range(60):
                before = walk.case.state
                offered = walk.offered()
                pending = walk.case.pending_extension_until
                roll = rng.random()
                if pending is not None and rng.random() < 0.2:  # a request decided some time later
                    actor, action, when = DISPATCHER, A.APPROVE_EXTENSION, rng.choice(LATER)
                    ok = walk.attempt(actor, Command(action), now=when)
                    assert ok is (pending > when)
                    late_approvals[ok] += 1
                elif offered and roll < 0.6:  # a button, pressed properly: must work
                    actor, action = rng.choice(offered)
                    ok = walk.attempt(actor, proper_command(walk.case, action))
                    assert ok, (before, actor, action)
                elif offered and roll < 0.85:  # a button, pressed with random arguments
                    actor, action = rng.choice(offered)
                    ok = walk.attempt(actor, random_command(rng, action))
                else:  # anyone trying anything
                    actor, action = rng.choice(ALL_ACTORS), rng.choice(list(Action))
                    ok = walk.attempt(actor, random_command(rng, action))
                if ok:
                    assert walk.last is not None
                    assert walk.last[:2] == (before, action)
                    moved.add(walk.last)
                # 补充证据 now and then, from a generator of its own (the walks above stay as
                # they were): the state stays, the version moves on.
                evidence = walk.evidence_offered() if ev_rng.random() < 0.05 else []
                if evidence:
                    before = walk.case.state
                    ok = walk.attempt(
                        ev_rng.choice(evidence), proper_command(walk.case, A.ADD_EVIDENCE)
                    )
                    assert ok and walk.last == (before, A.ADD_EVIDENCE, before)
                    moved.add(walk.last)
        # The walks do go everywhere: every non-ending move of the table was taken at least once,
        # and each rework both back to a department and back to a field supervisor.
        assert moved >= EXPECTED_MOVES, EXPECTED_MOVES - moved
        assert moved <= EXPECTED_MOVES | {(s, a, EXPECTED_TRANSITIONS[s, a]) for (s, a) in LEGAL}
        assert late_approvals[True] and late_approvals[False]
