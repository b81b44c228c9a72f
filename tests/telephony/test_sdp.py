"""SDP (RFC 4566) and offer/answer (RFC 3264) for G.711 audio: telephony/sdp.py.

The fixtures are SDP bodies as the named stacks send them (sipp's built-in ``uac`` scenario with
its fields filled in, Asterisk chan_pjsip, Linphone, Zoiper 5, a Yealink hold re-INVITE, a Cisco
IOS gateway's RFC 2543 hold), written out byte for byte.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.errors import SdpError, SdpNegotiationError, SipProtocolError, TelephonyError
from telephony.sdp import (
    MAX_LINE_LENGTH,
    MAX_MEDIA,
    MAX_SDP_LINES,
    MAX_SDP_SIZE,
    PCMA,
    PCMU,
    Attribute,
    Codec,
    Connection,
    Direction,
    LocalMedia,
    MediaDescription,
    Origin,
    SdpSession,
    SessionDescription,
    answer_offer,
    build_offer,
    negotiate_answer,
    parse_events,
    remote_changed,
)

# sipp 3.6 `-sn uac`: its INVITE body with [local_ip]/[media_ip] 127.0.0.1 and [media_port] 6000.
SIPP_UAC_OFFER = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

# Asterisk 18 chan_pjsip answering an offer of PCMU, PCMA and telephone-event.
ASTERISK_ANSWER = (
    b"v=0\r\n"
    b"o=- 1690000000 1690000002 IN IP4 192.168.1.10\r\n"
    b"s=Asterisk\r\n"
    b"c=IN IP4 192.168.1.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 16974 RTP/AVP 8 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=maxptime:150\r\n"
    b"a=sendrecv\r\n"
)

# Linphone 4.x: Opus and Speex first, a telephone-event per clock rate, video, RTCP-XR, rtcp-fb.
LINPHONE_OFFER = (
    b"v=0\r\n"
    b"o=alice 3004 3285 IN IP4 192.168.0.23\r\n"
    b"s=Talk\r\n"
    b"c=IN IP4 192.168.0.23\r\n"
    b"t=0 0\r\n"
    b"a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitter,TTL voip-metrics\r\n"
    b"m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n"
    b"a=rtpmap:96 opus/48000/2\r\n"
    b"a=fmtp:96 useinbandfec=1\r\n"
    b"a=rtpmap:97 speex/16000\r\n"
    b"a=fmtp:97 vbr=on\r\n"
    b"a=rtpmap:98 speex/8000\r\n"
    b"a=fmtp:98 vbr=on\r\n"
    b"a=fmtp:18 annexb=yes\r\n"
    b"a=rtpmap:101 telephone-event/48000\r\n"
    b"a=rtpmap:99 telephone-event/16000\r\n"
    b"a=rtpmap:100 telephone-event/8000\r\n"
    b"a=rtcp-fb:* trr-int 1000\r\n"
    b"a=rtcp-fb:* ccm tmmbr\r\n"
    b"m=video 9078 RTP/AVP 96 97\r\n"
    b"a=rtpmap:96 VP8/90000\r\n"
    b"a=rtpmap:97 H264/90000\r\n"
    b"a=fmtp:97 profile-level-id=42801F\r\n"
    b"a=rtcp-fb:* trr-int 1000\r\n"
    b"a=rtcp-fb:96 nack pli\r\n"
)

# Zoiper 5: G.711 A-law-less order with GSM, G.722, iLBC and Speex; bare \n line ends as some
# softphone logs and text-based test harnesses hand them over.
ZOIPER_OFFER = (
    b"v=0\n"
    b"o=Z 0 61223149 IN IP4 192.168.1.35\n"
    b"s=Z\n"
    b"c=IN IP4 192.168.1.35\n"
    b"t=0 0\n"
    b"m=audio 8000 RTP/AVP 106 9 98 101 0 8 3\n"
    b"a=rtpmap:106 opus/48000/2\n"
    b"a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1\n"
    b"a=rtpmap:98 telephone-event/48000\n"
    b"a=fmtp:98 0-16\n"
    b"a=rtpmap:101 telephone-event/8000\n"
    b"a=fmtp:101 0-16\n"
    b"a=sendrecv\n"
)

# Yealink T4x putting the call on hold: a re-INVITE with the version bumped and a=sendonly.
YEALINK_HOLD_REINVITE = (
    b"v=0\r\n"
    b"o=- 20014 20015 IN IP4 10.0.0.51\r\n"
    b"s=SDP data\r\n"
    b"c=IN IP4 10.0.0.51\r\n"
    b"t=0 0\r\n"
    b"m=audio 11796 RTP/AVP 0 8 18 9 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=ptime:20\r\n"
    b"a=sendonly\r\n"
)

# A Cisco IOS gateway's RFC 2543 hold: c=0.0.0.0 at both levels, no direction attribute.
CISCO_OLD_HOLD = (
    b"v=0\r\n"
    b"o=CiscoSystemsSIP-GW-UserAgent 4193 8794 IN IP4 10.1.1.1\r\n"
    b"s=SIP Call\r\n"
    b"c=IN IP4 0.0.0.0\r\n"
    b"t=0 0\r\n"
    b"m=audio 17124 RTP/AVP 0 101\r\n"
    b"c=IN IP4 0.0.0.0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
)

CAPTURES = {
    "sipp": SIPP_UAC_OFFER,
    "asterisk": ASTERISK_ANSWER,
    "linphone": LINPHONE_OFFER,
    "yealink": YEALINK_HOLD_REINVITE,
    "cisco": CISCO_OLD_HOLD,
}

HUB = LocalMedia("192.0.2.10", 20000)


def session() -> SdpSession:
    return SdpSession(session_id=4242, version=1, address="192.0.2.10")


def parse(data: bytes) -> SessionDescription:
    return SessionDescription.parse(data)


class TestRfc4566Section5_SdpSpecification:
    @pytest.mark.parametrize("name", sorted(CAPTURES))
    def test_captures_round_trip_byte_for_byte(self, name: str) -> None:
        data = CAPTURES[name]
        sdp = parse(data)
        assert sdp.serialize() == data
        assert parse(sdp.serialize()) == sdp

    def test_bare_lf_parses_like_crlf_and_serializes_crlf(self) -> None:
        sdp = parse(ZOIPER_OFFER)
        assert sdp == parse(ZOIPER_OFFER.replace(b"\n", b"\r\n"))
        assert sdp.serialize() == ZOIPER_OFFER.replace(b"\n", b"\r\n")

    def test_str_input_and_missing_final_newline(self) -> None:
        text = SIPP_UAC_OFFER.decode().rstrip("\r\n")
        assert SessionDescription.parse(text) == parse(SIPP_UAC_OFFER)

    def test_origin_and_connection(self) -> None:
        sdp = parse(SIPP_UAC_OFFER)
        assert sdp.origin == Origin("user1", 53655765, 2353687637, "127.0.0.1")
        assert sdp.connection == Connection("127.0.0.1")
        assert sdp.session_name == "-"
        assert sdp.extra == (("t", "0 0"),)

    def test_ipv6_connection(self) -> None:
        data = SIPP_UAC_OFFER.replace(b"IN IP4 127.0.0.1", b"IN IP6 2001:db8::5")
        sdp = parse(data)
        assert sdp.connection == Connection("2001:db8::5", addrtype="IP6")
        assert sdp.origin.addrtype == "IP6"
        assert sdp.serialize() == data
        assert Connection.for_address("2001:db8::5").addrtype == "IP6"

    def test_unknown_lines_are_kept_in_their_place(self) -> None:
        data = (
            b"v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=Play\r\ni=info\r\nc=IN IP4 10.0.0.2\r\n"
            b"b=AS:64\r\nt=0 0\r\na=x-custom:1\r\nm=video 6000 RTP/AVP 96\r\nb=TIAS:64000\r\n"
            b"a=recvonly\r\na=rtpmap:96 PS/90000\r\ny=0100000001\r\nf=v/2/4///a///\r\n"
        )
        sdp = parse(data)
        assert sdp.serialize() == data
        assert sdp.media[0].extra == (
            ("b", "TIAS:64000"),
            ("y", "0100000001"),
            ("f", "v/2/4///a///"),
        )
        assert sdp.attributes == (Attribute("x-custom", "1"),)

    def test_out_of_order_lines_normalise_to_a_stable_value(self) -> None:
        data = (
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nc=IN IP4 h\r\nz=1 2\r\nb=AS:1\r\ni=x\r\n"
        )
        sdp = parse(data)
        assert sdp.extra == (("i", "x"), ("b", "AS:1"), ("t", "0 0"), ("z", "1 2"))
        assert parse(sdp.serialize()) == sdp
        assert (
            sdp.serialize()
            == b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\ni=x\r\nc=IN IP4 h\r\nb=AS:1\r\nt=0 0\r\nz=1 2\r\n"
        )

    def test_blank_lines_are_skipped(self) -> None:
        assert parse(SIPP_UAC_OFFER.replace(b"s=-\r\n", b"s=-\r\n\r\n")) == parse(SIPP_UAC_OFFER)

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"o=- 1 1 IN IP4 h\r\ns=-\r\n",  # no v=
            b"v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\n",  # only version 0 exists
            b"v=0\r\ns=-\r\n",  # no o=
            b"v=0\r\no=- 1 1 IN IP4 h\r\n",  # no s=
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nv=0\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\ns=-\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\ns=-\r\n",
            b"v=0\r\no=- 1 IN IP4 h\r\ns=-\r\n",  # o= with 5 fields
            b"v=0\r\no=- x 1 IN IP4 h\r\ns=-\r\n",
            b"v=0\r\no=- \xd9\xa3 1 IN IP4 h\r\ns=-\r\n",  # an Arabic-Indic digit is no number
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nc=IN IP4 h\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nX=1\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nab\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\na=x\ry\r\n",  # CR inside a line
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\x00\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\xff\r\n",  # not UTF-8
            b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 6000 RTP/AVP 0\r\no=- 1 1 IN IP4 h\r\n",
        ],
    )
    def test_malformed_descriptions_raise_sdp_error_400(self, data: bytes) -> None:
        with pytest.raises(SdpError) as caught:
            SessionDescription.parse(data)
        assert caught.value.status == 400
        assert isinstance(caught.value, SipProtocolError)
        assert isinstance(caught.value, TelephonyError)


class TestRfc4566Section5_14_MediaDescriptions:
    def test_linphone_media_sections(self) -> None:
        sdp = parse(LINPHONE_OFFER)
        audio, video = sdp.media
        assert (audio.media, audio.port, audio.proto) == ("audio", 7078, "RTP/AVP")
        assert audio.payload_types == (96, 97, 98, 0, 8, 18, 101, 99, 100)
        assert audio.codec(96) == Codec(96, "opus", 48000, 2)
        assert audio.codec(0) == PCMU  # static, no rtpmap
        assert audio.codec(18) == Codec(18, "G729", 8000)
        assert audio.fmtp(18) == "annexb=yes"
        assert audio.fmtp(0) is None
        assert video.codec(97) == Codec(97, "H264", 90000)
        assert sdp.media_connection(video) == Connection("192.168.0.23")

    def test_ptime_direction_and_port_count(self) -> None:
        m = parse(ASTERISK_ANSWER).media[0]
        assert m.ptime == 20
        assert m.direction() is Direction.SENDRECV
        sdp = parse(SIPP_UAC_OFFER.replace(b"m=audio 6000", b"m=audio 6000/2"))
        assert sdp.media[0].port_count == 2
        assert b"m=audio 6000/2 RTP/AVP 0" in sdp.serialize()
        assert sdp.media[0].ptime is None

    def test_decimal_ptime_is_read_as_whole_milliseconds(self) -> None:
        m = parse(SIPP_UAC_OFFER + b"a=ptime:30.0\r\n").media[0]
        assert m.ptime == 30

    def test_session_level_direction_applies_to_media_without_one(self) -> None:
        data = SIPP_UAC_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=recvonly\r\n")
        sdp = parse(data)
        assert sdp.media_direction(sdp.media[0]) is Direction.RECVONLY
        sdp2 = parse(data + b"a=inactive\r\n")
        assert sdp2.media_direction(sdp2.media[0]) is Direction.INACTIVE

    def test_non_rtp_formats_are_text(self) -> None:
        data = SIPP_UAC_OFFER + b"m=image 6010 udptl t38\r\na=T38FaxVersion:0\r\n"
        m = parse(data).media[1]
        assert m.formats == ("t38",)
        assert m.payload_types == ()
        assert not m.is_rtp

    @pytest.mark.parametrize(
        "m_line",
        [
            b"m=audio\r\n",
            b"m=audio 6000\r\n",
            b"m=audio 65536 RTP/AVP 0\r\n",
            b"m=audio -1 RTP/AVP 0\r\n",
            b"m=audio 6000 RTP/AVP 128\r\n",
            b"m=audio 6000 RTP/AVP PCMU\r\n",
            b"m=audio 6000/x RTP/AVP 0\r\n",
            b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
            b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/fast\r\n",
            b"m=audio 6000 RTP/AVP 0\r\na=fmtp:zz 0-15\r\n",
            b"m=audio 6000 RTP/AVP 0\r\na=ptime:twenty\r\n",
        ],
    )
    def test_malformed_media_raise_sdp_error(self, m_line: bytes) -> None:
        head = SIPP_UAC_OFFER.split(b"m=")[0]
        with pytest.raises(SdpError):
            parse(head + m_line)


class TestRfc4566Limits:
    def test_size_limit(self) -> None:
        big = SIPP_UAC_OFFER + b"a=x-pad:" + b"p" * 900 + b"\r\n"
        filler = big * (MAX_SDP_SIZE // len(big) + 1)
        with pytest.raises(SdpError) as caught:
            parse(filler)
        assert caught.value.status == 413
        with pytest.raises(SdpError):
            SessionDescription.parse(SIPP_UAC_OFFER, max_size=len(SIPP_UAC_OFFER) - 1)
        assert SessionDescription.parse(SIPP_UAC_OFFER, max_size=len(SIPP_UAC_OFFER))

    def test_size_limit_counts_utf8_bytes_of_text(self) -> None:
        text = SIPP_UAC_OFFER.decode().replace("s=-", "s=" + "城" * 10)
        with pytest.raises(SdpError):
            SessionDescription.parse(text, max_size=len(text) + 5)

    def test_line_count_limit(self) -> None:
        at_limit = SIPP_UAC_OFFER + b"a=x\r\n" * (MAX_SDP_LINES - 7)
        assert len(parse(at_limit).media[0].attributes) == MAX_SDP_LINES - 6
        with pytest.raises(SdpError):
            parse(at_limit + b"a=x\r\n")

    def test_line_length_limit(self) -> None:
        ok = SIPP_UAC_OFFER + b"a=" + b"x" * (MAX_LINE_LENGTH - 2) + b"\r\n"
        assert parse(ok)
        with pytest.raises(SdpError):
            parse(SIPP_UAC_OFFER + b"a=" + b"x" * (MAX_LINE_LENGTH - 1) + b"\r\n")
        with pytest.raises(SdpError):
            SessionDescription.parse(SIPP_UAC_OFFER, max_line_length=20)

    def test_media_section_limit(self) -> None:
        m = b"m=audio 6000 RTP/AVP 0\r\n"
        head = SIPP_UAC_OFFER.split(b"m=")[0]
        assert len(parse(head + m * MAX_MEDIA).media) == MAX_MEDIA
        with pytest.raises(SdpError):
            parse(head + m * (MAX_MEDIA + 1))


class TestRfc3264Section5_GeneratingTheInitialOffer:
    def test_hub_offer_bytes(self) -> None:
        _, offer = build_offer(session(), HUB)
        assert offer.serialize() == (
            b"v=0\r\n"
            b"o=cityhub 4242 1 IN IP4 192.0.2.10\r\n"
            b"s=cityhub\r\n"
            b"c=IN IP4 192.0.2.10\r\n"
            b"t=0 0\r\n"
            b"m=audio 20000 RTP/AVP 0 8 101\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n"
            b"a=rtpmap:8 PCMA/8000\r\n"
            b"a=rtpmap:101 telephone-event/8000\r\n"
            b"a=fmtp:101 0-15\r\n"
            b"a=ptime:20\r\n"
            b"a=sendrecv\r\n"
        )
        assert parse(offer.serialize()) == offer

    def test_offer_direction_codecs_and_ipv6(self) -> None:
        local = LocalMedia("2001:db8::10", 20002, Direction.SENDONLY, (PCMA,), None)
        _, offer = build_offer(SdpSession(7, 7, "2001:db8::10"), local)
        m = offer.media[0]
        assert m.formats == ("8",)
        assert m.direction() is Direction.SENDONLY
        assert offer.connection == Connection("2001:db8::10", addrtype="IP6")
        assert offer.origin.addrtype == "IP6"
        assert m.fmtp(101) is None


class TestRfc3264Section6_GeneratingTheAnswer:
    def test_sipp_offer_answered_with_pcmu_only(self) -> None:
        _, answer, media = answer_offer(parse(SIPP_UAC_OFFER), HUB, session())
        assert answer.serialize() == (
            b"v=0\r\n"
            b"o=cityhub 4242 1 IN IP4 192.0.2.10\r\n"
            b"s=cityhub\r\n"
            b"c=IN IP4 192.0.2.10\r\n"
            b"t=0 0\r\n"
            b"m=audio 20000 RTP/AVP 0\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n"
            b"a=ptime:20\r\n"
            b"a=sendrecv\r\n"
        )
        assert (media.codec, media.telephone_event) == (PCMU, None)
        assert (media.remote_address, media.remote_port) == ("127.0.0.1", 6000)
        assert media.direction is Direction.SENDRECV and not media.remote_hold

    def test_first_common_codec_in_the_offerers_order(self) -> None:
        offer = parse(SIPP_UAC_OFFER.replace(b"RTP/AVP 0", b"RTP/AVP 18 8 0"))
        _, answer, media = answer_offer(offer, HUB, session())
        assert media.codec == PCMA
        assert answer.media[0].formats == ("8",)

    def test_linphone_many_codecs_telephone_event_at_8000_video_rejected(self) -> None:
        _, answer, media = answer_offer(parse(LINPHONE_OFFER), HUB, session())
        audio, video = answer.media
        assert media.codec == PCMU
        assert media.telephone_event == 100  # the 8000 Hz one, not 101 at 48000 Hz
        assert audio.formats == ("0", "100")
        assert audio.fmtp(100) == "0-15"
        assert (video.media, video.port) == ("video", 0)
        assert video.formats == ("96",)
        assert media.media_index == 0

    def test_zoiper_dynamic_codecs_skipped(self) -> None:
        _, answer, media = answer_offer(parse(ZOIPER_OFFER), HUB, session())
        assert media.codec == PCMU
        assert media.telephone_event == 101
        assert answer.media[0].formats == ("0", "101")

    def test_dynamic_payload_type_for_pcma_kept_as_offered(self) -> None:
        offer = parse(
            SIPP_UAC_OFFER.replace(
                b"RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", b"RTP/AVP 97\r\na=rtpmap:97 pcma/8000"
            )
        )
        _, answer, media = answer_offer(offer, HUB, session())
        assert media.codec == Codec(97, "pcma", 8000)
        assert answer.media[0].formats == ("97",)

    def test_no_common_codec_is_488(self) -> None:
        offer = parse(LINPHONE_OFFER.replace(b" 0 8 18 101", b" 18 101"))
        with pytest.raises(SdpNegotiationError) as caught:
            answer_offer(offer, HUB, session())
        assert caught.value.status == 488
        assert caught.value.reason == "Not Acceptable Here"
        assert "opus/48000" in caught.value.details["offered"]

    def test_telephone_event_alone_is_not_a_codec(self) -> None:
        offer = parse(ASTERISK_ANSWER.replace(b"RTP/AVP 8 101", b"RTP/AVP 101"))
        with pytest.raises(SdpNegotiationError):
            answer_offer(offer, HUB, session())

    def test_no_media_or_rejected_audio_is_488(self) -> None:
        head = SIPP_UAC_OFFER.split(b"m=")[0]
        for body in (
            head,
            head + b"m=audio 0 RTP/AVP 0\r\n",
            head + b"m=audio 6000 RTP/SAVP 0\r\n",
        ):
            with pytest.raises(SdpNegotiationError):
                answer_offer(parse(body), HUB, session())

    def test_only_the_first_usable_audio_stream_is_taken(self) -> None:
        offer = parse(SIPP_UAC_OFFER + b"m=audio 6002 RTP/AVP 8\r\n")
        _, answer, media = answer_offer(offer, HUB, session())
        assert [m.port for m in answer.media] == [20000, 0]
        assert media.remote_port == 6000

    def test_media_level_connection_wins(self) -> None:
        offer = parse(SIPP_UAC_OFFER + b"c=IN IP4 10.9.9.9\r\n")
        _, _, media = answer_offer(offer, HUB, session())
        assert media.remote_address == "10.9.9.9"

    def test_offer_without_any_connection_is_an_sdp_error(self) -> None:
        offer = parse(SIPP_UAC_OFFER.replace(b"c=IN IP4 127.0.0.1\r\n", b""))
        with pytest.raises(SdpError):
            answer_offer(offer, HUB, session())


class TestRfc3264Section6_1_UnicastStreams:
    @pytest.mark.parametrize(
        ("offered", "ours", "answered"),
        [
            ("sendrecv", Direction.SENDRECV, Direction.SENDRECV),
            ("sendonly", Direction.SENDRECV, Direction.RECVONLY),
            ("recvonly", Direction.SENDRECV, Direction.SENDONLY),
            ("inactive", Direction.SENDRECV, Direction.INACTIVE),
            ("sendrecv", Direction.SENDONLY, Direction.SENDONLY),  # a voice warning only talks
            ("sendonly", Direction.SENDONLY, Direction.INACTIVE),
            ("recvonly", Direction.RECVONLY, Direction.INACTIVE),
        ],
    )
    def test_direction_rules(self, offered: str, ours: Direction, answered: Direction) -> None:
        offer = parse(SIPP_UAC_OFFER + f"a={offered}\r\n".encode())
        _, answer, media = answer_offer(offer, LocalMedia("192.0.2.10", 20000, ours), session())
        assert answer.media[0].direction() is answered
        assert answer.media[0].attributes[-1] == Attribute(answered.value)
        assert media.direction is answered
        assert media.remote_hold is (offered in ("sendonly", "inactive"))

    def test_direction_algebra(self) -> None:
        for d in Direction:
            assert d.reversed().reversed() is d
            assert d & Direction.SENDRECV is d
            assert Direction.of(d.sends, d.receives) is d


class TestRfc3264Section7_OffererProcessingOfTheAnswer:
    def test_asterisk_answer_to_our_offer(self) -> None:
        _, offer = build_offer(session(), HUB)
        media = negotiate_answer(offer, parse(ASTERISK_ANSWER))
        assert media.codec == PCMA
        assert media.telephone_event == 101
        assert (media.remote_address, media.remote_port) == ("192.168.1.10", 16974)
        assert media.direction is Direction.SENDRECV and not media.remote_hold
        assert media.ptime == 20
        assert media.receive_payload_types == (PCMA, Codec(101, "telephone-event", 8000))

    def test_we_send_with_the_answers_payload_type(self) -> None:
        _, offer = build_offer(session(), HUB)
        answer = parse(
            ASTERISK_ANSWER.replace(b"RTP/AVP 8 101", b"RTP/AVP 8 96").replace(b":101 ", b":96 ")
        )
        assert negotiate_answer(offer, answer).telephone_event == 96

    def test_answer_direction_and_hold(self) -> None:
        _, offer = build_offer(session(), LocalMedia("192.0.2.10", 20000, Direction.SENDONLY))
        answer = parse(ASTERISK_ANSWER.replace(b"a=sendrecv", b"a=recvonly"))
        media = negotiate_answer(offer, answer)
        assert media.direction is Direction.SENDONLY and media.sends and not media.receives
        held = negotiate_answer(offer, parse(ASTERISK_ANSWER.replace(b"a=sendrecv", b"a=inactive")))
        assert held.direction is Direction.INACTIVE and held.remote_hold
        old = negotiate_answer(
            offer, parse(ASTERISK_ANSWER.replace(b"192.168.1.10\r\nt", b"0.0.0.0\r\nt"))
        )
        assert old.remote_hold and not old.sends

    @pytest.mark.parametrize(
        "answer",
        [
            ASTERISK_ANSWER.replace(b"m=audio 16974", b"m=audio 0"),
            ASTERISK_ANSWER.replace(b"RTP/AVP 8 101", b"RTP/AVP 18"),
            ASTERISK_ANSWER + b"m=video 0 RTP/AVP 96\r\n",
            SIPP_UAC_OFFER.split(b"m=")[0],
        ],
    )
    def test_unusable_answers(self, answer: bytes) -> None:
        _, offer = build_offer(session(), HUB)
        with pytest.raises(SdpNegotiationError) as caught:
            negotiate_answer(offer, parse(answer))
        assert caught.value.status == 488

    def test_linphone_as_answerer_round(self) -> None:
        # Our own answer, read back by an offerer, agrees with what the answerer decided.
        offer = parse(LINPHONE_OFFER)
        _, answer, ours = answer_offer(offer, HUB, session())
        theirs = negotiate_answer(offer, parse(answer.serialize()))
        assert theirs.codec == ours.codec
        assert theirs.telephone_event == ours.telephone_event == 100
        assert (theirs.remote_address, theirs.remote_port) == ("192.0.2.10", 20000)


class TestRfc3264Section8_ModifyingTheSession:
    def test_version_increments_for_a_hold_reinvite_and_only_when_changed(self) -> None:
        s1, first = build_offer(session(), HUB)
        s2, hold = build_offer(s1, LocalMedia("192.0.2.10", 20000, Direction.SENDONLY))
        s3, refresh = build_offer(s2, LocalMedia("192.0.2.10", 20000, Direction.SENDONLY))
        _, unhold = build_offer(s3, HUB)
        versions = [d.origin.session_version for d in (first, hold, refresh, unhold)]
        assert versions == [1, 2, 2, 3]
        assert refresh == hold  # §8: same version, identical SDP
        assert {d.origin.session_id for d in (first, hold, unhold)} == {4242}
        assert hold.media[0].direction() is Direction.SENDONLY

    def test_answers_share_the_session_numbering(self) -> None:
        s1, _, _ = answer_offer(parse(SIPP_UAC_OFFER), HUB, session())
        s2, held, _ = answer_offer(parse(YEALINK_HOLD_REINVITE), HUB, s1)
        assert held.origin.session_version == 2
        assert s2.version == 2

    def test_yealink_hold_reinvite(self) -> None:
        offer = parse(YEALINK_HOLD_REINVITE)
        _, answer, media = answer_offer(offer, HUB, session())
        assert media.remote_hold
        assert media.direction is Direction.RECVONLY and not media.sends
        assert answer.media[0].direction() is Direction.RECVONLY
        assert media.codec == PCMU and media.telephone_event == 101

    def test_rfc2543_hold_with_zero_address_section_8_4(self) -> None:
        offer = parse(CISCO_OLD_HOLD)
        _, answer, media = answer_offer(offer, HUB, session())
        assert media.remote_hold
        assert media.remote_address == "0.0.0.0"  # noqa: S104
        assert not media.sends  # nothing may be sent to 0.0.0.0
        assert answer.media[0].direction() is Direction.RECVONLY
        assert Connection.for_address("::").is_hold

    def test_remote_changed_follows_the_origin(self) -> None:
        first = parse(YEALINK_HOLD_REINVITE)
        assert remote_changed(None, first)
        assert not remote_changed(first, parse(YEALINK_HOLD_REINVITE))
        bumped = parse(YEALINK_HOLD_REINVITE.replace(b"20014 20015", b"20014 20016"))
        assert remote_changed(first, bumped)


class TestRfc4733Section2_4_TelephoneEvent:
    def test_event_lists(self) -> None:
        assert parse_events("0-15") == frozenset(range(16))
        assert parse_events("0-15,66,70") == frozenset([*range(16), 66, 70])
        assert parse_events(" 0-11 ") == frozenset(range(12))
        for bad in ("", "15-0", "a-b", "0-256", "1,,2"):
            with pytest.raises(SdpError):
                parse_events(bad)

    def test_answer_offers_the_sixteen_dtmf_events(self) -> None:
        _, answer, _ = answer_offer(parse(CISCO_OLD_HOLD), HUB, session())
        fmtp = answer.media[0].fmtp(101)
        assert fmtp is not None and parse_events(fmtp) == frozenset(range(16))


_LINE_TYPES = st.sampled_from(list("vosicbtrzkamuepxy"))
_FIELD = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@st.composite
def sdp_like(draw: st.DrawFn) -> bytes:
    """Mutated real captures and line soup around plausible fields."""
    if draw(st.booleans()):
        base = bytearray(draw(st.sampled_from(list(CAPTURES.values()))))
        for _ in range(draw(st.integers(0, 6))):
            pos = draw(st.integers(0, len(base)))
            op = draw(st.sampled_from(["insert", "delete", "flip"]))
            if op == "insert":
                base[pos:pos] = draw(st.binary(min_size=1, max_size=8))
            elif op == "delete":
                del base[pos : pos + draw(st.integers(1, 8))]
            elif pos < len(base):
                base[pos] ^= 1 << draw(st.integers(0, 7))
        return bytes(base)
    lines = ["v=0", "o=- 1 1 IN IP4 h", "s=-"]
    lines += draw(st.lists(st.builds(lambda k, v: f"{k}={v}", _LINE_TYPES, _FIELD), max_size=12))
    sep = draw(st.sampled_from(["\r\n", "\n"]))
    return sep.join(lines).encode("utf-8", "surrogatepass")


class TestFuzz:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.binary(max_size=300), sdp_like()))
    def test_parser_raises_only_sdp_error_and_round_trips(self, data: bytes) -> None:
        try:
            sdp = SessionDescription.parse(data)
        except SdpError:
            return
        assert SessionDescription.parse(sdp.serialize()) == sdp
        for m in sdp.media:
            m.codecs()
            _ = m.ptime
        with contextlib.suppress(SdpError):
            answer_offer(sdp, HUB, session())

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.sampled_from([0, 3, 8, 9, 18, 96, 101]), min_size=1, max_size=6, unique=True),
        st.sampled_from(list(Direction)),
    )
    def test_answer_always_matches_offer_shape(self, pts: list[int], direction: Direction) -> None:
        body = SIPP_UAC_OFFER.replace(b"RTP/AVP 0", b"RTP/AVP " + " ".join(map(str, pts)).encode())
        offer = parse(body + f"a={direction.value}\r\n".encode() + b"m=video 7000 RTP/AVP 96\r\n")
        try:
            _, answer, media = answer_offer(offer, HUB, session())
        except SdpNegotiationError:
            assert not {0, 8} & set(pts)
            return
        assert len(answer.media) == len(offer.media)
        assert media.codec.payload_type == next(p for p in pts if p in (0, 8))
        assert media.direction is direction.reversed()
        assert negotiate_answer(offer, answer).codec.payload_type == media.codec.payload_type


def test_media_description_values_build_without_parsing() -> None:
    m = MediaDescription("audio", 4000, "RTP/AVP", ("0",), attributes=(PCMU.rtpmap(),))
    sdp = SessionDescription(Origin("u", 1, 2, "h"), connection=Connection("h"), media=(m,))
    assert parse(sdp.serialize()) == sdp
