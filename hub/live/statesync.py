"""State channels shared between hub processes (pure: messages and ``now`` in, messages and changes
out; the fan-out is the thin adapter that moves them over the bus).

A state channel (the call queue, agents, cameras, speakers, alarms) holds a current value per key.
Each value is *owned* by the process that set it — the one running the subsystem that produces it.
Every process keeps the merged view of all owners, so a client on any process gets the whole snapshot,
whichever process produces the state.

Theory of operation. Messages on the bus (JSON lists):

- ``["set", owner, channel, key, value]``: one key changed (``value`` None clears it);
- ``["hello", owner]``: a process joined, or its bus came back: every process answers with
- ``["dump", owner, {channel: {key: value}}]``: all the values it owns;
- ``["alive", owner]``: a heartbeat every ``heartbeat`` seconds;
- ``["bye", owner]``: a clean stop (its values are cleared at once).

An owner not heard from for ``ttl`` seconds is presumed dead and its values are cleared, so a crashed
process's cameras or agents do not linger. Expiry is suspended while the bus is down (nobody can be
heard then) and every owner's clock restarts when it is back, followed by a ``hello``.
A local ``set`` applies at once; the bus echoes it back to its owner, which ignores its own messages.
When two owners set the same key, the later message wins; clearing an owner's values clears only the
keys whose current value is its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: One change to deliver to subscribers: (channel, key, value); value None means "cleared".
Change = tuple[str, str, Any]
#: A message to publish on the bus.
Message = list[Any]

MAX_KEY_LEN = 200


@dataclasses.dataclass
class StateTable:
    me: str
    channels: frozenset[str]
    heartbeat: float = 5.0
    ttl: float = 15.0
    #: (channel, key) -> (owner, value): the merged view.
    values: dict[tuple[str, str], tuple[str, Any]] = dataclasses.field(default_factory=dict)
    #: owner -> when last heard (``now`` of the caller's clock).
    heard: dict[str, float] = dataclasses.field(default_factory=dict)
    _next_beat: float = 0.0

    # -- local changes ---------------------------------------------------------------------

    def set_local(self, channel: str, key: str, value: Any) -> tuple[Message, list[Change]]:
        """This process sets a key: the message to publish, and the change to deliver here."""
        if channel not in self.channels:
            raise ValueError(f"not a state channel: {channel}")
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LEN:
            raise ValueError("state keys are non-empty strings of at most 200 characters")
        return ["set", self.me, channel, key, value], self._put(self.me, channel, key, value)

    def hello(self) -> Message:
        return ["hello", self.me]

    def bye(self) -> Message:
        return ["bye", self.me]

    def dump(self) -> Message:
        mine: dict[str, dict[str, Any]] = {}
        for (channel, key), (owner, value) in self.values.items():
            if owner == self.me:
                mine.setdefault(channel, {})[key] = value
        return ["dump", self.me, mine]

    # -- remote messages -------------------------------------------------------------------

    def receive(self, msg: Any, now: float) -> tuple[list[Message], list[Change]]:
        """A message from the bus: what to publish in reply, and the changes to deliver."""
        if not isinstance(msg, list) or len(msg) < 2 or not isinstance(msg[1], str):
            return [], []
        kind, owner = msg[0], msg[1]
        if owner == self.me:
            return [], []  # our own, echoed back by the bus: already applied
        if kind == "bye" and len(msg) == 2:
            self.heard.pop(owner, None)
            return [], self._drop_owner(owner)
        self.heard[owner] = now
        if kind == "set" and len(msg) == 5:
            _, _, channel, key, value = msg
            if channel in self.channels and isinstance(key, str) and 0 < len(key) <= MAX_KEY_LEN:
                return [], self._put(owner, channel, key, value)
            return [], []
        if kind == "dump" and len(msg) == 3 and isinstance(msg[2], dict):
            return [], self._replace_owner(owner, msg[2])
        if kind == "hello" and len(msg) == 2:
            return [self.dump()], []
        return [], []  # "alive", or something we do not know: only the heartbeat counts

    # -- time ------------------------------------------------------------------------------

    def tick(self, now: float, bus_healthy: bool) -> tuple[list[Message], list[Change]]:
        """Heartbeat and expiry; call at least every ``heartbeat`` seconds (see ``next_deadline``)."""
        out: list[Message] = []
        changes: list[Change] = []
        if not bus_healthy:
            return out, changes
        if now >= self._next_beat:
            out.append(["alive", self.me])
            self._next_beat = now + self.heartbeat
        for owner, at in list(self.heard.items()):
            if now - at > self.ttl:
                del self.heard[owner]
                changes += self._drop_owner(owner)
        return out, changes

    def next_deadline(self) -> float:
        return self._next_beat

    def bus_recovered(self, now: float) -> Message:
        """The bus is back: nobody could be heard meanwhile, so every clock restarts; ask for dumps."""
        for owner in self.heard:
            self.heard[owner] = now
        self._next_beat = now
        return self.hello()

    # -- the view --------------------------------------------------------------------------

    def snapshot(self, channel: str) -> dict[str, Any]:
        return {key: value for (ch, key), (_o, value) in self.values.items() if ch == channel}

    def _put(self, owner: str, channel: str, key: str, value: Any) -> list[Change]:
        current = self.values.get((channel, key))
        if value is None:
            if current is None:
                return []
            del self.values[(channel, key)]
            return [(channel, key, None)]
        self.values[(channel, key)] = (owner, value)
        if current is not None and current[1] == value:
            return []
        return [(channel, key, value)]

    def _drop_owner(self, owner: str) -> list[Change]:
        gone = [ck for ck, (o, _v) in self.values.items() if o == owner]
        for ck in gone:
            del self.values[ck]
        return [(ch, key, None) for ch, key in gone]

    def _replace_owner(self, owner: str, dump: dict[str, Any]) -> list[Change]:
        """An owner's complete values: keys it no longer holds are cleared, the rest set."""
        wanted: dict[tuple[str, str], Any] = {}
        for channel, items in dump.items():
            if channel in self.channels and isinstance(items, dict):
                for key, value in items.items():
                    if isinstance(key, str) and 0 < len(key) <= MAX_KEY_LEN and value is not None:
                        wanted[(channel, key)] = value
        changes: list[Change] = []
        for ck, (o, _v) in list(self.values.items()):
            if o == owner and ck not in wanted:
                del self.values[ck]
                changes.append((ck[0], ck[1], None))
        for (channel, key), value in wanted.items():
            changes += self._put(owner, channel, key, value)
        return changes
