"""Errors of the telephony package, one root, carrying data (the SIP status to answer), not only text.

Tree::

    CityhubError (hub.core.errors)
    └── TelephonyError                  anything the telephony core refuses
        ├── SipProtocolError            a peer broke the protocol; ``status`` is the SIP answer
        │   └── SdpError                malformed or oversized SDP body (400)
        │       └── SdpNegotiationError no common codec / unusable offer (488 Not Acceptable Here)
        └── RtpError                    a short or malformed RTP/RTCP/telephone-event packet: drop, count

The sans-I/O cores raise these; the adapters translate them at the edge (a response with ``status``
and ``reason`` for a request, a dropped datagram counted in the metrics otherwise).
"""

from __future__ import annotations

from typing import Any

from hub.core.errors import CityhubError


class TelephonyError(CityhubError):
    code = "telephony_error"


class SipProtocolError(TelephonyError):
    """A SIP peer sent something we refuse; answer it with ``status`` and ``reason``."""

    code = "sip_protocol_error"

    def __init__(self, status: int, reason: str, *, details: Any = None) -> None:
        super().__init__(f"{status} {reason}", details=details)
        self.status = status
        self.reason = reason


class SdpError(SipProtocolError):
    """A session description that does not parse or breaks a limit (answered 400 by default)."""

    code = "sdp_error"

    def __init__(self, reason: str, *, status: int = 400, details: Any = None) -> None:
        super().__init__(status, reason, details=details)


class SdpNegotiationError(SdpError):
    """Offer/answer failed (no common codec, no usable media): ``488 Not Acceptable Here``."""

    code = "sdp_negotiation_error"

    def __init__(self, reason: str = "Not Acceptable Here", *, details: Any = None) -> None:
        super().__init__(reason, status=488, details=details)

class RtpError(TelephonyError):
    """An RTP, RTCP or RFC 4733 payload that does not parse or breaks a limit (the datagram is dropped)."""

    code = "rtp_error"

    def __init__(self, reason: str, *, details: Any = None) -> None:
        super().__init__(reason, details=details)
        self.reason = reason
