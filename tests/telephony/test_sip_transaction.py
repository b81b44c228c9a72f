"""SIP transactions (RFC 3261 §17, §13.3.1.4) driven by a fake clock: no sockets, no sleeping."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response, make_response, parse
from telephony.sip.transaction import (
    TRANSITIONS,
    InviteClientTransaction,
    InviteServerTransaction,
    Kind,
    NoAck,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Output,
    RequestReceived,
    ResponseReceived,
    Send,
    State,
    Terminated,
    TimedOut,
    TimerConfig,
    TransactionLayer,
    TransportFailed,
    TwoXXRetransmitter,
    UnmatchedResponse,
    make_ack,
)

PEER = ("127.0.0.1", 5070)
ME = ("127.0.0.1", 5060)


def request(
    method: str = "INVITE",
    branch: str = "z9hG4bK-1",
    *,
    cseq: int = 1,
    host: str = "127.0.0.1:5060",
    route: Sequence[str] = (),
) -> Request:
    pairs = [
        ("Via", f"SIP/2.0/UDP {host};branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "call-1@example.com"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:alice@127.0.0.1:5060>"),
        *(("Route", r) for r in route),
    ]
    return Request(method, "sip:bob@example.com", Headers.of(pairs))


def response(req: Request, status: int) -> Response:
    return make_response(req, status, to_tag=None if status == 100 else "b2")


def state(t: object) -> State:
    """The machine's state (a call, so mypy does not keep an earlier narrowing)."""
    st_ = t.state  # type: ignore[attr-defined]
    assert isinstance(st_, State)
    return st_


def sends(out: Sequence[Output]) -> list[Send]:
    return [o for o in out if isinstance(o, Send)]


class Clock:
    """Drive a machine's ``tick`` at each deadline up to ``until``; record when each Send went."""

    def __init__(self, machine: object) -> None:
        self.machine = machine
        self.log: list[tuple[float, Output]] = []

    def run(self, until: float) -> list[tuple[float, Output]]:
        for _ in range(1000):
            deadline = self.machine.next_deadline()  # type: ignore[attr-defined]
            if deadline is None or deadline > until:
                break
            out = self.machine.tick(deadline)  # type: ignore[attr-defined]
            self.log.extend((deadline, o) for o in out)
        return self.log

    def send_times(self) -> list[float]:
        return [t for t, o in self.log if isinstance(o, Send)]


class TestSection17_StateTable:
    def test_every_kind_has_a_table_and_terminated_is_final(self) -> None:
        for kind in Kind:
            assert all(src is not State.TERMINATED for src, _ in TRANSITIONS[kind])

    def test_an_illegal_move_raises_and_leaves_the_state(self) -> None:
        t = NonInviteServerTransaction(request("OPTIONS"))
        t.start(0.0)
        with pytest.raises(RuntimeError):
            t._move(State.CONFIRMED)
        assert t.state is State.TRYING


