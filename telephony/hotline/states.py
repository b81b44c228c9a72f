"""The hotline's two state tables: a call's life and an agent's, and the records the ACD keeps.

Theory of operation: ``CALL_TRANSITIONS`` maps (state, event) to the next state of a call, and
``AGENT_TRANSITIONS`` that of an agent; ``acd.Acd`` checks every move of an event against them
before it changes anything, and refuses (``HotlineStateError``) a move they do not have. The pictures
are in ``acd.py``'s docstring. ``Call`` and ``Agent`` are the mutable records the ACD holds (one per
live call, one per agent ever signed in); ``Consultation`` is an attended transfer's consultation.

The labels are the zh-CN words the consoles use (签出, 示忙, 示闲, 振铃, 通话, 话后整理).
"""

from __future__ import annotations

import dataclasses
import enum

from telephony.hotline.commands import AgentState, MonitorMode


class CallState(enum.Enum):
    WELCOME = "welcome"
    OUT_OF_HOURS = "out_of_hours"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    CONSULTING = "consulting"  # attended transfer: caller on hold, a consultation offered or up
    FAREWELL = "farewell"  # ended; the last prompt plays
    ENDED = "ended"


class CallEvent(enum.Enum):
    PROMPT_DONE = "prompt_done"
    CALLBACK_KEY = "callback_key"
    CALLER_HANGUP = "caller_hangup"
    MAX_WAIT = "max_wait"
    OFFER = "offer"
    ACCEPT = "accept"
    OFFER_FAILED = "offer_failed"  # declined, ring timeout, the agent signed out
    AGENT_HANGUP = "agent_hangup"
    HOLD = "hold"
    TRANSFER_QUEUE = "transfer_queue"
    TRANSFER_AGENT = "transfer_agent"
    CONSULT = "consult"
    CONSULT_ACCEPT = "consult_accept"
    CONSULT_END = "consult_end"  # cancelled, declined, unanswered, the consulted agent hung up
    CONSULT_COMPLETE = "consult_complete"


C, CE = CallState, CallEvent
CALL_TRANSITIONS: dict[tuple[CallState, CallEvent], CallState] = {
    (C.WELCOME, CE.PROMPT_DONE): C.QUEUED,
    (C.OUT_OF_HOURS, CE.PROMPT_DONE): C.ENDED,
    (C.OUT_OF_HOURS, CE.CALLBACK_KEY): C.FAREWELL,
    (C.QUEUED, CE.CALLBACK_KEY): C.FAREWELL,
    (C.OFFERED, CE.CALLBACK_KEY): C.FAREWELL,
    (C.QUEUED, CE.MAX_WAIT): C.FAREWELL,
    (C.QUEUED, CE.OFFER): C.OFFERED,
    (C.OFFERED, CE.ACCEPT): C.CONNECTED,
    (C.OFFERED, CE.OFFER_FAILED): C.QUEUED,
    (C.CONNECTED, CE.HOLD): C.CONNECTED,
    (C.CONNECTED, CE.AGENT_HANGUP): C.ENDED,
    (C.CONNECTED, CE.TRANSFER_QUEUE): C.QUEUED,
    (C.CONNECTED, CE.TRANSFER_AGENT): C.OFFERED,
    (C.CONNECTED, CE.CONSULT): C.CONSULTING,
    (C.CONSULTING, CE.CONSULT_ACCEPT): C.CONSULTING,
    (C.CONSULTING, CE.CONSULT_END): C.CONNECTED,
    (C.CONSULTING, CE.CONSULT_COMPLETE): C.CONNECTED,
    (C.FAREWELL, CE.PROMPT_DONE): C.ENDED,
    # an announcement (or a prompt cut short by an answer) ended: nothing changes
    **{(s, CE.PROMPT_DONE): s for s in (C.QUEUED, C.OFFERED, C.CONNECTED, C.CONSULTING)},
    **{(s, CE.CALLER_HANGUP): C.ENDED for s in C if s is not C.ENDED},
}


