"""RTP/RTCP for the telephony core, sans I/O: packets (RFC 3550 §5.1), telephone events (RFC 4733),
RTCP SR/RR (RFC 3550 §6.4), reception statistics (RFC 3550 A.1/A.3/A.8) and the send pacer."""

from telephony.rtp.events import (
    DTMF_DIGITS,
    ScheduledPacket,
    TelephoneEvent,
    digit_event,
    dtmf_schedule,
    event_digit,
    parse_events,
)
from telephony.rtp.pacing import Pacer, Send, Slot
from telephony.rtp.packet import RtpExtension, RtpPacket, is_rtcp
from telephony.rtp.rtcp import (
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    ntp_timestamp,
    parse_compound,
    serialize_compound,
)
from telephony.rtp.stats import ReceiverStats

__all__ = [
    "DTMF_DIGITS",
    "Pacer",
    "ReceiverReport",
    "ReceiverStats",
    "ReportBlock",
    "RtcpPacket",
    "RtpExtension",
    "RtpPacket",
    "ScheduledPacket",
    "Send",
    "SenderReport",
    "Slot",
    "TelephoneEvent",
    "digit_event",
    "dtmf_schedule",
    "event_digit",
    "is_rtcp",
    "ntp_timestamp",
    "parse_compound",
    "parse_events",
    "serialize_compound",
]