class TestSection17_1_1_2_InviteClientTimers:
    def test_timer_a_doubles_and_timer_b_times_out_at_64_t1(self) -> None:
        inv = request()
        t = InviteClientTransaction(inv, PEER)
        out = t.start(0.0)
        assert t.state is State.CALLING
        assert sends(out) == [Send(inv, PEER)]
        clock = Clock(t)
        clock.run(100.0)
        assert clock.send_times() == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
        assert [(at, o) for at, o in clock.log if not isinstance(o, Send)] == [
            (32.0, TimedOut(t.key)),
            (32.0, Terminated(t.key)),
        ]
        assert state(t) is State.TERMINATED and t.next_deadline() is None

    def test_custom_t1(self) -> None:
        t = InviteClientTransaction(request(), PEER, TimerConfig(t1=0.1))
        t.start(10.0)
        clock = Clock(t)
        clock.run(100.0)
        assert clock.send_times() == pytest.approx([10.1, 10.3, 10.7, 11.5, 13.1, 16.3])

    def test_provisional_stops_retransmission_and_is_passed_up(self) -> None:
        inv = request()
        t = InviteClientTransaction(inv, PEER)
        t.start(0.0)
        ringing = response(inv, 180)
        assert t.receive(ringing, 0.7) == [Send(inv, PEER), ResponseReceived(t.key, ringing)]
        assert t.state is State.PROCEEDING and t.next_deadline() is None

    def test_2xx_terminates_and_goes_to_the_tu(self) -> None:
        inv = request()
        t = InviteClientTransaction(inv, PEER)
        t.start(0.0)
        ok = response(inv, 200)
        assert t.receive(ok, 0.1) == [ResponseReceived(t.key, ok), Terminated(t.key)]
        assert not sends(t.receive(ok, 0.2))  # the ACK for a 2xx is the core's

    def test_non_2xx_final_is_acked_by_the_transaction_and_timer_d_waits_32_s(self) -> None:
        inv = request(route=["<sip:proxy.example.com;lr>"])
        t = InviteClientTransaction(inv, PEER)
        t.start(0.0)
        busy = response(inv, 486)
        out = t.receive(busy, 0.2)
        assert t.state is State.COMPLETED
        (ack_send,) = sends(out)
        assert ResponseReceived(t.key, busy) in out
        ack = ack_send.message
        assert isinstance(ack, Request) and ack.method == "ACK" and ack.uri == inv.uri
        assert ack.cseq is not None and (ack.cseq.number, ack.cseq.method) == (1, "ACK")
        assert ack.to_tag == "b2" and ack.from_tag == "a1" and ack.call_id == inv.call_id
        assert ack.header_all("Via") == inv.header_all("Via")[:1]
        assert ack.header_all("Route") == ["<sip:proxy.example.com;lr>"]
        assert isinstance(parse(ack.serialize()), Request)
        # a retransmitted 486 is ACKed again, not passed up
        assert t.receive(busy, 5.0) == [Send(ack, PEER)]
        assert t.next_deadline() == pytest.approx(32.2)
        assert t.tick(32.2) == [Terminated(t.key)]

    def test_reliable_transport_no_timer_a_and_d_is_zero(self) -> None:
        inv = request()
        t = InviteClientTransaction(inv, PEER, reliable=True)
        t.start(0.0)
        assert t.next_deadline() == 32.0
        out = t.receive(response(inv, 404), 1.0)
        assert out[-1] == Terminated(t.key)

    def test_transport_error(self) -> None:
        t = InviteClientTransaction(request(), PEER)
        t.start(0.0)
        assert t.transport_error(0.1) == [TransportFailed(t.key), Terminated(t.key)]

    def test_make_ack_directly(self) -> None:
        inv = request()
        ack = make_ack(inv, response(inv, 603))
        assert ack.header("Max-Forwards") == "70" and ack.body == b""


class TestSection17_1_2_2_NonInviteClientTimers:
    def test_timer_e_doubles_capped_at_t2_and_f_times_out(self) -> None:
        t = NonInviteClientTransaction(request("OPTIONS"), PEER)
        t.start(0.0)
        clock = Clock(t)
        clock.run(100.0)
        assert clock.send_times() == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        assert clock.log[-2:] == [(32.0, TimedOut(t.key)), (32.0, Terminated(t.key))]

    def test_in_proceeding_timer_e_is_t2(self) -> None:
        req = request("OPTIONS")
        t = NonInviteClientTransaction(req, PEER)
        t.start(0.0)
        t.tick(0.5)  # first retransmission; next at 1.5
        t.receive(response(req, 100), 0.6)
        assert t.state is State.PROCEEDING
        clock = Clock(t)
        clock.run(9.0)
        assert clock.send_times() == [1.5, 5.5]  # then every T2

    def test_final_then_timer_k(self) -> None:
        req = request("BYE")
        t = NonInviteClientTransaction(req, PEER)
        t.start(0.0)
        ok = response(req, 200)
        assert t.receive(ok, 0.3) == [ResponseReceived(t.key, ok)]
        assert t.state is State.COMPLETED and t.next_deadline() == pytest.approx(5.3)
        assert t.receive(ok, 1.0) == []  # absorbed
        assert t.tick(5.3) == [Terminated(t.key)]

    def test_reliable_k_is_zero(self) -> None:
        req = request("BYE")
        t = NonInviteClientTransaction(req, PEER, reliable=True)
        t.start(0.0)
        assert t.receive(response(req, 200), 0.3)[-1] == Terminated(t.key)


