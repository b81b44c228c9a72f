"""Simulated street loudspeakers: SIP endpoints that auto-answer and count what they receive.

Theory of operation: one ``UserAgent`` on its own UDP socket answers for every simulated speaker
(``sip:spk-01@127.0.0.1:PORT`` … one user part each). An INVITE to a known speaker is answered at
once (what an auto-answer paging speaker does) with a ``recvonly`` PCMA/PCMU answer on a fresh RTP
port; the RTP that arrives is counted per speaker (calls, packets, octets, the last call's audio
kept up to ``keep_seconds``). A speaker can be told to behave badly for tests and demos: ``busy``
(486), ``reject`` (603), ``silent`` (never answers: the caller's ring timeout CANCELs), or
``offline`` (OPTIONS and INVITE go unanswered). Unknown numbers get 404.

The demo city (``cityhub serve --demo``) starts 22 of them in the telephony process and points the
demo speakers' URIs at them, so every warning feature works on a fresh machine. Nothing here is
used against real speakers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Literal

from telephony.rtp.packet import RtpPacket
from telephony.rtp.session import PortPool, RtpStream
from telephony.sdp import PCMA, PCMU, Direction, LocalMedia, SdpSession, answer_offer
from telephony.sip.agent import UserAgent
from telephony.sip.call import IncomingCall
from telephony.sip.message import Request

log = logging.getLogger(__name__)

Behaviour = Literal["answer", "busy", "reject", "silent", "offline"]
REJECT_STATUS = {"busy": 486, "reject": 603}


@dataclasses.dataclass(slots=True)
class Counts:
    calls: int = 0
    packets: int = 0
    octets: int = 0
    #: The last call's payload (G.711 bytes as received, in arrival order), capped.
    last_audio: bytearray = dataclasses.field(default_factory=bytearray)
    last_payload_type: int | None = None
    active: bool = False


class SimulatedSpeakers:
    def __init__(
        self,
        names: Iterable[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rtp_ports: tuple[int, int] = (40000, 40999),
        keep_seconds: float = 120.0,
    ) -> None:
        self.host = host
        self.agent = UserAgent(host, port, user="speaker")
        self.agent.on_invite = self._on_invite
        self.ports = PortPool(*rtp_ports)
        self.counts: dict[str, Counts] = {n: Counts() for n in names}
        self.behaviour: dict[str, Behaviour] = {n: "answer" for n in self.counts}
        self.keep_bytes = int(keep_seconds * 8000)
        self._endpoint_request = self.agent.endpoint.on_request
        self.agent.endpoint.on_request = self._filter

    async def start(self) -> None:
        await self.agent.start()

    async def close(self) -> None:
        self.agent.close()
        await self.agent.wait_closed()

    async def __aenter__(self) -> SimulatedSpeakers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def uri(self, name: str) -> str:
        host, port = self.agent.local_address
        return f"sip:{name}@{host}:{port}"

    def _filter(self, request: object, source: tuple[str, int]) -> None:
        """Offline speakers answer nothing at all (not even OPTIONS)."""
        if isinstance(request, Request):
            user = _user(request.uri)
            if user is not None and self.behaviour.get(user) == "offline":
                return
            self._endpoint_request(request, source)

    async def _on_invite(self, incoming: IncomingCall) -> None:
        name = incoming.user
        if name is None or name not in self.counts:
            await incoming.reject(404)
            return
        behaviour = self.behaviour[name]
        if behaviour in REJECT_STATUS:
            await incoming.reject(REJECT_STATUS[behaviour])
            return
        if behaviour == "silent":
            await incoming.ring()
            await incoming.cancelled.wait()
            return
        if incoming.offer is None:
            await incoming.reject(488)
            return
        counts = self.counts[name]
        stream = await RtpStream.open(self.ports, self.host)
        try:
            local = LocalMedia(
                self.host, stream.local_port, direction=Direction.RECVONLY, codecs=(PCMA, PCMU)
            )
            _, sdp, media = answer_offer(incoming.offer, local, SdpSession(1, 1, self.host))
            counts.calls += 1
            counts.last_audio.clear()
            counts.active = True

            def on_packet(p: RtpPacket) -> None:
                counts.packets += 1
                counts.octets += len(p.payload)
                counts.last_payload_type = p.payload_type
                if len(counts.last_audio) < self.keep_bytes:
                    counts.last_audio += p.payload

            stream.on_packet = on_packet
            call = await incoming.answer(sdp)
            stream.set_remote((media.remote_address, media.remote_port), media.codec.payload_type)
            await call.ended
        finally:
            counts.active = False
            stream.close()


def _user(uri: str) -> str | None:
    rest = uri.split(":", 1)[-1]
    return rest.split("@", 1)[0] if "@" in rest else None
