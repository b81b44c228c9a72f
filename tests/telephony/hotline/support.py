"""What the hotline's end-to-end tests share: the service and a state channel of a hub, waiting for
a condition, and ``Caller``, a citizen's phone (the hub's own user agent as a UAC with an RTP
stream that plays a 440 Hz tone and keeps what it hears). The fixtures are in ``conftest.py``."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import numpy as np

from hub.state import HubState
from telephony.g711 import G711Law
from telephony.hotline.service import HotlineService
from telephony.rtp.session import PortPool, RtpStream
from telephony.sdp import PCMA, Direction, LocalMedia, SdpSession, build_offer, negotiate_answer
from telephony.sip.agent import UserAgent


def hotline(hub: HubState) -> HotlineService:
    service = hub.services["hotline"]
    assert isinstance(service, HotlineService)
    return service


def channel(hub: HubState, name: str) -> dict[str, Any]:
    assert hub.fanout is not None
    return hub.fanout.states.snapshot(name)


async def until(cond: Any, timeout: float = 20.0, what: str = "") -> None:
    """Wait until ``cond()`` is true (``TimeoutError`` after ``timeout`` s; ``what`` names it)."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"waited {timeout} s for {what or cond}") from None


class Caller:
    """A citizen's phone: dials, sends a 440 Hz tone, keeps the audio it hears."""

    def __init__(self, ua: UserAgent, ports: PortPool) -> None:
        self.ua = ua
        self.ports = ports
        self.heard = bytearray()
        self.stream: RtpStream | None = None
        self.call: Any = None
        self._tone: asyncio.Task[Any] | None = None

    async def dial(self, hub_port: int, number: str = "12319", caller: str = "13800001111") -> None:
        self.stream = await RtpStream.open(self.ports, "127.0.0.1")
        local = LocalMedia("127.0.0.1", self.stream.local_port, Direction.SENDRECV, codecs=(PCMA,))
        _, offer = build_offer(SdpSession(secrets.randbelow(2**31), 1, "127.0.0.1"), local)
        self.ua.user = caller
        self.call = await self.ua.invite(f"sip:{number}@127.0.0.1:{hub_port}", offer)
        media = negotiate_answer(offer, self.call.remote_sdp)
        self.stream.set_remote((media.remote_address, media.remote_port), media.codec.payload_type,
                               event_payload_type=media.telephone_event)  # fmt: skip
        self.stream.on_audio = self.heard.extend
        t = np.arange(8000 * 60) / 8000
        tone = G711Law.ALAW.encode((np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16))
        self._tone = asyncio.get_running_loop().create_task(self.stream.play(tone))

    def last(self, seconds: float) -> np.ndarray:
        n = int(seconds * 8000)
        return G711Law.ALAW.decode(bytes(self.heard[-n:]))

    async def hang_up(self) -> None:
        if self._tone is not None:
            self._tone.cancel()
        if self.call is not None:
            await self.call.hangup()
        if self.stream is not None:
            self.stream.close()
