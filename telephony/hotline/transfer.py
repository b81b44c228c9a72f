"""Transfers for ``acd.Acd``: blind (to the queue or an agent) and attended (consult, complete,
cancel), as functions of the ACD that its methods of the same names call.

Theory of operation: a transfer is a small state machine on top of the call table: CONNECTED
─blind to the queue─▶ QUEUED (at the front); CONNECTED ─blind to an agent─▶ OFFERED (music to the
caller, the target rings; unanswered: to the front of the queue); CONNECTED ─consult─▶ CONSULTING
(caller on hold, the target rings for a consultation) ─target accepts─▶ CONSULTING (the two agents
talk) ─complete─▶ CONNECTED to the target, or ─cancel / declined / unanswered / the target hangs
up─▶ CONNECTED to the first agent, off hold. The first agent goes to wrap-up when the caller leaves
them. Every check runs before any change, as in ``acd.py``; these functions use its private moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telephony.errors import HotlineStateError
from telephony.hotline.commands import (
    CancelOffer,
    Command,
    Connect,
    Disconnect,
    EndConsult,
    Monitor,
    Offer,
    StartMusic,
    StopMusic,
    Transferred,
)
from telephony.hotline.states import AgentEvent, Call, CallEvent, Consultation

if TYPE_CHECKING:
    from telephony.hotline.acd import Acd

#: ``transfer_blind`` to this instead of an agent id: back to the queue.
QUEUE = "queue"


def transfer_blind(acd: Acd, call_id: str, from_agent: str, to: str, now: float) -> list[Command]:
    """To the queue (``QUEUE``: at the front) or to a ready agent (offered; if they do not
    answer, the call goes to the front of the queue). The first agent goes to wrap-up."""
    event = CallEvent.TRANSFER_QUEUE if to == QUEUE else CallEvent.TRANSFER_AGENT
    call = acd._call(call_id, event)
    agent = acd._agent(from_agent, AgentEvent.CALL_DONE, call_id)
    acd._own(call, agent)
    target = None if to == QUEUE else acd._ready_target(to, from_agent)
    out: list[Command] = [Transferred(call_id, from_agent, to), Disconnect(call_id, from_agent)]
    acd._set(agent, AgentEvent.CALL_DONE, now, out)
    acd._leave_agent(call, now, out)
    call.transfers += 1
    call.agent = None
    if target is None:
        acd._move(call, CallEvent.TRANSFER_QUEUE)
        acd._enqueue(call, now, out, front=True)
        return out
    call.front = next(acd._front)
    call.wait_from = now
    call.announce_at = now + acd.config.announce_every
    if not call.held:
        out.append(StartMusic(call_id))
    call.held = False
    acd._offer(call, target, now, out)
    return out


def consult(acd: Acd, call_id: str, from_agent: str, to: str, now: float) -> list[Command]:
    """Attended transfer, step 1: the caller on hold, a consultation offered to ``to``."""
    call = acd._call(call_id, CallEvent.CONSULT)
    agent = acd._agent(from_agent, AgentEvent.CALL_DONE, call_id)
    acd._own(call, agent)
    target = acd._ready_target(to, from_agent)
    out: list[Command] = []
    if not call.held:
        out.append(StartMusic(call_id))
    call.held = True
    acd._move(call, CallEvent.CONSULT)
    call.consult = Consultation(to)
    acd._set(target, AgentEvent.OFFER, now, out, call=call_id)
    out.append(Offer(call_id, to, call.caller, consult_from=from_agent))
    return out


def transfer_complete(acd: Acd, call_id: str, from_agent: str, now: float) -> list[Command]:
    """Attended transfer, step 2: the caller to the consulted agent; the first to wrap-up."""
    call = acd._call(call_id, CallEvent.CONSULT_COMPLETE)
    agent = acd._agent(from_agent, AgentEvent.CALL_DONE, call_id)
    acd._own(call, agent)
    consult = call.consult
    assert consult is not None
    if not consult.answered:
        raise HotlineStateError(f"呼叫 {call_id} 的咨询尚未接通", call_id=call_id)
    target = consult.target
    out: list[Command] = [
        Transferred(call_id, from_agent, target, attended=True),
        EndConsult(call_id, target),
        Disconnect(call_id, from_agent),
        StopMusic(call_id),
        Connect(call_id, target),
    ]
    acd._set(agent, AgentEvent.CALL_DONE, now, out)
    # supervisors stay on the call and now hear (or whisper to) the new agent
    out += [Monitor(call_id, sup, mode, target) for sup, mode in call.monitors.items()]
    acd._move(call, CallEvent.CONSULT_COMPLETE)
    call.consult = None
    call.held = False
    call.agent = call.last_agent = target
    call.transfers += 1
    return out


def transfer_cancel(acd: Acd, call_id: str, from_agent: str, now: float) -> list[Command]:
    """Attended transfer abandoned: the consultation ends, the caller is back, off hold."""
    call = acd._call(call_id, CallEvent.CONSULT_END)
    agent = acd._agent(from_agent, AgentEvent.CALL_DONE, call_id)
    acd._own(call, agent)
    out: list[Command] = []
    end_consultation(acd, call, now, out, why="consult_cancelled")
    acd._call_back(call, now, out)
    acd._distribute(now, out)
    return out


def end_consultation(acd: Acd, call: Call, now: float, out: list[Command], *, why: str) -> None:
    """The consulted agent leaves: ready again (their idle time kept if they only rang)."""
    assert call.consult is not None
    target = acd.agents[call.consult.target]
    if call.consult.answered:
        out.append(EndConsult(call.id, target.id))
        acd._set(target, AgentEvent.CONSULT_DONE, now, out)
    else:
        out.append(CancelOffer(call.id, target.id, why))
        acd._set(target, AgentEvent.OFFER_CANCELLED, now, out)
