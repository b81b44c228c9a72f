"""SIP dialogs (RFC 3261 §12, §13.2.2.4, §14) and the call state table, sans I/O.

Theory of operation: a ``Dialog`` is the peer-to-peer relationship a 2xx (or a tagged 1xx) to an
INVITE creates. It is identified by ``DialogId`` (Call-ID, local tag, remote tag) and holds what
§12.1 says: the local and remote sequence numbers, the local and remote URIs, the remote target (the
peer's Contact) and the route set (Record-Route: reversed on the UAC, §12.1.2, in order on the UAS,
§12.1.1). ``Dialog.uac(invite, response)`` and ``Dialog.uas(invite, local_tag, ...)`` build it;
``request(method, ...)`` makes an in-dialog request per §12.2.1.1 (CSeq + 1, To/From with tags, the
Request-URI and Route for loose or strict routing); ``ack(...)`` makes the ACK for a 2xx per
§13.2.2.4 (its own request: a new branch, the INVITE's CSeq number, the route set);
``receive(request)`` applies §12.2.2 to an in-dialog request (a lower CSeq is refused with 500, a
target refresh updates the remote target) and returns the status to refuse with, or None.

The call's life is a table: ``CallState`` and ``CallEvent`` enums, ``TRANSITIONS`` from (state,
event) to the next state, and ``apply()``, which raises ``IllegalTransition`` on a move the table does
not have and changes nothing. A UAC starts in ``CALLING``; a UAS in ``PROCEEDING`` (the INVITE has
arrived). ``CANCELLED`` and ``FAILED`` end a call that never got confirmed; ``TERMINATED`` ends one
that did. Nothing here has a socket or a clock.

``SipUri`` is the little of RFC 3261 §19.1 the agent needs to route: scheme, user, host, port, params.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from telephony.sdp import Attribute, Direction, MediaDescription, SessionDescription
from telephony.sip.headers import CSeq, Headers, NameAddr, Params, param, parse_params
from telephony.sip.message import Request, Response

MAX_FORWARDS = "70"

# ---- URIs --------------------------------------------------------------------------------------

_URI = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[^@;?]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?\s\[\]]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>;[^?]*)?(?P<headers>\?.*)?$",
    re.I,
)


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user@host:port;params`` (§19.1.1); the user part keeps any ``:password`` out."""

    scheme: str
    host: str
    port: int | None = None
    user: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        m = _URI.match(text.strip())
        if m is None:
            raise ValueError("not a sip: or sips: URI")
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 0 < port < 65536:
            raise ValueError("URI port out of range")
        user = m["user"].partition(":")[0] if m["user"] is not None else None
        return cls(
            m["scheme"].lower(), m["host"], port, user or None, parse_params(m["params"] or "")
        )

    @property
    def loose_route(self) -> bool:
        return param(self.params, "lr") is not None

    def address(self) -> tuple[str, int]:
        """Where to send over UDP without DNS SRV (§18.1.1 default ports: 5060, 5061 for sips)."""
        default = 5061 if self.scheme == "sips" else 5060
        return self.host.strip("[]"), self.port or default


# ---- the call state table -----------------------------------------------------------------------


class CallState(enum.Enum):
    CALLING = "calling"  # UAC: INVITE sent, nothing back yet
    PROCEEDING = "proceeding"  # UAC: 100 received; UAS: INVITE received
    EARLY = "early"  # a tagged 1xx (180 Ringing) sent or received: an early dialog
    CONFIRMED = "confirmed"  # 2xx sent or received: the call is up
    TERMINATING = "terminating"  # our BYE is out
    TERMINATED = "terminated"  # ended after being confirmed
    CANCELLED = "cancelled"  # CANCEL before any 2xx (ours or the peer's)
    FAILED = "failed"  # a final error response, a timeout, or no answer to our CANCEL


