"""The dialog core (telephony.sip.dialog), pure: messages in, dialogs and requests out."""

from __future__ import annotations

import pytest

from telephony.sdp import Direction, LocalMedia, SdpSession, SessionDescription, build_offer
from telephony.sip.dialog import (
    END_STATES,
    TRANSITIONS,
    CallEvent,
    CallState,
    Dialog,
    DialogId,
    IllegalTransition,
    SipUri,
    apply,
    make_cancel,
    mirrored_answer,
    with_direction,
)
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response, make_response, parse

VIA = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1;rport"


def invite(*, record_route: tuple[str, ...] = (), cseq: int = 314159) -> Request:
    pairs = [
        ("Via", VIA),
        ("Max-Forwards", "70"),
        ("From", "Hub <sip:hub@192.0.2.1>;tag=hubtag"),
        ("To", "<sip:speaker7@192.0.2.50>"),
        ("Call-ID", "call-1@192.0.2.1"),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", "<sip:hub@192.0.2.1:5060>"),
        *(("Record-Route", r) for r in record_route),
    ]
    return Request("INVITE", "sip:speaker7@192.0.2.50", Headers.of(pairs))


def ok(request: Request, *, contact: str = "<sip:speaker7@192.0.2.50:5070>") -> Response:
    rr = [("Record-Route", r) for r in request.header_all("Record-Route")]
    return make_response(request, 200, to_tag="spk", headers=[("Contact", contact), *rr])


PROXIES = ("<sip:p1.example.org;lr>", "<sip:p2.example.org;lr>")


class TestSection12_1_1_UasBehavior:
    def test_the_dialog_state_from_the_invite(self) -> None:
        dialog = Dialog.uas(invite(record_route=PROXIES), "ours", local_contact="sip:s@192.0.2.50")
        assert dialog.id == DialogId("call-1@192.0.2.1", "ours", "hubtag")
        assert dialog.route_set == PROXIES  # in order on the UAS
        assert dialog.remote_target == "sip:hub@192.0.2.1:5060"
        assert dialog.remote_seq == 314159
        assert dialog.local_seq == 0  # empty until we send a request
        assert dialog.local_uri.uri == "sip:speaker7@192.0.2.50"
        assert dialog.remote_uri.uri == "sip:hub@192.0.2.1" and dialog.remote_uri.tag is None

    def test_no_from_tag_cannot_make_a_dialog(self) -> None:
        request = invite()
        bare = Request(
            "INVITE", request.uri, request.headers.replace("From", ["<sip:hub@192.0.2.1>"])
        )
        with pytest.raises(ValueError):
            Dialog.uas(bare, "ours")


class TestSection12_1_2_UacBehavior:
    def test_the_dialog_state_from_the_2xx(self) -> None:
        request = invite(record_route=PROXIES)
        dialog = Dialog.uac(request, ok(request))
        assert dialog.id == DialogId("call-1@192.0.2.1", "hubtag", "spk")
        assert dialog.route_set == tuple(reversed(PROXIES))  # reversed on the UAC
        assert dialog.remote_target == "sip:speaker7@192.0.2.50:5070"
        assert (dialog.local_seq, dialog.remote_seq) == (314159, None)

    def test_a_response_without_to_tag_cannot_make_a_dialog(self) -> None:
        request = invite()
        with pytest.raises(ValueError):
            Dialog.uac(request, make_response(request, 200))


