"""Work queues (待办): each role's own to-do views, and the state groups the pages filter by.

A queue is a named filter of the case list (its states) shown to some roles, with its count. The
user's scope (a department's own cases, a field supervisor's grids) is applied by the list query
itself, so "待核查" (and "待核实", the reports sent for confirmation before registration) for a
supervisor counts the tasks in that supervisor's grids. The board
shows the first queue of a role as its default view (``default_queue``).

The pages never copy these rules: ``GET /api/queues`` serves the queues (with counts) and the state
groups, and ``GET /api/cases?state=...`` is the same filter, so a queue's list and its count agree.
Pure definitions: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hub.core.workflow import DEADLINE_STATES, OPEN_STATES, TERMINAL_STATES, CaseState, Role

__all__ = ["QUEUES", "STATE_GROUPS", "Queue", "default_queue", "queue_json", "queues_for"]

S = CaseState


@dataclass(frozen=True, slots=True)
class Queue:
    """One to-do view: ``name`` (ASCII, used in URLs), ``label`` (Chinese), who sees it, its states."""

    name: str
    label: str
    roles: frozenset[Role]
    states: tuple[CaseState, ...]

    def matches(self, state: str) -> bool:
        return state in self.states


_ADMIN = frozenset({Role.ADMIN})

#: In the order the tabs show them; a role's first queue is its default view.
QUEUES: tuple[Queue, ...] = (
    Queue("to_accept", "待受理", frozenset({Role.SEAT}) | _ADMIN, (S.REPORTED,)),
    Queue("to_verify_request", "待核查申请", frozenset({Role.SEAT}) | _ADMIN, (S.FEEDBACK,)),
    Queue("to_close", "待结案", frozenset({Role.SEAT}) | _ADMIN, (S.VERIFIED,)),
    Queue(
        "to_dispatch", "待派遣", frozenset({Role.DISPATCHER}) | _ADMIN, (S.REGISTERED, S.RETURNED)
    ),
    Queue("deferred", "缓办", frozenset({Role.DISPATCHER}) | _ADMIN, (S.DEFERRED,)),
    Queue("to_sign", "待签收", frozenset({Role.DEPARTMENT}) | _ADMIN, (S.DISPATCHED,)),
    Queue("handling", "处置中", frozenset({Role.DEPARTMENT}) | _ADMIN, (S.HANDLING,)),
    Queue("to_check", "待核查", frozenset({Role.SUPERVISOR}) | _ADMIN, (S.VERIFYING,)),
    Queue("to_confirm", "待核实", frozenset({Role.SUPERVISOR}) | _ADMIN, (S.CONFIRMING,)),
    Queue("quick", "快速处置中", frozenset({Role.SUPERVISOR}) | _ADMIN, (S.QUICK_HANDLING,)),
)

#: State groups the pages use (the board's 在办 button, where a deadline runs).
STATE_GROUPS: Mapping[str, tuple[CaseState, ...]] = {
    "open": tuple(s for s in CaseState if s in OPEN_STATES),
    "deadline": tuple(s for s in CaseState if s in DEADLINE_STATES),
    "terminal": tuple(s for s in CaseState if s in TERMINAL_STATES),
}


def queues_for(role: Role) -> tuple[Queue, ...]:
    """The queues a role sees, in tab order (none for read-only and hotline users)."""
    return tuple(q for q in QUEUES if role in q.roles)


def default_queue(role: Role) -> Queue | None:
    """The view a role's board opens on (None: the whole list)."""
    mine = queues_for(role)
    return mine[0] if mine else None


def queue_json(queue: Queue, count: int | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "name": queue.name,
        "label": queue.label,
        "states": [s.value for s in queue.states],
    }
    if count is not None:
        out["count"] = count
    return out
