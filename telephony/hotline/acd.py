"""The 12319 hotline's automatic call distributor: calls, agents and the queue, as two state tables.

Theory of operation: a call's life is ``CALL_TRANSITIONS``::

    arrival ─(out of hours)─▶ OUT_OF_HOURS ─prompt done / hang-up─▶ ended (out_of_hours)
       │                          └─callback key─▶ FAREWELL (callback)
       ├─(queue full)─▶ FAREWELL (overflow)
       └─▶ WELCOME ─prompt done─▶ QUEUED ─offer─▶ OFFERED ─accept─▶ CONNECTED ─hang-up─▶ ended
                                    ▲   │           │ decline / ring timeout         │  ▲
                                    │   │           └──▶ back to QUEUED, old place   │  │ complete /
                                    │   ├─callback key─▶ FAREWELL (callback)         │  │ cancel
                                    │   └─max wait─▶ FAREWELL (overflow)             ▼  │
                                    └──── blind transfer to the queue ──────── CONSULTING

A FAREWELL call has ended (``CallEnded`` is out) and hears its last prompt; the adapter hangs up after
it (``PlayPrompt.hang_up``), then reports ``prompt_done`` or ``caller_hangup`` and the ACD forgets
it. The caller hanging up ends a call anywhere; ``call_failed`` (a SIP or media fault) likewise.

An agent's life is ``AGENT_TRANSITIONS``: 签出 signed_out ─sign in─▶ 示忙 not_ready("签入") ⇄ 示闲
ready ─offer─▶ 振铃 offered ─accept─▶ 通话 talking ─call over─▶ 话后整理 wrap_up ─``wrapup`` s or
set_ready─▶ ready. An offer declined or left ringing ``ring_timeout`` s makes the agent not_ready
("拒接" / "未接听"); an offer withdrawn (the caller hung up or pressed the callback key) makes them
ready again with their idle time kept. A method checks every move against the tables before it
changes anything: a bad event raises a ``HotlineError`` and leaves the ACD as it was.

Distribution runs after every event: while a call is QUEUED and an agent is ready, the call with the
smallest queue key is offered to the agent ready the longest. The key is the arrival order, kept when
an offer fails (the call goes back to its old place); a call transferred back to the queue (or to an
agent who does not answer) goes to the *front*, behind earlier such transfers: it has waited once.

Queued callers hear hold music and, on queue entry and every ``announce_every`` s, their position
(1 + the waiting calls ahead) and the expected wait: ``position × average handle time ÷ max(1,
agents signed in)``, rounded up to minutes, where the handle time is talk plus wrap-up of the last
``handle_samples`` calls (``default_handle_time`` before any). The maximum wait counts from queue
entry (or from the transfer back to the queue) and applies to QUEUED calls; a call whose offer
fails after its maximum wait is back in the queue and overflows at once. A call once answered ends ``answered``, whatever follows.

Transfers (``transfer.py``): blind to the queue (front) or to a ready agent; attended: consult
(the caller on hold), then complete or cancel. Supervisors monitor connected calls (listen,
whisper, barge), one call at a time each; the monitoring ends when the call leaves its agent. The
tables and records are in ``states.py``; the commands and the views in ``commands.py``.

No I/O and no clock: ``now`` (float epoch seconds: records and service hours need wall time) comes
in with every event; ``next_deadline()`` says when to call ``tick(now)`` (ring timeouts, wrap-up
ends, announcements, maximum waits).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import deque
from collections.abc import Callable

from telephony.errors import AgentNotReady, AgentNotSignedIn, HotlineStateError, UnknownCall
from telephony.hotline import transfer
from telephony.hotline.commands import (
    AgentChanged,
    AgentState,
    AgentView,
    CallEnded,
    CancelOffer,
    Command,
    Connect,
    Consult,
    Disconnect,
    Hangup,
    Monitor,
    MonitorMode,
    Offer,
    PlayPrompt,
    Prompt,
    Queued,
    QueueEntry,
    RecordCallback,
    StartMusic,
    StopMusic,
    Unmonitor,
)
from telephony.hotline.states import (
    AGENT_LABELS,
    AGENT_TRANSITIONS,
    CALL_LABELS,
    CALL_TRANSITIONS,
    TALKING,
    WAITING,
    Agent,
    AgentEvent,
    Call,
    CallEvent,
    CallState,
)
from telephony.hotline.stats import Outcome
from telephony.hotline.transfer import QUEUE as QUEUE

RING_TIMEOUT_REASON = "未接听"
DECLINED_REASON = "拒接"
SIGN_IN_REASON = "签入"
BUSY_REASON = "示忙"


def always_open(now: float) -> bool:
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class AcdConfig:
    max_queue: int = 100
    max_wait: float = 600.0
    ring_timeout: float = 15.0
    wrapup: float = 30.0
    announce_every: float = 30.0
    callback_key: str = "1"
    #: service hours: ``hours.parse_hours(...).open_at``
    open_at: Callable[[float], bool] = always_open
    default_handle_time: float = 180.0
    handle_samples: int = 20

    def __post_init__(self) -> None:
        if self.max_queue < 0 or self.handle_samples < 1:
            raise ValueError("max_queue must be ≥ 0 and handle_samples ≥ 1")
        times = (self.max_wait, self.ring_timeout, self.announce_every, self.default_handle_time)
        if min(times) <= 0 or self.wrapup < 0:
            raise ValueError("waits, timeouts and the announcement period must be positive")
        if len(self.callback_key) != 1 or self.callback_key not in "0123456789*#":
            raise ValueError("the callback key is one DTMF digit")


class Acd:
    def __init__(self, config: AcdConfig | None = None) -> None:
        self.config = config or AcdConfig()
        self.calls: dict[str, Call] = {}
        self.agents: dict[str, Agent] = {}
        self.monitoring: dict[str, str] = {}  # supervisor → call
        self._seq = itertools.count(1)
        self._front = itertools.count(1)
        self._ready = itertools.count(1)
        self._handle: deque[float] = deque(maxlen=self.config.handle_samples)

    # ---- checks (raise, change nothing) -----------------------------------------------------

    def _call(self, call_id: str, event: CallEvent | None = None) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise UnknownCall(call_id)
        if event is not None and (call.state, event) not in CALL_TRANSITIONS:
            raise HotlineStateError(
                f"呼叫 {call_id} 当前为{CALL_LABELS[call.state]}，不能执行此操作",
                call_id=call_id,
                state=call.state.value,
            )
        return call

    def _agent(self, agent_id: str, event: AgentEvent, call_id: str | None = None) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is AgentState.SIGNED_OUT:
            if event is not AgentEvent.SIGN_IN:
                raise AgentNotSignedIn(agent_id)
            return agent or Agent(agent_id)
        if (agent.state, event) not in AGENT_TRANSITIONS:
            raise HotlineStateError(
                f"坐席 {agent_id} 当前为{AGENT_LABELS[agent.state]}，不能执行此操作",
                agent_id=agent_id,
                call_id=call_id,
                state=agent.state.value,
            )
        if call_id is not None and agent.call != call_id:
            raise HotlineStateError(
                f"呼叫 {call_id} 不在坐席 {agent_id} 上", agent_id=agent_id, call_id=call_id
            )
        return agent

    def _ready_target(self, to: str, from_agent: str) -> Agent:
        target = self.agents.get(to)
        if to == from_agent or target is None or target.state is not AgentState.READY:
            state = target.state if target is not None else AgentState.SIGNED_OUT
            raise AgentNotReady(to, AGENT_LABELS[state])
        return target

    @staticmethod
    def _own(call: Call, agent: Agent) -> None:
        if call.agent != agent.id:
            raise HotlineStateError(
                f"呼叫 {call.id} 不在坐席 {agent.id} 上", agent_id=agent.id, call_id=call.id
            )

    # ---- moves -------------------------------------------------------------------------------

    @staticmethod
    def _move(call: Call, event: CallEvent) -> None:
        call.state = CALL_TRANSITIONS[(call.state, event)]

    def _set(
        self,
        agent: Agent,
        event: AgentEvent,
        now: float,
        out: list[Command],
        *,
        reason: str = "",
        call: str | None = None,
    ) -> None:
        old = agent.state
        agent.state = AGENT_TRANSITIONS[(old, event)]
        self.agents[agent.id] = agent
        if old is AgentState.WRAP_UP and agent.wrap_from is not None:
            self._handle.append(agent.talked + max(0.0, now - agent.wrap_from))
        agent.since, agent.reason, agent.call = now, reason, call
        agent.ring_until = agent.wrap_until = agent.wrap_from = None
        new = agent.state
        if new is AgentState.READY:
            if event is not AgentEvent.OFFER_CANCELLED or agent.idle_since is None:
                agent.idle_since = now
                agent.ready_order = next(self._ready)
        elif new is not AgentState.OFFERED:
            agent.idle_since = None
        if new is AgentState.OFFERED:
            agent.ring_until = now + self.config.ring_timeout
        elif new is AgentState.TALKING:
            agent.talk_from = now
        elif new is AgentState.WRAP_UP:
            agent.talked = now - agent.talk_from if agent.talk_from is not None else 0.0
            agent.wrap_from = now
            agent.wrap_until = now + self.config.wrapup
        if new is not AgentState.TALKING:
            agent.talk_from = None
        out.append(AgentChanged(agent.id, new, reason, call, now))

    def _leave_agent(self, call: Call, now: float, out: list[Command]) -> None:
        """The caller is no longer with an agent (hung up, transferred, back in the queue)."""
        if call.connected_from is not None:
            call.talked += now - call.connected_from
            call.connected_from = None
        for supervisor in list(call.monitors):
            out.append(Unmonitor(call.id, supervisor))
            del self.monitoring[supervisor]
        call.monitors.clear()

    def _end(
        self, call: Call, outcome: Outcome, now: float, out: list[Command], *, farewell: bool
    ) -> None:
        self._leave_agent(call, now, out)
        if call.answered_at is not None:
            outcome = Outcome.ANSWERED
        if call.queued_at is None:
            waited = 0.0
        else:
            waited = (call.answered_at if call.answered_at is not None else now) - call.queued_at
        out.append(
            CallEnded(
                call.id,
                call.caller,
                outcome,
                call.last_agent,
                call.arrived,
                call.queued_at,
                call.answered_at,
                now,
                waited,
                call.talked,
                call.transfers,
            )
        )
        call.agent = None
        if farewell:
            call.state = CallState.FAREWELL
        else:
            call.state = CallState.ENDED
            del self.calls[call.id]

    def _enqueue(self, call: Call, now: float, out: list[Command], *, front: bool) -> None:
        """Into the queue (from the welcome, or a transfer); music, then the first announcement."""
        if front:
            call.front = next(self._front)
        else:
            call.queued_at = now
        call.wait_from = now
        call.announce_at = now + self.config.announce_every
        out.append(Queued(call.id, self.position(call), front))
        if not call.held:
            out.append(StartMusic(call.id))
        call.held = False
        self._distribute(now, out)
        if call.state is CallState.QUEUED:
            out.append(self._announcement(call))

    def _offer(self, call: Call, agent: Agent, now: float, out: list[Command]) -> None:
        self._move(
            call, CallEvent.OFFER if call.state is CallState.QUEUED else CallEvent.TRANSFER_AGENT
        )
        call.agent = agent.id
        self._set(agent, AgentEvent.OFFER, now, out, call=call.id)
        out.append(Offer(call.id, agent.id, call.caller))

    def _distribute(self, now: float, out: list[Command]) -> None:
        """Offer the first queued call to the agent ready the longest, while there are both."""
        while True:
            queued = [c for c in self.calls.values() if c.state is CallState.QUEUED]
            ready = [a for a in self.agents.values() if a.state is AgentState.READY]
            if not queued or not ready:
                return
            call = min(queued, key=lambda c: c.key)
            agent = min(ready, key=lambda a: (a.idle_since or 0.0, a.ready_order))
            self._offer(call, agent, now, out)

    def _offer_failed(
        self, agent: Agent, call: Call, now: float, out: list[Command], *, why: str, reason: str
    ) -> None:
        """Declined or unanswered: the call back to its place (or to its first agent), the agent
        not ready, and distribution at once."""
        out.append(CancelOffer(call.id, agent.id, why))
        self._set(agent, AgentEvent.OFFER_FAILED, now, out, reason=reason)
        self._call_back(call, now, out)
        self._distribute(now, out)

    def _call_back(self, call: Call, now: float, out: list[Command]) -> None:
        """The offer to ``call``'s agent (or its consultation) is gone: where the caller goes."""
        if call.state is CallState.OFFERED:
            self._move(call, CallEvent.OFFER_FAILED)
            call.agent = None
            out.append(Queued(call.id, self.position(call), call.front is not None))
        else:
            self._move(call, CallEvent.CONSULT_END)
            call.consult = None
            call.held = False
            out.append(StopMusic(call.id))

    def _announcement(self, call: Call) -> PlayPrompt:
        position = self.position(call)
        minutes = max(1, math.ceil(self.expected_wait(position) / 60))
        return PlayPrompt(call.id, Prompt.QUEUE_POSITION, position=position, wait_minutes=minutes)

    # ---- calls -------------------------------------------------------------------------------

    def call_arrived(self, call_id: str, caller: str, now: float) -> list[Command]:
        if call_id in self.calls:
            raise HotlineStateError(f"呼叫 {call_id} 已存在", call_id=call_id)
        waiting = self.waiting_count()
        call = Call(call_id, caller, now, next(self._seq))
        self.calls[call_id] = call
        out: list[Command] = []
        if not self.config.open_at(now):
            call.state = CallState.OUT_OF_HOURS
            out.append(PlayPrompt(call_id, Prompt.OUT_OF_HOURS))
        elif waiting >= self.config.max_queue:
            self._end(call, Outcome.OVERFLOW, now, out, farewell=True)
            out.append(PlayPrompt(call_id, Prompt.OVERFLOW, hang_up=True))
        else:
            out.append(PlayPrompt(call_id, Prompt.WELCOME))
        return out

    def prompt_done(self, call_id: str, now: float) -> list[Command]:
        call = self._call(call_id, CallEvent.PROMPT_DONE)
        out: list[Command] = []
        if call.state is CallState.WELCOME:
            self._move(call, CallEvent.PROMPT_DONE)
            self._enqueue(call, now, out, front=False)
        elif call.state is CallState.OUT_OF_HOURS:
            out.append(Hangup(call_id))
            self._end(call, Outcome.OUT_OF_HOURS, now, out, farewell=False)
        elif call.state is CallState.FAREWELL:
            del self.calls[call_id]
        return out

    def dtmf(self, call_id: str, digit: str, now: float) -> list[Command]:
        """A key the caller pressed: the callback key while waiting or out of hours asks for a
        callback; anything else is ignored."""
        call = self._call(call_id)
        if digit != self.config.callback_key or (
            (call.state, CallEvent.CALLBACK_KEY) not in CALL_TRANSITIONS
        ):
            return []
        out: list[Command] = []
        if call.state is CallState.OFFERED:
            agent = self.agents[call.agent or ""]
            out.append(CancelOffer(call_id, agent.id, "callback"))
            self._set(agent, AgentEvent.OFFER_CANCELLED, now, out)
        if call.state in WAITING:
            out.append(StopMusic(call_id))
        out.append(RecordCallback(call_id, call.caller, now))
        self._end(call, Outcome.CALLBACK, now, out, farewell=True)
        out.append(PlayPrompt(call_id, Prompt.CALLBACK_CONFIRMED, hang_up=True))
        self._distribute(now, out)
        return out

    def caller_hangup(self, call_id: str, now: float) -> list[Command]:
        """The caller hung up (BYE, CANCEL): abandoned if waiting, the end of a connected call."""
        return self._caller_gone(call_id, now, Outcome.ABANDONED)

    def call_failed(self, call_id: str, now: float) -> list[Command]:
        """The caller's leg was lost to a fault (no media, a transport error): outcome failed."""
        return self._caller_gone(call_id, now, Outcome.FAILED)

    def _caller_gone(self, call_id: str, now: float, outcome: Outcome) -> list[Command]:
        call = self._call(call_id, CallEvent.CALLER_HANGUP)
        out: list[Command] = []
        state = call.state
        if state is CallState.FAREWELL:
            del self.calls[call_id]
            return out
        if state is CallState.OUT_OF_HOURS and outcome is Outcome.ABANDONED:
            outcome = Outcome.OUT_OF_HOURS
        if state is CallState.OFFERED:
            agent = self.agents[call.agent or ""]
            out.append(CancelOffer(call_id, agent.id, "abandoned"))
            self._set(agent, AgentEvent.OFFER_CANCELLED, now, out)
        elif state in TALKING:
            if call.consult is not None:
                transfer.end_consultation(self, call, now, out, why="abandoned")
            agent = self.agents[call.agent or ""]
            out.append(Disconnect(call_id, agent.id))
            self._set(agent, AgentEvent.CALL_DONE, now, out)
        self._end(call, outcome, now, out, farewell=False)
        self._distribute(now, out)
        return out

    def hold(self, call_id: str, now: float) -> list[Command]:
        call = self._call(call_id, CallEvent.HOLD)
        if call.held:
            raise HotlineStateError(f"呼叫 {call_id} 已经保持", call_id=call_id)
        call.held = True
        return [StartMusic(call_id)]

    def unhold(self, call_id: str, now: float) -> list[Command]:
        call = self._call(call_id, CallEvent.HOLD)
        if not call.held:
            raise HotlineStateError(f"呼叫 {call_id} 没有保持", call_id=call_id)
        call.held = False
        return [StopMusic(call_id)]

    # ---- agents ------------------------------------------------------------------------------

    def sign_in(self, agent_id: str, now: float) -> list[Command]:
        agent = self._agent(agent_id, AgentEvent.SIGN_IN)
        out: list[Command] = []
        self._set(agent, AgentEvent.SIGN_IN, now, out, reason=SIGN_IN_REASON)
        return out

    def sign_out(self, agent_id: str, now: float) -> list[Command]:
        """签出 (not while talking: hang up first). A ringing offer is withdrawn: the call goes back
        to its place."""
        agent = self._agent(agent_id, AgentEvent.SIGN_OUT)
        out: list[Command] = []
        call = self.calls[agent.call] if agent.state is AgentState.OFFERED and agent.call else None
        if call is not None:
            out.append(CancelOffer(call.id, agent_id, "signed_out"))
        self._set(agent, AgentEvent.SIGN_OUT, now, out)
        if call is not None:
            self._call_back(call, now, out)
        self._distribute(now, out)
        return out

    def set_ready(self, agent_id: str, now: float) -> list[Command]:
        """示闲 (also ends wrap-up early)."""
        agent = self._agent(agent_id, AgentEvent.SET_READY)
        out: list[Command] = []
        self._set(agent, AgentEvent.SET_READY, now, out)
        self._distribute(now, out)
        return out

    def set_not_ready(self, agent_id: str, reason: str, now: float) -> list[Command]:
        """示忙 with a reason code (午休, 培训, …)."""
        agent = self._agent(agent_id, AgentEvent.SET_NOT_READY)
        out: list[Command] = []
        self._set(agent, AgentEvent.SET_NOT_READY, now, out, reason=reason or BUSY_REASON)
        return out

    def wrap_up_done(self, agent_id: str, now: float) -> list[Command]:
        agent = self._agent(agent_id, AgentEvent.WRAP_END)
        out: list[Command] = []
        self._set(agent, AgentEvent.WRAP_END, now, out)
        self._distribute(now, out)
        return out

    def accept(self, agent_id: str, call_id: str, now: float) -> list[Command]:
        agent = self._agent(agent_id, AgentEvent.ACCEPT, call_id)
        call = self._call(call_id)
        out: list[Command] = []
        if call.state is CallState.CONSULTING:
            assert call.consult is not None and call.agent is not None
            self._move(call, CallEvent.CONSULT_ACCEPT)
            call.consult.answered = True
            self._set(agent, AgentEvent.ACCEPT, now, out, call=call_id)
            out.append(Consult(call_id, call.agent, agent_id))
            return out
        self._move(call, CallEvent.ACCEPT)
        if call.answered_at is None:
            call.answered_at = now
        call.connected_from = now
        call.last_agent = agent_id
        self._set(agent, AgentEvent.ACCEPT, now, out, call=call_id)
        out += [StopMusic(call_id), Connect(call_id, agent_id)]
        return out

    def decline(self, agent_id: str, call_id: str, now: float) -> list[Command]:
        agent = self._agent(agent_id, AgentEvent.OFFER_FAILED, call_id)
        call = self._call(call_id)
        out: list[Command] = []
        self._offer_failed(agent, call, now, out, why="declined", reason=DECLINED_REASON)
        return out

    def agent_hangup(self, agent_id: str, call_id: str, now: float) -> list[Command]:
        """The agent hung up: the caller too (the agent goes to wrap-up); or, for the consulted
        agent of an attended transfer, the consultation ends (the caller is back with the first)."""
        call = self._call(call_id)
        consulted = call.consult is not None and call.consult.target == agent_id
        if consulted:
            self._agent(agent_id, AgentEvent.CONSULT_DONE, call_id)
            assert call.consult is not None
            if not call.consult.answered:
                raise HotlineStateError(f"呼叫 {call_id} 的咨询尚未接通", call_id=call_id)
            out: list[Command] = []
            transfer.end_consultation(self, call, now, out, why="consult_cancelled")
            self._call_back(call, now, out)
            self._distribute(now, out)
            return out
        agent = self._agent(agent_id, AgentEvent.CALL_DONE, call_id)
        self._call(call_id, CallEvent.AGENT_HANGUP)
        self._own(call, agent)
        out = [Hangup(call_id), Disconnect(call_id, agent_id)]
        self._set(agent, AgentEvent.CALL_DONE, now, out)
        self._end(call, Outcome.ANSWERED, now, out, farewell=False)
        return out

    # ---- transfers (transfer.py) -------------------------------------------------------------

    def transfer_blind(self, call_id: str, from_agent: str, to: str, now: float) -> list[Command]:
        """To the queue (``QUEUE``: at the front) or to a ready agent (offered; if they do not
        answer, the call goes to the front of the queue). The first agent goes to wrap-up."""
        return transfer.transfer_blind(self, call_id, from_agent, to, now)

    def consult(self, call_id: str, from_agent: str, to: str, now: float) -> list[Command]:
        """Attended transfer, step 1: the caller on hold, a consultation offered to ``to``."""
        return transfer.consult(self, call_id, from_agent, to, now)

    def transfer_complete(self, call_id: str, from_agent: str, now: float) -> list[Command]:
        """Attended transfer, step 2: the caller to the consulted agent; the first to wrap-up."""
        return transfer.transfer_complete(self, call_id, from_agent, now)

    def transfer_cancel(self, call_id: str, from_agent: str, now: float) -> list[Command]:
        """Attended transfer abandoned: the consultation ends, the caller is back, off hold."""
        return transfer.transfer_cancel(self, call_id, from_agent, now)

    # ---- supervisors -------------------------------------------------------------------------

    def monitor(
        self, call_id: str, supervisor: str, mode: MonitorMode, now: float
    ) -> list[Command]:
        """Listen, whisper or barge on a connected call (one call at a time per supervisor)."""
        call = self._call(call_id)
        if call.state not in TALKING:
            raise HotlineStateError(
                f"呼叫 {call_id} 当前为{CALL_LABELS[call.state]}，不能监听", call_id=call_id
            )
        out: list[Command] = []
        previous = self.monitoring.get(supervisor)
        if previous is not None and previous != call_id:
            out.append(Unmonitor(previous, supervisor))
            del self.calls[previous].monitors[supervisor]
        self.monitoring[supervisor] = call_id
        call.monitors[supervisor] = mode
        out.append(Monitor(call_id, supervisor, mode, call.agent))
        return out

    def unmonitor(self, call_id: str, supervisor: str, now: float) -> list[Command]:
        call = self._call(call_id)
        if supervisor not in call.monitors:
            raise HotlineStateError(f"没有在监听呼叫 {call_id}", call_id=call_id)
        del call.monitors[supervisor]
        del self.monitoring[supervisor]
        return [Unmonitor(call_id, supervisor)]

    # ---- timers ------------------------------------------------------------------------------

    def _timers(self) -> list[tuple[float, int, str]]:
        """(when, kind, id): 0 ring timeout, 1 wrap-up end, 2 max wait, 3 announcement."""
        out: list[tuple[float, int, str]] = []
        for a in self.agents.values():
            if a.state is AgentState.OFFERED and a.ring_until is not None:
                out.append((a.ring_until, 0, a.id))
            elif a.state is AgentState.WRAP_UP and a.wrap_until is not None:
                out.append((a.wrap_until, 1, a.id))
        for c in self.calls.values():
            if c.state is CallState.QUEUED and c.wait_from is not None:
                out.append((c.wait_from + self.config.max_wait, 2, c.id))
                if c.announce_at is not None:
                    out.append((c.announce_at, 3, c.id))
        return out

    def next_deadline(self) -> float | None:
        return min((t[0] for t in self._timers()), default=None)

    def tick(self, now: float) -> list[Command]:
        """Fire every timer due at ``now``, earliest first (each may start others)."""
        out: list[Command] = []
        for _ in range(10 * (len(self.calls) + len(self.agents)) + 10):
            due = min((t for t in self._timers() if t[0] <= now), default=None)
            if due is None:
                break
            at, kind, ident = due
            if kind == 0:
                agent = self.agents[ident]
                call = self.calls[agent.call or ""]
                self._offer_failed(
                    agent, call, now, out, why="ring_timeout", reason=RING_TIMEOUT_REASON
                )
            elif kind == 1:
                self._set(self.agents[ident], AgentEvent.WRAP_END, at, out)
                self._distribute(now, out)
            elif kind == 2:
                call = self.calls[ident]
                out.append(StopMusic(ident))
                self._end(call, Outcome.OVERFLOW, now, out, farewell=True)
                out.append(PlayPrompt(ident, Prompt.OVERFLOW, hang_up=True))
            else:
                call = self.calls[ident]
                out.append(self._announcement(call))
                every = self.config.announce_every
                call.announce_at = at + every * (math.floor((now - at) / every) + 1)
        return out

    # ---- views -------------------------------------------------------------------------------

    def waiting_count(self) -> int:
        """Calls that hold a place: in the welcome prompt, queued or ringing an agent."""
        states = (CallState.WELCOME, *WAITING)
        return sum(1 for c in self.calls.values() if c.state in states)

    def position(self, call: Call) -> int:
        return 1 + sum(1 for c in self.calls.values() if c.state in WAITING and c.key < call.key)

    def expected_wait(self, position: int) -> float:
        """Seconds: position × average handle time ÷ max(1, agents signed in)."""
        aht = sum(self._handle) / len(self._handle) if self._handle else None
        signed_in = sum(1 for a in self.agents.values() if a.state is not AgentState.SIGNED_OUT)
        return position * (aht or self.config.default_handle_time) / max(1, signed_in)

    def queue_view(self, now: float) -> list[QueueEntry]:
        waiting = sorted(
            (c for c in self.calls.values() if c.state in WAITING), key=lambda c: c.key
        )
        return [
            QueueEntry(
                c.id,
                c.caller,
                k + 1,
                c.state.value,
                c.agent,
                c.wait_from if c.wait_from is not None else c.arrived,
                now - (c.wait_from if c.wait_from is not None else c.arrived),
            )
            for k, c in enumerate(waiting)
        ]

    def agents_view(self) -> list[AgentView]:
        return [
            AgentView(
                a.id, a.state, a.reason, a.call, a.since, a.idle_since, a.wrap_until, a.ring_until
            )
            for a in sorted(self.agents.values(), key=lambda a: a.id)
        ]
