"""Errors of the telephony package, one root, carrying data (the SIP status to answer), not only text.

Tree::

    CityhubError (hub.core.errors)
    └── TelephonyError                  anything the telephony core refuses
        ├── SipProtocolError            a peer broke the protocol; ``status`` is the SIP answer
        │   ├── MalformedRequest        a request readable enough to answer: ``request`` holds what parsed
        │   ├── SipGarbage              not SIP at all, or unanswerable (a bad response): drop, count
        │   └── SdpError                malformed or oversized SDP body (400)
        │       └── SdpNegotiationError no common codec / unusable offer (488 Not Acceptable Here)
        ├── DigestError                 a malformed or unusable digest challenge, or credentials rejected
        ├── CallFailed                  an outgoing call that did not get answered; ``outcome`` says why
        ├── RtpError                    a short or malformed RTP/RTCP/telephone-event packet: drop, count
        └── HotlineError                the 12319 ACD refused an event (``telephony.hotline.acd``)
            ├── UnknownCall             no such call (also a NotFound: 404 at the HTTP edge)
            ├── AgentNotSignedIn        the agent is 签出 (also a Conflict: 409)
            └── HotlineStateError       not in this state (also an IllegalTransition: 409)
                └── AgentNotReady       a transfer or consultation to an agent who is not 示闲

The sans-I/O cores raise these; the adapters translate them at the edge (a response with ``status``
and ``reason`` for a request, a dropped datagram counted in the metrics otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from hub.core.errors import CityhubError, Conflict, IllegalTransition, NotFound

if TYPE_CHECKING:
    from telephony.sip.message import Request


class TelephonyError(CityhubError):
    code = "telephony_error"


class SipProtocolError(TelephonyError):
    """A SIP peer sent something we refuse; answer it with ``status`` and ``reason``."""

    code = "sip_protocol_error"

    def __init__(self, status: int, reason: str, *, details: Any = None) -> None:
        super().__init__(f"{status} {reason}", details=details)
        self.status = status
        self.reason = reason


class MalformedRequest(SipProtocolError):
    """A request whose start line (and the headers that parsed) are readable, so it can be answered:
    ``make_response(error.request, error.status, error.reason)``; e.g. 400 "Bad Request (missing
    Call-ID)", 505 for another SIP version, 513 for an oversized message."""

    code = "sip_malformed_request"

    def __init__(self, status: int, reason: str, *, request: Request, details: Any = None) -> None:
        super().__init__(status, reason, details=details)
        self.request = request


class SipGarbage(SipProtocolError):
    """Not a SIP message at all (or one nobody can answer, e.g. a malformed response): drop it and count
    it. ``status`` is 0: there is nothing to send back."""

    code = "sip_garbage"

    def __init__(self, reason: str, *, details: Any = None) -> None:
        super().__init__(0, reason, details=details)


class SdpError(SipProtocolError):
    """A session description that does not parse or breaks a limit (answered 400 by default)."""

    code = "sdp_error"

    def __init__(self, reason: str, *, status: int = 400, details: Any = None) -> None:
        super().__init__(status, reason, details=details)


class SdpNegotiationError(SdpError):
    """Offer/answer failed (no common codec, no usable media): ``488 Not Acceptable Here``."""

    code = "sdp_negotiation_error"

    def __init__(self, reason: str = "Not Acceptable Here", *, details: Any = None) -> None:
        super().__init__(reason, status=488, details=details)


class DigestError(TelephonyError):
    """A digest challenge we cannot answer (malformed, over a limit, no algorithm or qop we support),
    or, with ``rejected``, a realm that refused our credentials. Never carries the password."""

    code = "digest_error"

    def __init__(self, reason: str, *, realm: str | None = None, rejected: bool = False) -> None:
        super().__init__(reason, details={"realm": realm, "rejected": rejected})
        self.reason = reason
        self.realm = realm
        self.rejected = rejected


class RtpError(TelephonyError):
    """An RTP, RTCP or RFC 4733 payload that does not parse or breaks a limit (the datagram is dropped)."""

    code = "rtp_error"

    def __init__(self, reason: str, *, details: Any = None) -> None:
        super().__init__(reason, details=details)
        self.reason = reason


class CallFailed(TelephonyError):
    """An INVITE that did not become a call. ``outcome`` is one of ``OUTCOMES``: "busy" (486, 600),
    "rejected" (603 and any other 3xx-6xx), "no_answer" (our ring timeout CANCELled it),
    "unreachable" (timer B, a transport error, 408), "auth_failed" (401/407 without usable
    credentials, or refused after our one retry), "cancelled" (the caller's task was cancelled, or
    the UAS side: the peer CANCELled before we answered). ``status`` is the final response's, if any."""

    code = "call_failed"
    OUTCOMES: ClassVar[frozenset[str]] = frozenset(
        {"busy", "rejected", "no_answer", "unreachable", "auth_failed", "cancelled"}
    )

    def __init__(self, outcome: str, status: int | None = None, reason: str = "") -> None:
        if outcome not in self.OUTCOMES:
            raise ValueError(f"unknown call outcome {outcome!r}")
        text = f"{outcome} ({status} {reason})" if status is not None else f"{outcome} {reason}"
        super().__init__(text.strip(), details={"outcome": outcome, "status": status})
        self.outcome = outcome
        self.status = status
        self.reason = reason


class HotlineError(TelephonyError):
    """The hotline's ACD refused an event; the ACD is unchanged. The message is zh-CN, for the agent's
    console; ``details`` names the call, the agent and the state."""

    code = "hotline_error"


class UnknownCall(HotlineError, NotFound):
    """An event for a call the ACD does not hold (never arrived, or already gone)."""

    code = "hotline_unknown_call"

    def __init__(self, call_id: str) -> None:
        super().__init__(f"没有这个呼叫：{call_id}", details={"call_id": call_id})
        self.call_id = call_id


class AgentNotSignedIn(HotlineError, Conflict):
    """An agent event (other than 签入) for an agent who is not signed in."""

    code = "hotline_agent_not_signed_in"

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"坐席 {agent_id} 未签入", details={"agent_id": agent_id})
        self.agent_id = agent_id


class HotlineStateError(HotlineError, IllegalTransition):
    """An event the call's or the agent's state does not allow (accepting a call that was not
    offered to you, holding a call twice, signing out while talking)."""

    code = "hotline_illegal_state"

    def __init__(
        self,
        message: str,
        *,
        call_id: str | None = None,
        agent_id: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(
            message, details={"call_id": call_id, "agent_id": agent_id, "state": state}
        )
        self.call_id = call_id
        self.agent_id = agent_id
        self.state = state


class AgentNotReady(HotlineStateError):
    """A transfer or consultation to an agent who is not 示闲 (ready)."""

    code = "hotline_agent_not_ready"

    def __init__(self, agent_id: str, state: str) -> None:
        super().__init__(
            f"坐席 {agent_id} 当前不是示闲状态（{state}），不能转接", agent_id=agent_id, state=state
        )