class TestSection17_2_1_InviteServer:
    def test_100_trying_after_200_ms(self) -> None:
        inv = request()
        t = InviteServerTransaction(inv)
        assert t.start(0.0) == []
        assert t.next_deadline() == pytest.approx(0.2)
        (s,) = sends(t.tick(0.2))
        assert isinstance(s.message, Response) and s.message.status == 100
        assert s.destination == ("127.0.0.1", 5060)

    def test_100_trying_at_once_and_not_when_the_tu_answers_first(self) -> None:
        t = InviteServerTransaction(request(), TimerConfig(trying_delay=0.0))
        assert len(sends(t.start(0.0))) == 1
        t2 = InviteServerTransaction(request())
        t2.start(0.0)
        ringing = response(t2.request, 180)
        assert sends(t2.respond(ringing, 0.1)) == [Send(ringing, ("127.0.0.1", 5060))]
        assert t2.next_deadline() is None

    def test_retransmitted_invite_gets_the_last_provisional(self) -> None:
        inv = request()
        t = InviteServerTransaction(inv)
        t.start(0.0)
        ringing = response(inv, 180)
        t.respond(ringing, 0.1)
        assert sends(t.receive(inv, 0.5)) == [Send(ringing, ("127.0.0.1", 5060))]

    def test_final_retransmitted_on_timer_g_until_ack_then_timer_i(self) -> None:
        inv = request()
        t = InviteServerTransaction(inv)
        t.start(0.0)
        busy = response(inv, 486)
        t.respond(busy, 0.0)
        assert t.state is State.COMPLETED
        clock = Clock(t)
        clock.run(12.0)
        assert clock.send_times() == [0.5, 1.5, 3.5, 7.5, 11.5]  # the ACK was lost 5 times
        ack = make_ack(inv, busy)
        assert t.receive(ack, 12.0) == []
        assert state(t) is State.CONFIRMED and t.next_deadline() == 17.0
        assert t.receive(ack, 13.0) == []  # absorbed
        assert t.tick(17.0) == [Terminated(t.key)]

    def test_timer_h_without_ack(self) -> None:
        inv = request()
        t = InviteServerTransaction(inv)
        t.start(0.0)
        t.respond(response(inv, 500), 1.0)
        clock = Clock(t)
        clock.run(100.0)
        assert clock.log[-2:] == [(33.0, TimedOut(t.key)), (33.0, Terminated(t.key))]

    def test_2xx_ends_the_transaction(self) -> None:
        inv = request()
        t = InviteServerTransaction(inv)
        t.start(0.0)
        ok = response(inv, 200)
        assert t.respond(ok, 0.1) == [Send(ok, ("127.0.0.1", 5060)), Terminated(t.key)]
        assert t.respond(response(inv, 500), 0.2) == []  # too late, ignored


class TestSection17_2_2_NonInviteServer:
    def test_trying_absorbs_then_last_response_resent_then_timer_j(self) -> None:
        req = request("OPTIONS")
        t = NonInviteServerTransaction(req)
        t.start(0.0)
        assert t.receive(req, 0.1) == []
        ok = response(req, 200)
        assert sends(t.respond(ok, 0.2)) == [Send(ok, ("127.0.0.1", 5060))]
        assert t.receive(req, 1.0) == [Send(ok, ("127.0.0.1", 5060))]
        assert t.next_deadline() == pytest.approx(32.2)
        assert t.tick(32.2) == [Terminated(t.key)]

    def test_provisional_resent_in_proceeding(self) -> None:
        req = request("SUBSCRIBE")
        t = NonInviteServerTransaction(req)
        t.start(0.0)
        trying = response(req, 100)
        t.respond(trying, 0.0)
        assert t.state is State.PROCEEDING
        assert sends(t.receive(req, 0.5)) == [Send(trying, ("127.0.0.1", 5060))]

    def test_reliable_j_is_zero(self) -> None:
        req = request("OPTIONS")
        t = NonInviteServerTransaction(req, reliable=True)
        t.start(0.0)
        assert t.respond(response(req, 200), 0.0)[-1] == Terminated(t.key)


