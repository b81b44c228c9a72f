"""Agents' desk phones and softphones: the hub as their registrar, and calls offered to them.

Theory of operation
-------------------
``Phones`` (one per ``HotlineService``) keeps three things in memory:

- the phone accounts (``storage.hotline_phones``, table ``hotline_phones``: SIP user → HA1 and
  owner), loaded at start, updated by the phones API in this process, and re-read from PostgreSQL
  (at most every ``RELOAD_EVERY`` s) when a REGISTER names a user it does not know (an account made
  by another process);
- the registrar (``telephony.sip.registrar``, realm ``CITYHUB_HOTLINE_REALM``), which the
  ``TelephonyStack`` hands every REGISTER (``serve_register``). A phone whose last binding goes
  (Expires 0) while its agent is ready on the phone makes the agent 示忙 (话机未注册);
- each agent's device, ``browser`` (the default) or ``phone`` (``POST /api/hotline/me/device``).

The ACD knows nothing of devices. Its ``Offer`` to an agent on the phone becomes an INVITE to the
phone's freshest contact (``offer``): the caller's law first in the SDP offer, the other law
second. While it rings, a ``CancelOffer`` (ring timeout, the caller gone, sign-out) cancels the
INVITE task, which CANCELs the INVITE. The phone's 200 makes a ``PhoneLeg`` and then tells the
ACD ``accept`` (so ``Connect`` finds the leg, as with a browser's answer); 486/603 (or any other
refusal) is ``decline``. When the agent is on the phone but it has no live binding, the offer is
withdrawn at once: ``decline`` then 示忙 (话机未注册), so the call keeps its place in the queue and is
not offered to that agent again until they are ready once more.

``PhoneLeg`` is the phone's side of the bridge with the small interface ``legs.CallerLeg`` uses
(``AgentSide``): ``push(frame)`` takes the caller's 160-byte G.711 frames and the media clock
sends the newest to the phone (silence when none waits, the oldest dropped beyond ``BACKLOG``);
``subscribe()`` queues the phone's frames (after its jitter buffer) in the caller's law. When the
phone answered in the other law, each frame is re-coded through a 256-byte table. The phone's BYE
(or a media timeout) sets ``closed``, which the service takes as the agent hanging up; ``close()``
sends BYE.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from storage import hotline_phones as store
from storage.db import connect
from telephony.errors import CallFailed, HotlineError, SdpNegotiationError
from telephony.g711 import G711Law
from telephony.hotline import commands as c
from telephony.rtp.clock import MediaClock
from telephony.rtp.session import RtpStream
from telephony.sdp import (
    PCMA,
    PCMU,
    Direction,
    LocalMedia,
    SdpSession,
    build_offer,
    negotiate_answer,
)
from telephony.sip.call import Call
from telephony.sip.message import Request, Response
from telephony.sip.registrar import Binding, PhoneAccount, Registrar

if TYPE_CHECKING:
    from telephony.hotline.service import HotlineService

log = logging.getLogger(__name__)

FRAME: Final = 160
#: Caller frames waiting for the phone's next slot; older ones are dropped.
BACKLOG: Final = 4
#: Seconds between reloads of the accounts when an unknown SIP user registers.
RELOAD_EVERY: Final = 5.0
#: The 示忙 reason of an agent on the phone whose phone is not registered.
UNREGISTERED: Final = "话机未注册"
Device = Literal["browser", "phone"]


def transcoder(source: G711Law, target: G711Law) -> bytes | None:
    """The 256-byte table re-coding ``source`` codes into ``target`` (None: the same law)."""
    if source is target:
        return None
    return target.encode(source.decode(bytes(range(256))))


class PhoneLeg:
    """One desk phone in a call: its SIP dialog and RTP stream (see the module docstring)."""

    def __init__(
        self, call: Call, rtp: RtpStream, law: G711Law, phone_law: G711Law, clock: MediaClock
    ) -> None:
        self.call = call
        self.rtp = rtp
        self.law = law  # the caller's
        self.phone_law = phone_law
        self.closed = asyncio.Event()
        self._to_phone = transcoder(law, phone_law)
        self._from_phone = transcoder(phone_law, law)
        self._out: collections.deque[bytes] = collections.deque(maxlen=BACKLOG)
        self._silence = bytes([phone_law.silence]) * FRAME
        self._queues: list[asyncio.Queue[bytes]] = []
        self.frames_in = 0  # from the phone
        self.frames_out = 0  # to the phone
        self._closing = False
        rtp.on_audio = self._heard
        loop = asyncio.get_running_loop()
        self._play = loop.create_task(rtp.play_pull(self._next, clock=clock))
        self._ended = loop.create_task(self._wait_end())

    @property
    def codec(self) -> str:
        return self.phone_law.encoding_name

    @property
    def passthrough(self) -> bool:
        """The phone took the caller's own law: nothing is re-coded."""
        return self._to_phone is None

    def push(self, payload: bytes) -> None:
        self._out.append(payload if self._to_phone is None else payload.translate(self._to_phone))

    def subscribe(self, maxsize: int = 10) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self._queues.append(queue)
        return queue

    def _next(self) -> bytes | None:
        if self._closing:
            return None
        self.frames_out += 1
        return self._out.popleft() if self._out else self._silence

    def _heard(self, payload: bytes) -> None:
        self.frames_in += 1
        frame = payload if self._from_phone is None else payload.translate(self._from_phone)
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(frame)

    async def _wait_end(self) -> None:
        reason = await asyncio.shield(self.call.ended)
        log.info("hotline phone call %s ended: %s", self.call.call_id, reason)
        await self.close()

    async def close(self) -> None:
        """Hang up (BYE, bounded) unless the phone already has; stop the media; idempotent."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call.hangup(), 5.0)
        self.rtp.stop()
        self._play.cancel()
        self.rtp.close()
        if asyncio.current_task() is not self._ended:
            self._ended.cancel()
        self.closed.set()


class Phones:
    """The accounts, the registrar, the agents' devices and the ringing INVITEs of one hotline."""

    def __init__(self, service: HotlineService, *, registrar: Registrar | None = None) -> None:
        self.service = service
        self.registrar = registrar or Registrar(service.settings.hotline_realm)
        self.accounts: dict[str, PhoneAccount] = {}  # sip user → account (owner: agent id)
        self.devices: dict[str, Device] = {}  # agent → device (absent: browser)
        self._ringing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._reload_at = 0.0
        self._reloading: asyncio.Task[None] | None = None

    # -- accounts ---------------------------------------------------------------------------------

    async def load(self, conn: Any, *, bindings: bool = False) -> None:
        """The phone accounts (again); with ``bindings`` (at start) also where the phones were
        registered, so a restarted hub reaches them before they register again."""
        phones = await store.list_phones(conn)
        self.accounts = {p.sip_user: PhoneAccount(p.sip_user, p.ha1, str(p.user_id))
                         for p in phones if p.realm == self.registrar.realm}  # fmt: skip
        if not bindings:
            return
        now = time.time()
        for sip_user, stored in (await store.load_bindings(conn, now)).items():
            if sip_user in self.accounts:
                self.registrar.restore(sip_user, [
                    Binding(b.contact, b.expires_at, b.call_id, b.cseq,
                            (b.source_host, b.source_port), b.q)
                    for b in stored
                ], now)  # fmt: skip

    def _persist(self, sip_user: str) -> None:
        """Store ``sip_user``'s bindings as they are now (in order, through the record writer)."""
        snapshot = [
            store.StoredBinding(b.contact, b.expires_at, b.call_id, b.cseq, *b.source, b.q)
            for b in self.registrar.lookup(sip_user, time.time())
        ]

        async def save(conn: Any) -> None:
            await store.save_bindings(conn, sip_user, snapshot)

        self.service._write(save)

    def account_of(self, agent: str) -> PhoneAccount | None:
        return next((a for a in self.accounts.values() if a.owner == agent), None)

    def account_changed(self, agent: str, phone: store.Phone | None) -> None:
        """The phones API changed ``agent``'s account: bindings of the old one go (a new
        password must register again)."""
        old = self.account_of(agent)
        if old is not None:
            self.accounts.pop(old.sip_user, None)
            self.registrar.remove([old.sip_user])
        if phone is not None and phone.realm == self.registrar.realm:
            self.accounts[phone.sip_user] = PhoneAccount(phone.sip_user, phone.ha1, agent)
        elif self.devices.get(agent) == "phone":
            self.devices.pop(agent, None)

    def _reload_soon(self) -> None:
        now = time.monotonic()
        if now < self._reload_at or (self._reloading is not None and not self._reloading.done()):
            return
        self._reload_at = now + RELOAD_EVERY

        async def reload() -> None:
            try:
                async with connect(self.service.hub.pool) as conn:
                    await self.load(conn)
            except Exception as exc:  # the phone retries; the next miss tries again
                log.warning("hotline phones: accounts not reloaded: %s", exc)

        self._reloading = self.service._spawn(reload(), "hotline-phones-reload")

    # -- REGISTER ---------------------------------------------------------------------------------

    def on_register(self, request: Request, source: tuple[str, int]) -> Response:
        user = Registrar.aor_user(request)
        account = self.accounts.get(user or "")
        if account is None and user:
            self._reload_soon()
        outcome = self.registrar.register(request, time.time(), account)
        status = outcome.response.status
        if status == 403:
            log.info("hotline phone REGISTER for %r from %s:%d refused (credentials)",
                     (user or "")[:32], *source)  # fmt: skip
        if outcome.changed and account is not None:
            log.info("hotline phone %s: %d contact(s) from %s:%d", account.sip_user,
                     len(self.registrar.lookup(account.sip_user, time.time())), *source)  # fmt: skip
            self._persist(account.sip_user)
            if not self.contacts(account.owner):
                self.service._spawn(self._unregistered(account.owner), "phone-gone")
        return outcome.response

    async def _unregistered(self, agent: str) -> None:
        """The agent's phone removed its last binding: not ready if they wait for calls on it."""
        if self.device(agent) != "phone":
            return
        view = next((a for a in self.service.acd.agents_view() if a.agent == agent), None)
        if view is not None and view.state.value == "ready":
            acd = self.service.acd
            self.service._safe(lambda now: acd.set_not_ready(agent, UNREGISTERED, now))

    def contacts(self, agent: str) -> list[Binding]:
        account = self.account_of(agent)
        if account is None:
            return []
        return self.registrar.lookup(account.sip_user, time.time())

    # -- devices ----------------------------------------------------------------------------------

    def device(self, agent: str) -> Device:
        return self.devices.get(agent, "browser")

    def set_device(self, agent: str, device: Device) -> None:
        if device == "phone":
            self.devices[agent] = "phone"
        else:
            self.devices.pop(agent, None)

    def json(self, agent: str) -> dict[str, Any]:
        """The agent's device and phone, as ``GET /api/hotline/me`` shows them."""
        account = self.account_of(agent)
        phone: dict[str, Any] | None = None
        if account is not None:
            bindings = self.bindings_json(account.sip_user)
            phone = {"sip_user": account.sip_user, "registered": bool(bindings),
                     "contacts": bindings}  # fmt: skip
        return {"device": self.device(agent), "phone": phone}

    def bindings_json(self, sip_user: str) -> list[dict[str, Any]]:
        now = time.time()
        return [
            {"contact": b.contact, "expires_at": datetime.fromtimestamp(b.expires_at, UTC)
             .isoformat(), "expires_in": b.remaining(now)}
            for b in self.registrar.lookup(sip_user, now)
        ]  # fmt: skip

    # -- offering ---------------------------------------------------------------------------------

    def offer(self, cmd: c.Offer) -> bool:
        """Ring the agent's phone for ``cmd`` if they take calls on it; False: not a phone offer."""
        if self.device(cmd.agent) != "phone":
            return False
        contacts = self.contacts(cmd.agent)
        key = (cmd.call, cmd.agent)
        if not contacts:
            asyncio.get_running_loop().call_soon(self._unreachable, cmd.call, cmd.agent)
            return True
        task = self.service._spawn(self._ring(cmd.call, cmd.agent, contacts[0].contact),
                                   f"ring phone {cmd.agent}")  # fmt: skip
        self._ringing[key] = task
        return True

    def _unreachable(self, call_id: str, agent: str) -> None:
        log.info("hotline: agent %s is on the phone but it is not registered; offer of %s "
                 "withdrawn", agent, call_id)  # fmt: skip
        acd = self.service.acd
        self.service._safe(lambda now: acd.decline(agent, call_id, now))
        self.service._safe(lambda now: acd.set_not_ready(agent, UNREGISTERED, now))

    def cancel(self, call_id: str, agent: str) -> None:
        """The offer is withdrawn (``CancelOffer``): a ringing INVITE is CANCELled."""
        task = self._ringing.pop((call_id, agent), None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _ring(self, call_id: str, agent: str, contact: str) -> None:
        service = self.service
        s = service.settings
        caller = service.legs.get(call_id)
        key = (call_id, agent)
        if caller is None:
            self._ringing.pop(key, None)
            return
        rtp = await RtpStream.open(service.stack.ports, s.sip_host)
        leg: PhoneLeg | None = None
        try:
            first, second = (PCMA, PCMU) if caller.law is G711Law.ALAW else (PCMU, PCMA)
            local = LocalMedia(s.sip_address, rtp.local_port, Direction.SENDRECV,
                               codecs=(first, second))  # fmt: skip
            _, sdp = build_offer(SdpSession(secrets.randbelow(2**31), 1, s.sip_address), local)
            number = "".join(ch for ch in caller.caller if ch.isdigit() or ch == "+")[:32]
            # the caller's number for the phone's display (phones show P-Asserted-Identity
            # from their registrar); an anonymous caller shows the hub
            who = [("P-Asserted-Identity", f"<sip:{number}@{s.sip_address}>")] if number else []
            try:
                call = await service.stack.agent.invite(
                    contact, sdp, headers=who, ring_timeout=s.hotline_ring_timeout + 5.0
                )
            except (CallFailed, OSError) as exc:
                self._ringing.pop(key, None)
                log.info("hotline: agent %s's phone did not answer %s: %s", agent, call_id, exc)
                outcome = exc.outcome if isinstance(exc, CallFailed) else "unreachable"
                if outcome != "no_answer":  # our own CANCEL: the ACD already moved on
                    service._safe(lambda now: service.acd.decline(agent, call_id, now))
                return
            self._ringing.pop(key, None)
            try:
                media = negotiate_answer(sdp, call.remote_sdp)
            except (SdpNegotiationError, LookupError):
                await call.hangup()
                service._safe(lambda now: service.acd.decline(agent, call_id, now))
                return
            rtp.set_remote((media.remote_address, media.remote_port), media.codec.payload_type,
                           event_payload_type=media.telephone_event)  # fmt: skip
            leg = PhoneLeg(
                call,
                rtp,
                caller.law,
                G711Law.from_payload_type(media.codec.payload_type),
                service.stack.clock,
            )
            service._pending[key] = leg
            try:
                service._run(lambda now: service.acd.accept(agent, call_id, now))
            except HotlineError as exc:  # answered just as the offer went (ring timeout, hang-up)
                log.info("hotline: phone answer of %s by %s came too late: %s", call_id, agent, exc)
                service._pending.pop(key, None)
                await leg.close()
        finally:
            if leg is None:
                rtp.close()

    async def aclose(self) -> None:
        for task in list(self._ringing.values()):
            task.cancel()
        self._ringing.clear()
