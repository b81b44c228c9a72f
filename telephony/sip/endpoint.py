"""The SIP UDP endpoint: one asyncio datagram socket around ``telephony.sip.message.parse``.

Theory of operation: every datagram goes through ``parse`` and ends in exactly one of four places,
each counted in ``EndpointStats``:

- a ``Request``: its top Via is stamped with the packet's source (RFC 3261 §18.2.1 ``received``,
  RFC 3581 §4 ``rport``) and the request is handed to ``on_request(request, source)``;
- a ``Response``: handed to ``on_response(response, source)`` (RFC 3261 §18.1.2; never answered);
- a ``MalformedRequest``: answered at once with ``make_response(e.request, e.status, e.reason)``
  (400 with a precise reason, 505, 513), sent to the packet's source address;
- ``SipGarbage`` (not SIP, keep-alive CRLFs, a malformed response): dropped.

Nothing a peer sends can stop the endpoint: a callback that raises is logged and counted. This layer
knows no transactions or dialogs; until they exist ``basic_response`` (the default ``on_request``)
answers what needs none: OPTIONS 200, INVITE 480 "not yet", CANCEL/BYE and other in-dialog requests
481, every other method 501, and ACK never.

The endpoint is not started by the hub yet (ports come from settings later); tests bind 127.0.0.1:0.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, cast

from telephony.errors import MalformedRequest, SipGarbage
from telephony.sip.message import DEFAULT_LIMITS, Limits, Request, Response, make_response, parse

log = logging.getLogger(__name__)

Address = tuple[str, int]
RequestHandler = Callable[[Request, Address], None]
ResponseHandler = Callable[[Response, Address], None]

ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS")
ACCEPT = "application/sdp"


@dataclass(slots=True)
class EndpointStats:
    """Counters for the metrics page; only ever incremented."""

    received: int = 0  # datagrams read
    sent: int = 0  # datagrams written
    requests: int = 0  # requests handed to on_request
    responses: int = 0  # responses handed to on_response
    parse_errors: int = 0  # MalformedRequest and SipGarbage together
    garbage: int = 0  # dropped as SipGarbage
    answered_400: int = 0  # MalformedRequest answered (400, 505, 513)
    handler_errors: int = 0  # a callback raised


def new_tag() -> str:
    """A To/From tag with 64 random bits (RFC 3261 §19.3 asks for at least 32)."""
    return secrets.token_hex(8)


def basic_response(
    request: Request,
    *,
    to_tag: Callable[[], str] = new_tag,
    allow: tuple[str, ...] = ALLOW,
    supported: tuple[str, ...] = (),
) -> Response | None:
    """The answer to a request when there are no transactions or dialogs yet; None for ACK (§17.1.1.3:
    an ACK is never answered). Out-of-dialog requests get a To tag (§8.2.6.2); one that carries a To
    tag belongs to a dialog that does not exist here (481, §12.2.2), as does a CANCEL (§9.2)."""
    method = request.method
    if method == "ACK":
        return None
    in_dialog = request.to_tag is not None
    tag = None if in_dialog else to_tag()
    if in_dialog or method in ("CANCEL", "BYE"):
        return make_response(request, 481)
    if method == "OPTIONS":  # §11.2
        headers = [
            ("Allow", ", ".join(allow)),
            ("Accept", ACCEPT),
            ("Supported", ", ".join(supported)),
        ]
        return make_response(request, 200, to_tag=tag, headers=headers)
    if method == "INVITE":
        return make_response(
            request, 480, "Temporarily Unavailable (calls not yet supported)", to_tag=tag
        )
    return make_response(request, 501, to_tag=tag, headers=[("Allow", ", ".join(allow))])


class SipEndpoint(asyncio.DatagramProtocol):
    """One UDP socket speaking SIP. ``port=0`` binds any free port (see ``local_address``).

    ``on_request`` defaults to answering with ``basic_response``; ``on_response`` defaults to
    ignoring. Use ``async with SipEndpoint(...)`` or ``await start()`` / ``close()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5060,
        *,
        on_request: RequestHandler | None = None,
        on_response: ResponseHandler | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits
        self.stats = EndpointStats()
        self.on_request: RequestHandler = on_request or self._basic
        self.on_response: ResponseHandler | None = on_response
        self._transport: asyncio.DatagramTransport | None = None
        self._closed: asyncio.Future[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await self._closed

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    @property
    def local_address(self) -> Address:
        if self._transport is None:
            raise RuntimeError("endpoint not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    # sending

    def send(self, message: Request | Response | bytes, addr: Address) -> None:
        """Write one datagram (a message is serialized); dropped with a warning if not started."""
        if self._transport is None or self._transport.is_closing():
            log.warning("SIP endpoint not running; datagram to %s dropped", addr)
            return
        data = message if isinstance(message, bytes) else message.serialize()
        self._transport.sendto(data, addr)
        self.stats.sent += 1

    def reply(self, request: Request, response: Response) -> None:
        """Send ``response`` where §18.2.2 / RFC 3581 §4 say: the stamped top Via's ``received`` and
        ``rport`` (else its sent-by port)."""
        via = request.top_via
        if via is None:
            return
        self.send(response, via.response_address())

    # asyncio.DatagramProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from an earlier sendto, and the like: nothing to do on UDP.
        log.debug("SIP endpoint socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.stats.received += 1
        source: Address = (str(addr[0]), int(addr[1]))
        try:
            message = parse(data, self.limits)
        except MalformedRequest as e:
            self.stats.parse_errors += 1
            self.stats.answered_400 += 1
            try:
                self.send(make_response(e.request, e.status, e.reason), source)
            except Exception:
                self.stats.handler_errors += 1
                log.exception("SIP endpoint could not answer a malformed request from %s", source)
            return
        except SipGarbage:
            self.stats.parse_errors += 1
            self.stats.garbage += 1
            return
        except Exception:  # parse promises not to; a bug there must not stop the socket
            self.stats.parse_errors += 1
            self.stats.handler_errors += 1
            log.exception("SIP parser failed on a datagram from %s", source)
            return
        try:
            if isinstance(message, Request):
                self.stats.requests += 1
                via = message.top_via
                if via is not None:
                    message = message.with_top_via(via.stamped(*source))
                self.on_request(message, source)
            else:
                self.stats.responses += 1
                if self.on_response is not None:
                    self.on_response(message, source)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("SIP handler failed on a datagram from %s", source)

    def _basic(self, request: Request, source: Address) -> None:
        response = basic_response(request)
        if response is not None:
            self.reply(request, response)
