"""The state-channel table shared between processes (pure): a joining process gets what others own,
a dead owner's values go away, a bus outage does not wipe them, a clean stop clears at once."""

from __future__ import annotations

from typing import Any

import pytest

from hub.live.statesync import Change, Message, StateTable

CHANNELS = frozenset({"cameras", "agents"})


class Net:
    """Processes on one bus: every published message reaches every process (its owner too, as a
    real bus echoes it), in one order."""

    def __init__(self) -> None:
        self.tables: dict[str, StateTable] = {}
        self.delivered: dict[str, list[Change]] = {}
        self.now = 0.0

    def join(self, name: str) -> StateTable:
        t = StateTable(name, CHANNELS)
        self.tables[name] = t
        self.delivered[name] = []
        self.publish([t.hello()])
        return t

    def publish(self, msgs: list[Message]) -> None:
        queue = list(msgs)
        while queue:
            msg = queue.pop(0)
            for name, t in list(self.tables.items()):
                replies, changes = t.receive(msg, self.now)
                self.delivered[name] += changes
                queue += replies

    def set(self, name: str, channel: str, key: str, value: Any) -> None:
        msg, changes = self.tables[name].set_local(channel, key, value)
        self.delivered[name] += changes
        self.publish([msg])

    def tick(self, dt: float, healthy: bool = True, silent: frozenset[str] = frozenset()) -> None:
        self.now += dt
        for name, t in self.tables.items():
            out, changes = t.tick(self.now, healthy)
            self.delivered[name] += changes
            if name not in silent and healthy:
                self.publish(out)


def test_a_joining_process_gets_the_state_another_owns() -> None:
    net = Net()
    video = net.join("video")
    net.set("video", "cameras", "7", {"status": "online"})
    net.set("video", "cameras", "8", {"status": "offline", "reason": "超时"})
    web = net.join("web")  # joins later: nothing changes after it joined
    assert web.snapshot("cameras") == {
        "7": {"status": "online"},
        "8": {"status": "offline", "reason": "超时"},
    }
    assert video.snapshot("cameras") == web.snapshot("cameras")


def test_changes_reach_every_process_once() -> None:
    net = Net()
    net.join("video")
    net.join("web")
    net.set("video", "cameras", "7", {"status": "online"})
    net.set("video", "cameras", "7", {"status": "online"})  # the same value: no change
    net.set("video", "cameras", "7", None)
    assert net.delivered["web"] == [
        ("cameras", "7", {"status": "online"}),
        ("cameras", "7", None),
    ]
    assert net.delivered["video"] == net.delivered["web"]


def test_a_dead_owner_is_cleared_after_the_ttl_and_a_live_one_is_not() -> None:
    net = Net()
    net.join("video")
    net.join("phone")
    web = net.join("web")
    net.set("video", "cameras", "7", {"status": "online"})
    net.set("phone", "agents", "a1", {"state": "idle"})
    for _ in range(4):  # 20 s: the video process has died and says nothing; phone beats
        net.tick(5.0, silent=frozenset({"video"}))
    assert web.snapshot("cameras") == {}
    assert web.snapshot("agents") == {"a1": {"state": "idle"}}
    assert ("cameras", "7", None) in net.delivered["web"]


def test_a_bus_outage_does_not_expire_anyone() -> None:
    net = Net()
    net.join("video")
    web = net.join("web")
    net.set("video", "cameras", "7", {"status": "online"})
    for _ in range(10):  # 50 s without a bus
        net.tick(5.0, healthy=False)
    assert web.snapshot("cameras") == {"7": {"status": "online"}}
    # Back: clocks restart, everyone dumps again.
    net.publish([web.bus_recovered(net.now)])
    net.tick(5.0)
    assert web.snapshot("cameras") == {"7": {"status": "online"}}


def test_a_dump_replaces_what_the_owner_no_longer_holds() -> None:
    """Values cleared while a process could not hear them (a bus outage) go with the next dump."""
    net = Net()
    video = net.join("video")
    web = net.join("web")
    net.set("video", "cameras", "7", {"status": "online"})
    net.set("video", "cameras", "8", {"status": "online"})
    # Web misses the clearing of camera 8 (applied locally, the message lost).
    _msg, _changes = video.set_local("cameras", "8", None)
    assert web.snapshot("cameras").keys() == {"7", "8"}
    net.publish([web.bus_recovered(net.now)])
    assert web.snapshot("cameras") == {"7": {"status": "online"}}
    assert ("cameras", "8", None) in net.delivered["web"]


def test_a_clean_stop_clears_at_once() -> None:
    net = Net()
    video = net.join("video")
    web = net.join("web")
    net.set("video", "cameras", "7", {"status": "online"})
    net.publish([video.bye()])
    assert web.snapshot("cameras") == {}


def test_bad_messages_are_ignored() -> None:
    t = StateTable("web", CHANNELS)
    for msg in [
        None,
        [],
        ["set"],
        ["set", 3, "cameras", "7", 1],
        ["set", "x", "nope", "7", 1],
        ["set", "x", "cameras", "", 1],
        ["set", "x", "cameras", "k" * 201, 1],
        ["dump", "x", "not a dict"],
        ["dump", "x", {"cameras": []}],
        "garbage",
    ]:
        assert t.receive(msg, 0.0) == ([], [])
    assert t.snapshot("cameras") == {}
    with pytest.raises(ValueError):
        t.set_local("nope", "7", 1)
    with pytest.raises(ValueError):
        t.set_local("cameras", "", 1)
