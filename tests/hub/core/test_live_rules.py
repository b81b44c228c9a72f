"""The pure rules of the live picture (hub/live.py): channels, permissions, routing, resume."""

from __future__ import annotations

import orjson
import pytest

from hub import subsystem
from hub.core import live
from hub.core.workflow import Actor, Role

SEAT = live.Viewer(Actor(1, Role.SEAT))
DEPT3 = live.Viewer(Actor(2, Role.DEPARTMENT, department_id=3))
SUP = live.Viewer(
    Actor(3, Role.SUPERVISOR, grid_ids=frozenset({11, 12})), grid_scope=frozenset({11, 12, 1})
)
VIEWER = live.Viewer(Actor(4, Role.VIEWER))
K = live.ChannelKind
#: The state channels the installed subsystems declare (web, telephony, video).
STATES = subsystem.state_channels(subsystem.installed())
R = live.ResumeKind


class TestChannelNames:
    @pytest.mark.parametrize(
        "name", ["cases", "dept:3", "grid:12", "queue", "agents", "cameras", "speakers", "alarms"]
    )
    def test_known(self, name: str) -> None:
        parsed = live.ChannelName.parse(name, STATES)
        assert parsed is not None and str(parsed) == name

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("cases", live.ChannelName(K.CASES)),
            ("dept:3", live.ChannelName(K.DEPT, 3)),
            ("grid:12", live.ChannelName(K.GRID, 12)),
            ("queue", live.ChannelName(K.STATE, state="queue")),
            ("alarms", live.ChannelName(K.STATE, state="alarms")),
        ],
    )
    def test_parsed_parts(self, name: str, expected: live.ChannelName) -> None:
        parsed = live.ChannelName.parse(name, STATES)
        assert parsed is not None and parsed == expected
        assert parsed.is_state is (expected.kind is K.STATE)
        assert isinstance(parsed.kind, live.ChannelKind)

    def test_state_kind_is_not_a_channel_name(self) -> None:
        # The kind of every state channel is STATE: "state" itself names no channel.
        assert live.ChannelName.parse("state", STATES) is None

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "case",
            "dept:",
            "dept:x",
            "dept:-1",
            "grid:1:2",
            "dept:١",
            "x" * 100,
            "CASES",
            "dept:99999999999",
        ],
    )
    def test_unknown(self, name: str) -> None:
        assert live.ChannelName.parse(name, STATES) is None


class TestPermissions:
    def test_readers_see_all_case_channels(self) -> None:
        for ch in ["cases", "dept:3", "dept:4", "grid:1"]:
            assert live.may_subscribe(SEAT, live.ChannelName.parse(ch, STATES), STATES)  # type: ignore[arg-type]

    def test_department_only_its_own(self) -> None:
        assert live.may_subscribe(DEPT3, live.ChannelName(K.DEPT, 3), STATES)
        for ch in ["cases", "dept:4", "grid:1", "queue", "alarms", "cameras"]:
            assert not live.may_subscribe(DEPT3, live.ChannelName.parse(ch, STATES), STATES), ch  # type: ignore[arg-type]

    def test_supervisor_only_its_grids(self) -> None:
        assert live.may_subscribe(SUP, live.ChannelName(K.GRID, 1), STATES)
        assert live.may_subscribe(SUP, live.ChannelName(K.GRID, 12), STATES)
        assert not live.may_subscribe(SUP, live.ChannelName(K.GRID, 2), STATES)
        assert not live.may_subscribe(SUP, live.ChannelName(K.CASES), STATES)
        assert not live.may_subscribe(SUP, live.ChannelName(K.DEPT, 3), STATES)

    def test_state_channels(self) -> None:
        assert live.may_subscribe(VIEWER, live.ChannelName.of_state("cameras"), STATES)
        agent = live.Viewer(Actor(5, Role.AGENT))
        assert not live.may_subscribe(agent, live.ChannelName.of_state("cameras"), STATES)
        assert live.may_subscribe(agent, live.ChannelName.of_state("queue"), STATES)
        # A state channel no installed subsystem declares does not exist.
        assert live.ChannelName.parse("queue", {}) is None
        assert not live.may_subscribe(SEAT, live.ChannelName.of_state("queue"), {})

    def test_default_channels(self) -> None:
        assert live.default_channels(SEAT, [1, 2]) == ["cases"]
        assert live.default_channels(DEPT3, [1, 2]) == ["dept:3"]
        assert live.default_channels(SUP, [1, 2]) == ["grid:1"]

    def test_delivery_check(self) -> None:
        mine = live.CaseEventFacts(3, None, 11, 1)
        returned = live.CaseEventFacts(None, 3, 11, 1)
        other = live.CaseEventFacts(4, None, 21, 2)
        assert live.may_receive(DEPT3, mine) and live.may_receive(DEPT3, returned)
        assert not live.may_receive(DEPT3, other)
        assert live.may_receive(SUP, mine) and not live.may_receive(SUP, other)
        assert all(live.may_receive(SEAT, e) for e in (mine, returned, other))