class CallEvent(enum.Enum):
    TRYING = "trying"  # 100 (or an untagged 1xx) received
    RINGING = "ringing"  # a tagged 1xx sent or received
    ANSWERED = "answered"  # 2xx to the INVITE sent or received
    REJECTED = "rejected"  # a final 3xx-6xx sent or received (not the 487 after a CANCEL)
    TIMED_OUT = "timed_out"  # timer B, a transport error, no final response after CANCEL
    CANCELLED = "cancelled"  # 487 after our CANCEL, or the peer's CANCEL answered
    BYE_SENT = "bye_sent"  # our BYE is out (hangup, media timeout, no ACK)
    BYE_DONE = "bye_done"  # our BYE answered or timed out
    BYE_RECEIVED = "bye_received"  # the peer's BYE answered 200


S, E = CallState, CallEvent
_RINGING_FROM = (S.CALLING, S.PROCEEDING, S.EARLY)
TRANSITIONS: dict[tuple[CallState, CallEvent], CallState] = {
    (S.CALLING, E.TRYING): S.PROCEEDING,
    (S.PROCEEDING, E.TRYING): S.PROCEEDING,
    **{(s, E.RINGING): S.EARLY for s in _RINGING_FROM},
    (S.EARLY, E.TRYING): S.EARLY,
    **{(s, E.ANSWERED): S.CONFIRMED for s in _RINGING_FROM},
    **{(s, E.REJECTED): S.FAILED for s in _RINGING_FROM},
    **{(s, E.TIMED_OUT): S.FAILED for s in _RINGING_FROM},
    **{(s, E.CANCELLED): S.CANCELLED for s in _RINGING_FROM},
    (S.CONFIRMED, E.BYE_SENT): S.TERMINATING,
    (S.TERMINATING, E.BYE_DONE): S.TERMINATED,
    (S.CONFIRMED, E.BYE_RECEIVED): S.TERMINATED,
    (S.TERMINATING, E.BYE_RECEIVED): S.TERMINATED,  # BYEs crossed
}
del S, E

END_STATES = frozenset({CallState.TERMINATED, CallState.CANCELLED, CallState.FAILED})


class IllegalTransition(RuntimeError):
    """``apply`` was asked for a move ``TRANSITIONS`` does not have (the state is unchanged)."""


