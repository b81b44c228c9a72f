"""Random walks over every ACD event, well-formed or not, checking what must always hold: a call is in
one place; an agent rings or talks with at most one call and every such call knows them; every call
ends exactly once with one outcome; the queue is in arrival order except for calls transferred to its
front, and calls put back keep their place; a refused event changes nothing; after ``tick`` the next
deadline is never in the past."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from telephony.errors import HotlineError
from telephony.hotline.acd import QUEUE, Acd, AcdConfig
from telephony.hotline.commands import AgentState, CallEnded, Command, MonitorMode, Offer
from telephony.hotline.states import Agent, CallState
from telephony.hotline.stats import Outcome

AGENTS = ("a1", "a2", "a3")
SUPERVISORS = ("s1", "s2")


def open_at(now: float) -> bool:
    return int(now // 300) % 4 != 3  # closed one period in four


def snapshot(acd: Acd) -> Any:
    return copy.deepcopy((acd.calls, acd.agents, acd.monitoring, list(acd._handle)))


class AcdWalk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.acd = Acd(
            AcdConfig(
                max_queue=2,
                max_wait=120,
                ring_timeout=15,
                wrapup=10,
                announce_every=30,
                open_at=open_at,
            )
        )
        self.now = 0.0
        self.arrivals: list[str] = []
        self.ends: dict[str, list[CallEnded]] = defaultdict(list)
        self.refused = 0

    # ---- driving --------------------------------------------------------------------------

    def do(self, method: Callable[..., list[Command]], *args: Any) -> list[Command] | None:
        before = snapshot(self.acd)
        try:
            out = method(*args, self.now)
        except HotlineError:
            self.refused += 1
            assert snapshot(self.acd) == before, "a refused event changed the ACD"
            return None
        self.record(out)
        return out

    def record(self, out: list[Command]) -> None:
        for c in out:
            if isinstance(c, CallEnded):
                self.ends[c.call].append(c)
                assert c.record.outcome is c.outcome  # the record is well formed
                assert c.waited >= 0 and c.talked >= 0
            if isinstance(c, Offer):
                assert self.acd.agents[c.agent].state is AgentState.OFFERED

    def calls(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from([*self.arrivals[-6:], "nope"]))

    def pair(self, data: st.DataObject) -> tuple[str, str]:
        """An (agent, call) pair: usually one the ACD links, sometimes any."""
        linked: list[tuple[str, str]] = [
            (a.id, a.call) for a in self.acd.agents.values() if a.call is not None
        ]
        if len(linked) > 0 and data.draw(st.booleans()):
            return data.draw(st.sampled_from(linked))
        return data.draw(st.sampled_from(AGENTS)), self.calls(data)

    # ---- rules ----------------------------------------------------------------------------

    @initialize(signed_in=st.lists(st.sampled_from(AGENTS), unique=True))
    def agents_at_work(self, signed_in: list[str]) -> None:
        for agent in signed_in:
            self.do(self.acd.sign_in, agent)
            self.do(self.acd.set_ready, agent)

    @rule(data=st.data())
    def well_formed(self, data: st.DataObject) -> None:
        """What a console or a caller would sensibly do next, so walks get far."""
        acd = self.acd
        welcome = [c.id for c in acd.calls.values() if c.state is CallState.WELCOME]
        if len(welcome) > 0 and data.draw(st.booleans()):
            self.do(acd.prompt_done, data.draw(st.sampled_from(welcome)))
            return
        busy = [a for a in acd.agents.values() if a.call is not None]
        if len(busy) > 0 and data.draw(st.integers(0, 3)) > 0:
            agent: Agent | None = data.draw(st.sampled_from(busy))
        else:
            agent = acd.agents.get(data.draw(st.sampled_from(AGENTS)))
        if agent is None or agent.state in (AgentState.NOT_READY, AgentState.WRAP_UP):
            self.do(acd.set_ready, agent.id) if agent else self.do(acd.sign_in, AGENTS[0])
        elif agent.state is AgentState.OFFERED:
            what = data.draw(st.sampled_from(["accept", "accept", "accept", "decline"]))
            self.do(getattr(acd, what), agent.id, agent.call)
        elif agent.state is AgentState.TALKING:
            assert agent.call is not None
            call = acd.calls[agent.call]
            if call.state is CallState.CONSULTING:
                what = data.draw(st.sampled_from(["transfer_complete", "transfer_cancel"]))
                self.do(getattr(acd, what), call.id, call.agent)
                return
            choice = data.draw(st.sampled_from(["hangup", "blind", "consult", "hold"]))
            if choice == "hangup":
                self.do(acd.agent_hangup, agent.id, call.id)
            elif choice == "hold":
                self.do(acd.unhold if call.held else acd.hold, call.id)
            else:
                idle = [a.id for a in acd.agents.values() if a.state is AgentState.READY]
                resting = [
                    a.id
                    for a in acd.agents.values()
                    if a.state in (AgentState.NOT_READY, AgentState.WRAP_UP)
                ]
                if not idle and resting:  # call a colleague over (they may get a queued call)
                    self.do(acd.set_ready, resting[0])
                    idle = [a.id for a in acd.agents.values() if a.state is AgentState.READY]
                to = data.draw(st.sampled_from(idle or [a for a in AGENTS if a != agent.id]))
                to = QUEUE if choice == "blind" and data.draw(st.booleans()) else to
                if choice == "consult":
                    self.do(acd.consult, call.id, agent.id, to)
                else:
                    self.do(acd.transfer_blind, call.id, agent.id, to)

    @rule(data=st.data())
    def well_formed_too(self, data: st.DataObject) -> None:
        self.well_formed(data)

    @rule(data=st.data())
    def well_formed_as_well(self, data: st.DataObject) -> None:
        self.well_formed(data)

    @precondition(lambda self: len(self.acd.calls) < 4)
    @rule()
    def arrive(self) -> None:
        call_id = f"c{len(self.arrivals) + 1}"
        self.arrivals.append(call_id)
        assert self.do(self.acd.call_arrived, call_id, "13800138000") is not None

    @rule(dt=st.sampled_from([0.0, 0.5, 3.0, 10.0, 15.0, 31.0, 130.0, 300.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        deadline = self.acd.next_deadline()
        out = self.acd.tick(self.now)
        self.record(out)
        if deadline is None or deadline > self.now:
            assert out == []
        after = self.acd.next_deadline()
        assert after is None or after > self.now, "a deadline in the past after tick"

    @rule(data=st.data(), what=st.sampled_from(["prompt_done", "caller_hangup", "call_failed"]))
    def caller_side(self, data: st.DataObject, what: str) -> None:
        self.do(getattr(self.acd, what), self.calls(data))

    @rule(data=st.data(), digit=st.sampled_from(["1", "2"]))
    def key(self, data: st.DataObject, digit: str) -> None:
        self.do(self.acd.dtmf, self.calls(data), digit)

    @rule(data=st.data(), what=st.sampled_from(["hold", "unhold"]))
    def hold(self, data: st.DataObject, what: str) -> None:
        self.do(getattr(self.acd, what), self.calls(data))

    @rule(
        agent=st.sampled_from(AGENTS),
        what=st.sampled_from(["sign_in", "sign_out", "set_ready", "wrap_up_done"]),
    )
    def agent_state(self, agent: str, what: str) -> None:
        self.do(getattr(self.acd, what), agent)

    @rule(agent=st.sampled_from(AGENTS), reason=st.sampled_from(["", "午休"]))
    def not_ready(self, agent: str, reason: str) -> None:
        self.do(self.acd.set_not_ready, agent, reason)

    @rule(data=st.data(), what=st.sampled_from(["accept", "accept", "decline", "agent_hangup"]))
    def agent_call(self, data: st.DataObject, what: str) -> None:
        agent, call = self.pair(data)
        self.do(getattr(self.acd, what), agent, call)

    @rule(
        data=st.data(),
        what=st.sampled_from(["transfer_blind", "consult"]),
        to=st.sampled_from([*AGENTS, QUEUE]),
    )
    def transfer(self, data: st.DataObject, what: str, to: str) -> None:
        agent, call = self.pair(data)
        self.do(getattr(self.acd, what), call, agent, to)

    @rule(data=st.data(), what=st.sampled_from(["transfer_complete", "transfer_cancel"]))
    def finish_transfer(self, data: st.DataObject, what: str) -> None:
        agent, call = self.pair(data)
        self.do(getattr(self.acd, what), call, agent)

    @rule(
        data=st.data(),
        supervisor=st.sampled_from(SUPERVISORS),
        mode=st.sampled_from(MonitorMode),
        stop=st.booleans(),
    )
    def supervise(
        self, data: st.DataObject, supervisor: str, mode: MonitorMode, stop: bool
    ) -> None:
        _, call = self.pair(data)
        if stop:
            self.do(self.acd.unmonitor, call, supervisor)
        else:
            self.do(self.acd.monitor, call, supervisor, mode)

    # ---- what always holds ----------------------------------------------------------------

    @invariant()
    def one_place_per_call_and_one_call_per_agent(self) -> None:
        acd = self.acd
        holders: dict[str, list[tuple[str, AgentState]]] = defaultdict(list)
        for a in acd.agents.values():
            if a.state in (AgentState.OFFERED, AgentState.TALKING):
                assert a.call in acd.calls
                holders[a.call].append((a.id, a.state))
            else:
                assert a.call is None
            assert (a.ring_until is not None) == (a.state is AgentState.OFFERED)
            assert (a.wrap_until is not None) == (a.state is AgentState.WRAP_UP)
            assert (a.idle_since is not None) == (a.state in (AgentState.READY, AgentState.OFFERED))
        for c in acd.calls.values():
            hs = sorted(holders[c.id])
            if c.state is CallState.OFFERED:
                assert hs == [(c.agent, AgentState.OFFERED)]
            elif c.state is CallState.CONNECTED:
                assert hs == [(c.agent, AgentState.TALKING)] and c.consult is None
            elif c.state is CallState.CONSULTING:
                assert c.consult is not None and c.held
                target = AgentState.TALKING if c.consult.answered else AgentState.OFFERED
                assert hs == sorted([(c.agent, AgentState.TALKING), (c.consult.target, target)])
            else:
                assert hs == [] and c.agent is None and c.consult is None
            if c.state not in (CallState.CONNECTED, CallState.CONSULTING):
                assert not c.monitors
        for supervisor, call in acd.monitoring.items():
            assert supervisor in acd.calls[call].monitors
        assert sum(len(c.monitors) for c in acd.calls.values()) == len(acd.monitoring)

    @invariant()
    def every_call_ends_exactly_once(self) -> None:
        for call_id in self.arrivals:
            call = self.acd.calls.get(call_id)
            n = len(self.ends[call_id])
            if call is None:
                assert n == 1, f"{call_id} gone after {n} ends"
            elif call.state is CallState.FAREWELL:
                assert n == 1
            else:
                assert n == 0
        for ends in self.ends.values():
            if ends and ends[0].answered_at is not None:
                assert ends[0].outcome is Outcome.ANSWERED

    @invariant()
    def queue_in_arrival_order_but_transfers_in_front(self) -> None:
        view = self.acd.queue_view(self.now)
        assert [e.position for e in view] == list(range(1, len(view) + 1))
        fronts = [self.acd.calls[e.call].front for e in view]
        k = sum(f is not None for f in fronts)
        assert all(f is not None for f in fronts[:k])
        assert fronts[:k] == sorted(fronts[:k])  # type: ignore[type-var]
        rest = [e.call for e in view[k:]]
        assert rest == sorted(rest, key=self.arrivals.index)

    def teardown(self) -> None:
        # Every caller hangs up: then every call has ended exactly once and nothing is left.
        for call_id in list(self.acd.calls):
            self.record(self.acd.caller_hangup(call_id, self.now))
        assert self.acd.calls == {} and self.acd.monitoring == {}
        assert all(len(self.ends[c]) == 1 for c in self.arrivals)
        assert all(
            a.state
            in (AgentState.SIGNED_OUT, AgentState.NOT_READY, AgentState.READY, AgentState.WRAP_UP)
            for a in self.acd.agents.values()
        )


AcdWalk.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, database=None, deadline=None
)
TestAcdWalk = AcdWalk.TestCase