class AgentEvent(enum.Enum):
    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    SET_READY = "set_ready"
    SET_NOT_READY = "set_not_ready"
    OFFER = "offer"
    ACCEPT = "accept"
    OFFER_FAILED = "offer_failed"  # declined or ring timeout: not ready
    OFFER_CANCELLED = "offer_cancelled"  # the caller went: ready again
    CALL_DONE = "call_done"  # hung up, transferred away: wrap-up
    CONSULT_DONE = "consult_done"  # a consultation ended: ready
    WRAP_END = "wrap_end"


A, AgE = AgentState, AgentEvent
AGENT_TRANSITIONS: dict[tuple[AgentState, AgentEvent], AgentState] = {
    (A.SIGNED_OUT, AgE.SIGN_IN): A.NOT_READY,
    (A.NOT_READY, AgE.SET_READY): A.READY,
    (A.NOT_READY, AgE.SET_NOT_READY): A.NOT_READY,
    (A.READY, AgE.OFFER): A.OFFERED,
    (A.READY, AgE.SET_NOT_READY): A.NOT_READY,
    (A.OFFERED, AgE.ACCEPT): A.TALKING,
    (A.OFFERED, AgE.OFFER_FAILED): A.NOT_READY,
    (A.OFFERED, AgE.OFFER_CANCELLED): A.READY,
    (A.TALKING, AgE.CALL_DONE): A.WRAP_UP,
    (A.TALKING, AgE.CONSULT_DONE): A.READY,
    (A.WRAP_UP, AgE.SET_READY): A.READY,
    (A.WRAP_UP, AgE.WRAP_END): A.READY,
    (A.WRAP_UP, AgE.SET_NOT_READY): A.NOT_READY,
    **{(s, AgE.SIGN_OUT): A.SIGNED_OUT for s in (A.NOT_READY, A.READY, A.OFFERED, A.WRAP_UP)},
}
del C, CE, A, AgE

AGENT_LABELS = {
    AgentState.SIGNED_OUT: "签出",
    AgentState.NOT_READY: "示忙",
    AgentState.READY: "示闲",
    AgentState.OFFERED: "振铃",
    AgentState.TALKING: "通话",
    AgentState.WRAP_UP: "话后整理",
}
CALL_LABELS = {
    CallState.WELCOME: "欢迎语",
    CallState.OUT_OF_HOURS: "非服务时间提示",
    CallState.QUEUED: "排队",
    CallState.OFFERED: "振铃",
    CallState.CONNECTED: "通话",
    CallState.CONSULTING: "咨询转接",
    CallState.FAREWELL: "结束提示",
    CallState.ENDED: "已结束",
}
WAITING = (CallState.QUEUED, CallState.OFFERED)
TALKING = (CallState.CONNECTED, CallState.CONSULTING)


@dataclasses.dataclass(slots=True)
class Consultation:
    target: str
    answered: bool = False


@dataclasses.dataclass(slots=True)
class Call:
    id: str
    caller: str
    arrived: float
    seq: int  # arrival order: the queue key
    state: CallState = CallState.WELCOME
    front: int | None = None  # set by a transfer: ahead of every arrival-ordered call
    queued_at: float | None = None
    wait_from: float | None = None  # the max wait counts from here
    announce_at: float | None = None
    agent: str | None = None  # offered to, or connected with
    last_agent: str | None = None
    answered_at: float | None = None
    connected_from: float | None = None
    talked: float = 0.0
    held: bool = False
    consult: Consultation | None = None
    transfers: int = 0
    monitors: dict[str, MonitorMode] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> tuple[int, int]:
        return (0, self.front) if self.front is not None else (1, self.seq)


@dataclasses.dataclass(slots=True)
class Agent:
    id: str
    state: AgentState = AgentState.SIGNED_OUT
    reason: str = ""
    call: str | None = None
    since: float = 0.0
    idle_since: float | None = None
    ready_order: int = 0
    ring_until: float | None = None
    wrap_until: float | None = None
    talk_from: float | None = None
    wrap_from: float | None = None
    talked: float = 0.0
