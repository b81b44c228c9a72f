"""Per-process fan-out: envelopes from the relay (through the bus, or read back from PostgreSQL) to
this process's websocket sessions, with the recent history used for resume.

Every envelope has a global ``pos`` (its row in ``live_log``). A process delivers envelopes strictly in
``pos`` order, each once: what arrives from the bus out of order, or while the bus is down, is read back
from ``live_log`` (``_catch_up``), so a bus outage delays updates but never loses one.

State channels (call queue, agents, cameras, speakers, alarms) keep a current value per key; a
subscriber first gets the whole snapshot, then changes. Values are shared between processes by
``hub.live.statesync`` (each owned by the process that set it), so a client on any process sees the
state another produces. Their offsets are per process (a reconnect always starts from a fresh
snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import orjson

from hub.core import live
from hub.core.workflow import Role
from hub.live.bus import Bus
from hub.live.relay import Batch
from hub.live.statesync import Change, StateTable
from storage import live as live_store
from storage.db import OUTAGE_ERRORS

log = logging.getLogger("cityhub.fanout")

LIVE_TOPIC = "cityhub:live"
STATE_TOPIC = "cityhub:state"


class Subscriber(Protocol):
    def deliver(
        self, channel: str, offset: int, frame: str | bytes, facts: live.CaseEventFacts | None
    ) -> None: ...


@dataclass
class Fanout:
    pool: asyncpg.Pool
    dsn: str
    bus: Bus
    epoch: str
    history: live.History = field(default_factory=live.History)
    subscribers: dict[str, set[Subscriber]] = field(default_factory=dict)
    last_pos: int = 0
    state_epoch: str = field(default_factory=lambda: "s" + secrets.token_urlsafe(6))
    #: The state channels every process knows (declared by the installed subsystems), with their
    #: readers.
    state_channels: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    states: StateTable = field(init=False)
    state_offsets: dict[str, int] = field(default_factory=dict)
    on_gap: Callable[[], None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _need_catch_up: bool = False
    _notified: int = 0
    #: How long a message may take through the bus before it is read from PostgreSQL instead.
    bus_grace: float = 0.3
    #: How many replays had to be read from PostgreSQL (the rest came from the ring or shared a read).
    replay_queries: int = 0
    _replays: dict[tuple[str, int, int], asyncio.Future[list[str] | None]] = field(
        default_factory=dict
    )

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            self.last_pos = await live_store.last_pos(conn)
            self.history.heads.update(await live_store.channel_heads(conn))
        self.bus.subscribe(LIVE_TOPIC, self._on_bus)
        self.states = StateTable(self.state_epoch, frozenset(self.state_channels))
        self.bus.subscribe(STATE_TOPIC, self._on_state_bus)
        self.bus.on_state(self._on_bus_state)
        self._publish_state([self.states.hello()])

    def _on_bus_state(self, healthy: bool) -> None:
        self._request_catch_up()
        if healthy:
            self._publish_state([self.states.bus_recovered(self._now())])

    def close(self) -> None:
        """A clean stop: every process clears the state this one owns at once."""
        self._publish_state([self.states.bye()])

    def _request_catch_up(self) -> None:
        self._need_catch_up = True
        self._wake.set()

    # -- case envelopes ------------------------------------------------------------------

    def publish(self, batch: Batch) -> None:
        """Called by the relay (in whichever process leads) after its batch is committed."""
        self.bus.publish(LIVE_TOPIC, orjson.dumps(batch))
        if self.bus.name != "memory":
            self._deliver(batch)  # the leader's own clients need not wait for the round trip

    def _on_bus(self, payload: bytes) -> None:
        try:
            items: Batch = [tuple(it) for it in orjson.loads(payload)]
        except (orjson.JSONDecodeError, TypeError):
            log.warning("ignoring a malformed bus message")
            return
        if not items:
            return
        if items[0][0] > self.last_pos + 1:
            self._request_catch_up()  # a hole: read everything from live_log instead
            return
        self._deliver(items)

    def _deliver(self, items: Batch) -> None:
        for item in items:
            pos, channel, offset, frame, dep, prev_dep, grid = item
            if pos <= self.last_pos:
                continue
            if pos != self.last_pos + 1:
                self._request_catch_up()
                return
            self.last_pos = pos
            self.history.add(channel, offset, frame)
            subs = self.subscribers.get(channel)
            if subs:
                facts = live.CaseEventFacts(dep, prev_dep, grid, None)
                data = frame.encode()  # once for every subscriber
                for sub in list(subs):
                    sub.deliver(channel, offset, data, facts)

    async def run(self, stop: asyncio.Event) -> None:
        """Catch up from ``live_log`` when told to (a hole, the bus down) and, while the bus is down,
        on every ``cityhub_live`` notification or every half second."""
        listener: asyncpg.Connection | None = None
        try:
            while not stop.is_set():
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                self._wake.clear()
                if stop.is_set():
                    break
                self.tick_state()
                if self.bus.healthy and not self._need_catch_up:
                    continue
                self._need_catch_up = False
                try:
                    await self._catch_up()
                except OUTAGE_ERRORS as exc:
                    log.warning("fanout: database unavailable (%s)", type(exc).__name__)
                    self._need_catch_up = True
                    await asyncio.sleep(0.5)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.close(), timeout=2)

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        except OUTAGE_ERRORS:
            return None
        await conn.add_listener("cityhub_live", self._on_notify)
        return conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        """The relay wrote up to ``payload`` (a pos). Without the bus, read it now; with the bus,
        read it only if the bus has not brought it shortly (it may have lost it)."""
        try:
            pos = int(str(payload))
        except ValueError:
            return
        self._notified = max(self._notified, pos)
        if not self.bus.healthy:
            self._request_catch_up()
        else:
            asyncio.get_running_loop().call_later(self.bus_grace, self._check_behind)

    def _check_behind(self) -> None:
        if self.last_pos < self._notified:
            self._request_catch_up()

    async def _catch_up(self) -> None:
        while True:
            async with self.pool.acquire() as conn:
                rows = await live_store.log_after(conn, self.last_pos, 5000)
            if not rows:
                return
            self._deliver(rows)
            if len(rows) < 5000:
                return

    async def replay(self, channel: str, after: int, upto: int) -> list[str] | None:
        """Envelopes after < offset <= upto of a channel, from the ring or PostgreSQL (identical
        requests share one query); None when they are no longer kept."""
        frames = self.history.since(channel, after, upto)
        if frames is not None:
            return frames
        key = (channel, after, upto)
        fut = self._replays.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._replays[key] = fut
            self.replay_queries += 1
            try:
                async with self.pool.acquire() as conn:
                    frames = await live_store.channel_frames(conn, channel, after, upto)
                result = frames if len(frames) == upto - after else None
                fut.set_result(result)
            except BaseException as exc:
                fut.set_exception(exc)
                raise
            finally:
                del self._replays[key]
            return result
        return await asyncio.shield(fut)

    def head(self, channel: str) -> int:
        return self.history.head(channel)

    def add(self, channel: str, sub: Subscriber) -> None:
        self.subscribers.setdefault(channel, set()).add(sub)

    def remove(self, channel: str, sub: Subscriber) -> None:
        subs = self.subscribers.get(channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[channel]

    # -- state channels ------------------------------------------------------------------

    def set_state(self, channel: str, key: str, value: Any) -> None:
        """Set (or, with None, clear) one key of a state channel, owned by this process, in every
        process. Applied here at once; the others get it through the bus."""
        msg, changes = self.states.set_local(channel, key, value)
        self._publish_state([msg])
        self._deliver_state(changes)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _publish_state(self, msgs: list[Any]) -> None:
        for msg in msgs:
            self.bus.publish(STATE_TOPIC, orjson.dumps(msg))

    def _on_state_bus(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        replies, changes = self.states.receive(msg, self._now())
        self._publish_state(replies)
        self._deliver_state(changes)

    def tick_state(self) -> None:
        """Heartbeat and expiry of other processes' state (called from ``run``)."""
        out, changes = self.states.tick(self._now(), self.bus.healthy)
        self._publish_state(out)
        self._deliver_state(changes)

    def _deliver_state(self, changes: list[Change]) -> None:
        if not changes:
            return
        ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for channel, key, value in changes:
            offset = self.state_offsets[channel] = self.state_offsets.get(channel, 0) + 1
            subs = self.subscribers.get(channel)
            if not subs:
                continue
            frame = live.envelope(
                channel, self.state_epoch, offset, "state.changed", ts, {"key": key, "value": value}
            )
            for sub in list(subs):
                sub.deliver(channel, offset, frame, None)

    def snapshot(self, channel: str) -> str:
        return live.control(
            "snapshot",
            channel=channel,
            epoch=self.state_epoch,
            offset=self.state_offsets.get(channel, 0),
            data=self.states.snapshot(channel),
        )
