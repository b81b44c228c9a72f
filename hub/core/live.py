"""The live picture's rules, as plain code (no I/O, no clock): channel names and who may subscribe,
routing of a case event to channels, the delivery check, envelopes, the recent-history ring used for
resume, and the resume decision.

Theory of operation: the relay (``hub/live/relay.py``) turns each committed case event into one
envelope per channel it belongs to (``route``), numbering them per channel (``offset`` +1 each); every
hub process keeps the latest envelopes per channel in a ``History`` ring and fans them out to its
websocket sessions (``hub/live/server.py``), which check ``may_receive`` on each delivery. A
reconnecting client asks for "after (epoch, offset)": ``plan_resume`` says whether that is already
live, can be replayed (from the ring, or from PostgreSQL's ``live_log``), or is lost
(``not_recovered``: reload over REST). A channel name parses into a ``ChannelName`` (its
``ChannelKind``, and the department, grid or state channel it names).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from typing import Any

import orjson

from hub.core.workflow import Actor, Role

CASE_READERS: frozenset[Role] = frozenset(
    {Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.AGENT, Role.VIEWER}
)
#: State channels by name, with who may subscribe to each. They are declared by the installed
#: subsystems (``hub.subsystem.state_channels``) and passed in: these rules know none by themselves.
StateChannels = Mapping[str, frozenset[Role]]
MAX_CHANNEL_LEN = 40


class ChannelKind(StrEnum):
    """What a channel carries: case events (all, one department's, one grid's) or a state."""

    CASES = "cases"  # every case: "cases"
    DEPT = "dept"  # the cases one department holds (or just gave up): "dept:<id>"
    GRID = "grid"  # the cases in one grid (first or second level): "grid:<id>"
    STATE = "state"  # a state channel (snapshot, then changes), named by ``ChannelName.state``


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelName:
    kind: ChannelKind
    #: DEPT and GRID: the department's or the grid's id.
    ident: int | None = None
    #: STATE: the state channel's name (one of the declared ``StateChannels``).
    state: str | None = None

    @classmethod
    def parse(cls, text: str, states: Collection[str]) -> ChannelName | None:
        """A channel name, or None; ``states`` are the state channels that exist."""
        if not isinstance(text, str) or len(text) > MAX_CHANNEL_LEN:
            return None
        if text == ChannelKind.CASES:
            return cls(ChannelKind.CASES)
        if text in states:
            return cls.of_state(text)
        kind, sep, ident = text.partition(":")
        if (
            sep
            and kind in (ChannelKind.DEPT, ChannelKind.GRID)
            and ident.isdigit()
            and ident.isascii()
            and len(ident) < 10
        ):
            return cls(ChannelKind(kind), int(ident))
        return None

    @classmethod
    def of_state(cls, name: str) -> ChannelName:
        """The state channel ``name``."""
        return cls(ChannelKind.STATE, state=name)

    def __str__(self) -> str:
        if self.kind is ChannelKind.STATE:
            return self.state or ""
        return self.kind.value if self.ident is None else f"{self.kind.value}:{self.ident}"

    @property
    def is_state(self) -> bool:
        return self.kind is ChannelKind.STATE


@dataclasses.dataclass(frozen=True, slots=True)
class Viewer:
    """Who is connected, with the scope that bounds what they may receive."""

    actor: Actor
    #: Second-level grids plus the first-level grids that contain them (supervisors only).
    grid_scope: frozenset[int] = frozenset()


def may_subscribe(viewer: Viewer, channel: ChannelName, states: StateChannels) -> bool:
    role = viewer.actor.role
    if channel.kind is ChannelKind.STATE:
        readers = states.get(channel.state or "")
        return readers is not None and role in readers
    if role in CASE_READERS:
        return True
    if role is Role.DEPARTMENT:
        return channel.kind is ChannelKind.DEPT and channel.ident == viewer.actor.department_id
    if role is Role.SUPERVISOR:
        return channel.kind is ChannelKind.GRID and channel.ident in viewer.grid_scope
    return False


def default_channels(viewer: Viewer, first_level_grids: Iterable[int]) -> list[str]:
    """The case channels a page subscribes to for "every case this user may see"."""
    role = viewer.actor.role
    if role in CASE_READERS:
        return ["cases"]
    if role is Role.DEPARTMENT and viewer.actor.department_id is not None:
        return [f"dept:{viewer.actor.department_id}"]
    if role is Role.SUPERVISOR:
        mine = sorted(g for g in first_level_grids if g in viewer.grid_scope)
        if mine:
            return [f"grid:{g}" for g in mine]
        return [f"grid:{g}" for g in sorted(viewer.actor.grid_ids)]
    return []


@dataclasses.dataclass(frozen=True, slots=True)
class CaseEventFacts:
    """What routing and the delivery check need to know about one committed case event."""

    department_id: int | None
    prev_department_id: int | None
    grid_id: int | None
    grid_parent_id: int | None


def route(ev: CaseEventFacts) -> list[str]:
    """The channels one case event is published on."""
    out = ["cases"]
    for dep in dict.fromkeys((ev.department_id, ev.prev_department_id)):
        if dep is not None:
            out.append(f"dept:{dep}")
    for grid in (ev.grid_id, ev.grid_parent_id):
        if grid is not None:
            out.append(f"grid:{grid}")
    return out


def may_receive(viewer: Viewer, ev: CaseEventFacts) -> bool:
    """Checked on every delivery, whatever the channel: department staff get only cases held by
    (or just taken from) their department, field supervisors only cases in their grids."""
    role = viewer.actor.role
    if role in CASE_READERS:
        return True
    if role is Role.DEPARTMENT:
        dep = viewer.actor.department_id
        return dep is not None and dep in (ev.department_id, ev.prev_department_id)
    if role is Role.SUPERVISOR:
        return ev.grid_id is not None and ev.grid_id in viewer.actor.grid_ids
    return False


def envelope(channel: str, epoch: str, offset: int, type_: str, ts: str, data: Any) -> str:
    """One envelope (the data encoded here; see ``envelope_raw`` to reuse an encoded payload)."""
    return envelope_raw(channel, epoch, offset, type_, ts, orjson.dumps(data).decode())


def envelope_raw(channel: str, epoch: str, offset: int, type_: str, ts: str, data_json: str) -> str:
    """One envelope around an already encoded ``data``: an event going to several channels is
    encoded once; each channel's envelope only adds its own header."""
    head = orjson.dumps(
        {"channel": channel, "epoch": epoch, "offset": offset, "type": type_, "ts": ts}
    ).decode()
    return head[:-1] + ',"data":' + data_json + "}"


