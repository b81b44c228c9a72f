"""SIP message parsing and serialization (telephony/sip/message.py, headers.py), by RFC 3261 section.

Fixtures are captures written as bytes: a sipp 3.6 ``uac`` INVITE with SDP, an Asterisk 18 200 OK, a
Linphone REGISTER carrying digest Authorization, and a compact-form, folded, whitespace-heavy INVITE
built on the tortures of RFC 4475 §3.1.1.1 ("a short tortuous INVITE").
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.errors import MalformedRequest, SipGarbage, SipProtocolError
from telephony.sip.headers import CSeq, Headers, NameAddr, Via, split_list
from telephony.sip.message import Limits, Request, Response, make_response, parse

SIPP_INVITE = (
    b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-2392-1-0\r\n"
    b"From: sipp <sip:sipp@127.0.1.1:5061>;tag=2392SIPpTag001\r\n"
    b"To: service <sip:service@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-2392@127.0.1.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: sip:sipp@127.0.1.1:5061\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: Performance Test\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length:   129\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.1.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.1.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

ASTERISK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK5d3a1c2b;received=192.168.1.50;rport=5060\r\n"
    b'From: "1001" <sip:1001@192.168.1.10>;tag=as6f1c2d3e\r\n'
    b"To: <sip:1002@192.168.1.10>;tag=3f8a9b7c\r\n"
    b"Call-ID: 4c2d1e0f5a6b7c8d@192.168.1.10:5060\r\n"
    b"CSeq: 102 INVITE\r\n"
    b"Server: Asterisk PBX 18.15.0\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n"
    b"Supported: replaces, timer\r\n"
    b"Contact: <sip:1002@192.168.1.10:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 276\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=root 1795213361 1795213361 IN IP4 192.168.1.10\r\n"
    b"s=Asterisk PBX 18.15.0\r\n"
    b"c=IN IP4 192.168.1.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 14500 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=maxptime:150\r\n"
    b"a=sendrecv\r\n"
)

REGISTER_AUTH = (
    b"REGISTER sip:pbx.example.cn SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.23:5060;rport;branch=z9hG4bK.kD8xq2Z7f\r\n"
    b"From: <sip:2001@pbx.example.cn>;tag=a73kszlfl\r\n"
    b"To: <sip:2001@pbx.example.cn>\r\n"
    b"CSeq: 21 REGISTER\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@10.0.0.23\r\n"
    b"Max-Forwards: 70\r\n"
    b"Supported: replaces, outbound, gruu\r\n"
    b'Authorization: Digest realm="asterisk", nonce="1cd2586e", algorithm=MD5, '
    b'username="2001", uri="sip:pbx.example.cn", response="b5e27ff5d3a3cd3bd6f4b4d8e1c3b1a9"\r\n'
    b"Contact: <sip:2001@10.0.0.23:5060;transport=udp>;expires=3600;+sip.instance="
    b'"<urn:uuid:6b2c4c8a-1f1e-4b55-9a6e-2f3c5e4a7d10>"\r\n'
    b"Expires: 3600\r\n"
    b"User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 4475 §3.1.1.1's tortures: compact forms, odd case, space before colons, folded values, leading
# zeros, escaped quotes, a Via split over lines and mixed with a compact ``v`` carrying two values.
TORTUOUS = (
    b"INVITE sip:warn7@speakers.example.cn;unknownparam SIP/2.0\r\n"
    b"TO :\r\n"
    b" sip:warn7@speakers.example.cn ;   tag    = 1918181833n\r\n"
    b'from   : "Zhang San \\\\\\""       <sip:zhangsan@example.cn>\r\n'
    b"  ;\r\n"
    b"  tag = 98asjd8\r\n"
    b"MaX-fOrWaRdS: 0068\r\n"
    b"i: wsinv.ndaksdj@192.0.2.1\r\n"
    b"l   : 110\r\n"
    b"cseq: 0009\r\n"
    b"  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n"
    b" /UDP\r\n"
    b"    192.0.2.2;branch=390skdjuw\r\n"
    b"s :\r\n"
    b"NewFangledHeader:   newfangled value\r\n"
    b" continued newfangled value\r\n"
    b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    b"c: application/sdp\r\n"
    b"Route:\r\n"
    b" <sip:services.example.cn;lr;unknownwith=value;unknown-no-value>\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.cn   ;\r\n"
    b"  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
    b" z9hG4bK30239\r\n"
    b'm:"Quoted string \\"\\"" <sip:zhangsan@example.cn> ; newparam =\r\n'
    b"      newvalue ;\r\n"
    b"  secondparam ; q = 0.33\r\n"
    b"k: timer, 100rel\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=- 1 1 IN IP4 192.0.2.2\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.2\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

CAPTURES = [SIPP_INVITE, ASTERISK_200, REGISTER_AUTH, TORTUOUS]

MINIMAL = (
    b"OPTIONS sip:speaker1@10.1.2.3 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKopt1\r\n"
    b"From: <sip:hub@10.0.0.1>;tag=h1\r\n"
    b"To: <sip:speaker1@10.1.2.3>\r\n"
    b"Call-ID: opt-1@10.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\n"
    b"\r\n"
)


def without(message: bytes, name: bytes) -> bytes:
    return b"".join(line for line in message.splitlines(keepends=True) if not line.startswith(name))


def req(data: bytes) -> Request:
    m = parse(data)
    assert isinstance(m, Request)
    return m


def resp(data: bytes) -> Response:
    m = parse(data)
    assert isinstance(m, Response)
    return m


def malformed(data: bytes, limits: Limits | None = None) -> MalformedRequest:
    with pytest.raises(MalformedRequest) as info:
        parse(data, limits) if limits else parse(data)
    return info.value


class TestSection7_1_Requests:
    def test_request_line(self) -> None:
        m = req(MINIMAL)
        assert (m.method, m.uri, m.version) == ("OPTIONS", "sip:speaker1@10.1.2.3", "SIP/2.0")

    def test_version_is_case_insensitive_and_sent_upper(self) -> None:
        m = req(MINIMAL.replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1))
        assert m.serialize().startswith(b"OPTIONS sip:speaker1@10.1.2.3 SIP/2.0\r\n")

    def test_other_version_is_505(self) -> None:
        e = malformed(MINIMAL.replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1))
        assert (e.status, e.reason) == (505, "Version Not Supported")
        assert e.request.call_id == "opt-1@10.0.0.1"  # answerable: the headers parsed

    @pytest.mark.parametrize(
        "line",
        [
            b"OPTIONS sip:speaker1@10.1.2.3; lr SIP/2.0",  # RFC 4475 §3.1.2.? LWS inside the URI
            b"OPTIONS  sip:speaker1@10.1.2.3 SIP/2.0",  # two spaces between elements
            b"OPT(IONS sip:speaker1@10.1.2.3 SIP/2.0",  # not a token
            b"OPTIONS speaker1 SIP/2.0",  # no scheme
            b"OPTIONS sip:\xff@10.1.2.3 SIP/2.0",  # not UTF-8
        ],
    )
    def test_malformed_request_line_is_400(self, line: bytes) -> None:
        e = malformed(line + MINIMAL[MINIMAL.index(b"\r\n") :])
        assert (e.status, e.reason) == (400, "Bad Request (malformed Request-Line)")

    @pytest.mark.parametrize(
        "data",
        [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"hello",
            b"\r\n\r\n",  # a keep-alive (RFC 5626 §4.4.1)
            b"",
        ],
    )
    def test_not_sip_is_garbage(self, data: bytes) -> None:
        with pytest.raises(SipGarbage) as info:
            parse(data)
        assert info.value.status == 0

    def test_leading_crlf_ignored(self) -> None:  # §7.5
        assert req(b"\r\n\r\n" + MINIMAL) == req(MINIMAL)

    def test_bare_lf_accepted(self) -> None:
        assert req(MINIMAL.replace(b"\r\n", b"\n")) == req(MINIMAL)


class TestSection7_2_Responses:
    def test_status_line(self) -> None:
        m = resp(ASTERISK_200)
        assert (m.status, m.reason, m.version) == (200, "OK", "SIP/2.0")

    def test_reason_with_spaces_and_empty_reason(self) -> None:
        base = ASTERISK_200[ASTERISK_200.index(b"\r\n") :]
        assert resp(b"SIP/2.0 486 Busy Here" + base).reason == "Busy Here"
        assert resp(b"SIP/2.0 180 " + base).reason == ""
        assert resp(b"SIP/2.0 180" + base).reason == ""

    @pytest.mark.parametrize(
        "data",
        [
            ASTERISK_200.replace(b"SIP/2.0 200", b"SIP/2.0 700", 1),
            ASTERISK_200.replace(b"SIP/2.0 200", b"SIP/3.0 200", 1),
            without(ASTERISK_200, b"Call-ID"),
            without(ASTERISK_200, b"Via"),
            ASTERISK_200.replace(b"CSeq: 102 INVITE", b"CSeq: x INVITE"),
        ],
    )
    def test_malformed_response_is_dropped(self, data: bytes) -> None:  # §18.1.2: never answered
        with pytest.raises(SipGarbage):
            parse(data)


class TestSection7_3_1_HeaderFieldFormat:
    def test_names_case_insensitive(self) -> None:
        m = req(TORTUOUS)
        assert m.header("max-forwards") == m.header("MAX-FORWARDS") == "0068"
        assert m.max_forwards == 68

    def test_folded_lines_are_joined(self) -> None:
        m = req(TORTUOUS)
        assert m.header("NewFangledHeader") == "newfangled value continued newfangled value"
        assert m.header("CSeq") == "0009 INVITE"
        assert m.cseq == CSeq(9, "INVITE")

    def test_list_headers_split_respecting_quotes_and_angles(self) -> None:
        assert split_list('"Doe, John" <sip:a@b;x=1,2>;q=1, <sip:c@d>') == [
            '"Doe, John" <sip:a@b;x=1,2>;q=1',
            "<sip:c@d>",
        ]
        assert split_list("") == [""]
        assert split_list("a,,b ,") == ["a", "b"]
        with pytest.raises(ValueError):
            split_list('"unterminated, <sip:a@b>')

    def test_comma_list_becomes_one_value_each(self) -> None:
        m = resp(ASTERISK_200)
        assert m.header_all("Allow")[:3] == ["INVITE", "ACK", "CANCEL"]
        assert len(m.header_all("Allow")) == 11
        assert m.header_all("Supported") == ["replaces", "timer"]

    def test_non_list_headers_keep_their_commas(self) -> None:
        m = req(REGISTER_AUTH)
        auth = m.header_all("Authorization")
        assert len(auth) == 1 and auth[0].startswith("Digest realm=") and "response=" in auth[0]
        dated = req(
            MINIMAL.replace(b"\r\n\r\n", b"\r\nDate: Sat, 13 Nov 2010 23:29:00 GMT\r\n\r\n")
        )
        assert dated.header_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]

    @pytest.mark.parametrize(
        ("extra", "reason"),
        [
            (b"NoColonHere\r\n", "Bad Request (malformed header line)"),
            (b"Bad Name: x\r\n", "Bad Request (malformed header line)"),
            (b"X-Ctl: a\x00b\r\n", "Bad Request (control character in a header)"),
            (b"X-Cr: a\rb\r\n", "Bad Request (control character in a header)"),
            (b"X-Utf: \xff\xfe\r\n", "Bad Request (header not UTF-8)"),
            (b'Contact: "open <sip:a@b>\r\n', "Bad Request (unterminated quote in Contact)"),
        ],
    )
    def test_bad_header_lines_are_400(self, extra: bytes, reason: str) -> None:
        e = malformed(MINIMAL.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n"))
        assert (e.status, e.reason) == (400, reason)

    def test_bad_lines_still_leave_the_headers_to_answer_with(self) -> None:
        e = malformed(MINIMAL.replace(b"\r\nCSeq", b"\r\nX-Bin: \x01\xff\r\nCSeq"))
        assert e.reason == "Bad Request (control character in a header)"
        r = make_response(e.request, e.status, e.reason)
        assert r.branch == "z9hG4bKopt1" and r.header("CSeq") == "1 OPTIONS"
        assert resp(r.serialize()) == r

    def test_first_header_starting_with_whitespace_is_400(self) -> None:
        e = malformed(MINIMAL.replace(b"SIP/2.0\r\nVia", b"SIP/2.0\r\n Via", 1))
        assert e.reason == "Bad Request (header begins with whitespace)"

    def test_quoted_display_name_unterminated_is_400(self) -> None:  # RFC 4475 §3.1.2.? quotbal
        e = malformed(MINIMAL.replace(b"To: <sip", b'To: "Speaker <sip'))
        assert e.reason == "Bad Request (malformed To)"

    @pytest.mark.parametrize(
        ("old", "new", "reason"),
        [
            # RFC 4475 §3.1.2.14 (badaspec): spaces inside <>
            (b"To: <sip:speaker1@10.1.2.3>", b"To: < sip:speaker1@10.1.2.3 >", "malformed To"),
            # RFC 4475 §3.1.2.15 (baddn): a comma in an unquoted display name
            (b"From: <sip:hub", b"From: Hub, Center <sip:hub", "malformed From"),
            # RFC 4475 §3.1.2.1 (badinv01): extraneous separators in Via
            (b"branch=z9hG4bKopt1", b"branch=z9hG4bKopt1;;,;,,", "malformed Via"),
            # RFC 4475 §3.1.2.4 (scalar02): overlarge scalar values
            (b"CSeq: 1 OPTIONS", b"CSeq: 36893488147419103232 OPTIONS", "malformed CSeq"),
            (b"Max-Forwards: 70", b"Max-Forwards: 300", "malformed Max-Forwards"),
            # RFC 4475 (multi01): several values where one is allowed
            (b"Call-ID: opt-1@10.0.0.1", b"Call-ID: a@b\r\ni: c@d", "more than one Call-ID"),
            (b"To: <sip:speaker1@10.1.2.3>", b"To: <sip:a@b>\r\nt: <sip:c@d>", "more than one To"),
        ],
    )
    def test_torture_invalid_values_are_400(self, old: bytes, new: bytes, reason: str) -> None:
        e = malformed(MINIMAL.replace(old, new))
        assert (e.status, e.reason) == (400, f"Bad Request ({reason})")

    def test_torture_valid_display_names(self) -> None:  # RFC 4475 §3.1.1.6 (lwsdisp)
        m = req(MINIMAL.replace(b"From: <sip:hub", b"From: caller<sip:hub"))
        assert m.from_ is not None and m.from_.display == "caller"
        m = req(MINIMAL.replace(b"From: <sip:hub", b"From: Command   Center <sip:hub"))
        assert m.from_ is not None and m.from_.display == "Command   Center"

    def test_utf8_values(self) -> None:
        m = req(MINIMAL.replace(b"To: <", 'To: "东门广播" <'.encode()))
        assert m.to is not None and m.to.display == '"东门广播"'
        assert req(m.serialize()) == m


class TestSection7_3_3_CompactForm:
    def test_torture_compact_forms_normalised(self) -> None:
        m = req(TORTUOUS)
        names = [n for n, _ in m.headers]
        for full in ("To", "From", "Call-ID", "CSeq", "Via", "Subject", "Content-Type", "Contact"):
            assert full in names
        assert "Supported" in names and "k" not in names and "v" not in names
        assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
        assert m.header("i") == m.header("call-id")  # compact names work for lookups too
        assert m.header("Subject") == ""
        assert m.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"

    def test_torture_values(self) -> None:
        m = req(TORTUOUS)
        assert m.to_tag == "1918181833n" and m.from_tag == "98asjd8"
        assert m.from_ is not None and m.from_.display == '"Zhang San \\\\\\""'
        vias = m.via
        assert [(v.transport, v.host, v.branch) for v in vias] == [
            ("UDP", "192.0.2.2", "390skdjuw"),
            ("TCP", "spindle.example.cn", "z9hG4bK9ikj8"),
            ("UDP", "192.168.255.111", "z9hG4bK30239"),
        ]
        (contact,) = m.header_all("Contact")
        addr = NameAddr.parse(contact)
        assert addr.uri == "sip:zhangsan@example.cn"
        assert ("q", "0.33") in addr.params and ("secondparam", None) in addr.params
        assert m.body.startswith(b"v=0\r\n") and len(m.body) == 110

    def test_serialize_writes_full_names(self) -> None:
        out = req(TORTUOUS).serialize()
        assert b"\r\nCall-ID: wsinv.ndaksdj@192.0.2.1\r\n" in out
        assert b"\r\nContent-Length: 110\r\n\r\n" in out
        assert b"\r\ni:" not in out and b"\r\nl:" not in out and b"\r\n " not in out


class TestSection18_3_ContentLength:
    def test_shorter_body_than_declared_is_400(self) -> None:
        e = malformed(SIPP_INVITE[:-5])
        assert (e.status, e.reason) == (400, "Bad Request (Content-Length larger than the body)")

    def test_longer_body_is_truncated(self) -> None:
        m = req(SIPP_INVITE + b"trailing junk")
        assert len(m.body) == 129 and m.body.endswith(b"PCMU/8000\r\n")

    def test_missing_content_length_takes_the_rest_of_the_datagram(self) -> None:
        m = req(without(SIPP_INVITE, b"Content-Length"))
        assert len(m.body) == 129

    @pytest.mark.parametrize("value", [b"-1", b"12a", b"", b"99999999999"])
    def test_malformed_content_length(self, value: bytes) -> None:
        e = malformed(SIPP_INVITE.replace(b"Content-Length:   129", b"Content-Length: " + value))
        assert e.reason == "Bad Request (malformed Content-Length)"

    def test_conflicting_content_lengths(self) -> None:
        data = SIPP_INVITE.replace(b"Max-Forwards", b"l: 10\r\nMax-Forwards")
        assert malformed(data).reason == "Bad Request (conflicting Content-Length)"

    def test_not_kept_as_a_header_but_written_from_the_body(self) -> None:
        m = req(SIPP_INVITE)
        assert m.header("Content-Length") is None
        other = Request(m.method, m.uri, m.headers.add("Content-Length", "5"), b"abc")
        assert other.serialize().count(b"Content-Length") == 1
        assert b"Content-Length: 3\r\n\r\nabc" in other.serialize()

    def test_no_empty_line_is_400(self) -> None:
        e = malformed(MINIMAL[:-2])
        assert e.reason == "Bad Request (no empty line after the headers)"


class TestSection8_1_1_MandatoryHeaders:
    @pytest.mark.parametrize("name", ["Via", "To", "From", "Call-ID", "CSeq", "Max-Forwards"])
    def test_missing_is_400_naming_it(self, name: str) -> None:
        e = malformed(without(MINIMAL, name.encode() + b":"))
        assert (e.status, e.reason) == (400, f"Bad Request (missing {name})")
        # what parsed stays available to answer with (§8.2.6)
        assert len(e.request.headers) == 5

    def test_compact_forms_count(self) -> None:
        data = MINIMAL.replace(b"Call-ID:", b"i:").replace(b"Via:", b"v:")
        assert req(data).call_id == "opt-1@10.0.0.1"

    @pytest.mark.parametrize(
        ("old", "new", "reason"),
        [
            (
                b"CSeq: 1 OPTIONS",
                b"CSeq: 1 INVITE",
                "CSeq method does not match the request method",
            ),
            (b"CSeq: 1 OPTIONS", b"CSeq: 2147483648 OPTIONS", "malformed CSeq"),
            (b"CSeq: 1 OPTIONS", b"CSeq: OPTIONS", "malformed CSeq"),
            (b"Max-Forwards: 70", b"Max-Forwards: seventy", "malformed Max-Forwards"),
            (b"Max-Forwards: 70", b"Max-Forwards: 256", "malformed Max-Forwards"),
            (b"Call-ID: opt-1@10.0.0.1", b"Call-ID: ", "malformed Call-ID"),
            (b"Via: SIP/2.0/UDP", b"Via: SIP/3.0/UDP", "Via protocol is not SIP/2.0"),
            (b"Via: SIP/2.0/UDP 10.0.0.1:5060", b"Via: 10.0.0.1", "malformed Via"),
            (b"From: <sip:hub@10.0.0.1>", b"From: hub", "malformed From"),
        ],
    )
    def test_bad_values_are_400(self, old: bytes, new: bytes, reason: str) -> None:
        e = malformed(MINIMAL.replace(old, new))
        assert (e.status, e.reason) == (400, f"Bad Request ({reason})")

    def test_invite_needs_contact(self) -> None:  # §8.1.1.8
        e = malformed(without(SIPP_INVITE, b"Contact"))
        assert e.reason == "Bad Request (missing Contact)"


class TestSection8_2_6_MakeResponse:
    def test_copies_via_from_to_call_id_cseq(self) -> None:
        m = req(TORTUOUS)
        r = make_response(m, 486, to_tag="hub1")
        assert r.reason == "Busy Here"
        assert r.header_all("Via") == m.header_all("Via")  # all of them, in order
        assert (r.header("From"), r.call_id, r.header("CSeq")) == (
            m.header("From"),
            m.call_id,
            m.header("CSeq"),
        )
        assert r.to_tag == "1918181833n"  # already tagged: kept
        assert [n for n, _ in r.headers] == ["Via", "Via", "Via", "From", "To", "Call-ID", "CSeq"]

    def test_to_tag_added_but_not_on_100(self) -> None:
        m = req(SIPP_INVITE)
        assert make_response(m, 200, to_tag="t9").to_tag == "t9"
        assert make_response(m, 100, to_tag="t9").to_tag is None

    def test_100_copies_timestamp(self) -> None:  # §8.2.6.1
        m = req(MINIMAL.replace(b"\r\n\r\n", b"\r\nTimestamp: 54\r\n\r\n"))
        assert make_response(m, 100).header("Timestamp") == "54"
        assert make_response(m, 200).header("Timestamp") is None

    def test_extra_headers_and_body(self) -> None:
        m = req(MINIMAL)
        r = make_response(m, 200, headers=[("k", "timer"), ("Allow", "INVITE, BYE")], body=b"x")
        assert r.header_all("Supported") == ["timer"] and r.header_all("Allow") == ["INVITE", "BYE"]
        assert resp(r.serialize()) == r

    def test_answers_a_malformed_request(self) -> None:
        e = malformed(without(MINIMAL, b"Call-ID"))
        r = make_response(e.request, e.status, e.reason)
        out = r.serialize()
        assert out.startswith(b"SIP/2.0 400 Bad Request (missing Call-ID)\r\n")
        assert b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKopt1\r\n" in out


class TestSection20_TransactionHelpers:
    def test_top_via(self) -> None:
        m = resp(ASTERISK_200)
        top = m.top_via
        assert top is not None
        assert top.branch == "z9hG4bK5d3a1c2b" and m.branch == top.branch
        assert top.sent_by == ("192.168.1.50", 5060)
        assert top.received == "192.168.1.50" and top.rport == 5060 and top.has_rport

    def test_rport_without_value(self) -> None:  # RFC 3581 §3
        top = req(REGISTER_AUTH).top_via
        assert top is not None and top.has_rport and top.rport is None
        filled = top.stamped("203.0.113.9", 40123)  # behind a NAT
        assert str(filled) == (
            "SIP/2.0/UDP 10.0.0.23:5060;rport=40123;branch=z9hG4bK.kD8xq2Z7f;received=203.0.113.9"
        )
        assert Via.parse(str(filled)).rport == 40123
        assert filled.response_address() == ("203.0.113.9", 40123)
        # rport asks for received even when the address matches (RFC 3581 §4)
        assert top.stamped("10.0.0.23", 5060).received == "10.0.0.23"

    def test_received_only_when_the_source_differs(self) -> None:  # §18.2.1
        top = req(SIPP_INVITE).top_via
        assert top is not None
        assert top.stamped("127.0.1.1", 5061) == top
        moved = top.stamped("127.0.0.9", 5061)
        assert moved.received == "127.0.0.9" and not moved.has_rport
        assert moved.response_address() == ("127.0.0.9", 5061)  # §18.2.2: received at sent-by port
        assert Via.parse("SIP/2.0/UDP host.example.cn").response_address() == (
            "host.example.cn",
            5060,
        )
        assert Via.parse("SIP/2.0/TLS [2001:db8::1]").response_address() == ("2001:db8::1", 5061)

    def test_with_top_via(self) -> None:
        m = req(TORTUOUS)
        top = m.top_via
        assert top is not None
        stamped = m.with_top_via(top.stamped("198.51.100.7", 5060))
        assert stamped.header_all("Via")[0].endswith(";received=198.51.100.7")
        assert stamped.header_all("Via")[1:] == m.header_all("Via")[1:]
        assert make_response(stamped, 200).header("Via") == stamped.header("Via")
        assert req(stamped.serialize()) == stamped

    def test_no_rport(self) -> None:
        top = req(SIPP_INVITE).top_via
        assert top is not None and not top.has_rport and top.rport is None and top.received is None

    def test_ipv6_sent_by(self) -> None:
        v = Via.parse("SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKx")
        assert v.sent_by == ("[2001:db8::9]", 5070)
        assert Via.parse("SIP/2.0/TCP [::1];branch=z").port is None

    def test_cseq_tags_call_id_max_forwards(self) -> None:
        m = req(SIPP_INVITE)
        assert m.cseq == CSeq(1, "INVITE")
        assert m.from_tag == "2392SIPpTag001" and m.to_tag is None
        assert m.call_id == "1-2392@127.0.1.1" and m.max_forwards == 70
        assert m.to == NameAddr("sip:service@127.0.0.1:5060", "service")

    def test_addr_spec_params_belong_to_the_header(self) -> None:
        a = NameAddr.parse("sip:a@b;tag=x")
        assert a.uri == "sip:a@b" and a.tag == "x" and str(a) == "<sip:a@b>;tag=x"


class TestRealCaptures:
    def test_sipp_invite(self) -> None:
        m = req(SIPP_INVITE)
        assert m.header("Content-Type") == "application/sdp"
        assert m.body.startswith(b"v=0\r\n") and len(m.body) == 129

    def test_asterisk_200(self) -> None:
        m = resp(ASTERISK_200)
        assert m.header("Server") == "Asterisk PBX 18.15.0"
        assert m.body.endswith(b"a=sendrecv\r\n")

    def test_register_with_authorization(self) -> None:
        m = req(REGISTER_AUTH)
        assert m.method == "REGISTER" and m.cseq == CSeq(21, "REGISTER")
        (contact,) = m.header_all("Contact")
        assert NameAddr.parse(contact).params[0] == ("expires", "3600")
        assert m.header("User-Agent") == "Linphone/5.2.0 (belle-sip/5.2.0)"


class TestRoundTrip:
    @pytest.mark.parametrize("data", CAPTURES, ids=["sipp", "asterisk", "register", "torture"])
    def test_parse_serialize_parse(self, data: bytes) -> None:
        first = parse(data)
        out = first.serialize()
        assert parse(out) == first
        assert parse(out).serialize() == out

    def test_lists_written_combined_except_via_route_contact(self) -> None:
        out = resp(ASTERISK_200).serialize()
        assert (
            b"\r\nAllow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, " in out
        )
        assert b"\r\nSupported: replaces, timer\r\n" in out
        vias = req(TORTUOUS).serialize().count(b"\r\nVia: ")
        assert vias == 3

    def test_exact_bytes(self) -> None:
        m = Request(
            "BYE",
            "sip:speaker1@10.1.2.3",
            Headers.of([("v", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb1"), ("i", "c1")]),
        )
        assert m.serialize() == (
            b"BYE sip:speaker1@10.1.2.3 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb1\r\n"
            b"Call-ID: c1\r\n"
            b"Content-Length: 0\r\n\r\n"
        )

    def test_constructors_refuse_injection(self) -> None:
        with pytest.raises(ValueError):
            Headers((("X-A", "1\r\nVia: evil"),))
        with pytest.raises(ValueError):
            Request("BYE x", "sip:a@b")
        with pytest.raises(ValueError):
            Response(200, "OK\r\nX: y")


class TestLimits:
    def test_total_size_is_513(self) -> None:
        big = MINIMAL.replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n")
        e = malformed(big, Limits(max_size=len(big) - 1))
        assert (e.status, e.reason) == (513, "Message Too Large")
        assert req(big) == parse(big, Limits(max_size=len(big)))

    def test_header_count(self) -> None:
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(94))
        data = MINIMAL.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n")  # 6 + 94 = 100 headers
        assert len(req(data).headers) == 100
        e = malformed(data.replace(b"X-H0:", b"X-A: b\r\nX-H0:"))
        assert (e.status, e.reason) == (400, "Bad Request (too many headers)")

    def test_line_length(self) -> None:
        line = b"X-Long: " + b"a" * (8192 - 8)
        assert len(line) == 8192
        data = MINIMAL.replace(b"\r\n\r\n", b"\r\n" + line + b"\r\n\r\n")
        assert req(data).header("X-Long") is not None
        e = malformed(data.replace(line, line + b"a"))
        assert e.reason == "Bad Request (header line too long)"

    def test_start_line_too_long_is_garbage(self) -> None:
        with pytest.raises(SipGarbage):
            parse(b"OPTIONS sip:" + b"a" * 9000 + b" SIP/2.0\r\n\r\n")


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for pos, cut, insert in edits:
        p = pos % (len(data) + 1)
        data = data[:p] + insert + data[p + cut :]
    return data


_INTERESTING = st.sampled_from(
    [
        b"\r\n",
        b"\r\n ",
        b":",
        b",",
        b";",
        b'"',
        b"<",
        b">",
        b"\x00",
        b"\xff",
        b" ",
        b"=",
        b"\\",
        b"\n",
    ]
)


def _check(data: bytes) -> None:
    try:
        m = parse(data)
    except SipProtocolError:
        return
    # whatever parses serializes to something that parses back to the same message
    assert parse(m.serialize()) == m


class TestFuzz:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=2000))
    def test_random_bytes(self, data: bytes) -> None:
        _check(data)

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.sampled_from([*CAPTURES, MINIMAL]),
        st.lists(
            st.tuples(
                st.integers(0, 4000),
                st.integers(0, 8),
                st.one_of(_INTERESTING, st.binary(max_size=6)),
            ),
            min_size=1,
            max_size=6,
        ),
    )
    def test_mutated_messages(self, base: bytes, edits: list[tuple[int, int, bytes]]) -> None:
        _check(_mutate(base, edits))
