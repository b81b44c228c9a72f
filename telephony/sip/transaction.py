"""SIP transactions (RFC 3261 §17) as pure state machines, and the layer that matches messages to them.

Theory of operation: a transaction is a request and the responses to it. Each of the four machines
(INVITE client §17.1.1, non-INVITE client §17.1.2, INVITE server §17.2.1, non-INVITE server §17.2.2)
takes inputs with the current time ``now`` and returns a list of outputs; it has no clock and no
socket. Inputs: ``start(now)``; ``receive(message, now)`` (a response for a client, a retransmitted
request or an ACK for a server); ``respond(response, now)`` (the TU answering, servers only);
``transport_error(now)``; ``tick(now)`` (fire every timer that is due). Outputs: ``Send(message,
destination)`` for the transport, and events for the TU: ``ResponseReceived``, ``TimedOut``,
``TransportFailed``, ``Terminated``. ``next_deadline()`` is when ``tick`` is next needed (None: never).
Every input first fires the timers already due, so after any input no deadline lies in the past.

Timers (§17, table 4): A (INVITE retransmit, T1 doubling), B (INVITE timeout, 64·T1), D (wait for
response retransmits, 32 s over UDP), E (non-INVITE retransmit, T1 doubling capped at T2; T2 in
Proceeding), F (non-INVITE timeout, 64·T1), K (T4), G (final response retransmit, T1 doubling capped at
T2), H (wait for ACK, 64·T1), I (T4), J (64·T1). Over a reliable transport the retransmit timers are
not armed and D, I, J, K are zero. Every legal state change is in ``TRANSITIONS``; ``_move`` refuses
anything else (a bug in this file, never a peer's doing: peers' stray messages are absorbed).

A 2xx to an INVITE ends the server transaction: its retransmission belongs to the UAS core (§13.3.1.4),
for which ``TwoXXRetransmitter`` is the pure timer. ``TransactionLayer`` keys the transactions
(§17.1.3 for responses: branch and CSeq method; §17.2.3 for requests: branch, sent-by and method, an
ACK or CANCEL looking up the INVITE's), creates server transactions for new requests, absorbs
retransmissions and gives the earliest deadline. Requests without an RFC 3261 branch (no
``z9hG4bK``, RFC 2543 peers) are keyed on Call-ID, CSeq number, From tag and sent-by instead: a
simplification of §17.2.3's 2543 rules (the To tag and Request-URI are not compared).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from telephony.sip.headers import CSeq, Headers
from telephony.sip.message import Request, Response, make_response

MAGIC_COOKIE = "z9hG4bK"
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TimerConfig:
    t1: float = 0.5  # RTT estimate
    t2: float = 4.0  # maximum retransmit interval for non-INVITE requests and INVITE responses
    t4: float = 5.0  # maximum time a message stays in the network
    d: float = 32.0  # timer D over an unreliable transport (§17.1.1.2: at least 32 s)
    trying_delay: float | None = 0.2  # §17.2.1: 100 Trying after 200 ms (0: at once, None: never)


DEFAULT_TIMERS = TimerConfig()


class Kind(enum.Enum):
    INVITE_CLIENT = "invite-client"
    NON_INVITE_CLIENT = "non-invite-client"
    INVITE_SERVER = "invite-server"
    NON_INVITE_SERVER = "non-invite-server"


class State(enum.Enum):
    INITIAL = "initial"  # before start()
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Timer(enum.Enum):
    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    K = "K"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    TRYING = "100"  # the §17.2.1 200 ms before an automatic 100 Trying


S = State
TRANSITIONS: dict[Kind, frozenset[tuple[State, State]]] = {
    Kind.INVITE_CLIENT: frozenset(
        {
            (S.INITIAL, S.CALLING),
            (S.CALLING, S.PROCEEDING),
            (S.CALLING, S.COMPLETED),
            (S.PROCEEDING, S.COMPLETED),
            (S.CALLING, S.TERMINATED),  # 2xx, timer B, transport error
            (S.PROCEEDING, S.TERMINATED),  # 2xx, transport error
            (S.COMPLETED, S.TERMINATED),  # timer D, transport error
        }
    ),
    Kind.NON_INVITE_CLIENT: frozenset(
        {
            (S.INITIAL, S.TRYING),
            (S.TRYING, S.PROCEEDING),
            (S.TRYING, S.COMPLETED),
            (S.PROCEEDING, S.COMPLETED),
            (S.TRYING, S.TERMINATED),  # timer F, transport error
            (S.PROCEEDING, S.TERMINATED),
            (S.COMPLETED, S.TERMINATED),  # timer K
        }
    ),
    Kind.INVITE_SERVER: frozenset(
        {
            (S.INITIAL, S.PROCEEDING),
            (S.PROCEEDING, S.COMPLETED),  # 300-699 sent
            (S.PROCEEDING, S.TERMINATED),  # 2xx sent, transport error
            (S.COMPLETED, S.CONFIRMED),  # ACK
            (S.COMPLETED, S.TERMINATED),  # timer H, transport error
            (S.CONFIRMED, S.TERMINATED),  # timer I
        }
    ),
    Kind.NON_INVITE_SERVER: frozenset(
        {
            (S.INITIAL, S.TRYING),
            (S.TRYING, S.PROCEEDING),
            (S.TRYING, S.COMPLETED),
            (S.PROCEEDING, S.COMPLETED),
            (S.TRYING, S.TERMINATED),  # transport error
            (S.PROCEEDING, S.TERMINATED),
            (S.COMPLETED, S.TERMINATED),  # timer J, transport error
        }
    ),
}
del S


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """§17.1.3 / §17.2.3: the branch (or the RFC 2543 substitute), the sent-by (servers) and the
    method (ACK counted as INVITE)."""

    branch: str
    method: str
    sent_by: str = ""
    server: bool = False


# ---- outputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    message: Request | Response
    destination: Address


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    key: TransactionKey
    response: Response


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU (``key`` None: an ACK for a 2xx, which has no transaction;
    ``cancels``: for a CANCEL, the INVITE server transaction it matches, if any)."""

    key: TransactionKey | None
    request: Request
    source: Address
    cancels: TransactionKey | None = None


