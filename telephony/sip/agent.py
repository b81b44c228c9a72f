"""The SIP user agent: the asyncio pump around ``SipEndpoint``, ``TransactionLayer`` and ``Dialog``.

Theory of operation: every datagram the endpoint parses goes into ``TransactionLayer.receive`` with
``now = loop.time()``; the outputs are dispatched at once: ``Send`` to the socket, responses to the
waiting client coroutine (one ``asyncio.Queue`` per client transaction key), new requests to the UAS
code, a 2xx retransmission that matches no transaction to the ACK we already sent (§13.2.2.4: ACK it
again). One timer (``loop.call_at``) is armed on the earliest of the layer's ``next_deadline()``,
the 2xx retransmitters' (§13.3.1.4) and the calls' media deadlines; when it fires everything due is
ticked and the timer re-armed. Nothing blocks and nothing sleeps in a loop.

REGISTER (either way of a dialog) goes to ``on_register`` (the hub as a registrar for desk
phones: ``telephony.sip.registrar``), which returns the final response; 501 when none is set.

UAC (``invite``): INVITE with the caller's extra headers; 1xx move the call (§13.2.2.1); a 2xx
creates the dialog and is ACKed by the core (a new branch, never through a transaction); 401/407
are answered once with ``DigestClient``; the ring timeout (or the task being cancelled) sends CANCEL
(§9.1, only after a provisional response: before one it waits for it or for timer B) and waits for the
487. Finals map to ``CallFailed`` outcomes (486/600 busy, 408 and timer B unreachable, 603 and the
rest rejected); the procedure is ``call.Outgoing``. UAS (``on_invite``): 100 Trying at once, the
handler answers or rejects (``IncomingCall``), CANCEL gets 200 and the INVITE 487 (§9.2); our 2xx
ends the INVITE server transaction, so a retransmitted INVITE arriving after it is answered with
the same 2xx (never a second call). Both: BYE, re-INVITE (hold/unhold;
``Call.on_reinvite`` or the mirrored direction answers), OPTIONS, 481 for unknown dialogs, 491 for
a re-INVITE crossing ours, 500 for an out-of-order CSeq (§12.2.2), and a media guard: a call that has
seen RTP and then none for ``media_timeout`` seconds is ended with BYE ("media_timeout").

ICMP errors are not attributable on an unconnected UDP socket (Linux reports none without
IP_RECVERR), so an unreachable peer is found by timer B/F. Credentials are never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import math
import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Self

from telephony.errors import CallFailed, DigestError, SdpError
from telephony.sdp import SessionDescription
from telephony.sip.call import Call, ClientEvent, IncomingCall, Outgoing, StateCell
from telephony.sip.dialog import (
    CallEvent,
    CallState,
    Dialog,
    DialogId,
    SipUri,
)
from telephony.sip.digest import Credentials, DigestClient
from telephony.sip.endpoint import ACCEPT, ALLOW, SipEndpoint, new_tag
from telephony.sip.headers import CSeq, Headers, NameAddr
from telephony.sip.message import Request, Response, make_response
from telephony.sip.transaction import (
    DEFAULT_TIMERS,
    NoAck,
    Output,
    RequestReceived,
    ResponseReceived,
    Send,
    Terminated,
    TimedOut,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
    TransportFailed,
    TwoXXRetransmitter,
    UnmatchedResponse,
)

__all__ = ["Call", "CallFailed", "Credentials", "IncomingCall", "UserAgent"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
InviteHandler = Callable[[IncomingCall], Awaitable[None]]
#: A REGISTER's answer (``telephony.sip.registrar``); None: nobody registers phones here (501).
RegisterHandler = Callable[[Request, Address], Response | None]
SUPPORTED = ""
BUSY = frozenset({486, 600})


class UserAgent:
    """One SIP UDP socket making and taking calls. ``async with UserAgent("127.0.0.1", 0) as ua``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str = "cityhub",
        advertise: str = "",
        timers: TimerConfig = DEFAULT_TIMERS,
        media_timeout: float = 30.0,
    ) -> None:
        self.user = user
        self.advertise = advertise
        self.timers = timers
        self.media_timeout = media_timeout
        self.endpoint = SipEndpoint(
            host, port, on_request=self._on_request, on_response=self._on_response
        )
        self.layer = TransactionLayer(timers)
        self.on_invite: InviteHandler | None = None
        self.on_register: RegisterHandler | None = None
        self.counts: Counter[CallState] = Counter()
        self.retransmissions = 0  # our requests and responses sent again by a timer
        self.absorbed = 0  # the peer's retransmitted requests answered by a transaction
        self.calls: dict[DialogId, Call] = {}
        self._pending: dict[TransactionKey, IncomingCall] = {}
        self._waiters: dict[TransactionKey, asyncio.Queue[ClientEvent]] = {}
        self._rtx: dict[DialogId, TwoXXRetransmitter] = {}
        self._acks: dict[tuple[DialogId, int], tuple[Request, Address, float]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.endpoint.start()

    def close(self) -> None:
        """Send one BYE for every live call (no wait), stop the timer and the socket."""
        for call in list(self.calls.values()):
            if call.state is CallState.CONFIRMED and call.cell.move(CallEvent.BYE_SENT):
                try:
                    _, bye = call.dialog.request("BYE", via=self.new_via())
                    self.endpoint.send(bye, call.dialog.destination())
                except (ValueError, OSError):
                    pass
                call.cell.move(CallEvent.BYE_DONE)
                call.finish("local_bye")
        for task in list(self._tasks):
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.endpoint.close()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.endpoint.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    @property
    def local_address(self) -> Address:
        return self.endpoint.local_address

    @property
    def stats(self) -> dict[str, int]:
        """Endpoint counters, retransmissions (ours) and absorbed (the peer's), and calls by state:
        live calls in each active state, every call that ever reached an end state."""
        out = dataclasses.asdict(self.endpoint.stats)
        out["retransmissions"] = self.retransmissions
        out["absorbed"] = self.absorbed
        for state in CallState:
            out[f"calls_{state.value}"] = self.counts[state]
        return out

    # ---- the pump ------------------------------------------------------------------------

    def now(self) -> float:
        assert self._loop is not None, "UserAgent not started"
        return self._loop.time()

    def _host_port(self) -> tuple[str, int]:
        host, port = self.local_address
        adv = self.advertise or host
        if adv in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is not an address
            adv = "127.0.0.1"
        return adv, port

    def _hostport_text(self) -> str:
        host, port = self._host_port()
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def allow(self) -> str:
        """The Allow header: REGISTER too while a registrar answers it (``on_register``)."""
        methods = (*ALLOW, "REGISTER") if self.on_register is not None else ALLOW
        return ", ".join(methods)

    def new_via(self) -> str:
        return f"SIP/2.0/UDP {self._hostport_text()};branch=z9hG4bK{secrets.token_hex(10)};rport"

    @property
    def contact(self) -> str:
        return f"sip:{self.user}@{self._hostport_text()}"

    def _on_request(self, request: Request, source: Address) -> None:
        out = self.layer.receive(request, source, self.now())
        if request.method != "ACK" and not any(isinstance(o, RequestReceived) for o in out):
            self.absorbed += 1
        self._feed(out)

    def _on_response(self, response: Response, source: Address) -> None:
        self._feed(self.layer.receive(response, source, self.now()))

    def _feed(self, outputs: list[Output], *, timer: bool = False) -> None:
        for o in outputs:
            if isinstance(o, Send):
                if timer and not (isinstance(o.message, Response) and o.message.status == 100):
                    self.retransmissions += 1
                self.endpoint.send(o.message, o.destination)
            elif isinstance(o, ResponseReceived | TimedOut | TransportFailed):
                queue = self._waiters.get(o.key)
                if queue is not None:
                    queue.put_nowait(o)
            elif isinstance(o, RequestReceived):
                self._dispatch(o)
            elif isinstance(o, UnmatchedResponse):
                self._unmatched(o.response)
            elif isinstance(o, Terminated):
                self._waiters.pop(o.key, None)
            elif isinstance(o, NoAck):
                self._no_ack(o.response)
        self._reschedule()

    def _reschedule(self) -> None:
        if self._loop is None:
            return
        layer = self.layer.next_deadline()
        deadline = math.inf if layer is None else layer
        for rtx in self._rtx.values():
            d = rtx.next_deadline()
            if d is not None:
                deadline = min(deadline, d)
        for call in self.calls.values():
            if call.last_media is not None and call.state is CallState.CONFIRMED:
                deadline = min(deadline, call.last_media + self.media_timeout)
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline < math.inf:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self.now()
        out = self.layer.tick(now)
        for did, rtx in list(self._rtx.items()):
            out.extend(rtx.tick(now))
            if rtx.done:
                del self._rtx[did]
        for call in list(self.calls.values()):
            seen = call.last_media
            active = seen is not None and call.state is CallState.CONFIRMED
            if active and seen is not None and now - seen >= self.media_timeout:
                log.info("call %s: no RTP for %.0f s, hanging up", call.call_id, now - seen)
                self.spawn(call.end("media_timeout"))
        for held, (_, _, expires) in list(self._acks.items()):
            if expires <= now:
                del self._acks[held]
        self._feed(out, timer=True)

    def spawn(self, coro: Awaitable[object]) -> asyncio.Task[object]:
        async def run() -> object:
            return await coro

        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            log.error("SIP agent task failed", exc_info=e)

    def start_client(
        self, request: Request, destination: Address
    ) -> tuple[TransactionKey, asyncio.Queue[ClientEvent]]:
        """Start a client transaction; its responses and timeouts arrive on the queue."""
        key, out = self.layer.send_request(request, destination, self.now())
        queue: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._waiters[key] = queue
        self._feed(out)
        return key, queue

    async def final_response(
        self, queue: asyncio.Queue[ClientEvent], until: float | None = None
    ) -> Response | None:
        """The final response from a client transaction's queue; None on a timeout or transport
        error (the transaction's, or the loop time ``until``)."""
        try:
            async with asyncio.timeout_at(until):
                for _ in range(10_000):  # bounded: each item is a distinct response or the end
                    event = await queue.get()
                    if not isinstance(event, ResponseReceived):
                        return None
                    if event.response.status >= 200:
                        return event.response
        except TimeoutError:
            pass
        return None

    async def resolve(self, uri: str) -> Address:
        target = SipUri.parse(uri)
        host, port = target.address()
        try:
            ipaddress.ip_address(host)
            return host, port
        except ValueError:
            pass
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
        )
        if not infos:
            raise OSError(f"cannot resolve {host}")
        return str(infos[0][4][0]), port

    def send_ack(self, ack: Request, destination: Address) -> None:
        """Send the ACK for a 2xx and keep it for 64·T1 to answer the 2xx's retransmissions."""
        did = DialogId(ack.call_id or "", ack.from_tag or "", ack.to_tag or "")  # From is ours
        number = ack.cseq.number if ack.cseq else 0
        self._acks[(did, number)] = (ack, destination, self.now() + 64 * self.timers.t1)
        self.endpoint.send(ack, destination)

    def _unmatched(self, response: Response) -> None:
        cseq = response.cseq
        if cseq is None or cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        did = DialogId.of_response(response)
        held = self._acks.get((did, cseq.number)) if did is not None else None
        if held is not None:
            self.retransmissions += 1
            self.endpoint.send(held[0], held[1])  # §13.2.2.4: ACK each retransmitted 2xx

    # ---- UAC -----------------------------------------------------------------------------

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
    ) -> Request:
        local = NameAddr(f"sip:{self.user}@{self._hostport_text()}", params=(("tag", local_tag),))
        pairs: list[tuple[str, str]] = [
            ("Via", self.new_via()),
            ("Max-Forwards", "70"),
            ("From", str(local)),
            ("To", f"<{uri}>"),
            ("Call-ID", call_id),
            ("CSeq", str(CSeq(cseq, method))),
        ]
        if method in ("INVITE", "OPTIONS"):
            pairs.append(("Contact", f"<{self.contact}>"))
        pairs += [("Allow", self.allow), ("User-Agent", "cityhub")]
        pairs += extra
        if body:
            pairs.append(("Content-Type", "application/sdp"))
        return Request(method, uri, Headers.of(pairs), body)

    def new_call_id(self) -> str:
        return f"{secrets.token_hex(12)}@{self._host_port()[0]}"

    async def options(
        self,
        uri: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the contract's signature
        credentials: Credentials | None = None,
    ) -> int | None:
        """An out-of-dialog OPTIONS (a health probe): the final status, or None if none came within
        ``timeout``. A 401/407 is answered once when ``credentials`` are given."""
        destination = await self.resolve(uri)
        call_id, tag = self.new_call_id(), new_tag()
        digest = DigestClient(credentials) if credentials is not None else None
        extra: list[tuple[str, str]] = [("Accept", ACCEPT)]
        deadline = self.now() + timeout
        for cseq in (1, 2):
            request = self.make_request(
                "OPTIONS", uri, call_id=call_id, local_tag=tag, cseq=cseq, extra=extra
            )
            _, queue = self.start_client(request, destination)
            response = await self.final_response(queue, deadline)
            if response is None:
                return None
            if response.status in (401, 407) and digest is not None and cseq == 1:
                try:
                    digest.challenged(
                        response.header_all(
                            "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                        ),
                        proxy=response.status == 407,
                    )
                except DigestError:
                    return response.status
                extra = [("Accept", ACCEPT), *digest.authorizations("OPTIONS", uri)]
                continue
            return response.status
        return None

    async def invite(
        self,
        uri: str,
        offer: SessionDescription,
        *,
        headers: Sequence[tuple[str, str]] = (),
        credentials: Credentials | None = None,
        ring_timeout: float = 20.0,
    ) -> Call:
        """Call ``uri`` with ``offer``; the confirmed ``Call``, or ``CallFailed``. The ring timeout
        and the task's cancellation both CANCEL the INVITE."""
        destination = await self.resolve(uri)
        outgoing = Outgoing(self, uri, offer, destination, list(headers), credentials)
        return await outgoing.run(ring_timeout)

    # ---- UAS -----------------------------------------------------------------------------

    def respond(self, key: TransactionKey, response: Response) -> None:
        self._feed(self.layer.respond(key, response, self.now()))

    def _dispatch(self, event: RequestReceived) -> None:
        request, key = event.request, event.key
        if request.method == "ACK":
            self._ack_received(request)
            return
        assert key is not None
        if request.method == "CANCEL":
            self._cancel_received(event)
            return
        if request.method == "REGISTER":
            self._register(key, request, event.source)
            return
        if request.to_tag is not None:
            self._in_dialog(key, request)
            return
        tag = new_tag()
        if request.method == "INVITE":
            self._new_invite(key, request, tag, event.source)
        elif request.method == "OPTIONS":
            self.respond(key, self._options_ok(request, tag))
        elif request.method == "BYE":
            self.respond(key, make_response(request, 481))
        else:
            self.respond(
                key, make_response(request, 501, to_tag=tag, headers=[("Allow", self.allow)])
            )

    def _register(self, key: TransactionKey, request: Request, source: Address) -> None:
        """REGISTER goes to ``on_register`` (a registrar); 501 without one, 500 if it fails."""
        handler = self.on_register
        response: Response | None = None
        if handler is not None:
            try:
                response = handler(request, source)
            except Exception:
                log.exception("on_register handler failed for %s", request.call_id)
                response = make_response(request, 500, to_tag=new_tag())
        if response is None:
            allow = [("Allow", self.allow)]
            response = make_response(request, 501, to_tag=new_tag(), headers=allow)
        self.respond(key, response)

    def _options_ok(self, request: Request, tag: str | None) -> Response:
        headers = [
            ("Allow", self.allow),
            ("Accept", ACCEPT),
            ("Supported", SUPPORTED),
            ("Contact", f"<{self.contact}>"),
        ]
        return make_response(request, 200, to_tag=tag, headers=headers)

    def _new_invite(
        self, key: TransactionKey, request: Request, tag: str, source: Address = ("", 0)
    ) -> None:
        answered = self._answered_by(request)
        if answered is not None:
            # the INVITE server transaction ended with our 2xx (§17.2.1), so a retransmission of
            # the INVITE arrives as new: answer it with the same 2xx, not with a second call
            self.respond(key, answered)
            return
        self.respond(key, make_response(request, 100))
        offer: SessionDescription | None = None
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
            except SdpError as e:
                self.respond(key, make_response(request, e.status, e.reason, to_tag=tag))
                return
        handler = self.on_invite
        if handler is None:
            self.respond(key, make_response(request, 480, to_tag=tag))
            return
        incoming = IncomingCall(
            self, key, request, offer, tag, StateCell(CallState.PROCEEDING, self.counts), source
        )
        self._pending[key] = incoming

        async def run() -> None:
            try:
                await handler(incoming)
            except Exception:
                log.exception("on_invite handler failed for %s", request.call_id)
                if self._pending.get(key) is incoming:
                    self._reject(incoming, 500)

        self.spawn(run())

    def _answered_by(self, request: Request) -> Response | None:
        for call in self.calls.values():
            if (
                not call.outgoing
                and call.call_id == request.call_id
                and call.dialog.id.remote_tag == request.from_tag
                and call.invite_response is not None
            ):
                return call.invite_response
        return None

    def _ring(self, incoming: IncomingCall) -> None:
        if self._pending.get(incoming.key) is not incoming:
            return
        if incoming.cell.move(CallEvent.RINGING):
            self.respond(
                incoming.key, make_response(incoming.request, 180, to_tag=incoming.local_tag)
            )

    def _reject(self, incoming: IncomingCall, status: int) -> None:
        if not 300 <= status <= 699:
            raise ValueError("reject takes a 3xx-6xx status")
        if self._pending.pop(incoming.key, None) is not incoming:
            return
        incoming.cell.move(CallEvent.REJECTED)
        self.respond(
            incoming.key, make_response(incoming.request, status, to_tag=incoming.local_tag)
        )

    def _answer(self, incoming: IncomingCall, sdp: SessionDescription) -> Call:
        if incoming.call is not None:
            return incoming.call
        if self._pending.pop(incoming.key, None) is not incoming:
            raise CallFailed("cancelled", 487, "the caller cancelled before the answer")
        request = incoming.request
        body = sdp.serialize()
        response = make_response(
            request,
            200,
            to_tag=incoming.local_tag,
            headers=[
                ("Contact", f"<{self.contact}>"),
                ("Allow", self.allow),
                ("Content-Type", "application/sdp"),
            ],
            body=body,
        )
        dialog = Dialog.uas(request, incoming.local_tag, local_contact=self.contact)
        incoming.cell.move(CallEvent.ANSWERED)
        cseq = request.cseq.number if request.cseq else 1
        call = Call(
            self,
            dialog,
            incoming.cell,
            local_sdp=sdp,
            remote_sdp=incoming.offer,
            outgoing=False,
            clock=self.now,
            invite_cseq=cseq,
        )
        incoming.call = call
        call.invite_response = response
        self.calls[dialog.id] = call
        call.invite_pending = True
        self._rtx[dialog.id] = TwoXXRetransmitter(response, self.now(), self.timers)
        self.respond(incoming.key, response)
        return call

    def _ack_received(self, request: Request) -> None:
        did = DialogId.of_request(request)
        if did is None:
            return
        rtx = self._rtx.pop(did, None)
        call = self.calls.get(did)
        if rtx is not None:
            self._feed(rtx.ack_received(self.now()))
        if call is not None:
            call.invite_pending = False
            if not call.has_remote_sdp and request.body:
                try:
                    call.remote_sdp = SessionDescription.parse(request.body)
                except SdpError:
                    log.warning("call %s: unparseable SDP in the ACK", call.call_id)

    def _cancel_received(self, event: RequestReceived) -> None:
        assert event.key is not None
        request = event.request
        if event.cancels is None:
            self.respond(event.key, make_response(request, 481))  # §9.2
            return
        self.respond(event.key, make_response(request, 200))
        incoming = self._pending.pop(event.cancels, None)
        if incoming is None:
            return  # already answered: the CANCEL has no effect
        incoming.cell.move(CallEvent.CANCELLED)
        incoming.cancelled.set()
        self.respond(event.cancels, make_response(incoming.request, 487, to_tag=incoming.local_tag))

    def _in_dialog(self, key: TransactionKey, request: Request) -> None:
        did = DialogId.of_request(request)
        call = self.calls.get(did) if did is not None else None
        if call is None:
            self.respond(key, make_response(request, 481))  # §12.2.2
            return
        dialog, refuse = call.dialog.receive(request)
        if refuse is not None:
            self.respond(key, make_response(request, refuse))
            return
        call.dialog = dialog
        method = request.method
        if method == "BYE":
            self.respond(key, make_response(request, 200))
            self._rtx.pop(dialog.id, None)
            if call.cell.move(CallEvent.BYE_RECEIVED):
                self.calls.pop(dialog.id, None)
                call.finish("remote_bye")
        elif method == "INVITE":
            self._reinvite_received(call, key, request)
        elif method == "OPTIONS":
            self.respond(key, self._options_ok(request, None))
        else:
            self.respond(key, make_response(request, 501, headers=[("Allow", self.allow)]))

    def _reinvite_received(self, call: Call, key: TransactionKey, request: Request) -> None:
        response = call.answer_reinvite(request, self.contact)
        if response.status == 200:
            self._rtx[call.dialog.id] = TwoXXRetransmitter(response, self.now(), self.timers)
        self.respond(key, response)

    def stop_retransmitting(self, dialog_id: DialogId) -> None:
        self._rtx.pop(dialog_id, None)

    def _no_ack(self, response: Response) -> None:
        did = DialogId(response.call_id or "", response.to_tag or "", response.from_tag or "")
        self._rtx.pop(did, None)
        call = self.calls.get(did)
        if call is not None:
            log.warning("call %s: no ACK for our 2xx, hanging up", call.call_id)
            call.invite_pending = False
            self.spawn(call.end("error"))
