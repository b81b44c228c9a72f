"""RTP streams over UDP: the asyncio adapter around the pure RTP pieces of `telephony.rtp`.

Theory of operation:

- `PortPool` hands out even RTP ports from ``[first, last]`` with RTCP on port + 1 (RFC 3550
  §11). It binds both sockets itself and skips a pair when either is taken (EADDRINUSE: another
  process, another test); the port returns to the pool when its stream closes. A pool with no free
  pair raises `RtpError`.
- `RtpStream` owns one pair. Sending goes through `telephony.rtp.clock`: `play` attaches a
  `ClipSource` (pre-built packets, one ``sendto`` each) and `play_live` a `LiveSource` (frames
  from a queue or an async iterator) to a `MediaClock`, by default the loop's shared one, so every
  stream playing at once is sent in the same 20 ms wake-up. The SSRC, the first sequence number
  and the timestamp origin are random (RFC 3550 §5.1); the sequence continues across plays and the
  timestamp follows media time, so a pause advances it and the first packet of each play (each
  talkspurt) has the marker bit. `stop` or cancelling the task ends a play between two packets.
- Receiving: each datagram is parsed (`RtpPacket.parse`; bad ones counted and dropped), stamps
  `last_received` (loop time, for the call's media timeout), calls `on_packet`, updates the
  source's `ReceiverStats` (loss, jitter; a new SSRC starts new statistics and a new jitter buffer)
  and, for audio, feeds a `JitterBuffer` whose frames go to `on_audio` and to `audio_queue` queues
  at their playout times (one ``call_at`` per deadline; a concealment frame is delivered as the
  codec's silence). RFC 4733 events reach `on_digit` once per event (on its first packet).
- RTCP every ``rtcp_interval`` seconds (fixed, 5 s by default): an SR while we have sent since the
  last report, else an RR while receiving, each with an SDES CNAME; a BYE on close. Received SRs
  feed LSR/DLSR, report blocks about our SSRC are kept in `remote_report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import secrets
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from telephony.errors import RtpError
from telephony.g711 import G711Law
from telephony.rtp.clock import (
    ClipSource,
    LiveSource,
    MediaClock,
    PlayResult,
    PullSource,
    SendState,
    silence_byte,
)
from telephony.rtp.events import TelephoneEvent, dtmf_schedule, parse_events
from telephony.rtp.jitter import JitterBuffer
from telephony.rtp.packet import RtpPacket, is_rtcp
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

__all__ = ["MediaClock", "PlayResult", "PortPool", "RtpStream", "RtpStreamStats"]

log = logging.getLogger(__name__)

RTCP_SDES: Final = 202
RTCP_BYE: Final = 203
CLOCK_RATE: Final = 8000


class PortPool:
    """Even RTP ports in ``[first, last]`` (RTCP on port + 1), bound on demand."""

    def __init__(self, first: int, last: int) -> None:
        first += first % 2
        if not 1024 <= first < last <= 65535:
            raise ValueError(f"RTP port range {first}-{last} is not within 1024-65535")
        self.first = first
        self.last = last
        self.in_use: set[int] = set()
        self._cursor = first

    @property
    def size(self) -> int:
        """How many port pairs the range holds."""
        return (self.last - self.first + 1) // 2

    def acquire(self, host: str) -> tuple[int, socket.socket, socket.socket]:
        """Bind the next free pair on ``host``: (port, RTP socket, RTCP socket)."""
        family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
        for _ in range(self.size):
            port = self._cursor
            self._cursor = port + 2 if port + 3 <= self.last else self.first
            if port in self.in_use:
                continue
            socks: list[socket.socket] = []
            try:
                for p in (port, port + 1):
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.setblocking(False)
                    sock.bind((host, p))
            except OSError as exc:
                for sock in socks:
                    sock.close()
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise RtpError(f"cannot bind RTP port {port} on {host}: {exc}") from exc
            self.in_use.add(port)
            return port, socks[0], socks[1]
        raise RtpError(
            f"no free RTP port pair in {self.first}-{self.last} "
            f"({len(self.in_use)} in use by this hub, the rest taken by other programs)"
        )

    def release(self, port: int) -> None:
        self.in_use.discard(port)


def _transcoder(source: str, target: str | None) -> Callable[[bytes], bytes] | None:
    laws = {"PCMA": G711Law.ALAW, "PCMU": G711Law.ULAW}
    src = laws.get(source.upper())
    dst = laws.get((target or source).upper())
    if src is None or dst is None:
        raise RtpError(f"live frames are PCMA or PCMU, not {source!r} -> {target!r}")
    if src is dst:
        return None
    return lambda frame: dst.encode(src.decode(frame))


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RtpStreamStats:
    packets_sent: int
    octets_sent: int
    packets_received: int
    octets_received: int
    packets_lost: int
    jitter_ms: float
    bad_packets: int
    other_payload: int
    """RTP packets of a payload type that is neither the audio nor the event type."""
    send_errors: int
    late_packets: int
    rtcp_sent: int
    rtcp_received: int
    concealed: int
    remote_lost: int | None
    """Cumulative loss the peer reported about our stream (RTCP), None before a report."""
    remote_jitter_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.handler = handler

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.handler(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("RTP socket error: %s", exc)


class RtpStream:
    def __init__(
        self,
        pool: PortPool,
        port: int,
        rtp_sock: socket.socket,
        rtcp_sock: socket.socket,
        *,
        rtcp_interval: float = 5.0,
        cname: str = "cityhub",
        jitter_min: float = 0.04,
        jitter_max: float = 0.2,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._pool = pool
        self.local_port = port
        self.local_host: str = rtp_sock.getsockname()[0]
        self._rtp_sock = rtp_sock
        self._rtcp_sock = rtcp_sock
        self.ssrc = secrets.randbits(32)
        self._state = SendState(
            rtp_sock,
            self.ssrc,
            first_sequence=secrets.randbits(16),
            first_timestamp=secrets.randbits(32),
            origin=self._loop.time(),
        )
        self.payload_type = 8
        self.event_payload_type: int | None = None
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.rtcp_interval = rtcp_interval
        self.cname = cname
        self._jitter_args = (jitter_min, jitter_max)
        self.on_packet: Callable[[RtpPacket], None] | None = None
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_digit: Callable[[str], None] | None = None
        self._queues: list[asyncio.Queue[bytes]] = []
        self.last_received: float | None = None
        self.last_rtcp: float | None = None  # loop time of the last RTCP datagram (either port)
        self.receiver: ReceiverStats | None = None
        self.jitter: JitterBuffer | None = None
        self.remote_report: ReportBlock | None = None
        self.last_sender_report: SenderReport | None = None
        self.bye_received = False
        self.closed = False
        self._rx_packets = 0
        self._rx_octets = 0
        self._bad = 0
        self._other = 0
        self._late = 0
        self._rtcp_sent = 0
        self._rtcp_received = 0
        self._concealed_before = 0
        self._last_event_ts: int | None = None
        self._sent_at_report = 0
        self._source: ClipSource | LiveSource | PullSource | None = None
        self._playout: asyncio.TimerHandle | None = None
        self._rtcp_timer: asyncio.TimerHandle | None = None
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(
        cls,
        pool: PortPool,
        host: str,
        *,
        rtcp_interval: float = 5.0,
        cname: str = "cityhub",
        jitter_min: float = 0.04,
        jitter_max: float = 0.2,
    ) -> RtpStream:
        """Bind a port pair from ``pool`` on ``host`` and start receiving and the RTCP timer."""
        port, rtp_sock, rtcp_sock = pool.acquire(host)
        try:
            stream = cls(
                pool,
                port,
                rtp_sock,
                rtcp_sock,
                rtcp_interval=rtcp_interval,
                cname=cname,
                jitter_min=jitter_min,
                jitter_max=jitter_max,
            )
            loop = stream._loop
            rtp_t, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(stream._on_rtp), sock=rtp_sock
            )
            rtcp_t, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(stream._on_rtcp), sock=rtcp_sock
            )
        except BaseException:
            rtp_sock.close()
            rtcp_sock.close()
            pool.release(port)
            raise
        stream._rtp_transport, stream._rtcp_transport = rtp_t, rtcp_t
        stream._rtcp_timer = loop.call_later(rtcp_interval, stream._rtcp_tick)
        return stream

    async def __aenter__(self) -> RtpStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- configuration ------------------------------------------------------------------------
    def set_remote(
        self,
        addr: tuple[str, int],
        payload_type: int,
        *,
        event_payload_type: int | None = None,
        rtcp_addr: tuple[str, int] | None = None,
    ) -> None:
        """Where to send (RTCP to port + 1 unless ``rtcp_addr``) and the negotiated types."""
        if not 0 <= payload_type <= 127:
            raise RtpError(f"payload type {payload_type} out of range")
        self.remote = (addr[0], addr[1])
        self.remote_rtcp = rtcp_addr or (addr[0], addr[1] + 1)
        self.payload_type = payload_type
        self.event_payload_type = event_payload_type
        self._state.addr = self.remote
        self._state.payload_type = payload_type

    def audio_queue(self, maxsize: int = 50) -> asyncio.Queue[bytes]:
        """A queue of received G.711 frames at playout time (the oldest dropped when full)."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self._queues.append(queue)
        return queue

    # -- sending ------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._source is not None

    def _begin(self) -> tuple[tuple[str, int], asyncio.Future[PlayResult]]:
        if self.closed:
            raise RtpError("the RTP stream is closed")
        if self.remote is None:
            raise RtpError("no remote address: call set_remote first")
        if self._state.busy:
            raise RtpError("the stream is already sending")
        self._state.busy = True
        return self.remote, self._loop.create_future()

    async def play(
        self, payload: bytes, *, repeat: int = 1, clock: MediaClock | None = None
    ) -> PlayResult:
        """Send ``payload`` (G.711 at 8000 octets/s) ``repeat`` times as 20 ms packets."""
        if not payload:
            raise RtpError("nothing to play")
        if repeat < 1:
            raise RtpError("repeat must be at least 1")
        addr, done = self._begin()
        source = ClipSource(self._state, addr, done, bytes(payload), repeat)
        return await self._run(source, clock or MediaClock.shared(), done)

    async def play_live(
        self,
        frames: AsyncIterator[bytes] | asyncio.Queue[bytes],
        *,
        clock: MediaClock | None = None,
        encoding: str | None = None,
        source_encoding: str = "PCMA",
        max_queue: int = 10,
        prebuffer: int = 2,
    ) -> PlayResult:
        """Pace live G.711 frames out on the clock until the iterator ends, an empty frame comes
        from the queue, `stop` or cancellation. At most ``max_queue`` frames (200 ms) wait; a
        talkspurt starts with ``prebuffer`` frames queued. Frames are ``source_encoding``
        (``"PCMA"`` or ``"PCMU"``); with ``encoding`` (the negotiated codec) different from it,
        each frame is transcoded (vectorised, per frame) before it is queued."""
        convert = _transcoder(source_encoding, encoding)
        addr, done = self._begin()
        source = LiveSource(self._state, addr, done, max_queue=max_queue, prebuffer=prebuffer)

        async def pump() -> None:
            if isinstance(frames, asyncio.Queue):
                for _ in iter(int, 1):  # until the empty frame or cancellation
                    frame = await frames.get()
                    if not frame:
                        break
                    source.feed(convert(frame) if convert else frame)
            else:
                async for frame in frames:
                    source.feed(convert(frame) if convert else frame)
            source.ended = True

        def pumped(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None and not done.done():
                source.clock.remove(source)
                self._source = None
                self._state.busy = False
                done.set_exception(task.exception())  # type: ignore[arg-type]

        pump_task = self._loop.create_task(pump())
        pump_task.add_done_callback(pumped)
        try:
            return await self._run(source, clock or MediaClock.shared(), done)
        finally:
            pump_task.cancel()

    async def play_pull(
        self, provider: Callable[[], bytes | None], *, clock: MediaClock | None = None
    ) -> PlayResult:
        """Send what ``provider`` gives at each 20 ms slot (a 160-octet frame in the negotiated
        law, or ``None`` for a gap) until `stop`, close or cancellation."""
        addr, done = self._begin()
        source = PullSource(self._state, addr, done, provider)
        return await self._run(source, clock or MediaClock.shared(), done)

    async def _run(
        self,
        source: ClipSource | LiveSource | PullSource,
        clock: MediaClock,
        done: asyncio.Future[PlayResult],
    ) -> PlayResult:
        self._source = source
        try:
            source.attach(clock)
            return await done
        finally:
            clock.remove(source)
            if not done.done() or done.cancelled():
                self._end(source)
            self._late += source.late
            self._state.busy = False
            if self._source is source:
                self._source = None

    def stop(self) -> None:
        """End the current play between two packets (its result has ``completed=False``)."""
        source = self._source
        if source is None:
            return
        source.clock.remove(source)
        self._end(source)

    def _end(self, source: ClipSource | LiveSource | PullSource) -> None:
        now = self._loop.time()
        if isinstance(source, ClipSource):
            source.stop(now)
        else:
            source.finish(False, now)

    async def send_digits(self, digits: str, *, duration: float = 0.1, pause: float = 0.05) -> int:
        """Send RFC 4733 events for ``digits`` (not while playing); the number of packets sent."""
        if self.event_payload_type is None:
            raise RtpError("no telephone-event payload type negotiated")
        addr, done = self._begin()
        done.cancel()
        state = self._state
        sent = 0
        try:
            at = self._loop.time()
            for digit in digits:
                ts = state.timestamp_at(at)
                schedule = dtmf_schedule(
                    digit,
                    timestamp=ts & 0xFFFFFFFF,
                    sequence=state.next_sequence,
                    ssrc=self.ssrc,
                    payload_type=self.event_payload_type,
                    duration=max(160, round(duration * CLOCK_RATE)),
                )
                for item in schedule:
                    due = at + item.offset_seconds()
                    await asyncio.sleep(max(0.0, due - self._loop.time()))
                    data = item.packet.serialize()
                    state.send(data, addr)
                    state.packets += 1
                    state.octets += len(data) - 12
                    state.next_sequence = (state.next_sequence + 1) & 0xFFFF
                    sent += 1
                state.last_timestamp = ts
                at = due + max(pause, 0.0)
        finally:
            state.busy = False
        return sent

    # -- receiving ----------------------------------------------------------------------------
    def _on_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            self._on_rtcp(data, addr)
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self._bad += 1
            return
        now = self._loop.time()
        self.last_received = now
        self._rx_packets += 1
        self._rx_octets += len(packet.payload)
        if self.on_packet is not None:
            try:
                self.on_packet(packet)
            except Exception:
                log.exception("RTP on_packet callback failed")
        receiver = self.receiver
        if receiver is None or receiver.ssrc != packet.ssrc:
            receiver = self.receiver = ReceiverStats(packet.ssrc)
            if self.jitter is not None:
                self._concealed_before += self.jitter.stats.concealed
            self.jitter = JitterBuffer(
                min_delay=self._jitter_args[0], max_delay=self._jitter_args[1]
            )
            self._last_event_ts = None
        receiver.update(packet.sequence, packet.timestamp, now)
        payload = packet.payload
        if self.event_payload_type is not None and packet.payload_type == self.event_payload_type:
            self._on_event(packet)
            payload = bytes([silence_byte(self.payload_type)]) * 160
        elif packet.payload_type != self.payload_type:
            self._other += 1  # comfort noise or a codec we did not negotiate: not audio
            return
        if self.on_audio is None and not self._queues:
            return
        jitter = self.jitter
        assert jitter is not None
        jitter.push(packet.sequence, packet.timestamp, payload, now, marker=packet.marker)
        self._schedule_playout()

    def _on_event(self, packet: RtpPacket) -> None:
        try:
            events = parse_events(packet.payload)
        except RtpError:
            self._bad += 1
            return
        if packet.timestamp == self._last_event_ts:
            return
        self._last_event_ts = packet.timestamp
        event: TelephoneEvent = events[0]
        if event.digit is not None and self.on_digit is not None:
            try:
                self.on_digit(event.digit)
            except Exception:
                log.exception("RTP on_digit callback failed")

    def _schedule_playout(self) -> None:
        jitter = self.jitter
        deadline = None if jitter is None else jitter.next_deadline()
        handle = self._playout
        if deadline is None:
            if handle is not None:
                handle.cancel()
                self._playout = None
            return
        if handle is not None:
            if handle.when() <= deadline:
                return
            handle.cancel()
        self._playout = self._loop.call_at(deadline, self._play_out)

    def _play_out(self) -> None:
        self._playout = None
        jitter = self.jitter
        if jitter is None or self.closed:
            return
        silence = bytes([silence_byte(self.payload_type)]) * 160
        for frame in jitter.pop(self._loop.time()):
            audio = frame.payload if frame.payload is not None else silence
            if self.on_audio is not None:
                try:
                    self.on_audio(audio)
                except Exception:
                    log.exception("RTP on_audio callback failed")
            for queue in self._queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(audio)
        self._schedule_playout()

    # -- RTCP ---------------------------------------------------------------------------------
    def _on_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packets = parse_compound(data)
        except RtpError:
            self._bad += 1
            return
        self._rtcp_received += 1
        now = self._loop.time()
        self.last_rtcp = now
        for packet in packets:
            if isinstance(packet, SenderReport | ReceiverReport):
                if isinstance(packet, SenderReport):
                    self.last_sender_report = packet
                    if self.receiver is not None and self.receiver.ssrc == packet.ssrc:
                        self.receiver.sender_report(packet.ntp_timestamp, now)
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self.remote_report = block
            elif packet.packet_type == RTCP_BYE:
                self.bye_received = True

    def _report(self) -> list[SenderReport | ReceiverReport | RtcpPacket]:
        now = self._loop.time()
        blocks: tuple[ReportBlock, ...] = ()
        if self.receiver is not None and self.receiver.valid:
            blocks = (self.receiver.report_block(now),)
        state = self._state
        head: SenderReport | ReceiverReport
        if state.packets > self._sent_at_report:
            rtp_ts = state.first_timestamp + round((now - state.origin) * CLOCK_RATE)
            head = SenderReport(
                ssrc=self.ssrc,
                ntp_timestamp=ntp_timestamp(time.time()),
                rtp_timestamp=rtp_ts & 0xFFFFFFFF,
                packet_count=state.packets & 0xFFFFFFFF,
                octet_count=state.octets & 0xFFFFFFFF,
                reports=blocks,
            )
        else:
            head = ReceiverReport(ssrc=self.ssrc, reports=blocks)
        self._sent_at_report = state.packets
        cname = self.cname.encode()[:255]
        chunk = struct.pack("!IBB", self.ssrc, 1, len(cname)) + cname
        chunk += bytes(4 - len(chunk) % 4)  # the null item ending the list, then padding
        return [head, RtcpPacket(RTCP_SDES, 1, chunk)]

    def _send_rtcp(self, packets: list[SenderReport | ReceiverReport | RtcpPacket]) -> None:
        if self.remote_rtcp is None:
            return
        try:
            self._rtcp_sock.sendto(serialize_compound(packets), self.remote_rtcp)
            self._rtcp_sent += 1
        except OSError as exc:
            log.debug("RTCP send failed: %s", exc)

    def _rtcp_tick(self) -> None:
        self._rtcp_timer = self._loop.call_later(self.rtcp_interval, self._rtcp_tick)
        sending = self._state.packets > self._sent_at_report
        if sending or self.receiver is not None:
            self._send_rtcp(self._report())

    # -- state --------------------------------------------------------------------------------
    @property
    def stats(self) -> RtpStreamStats:
        state = self._state
        receiver = self.receiver
        source = self._source
        remote = self.remote_report
        concealed = self._concealed_before + (
            self.jitter.stats.concealed if self.jitter is not None else 0
        )
        return RtpStreamStats(
            packets_sent=state.packets,
            octets_sent=state.octets,
            packets_received=self._rx_packets,
            octets_received=self._rx_octets,
            packets_lost=max(0, receiver.lost) if receiver is not None else 0,
            jitter_ms=receiver.jitter * 1000 / CLOCK_RATE if receiver is not None else 0.0,
            bad_packets=self._bad,
            other_payload=self._other,
            send_errors=state.send_errors,
            late_packets=self._late + (source.late if source is not None else 0),
            rtcp_sent=self._rtcp_sent,
            rtcp_received=self._rtcp_received,
            concealed=concealed,
            remote_lost=remote.cumulative_lost if remote is not None else None,
            remote_jitter_ms=remote.jitter * 1000 / CLOCK_RATE if remote is not None else None,
        )

    def close(self) -> None:
        """Stop sending, send an RTCP BYE, close both sockets and return the port; idempotent."""
        if self.closed:
            return
        self.stop()
        if self.remote_rtcp is not None:
            bye = RtcpPacket(RTCP_BYE, 1, struct.pack("!I", self.ssrc))
            self._send_rtcp([*self._report(), bye])
        self.closed = True
        for handle in (self._playout, self._rtcp_timer):
            if handle is not None:
                handle.cancel()
        for transport in (self._rtp_transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        for sock in (self._rtp_sock, self._rtcp_sock):
            with contextlib.suppress(OSError):
                sock.close()
        self._pool.release(self.local_port)
