"""What the ACD (``acd.py``) tells its adapter to do, and the views it offers of the queue and agents.

Theory of operation: every public ``Acd`` method returns a list of *commands*, in the order the
adapter carries them out. Media commands act on the caller's leg (``call``) and the agents' legs:

- ``PlayPrompt``: play one prompt to the caller; it takes precedence over hold music, which resumes
  when the prompt ends; a later ``PlayPrompt`` replaces one still playing. The adapter reports
  ``prompt_done`` when it ends. With ``hang_up`` the ACD has already ended the call (``CallEnded``
  came before it): the adapter hangs up the caller when the prompt ends.
- ``StartMusic`` / ``StopMusic``: hold music to the caller (in the queue, on hold, while a transfer
  or consultation rings).
- ``Offer`` / ``CancelOffer``: ring an agent (the console or desk phone) / stop ringing it.
  ``consult_from`` marks an attended transfer's consultation from another agent.
- ``Connect``: bridge the caller and the agent (replacing any other agent on the caller's leg;
  it stops any prompt). ``Disconnect``: that agent leaves the caller's leg.
- ``Consult`` / ``EndConsult``: bridge the consulting agent and the consulted one (the caller, on
  hold, hears music) / drop the consulted agent's leg.
- ``Monitor`` / ``Unmonitor``: a supervisor listens, whispers to the agent, or barges in.
- ``Hangup``: hang up the caller's leg now.

Record commands are what the service stores and publishes: ``Queued``, ``Transferred``,
``RecordCallback``, ``CallEnded`` (exactly once per call, with its outcome and times; ``record`` is
the ``stats.CallRecord`` for the board) and ``AgentChanged`` (each agent state change, for the
``agents`` channel and the occupancy log). The ``queue`` channel is best fed from
``Acd.queue_view(now)`` after each batch: the waiting calls in order, with position and wait.
"""

from __future__ import annotations

import dataclasses
import enum

from telephony.hotline.stats import CallRecord, Outcome


class Prompt(enum.Enum):
    """The prompts the ACD asks for (``prompts.py`` holds their audio)."""

    WELCOME = "welcome"
    OUT_OF_HOURS = "out_of_hours"  # offers the callback key
    OVERFLOW = "overflow"  # queue full, or the maximum wait reached
    QUEUE_POSITION = "queue_position"  # "您前面还有 N 位，预计等待 M 分钟" (position, wait_minutes)
    CALLBACK_CONFIRMED = "callback_confirmed"


class AgentState(enum.Enum):
    SIGNED_OUT = "signed_out"  # 签出
    NOT_READY = "not_ready"  # 示忙 (with a reason)
    READY = "ready"  # 示闲
    OFFERED = "offered"  # 振铃
    TALKING = "talking"  # 通话
    WRAP_UP = "wrap_up"  # 话后整理


class MonitorMode(enum.Enum):
    LISTEN = "listen"  # 监听: hears both sides
    WHISPER = "whisper"  # 耳语: heard by the agent only
    BARGE = "barge"  # 强插: heard by both


@dataclasses.dataclass(frozen=True, slots=True)
class PlayPrompt:
    call: str
    prompt: Prompt
    position: int | None = None
    wait_minutes: int | None = None
    hang_up: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class StartMusic:
    call: str


@dataclasses.dataclass(frozen=True, slots=True)
class StopMusic:
    call: str


@dataclasses.dataclass(frozen=True, slots=True)
class Offer:
    call: str
    agent: str
    caller: str
    consult_from: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CancelOffer:
    call: str
    agent: str
    #: ring_timeout | declined | abandoned | callback | signed_out | consult_cancelled
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    call: str
    agent: str


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnect:
    call: str
    agent: str


@dataclasses.dataclass(frozen=True, slots=True)
class Consult:
    call: str
    agent: str
    target: str


@dataclasses.dataclass(frozen=True, slots=True)
class EndConsult:
    call: str
    target: str


@dataclasses.dataclass(frozen=True, slots=True)
class Monitor:
    call: str
    supervisor: str
    mode: MonitorMode
    agent: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Unmonitor:
    call: str
    supervisor: str


@dataclasses.dataclass(frozen=True, slots=True)
class Hangup:
    call: str


@dataclasses.dataclass(frozen=True, slots=True)
class Queued:
    call: str
    position: int
    #: True: a transfer put it at the front of the queue.
    front: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Transferred:
    call: str
    from_agent: str
    #: an agent id, or "queue"
    to: str
    attended: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class RecordCallback:
    call: str
    caller: str
    at: float


@dataclasses.dataclass(frozen=True, slots=True)
class CallEnded:
    """A call's end, exactly once per call: what ``hotline_calls`` stores."""

    call: str
    caller: str
    outcome: Outcome
    #: the last agent connected to the call (None if none was)
    agent: str | None
    arrived: float
    queued_at: float | None
    answered_at: float | None
    ended: float
    #: seconds from queue entry to the first answer, or to the end if nobody answered
    waited: float
    #: seconds the caller was connected to agents
    talked: float
    transfers: int

    @property
    def record(self) -> CallRecord:
        return CallRecord(self.arrived, self.queued_at, self.answered_at, self.ended, self.outcome)


@dataclasses.dataclass(frozen=True, slots=True)
class AgentChanged:
    agent: str
    state: AgentState
    reason: str
    call: str | None
    at: float


Command = (
    PlayPrompt
    | StartMusic
    | StopMusic
    | Offer
    | CancelOffer
    | Connect
    | Disconnect
    | Consult
    | EndConsult
    | Monitor
    | Unmonitor
    | Hangup
    | Queued
    | Transferred
    | RecordCallback
    | CallEnded
    | AgentChanged
)


@dataclasses.dataclass(frozen=True, slots=True)
class QueueEntry:
    """A waiting call, for the queue board."""

    call: str
    caller: str
    position: int
    #: "queued", or "offered" while an agent's phone rings
    state: str
    agent: str | None
    waiting_since: float
    wait: float


@dataclasses.dataclass(frozen=True, slots=True)
class AgentView:
    agent: str
    state: AgentState
    reason: str
    call: str | None
    #: when the agent entered this state
    since: float
    #: when the agent became ready (the longest-idle order), while ready or offered
    idle_since: float | None
    wrap_until: float | None
    ring_until: float | None