def control(type_: str, **fields: Any) -> str:
    return orjson.dumps({"type": type_, **fields}).decode()


# ---------------------------------------------------------------------------------------------
# Recent history and the resume decision


@dataclasses.dataclass
class History:
    """The last ``per_channel`` envelopes of each channel, with the head offset of every channel."""

    per_channel: int = 2000
    _frames: dict[str, deque[tuple[int, str]]] = dataclasses.field(default_factory=dict)
    heads: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, channel: str, offset: int, frame: str) -> None:
        ring = self._frames.get(channel)
        if ring is None:
            ring = self._frames[channel] = deque(maxlen=self.per_channel)
        if ring and offset != ring[-1][0] + 1:
            ring.clear()  # a hole (missed messages): only a contiguous run is usable for replay
        ring.append((offset, frame))
        if offset > self.heads.get(channel, 0):
            self.heads[channel] = offset

    def head(self, channel: str) -> int:
        return self.heads.get(channel, 0)

    def since(self, channel: str, after: int, upto: int) -> list[str] | None:
        """Envelopes with after < offset <= upto, or None when the ring does not hold them all."""
        if upto <= after:
            return []
        ring = self._frames.get(channel)
        if not ring or ring[0][0] > after + 1 or ring[-1][0] < upto:
            return None
        start = after + 1 - ring[0][0]
        return [frame for off, frame in list(ring)[start : start + (upto - after)]]


class ResumeKind(StrEnum):
    LIVE = "live"  # nothing missed: go on from the head
    REPLAY = "replay"  # send what was missed (after < offset <= upto), then go on
    NOT_RECOVERED = "not_recovered"  # the missed part is lost: the client reloads over REST


@dataclasses.dataclass(frozen=True, slots=True)
class Resume:
    kind: ResumeKind
    after: int = 0
    upto: int = 0


def plan_resume(
    epoch: str, head: int, client_epoch: str | None, client_offset: int | None
) -> Resume:
    """What to do for a subscription that asks for everything after (client_epoch, client_offset)."""
    if client_offset is None:
        return Resume(ResumeKind.LIVE, head, head)
    if client_epoch != epoch or client_offset < 0 or client_offset > head:
        return Resume(ResumeKind.NOT_RECOVERED, head, head)
    if client_offset == head:
        return Resume(ResumeKind.LIVE, head, head)
    return Resume(ResumeKind.REPLAY, client_offset, head)


@dataclasses.dataclass
class SendPolicy:
    """The slow-consumer policy of one connection: how much may wait unsent."""

    max_bytes: int = 1 << 20
    max_messages: int = 2000
    drain_timeout: float = 30.0

    def over(self, buffered_bytes: int, pending_messages: int) -> bool:
        return buffered_bytes > self.max_bytes or pending_messages > self.max_messages