@dataclass(frozen=True, slots=True)
class UnmatchedResponse:
    """A response matching no client transaction (§17.1.3: a 2xx retransmission goes to the core)."""

    response: Response


@dataclass(frozen=True, slots=True)
class TimedOut:
    key: TransactionKey


@dataclass(frozen=True, slots=True)
class TransportFailed:
    key: TransactionKey


@dataclass(frozen=True, slots=True)
class Terminated:
    key: TransactionKey


@dataclass(frozen=True, slots=True)
class NoAck:
    """§13.3.1.4: no ACK for the 2xx within 64·T1: the dialog should send BYE."""

    response: Response


Output = (
    Send
    | ResponseReceived
    | RequestReceived
    | UnmatchedResponse
    | TimedOut
    | TransportFailed
    | Terminated
    | NoAck
)


def transaction_key(message: Request | Response, *, server: bool) -> TransactionKey:
    """The key of the transaction ``message`` belongs to (see ``TransactionKey``)."""
    top = message.top_via
    cseq = message.cseq
    method = message.method if isinstance(message, Request) else (cseq.method if cseq else "")
    if method == "ACK":
        method = "INVITE"
    sent_by = ""
    if top is not None:
        host, port = top.sent_by
        sent_by = f"{host.lower()}:{port or ''}"
    branch = top.branch if top else None
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        number = cseq.number if cseq else ""
        branch = f"2543|{message.call_id}|{number}|{message.from_tag}|{sent_by}"
    return TransactionKey(branch, method, sent_by if server else "", server)