class TestSection12_2_1_1_GeneratingTheRequest:
    def test_bye_without_routes_byte_for_byte(self) -> None:
        request = invite()
        dialog = Dialog.uac(request, ok(request))
        dialog2, bye = dialog.request("BYE", via="SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye1")
        assert dialog2.local_seq == 314160
        assert bye.serialize() == (
            b"BYE sip:speaker7@192.0.2.50:5070 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye1\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: Hub <sip:hub@192.0.2.1>;tag=hubtag\r\n"
            b"To: <sip:speaker7@192.0.2.50>;tag=spk\r\n"
            b"Call-ID: call-1@192.0.2.1\r\n"
            b"CSeq: 314160 BYE\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        assert isinstance(parse(bye.serialize()), Request)
        assert dialog.destination() == ("192.0.2.50", 5070)

    def test_each_request_increments_the_local_sequence(self) -> None:
        request = invite()
        dialog = Dialog.uac(request, ok(request))
        dialog, first = dialog.request("INVITE", via=VIA, body=b"v=0\r\n")
        dialog, second = dialog.request("BYE", via=VIA)
        assert [str(first.cseq), str(second.cseq)] == ["314160 INVITE", "314161 BYE"]

    def test_a_uas_dialog_starts_its_own_sequence(self) -> None:
        dialog = Dialog.uas(invite(), "ours")
        _, bye = dialog.request("BYE", via=VIA)
        assert str(bye.cseq) == "1 BYE"  # §12.2.1.1: chosen by the UAS, not the peer's number
        assert bye.to_tag == "hubtag" and bye.from_tag == "ours"
        assert bye.uri == "sip:hub@192.0.2.1:5060"

    def test_loose_routing_keeps_the_target_and_sends_to_the_first_route(self) -> None:
        request = invite(record_route=PROXIES)
        dialog = Dialog.uac(request, ok(request))
        _, bye = dialog.request("BYE", via=VIA)
        assert bye.uri == "sip:speaker7@192.0.2.50:5070"
        assert bye.header_all("Route") == list(reversed(PROXIES))
        assert dialog.destination_uri() == "sip:p2.example.org;lr"

    def test_strict_routing_puts_the_first_route_in_the_request_uri(self) -> None:
        request = invite(record_route=("<sip:strict.example.org>", "<sip:p1.example.org;lr>"))
        dialog = Dialog.uas(request, "ours")
        _, bye = dialog.request("BYE", via=VIA)
        assert bye.uri == "sip:strict.example.org"
        assert bye.header_all("Route") == ["<sip:p1.example.org;lr>", "<sip:hub@192.0.2.1:5060>"]

    def test_a_reinvite_carries_our_contact_and_the_body(self) -> None:
        request = invite()
        dialog = Dialog.uac(request, ok(request), local_contact="sip:hub@192.0.2.1:5060")
        _, reinvite = dialog.request("INVITE", via=VIA, body=b"v=0\r\n")
        assert reinvite.header("Contact") == "<sip:hub@192.0.2.1:5060>"
        assert reinvite.header("Content-Type") == "application/sdp"
        assert reinvite.body == b"v=0\r\n"

    @pytest.mark.parametrize("method", ["ACK", "CANCEL"])
    def test_ack_and_cancel_are_not_new_requests(self, method: str) -> None:
        dialog = Dialog.uas(invite(), "ours")
        with pytest.raises(ValueError):
            dialog.request(method, via=VIA)


class TestSection12_2_2_UasProcessingInDialogRequests:
    def test_a_lower_cseq_is_refused_with_500(self) -> None:
        dialog = Dialog.uas(invite(cseq=10), "ours")
        _, bye = Dialog.uac(invite(cseq=9), ok(invite(cseq=9))).request("BYE", via=VIA)
        assert str(bye.cseq) == "10 BYE"
        refused = Dialog.uas(invite(cseq=11), "ours")
        same, status = refused.receive(bye)
        assert (status, same) == (500, refused)
        accepted, status = dialog.receive(bye)
        assert status is None and accepted.remote_seq == 10

    def test_a_higher_cseq_moves_the_remote_sequence(self) -> None:
        dialog = Dialog.uas(invite(cseq=10), "ours")
        peer = Dialog.uac(invite(cseq=10), ok(invite(cseq=10)))
        _, options = peer.request("OPTIONS", via=VIA)
        new, status = dialog.receive(options)
        assert status is None and new.remote_seq == 11

    @pytest.mark.parametrize("method", ["ACK", "CANCEL"])
    def test_ack_and_cancel_are_not_checked(self, method: str) -> None:
        dialog = Dialog.uas(invite(cseq=10), "ours")
        request = Request(
            method, "sip:x@192.0.2.50", invite(cseq=3).headers.replace("CSeq", [f"3 {method}"])
        )
        assert dialog.receive(request) == (dialog, None)

    def test_a_reinvite_refreshes_the_remote_target(self) -> None:
        dialog = Dialog.uas(invite(cseq=10), "ours")
        request = Request(
            "INVITE",
            "sip:x@192.0.2.50",
            invite(cseq=11).headers.replace("Contact", ["<sip:hub@198.51.100.9:5080>"]),
        )
        new, status = dialog.receive(request)
        assert status is None and new.remote_target == "sip:hub@198.51.100.9:5080"

    def test_the_uac_refreshes_from_a_2xx_contact(self) -> None:
        request = invite()
        dialog = Dialog.uac(request, ok(request))
        moved = dialog.refreshed(ok(request, contact="<sip:speaker7@198.51.100.7>"))
        assert moved.remote_target == "sip:speaker7@198.51.100.7"
        assert dialog.refreshed(make_response(request, 200, to_tag="spk")) == dialog

    def test_dialog_ids_of_requests_and_responses(self) -> None:
        request = invite()
        response = ok(request)
        assert DialogId.of_response(response) == DialogId("call-1@192.0.2.1", "hubtag", "spk")
        assert DialogId.of_request(request) is None  # no To tag: not in a dialog
        _, bye = Dialog.uac(request, response).request("BYE", via=VIA)
        assert DialogId.of_request(bye) == DialogId("call-1@192.0.2.1", "spk", "hubtag")


class TestSection13_2_2_4_2xxResponses:
    def test_the_ack_is_its_own_request(self) -> None:
        request = invite(record_route=PROXIES)
        dialog = Dialog.uac(request, ok(request))
        ack = dialog.ack(314159, via="SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1")
        assert ack.method == "ACK"
        assert str(ack.cseq) == "314159 ACK"  # the INVITE's number, method ACK
        assert ack.branch == "z9hG4bKack1"  # not the INVITE's branch: no transaction
        assert ack.uri == "sip:speaker7@192.0.2.50:5070"  # the remote target
        assert ack.header_all("Route") == list(reversed(PROXIES))  # the route set
        assert ack.to_tag == "spk" and ack.from_tag == "hubtag"
        assert dialog.local_seq == 314159  # an ACK does not use a sequence number

    def test_the_ack_repeats_the_invite_credentials(self) -> None:
        request = invite()
        dialog = Dialog.uac(request, ok(request))
        auth = ("Authorization", 'Digest username="u", realm="r", nonce="n", response="x"')
        ack = dialog.ack(314159, via=VIA, headers=[auth])
        assert ack.header("Authorization") == auth[1]


class TestSection9_1_ClientBehavior:
    def test_cancel_matches_the_invite(self) -> None:
        request = invite(record_route=())
        request = Request(
            "INVITE",
            request.uri,
            request.headers.add("Route", "<sip:p1.example.org;lr>").add("Call-Info", "<sip:x>"),
        )
        cancel = make_cancel(request)
        assert cancel.method == "CANCEL" and cancel.uri == request.uri
        assert cancel.header_all("Via") == [VIA]  # the same branch: the INVITE's transaction
        assert str(cancel.cseq) == "314159 CANCEL"
        assert cancel.header("To") == request.header("To")  # no tag
        assert cancel.header_all("Route") == ["<sip:p1.example.org;lr>"]
        assert cancel.header("Call-Info") is None


class TestCallStateTable:
    def test_uac_answered_then_bye(self) -> None:
        state = CallState.CALLING
        for event, expected in [
            (CallEvent.TRYING, CallState.PROCEEDING),
            (CallEvent.RINGING, CallState.EARLY),
            (CallEvent.ANSWERED, CallState.CONFIRMED),
            (CallEvent.BYE_SENT, CallState.TERMINATING),
            (CallEvent.BYE_DONE, CallState.TERMINATED),
        ]:
            state = apply(state, event)
            assert state is expected

    def test_uas_answered_then_remote_bye(self) -> None:
        state = apply(CallState.PROCEEDING, CallEvent.RINGING)
        state = apply(state, CallEvent.ANSWERED)
        assert apply(state, CallEvent.BYE_RECEIVED) is CallState.TERMINATED

    @pytest.mark.parametrize(
        ("event", "end"),
        [
            (CallEvent.REJECTED, CallState.FAILED),
            (CallEvent.TIMED_OUT, CallState.FAILED),
            (CallEvent.CANCELLED, CallState.CANCELLED),
        ],
    )
    def test_unanswered_ends(self, event: CallEvent, end: CallState) -> None:
        for start in (CallState.CALLING, CallState.PROCEEDING, CallState.EARLY):
            assert apply(start, event) is end

    def test_illegal_moves_raise(self) -> None:
        with pytest.raises(IllegalTransition):
            apply(CallState.CALLING, CallEvent.BYE_RECEIVED)
        with pytest.raises(IllegalTransition):
            apply(CallState.CONFIRMED, CallEvent.CANCELLED)  # a CANCEL after the 2xx: no effect

    def test_end_states_have_no_exit(self) -> None:
        assert not [key for key in TRANSITIONS if key[0] in END_STATES]

    def test_every_state_is_reachable(self) -> None:
        reached = {CallState.CALLING, CallState.PROCEEDING} | set(TRANSITIONS.values())
        assert reached == set(CallState)


class TestSection19_1_SipUri:
    @pytest.mark.parametrize(
        ("text", "user", "address"),
        [
            ("sip:speaker7@192.0.2.50", "speaker7", ("192.0.2.50", 5060)),
            ("sip:speaker7:secret@192.0.2.50:5070;transport=udp", "speaker7", ("192.0.2.50", 5070)),
            ("sips:a@example.org", "a", ("example.org", 5061)),
            ("sip:[2001:db8::1]:5080", None, ("2001:db8::1", 5080)),
            ("SIP:p1.example.org;lr", None, ("p1.example.org", 5060)),
        ],
    )
    def test_parse(self, text: str, user: str | None, address: tuple[str, int]) -> None:
        uri = SipUri.parse(text)
        assert uri.user == user and uri.address() == address

    def test_loose_route_parameter(self) -> None:
        assert SipUri.parse("sip:p1.example.org;lr").loose_route
        assert not SipUri.parse("sip:p1.example.org").loose_route

    @pytest.mark.parametrize("text", ["tel:+8610123", "sip:", "sip:a@host:99999", "http://x"])
    def test_refused(self, text: str) -> None:
        with pytest.raises(ValueError):
            SipUri.parse(text)


def sdp(direction: Direction = Direction.SENDRECV) -> SessionDescription:
    session = SdpSession(session_id=5, version=1, address="192.0.2.1")
    return build_offer(session, LocalMedia("192.0.2.1", 20000, direction))[1]


class TestRfc3264Section8_4_PuttingOnHold:
    def test_with_direction_sets_the_attribute_and_bumps_the_version(self) -> None:
        held = with_direction(sdp(), Direction.SENDONLY)
        assert held.media_direction(held.media[0]) is Direction.SENDONLY
        assert held.origin.session_version == sdp().origin.session_version + 1
        assert [a.name for a in held.media[0].attributes].count("sendonly") == 1
        assert "sendrecv" not in [a.name for a in held.media[0].attributes]
        assert SessionDescription.parse(held.serialize()) == held

    @pytest.mark.parametrize(
        ("offered", "answered"),
        [
            (Direction.SENDONLY, Direction.RECVONLY),
            (Direction.INACTIVE, Direction.INACTIVE),
            (Direction.SENDRECV, Direction.SENDRECV),
            (Direction.RECVONLY, Direction.SENDONLY),
        ],
    )
    def test_the_default_answer_mirrors(self, offered: Direction, answered: Direction) -> None:
        answer = mirrored_answer(sdp(), sdp(offered))
        assert answer.media_direction(answer.media[0]) is answered

    def test_rfc_2543_hold_is_answered_recvonly(self) -> None:
        text = str(sdp()).replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0")
        answer = mirrored_answer(sdp(), SessionDescription.parse(text))
        assert answer.media_direction(answer.media[0]) is Direction.RECVONLY