def test_route() -> None:
    assert live.route(live.CaseEventFacts(3, None, 11, 1)) == [
        "cases",
        "dept:3",
        "grid:11",
        "grid:1",
    ]
    assert live.route(live.CaseEventFacts(5, 3, 11, 1)) == [
        "cases",
        "dept:5",
        "dept:3",
        "grid:11",
        "grid:1",
    ]
    assert live.route(live.CaseEventFacts(3, 3, None, None)) == ["cases", "dept:3"]


def test_envelope_is_the_documented_shape() -> None:
    frame = live.envelope(
        "cases", "e1", 7, "case.updated", "2026-11-23T00:00:00Z", {"id": 1, "version": 2}
    )
    assert orjson.loads(frame) == {
        "channel": "cases",
        "epoch": "e1",
        "offset": 7,
        "type": "case.updated",
        "ts": "2026-11-23T00:00:00Z",
        "data": {"id": 1, "version": 2},
    }


class TestHistoryAndResume:
    def test_ring_serves_contiguous_ranges_only(self) -> None:
        h = live.History(per_channel=5)
        for off in range(1, 9):
            h.add("cases", off, f"f{off}")
        assert h.head("cases") == 8
        assert h.since("cases", 5, 8) == ["f6", "f7", "f8"]
        assert h.since("cases", 3, 8) == ["f4", "f5", "f6", "f7", "f8"]
        assert h.since("cases", 2, 8) is None  # older than the ring
        assert h.since("cases", 8, 8) == []
        h.add("cases", 10, "f10")  # a hole: the ring restarts
        assert h.since("cases", 8, 10) is None
        assert h.since("cases", 9, 10) == ["f10"]
        assert h.since("other", 0, 1) is None

    def test_plan(self) -> None:
        assert live.plan_resume("e", 10, None, None) == live.Resume(R.LIVE, 10, 10)
        assert live.plan_resume("e", 10, "e", 10) == live.Resume(R.LIVE, 10, 10)
        assert live.plan_resume("e", 10, "e", 4) == live.Resume(R.REPLAY, 4, 10)
        assert live.plan_resume("e", 10, "e", 4).kind is R.REPLAY
        assert live.plan_resume("e", 10, "e", 10).kind is R.LIVE
        assert live.plan_resume("e", 10, "old", 4).kind is R.NOT_RECOVERED
        assert live.plan_resume("e", 10, "e", 11).kind is R.NOT_RECOVERED  # from the future
        assert live.plan_resume("e", 10, "e", -1).kind is R.NOT_RECOVERED

    def test_send_policy(self) -> None:
        p = live.SendPolicy(max_bytes=100, max_messages=3)
        assert not p.over(100, 3) and p.over(101, 0) and p.over(0, 4)
