"""The work queues and state groups (hub/core/queues.py) against the workflow they come from."""

from __future__ import annotations

from hub.core import queues as wq
from hub.core import workflow as wf


def test_every_working_role_has_its_queues_in_tab_order() -> None:
    labels = {r: [q.label for q in wq.queues_for(r)] for r in wf.Role}
    assert labels[wf.Role.SEAT] == ["待受理", "待核查申请", "待结案"]
    assert labels[wf.Role.DISPATCHER] == ["待派遣", "缓办"]
    assert labels[wf.Role.DEPARTMENT] == ["待签收", "处置中"]
    assert labels[wf.Role.SUPERVISOR] == ["待核查", "待核实", "快速处置中"]
    assert wq.default_queue(wf.Role.SUPERVISOR).name == "to_check"  # type: ignore[union-attr]
    assert labels[wf.Role.VIEWER] == [] and labels[wf.Role.AGENT] == []
    assert len(labels[wf.Role.ADMIN]) == len(wq.QUEUES)
    assert wq.default_queue(wf.Role.SEAT) is not None
    assert wq.default_queue(wf.Role.SEAT).name == "to_accept"  # type: ignore[union-attr]
    assert wq.default_queue(wf.Role.VIEWER) is None


def test_a_queue_holds_the_cases_its_roles_act_on() -> None:
    """Each queue's states are open states from which one of its roles has a move."""
    for q in wq.QUEUES:
        assert q.name.isascii() and q.label and q.states
        for s in q.states:
            assert s in wf.OPEN_STATES
            movers = {
                r
                for (state, action) in wf.TRANSITIONS
                if state is s and action not in (wf.Action.ESCALATE, wf.Action.VOID)
                for r in wf.ACTION_ROLES[action]
            }
            assert (q.roles - {wf.Role.ADMIN}) <= movers, (q.name, s)
    assert len({q.name for q in wq.QUEUES}) == len(wq.QUEUES)


def test_state_groups_are_the_workflow_sets() -> None:
    assert set(wq.STATE_GROUPS["open"]) == wf.OPEN_STATES
    assert set(wq.STATE_GROUPS["deadline"]) == wf.DEADLINE_STATES
    assert set(wq.STATE_GROUPS["terminal"]) == wf.TERMINAL_STATES
    j = wq.queue_json(wq.QUEUES[0], 3)
    assert j == {"name": "to_accept", "label": "待受理", "states": ["reported"], "count": 3}


def test_the_supervisors_confirmations() -> None:
    """待核实: the reports a seat sent to the grid's supervisor before registering them."""
    (q,) = [q for q in wq.QUEUES if q.name == "to_confirm"]
    assert q.label == "待核实" and q.states == (wf.CaseState.CONFIRMING,)
    assert q.roles == {wf.Role.SUPERVISOR, wf.Role.ADMIN}
    assert "confirming" in [s.value for s in wq.STATE_GROUPS["open"]]