class TestSection17_1_3_MatchingResponses:
    def test_branch_and_cseq_method(self) -> None:
        layer = TransactionLayer()
        inv = request()
        key, out = layer.send_request(inv, PEER, 0.0)
        assert sends(out) == [Send(inv, PEER)]
        ringing = response(inv, 180)
        assert layer.receive(ringing, PEER, 0.1) == [ResponseReceived(key, ringing)]

    def test_no_client_transaction_for_ack_or_a_reused_branch(self) -> None:
        layer = TransactionLayer()
        with pytest.raises(ValueError):
            layer.send_request(request("ACK"), PEER, 0.0)
        layer.send_request(request(), PEER, 0.0)
        with pytest.raises(ValueError):
            layer.send_request(request(), PEER, 0.1)
        assert len(layer.transactions) == 1

    def test_other_branch_or_method_does_not_match(self) -> None:
        layer = TransactionLayer()
        layer.send_request(request(), PEER, 0.0)
        other = response(request(branch="z9hG4bK-2"), 180)
        assert layer.receive(other, PEER, 0.1) == [UnmatchedResponse(other)]
        cancel_resp = response(request("CANCEL"), 200)  # same branch, CSeq method CANCEL
        assert layer.receive(cancel_resp, PEER, 0.1) == [UnmatchedResponse(cancel_resp)]

    def test_2xx_retransmission_after_termination_goes_to_the_core(self) -> None:
        layer = TransactionLayer()
        inv = request()
        layer.send_request(inv, PEER, 0.0)
        ok = response(inv, 200)
        layer.receive(ok, PEER, 0.1)
        assert layer.transactions == {}
        assert layer.receive(ok, PEER, 0.6) == [UnmatchedResponse(ok)]

    def test_layer_deadline_is_the_earliest(self) -> None:
        layer = TransactionLayer()
        layer.send_request(request("OPTIONS", "z9hG4bK-o"), PEER, 0.0)
        layer.send_request(request(branch="z9hG4bK-i"), PEER, 0.2)
        assert layer.next_deadline() == 0.5
        assert len(sends(layer.tick(0.5))) == 1
        assert layer.next_deadline() == pytest.approx(0.7)