def make_ack(invite: Request, response: Response) -> Request:
    """§17.1.1.3: the ACK for a non-2xx final response: the INVITE's Request-URI, Call-ID, From, top
    Via and Route headers, the response's To (with its tag), CSeq number with method ACK."""
    h = invite.headers
    cseq = invite.cseq or CSeq(1, "INVITE")
    pairs: list[tuple[str, str]] = []
    vias = h.get_all("Via")
    if vias:
        pairs.append(("Via", vias[0]))
    pairs.append(("Max-Forwards", "70"))
    for name, value in (
        ("From", h.get("From")),
        ("To", response.header("To") or h.get("To")),
        ("Call-ID", h.get("Call-ID")),
    ):
        if value is not None:
            pairs.append((name, value))
    pairs.append(("CSeq", str(CSeq(cseq.number, "ACK"))))
    pairs.extend(("Route", r) for r in h.get_all("Route"))
    return Request("ACK", invite.uri, Headers(tuple(pairs)))


class _Machine:
    kind: Kind

    def __init__(self, request: Request, config: TimerConfig, reliable: bool) -> None:
        self.request = request
        self.config = config
        self.reliable = reliable
        self.state = State.INITIAL
        self.key = transaction_key(request, server=self.kind in _SERVERS)
        self._timers: dict[Timer, float] = {}
        self._interval: float = config.t1

    # -- helpers --
    def _move(self, to: State) -> None:
        if (self.state, to) not in TRANSITIONS[self.kind]:
            raise RuntimeError(f"{self.kind.value}: illegal move {self.state.value} -> {to.value}")
        self.state = to
        if to is State.TERMINATED:
            self._timers.clear()

    def _arm(self, timer: Timer, now: float, after: float) -> None:
        self._timers[timer] = now + after

    def _terminate(self, out: list[Output]) -> None:
        self._move(State.TERMINATED)
        out.append(Terminated(self.key))

    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def tick(self, now: float) -> list[Output]:
        out: list[Output] = []
        for _ in range(64):  # bounded: each firing either re-arms later or disarms
            due = [(t, w) for w, t in self._timers.items() if t <= now]
            if not due:
                break
            at, which = min(due, key=lambda d: d[0])
            del self._timers[which]
            self._fire(which, at, out)
        return out

    def transport_error(self, now: float) -> list[Output]:
        out = self.tick(now)
        if self.state not in (State.TERMINATED, State.INITIAL):
            out.append(TransportFailed(self.key))
            self._terminate(out)
        return out

    def _fire(self, timer: Timer, at: float, out: list[Output]) -> None:
        raise NotImplementedError


class _Client(_Machine):
    def __init__(
        self,
        request: Request,
        destination: Address,
        config: TimerConfig = DEFAULT_TIMERS,
        *,
        reliable: bool = False,
    ) -> None:
        super().__init__(request, config, reliable)
        self.destination = destination

    def _send_request(self, out: list[Output]) -> None:
        out.append(Send(self.request, self.destination))


class InviteClientTransaction(_Client):
    """§17.1.1 (figure 5)."""

    kind = Kind.INVITE_CLIENT

    def start(self, now: float) -> list[Output]:
        out: list[Output] = []
        self._move(State.CALLING)
        self._send_request(out)
        if not self.reliable:
            self._arm(Timer.A, now, self.config.t1)
        self._arm(Timer.B, now, 64 * self.config.t1)
        return out

    def receive(self, response: Response, now: float) -> list[Output]:
        out = self.tick(now)
        state, status = self.state, response.status
        if state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                if state is State.CALLING:
                    self._move(State.PROCEEDING)
                    self._timers.pop(Timer.A, None)
                    self._timers.pop(Timer.B, None)
                out.append(ResponseReceived(self.key, response))
            elif status < 300:
                out.append(ResponseReceived(self.key, response))
                self._terminate(out)
            else:
                self._move(State.COMPLETED)
                self._timers.clear()
                self._ack = make_ack(self.request, response)
                out.append(Send(self._ack, self.destination))
                out.append(ResponseReceived(self.key, response))
                self._arm(Timer.D, now, 0.0 if self.reliable else self.config.d)
                out.extend(self.tick(now))
        elif state is State.COMPLETED and status >= 300:
            out.append(Send(self._ack, self.destination))  # retransmitted final: ACK again
        return out

    def _fire(self, timer: Timer, at: float, out: list[Output]) -> None:
        if timer is Timer.A and self.state is State.CALLING:
            self._send_request(out)
            self._interval *= 2
            self._arm(Timer.A, at, self._interval)
        elif timer is Timer.B and self.state is State.CALLING:
            out.append(TimedOut(self.key))
            self._terminate(out)
        elif timer is Timer.D and self.state is State.COMPLETED:
            self._terminate(out)


