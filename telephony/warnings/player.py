"""Playing one warning: call every target speaker at once, stream the clip (or the live voice) as
paced RTP, hang up, retry the ones that failed, and report every change.

Theory of operation: ``WarningRun`` owns a ``Delivery`` (the pure per-speaker table in
``delivery.py``) and one task per speaker. A speaker's task makes an attempt —

1. open an RTP stream on a port of the pool, offer PCMA/PCMU ``sendonly`` (a loudspeaker only
   listens) with the speaker's auto-answer header, and wait for the answer (``ring_timeout``; the user
   agent CANCELs on timeout);
2. on 200, send the clip ``repeat`` times through the shared ``MediaClock`` (every speaker of the
   warning gets its packets in the same 20 ms wakeup), or the live voice frames, then BYE;
3. on a failure (486 busy, 603 rejected, no answer, unreachable, a BYE from the speaker halfway)
   record it and, while the retry budget lasts, wait ``retry_delay`` and try again.

``stop()`` cancels the tasks: a ringing call is CANCELled, a playing one hung up, a waiting retry
dropped; the table marks them ``stopped``. Every change goes to ``on_change`` (the service stores
it and shows it live) — the run itself touches no database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from telephony import g711
from telephony.errors import CallFailed, SdpError
from telephony.rtp.clock import MediaClock, PlayResult
from telephony.rtp.session import PortPool, RtpStream
from telephony.sdp import (
    PCMA,
    PCMU,
    Direction,
    LocalMedia,
    SdpSession,
    build_offer,
    negotiate_answer,
)
from telephony.sip.agent import Call, Credentials, UserAgent
from telephony.warnings.delivery import Delivery, DeliveryError, Event, Outcome, Target

log = logging.getLogger(__name__)

FAILURE_OUTCOMES = {
    "busy": Outcome.BUSY,
    "rejected": Outcome.REJECTED,
    "no_answer": Outcome.NO_ANSWER,
    "cancelled": Outcome.NO_ANSWER,
    "unreachable": Outcome.UNREACHABLE,
    "auth_failed": Outcome.REJECTED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class SpeakerTarget:
    id: int
    name: str
    uri: str
    credentials: Credentials | None = None
    auto_answer: str = "call-info"


def auto_answer_headers(style: str, uri: str) -> list[tuple[str, str]]:
    """The header that makes a SIP speaker pick up at once: ``Call-Info: <uri>;answer-after=0``
    (RFC 3261 §20.9 with the de-facto answer-after parameter), ``Alert-Info:
    info=alert-autoanswer`` (Polycom, Yealink and many paging speakers), or none."""
    if style == "call-info":
        return [("Call-Info", f"<{uri}>;answer-after=0")]
    if style == "alert-info":
        return [("Alert-Info", "info=alert-autoanswer")]
    return []


def for_codec(alaw: bytes, encoding: str) -> bytes:
    """The clip (stored as PCMA) in the codec the speaker chose: A-law as is, µ-law transcoded once
    per call through linear PCM (numpy, no per-sample Python)."""
    if encoding.upper() == "PCMA":
        return alaw
    return g711.ulaw_encode(g711.alaw_decode(alaw))


class LiveSource(Protocol):
    """Where live talk frames come from (``talk.TalkSession``): 160-byte A-law frames."""

    closed: asyncio.Event

    def subscribe(self, maxsize: int = 10) -> asyncio.Queue[bytes]: ...

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None: ...


@dataclasses.dataclass(slots=True)
class MediaDeps:
    """What a run needs from the subsystem: the user agent, RTP ports, the shared clock, and the
    address the speakers send RTP to (and the policy knobs from settings)."""

    agent: UserAgent
    ports: PortPool
    clock: MediaClock
    address: str
    ring_timeout: float = 20.0
    retries: int = 2
    retry_delay: float = 5.0
    #: Called with (speaker_id, None) when a call starts and (speaker_id, answered) when it ends.
    busy: Callable[[int, bool | None], None] | None = None
    #: The streams up now, by (warning id, speaker id), for the metrics; and what closed ones sent.
    streams: dict[tuple[int, int], RtpStream] = dataclasses.field(default_factory=dict)
    closed_packets: list[int] = dataclasses.field(default_factory=lambda: [0])


ChangeHandler = Callable[["WarningRun", list[Target]], Awaitable[None]]


class WarningRun:
    def __init__(
        self,
        warning_id: int,
        targets: Sequence[SpeakerTarget],
        deps: MediaDeps,
        on_change: ChangeHandler,
        *,
        clip: bytes | None = None,
        live: LiveSource | None = None,
        repeat: int = 1,
    ) -> None:
        if (clip is None) == (live is None):
            raise ValueError("a warning plays a clip or the live voice")
        self.warning_id = warning_id
        self.targets = {t.id: t for t in targets}
        self.deps = deps
        self.on_change = on_change
        self.clip = clip
        self.live = live
        self.repeat = repeat
        self.delivery = Delivery(self.targets, retries=deps.retries, retry_delay=deps.retry_delay)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self.stopped_by: int | None = None
        self.done = asyncio.Event()
        #: Set by the run's owner once the end is stored (the log then has the final outcomes).
        self.recorded = asyncio.Event()

    @staticmethod
    def now() -> float:
        return time.time()

    async def run(self) -> str:
        """Deliver to every target; returns the warning's final state."""
        try:
            async with asyncio.TaskGroup() as tg:
                for sid in self.targets:
                    self._tasks[sid] = tg.create_task(self._deliver(sid), name=f"warn-{sid}")
        finally:
            if not self.delivery.finished:
                await self._changed(self.delivery.stop(self.now()))
            self.done.set()
        return self.delivery.state

    async def stop(self, by: int | None = None) -> None:
        """An operator's stop: ringing calls are cancelled, playing ones hung up."""
        if self._stopping:
            return
        self._stopping = True
        self.stopped_by = by
        for task in self._tasks.values():
            task.cancel()
        await self.done.wait()

    async def _changed(self, targets: list[Target]) -> None:
        if targets:
            try:
                await self.on_change(self, targets)
            except Exception:  # reporting must never break delivery
                log.exception("warning %s: reporting a change failed", self.warning_id)

    async def _apply(self, sid: int, event: Event, **kw: object) -> None:
        try:
            t = self.delivery.apply(sid, event, self.now(), **kw)  # type: ignore[arg-type]
        except DeliveryError:
            return  # a late report after stop: the table already says what happened
        await self._changed([t])

    async def _deliver(self, sid: int) -> None:
        try:
            while True:
                await self._attempt(sid)
                t = self.delivery.targets[sid]
                if t.final:
                    return
                assert t.retry_at is not None
                await asyncio.sleep(max(0.0, t.retry_at - self.now()))
                await self._apply(sid, Event.RETRY)
        except asyncio.CancelledError:
            await asyncio.shield(self._changed(self._stop_one(sid)))
            # swallow: a stopped target is an outcome, not an error of the group

    def _stop_one(self, sid: int) -> list[Target]:
        t = self.delivery.targets[sid]
        if t.final:
            return []
        self.delivery.stopped = True
        return [self.delivery.apply(sid, Event.STOP, self.now())]

    async def _attempt(self, sid: int) -> None:
        target, deps = self.targets[sid], self.deps
        await self._apply(sid, Event.CALL)
        answered = False
        if deps.busy is not None:
            deps.busy(sid, None)
        stream = await RtpStream.open(deps.ports, deps.address)
        deps.streams[(self.warning_id, sid)] = stream
        call: Call | None = None
        try:
            local = LocalMedia(
                address=deps.address,
                port=stream.local_port,
                direction=Direction.SENDONLY,
                codecs=(PCMA, PCMU),
            )
            _, offer = build_offer(SdpSession(secrets.randbelow(2**31), 1, deps.address), local)
            try:
                call = await deps.agent.invite(
                    target.uri,
                    offer,
                    headers=auto_answer_headers(target.auto_answer, target.uri),
                    credentials=target.credentials,
                    ring_timeout=deps.ring_timeout,
                )
            except CallFailed as e:
                failure = FAILURE_OUTCOMES.get(e.outcome, Outcome.FAILED)
                await self._apply(sid, Event.FAILED, failure=failure, status=e.status)
                return
            answered = True
            try:
                media = negotiate_answer(offer, call.remote_sdp)
            except SdpError:
                await self._apply(sid, Event.FAILED, failure=Outcome.REJECTED, status=488)
                return
            stream.set_remote(
                (media.remote_address, media.remote_port),
                media.codec.payload_type,
                event_payload_type=media.telephone_event,
            )
            await self._apply(sid, Event.ANSWERED)
            packets, complete = await self._stream(stream, call, media.codec.encoding)
            if complete:
                await self._apply(sid, Event.PLAYED, packets=packets)
            else:  # the speaker hung up (or the call died) before the end
                await self._apply(
                    sid, Event.FAILED, failure=Outcome.FAILED, status=None, packets=packets
                )
        finally:
            if call is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(call.hangup())
            stream.close()
            deps.streams.pop((self.warning_id, sid), None)
            deps.closed_packets[0] += stream.stats.packets_sent
            if deps.busy is not None:
                deps.busy(sid, answered)

    async def _stream(self, stream: RtpStream, call: Call, encoding: str) -> tuple[int, bool]:
        """Send the media until it ends or the call does: (packets sent, whether it was all)."""
        queue: asyncio.Queue[bytes] | None = None
        if self.clip is not None:
            media = for_codec(self.clip, encoding)
            sending: asyncio.Task[PlayResult] = asyncio.ensure_future(
                stream.play(media, repeat=self.repeat, clock=self.deps.clock)
            )
        else:
            assert self.live is not None
            queue = self.live.subscribe()
            sending = asyncio.ensure_future(
                stream.play_live(queue, clock=self.deps.clock, encoding=encoding)
            )
            live, q = self.live, queue

            async def end_of_talk() -> None:  # the talk ended: the stream ends after its queue
                await live.closed.wait()
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(b"")

            watcher = asyncio.ensure_future(end_of_talk())
            sending.add_done_callback(lambda _: watcher.cancel())
        ended = asyncio.ensure_future(asyncio.shield(call.ended))
        try:
            waiting: set[asyncio.Future[Any]] = {sending, ended}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            ended.cancel()
            if queue is not None and self.live is not None:
                self.live.unsubscribe(queue)
        result = None
        if sending.done() and not sending.cancelled() and sending.exception() is None:
            result = sending.result()
        packets = int(stream.stats.packets_sent)
        if self.live is not None:
            return packets, True  # live talk has no "end": it went out while the call was up
        return packets, result is not None and result.completed