class TestSection17_2_3_MatchingRequests:
    def test_new_request_creates_a_server_transaction_and_retransmission_is_absorbed(
        self,
    ) -> None:
        layer = TransactionLayer()
        req = request("OPTIONS")
        (new,) = layer.receive(req, PEER, 0.0)
        assert isinstance(new, RequestReceived) and new.key is not None
        assert layer.receive(req, PEER, 0.1) == []
        ok = make_response(new.request, 200)
        (s,) = layer.respond(new.key, ok, 0.2)
        assert s == Send(ok, ("127.0.0.1", 5060))  # §18.2.2: received host, sent-by port

    def test_rport_sends_the_response_to_the_source_port(self) -> None:
        layer = TransactionLayer()
        req = request("OPTIONS", host="192.0.2.7:5060;rport")
        (new,) = layer.receive(req, PEER, 0.0)
        assert isinstance(new, RequestReceived) and new.key is not None
        (s,) = sends(layer.respond(new.key, make_response(new.request, 200), 0.1))
        assert s.destination == PEER  # RFC 3581: received=127.0.0.1, rport=5070

    def test_sent_by_distinguishes(self) -> None:
        layer = TransactionLayer()
        layer.receive(request("OPTIONS"), PEER, 0.0)
        out = layer.receive(request("OPTIONS", host="10.0.0.9:5060"), PEER, 0.0)
        assert isinstance(out[0], RequestReceived)
        assert len(layer.transactions) == 2

    def test_ack_for_non_2xx_matches_the_invite_transaction(self) -> None:
        layer = TransactionLayer()
        inv = request()
        (new, *_) = layer.receive(inv, PEER, 0.0)
        assert isinstance(new, RequestReceived) and new.key is not None
        busy = make_response(new.request, 486, to_tag="b2")
        layer.respond(new.key, busy, 0.1)
        assert layer.receive(make_ack(inv, busy), PEER, 0.2) == []
        assert layer.transactions[new.key].state is State.CONFIRMED

    def test_ack_for_2xx_goes_to_the_core(self) -> None:
        layer = TransactionLayer()
        inv = request()
        (new, *_) = layer.receive(inv, PEER, 0.0)
        assert isinstance(new, RequestReceived) and new.key is not None
        layer.respond(new.key, make_response(new.request, 200, to_tag="b2"), 0.1)
        ack = request("ACK", branch="z9hG4bK-ack")
        (out,) = layer.receive(ack, PEER, 0.2)
        assert isinstance(out, RequestReceived) and out.key is None

    def test_cancel_points_at_the_invite_transaction(self) -> None:
        layer = TransactionLayer()
        (new, *_) = layer.receive(request(), PEER, 0.0)
        assert isinstance(new, RequestReceived)
        (cancel, *_) = layer.receive(request("CANCEL"), PEER, 0.1)
        assert isinstance(cancel, RequestReceived)
        assert cancel.cancels == new.key and cancel.key != new.key
        (lone, *_) = layer.receive(request("CANCEL", branch="z9hG4bK-x"), PEER, 0.1)
        assert isinstance(lone, RequestReceived) and lone.cancels is None

    def test_rfc2543_request_without_magic_cookie(self) -> None:
        layer = TransactionLayer()
        old = request("OPTIONS", branch="old-1")
        assert isinstance(layer.receive(old, PEER, 0.0)[0], RequestReceived)
        assert layer.receive(old, PEER, 0.1) == []


class TestSection13_3_1_4_TwoXXRetransmission:
    def test_schedule_until_give_up(self) -> None:
        inv = request()
        r = TwoXXRetransmitter(response(inv, 200), 0.0)
        clock = Clock(r)
        clock.run(100.0)
        assert clock.send_times() == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        assert clock.log[-1] == (32.0, NoAck(r.response))
        assert r.next_deadline() is None

    def test_ack_stops_it(self) -> None:
        r = TwoXXRetransmitter(response(request(), 200), 0.0)
        r.tick(0.5)
        assert r.ack_received(0.6) == []
        assert r.next_deadline() is None and r.tick(50.0) == []

    def test_lost_200_twice_end_to_end(self) -> None:
        """UAC and UAS layers over a lossy wire: the first two 200s are lost, the third gets through."""
        uac, uas = TransactionLayer(), TransactionLayer()
        inv = request()
        _, out = uac.send_request(inv, PEER, 0.0)
        (new, *_) = uas.receive(sends(out)[0].message, ME, 0.0)
        assert isinstance(new, RequestReceived) and new.key is not None
        ok = make_response(new.request, 200, to_tag="b2")
        (first,) = sends(uas.respond(new.key, ok, 0.1))  # lost; the transaction is gone
        retx = TwoXXRetransmitter(first.message, 0.1)  # type: ignore[arg-type]
        assert len(sends(retx.tick(0.6))) == 1  # lost again
        (third,) = sends(retx.tick(1.6))
        got = uac.receive(third.message, PEER, 1.6)
        assert any(isinstance(o, ResponseReceived) and o.response.status == 200 for o in got)
        assert retx.ack_received(1.7) == [] and retx.next_deadline() is None

    def test_lost_ack_the_server_final_retransmits(self) -> None:
        uac, uas = TransactionLayer(), TransactionLayer()
        inv = request()
        _, out = uac.send_request(inv, PEER, 0.0)
        (new, *_) = uas.receive(sends(out)[0].message, ME, 0.0)
        assert isinstance(new, RequestReceived) and new.key is not None
        (busy,) = sends(uas.respond(new.key, make_response(new.request, 486, to_tag="b2"), 0.1))
        (ack,) = sends(uac.receive(busy.message, PEER, 0.1))  # this ACK is lost
        (again,) = sends(uas.tick(0.6))  # timer G
        (ack2,) = sends(uac.receive(again.message, PEER, 0.6))  # the client ACKs again
        assert ack2 == ack
        assert uas.receive(ack2.message, ME, 0.7) == []
        assert uas.transactions[new.key].state is State.CONFIRMED


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["tick", "recv1xx", "recv2xx", "recv4xx", "retx", "ack", "error", "r1xx"]),
        st.floats(min_value=0.0, max_value=10.0, allow_nan=False),
    ),
    max_size=40,
)


