"""The telephony process's shared SIP and media stack: one user agent, one RTP port pool, one media
clock, the registration to a PBX, and the numbers served.

Theory of operation: ``TelephonyStack.running(settings)`` starts the ``UserAgent`` on
``CITYHUB_SIP_HOST:PORT`` (port 0 in tests), the ``PortPool`` over ``CITYHUB_RTP_PORTS``, the
``MediaClock`` every outgoing stream is paced by, and, with ``CITYHUB_SIP_REGISTRAR``, the
``Registration`` (REGISTER refreshed; Expires 0 on exit). The services on top of it (voice warnings
call out; the 12319 hotline answers) share it: one socket means one SIP address for the carrier,
the PBX and the speakers, and one port pool that never hands a port to two streams.

An incoming INVITE is routed by the number dialled (the Request-URI's user part): ``serve(number,
handler)`` registers a service's handler; a number nobody serves is answered 404 Not Found, cleanly.
A REGISTER goes to the one handler ``serve_register`` set (the hotline's registrar: desk phones of
agents register to the hub); without one it is answered 501.
Leaving the context stops the registration (unregistering) and closes the agent, after the services
above it (entered later on the same exit stack) have hung up their calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from telephony.rtp.clock import MediaClock
from telephony.rtp.session import PortPool
from telephony.sip.agent import Address, Credentials, IncomingCall, UserAgent
from telephony.sip.message import Request, Response
from telephony.sip.registration import Registration

if TYPE_CHECKING:
    from hub.settings import Settings

log = logging.getLogger(__name__)

InviteHandler = Callable[[IncomingCall], Awaitable[None]]
RegisterHandler = Callable[[Request, Address], Response | None]


class TelephonyStack:
    def __init__(self, settings: Settings) -> None:
        s = settings
        self.settings = s
        self.agent = UserAgent(
            s.sip_host,
            s.sip_port,
            user=s.sip_user,
            advertise=s.sip_advertise,
            media_timeout=s.media_timeout,
        )
        self.ports = PortPool(*s.rtp_port_range)
        self.clock = MediaClock()
        self.registration: Registration | None = None
        self.numbers: dict[str, InviteHandler] = {}
        self.registrar: RegisterHandler | None = None
        self.tz = ZoneInfo(s.timezone)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[TelephonyStack]:
        stack = cls(settings)
        stack.agent.on_invite = stack._on_invite
        stack.agent.on_register = stack._on_register
        await stack.agent.start()
        try:
            s = settings
            if s.sip_registrar:
                user, password = s.sip_username or s.sip_user, s.sip_password.reveal()
                creds = Credentials(user, password) if s.sip_username or password else None
                stack.registration = Registration(
                    stack.agent, s.sip_registrar, s.sip_user, credentials=creds,
                    expires=s.sip_register_expires,
                )  # fmt: skip
                stack.registration.start()
            host, port = stack.agent.local_address
            log.info("telephony: SIP on %s:%d, RTP %s", host, port, s.rtp_ports)
            yield stack
        finally:
            if stack.registration is not None:
                await stack.registration.stop()
            stack.agent.close()
            await stack.agent.wait_closed()

    def serve(self, number: str, handler: InviteHandler) -> Callable[[], None]:
        """Answer INVITEs to ``number`` with ``handler``; returns the function that stops it."""
        if number in self.numbers:
            raise ValueError(f"number {number} is already served")
        self.numbers[number] = handler

        def stop() -> None:
            if self.numbers.get(number) is handler:
                del self.numbers[number]

        return stop

    def serve_register(self, handler: RegisterHandler) -> Callable[[], None]:
        """Answer REGISTERs with ``handler`` (the hotline's registrar for desk phones); returns the
        function that stops it. Without one, REGISTER is answered 501."""
        if self.registrar is not None:
            raise ValueError("REGISTER is already served")
        self.registrar = handler

        def stop() -> None:
            if self.registrar is handler:
                self.registrar = None

        return stop

    def _on_register(self, request: Request, source: Address) -> Response | None:
        handler = self.registrar
        return None if handler is None else handler(request, source)

    async def _on_invite(self, incoming: IncomingCall) -> None:
        handler = self.numbers.get(incoming.user or "")
        if handler is None:
            await incoming.reject(404)
            return
        await handler(incoming)

    def health_summary(self) -> str:
        host, port = self.agent.local_address
        reg = f", {self.registration.summary(self.tz)}" if self.registration else ""
        return f"udp {host}:{port}{reg}"

    def metrics_lines(self) -> list[str]:
        """Prometheus text: the SIP counters and calls by state."""
        st = self.agent.stats
        out = ["# TYPE cityhub_sip_total counter"]
        for key in ("received", "sent", "requests", "responses", "parse_errors", "garbage"):
            out.append(f'cityhub_sip_total{{what="{key}"}} {st.get(key, 0)}')
        out.append(f'cityhub_sip_total{{what="retransmissions"}} {st.get("retransmissions", 0)}')
        out.append("# TYPE cityhub_sip_calls gauge")
        for key, value in sorted(st.items()):
            if key.startswith("calls_"):
                out.append(f'cityhub_sip_calls{{state="{key[6:]}"}} {value}')
        return out
