"""The 12319 hotline service of one telephony process: the asyncio adapter around the ACD.

Theory of operation: ``HotlineService.running(hub, stack)`` serves ``CITYHUB_HOTLINE_NUMBER`` on
the process's ``TelephonyStack``. Everything the hotline decides is decided by ``Acd`` (pure,
``acd.py``); this module turns SIP, RTP, WebRTC and the clock into its events and carries out the
commands it returns, in order (``_run``), then republishes the queue and re-arms one timer on
``acd.next_deadline()``.

- An INVITE from an allowed trunk (``CITYHUB_HOTLINE_TRUNKS``; loopback in the demo) with G.711 in
  its offer is answered at once (403 from elsewhere, 488 without G.711): a ``CallerLeg``
  (``legs.py``) on a fresh RTP stream whose ``play_pull`` provider the shared media clock asks
  every 20 ms — prompt, music or agent, chosen at send time; DTMF (RFC 4733) goes to
  ``acd.dtmf``; the caller's BYE (or a media timeout) to ``acd.caller_hangup``.
- Or on their desk phone (``phone.py``): the hub is the phones' registrar (REGISTER with digest,
  from the stack's ``serve_register``); an agent who chose the phone is offered calls by INVITE to
  its contact, its 200 is ``accept``, 486/603 ``decline``, its BYE the agent hanging up; a
  ``PhoneLeg`` (RTP, G.711 re-coded by table when the phone took the other law) stands where the
  browser's ``AgentLeg`` would.
- Agents answer from the browser: ``answer(agent, call, offer)`` makes an ``AgentLeg`` (WebRTC,
  ``bridge.py``) and only then tells the ACD ``accept``; its ``Connect`` bridges the two legs and
  starts the call's recording (``recorder.py``, stereo WAV under ``data_dir/recordings``). An
  agent's browser that goes away mid-call hangs the call up from the agent's side.
- Records: every command that says something to keep (``Queued``, ``Offer``, ``CallEnded``,
  ``RecordCallback``, ``AgentChanged`` …) becomes a write on one ordered writer task, so the ACD
  never waits for PostgreSQL; an outage is logged and each write retried with backoff until it
  succeeds (calls go on meanwhile). The call's row is created by the first write; later writes of
  that call wait for its id.
- The live picture: the ``queue`` state channel carries ``calls`` (the waiting calls, caller
  numbers masked) and ``today`` (the day's figures, ``stats.Tally``, seeded from PostgreSQL at
  start); the ``agents`` channel one entry per agent (state, reason, call, since).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hub.core.errors import NotFound
from hub.ice import parse_networks
from storage import hotline as store
from storage import hotline_queue as queue_store
from storage.db import connect
from storage.errors import StorageError, StorageUnavailable
from telephony.errors import CallFailed, HotlineError, SdpNegotiationError
from telephony.g711 import G711Law
from telephony.hotline import commands as c
from telephony.hotline.acd import Acd, AcdConfig
from telephony.hotline.bridge import AgentLeg
from telephony.hotline.hours import parse_hours
from telephony.hotline.legs import AgentSide, CallerLeg, Mode, Peer
from telephony.hotline.phone import Phones
from telephony.hotline.prompts import Prompts, PromptsUnavailable
from telephony.hotline.recorder import CallRecorder, recording_relpath
from telephony.hotline.stats import CallRecord, Outcome, Tally, day_of
from telephony.rtp.session import RtpStream
from telephony.sdp import PCMA, PCMU, Direction, LocalMedia, SdpSession, answer_offer
from telephony.sip.call import IncomingCall

if TYPE_CHECKING:
    from hub.state import HubState
    from telephony.stack import TelephonyStack

log = logging.getLogger(__name__)

WRITE_RETRY_MAX = 30.0


def mask(number: str) -> str:
    """A caller number as the queue board shows it: ``138****5678``."""
    if len(number) <= 4:
        return number
    keep = 3 if len(number) >= 8 else 1
    return number[:keep] + "*" * (len(number) - keep - 4) + number[-4:]


def _instant(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class HotlineService:
    def __init__(self, hub: HubState, stack: TelephonyStack, prompts: Prompts) -> None:
        self.hub = hub
        s = hub.settings
        self.settings = s
        self.stack = stack
        self.prompts = prompts
        self.tz = ZoneInfo(s.timezone)
        self.acd = Acd(
            AcdConfig(
                max_queue=s.hotline_max_queue,
                max_wait=s.hotline_max_wait,
                ring_timeout=s.hotline_ring_timeout,
                wrapup=s.hotline_wrapup,
                announce_every=s.hotline_announce_every,
                callback_key=s.hotline_callback_key,
                open_at=parse_hours(
                    s.hotline_hours, self.tz, hub.cases.calendar.is_workday
                ).open_at,
            )
        )
        trunks = list(s.hotline_trunks) or (["127.0.0.0/8", "::1/128"] if hub.demo else [])
        self.trunks = [ipaddress.ip_network(t, strict=False) for t in trunks]
        self.recordings = s.data_dir / "recordings"
        self.networks = parse_networks(s.webrtc_networks)  # CITYHUB_WEBRTC_NETWORKS, parsed once
        self.legs: dict[str, CallerLeg] = {}
        self._pending: dict[tuple[str, str], AgentSide] = {}  # (call, agent) → answered leg
        self._agent_calls: dict[str, str] = {}  # agent → the call their leg is bridged in
        self._ids: dict[str, asyncio.Future[int | None]] = {}  # call → its row id, until it ends
        self._next = 0
        self._timer: asyncio.TimerHandle | None = None
        self._writes: asyncio.Queue[Callable[[Any], Awaitable[None]] | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        now = time.time()
        self.tally = Tally(day_of(now, self.tz), self.tz)
        self.phones = Phones(self)

    # -- life ------------------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, hub: HubState, stack: TelephonyStack, prompts: Prompts
    ) -> AsyncIterator[HotlineService]:
        service = cls(hub, stack, prompts)
        async with connect(hub.pool) as conn:
            failed = await store.fail_running_calls(conn)
            await service._seed_tally(conn)
            await service.phones.load(conn, bindings=True)
        if failed:
            log.warning(
                "%d hotline calls left running by an earlier hub were marked failed", failed
            )
        writer = service._spawn(service._writer(), "hotline-writer")
        service._spawn(service._prepare_prompts(), "hotline-prompts")
        stop = stack.serve(hub.settings.hotline_number, service.on_invite)
        stop_register = stack.serve_register(service.phones.on_register)
        service._publish_board()
        try:
            yield service
        finally:
            stop()
            stop_register()
            await service.phones.aclose()
            await service._hang_up_all()
            if service._timer is not None:
                service._timer.cancel()
            service._writes.put_nowait(None)
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(writer), 10.0)
            for task in list(service._tasks):
                task.cancel()
            for task in list(service._tasks):
                with contextlib.suppress(BaseException):
                    await task

    async def _prepare_prompts(self) -> None:
        try:
            await self.prompts.prepare()
        except PromptsUnavailable as exc:
            log.warning("hotline prompts: %s (scripts/system-deps.sh installs espeak-ng)", exc)
        except Exception:
            log.exception("hotline prompts could not be made")

    async def _seed_tally(self, conn: Any) -> None:
        today = self.tally.day
        start = datetime.combine(today, datetime.min.time(), self.tz)
        end = start.replace(hour=23, minute=59, second=59)
        for t in await store.day_outcomes(conn, start, end):
            if t.outcome is None:
                continue
            self.tally.add(
                CallRecord(
                    t.arrived_at.timestamp(),
                    None if t.queued_at is None else t.queued_at.timestamp(),
                    None if t.answered_at is None else t.answered_at.timestamp(),
                    t.ended_at.timestamp() if t.ended_at else t.arrived_at.timestamp(),
                    Outcome(t.outcome),
                )
            )

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _hang_up_all(self) -> None:
        for leg in list(self.legs.values()):
            await self._end_leg(leg, hang_up=True)
        for agent_leg in list(self._pending.values()):
            await agent_leg.close()
        self._pending.clear()

    # -- SIP -------------------------------------------------------------------------------------

    def allowed(self, source: tuple[str, int]) -> bool:
        try:
            ip = ipaddress.ip_address(source[0])
        except ValueError:
            return False
        return any(ip in net for net in self.trunks)

    async def on_invite(self, incoming: IncomingCall) -> None:
        if not self.allowed(incoming.source):
            await incoming.reject(403)
            return
        if incoming.offer is None:
            await incoming.reject(488)
            return
        host = self.settings.sip_address
        rtp = await RtpStream.open(self.stack.ports, self.settings.sip_host)
        try:
            local = LocalMedia(host, rtp.local_port, direction=Direction.SENDRECV,
                               codecs=(PCMA, PCMU))  # fmt: skip
            _, sdp, media = answer_offer(incoming.offer, local, SdpSession(1, 1, host))
        except SdpNegotiationError:
            rtp.close()
            await incoming.reject(488)
            return
        self._next += 1
        call_id = f"h{self._next}"
        frm = incoming.request.from_
        caller = ""
        if frm is not None:
            caller = frm.uri.split(":", 1)[-1].split("@", 1)[0].split(";", 1)[0]
        law = G711Law.from_payload_type(media.codec.payload_type)
        leg = CallerLeg(call_id, caller, incoming, rtp, law, self.prompts.music(), time.time())
        try:
            leg.sip = await incoming.answer(sdp)
        except CallFailed:
            rtp.close()
            return
        rtp.set_remote((media.remote_address, media.remote_port), media.codec.payload_type,
                       event_payload_type=media.telephone_event)  # fmt: skip
        # The caller's audio goes through the jitter buffer only while someone hears it (an agent,
        # the recorder): for a queued caller that work cost 3-4 times the music it is sent
        # (bench/hotline.py) and delayed the media clock. Every packet still feeds the media guard.
        rtp.on_audio = None
        sip_call = leg.sip
        rtp.on_packet = lambda _packet: sip_call.media_seen()
        rtp.on_digit = lambda digit: self._safe(lambda now: self.acd.dtmf(call_id, digit, now))
        leg.on_prompt_end = self._prompt_ended
        self.legs[call_id] = leg
        self._ids[call_id] = leg.db_id
        leg.play_task = self._spawn(rtp.play_pull(leg.next_frame, clock=self.stack.clock), call_id)
        self._write(self._create_call(leg, incoming))
        self._run(lambda now: self.acd.call_arrived(call_id, caller, now))
        reason = await leg.sip.ended
        if not leg.ended:
            if reason in ("media_timeout", "error"):
                self._run(lambda now: self.acd.call_failed(call_id, now))
            else:
                self._run(lambda now: self.acd.caller_hangup(call_id, now))
        await self._end_leg(leg, hang_up=False)

    def _create_call(
        self, leg: CallerLeg, incoming: IncomingCall
    ) -> Callable[[Any], Awaitable[None]]:
        async def write(conn: Any) -> None:
            row = await store.create_call(
                conn, caller=leg.caller, called=incoming.user or "", trunk=incoming.source[0],
                sip_call_id=incoming.request.call_id or "", arrived_at=_instant(leg.arrived),
            )  # fmt: skip
            if not leg.db_id.done():
                leg.db_id.set_result(row.id)

        return write

    async def _end_leg(self, leg: CallerLeg, *, hang_up: bool) -> None:
        if leg.ended:
            return
        leg.ended = True
        self.legs.pop(leg.id, None)
        if hang_up and leg.sip is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(leg.sip.hangup(), 5.0)
        leg.rtp.stop()
        if leg.play_task is not None:
            leg.play_task.cancel()
        leg.rtp.close()
        if leg.recorder is not None:
            recorder, leg.recorder = leg.recorder, None
            await recorder.aclose()
        for peer in leg.peers():
            await peer.close()

    def _prompt_ended(self, leg: CallerLeg) -> None:
        if leg.prompt_hangup:
            self._spawn(self._farewell_done(leg), f"farewell {leg.id}")
            return
        if leg.id in self.legs:
            self._run(lambda now: self.acd.prompt_done(leg.id, now))

    async def _farewell_done(self, leg: CallerLeg) -> None:
        await self._end_leg(leg, hang_up=True)
        self._run(lambda now: self.acd.prompt_done(leg.id, now))

    # -- the ACD loop ----------------------------------------------------------------------------

    def _run(self, event: Callable[[float], list[c.Command]]) -> list[c.Command]:
        """Feed one event to the ACD and carry out its commands; a refused event raises."""
        commands = event(time.time())
        for command in commands:
            try:
                self._do(command)
            except Exception:
                log.exception("hotline command %r failed", command)
        self._publish_board()
        self._arm()
        return commands

    def _safe(self, event: Callable[[float], list[c.Command]]) -> None:
        try:
            self._run(event)
        except HotlineError as exc:  # the call or agent moved on meanwhile: nothing to do
            log.debug("hotline event refused: %s", exc)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.acd.next_deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, deadline - time.time()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._safe(self.acd.tick)

    def _do(self, cmd: c.Command) -> None:
        leg = self.legs.get(getattr(cmd, "call", ""))
        if isinstance(cmd, c.PlayPrompt):
            if leg is not None:
                try:
                    audio = self.prompts.get(cmd.prompt.value, position=cmd.position,
                                             wait_minutes=cmd.wait_minutes)  # fmt: skip
                except PromptsUnavailable:  # no speech yet: a moment of music stands in
                    audio = self.prompts.music()[:8000]
                leg.play_prompt(audio, hang_up=cmd.hang_up)
        elif isinstance(cmd, c.StartMusic | c.StopMusic):
            if leg is not None:
                leg.music = isinstance(cmd, c.StartMusic)
                leg.held = leg.music and leg.agent is not None
        elif isinstance(cmd, c.Hangup):
            if leg is not None:
                self._spawn(self._end_leg(leg, hang_up=True), f"hangup {cmd.call}")
        elif isinstance(cmd, c.Connect):
            self._connect(cmd, leg)
        elif isinstance(cmd, c.Disconnect):
            if leg is not None and leg.agent is not None and leg.agent.user == cmd.agent:
                gone, leg.agent = leg.agent, None
                leg.rtp.on_audio = None
                self._agent_calls.pop(cmd.agent, None)
                self._spawn(gone.leg.close(), f"agent leg {cmd.agent}")
        elif isinstance(cmd, c.Consult):
            target = self._pending.pop((cmd.call, cmd.target), None)
            if leg is not None and leg.agent is not None and target is not None:
                leg.consult = (leg.agent, Peer(cmd.target, target))
                self._agent_calls[cmd.target] = cmd.call
                self._watch(target, cmd.call, cmd.target)
        elif isinstance(cmd, c.EndConsult):
            if leg is not None and leg.consult is not None:
                _, second = leg.consult
                leg.consult = None
                if second.user == cmd.target:
                    self._agent_calls.pop(cmd.target, None)
                    self._spawn(second.leg.close(), f"consult leg {cmd.target}")
        elif isinstance(cmd, c.Monitor):
            monitor = self._pending.pop((cmd.call, cmd.supervisor), None)
            if leg is not None and monitor is not None:
                leg.monitors[cmd.supervisor] = (Peer(cmd.supervisor, monitor), Mode(cmd.mode.value))
        elif isinstance(cmd, c.Unmonitor):
            if leg is not None and cmd.supervisor in leg.monitors:
                peer, _ = leg.monitors.pop(cmd.supervisor)
                self._spawn(peer.leg.close(), f"monitor {cmd.supervisor}")
        elif isinstance(cmd, c.CancelOffer):
            self.phones.cancel(cmd.call, cmd.agent)
            pending = self._pending.pop((cmd.call, cmd.agent), None)
            if pending is not None:
                self._spawn(pending.close(), f"cancelled {cmd.call}")
            self._event(cmd.call, "ring_timeout" if cmd.reason == "ring_timeout" else "declined"
                        if cmd.reason == "declined" else "offer_cancelled", cmd.agent,
                        {"reason": cmd.reason})  # fmt: skip
        elif isinstance(cmd, c.Offer):
            self._event(cmd.call, "offered", cmd.agent, {"consult_from": cmd.consult_from})
            self.phones.offer(cmd)  # an agent on their desk phone: the INVITE rings it
        elif isinstance(cmd, c.Queued):
            self._queued(cmd)
        elif isinstance(cmd, c.Transferred):
            self._event(cmd.call, "transferred", cmd.from_agent,
                        {"to": cmd.to, "attended": cmd.attended})  # fmt: skip
        elif isinstance(cmd, c.RecordCallback):
            self._callback(cmd)
        elif isinstance(cmd, c.CallEnded):
            self._ended(cmd)
        elif isinstance(cmd, c.AgentChanged):
            self._agent_changed(cmd)

    # -- agents ----------------------------------------------------------------------------------

    def agent_event(self, event: Callable[[float], list[c.Command]]) -> None:
        """Run an agent's request (sign in, ready, hang up …); HotlineError goes to the caller."""
        self._run(event)

    async def answer(self, agent: str, call_id: str, offer_sdp: str, *, monitor: str = "") -> str:
        """The agent's browser answers an offered call (or a supervisor joins one) with a WebRTC
        offer: the answer SDP. The leg is up before the ACD hears of it, so ``Connect`` finds it."""
        leg = self.legs.get(call_id)
        if leg is None:
            raise NotFound("通话不存在或已结束", code="no_call")
        agent_leg = AgentLeg(leg.law, networks=self.networks)
        try:
            sdp = await agent_leg.answer(offer_sdp)
        except Exception:
            await agent_leg.close()
            raise
        self._pending[(call_id, agent)] = agent_leg
        try:
            if monitor:
                self._run(lambda now: self.acd.monitor(call_id, agent, c.MonitorMode(monitor), now))
            else:
                self._run(lambda now: self.acd.accept(agent, call_id, now))
        except Exception:
            self._pending.pop((call_id, agent), None)
            await agent_leg.close()
            raise
        return sdp

    def _connect(self, cmd: c.Connect, leg: CallerLeg | None) -> None:
        self.phones.cancel(cmd.call, cmd.agent)  # answered in the browser: the phone stops ringing
        agent_leg = self._pending.pop((cmd.call, cmd.agent), None)
        if leg is None:
            if agent_leg is not None:
                self._spawn(agent_leg.close(), "orphan leg")
            return
        if agent_leg is None:  # a transfer completed: the consulted agent's leg moves over
            if leg.consult is not None and leg.consult[1].user == cmd.agent:
                agent_peer = leg.consult[1]
                leg.consult = None
            else:
                log.warning("hotline: no leg for agent %s on %s", cmd.agent, cmd.call)
                return
        else:
            agent_peer = Peer(cmd.agent, agent_leg)
            self._watch(agent_leg, cmd.call, cmd.agent)
        previous = leg.agent
        leg.agent = agent_peer
        leg.rtp.on_audio = leg.caller_audio
        leg.prompt = None
        leg.music = leg.held = False
        self._agent_calls[cmd.agent] = cmd.call
        if previous is not None and previous is not agent_peer:
            self._agent_calls.pop(previous.user, None)
            self._spawn(previous.leg.close(), f"agent leg {previous.user}")
        if leg.recorder is None:
            self._start_recording(leg)
        self._event(cmd.call, "answered", cmd.agent, {"codec": agent_peer.leg.codec})
        user_id = int(cmd.agent)

        async def answered(conn: Any) -> None:
            db_id = await leg.db_id
            if db_id is not None:
                await store.mark_answered(conn, db_id, user_id)

        self._write(answered)

    def _watch(self, agent_leg: AgentSide, call_id: str, agent: str) -> None:
        """An agent's browser that goes away (or desk phone that hangs up) hangs up their side."""

        async def watch() -> None:
            await agent_leg.closed.wait()
            if self._agent_calls.get(agent) == call_id and call_id in self.legs:
                self._safe(lambda now: self.acd.agent_hangup(agent, call_id, now))

        self._spawn(watch(), f"watch {agent}")

    def _start_recording(self, leg: CallerLeg) -> None:
        local = datetime.fromtimestamp(leg.arrived, self.tz)

        async def start() -> None:
            db_id = await leg.db_id
            if db_id is None or leg.ended:
                return
            rel = recording_relpath(db_id, local)
            path = self.recordings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            leg.recorder = CallRecorder(path)

            async def saved(conn: Any) -> None:
                await store.set_recording(conn, db_id, rel)

            self._write(saved)

        self._spawn(start(), f"record {leg.id}")

    def call_of(self, agent: str) -> CallerLeg | None:
        call_id = self._agent_calls.get(agent)
        return None if call_id is None else self.legs.get(call_id)

    def current(self, agent: str) -> CallerLeg | None:
        """The call the agent talks in, or is offered (ringing)."""
        leg = self.call_of(agent)
        if leg is not None:
            return leg
        view = next((a for a in self.acd.agents_view() if a.agent == agent), None)
        return None if view is None or view.call is None else self.legs.get(view.call)

    def own(self, agent: str, call_id: str) -> None:
        """Refuse (404) a request about a call the agent is not bridged in."""
        if self._agent_calls.get(agent) != call_id:
            raise NotFound("您不在这个通话中", code="not_in_call")

    async def current_json(self, leg: CallerLeg) -> dict[str, Any]:
        """The console's view of a call: the full number, the record id, the caller's history."""
        db_id = await asyncio.wait_for(asyncio.shield(leg.db_id), 5.0) if not leg.ended else None
        out: dict[str, Any] = {
            "call": leg.id, "id": db_id, "caller": leg.caller, "arrived_at": _iso(leg.arrived),
            "connected": leg.agent is not None, "held": leg.held, "codec": None,
        }  # fmt: skip
        if leg.agent is not None:
            out["codec"] = leg.agent.leg.codec
        async with connect(self.hub.pool) as conn:
            history = await store.caller_history(conn, leg.caller, exclude_call=db_id)
        out["open_cases"] = [
            {"id": r.id, "case_no": r.case_no, "state": r.state, "category": r.category,
             "address": r.address, "description": r.description,
             "reported_at": r.reported_at.isoformat()}
            for r in history.open_cases
        ]  # fmt: skip
        out["calls"] = [
            {"id": h.id, "arrived_at": h.arrived_at.isoformat(), "outcome": h.outcome,
             "disposition_label": h.disposition_label, "case_no": h.case_no, "note": h.note}
            for h in history.calls
        ]  # fmt: skip
        return out

    @staticmethod
    def agent_json(view: c.AgentView) -> dict[str, Any]:
        return {"agent": view.agent, "state": view.state.value, "reason": view.reason,
                "call": view.call, "since": _iso(view.since)}  # fmt: skip

    # -- records ---------------------------------------------------------------------------------

    def _write(self, op: Callable[[Any], Awaitable[None]]) -> None:
        self._writes.put_nowait(op)

    async def _writer(self) -> None:
        while True:
            op = await self._writes.get()
            if op is None:
                return
            delay = 0.5
            while True:
                try:
                    async with connect(self.hub.pool) as conn:
                        await op(conn)
                    break
                except (StorageUnavailable, OSError):
                    log.warning("hotline records: database unavailable, retrying in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, WRITE_RETRY_MAX)
                except StorageError as exc:
                    log.warning("hotline record not written: %s", exc)
                    break
                except Exception:
                    log.exception("hotline record write failed")
                    break

    def _for_call(
        self, call_id: str, op: Callable[[Any, int], Awaitable[Any]], *, last: bool = False
    ) -> None:
        """Write ``op`` for the call once its row exists (``last``: the call's final write)."""
        future = self._ids.get(call_id)
        if future is None:
            return

        async def write(conn: Any) -> None:
            db_id = await future
            if db_id is not None:
                await op(conn, db_id)
            if last:
                self._ids.pop(call_id, None)

        self._write(write)

    def _event(self, call_id: str, kind: str, agent: str | None, detail: dict[str, Any]) -> None:
        agent_id = int(agent) if agent and agent.isdigit() else None

        async def op(conn: Any, db_id: int) -> None:
            await store.add_call_event(conn, db_id, kind, agent_id=agent_id, detail=detail)

        self._for_call(call_id, op)

    def _queued(self, cmd: c.Queued) -> None:
        async def op(conn: Any, db_id: int) -> None:
            await store.mark_queued(conn, db_id)
            await store.add_call_event(conn, db_id, "queued",
                                       detail={"position": cmd.position, "front": cmd.front})  # fmt: skip

        self._for_call(cmd.call, op)

    def _callback(self, cmd: c.RecordCallback) -> None:
        leg = self.legs.get(cmd.call)

        async def write(conn: Any) -> None:
            db_id = None if leg is None else await leg.db_id
            try:
                await queue_store.create_callback(conn, cmd.caller, call_id=db_id,
                                                  requested_at=_instant(cmd.at))  # fmt: skip
            except StorageError as exc:
                log.info("hotline callback not kept: %s", exc)

        self._write(write)

    def _ended(self, cmd: c.CallEnded) -> None:
        self.tally_add(cmd.record)
        leg = self.legs.get(cmd.call)

        async def op(conn: Any, db_id: int) -> None:
            await store.finish_call(conn, db_id, cmd.outcome.value, _instant(cmd.ended))

        self._for_call(cmd.call, op, last=True)
        if leg is not None and leg.recorder is not None and cmd.outcome is Outcome.ANSWERED:
            recorder, leg.recorder = leg.recorder, None
            self._spawn(recorder.aclose(), f"recording {cmd.call}")

    def tally_add(self, record: CallRecord) -> None:
        day = day_of(time.time(), self.tz)
        if day != self.tally.day:
            self.tally = Tally(day, self.tz)
        self.tally.add(record)

    def _agent_changed(self, cmd: c.AgentChanged) -> None:
        self._publish("agents", cmd.agent, {
            "state": cmd.state.value, "reason": cmd.reason, "call": cmd.call,
            "since": _iso(cmd.at),
            "caller": self._caller_for(cmd),
        })  # fmt: skip
        if cmd.agent.isdigit():
            agent_id = int(cmd.agent)

            async def write(conn: Any) -> None:
                await queue_store.log_agent_state(conn, agent_id, cmd.state.value, cmd.reason,
                                                  at=_instant(cmd.at))  # fmt: skip

            self._write(write)

    def _caller_for(self, cmd: c.AgentChanged) -> str | None:
        if cmd.call is None:
            return None
        leg = self.legs.get(cmd.call)
        return None if leg is None else mask(leg.caller)

    # -- the live board --------------------------------------------------------------------------

    def _publish(self, channel: str, key: str, value: Any) -> None:
        fanout = self.hub.fanout
        if fanout is not None:
            fanout.set_state(channel, key, value)

    def board(self) -> dict[str, Any]:
        now = time.time()
        waiting = self.acd.queue_view(now)
        calls = [
            {"call": e.call, "caller": mask(e.caller), "position": e.position, "state": e.state,
             "agent": e.agent, "waiting_since": _iso(e.waiting_since)}
            for e in waiting
        ]  # fmt: skip
        stats = self.tally.stats(now, [e.waiting_since for e in waiting])
        today = {k: (v.isoformat() if isinstance(v, date) else v)
                 for k, v in dataclasses.asdict(stats).items()}  # fmt: skip
        return {"calls": calls, "today": today}

    def _publish_board(self) -> None:
        board = self.board()
        self._publish("queue", "calls", board["calls"])
        self._publish("queue", "today", board["today"])

    # -- observability ---------------------------------------------------------------------------

    def health_check(self) -> str:
        st = self.tally.stats()
        return (f"hotline {self.settings.hotline_number}: {len(self.legs)} calls,"
                f" {self.acd.waiting_count()} waiting, {st.answered} answered today")  # fmt: skip

    def metrics_lines(self) -> list[str]:
        now = time.time()
        st = self.tally.stats(now)
        agents: dict[str, int] = {}
        for a in self.acd.agents_view():
            agents[a.state.value] = agents.get(a.state.value, 0) + 1
        out = ["# TYPE cityhub_hotline_calls gauge", f"cityhub_hotline_calls {len(self.legs)}",
               "# TYPE cityhub_hotline_waiting gauge",
               f"cityhub_hotline_waiting {self.acd.waiting_count()}",
               "# TYPE cityhub_hotline_today counter"]  # fmt: skip
        for key in ("arrived", "offered", "answered", "abandoned", "callbacks", "overflow"):
            out.append(f'cityhub_hotline_today{{what="{key}"}} {getattr(st, key)}')
        out.append("# TYPE cityhub_hotline_phones_registered gauge")
        registered = sum(1 for a in self.phones.accounts if self.phones.registrar.lookup(a, now))
        out.append(f"cityhub_hotline_phones_registered {registered}")
        out.append("# TYPE cityhub_hotline_agents gauge")
        for state, n in sorted(agents.items()):
            out.append(f'cityhub_hotline_agents{{state="{state}"}} {n}')
        return out


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()
