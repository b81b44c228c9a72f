"""Calls as the application sees them: ``Call`` (a confirmed dialog with its session descriptions)
and ``IncomingCall`` (an INVITE waiting for ``answer`` or ``reject``).

Theory of operation: these objects hold state and hand every action to the ``UserAgent`` that made
them (``CallHost``, the agent's side of the seam): they never touch a socket. A call's state moves
only through ``telephony.sip.dialog.apply`` (``StateCell.move``), which also keeps the agent's
counters of calls by state. ``Call.ended`` resolves once, with why the call ended: "local_bye",
"remote_bye", "media_timeout" or "error" (no ACK for our 2xx, the dialog gone at the peer).
``Call.media_seen`` is called by the RTP layer for every packet and only records the time; the
agent's single timer compares it with ``media_timeout``.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from telephony.errors import CallFailed, DigestError, SdpError
from telephony.sdp import SessionDescription
from telephony.sip.dialog import (
    END_STATES,
    CallEvent,
    CallState,
    Dialog,
    DialogId,
    IllegalTransition,
    SipUri,
    apply,
    make_cancel,
    mirrored_answer,
)
from telephony.sip.digest import Credentials, DigestClient
from telephony.sip.endpoint import new_tag
from telephony.sip.message import Request, Response, make_response
from telephony.sip.transaction import (
    ResponseReceived,
    TimedOut,
    TimerConfig,
    TransactionKey,
    TransportFailed,
)

Address = tuple[str, int]
ClientEvent = ResponseReceived | TimedOut | TransportFailed

ReinviteHandler = Callable[[SessionDescription], SessionDescription]


class StateCell:
    """One call's ``CallState``, moved only by ``apply``; counts live calls per active state and
    every call that reached an end state (``counts`` is shared by the agent's calls)."""

    __slots__ = ("counts", "state")

    def __init__(self, initial: CallState, counts: Counter[CallState]) -> None:
        self.state = initial
        self.counts = counts
        counts[initial] += 1

    def move(self, event: CallEvent) -> bool:
        """Apply ``event``; False (nothing changes) when the table has no such move: a late or
        duplicate message the peer sent, absorbed."""
        try:
            new = apply(self.state, event)
        except IllegalTransition:
            return False
        if new is not self.state:
            if self.state not in END_STATES:
                self.counts[self.state] -= 1
            self.counts[new] += 1
            self.state = new
        return True

    @property
    def ended(self) -> bool:
        return self.state in END_STATES


class CallHost(Protocol):
    """What a ``Call`` or ``IncomingCall`` asks of its agent."""

    def _answer(self, incoming: IncomingCall, sdp: SessionDescription) -> Call: ...

    def _reject(self, incoming: IncomingCall, status: int) -> None: ...

    def _ring(self, incoming: IncomingCall) -> None: ...

    def _reschedule(self) -> None: ...


class Call:
    """A confirmed call (we sent or received the 2xx). ``state`` is a ``CallState``."""

    def __init__(
        self,
        host: UacHost,
        dialog: Dialog,
        cell: StateCell,
        *,
        local_sdp: SessionDescription,
        remote_sdp: SessionDescription | None,
        outgoing: bool,
        clock: Callable[[], float],
        invite_cseq: int,
    ) -> None:
        self._host = host
        self.dialog = dialog
        self._cell = cell
        self.local_sdp = local_sdp
        self._remote_sdp = remote_sdp
        self.outgoing = outgoing
        self._clock = clock
        self.invite_cseq = invite_cseq
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.on_reinvite: ReinviteHandler | None = None
        self.last_media: float | None = None
        self.invite_pending = False  # a re-INVITE of ours or the peer's is in progress
        self.bye_task: asyncio.Task[None] | None = None
        self.invite_response: Response | None = None  # our 2xx to the peer's INVITE (UAS)

    def __repr__(self) -> str:
        return f"Call(call_id={self.call_id!r}, state={self.state.value}, outgoing={self.outgoing})"

    @property
    def call_id(self) -> str:
        return self.dialog.id.call_id

    @property
    def state(self) -> CallState:
        return self._cell.state

    @property
    def cell(self) -> StateCell:
        return self._cell

    @property
    def remote_sdp(self) -> SessionDescription:
        """The peer's last description (for a late-offer INVITE: known once the ACK arrives)."""
        if self._remote_sdp is None:
            raise LookupError("the peer has not sent a session description yet")
        return self._remote_sdp

    @remote_sdp.setter
    def remote_sdp(self, sdp: SessionDescription) -> None:
        self._remote_sdp = sdp

    @property
    def has_remote_sdp(self) -> bool:
        return self._remote_sdp is not None

    def media_seen(self) -> None:
        """An RTP packet arrived for this call (cheap: records the loop time; only the first packet
        arms the agent's timer for the media guard)."""
        first = self.last_media is None
        self.last_media = self._clock()
        if first:
            self._host._reschedule()

    async def hangup(self) -> None:
        """Send BYE (retransmitted by its transaction) and wait for its answer or timeout;
        idempotent, and a no-op once the call has ended."""
        await self.end("local_bye")

    async def reinvite(self, offer: SessionDescription) -> SessionDescription:
        """Send a re-INVITE with ``offer`` (hold: sendonly or inactive; unhold: sendrecv) and return
        the peer's answer. A 4xx-6xx raises ``CallFailed("rejected")`` and the call stays as it
        was (RFC 3261 §14.1); 481 or 408 end the call."""
        return await self.send_reinvite(offer)

    def finish(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    # -- the procedures (called through the agent) ------------------------------------------

    async def end(self, reason: str) -> None:
        """BYE once (§15.1.1); later calls wait for the same BYE; nothing once the call ended."""
        if self.bye_task is None:
            if self.state is not CallState.CONFIRMED:
                return
            self._cell.move(CallEvent.BYE_SENT)  # at once: the media guard must not fire again
            self.finish(reason)
            self.bye_task = asyncio.get_running_loop().create_task(self._bye())
        await asyncio.shield(self.bye_task)

    async def _bye(self) -> None:
        host = self._host
        host.stop_retransmitting(self.dialog.id)
        try:
            self.dialog, bye = self.dialog.request("BYE", via=host.new_via())
            _, queue = host.start_client(bye, await host.resolve(self.dialog.destination_uri()))
            await host.final_response(queue)  # timer F bounds it
        finally:
            self._cell.move(CallEvent.BYE_DONE)
            host.calls.pop(self.dialog.id, None)

    def answer_reinvite(self, request: Request, contact: str) -> Response:
        """§14.2: our response to the peer's re-INVITE: 491 while another INVITE is pending, the
        SDP error's status for a bad offer, else 200 with ``on_reinvite``'s answer (default: the
        mirrored direction). After a 200 the INVITE is pending until its ACK."""
        if self.invite_pending:
            return make_response(request, 491)
        try:
            if request.body:
                offer = SessionDescription.parse(request.body)
                handler = self.on_reinvite
                answer = handler(offer) if handler else mirrored_answer(self.local_sdp, offer)
                self.remote_sdp = offer
            else:
                answer = self.local_sdp  # an offerless re-INVITE: our 200 is the offer
        except SdpError as e:
            return make_response(request, e.status, e.reason)
        self.local_sdp = answer
        self.invite_pending = True
        return make_response(
            request,
            200,
            headers=[("Contact", f"<{contact}>"), ("Content-Type", "application/sdp")],
            body=answer.serialize(),
        )

    async def send_reinvite(self, offer: SessionDescription) -> SessionDescription:
        """§14.1: a re-INVITE in the dialog; the 2xx is ACKed like the first one."""
        host = self._host
        if self.state is not CallState.CONFIRMED:
            raise CallFailed("rejected", None, f"call is {self.state.value}")
        if self.invite_pending:
            raise CallFailed("rejected", 491, "a re-INVITE is already in progress")
        self.invite_pending = True
        try:
            self.dialog, request = self.dialog.request(
                "INVITE", via=host.new_via(), body=offer.serialize()
            )
            destination = await host.resolve(self.dialog.destination_uri())
            _, queue = host.start_client(request, destination)
            response = await host.final_response(queue)
        finally:
            self.invite_pending = False
        if response is None or response.status in (408, 481):  # §14.1: the dialog is gone
            host.spawn(self.end("error"))
            raise CallFailed("unreachable", response.status if response else None, "re-INVITE")
        if response.status >= 300:
            raise CallFailed("rejected", response.status, response.reason)
        assert request.cseq is not None
        host.send_ack(self.dialog.ack(request.cseq.number, via=host.new_via()), destination)
        self.dialog = self.dialog.refreshed(response)
        try:
            answer = SessionDescription.parse(response.body)
        except SdpError as e:
            raise CallFailed(
                "rejected", response.status, f"bad SDP in the answer: {e.reason}"
            ) from e
        self.local_sdp, self.remote_sdp = offer, answer
        return answer


class IncomingCall:
    """An INVITE handed to ``UserAgent.on_invite``: ``ring()``, then ``answer(sdp)`` or
    ``reject(status)``. ``cancelled`` is set if the caller CANCELs first (we answered 487)."""

    def __init__(
        self,
        host: CallHost,
        key: TransactionKey,
        request: Request,
        offer: SessionDescription | None,
        local_tag: str,
        cell: StateCell,
        source: tuple[str, int] = ("", 0),
    ) -> None:
        self._host = host
        #: Where the INVITE came from (the trunk, PBX or phone's address and port).
        self.source = source
        self.key = key
        self.request = request
        self.offer = offer
        self.local_tag = local_tag
        self.cell = cell
        self.cancelled = asyncio.Event()
        self.call: Call | None = None

    def __repr__(self) -> str:
        return f"IncomingCall(call_id={self.request.call_id!r}, state={self.cell.state.value})"

    @property
    def user(self) -> str | None:
        """The Request-URI's user part (the number dialled), if any."""
        try:
            return SipUri.parse(self.request.uri).user
        except ValueError:
            return None

    async def ring(self) -> None:
        """Send 180 Ringing (with our To tag: an early dialog)."""
        self._host._ring(self)

    async def answer(self, sdp: SessionDescription) -> Call:
        """Send 200 with ``sdp`` (retransmitted until the ACK; no ACK in 64·T1 → BYE) and return the
        confirmed call. ``CallFailed("cancelled")`` if the caller has CANCELled."""
        return self._host._answer(self, sdp)

    async def reject(self, status: int) -> None:
        """A final 3xx-6xx (486 busy, 603 decline, 404 unknown number, 480 unavailable)."""
        self._host._reject(self, status)


class UacHost(CallHost, Protocol):
    """What the UAC INVITE procedure and a call's BYE and re-INVITE ask of their agent."""

    counts: Counter[CallState]
    calls: dict[DialogId, Call]
    timers: TimerConfig

    @property
    def contact(self) -> str: ...

    def now(self) -> float: ...

    def new_call_id(self) -> str: ...

    def new_via(self) -> str: ...

    def make_request(
        self,
        method: str,
        uri: str,
        *,
        call_id: str,
        local_tag: str,
        cseq: int,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request: ...

    def start_client(
        self, request: Request, destination: Address
    ) -> tuple[TransactionKey, asyncio.Queue[ClientEvent]]: ...

    async def final_response(
        self, queue: asyncio.Queue[ClientEvent], until: float | None = None
    ) -> Response | None: ...

    def stop_retransmitting(self, dialog_id: DialogId) -> None: ...

    def send_ack(self, ack: Request, destination: Address) -> None: ...

    async def resolve(self, uri: str) -> Address: ...

    def spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]: ...


def _outcome(status: int) -> str:
    if status in (486, 600):
        return "busy"
    if status == 408:
        return "unreachable"
    if status in (401, 407):
        return "auth_failed"
    return "rejected"


class Outgoing:
    """One outgoing INVITE (RFC 3261 §13.2): provisional responses, the 2xx and its ACK, one digest
    retry, and CANCEL (§9.1) on the ring timeout or when the caller's task is cancelled."""

    def __init__(
        self,
        host: UacHost,
        uri: str,
        offer: SessionDescription,
        destination: Address,
        headers: Sequence[tuple[str, str]],
        credentials: Credentials | None,
    ) -> None:
        self.host = host
        self.uri = uri
        self.offer = offer
        self.destination = destination
        self.headers = list(headers)
        self.digest = DigestClient(credentials) if credentials is not None else None
        self.cell = StateCell(CallState.CALLING, host.counts)
        self.call_id = host.new_call_id()
        self.tag = new_tag()
        self.cseq = 1
        self.auth: list[tuple[str, str]] = []
        self.deadline = math.inf
        self._reset()

    def _reset(self) -> None:
        self.provisional = False
        self.cancel_wanted = False
        self.cancel_deadline: float | None = None
        self.invite = self.host.make_request(
            "INVITE",
            self.uri,
            call_id=self.call_id,
            local_tag=self.tag,
            cseq=self.cseq,
            extra=[*self.headers, *self.auth],
            body=self.offer.serialize(),
        )
        _, self.queue = self.host.start_client(self.invite, self.destination)

    async def run(self, ring_timeout: float) -> Call:
        self.deadline = self.host.now() + ring_timeout
        try:
            for _ in range(2):  # the first INVITE and at most one authenticated retry
                response = await self._final()
                if response is not None and response.status in (401, 407) and self._retry(response):
                    continue
                return await self._outcome(response)
            raise AssertionError("unreachable: the retry loop always returns")
        except asyncio.CancelledError:
            if not self.cell.ended:
                self.host.spawn(self._abandon())
            raise

    def _retry(self, response: Response) -> bool:
        """Answer a 401/407 once (new CSeq, new branch, the same Call-ID and From tag)."""
        if self.digest is None or self.auth or self.cancel_wanted:
            return False
        proxy = response.status == 407
        try:
            self.digest.challenged(
                response.header_all("Proxy-Authenticate" if proxy else "WWW-Authenticate"),
                proxy=proxy,
            )
        except DigestError:
            return False
        self.auth = self.digest.authorizations("INVITE", self.uri, body=self.offer.serialize())
        if not self.auth:
            return False
        self.cseq += 1
        self._reset()
        return True

    def _cancel(self) -> None:
        """§9.1: CANCEL once a provisional response has come; before that, when one comes."""
        self.cancel_wanted = True
        if self.provisional and self.cancel_deadline is None:
            self.cancel_deadline = self.host.now() + 64 * self.host.timers.t1
            self.host.start_client(make_cancel(self.invite), self.destination)

    async def _final(self) -> Response | None:
        """The INVITE's final response; None on timer B, a transport error, or no final within
        64·T1 of our CANCEL (the ring timeout sends CANCEL on the way)."""
        for _ in range(10_000):  # bounded: each turn is a distinct response or a deadline
            if self.cancel_deadline is not None:
                until: float | None = self.cancel_deadline
            else:
                until = None if self.cancel_wanted else self.deadline
            try:
                async with asyncio.timeout_at(until):
                    event = await self.queue.get()
            except TimeoutError:
                if self.cancel_deadline is not None:
                    return None
                self._cancel()
                continue
            if not isinstance(event, ResponseReceived):
                return None
            response = event.response
            if response.status >= 200:
                return response
            self.provisional = True
            tagged = response.to_tag is not None and response.status > 100
            self.cell.move(CallEvent.RINGING if tagged else CallEvent.TRYING)
            if self.cancel_wanted:
                self._cancel()
        return None

    async def _outcome(self, response: Response | None) -> Call:
        cancelled = self.cancel_wanted
        if response is None:
            self.cell.move(CallEvent.TIMED_OUT)
            if cancelled and self.provisional:
                raise CallFailed("no_answer", None, "no final response to CANCEL")
            raise CallFailed("unreachable", None, "no response (timer B)")
        if response.status < 300:
            call = await self._confirm(response)
            if cancelled:  # the 2xx crossed our CANCEL: the call exists, end it
                await call.hangup()
                raise CallFailed("no_answer", response.status, "answered after the ring timeout")
            if not call.has_remote_sdp:
                await call.hangup()
                raise CallFailed("rejected", response.status, "no usable SDP in the answer")
            return call
        if cancelled and response.status == 487:
            self.cell.move(CallEvent.CANCELLED)
            raise CallFailed("no_answer", 487, response.reason)
        self.cell.move(CallEvent.REJECTED)
        outcome = _outcome(response.status)
        if self.auth and response.status == 403:
            outcome = "auth_failed"  # refused after our authenticated retry
        raise CallFailed(outcome, response.status, response.reason)

    async def _confirm(self, response: Response) -> Call:
        """§13.2.2.4: the dialog from the 2xx, and its ACK (sent by us, kept for retransmits)."""
        dialog = Dialog.uac(self.invite, response, local_contact=self.host.contact)
        ack = dialog.ack(self.cseq, via=self.host.new_via(), headers=self.auth)
        destination = await self.host.resolve(dialog.destination_uri())
        self.host.send_ack(ack, destination)
        remote: SessionDescription | None = None
        try:
            remote = SessionDescription.parse(response.body) if response.body else None
        except SdpError:
            remote = None
        self.cell.move(CallEvent.ANSWERED)
        call = Call(
            self.host,
            dialog,
            self.cell,
            local_sdp=self.offer,
            remote_sdp=remote,
            outgoing=True,
            clock=self.host.now,
            invite_cseq=self.cseq,
        )
        self.host.calls[dialog.id] = call
        return call

    async def _abandon(self) -> None:
        """The caller's task was cancelled: CANCEL, wait for the final; a 2xx is ACKed and BYEd."""
        self._cancel()
        response = await self._final()
        if response is None:
            self.cell.move(CallEvent.TIMED_OUT)
        elif response.status < 300:
            call = await self._confirm(response)
            await call.hangup()
        else:
            self.cell.move(CallEvent.CANCELLED)