class TestSection17_RandomEvents:
    @settings(max_examples=150, deadline=None)
    @given(kind=st.sampled_from(list(Kind)), events=EVENTS, reliable=st.booleans())
    def test_never_raises_and_deadlines_are_never_past(
        self, kind: Kind, events: list[tuple[str, float]], reliable: bool
    ) -> None:
        method = "INVITE" if kind in (Kind.INVITE_CLIENT, Kind.INVITE_SERVER) else "OPTIONS"
        req = request(method)
        machine: (
            InviteClientTransaction
            | NonInviteClientTransaction
            | InviteServerTransaction
            | NonInviteServerTransaction
        )
        if kind is Kind.INVITE_CLIENT:
            machine = InviteClientTransaction(req, PEER, reliable=reliable)
        elif kind is Kind.NON_INVITE_CLIENT:
            machine = NonInviteClientTransaction(req, PEER, reliable=reliable)
        elif kind is Kind.INVITE_SERVER:
            machine = InviteServerTransaction(req, reliable=reliable)
        else:
            machine = NonInviteServerTransaction(req, reliable=reliable)
        now = 0.0
        machine.start(now)
        terminated = 0
        for name, step in events:
            now += step
            status = {"recv1xx": 180, "recv2xx": 200, "recv4xx": 486, "r1xx": 183}.get(name, 500)
            if name == "tick":
                out = machine.tick(now)
            elif name == "error":
                out = machine.transport_error(now)
            elif isinstance(machine, InviteClientTransaction | NonInviteClientTransaction):
                out = (
                    machine.receive(response(req, status), now)
                    if name != "ack"
                    else machine.tick(now)
                )
            elif name in ("retx", "ack"):
                ack = make_ack(req, response(req, 486))
                out = machine.receive(ack if name == "ack" else req, now)
            else:
                out = machine.respond(response(req, status), now)
            terminated += sum(isinstance(o, Terminated) for o in out)
            deadline = machine.next_deadline()
            assert deadline is None or deadline > now
        assert terminated <= 1
        assert terminated == (machine.state is State.TERMINATED)


LAYER_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["invite", "options", "ack", "cancel", "r180", "r200", "r486", "tick"]),
        st.integers(min_value=0, max_value=2),  # which branch
        st.floats(min_value=0.0, max_value=20.0, allow_nan=False),
    ),
    max_size=40,
)


class TestSection17_RandomLayerEvents:
    @settings(max_examples=150, deadline=None)
    @given(events=LAYER_EVENTS)
    def test_layer_never_raises_and_its_deadline_is_never_past(
        self, events: list[tuple[str, int, float]]
    ) -> None:
        layer = TransactionLayer()
        now = 0.0
        for name, n, step in events:
            now += step
            branch = f"z9hG4bK-{n}"
            if name == "tick":
                out = layer.tick(now)
            elif name in ("invite", "options", "ack", "cancel"):
                out = layer.receive(request(name.upper(), branch), PEER, now)
            else:
                out = layer.tick(now)
                for key in [k for k in layer.transactions if k.branch == branch]:
                    req = layer.transactions[key].request
                    out += layer.respond(key, response(req, int(name[1:])), now)
            assert all(not isinstance(o, Send) or o.destination[1] == 5060 for o in out)
            deadline = layer.next_deadline()
            assert deadline is None or deadline > now
            assert all(t.state is not State.TERMINATED for t in layer.transactions.values())