class NonInviteClientTransaction(_Client):
    """§17.1.2 (figure 6)."""

    kind = Kind.NON_INVITE_CLIENT

    def start(self, now: float) -> list[Output]:
        out: list[Output] = []
        self._move(State.TRYING)
        self._send_request(out)
        if not self.reliable:
            self._arm(Timer.E, now, self.config.t1)
        self._arm(Timer.F, now, 64 * self.config.t1)
        return out

    def receive(self, response: Response, now: float) -> list[Output]:
        out = self.tick(now)
        if self.state not in (State.TRYING, State.PROCEEDING):
            return out  # Completed absorbs retransmitted finals
        out.append(ResponseReceived(self.key, response))
        if response.status < 200:
            if self.state is State.TRYING:
                self._move(State.PROCEEDING)
        else:
            self._move(State.COMPLETED)
            self._timers.clear()
            self._arm(Timer.K, now, 0.0 if self.reliable else self.config.t4)
            out.extend(self.tick(now))
        return out

    def _fire(self, timer: Timer, at: float, out: list[Output]) -> None:
        if timer is Timer.E and self.state in (State.TRYING, State.PROCEEDING):
            self._send_request(out)
            if self.state is State.PROCEEDING:
                self._interval = self.config.t2
            else:
                self._interval = min(2 * self._interval, self.config.t2)
            self._arm(Timer.E, at, self._interval)
        elif timer is Timer.F and self.state in (State.TRYING, State.PROCEEDING):
            out.append(TimedOut(self.key))
            self._terminate(out)
        elif timer is Timer.K and self.state is State.COMPLETED:
            self._terminate(out)


class _Server(_Machine):
    def __init__(
        self, request: Request, config: TimerConfig = DEFAULT_TIMERS, *, reliable: bool = False
    ) -> None:
        super().__init__(request, config, reliable)
        self.last_response: Response | None = None

    def _send_response(self, response: Response, out: list[Output]) -> None:
        self.last_response = response
        via = response.top_via
        out.append(Send(response, via.response_address() if via else ("", 5060)))

    def _resend_last(self, out: list[Output]) -> None:
        if self.last_response is not None:
            self._send_response(self.last_response, out)