def apply(state: CallState, event: CallEvent) -> CallState:
    """The state after ``event``; ``IllegalTransition`` if the table has no such move."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"{event.value} in state {state.value}") from None


# ---- dialogs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_request(cls, request: Request) -> DialogId | None:
        """The id of the dialog an incoming request belongs to (its To tag is ours, §12.2.2)."""
        local, remote = request.to_tag, request.from_tag
        if request.call_id is None or local is None or remote is None:
            return None
        return cls(request.call_id, local, remote)

    @classmethod
    def of_response(cls, response: Response) -> DialogId | None:
        """The id, for the UAC, of the dialog a response belongs to (its From tag is ours)."""
        local, remote = response.from_tag, response.to_tag
        if response.call_id is None or local is None or remote is None:
            return None
        return cls(response.call_id, local, remote)


def _contact_uri(message: Request | Response) -> str | None:
    value = message.header("Contact")
    if value is None:
        return None
    try:
        return NameAddr.parse(value).uri
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Dialog:
    """§12: the dialog state. Frozen: every change returns a new ``Dialog``."""

    id: DialogId
    local_uri: NameAddr  # From of our requests (without the tag)
    remote_uri: NameAddr  # To of our requests (without the tag)
    remote_target: str  # the peer's Contact URI
    route_set: tuple[str, ...] = ()
    local_seq: int = 0  # 0: empty (a UAS that has not sent a request yet)
    remote_seq: int | None = None  # None: empty
    local_contact: str = ""

    @classmethod
    def uac(cls, invite: Request, response: Response, *, local_contact: str = "") -> Dialog:
        """§12.1.2: from our INVITE and its 2xx (or tagged 1xx)."""
        dialog_id = DialogId.of_response(response)
        if dialog_id is None or invite.from_ is None or invite.to is None or invite.cseq is None:
            raise ValueError("response cannot create a dialog (no To tag)")
        routes = tuple(reversed(response.header_all("Record-Route")))
        target = _contact_uri(response) or invite.uri
        return cls(
            dialog_id,
            _untagged(invite.from_),
            _untagged(invite.to),
            target,
            routes,
            invite.cseq.number,
            None,
            local_contact,
        )

    @classmethod
    def uas(
        cls, invite: Request, local_tag: str, *, local_contact: str = "", local_seq: int = 0
    ) -> Dialog:
        """§12.1.1: from an incoming INVITE and the To tag of our 2xx (or tagged 1xx)."""
        remote_tag, cseq = invite.from_tag, invite.cseq
        if invite.call_id is None or remote_tag is None or cseq is None:
            raise ValueError("request cannot create a dialog (no From tag)")
        assert invite.to is not None and invite.from_ is not None
        return cls(
            DialogId(invite.call_id, local_tag, remote_tag),
            _untagged(invite.to),
            _untagged(invite.from_),
            _contact_uri(invite) or "",
            tuple(invite.header_all("Record-Route")),
            local_seq,
            cseq.number,
            local_contact,
        )

    # -- §12.2.1.1 ---------------------------------------------------------------------------

    def _routing(self) -> tuple[str, list[str]]:
        """The Request-URI and Route values: loose routing (first route has ``lr``) keeps the remote
        target as the URI; strict routing puts the first route there and the target last."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0]).uri
        try:
            loose = SipUri.parse(first).loose_route
        except ValueError:
            loose = True
        if loose:
            return self.remote_target, list(self.route_set)
        return first, [*self.route_set[1:], f"<{self.remote_target}>"]

    def destination_uri(self) -> str:
        """The URI an in-dialog request is sent to: the first route if any, else the remote
        target (§12.2.1.1 with §8.1.2)."""
        return NameAddr.parse(self.route_set[0]).uri if self.route_set else self.remote_target

    def destination(self) -> tuple[str, int]:
        """``destination_uri`` as a UDP address (no DNS: an IP literal or a host name)."""
        return SipUri.parse(self.destination_uri()).address()

    def request(
        self,
        method: str,
        *,
        via: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> tuple[Dialog, Request]:
        """A new in-dialog request (not ACK or CANCEL): CSeq is the local sequence number + 1
        (§12.2.1.1), To/From carry the tags, the Request-URI and Route follow the route set, and
        INVITE (a target refresh) carries our Contact. ``via`` is the whole Via value to send."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} takes the INVITE's CSeq; use ack() or a CANCEL builder")
        seq = self.local_seq + 1
        return replace(self, local_seq=seq), self._build(
            method, CSeq(seq, method), via, headers, body
        )

    def ack(
        self,
        invite_cseq: int,
        *,
        via: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """§13.2.2.4: the ACK for a 2xx: built like an in-dialog request, with the INVITE's CSeq
        number and method ACK, a branch of its own (in ``via``), the same route set. ``headers``
        should repeat the INVITE's Authorization / Proxy-Authorization."""
        return self._build("ACK", CSeq(invite_cseq, "ACK"), via, headers, body)

    def _build(
        self,
        method: str,
        cseq: CSeq,
        via: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> Request:
        uri, routes = self._routing()
        pairs: list[tuple[str, str]] = [
            ("Via", via),
            ("Max-Forwards", MAX_FORWARDS),
            ("From", str(self.local_uri.with_tag(self.id.local_tag))),
            ("To", str(self.remote_uri.with_tag(self.id.remote_tag))),
            ("Call-ID", self.id.call_id),
            ("CSeq", str(cseq)),
        ]
        pairs.extend(("Route", r) for r in routes)
        if method == "INVITE" and self.local_contact:
            pairs.append(("Contact", f"<{self.local_contact}>"))
        pairs.extend(headers)
        if body and not any(n.lower() in ("content-type", "c") for n, _ in pairs):
            pairs.append(("Content-Type", "application/sdp"))
        return Request(method, uri, Headers.of(pairs), body)

    # -- §12.2.2 -----------------------------------------------------------------------------

    def receive(self, request: Request) -> tuple[Dialog, int | None]:
        """An in-dialog request from the peer: (the updated dialog, None) to process it, or (self,
        500) when its CSeq is lower than the remote sequence number (out of order). ACK and CANCEL
        carry the INVITE's number and are not checked. A re-INVITE with a Contact refreshes the
        remote target (§12.2.2, simplified: at receipt rather than at our 2xx)."""
        cseq = request.cseq
        if cseq is None:
            return self, 400
        if request.method in ("ACK", "CANCEL"):
            return self, None
        if self.remote_seq is not None and cseq.number < self.remote_seq:
            return self, 500
        new = replace(self, remote_seq=cseq.number)
        if request.method == "INVITE" and (target := _contact_uri(request)) is not None:
            new = replace(new, remote_target=target)
        return new, None

    def refreshed(self, response: Response) -> Dialog:
        """The UAC side of a target refresh: a 2xx to our re-INVITE with a Contact (§12.2.1.2)."""
        target = _contact_uri(response)
        return replace(self, remote_target=target) if target else self


def make_cancel(invite: Request) -> Request:
    """§9.1: the CANCEL for our INVITE: its Request-URI, Call-ID, From, To and Route, the top Via
    only (the same branch, so it reaches the same server transaction), CSeq number with method
    CANCEL. The INVITE's extra headers (Call-Info, Authorization) are not repeated."""
    h = invite.headers
    cseq = invite.cseq or CSeq(1, "INVITE")
    pairs: list[tuple[str, str]] = [("Via", h.get_all("Via")[0]), ("Max-Forwards", MAX_FORWARDS)]
    for name in ("From", "To", "Call-ID"):
        value = h.get(name)
        if value is not None:
            pairs.append((name, value))
    pairs.append(("CSeq", str(CSeq(cseq.number, "CANCEL"))))
    pairs.extend(("Route", r) for r in h.get_all("Route"))
    return Request("CANCEL", invite.uri, Headers(tuple(pairs)))


def _untagged(addr: NameAddr) -> NameAddr:
    return NameAddr(addr.uri, addr.display, tuple((k, v) for k, v in addr.params if k != "tag"))


# ---- hold / unhold -------------------------------------------------------------------------------

_DIRECTION_NAMES = frozenset(d.value for d in Direction)
MIRROR = {
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.RECVONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
    Direction.SENDRECV: Direction.SENDRECV,
}


def with_direction(sdp: SessionDescription, direction: Direction) -> SessionDescription:
    """``sdp`` with every audio stream set to ``direction`` and the o= version + 1 (RFC 3264 §8):
    an offer to hold (sendonly) or unhold (sendrecv), or the answer mirroring one."""
    media: list[MediaDescription] = []
    for m in sdp.media:
        if m.media == "audio" and m.port != 0:
            attrs = tuple(
                a for a in m.attributes if not (a.value is None and a.name in _DIRECTION_NAMES)
            )
            m = replace(m, attributes=(*attrs, Attribute(direction.value)))
        media.append(m)
    session_attrs = tuple(
        a for a in sdp.attributes if not (a.value is None and a.name in _DIRECTION_NAMES)
    )
    origin = replace(sdp.origin, session_version=sdp.origin.session_version + 1)
    return replace(sdp, origin=origin, attributes=session_attrs, media=tuple(media))


def mirrored_answer(local: SessionDescription, offer: SessionDescription) -> SessionDescription:
    """The default answer to a re-INVITE: our last description with the direction mirroring the
    offer's first audio stream (sendonly → recvonly, inactive → inactive, sendrecv → sendrecv)."""
    audio = [m for m in offer.media if m.media == "audio" and m.port != 0]
    offered = offer.media_direction(audio[0]) if audio else Direction.SENDRECV
    if audio and offer.media_connection(audio[0]).is_hold:
        offered = Direction.of(offered.sends, False)  # RFC 2543 hold: c=0.0.0.0
    return with_direction(local, MIRROR[offered])
