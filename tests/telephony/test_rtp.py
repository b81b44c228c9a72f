"""RTP, RFC 4733 telephone events, RTCP SR/RR, reception statistics and the pacer.

Fixtures are datagrams assembled octet by octet from the RFCs' layouts, written out as bytes literals
so that a change in the parsers' reading of any bit shows up here."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.errors import RtpError, TelephonyError
from telephony.rtp import (
    Pacer,
    ReceiverReport,
    ReceiverStats,
    ReportBlock,
    RtcpPacket,
    RtpExtension,
    RtpPacket,
    SenderReport,
    TelephoneEvent,
    digit_event,
    dtmf_schedule,
    event_digit,
    is_rtcp,
    ntp_timestamp,
    parse_compound,
    parse_events,
    serialize_compound,
)

FUZZ = settings(max_examples=400, deadline=None)

# A 20 ms PCMU packet: V=2, no P/X/CC, M=0, PT=0, seq 0x1234, ts 0x000A0B0C, SSRC 0xDEADBEEF.
PCMU_PACKET = bytes.fromhex("80 00 1234 000a0b0c deadbeef") + b"\xff" * 160
# The first packet of a talkspurt in PCMA with two CSRCs, the marker bit, a one-word header
# extension (profile 0xBEDE, RFC 8285 one-byte form) and 4 octets of padding.
COMPLEX_PACKET = (
    bytes.fromhex("b2 88 ffff ffffff00 00000001")  # V=2 P X CC=2 | M PT=8 | seq | ts | ssrc
    + bytes.fromhex("00000002 00000003")  # CSRC list
    + bytes.fromhex("bede 0001 10ff0000")  # extension: profile, 1 word, data
    + b"\xd5" * 8  # payload
    + bytes.fromhex("00000004")  # padding, the last octet its count
)
# RFC 4733 telephone-event: digit 5, volume 10, duration 800, then the same with the E bit.
DTMF_5 = bytes.fromhex("80 e5 0065 0000bb80 11223344") + bytes.fromhex("05 0a 0320")
DTMF_5_END = bytes.fromhex("80 65 0066 0000bb80 11223344") + bytes.fromhex("05 8a 0320")
# Compound RTCP: SR (no blocks) + SDES with one CNAME "abc@de".
SR_SDES = (
    bytes.fromhex("80 c8 0006 12345678 e5f2c1a0 80000000 00000a00 00000032 00001f40")
    + bytes.fromhex("81 ca 0004 12345678 0106")
    + b"abc@de"
    + bytes(4)
)
# RR with one report block: 10/256 lost, cumulative 3, highest 0x0001000a, jitter 17.
RR_ONE = bytes.fromhex("81 c9 0007 cafebabe 12345678 0a000003 0001000a 00000011 c1a08000 00008000")


class TestSection5_1_RtpFixedHeader:
    def test_parse_pcmu(self) -> None:
        p = RtpPacket.parse(PCMU_PACKET)
        assert (p.payload_type, p.sequence, p.timestamp, p.ssrc) == (0, 0x1234, 0xA0B0C, 0xDEADBEEF)
        assert not p.marker and p.csrcs == () and p.extension is None and p.padding == 0
        assert p.payload == b"\xff" * 160
        assert p.serialize() == PCMU_PACKET

    def test_parse_csrc_extension_padding(self) -> None:
        p = RtpPacket.parse(COMPLEX_PACKET)
        assert p.marker and p.payload_type == 8
        assert p.sequence == 0xFFFF and p.timestamp == 0xFFFFFF00 and p.ssrc == 1
        assert p.csrcs == (2, 3)
        assert p.extension == RtpExtension(0xBEDE, bytes.fromhex("10ff0000"))
        assert p.payload == b"\xd5" * 8 and p.padding == 4
        assert p.header_size == 12 + 8 + 8
        assert p.serialize() == COMPLEX_PACKET

    def test_marker_and_payload_type_share_an_octet(self) -> None:
        raw = RtpPacket(payload_type=101, sequence=1, timestamp=2, ssrc=3, marker=True).serialize()
        assert raw[1] == 0x80 | 101

    @pytest.mark.parametrize(
        ("datagram", "why"),
        [
            (b"", "empty"),
            (PCMU_PACKET[:11], "short of the fixed header"),
            (b"\x40" + PCMU_PACKET[1:], "version 1"),
            (b"\x00" + PCMU_PACKET[1:], "version 0"),
            (b"\x8f" + PCMU_PACKET[1:12], "CSRC list past the end"),
            (b"\x90" + PCMU_PACKET[1:12] + b"\xbe\xde", "extension header cut"),
            (b"\x90" + PCMU_PACKET[1:12] + b"\xbe\xde\x00\x02" + bytes(4), "extension data cut"),
            (b"\xa0" + PCMU_PACKET[1:12] + b"\x00", "padding count zero"),
            (b"\xa0" + PCMU_PACKET[1:12] + b"\x00\x00\x05", "padding longer than the payload"),
            (b"\xa0" + PCMU_PACKET[1:12], "padding bit without any octet"),
            (PCMU_PACKET + bytes(9000), "over the size limit"),
        ],
    )
    def test_malformed_refused(self, datagram: bytes, why: str) -> None:
        with pytest.raises(RtpError):
            RtpPacket.parse(datagram)

    def test_size_limit_is_a_parameter(self) -> None:
        with pytest.raises(RtpError, match="exceeds 100"):
            RtpPacket.parse(PCMU_PACKET, max_size=100)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"payload_type": 128},
            {"sequence": 65536},
            {"timestamp": -1},
            {"ssrc": 1 << 32},
            {"csrcs": tuple(range(16))},
            {"padding": 256},
        ],
    )
    def test_values_check_themselves(self, kwargs: dict[str, object]) -> None:
        base: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
        with pytest.raises(RtpError):
            RtpPacket(**{**base, **kwargs})  # type: ignore[arg-type]

    def test_error_is_a_telephony_error(self) -> None:
        with pytest.raises(TelephonyError) as info:
            RtpPacket.parse(b"\x80")
        assert isinstance(info.value, RtpError)
        assert info.value.code == "rtp_error" and "shorter" in info.value.reason


class TestRfc5761_Section4_Demultiplexing:
    def test_rtcp_and_rtp_told_apart(self) -> None:
        assert is_rtcp(SR_SDES) and is_rtcp(RR_ONE)
        assert not is_rtcp(PCMU_PACKET) and not is_rtcp(COMPLEX_PACKET) and not is_rtcp(DTMF_5)
        assert not is_rtcp(b"\x80")


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    padding=st.integers(0, 255),
)


class TestSection5_1_Fuzz:
    @FUZZ
    @given(packets)
    def test_round_trip(self, packet: RtpPacket) -> None:
        assert RtpPacket.parse(packet.serialize()) == packet

    @FUZZ
    @given(st.binary(max_size=400))
    def test_random_bytes_only_rtp_error(self, data: bytes) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        assert packet.serialize()[: packet.header_size] == data[: packet.header_size]

    @FUZZ
    @given(st.binary(min_size=12, max_size=80), st.integers(0, 3), st.integers(0, 15))
    def test_version_2_headers_only_rtp_error(self, data: bytes, flags: int, cc: int) -> None:
        data = bytes([0x80 | (flags << 4) | cc]) + data[1:]
        with contextlib.suppress(RtpError):
            RtpPacket.parse(data)


class TestRfc4733_Section2_3_PayloadFormat:
    def test_parse(self) -> None:
        packet = RtpPacket.parse(DTMF_5)
        assert packet.marker and packet.payload_type == 101 and packet.timestamp == 48000
        event = TelephoneEvent.parse(packet.payload)
        assert event == TelephoneEvent(event=5, duration=800, end=False, volume=10)
        assert event.digit == "5"
        end = TelephoneEvent.parse(RtpPacket.parse(DTMF_5_END).payload)
        assert end.end and end.duration == 800 and end.volume == 10

    def test_serialize(self) -> None:
        assert TelephoneEvent(5, 800, volume=10).serialize() == DTMF_5[12:]
        assert TelephoneEvent(5, 800, end=True, volume=10).serialize() == DTMF_5_END[12:]

    def test_reserved_bit_ignored(self) -> None:
        assert TelephoneEvent.parse(b"\x0b\x4a\x01\x40") == TelephoneEvent(11, 320, volume=10)

    @pytest.mark.parametrize("payload", [b"", b"\x05\x0a\x03", b"\x05\x0a\x03\x20\x00"])
    def test_wrong_length_refused(self, payload: bytes) -> None:
        with pytest.raises(RtpError):
            TelephoneEvent.parse(payload)

    def test_several_events_in_one_payload(self) -> None:
        both = parse_events(DTMF_5[12:] + b"\x0b\x8a\x03\x20")
        assert [e.digit for e in both] == ["5", "#"] and both[1].end
        for bad in (b"", b"\x00" * 6, b"\x00" * 68):
            with pytest.raises(RtpError):
                parse_events(bad)

    @pytest.mark.parametrize("kwargs", [{"event": 256}, {"volume": 64}, {"duration": 65536}])
    def test_values_check_themselves(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(RtpError):
            TelephoneEvent(**{"event": 1, "duration": 0, **kwargs})  # type: ignore[arg-type]

    @FUZZ
    @given(st.binary(max_size=80))
    def test_random_payload_only_rtp_error(self, data: bytes) -> None:
        try:
            events = parse_events(data)
        except RtpError:
            return
        assert b"".join(e.serialize() for e in events)[0::4] == data[0::4]


class TestRfc4733_Section3_2_DtmfEvents:
    def test_codes(self) -> None:
        assert [digit_event(d) for d in "0123456789*#ABCD"] == list(range(16))
        assert digit_event("a") == 12
        assert event_digit(11) == "#" and event_digit(32) is None
        with pytest.raises(RtpError):
            digit_event("E")


class TestRfc4733_Section2_5_1_SenderSchedule:
    def test_one_digit(self) -> None:
        plan = dtmf_schedule("5", timestamp=48000, sequence=1000, ssrc=0x11223344, volume=10)
        events = [TelephoneEvent.parse(s.packet.payload) for s in plan]
        assert [s.offset for s in plan] == [0, 160, 320, 480, 640, 800, 960]
        assert [s.packet.sequence for s in plan] == list(range(1000, 1007))
        assert {s.packet.timestamp for s in plan} == {48000}  # the event's start, held
        assert [s.packet.marker for s in plan] == [True] + [False] * 6
        assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
        assert [e.end for e in events] == [False] * 4 + [True] * 3  # the end sent three times
        assert {e.event for e in events} == {5} and {s.packet.payload_type for s in plan} == {101}
        assert plan[0].packet.serialize()[:2] == DTMF_5[:2]
        assert plan[-1].offset_seconds() == pytest.approx(0.120)

    def test_shortest_and_odd_durations(self) -> None:
        plan = dtmf_schedule("#", timestamp=0, sequence=0, ssrc=1, duration=160)
        ends = [TelephoneEvent.parse(s.packet.payload) for s in plan]
        assert len(plan) == 3 and all(e.end and e.duration == 160 for e in ends)
        assert plan[0].packet.marker
        plan = dtmf_schedule("1", timestamp=0, sequence=0, ssrc=1, duration=500)
        durations = [TelephoneEvent.parse(s.packet.payload).duration for s in plan]
        assert durations == [160, 320, 480, 500, 500, 500]

    def test_sequence_wraps(self) -> None:
        plan = dtmf_schedule("9", timestamp=0xFFFFFFFF, sequence=65534, ssrc=1)
        assert [s.packet.sequence for s in plan][:3] == [65534, 65535, 0]
        assert plan[0].packet.timestamp == 0xFFFFFFFF

    @pytest.mark.parametrize("kwargs", [{"duration": 100}, {"interval": 0}, {"duration": 70000}])
    def test_bad_arguments(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(RtpError):
            dtmf_schedule("1", timestamp=0, sequence=0, ssrc=1, **kwargs)


class TestSection6_4_1_SenderReport:
    def test_parse_compound_with_sdes(self) -> None:
        sr, sdes = parse_compound(SR_SDES)
        assert isinstance(sr, SenderReport)
        assert sr.ssrc == 0x12345678 and sr.ntp_timestamp == 0xE5F2C1A080000000
        assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (0xA00, 50, 8000)
        assert sr.reports == () and sr.extension == b""
        assert sdes == RtcpPacket(202, 1, bytes.fromhex("12345678 0106") + b"abc@de" + bytes(4))
        assert serialize_compound([sr, sdes]) == SR_SDES

    def test_with_blocks_round_trip(self) -> None:
        block = ReportBlock(7, 255, -5, 0x10001, 123, 0xC1A08000, 0x8000)
        sr = SenderReport(1, 2, 3, 4, 5, (block, block), extension=b"abcd")
        raw = sr.serialize()
        assert raw[0] == 0x82 and raw[1] == 200 and struct.unpack("!H", raw[2:4])[0] == 6 + 12 + 1
        assert parse_compound(raw) == (sr,)


class TestSection4_NtpTimestamps:
    def test_unix_to_ntp(self) -> None:
        assert ntp_timestamp(0.0) == 2_208_988_800 << 32
        assert ntp_timestamp(1.5) == ((2_208_988_801 << 32) | 0x80000000)
        # 2026-12-01T00:00:00Z, a quarter second past
        assert ntp_timestamp(1_796_083_200.25) == ((1_796_083_200 + 2_208_988_800) << 32) | 1 << 30
        assert ntp_timestamp(0.9999999999) >> 32 == 2_208_988_800  # the fraction never carries


class TestSection6_4_2_ReceiverReport:
    def test_parse(self) -> None:
        (rr,) = parse_compound(RR_ONE)
        assert isinstance(rr, ReceiverReport) and rr.ssrc == 0xCAFEBABE
        assert rr.reports == (ReportBlock(0x12345678, 10, 3, 0x1000A, 17, 0xC1A08000, 0x8000),)
        assert rr.serialize() == RR_ONE

    def test_negative_cumulative_lost(self) -> None:
        raw = RR_ONE[:12] + b"\x00\xff\xff\xfe" + RR_ONE[16:]
        (rr,) = parse_compound(raw)
        assert isinstance(rr, ReceiverReport) and rr.reports[0].cumulative_lost == -2
        assert rr.serialize() == raw

    def test_empty_rr_with_padding_last(self) -> None:
        raw = bytes.fromhex("a0 c9 0002 00000009 00000004")
        assert parse_compound(raw) == (ReceiverReport(9),)

    @pytest.mark.parametrize(
        ("datagram", "why"),
        [
            (b"", "empty"),
            (RR_ONE[:3], "short header"),
            (b"\x41" + RR_ONE[1:], "version 1"),
            (RR_ONE[:-1], "length past the end"),
            (b"\x82" + RR_ONE[1:], "two blocks announced, one present"),
            (bytes.fromhex("81 ca 0001 00000001"), "compound starting with SDES"),
            (bytes.fromhex("a0 c9 0002 00000009 00000004") + RR_ONE, "padding not in the last"),
            (bytes.fromhex("a0 c9 0002 00000009 00000000"), "padding count zero"),
            (bytes.fromhex("a0 c9 0002 00000009 00000010"), "padding longer than the packet"),
            (RR_ONE * 300, "over the size limit"),
        ],
    )
    def test_malformed_refused(self, datagram: bytes, why: str) -> None:
        with pytest.raises(RtpError):
            parse_compound(datagram)

    @pytest.mark.parametrize(
        "kwargs", [{"fraction_lost": 256}, {"cumulative_lost": 0x800000}, {"jitter": -1}]
    )
    def test_block_checks_itself(self, kwargs: dict[str, int]) -> None:
        base = {
            "ssrc": 1,
            "fraction_lost": 0,
            "cumulative_lost": 0,
            "highest_sequence": 0,
            "jitter": 0,
        }
        with pytest.raises(RtpError):
            ReportBlock(**{**base, **kwargs})

    def test_serialize_compound_needs_a_report_first(self) -> None:
        with pytest.raises(RtpError):
            serialize_compound([RtcpPacket(203, 1, bytes(4))])


reports = st.builds(
    ReportBlock,
    ssrc=st.integers(0, 0xFFFFFFFF),
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=st.integers(0, 0xFFFFFFFF),
    jitter=st.integers(0, 0xFFFFFFFF),
    lsr=st.integers(0, 0xFFFFFFFF),
    dlsr=st.integers(0, 0xFFFFFFFF),
)
words = st.integers(0, 4).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))


class TestSection6_4_Fuzz:
    @FUZZ
    @given(
        st.one_of(
            st.builds(
                SenderReport,
                ssrc=st.integers(0, 0xFFFFFFFF),
                ntp_timestamp=st.integers(0, (1 << 64) - 1),
                rtp_timestamp=st.integers(0, 0xFFFFFFFF),
                packet_count=st.integers(0, 0xFFFFFFFF),
                octet_count=st.integers(0, 0xFFFFFFFF),
                reports=st.lists(reports, max_size=4).map(tuple),
                extension=words,
            ),
            st.builds(
                ReceiverReport,
                ssrc=st.integers(0, 0xFFFFFFFF),
                reports=st.lists(reports, max_size=4).map(tuple),
                extension=words,
            ),
        ),
        st.lists(
            st.builds(RtcpPacket, st.integers(202, 210), st.integers(0, 31), words), max_size=3
        ),
    )
    def test_round_trip(self, first: SenderReport | ReceiverReport, rest: list[RtcpPacket]) -> None:
        assert parse_compound(serialize_compound([first, *rest])) == (first, *rest)

    @FUZZ
    @given(st.binary(max_size=300))
    def test_random_bytes_only_rtp_error(self, data: bytes) -> None:
        with contextlib.suppress(RtpError):
            parse_compound(data)

    @FUZZ
    @given(st.integers(0, len(RR_ONE + SR_SDES) - 1), st.integers(0, 255), st.booleans())
    def test_mutated_captures_only_rtp_error(self, where: int, value: int, cut: bool) -> None:
        data = bytearray(RR_ONE + SR_SDES)
        data[where] = value
        with contextlib.suppress(RtpError):
            parse_compound(bytes(data[:where]) if cut else bytes(data))


class TestSection6_4_1_AppendixA_ReceptionStatistics:
    def feed(self, stats: ReceiverStats, packets: list[tuple[int, int, float]]) -> list[bool]:
        return [stats.update(seq, ts, now) for seq, ts, now in packets]

    def test_hand_computed_example(self) -> None:
        # 8 kHz. Probation (A.1, MIN_SEQUENTIAL = 2): packet 100 is not counted, 101 sets the base.
        # Transit = arrival × 8000 - timestamp: 0, 0, 40, 0, 0; |D| = 0, 40, 40, 0.
        # A.8 integer jitter (J×16): 0 → 0; +40 - (0+8)>>4 = 40; +40 - (40+8)>>4 = 77;
        # +0 - (77+8)>>4 = 72 → reported 72 >> 4 = 4 (the float formula gives 4.54).
        # 103 is lost: expected = 105 - 101 + 1 = 5, received 4, fraction = (1 << 8) // 5 = 51.
        stats = ReceiverStats(0x1234)
        accepted = self.feed(
            stats,
            [
                (100, 0, 0.000),
                (101, 160, 0.020),
                (102, 320, 0.045),
                (104, 640, 0.080),
                (105, 800, 0.100),
            ],
        )
        assert accepted == [False, True, True, True, True] and stats.valid
        assert (stats.base_seq, stats.extended_max, stats.received) == (101, 105, 4)
        block = stats.report_block(0.1)
        assert block == ReportBlock(
            0x1234, fraction_lost=51, cumulative_lost=1, highest_sequence=105, jitter=4
        )
        # Next interval: 106 and a duplicate of it: 1 expected, 2 received → fraction 0, lost 0.
        self.feed(stats, [(106, 960, 0.120), (106, 960, 0.121)])
        block = stats.report_block(0.2)
        assert (block.fraction_lost, block.cumulative_lost, block.highest_sequence) == (0, 0, 106)

    def test_float_formula_agrees(self) -> None:
        stats = ReceiverStats(1, probation=1)
        arrivals = [0.0, 0.021, 0.039, 0.065, 0.080, 0.1003, 0.125, 0.139]
        j = 0.0
        previous = None
        for n, now in enumerate(arrivals):
            stats.update(n, 160 * n, now)
            transit = round(now * 8000) - 160 * n
            if previous is not None:
                j += (abs(transit - previous) - j) / 16
            previous = transit
        assert abs(stats.jitter - j) <= 1

    def test_sequence_wrap_counts_a_cycle(self) -> None:
        stats = ReceiverStats(1)
        self.feed(
            stats,
            [
                (65533, 0, 0.0),
                (65534, 160, 0.02),
                (65535, 320, 0.04),
                (0, 480, 0.06),
                (1, 640, 0.08),
            ],
        )
        assert stats.cycles == 65536 and stats.extended_max == 65537
        block = stats.report_block(0.1)
        assert block.highest_sequence == 65537 and block.cumulative_lost == 0

    def test_loss_at_the_wrap(self) -> None:
        stats = ReceiverStats(1, probation=1)
        self.feed(stats, [(65534, 0, 0.0), (1, 480, 0.06)])
        assert stats.expected == 4 and stats.lost == 2
        assert stats.report_block(0.1).fraction_lost == 128

    def test_reordered_packet_counted_not_max(self) -> None:
        stats = ReceiverStats(1, probation=1)
        self.feed(stats, [(10, 0, 0.0), (12, 320, 0.04), (11, 160, 0.041)])
        assert stats.extended_max == 12 and stats.received == 3 and stats.lost == 0

    def test_wild_jump_then_restart(self) -> None:
        stats = ReceiverStats(1, probation=1)
        assert self.feed(stats, [(1000, 0, 0.0), (1001, 160, 0.02)]) == [True, True]
        assert (
            stats.update(20000, 320, 0.04) is False
        )  # beyond MAX_DROPOUT: remembered, not counted
        assert stats.extended_max == 1001
        assert stats.update(20001, 480, 0.06) is True  # it follows: the source restarted
        assert (stats.base_seq, stats.received, stats.expected) == (20001, 1, 1)

    def test_probation_restarts_on_a_gap(self) -> None:
        stats = ReceiverStats(1)
        assert self.feed(stats, [(5, 0, 0.0), (9, 0, 0.0), (10, 0, 0.0)]) == [False, False, True]
        assert stats.base_seq == 10

    def test_lsr_and_dlsr(self) -> None:
        stats = ReceiverStats(7, probation=1)
        stats.update(1, 0, 9.0)
        assert stats.report_block(9.5).lsr == 0  # no SR yet: LSR and DLSR are 0
        stats.sender_report(0x0123456789ABCDEF, now=10.0)
        block = stats.report_block(10.5)
        assert (block.lsr, block.dlsr) == (0x456789AB, 32768)  # 0.5 s in 1/65536 s

    def test_cumulative_lost_clamped_to_24_bits(self) -> None:
        stats = ReceiverStats(1, probation=1)
        stats.update(0, 0, 0.0)
        stats.cycles = 200 * 65536  # as after 200 wraps with nothing received
        assert stats.lost == 0x7FFFFF
        assert stats.report_block(1.0).cumulative_lost == 0x7FFFFF

    def test_jitter_across_the_timestamp_wrap(self) -> None:
        stats = ReceiverStats(1, probation=1)
        stats.update(0, 0xFFFFFF60, 0.0)
        stats.update(1, 0, 0.02)  # +160 across the 32-bit wrap, on time: D = 0
        assert stats.jitter == 0


class TestPacing:
    def test_absolute_schedule(self) -> None:
        pacer = Pacer(1000.0, first_sequence=65534, first_timestamp=0xFFFFFF00)
        slots = [pacer.slot(n) for n in range(4)]
        assert [s.sequence for s in slots] == [65534, 65535, 0, 1]
        assert [s.timestamp for s in slots] == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]
        assert [s.send_at for s in slots] == [1000.0 + n * 0.020 for n in range(4)]

    def test_no_accumulated_drift(self) -> None:
        pacer = Pacer(12345.678)
        accumulated = 12345.678
        for _ in range(180_000):  # one hour of packets
            accumulated += 0.020
        exact = 12345.678 + 180_000 * 0.020
        assert pacer.slot(180_000).send_at == exact
        assert accumulated != exact  # what adding intervals would have drifted to

    def test_on_time_waits(self) -> None:
        pacer = Pacer(100.0)
        first = pacer.take(100.0)
        assert first.wait == 0 and not first.late and first.slot.index == 0
        second = pacer.take(100.005)
        assert second.wait == pytest.approx(0.015) and not second.late
        assert pacer.late_packets == 0

    def test_late_sender_sends_at_once_and_counts(self) -> None:
        pacer = Pacer(100.0, tolerance=0.002)
        pacer.take(100.0)
        assert pacer.behind(100.075) == 3  # packets 1, 2, 3 are due
        sends = [pacer.take(100.075) for _ in range(4)]
        assert [s.slot.index for s in sends] == [1, 2, 3, 4]  # none skipped
        assert [s.late for s in sends] == [True, True, True, False]
        assert [s.wait for s in sends][:3] == [0.0, 0.0, 0.0]
        assert sends[3].wait == pytest.approx(0.005)  # the schedule stays anchored: caught up
        assert pacer.late_packets == 3 and pacer.max_lateness == pytest.approx(0.055)
        assert pacer.behind(100.075) == 0

    def test_within_tolerance_is_not_late(self) -> None:
        pacer = Pacer(0.0, tolerance=0.002)
        send = pacer.take(0.001)
        assert send.wait == 0 and not send.late and send.lateness == pytest.approx(0.001)

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError):
            Pacer(0.0, ptime=0)
        with pytest.raises(ValueError):
            Pacer(0.0, first_sequence=65536)
        with pytest.raises(ValueError):
            Pacer(0.0).slot(-1)