class InviteServerTransaction(_Server):
    """§17.2.1 (figure 7). A 2xx ends it (the core retransmits it: ``TwoXXRetransmitter``)."""

    kind = Kind.INVITE_SERVER

    def start(self, now: float) -> list[Output]:
        out: list[Output] = []
        self._move(State.PROCEEDING)
        delay = self.config.trying_delay
        if delay is not None:
            self._arm(Timer.TRYING, now, delay)
            out.extend(self.tick(now))
        return out

    def _trying(self, out: list[Output]) -> None:
        self._timers.pop(Timer.TRYING, None)
        self._send_response(make_response(self.request, 100), out)

    def respond(self, response: Response, now: float) -> list[Output]:
        out = self.tick(now)
        if self.state is not State.PROCEEDING:
            return out  # too late: the TU cannot answer twice
        self._timers.pop(Timer.TRYING, None)
        self._send_response(response, out)
        if 200 <= response.status < 300:
            self._terminate(out)
        elif response.status >= 300:
            self._move(State.COMPLETED)
            if not self.reliable:
                self._arm(Timer.G, now, self.config.t1)
            self._arm(Timer.H, now, 64 * self.config.t1)
        return out

    def receive(self, request: Request, now: float) -> list[Output]:
        out = self.tick(now)
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self._move(State.CONFIRMED)
                self._timers.clear()
                self._arm(Timer.I, now, 0.0 if self.reliable else self.config.t4)
                out.extend(self.tick(now))
        elif self.state is State.PROCEEDING:
            if self.last_response is None:
                self._trying(out)  # a retransmission before our 100: answer it now
            else:
                self._resend_last(out)
        elif self.state is State.COMPLETED:
            self._resend_last(out)
        return out

    def _fire(self, timer: Timer, at: float, out: list[Output]) -> None:
        if timer is Timer.TRYING and self.state is State.PROCEEDING and not self.last_response:
            self._trying(out)
        elif timer is Timer.G and self.state is State.COMPLETED:
            self._resend_last(out)
            self._interval = min(2 * self._interval, self.config.t2)
            self._arm(Timer.G, at, self._interval)
        elif timer is Timer.H and self.state is State.COMPLETED:
            out.append(TimedOut(self.key))
            self._terminate(out)
        elif timer is Timer.I and self.state is State.CONFIRMED:
            self._terminate(out)


class NonInviteServerTransaction(_Server):
    """§17.2.2 (figure 8)."""

    kind = Kind.NON_INVITE_SERVER

    def start(self, now: float) -> list[Output]:
        self._move(State.TRYING)
        return []

    def respond(self, response: Response, now: float) -> list[Output]:
        out = self.tick(now)
        if self.state not in (State.TRYING, State.PROCEEDING):
            return out
        self._send_response(response, out)
        if response.status < 200:
            if self.state is State.TRYING:
                self._move(State.PROCEEDING)
        else:
            self._move(State.COMPLETED)
            self._arm(Timer.J, now, 0.0 if self.reliable else 64 * self.config.t1)
            out.extend(self.tick(now))
        return out

    def receive(self, request: Request, now: float) -> list[Output]:
        out = self.tick(now)
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend_last(out)  # Trying: absorbed silently
        return out

    def _fire(self, timer: Timer, at: float, out: list[Output]) -> None:
        if timer is Timer.J and self.state is State.COMPLETED:
            self._terminate(out)


_SERVERS = frozenset({Kind.INVITE_SERVER, Kind.NON_INVITE_SERVER})


class TwoXXRetransmitter:
    """§13.3.1.4: the UAS core resends its 2xx at T1, 2·T1, … capped at T2 until the ACK; after 64·T1
    it gives up with ``NoAck`` (the dialog then sends BYE). Start it when the 2xx is first sent."""

    def __init__(
        self, response: Response, now: float, config: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        self.response = response
        self.config = config
        via = response.top_via
        self.destination: Address = via.response_address() if via else ("", 5060)
        self._interval = config.t1
        self._next: float | None = now + config.t1
        self._give_up = now + 64 * config.t1
        self.done = False

    def next_deadline(self) -> float | None:
        if self.done:
            return None
        return min(self._give_up, self._next) if self._next is not None else self._give_up

    def ack_received(self, now: float) -> list[Output]:
        out = self.tick(now)
        self.done = True
        return out

    def tick(self, now: float) -> list[Output]:
        out: list[Output] = []
        for _ in range(64):
            if self.done:
                break
            if self._next is not None and self._next <= now and self._next < self._give_up:
                out.append(Send(self.response, self.destination))
                self._interval = min(2 * self._interval, self.config.t2)
                self._next += self._interval
            elif self._give_up <= now:
                self.done = True
                out.append(NoAck(self.response))
            else:
                break
        return out


Transaction = (
    InviteClientTransaction
    | NonInviteClientTransaction
    | InviteServerTransaction
    | NonInviteServerTransaction
)


class TransactionLayer:
    """All live transactions, keyed per §17.1.3 / §17.2.3; terminated ones are dropped."""

    def __init__(self, config: TimerConfig = DEFAULT_TIMERS, *, reliable: bool = False) -> None:
        self.config = config
        self.reliable = reliable
        self.transactions: dict[TransactionKey, Transaction] = {}

    def _collect(self, out: list[Output]) -> list[Output]:
        for o in out:
            if isinstance(o, Terminated):
                self.transactions.pop(o.key, None)
        return out

    def send_request(
        self, request: Request, destination: Address, now: float
    ) -> tuple[TransactionKey, list[Output]]:
        """Start a client transaction for ``request``. ValueError for an ACK (an ACK for a 2xx has no
        transaction: the core sends it) or a branch already in use (the TU must make a new one)."""
        if request.method == "ACK":
            raise ValueError("an ACK is sent by the core, outside any transaction")
        if transaction_key(request, server=False) in self.transactions:
            raise ValueError("branch already used by a live client transaction")
        out = self.tick(now)
        client: InviteClientTransaction | NonInviteClientTransaction
        if request.method == "INVITE":
            client = InviteClientTransaction(
                request, destination, self.config, reliable=self.reliable
            )
        else:
            client = NonInviteClientTransaction(
                request, destination, self.config, reliable=self.reliable
            )
        self.transactions[client.key] = client
        out.extend(client.start(now))
        return client.key, self._collect(out)

    def receive(self, message: Request | Response, source: Address, now: float) -> list[Output]:
        out = self.tick(now)
        if isinstance(message, Response):
            key = transaction_key(message, server=False)
            txn = self.transactions.get(key)
            if isinstance(txn, InviteClientTransaction | NonInviteClientTransaction):
                out.extend(txn.receive(message, now))
            else:
                out.append(UnmatchedResponse(message))
            return self._collect(out)
        top = message.top_via
        if top is not None:
            message = message.with_top_via(top.stamped(*source))  # §18.2.1
        key = transaction_key(message, server=True)
        txn = self.transactions.get(key)
        if isinstance(txn, InviteServerTransaction | NonInviteServerTransaction) and (
            message.method in ("ACK", txn.request.method)
        ):
            out.extend(txn.receive(message, now))  # retransmission or ACK: absorbed
            return self._collect(out)
        if message.method == "ACK":
            out.append(RequestReceived(None, message, source))  # ACK for a 2xx: the core's
            return self._collect(out)
        cancels = None
        if message.method == "CANCEL":
            invite_key = TransactionKey(key.branch, "INVITE", key.sent_by, True)
            if isinstance(self.transactions.get(invite_key), InviteServerTransaction):
                cancels = invite_key
        server: InviteServerTransaction | NonInviteServerTransaction
        if message.method == "INVITE":
            server = InviteServerTransaction(message, self.config, reliable=self.reliable)
        else:
            server = NonInviteServerTransaction(message, self.config, reliable=self.reliable)
        self.transactions[server.key] = server
        out.append(RequestReceived(server.key, message, source, cancels))
        out.extend(server.start(now))
        return self._collect(out)

    def respond(self, key: TransactionKey, response: Response, now: float) -> list[Output]:
        out = self.tick(now)
        txn = self.transactions.get(key)
        if isinstance(txn, InviteServerTransaction | NonInviteServerTransaction):
            out.extend(txn.respond(response, now))
        return self._collect(out)

    def transport_error(self, key: TransactionKey, now: float) -> list[Output]:
        out = self.tick(now)
        txn = self.transactions.get(key)
        if txn is not None:
            out.extend(txn.transport_error(now))
        return self._collect(out)

    def tick(self, now: float) -> list[Output]:
        out: list[Output] = []
        for txn in list(self.transactions.values()):
            deadline = txn.next_deadline()
            if deadline is not None and deadline <= now:
                out.extend(txn.tick(now))
        return self._collect(out)

    def next_deadline(self) -> float | None:
        return min(
            (d for t in self.transactions.values() if (d := t.next_deadline()) is not None),
            default=None,
        )
