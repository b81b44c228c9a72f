"""Deadline alarms against real hub states on PostgreSQL, with the case service's clock injected:
fired at the exact moment and once, after a restart, with two hub processes, live to a websocket
client, escalating once; urgent cases on their own limit; GET /api/alarms; a pass after one case's
event reads that case only, and the deadline it moved fires at its new moment once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.cases.alarms import Alarms
from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.core.deadlines import parse_policy
from hub.state import HubState
from hub.web.app import build_state, close_state
from storage import alarms as alarm_store
from storage.db import connect
from tests import conftest
from tests.conftest import Api
from tests.hub.web.test_api_cases import dept_user_for, report
from tests.live_client import LiveClient

TZ = ZoneInfo("Asia/Shanghai")
A = wf.Action
SECOND = timedelta(seconds=1)


def at(hh: int, mm: int = 0, ss: int = 0, day: int = 1) -> datetime:
    """Monday 2036-12-01 (and the days after) in the city's zone: a plain working week."""
    return datetime(2036, 12, day, hh, mm, ss, tzinfo=TZ)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def inject(state: HubState, clock: Clock) -> None:
    state.cases.clock = clock


async def four_hour_case(state: HubState, clock: Clock, *, urgent: bool = False) -> int:
    """A case of a category limited to 4 working hours, reported, registered and dispatched at
    Monday 09:00 by the admin: due Monday 15:30 (3 h in the morning, 1 h after 14:30)."""
    svc = state.cases
    async with connect(state.pool) as conn:
        admin = int(await conn.fetchval("SELECT id FROM users WHERE username = 'admin'"))
        dep = int(await conn.fetchval("SELECT id FROM departments ORDER BY id LIMIT 1"))
    cat = next(
        c
        for c in svc.catalog.categories.values()
        if c.active and c.time_limit_unit == "hours" and c.time_limit_value == 4
    )
    actor = wf.Actor(admin, wf.Role.ADMIN)
    clock.now = at(9)
    body = await svc.create(
        actor,
        NewCase(cat.id, "public", "时限测试案件", address="测试路1号", urgent=urgent),
    )
    ev = await svc.transition(actor, body["id"], body["version"], wf.Command(A.REGISTER))
    await svc.transition(actor, body["id"], ev.version, wf.Command(A.DISPATCH, department_id=dep))
    return int(body["id"])


async def alarms_of(state: HubState, case_id: int) -> list[tuple[str, float, datetime, datetime]]:
    async with connect(state.pool) as conn:
        rows = await conn.fetch(
            "SELECT kind, threshold::float8 AS t, due_at, fired_at FROM case_alarms"
            " WHERE case_id = $1 ORDER BY id",
            case_id,
        )
    return [(r["kind"], r["t"], r["due_at"], r["fired_at"]) for r in rows]


async def events_of(state: HubState, case_id: int) -> list[tuple[str, int | None, str]]:
    async with connect(state.pool) as conn:
        rows = await conn.fetch(
            "SELECT action, actor_id, note FROM case_events WHERE case_id = $1 ORDER BY version",
            case_id,
        )
    return [(r["action"], r["actor_id"], r["note"]) for r in rows]


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_warning_and_overdue_fire_once_at_their_moments(hub_state: HubState) -> None:
    clock = Clock(at(9))
    inject(hub_state, clock)
    case_id = await four_hour_case(hub_state, clock)
    alarms = hub_state.alarms
    assert alarms is not None
    detail = await hub_state.cases.get(wf.Actor(1, wf.Role.ADMIN), case_id)
    assert detail["deadline"] == at(15, 30)
    assert detail["countdown"]["level"] == "normal"
    assert detail["countdown"]["remaining_s"] == 4 * 3600
    # 75 % of 4 h is used at 12:00 (3 h in the morning): one hour is left, after lunch.
    assert detail["countdown"]["next_at"] == at(12).isoformat()

    clock.now = at(11, 59, 59)
    await alarms.check()
    assert await alarms_of(hub_state, case_id) == []
    clock.now = at(12)
    await asyncio.gather(alarms.check(), alarms.check())
    await alarms.check()
    assert await alarms_of(hub_state, case_id) == [("warning", 0.75, at(12), at(12))]
    detail = await hub_state.cases.get(wf.Actor(1, wf.Role.ADMIN), case_id)
    assert detail["countdown"]["level"] == "warning" and detail["countdown"]["remaining_s"] == 3600
    assert detail["overdue"] is False

    clock.now = at(15, 30) - SECOND
    await alarms.check()
    assert len(await alarms_of(hub_state, case_id)) == 1
    clock.now = at(15, 30)
    await asyncio.gather(alarms.check(), alarms.check())
    await alarms.check()
    assert await alarms_of(hub_state, case_id) == [
        ("warning", 0.75, at(12), at(12)),
        ("overdue", 1.0, at(15, 30), at(15, 30)),
    ]
    events = await events_of(hub_state, case_id)
    # The system's events carry no actor; the overdue alarm escalated (督办) the case once.
    assert [(a, who) for a, who, _ in events[3:]] == [
        ("deadline_warning", None),
        ("overdue", None),
        ("escalate", None),
    ]
    assert "超过处置时限" in events[-1][2]
    detail = await hub_state.cases.get(wf.Actor(1, wf.Role.ADMIN), case_id)
    assert detail["escalation_count"] == 1
    assert detail["countdown"]["level"] == "overdue" and detail["countdown"]["remaining_s"] == 0
    assert [e["action_label"] for e in detail["timeline"][3:]] == ["黄灯预警", "红灯超期", "督办"]


async def test_acting_on_the_version_before_an_alarm_is_no_conflict(
    hub_state: HubState, login: Any
) -> None:
    clock = Clock(at(9))
    inject(hub_state, clock)
    case_id = await four_hour_case(hub_state, clock)
    disp = await login("dispatch1")
    seen = (await disp.get(f"/api/cases/{case_id}")).json()
    dept = await dept_user_for(login, seen["department"]["id"])
    clock.now = at(16)
    assert hub_state.alarms is not None
    await hub_state.alarms.check()  # warning, overdue and the escalation: three versions on
    r = await dept.act(case_id, "accept", version=seen["version"])
    assert r.status_code == 200, r.text
    assert r.json()["version"] == seen["version"] + 4
    # A person's move in between still conflicts.
    r = await dept.act(
        case_id,
        "request_extension",
        version=seen["version"],
        note="x",
        extension_until=at(18, day=2).isoformat(),
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_conflict"


@pytest.fixture
async def own_states(fresh_dsn: str, shared_data_dir: Path) -> AsyncIterator[list[HubState]]:
    """Hub processes on one database, opened and closed by the test."""
    states: list[HubState] = []
    yield states
    for s in states:
        if not s.stop.is_set():
            await close_state(s)


async def open_state(fresh_dsn: str, shared_data_dir: Path, states: list[HubState]) -> HubState:
    state = await build_state(conftest.test_settings(shared_data_dir, fresh_dsn))
    states.append(state)
    return state


async def test_a_restart_fires_the_missed_alarm_once_and_nothing_again(
    fresh_dsn: str, shared_data_dir: Path, own_states: list[HubState]
) -> None:
    first = await open_state(fresh_dsn, shared_data_dir, own_states)
    clock = Clock(at(9))
    inject(first, clock)
    case_id = await four_hour_case(first, clock)
    clock.now = at(13)
    assert first.alarms is not None
    first.alarms.wake()  # the running leader sees the clock moved
    await eventually(lambda: _count(first, case_id, 1))
    await close_state(first)

    # Down over the deadline; the next process fires the missed overdue alarm, once.
    second = await open_state(fresh_dsn, shared_data_dir, own_states)
    inject(second, Clock(at(16)))
    assert second.alarms is not None
    second.alarms.wake()
    await eventually(lambda: _count(second, case_id, 2))
    await second.alarms.check()
    await close_state(second)

    third = await open_state(fresh_dsn, shared_data_dir, own_states)
    inject(third, Clock(at(17)))
    assert third.alarms is not None
    await third.alarms.check()
    got = await alarms_of(third, case_id)
    assert [(k, t, due, fired) for k, t, due, fired in got] == [
        ("warning", 0.75, at(12), at(13)),
        ("overdue", 1.0, at(15, 30), at(16)),
    ]
    assert [a for a, _, _ in await events_of(third, case_id)].count("escalate") == 1


async def _count(state: HubState, case_id: int, n: int) -> bool:
    return len(await alarms_of(state, case_id)) >= n


async def test_two_hub_processes_fire_one_alarm(
    fresh_dsn: str, shared_data_dir: Path, own_states: list[HubState]
) -> None:
    one = await open_state(fresh_dsn, shared_data_dir, own_states)
    two = await open_state(fresh_dsn, shared_data_dir, own_states)
    clock = Clock(at(9))
    inject(one, clock)
    inject(two, clock)
    case_id = await four_hour_case(one, clock)
    assert one.alarms is not None and two.alarms is not None
    await eventually(lambda: _leader(one, two))
    assert [one.alarms.is_leader, two.alarms.is_leader].count(True) == 1
    clock.now = at(15, 45)
    one.alarms.wake()
    two.alarms.wake()
    await eventually(lambda: _count(one, case_id, 2))
    # Even both processes passing at once (a split brain) write nothing more.
    await asyncio.gather(one.alarms.check(), two.alarms.check(), one.alarms.check())
    await asyncio.sleep(0.3)
    assert [k for k, *_ in await alarms_of(one, case_id)] == ["warning", "overdue"]
    actions = [a for a, _, _ in await events_of(one, case_id)]
    assert actions.count("overdue") == actions.count("deadline_warning") == 1
    assert actions.count("escalate") == 1


async def _leader(one: HubState, two: HubState) -> bool:
    assert one.alarms is not None and two.alarms is not None
    return one.alarms.is_leader or two.alarms.is_leader


async def test_an_alarm_reaches_a_board_live(hub_state: HubState, login: Any) -> None:
    clock = Clock(at(9))
    inject(hub_state, clock)
    case_id = await four_hour_case(hub_state, clock)
    seat = await login("seat1")
    assert hub_state.live is not None
    client = LiveClient(
        f"ws://127.0.0.1:{hub_state.live.bound_port}/ws",
        seat.headers["Authorization"].removeprefix("Bearer "),
    )
    await client.open()
    await client.subscribe("cases")
    try:
        clock.now = at(15, 30)
        assert hub_state.alarms is not None
        await hub_state.alarms.check()

        def overdue() -> list[dict[str, Any]]:
            return [
                e
                for e in client.events.get("cases", [])
                if e["data"]["id"] == case_id and e["data"]["event"]["action"] == "overdue"
            ]

        await client.wait(lambda: len(overdue()) == 1)
        env = overdue()[0]
        assert env["type"] == "case.updated"
        assert env["data"]["event"]["action_label"] == "红灯超期"
        assert env["data"]["event"]["actor"] is None
        assert env["data"]["countdown"]["level"] == "overdue"
        # which share of which deadline, as GET /api/alarms lists it (a board shows it once)
        (listed,) = [a for a in (await seat.get("/api/alarms")).json()["items"]
                     if a["case_id"] == case_id and a["kind"] == "overdue"]  # fmt: skip
        data = env["data"]["event"]["data"]
        assert data["share"] == listed["share"] == 1.0
        assert datetime.fromisoformat(data["deadline"]) == datetime.fromisoformat(
            listed["deadline"]
        )
        assert not client.problems
    finally:
        await client.close()


async def test_a_department_receives_its_own_alarm_live_and_no_other(
    hub_state: HubState, login: Any
) -> None:
    clock = Clock(at(9))
    inject(hub_state, clock)
    case_id = await four_hour_case(hub_state, clock)
    detail = await hub_state.cases.get(wf.Actor(1, wf.Role.ADMIN), case_id)
    own = await dept_user_for(login, detail["department"]["id"])
    async with connect(hub_state.pool) as conn:
        other_dep = int(
            await conn.fetchval(
                "SELECT d.id FROM departments d JOIN users u ON u.department_id = d.id"
                " WHERE d.id <> $1 AND u.role = 'department' ORDER BY d.id LIMIT 1",
                detail["department"]["id"],
            )
        )
    other = await dept_user_for(login, other_dep)
    assert hub_state.live is not None
    url = f"ws://127.0.0.1:{hub_state.live.bound_port}/ws"
    clients = []
    for api in (own, other):
        c = LiveClient(url, api.headers["Authorization"].removeprefix("Bearer "))
        hello = await c.open()
        await c.subscribe(hello["channels"][0])
        clients.append(c)
    mine, theirs = clients
    try:
        clock.now = at(12)
        assert hub_state.alarms is not None
        await hub_state.alarms.check()
        channel = f"dept:{detail['department']['id']}"

        def warnings(c: LiveClient, ch: str) -> list[dict[str, Any]]:
            return [
                e
                for e in c.events.get(ch, [])
                if e["data"]["id"] == case_id and e["data"]["event"]["action"] == "deadline_warning"
            ]

        await mine.wait(lambda: len(warnings(mine, channel)) == 1)
        assert warnings(mine, channel)[0]["data"]["countdown"]["level"] == "warning"
        await asyncio.sleep(0.5)
        assert all(e["data"]["id"] != case_id for evs in theirs.events.values() for e in evs), (
            "another department's board received the alarm"
        )
    finally:
        for c in clients:
            await c.close()


async def test_urgent_cases_run_on_the_urgent_limit(hub_state: HubState, login: Any) -> None:
    clock = Clock(at(9))
    inject(hub_state, clock)
    case_id = await four_hour_case(hub_state, clock, urgent=True)
    detail = await hub_state.cases.get(wf.Actor(1, wf.Role.ADMIN), case_id)
    # CITYHUB_URGENT_LIMIT defaults to 2 working hours: due 11:00, not 15:30.
    assert detail["is_urgent"] is True and detail["deadline"] == at(11)
    # The seat marks a reported case urgent when registering it.
    sup, seat = await login("sup01"), await login("seat1")
    case = await report(sup)
    assert case["is_urgent"] is False
    r = await seat.act(case["id"], "register", urgent=True)
    assert r.status_code == 200 and r.json()["is_urgent"] is True
    # Only the reporter, register and dispatch may mark it.
    r = await seat.act(case["id"], "escalate", note="催办", urgent=False)
    assert r.status_code == 422 and r.json()["error"]["code"] == "urgent_not_allowed"


async def test_open_alarms_are_listed_and_departments_see_theirs(
    hub_state: HubState, login: Any
) -> None:
    clock = Clock(at(9))
    inject(hub_state, clock)
    case_id = await four_hour_case(hub_state, clock)
    clock.now = at(12, 30)
    assert hub_state.alarms is not None
    await hub_state.alarms.check()
    disp: Api = await login("dispatch1")
    r = await disp.get("/api/alarms")
    assert r.status_code == 200, r.text
    mine = [a for a in r.json()["items"] if a["case_id"] == case_id]
    assert [(a["kind"], a["label"], a["share"]) for a in mine] == [("warning", "黄灯预警", 0.75)]
    dep_id = mine[0]["department"]["id"]
    own = await dept_user_for(login, dep_id)
    r = await own.get("/api/alarms")
    assert r.status_code == 200
    assert case_id in [a["case_id"] for a in r.json()["items"]]
    assert {a["department"]["id"] for a in r.json()["items"]} == {dep_id}
    sup = await login("sup01")
    r = await sup.get("/api/alarms")
    assert r.status_code == 403 and r.json()["error"]["message"]


async def test_a_paused_countdown_through_the_service(hub_state: HubState) -> None:
    """With CITYHUB_DEADLINE_PAUSE=defer,extension: a deferral keeps the time left and the
    resumption restores it (its event's data.deadline, which the evaluation reads, says so); no
    alarm fires while paused; a denied extension restores the time left at the request."""
    svc = hub_state.cases
    svc.policy = parse_policy("0.75,1.0", "defer,extension", "overdue")
    clock = Clock(at(9))
    inject(hub_state, clock)
    case_id = await four_hour_case(hub_state, clock)  # due Monday 15:30
    async with connect(hub_state.pool) as conn:
        admin = int(await conn.fetchval("SELECT id FROM users WHERE username = 'admin'"))
    actor = wf.Actor(admin, wf.Role.ADMIN)

    async def act(when: datetime, cmd: wf.Command) -> dict[str, Any]:
        clock.now = when
        detail = await svc.get(actor, case_id)
        await svc.transition(actor, case_id, detail["version"], cmd)
        return await svc.get(actor, case_id)

    await act(at(9, 10), wf.Command(A.ACCEPT))
    # Deferred at 10:00 with 3 working hours left (10:00-12:00, 14:30-15:30).
    d = await act(at(10), wf.Command(A.DEFER, note="等待天气"))
    assert d["countdown"]["paused"] is True and d["countdown"]["remaining_s"] == 3 * 3600
    clock.now = at(17)
    assert hub_state.alarms is not None
    await hub_state.alarms.check()
    assert await alarms_of(hub_state, case_id) == []
    # Resumed Tuesday 09:00: the 3 h left run to Tuesday 12:00.
    d = await act(at(9, day=2), wf.Command(A.RESUME))
    assert d["deadline"] == at(12, day=2)
    assert d["timeline"][-1]["data"]["deadline"] == at(12, day=2).astimezone(UTC).isoformat()
    # The 75 % share is reached when 1 h is left: Tuesday 11:00.
    assert d["countdown"]["next_at"] == at(11, day=2).isoformat()
    # An extension asked at 10:00 (2 h left) pauses; denied at 14:30, the 2 h run to 16:30.
    d = await act(
        at(10, day=2),
        wf.Command(A.REQUEST_EXTENSION, note="材料未到", extension_until=at(18, day=3)),
    )
    assert d["countdown"]["paused"] is True and d["countdown"]["remaining_s"] == 2 * 3600
    clock.now = at(14, day=2)
    await hub_state.alarms.check()
    assert await alarms_of(hub_state, case_id) == []
    d = await act(at(14, 30, day=2), wf.Command(A.DENY_EXTENSION, note="不予延期"))
    assert d["deadline"] == at(16, 30, day=2)
    assert d["timeline"][-1]["data"]["deadline"] == at(16, 30, day=2).astimezone(UTC).isoformat()
    clock.now = at(16, 30, day=2)
    await hub_state.alarms.check()
    # 75 % (1 h left) was 15:30 Tuesday, after the denial: both alarms are due, once each.
    assert [(k, due) for k, _, due, _ in await alarms_of(hub_state, case_id)] == [
        ("warning", at(15, 30, day=2)),
        ("overdue", at(16, 30, day=2)),
    ]


async def test_a_pass_after_one_event_reads_that_case_only_and_its_moved_deadline_fires_once(
    hub_state: HubState,
) -> None:
    clock = Clock(at(9))
    inject(hub_state, clock)
    cases = [await four_hour_case(hub_state, clock) for _ in range(12)]
    moved = cases[5]
    async with connect(hub_state.pool) as conn:
        admin = int(await conn.fetchval("SELECT id FROM users WHERE username = 'admin'"))
        running = len(await alarm_store.running_clocks(conn))
    assert running >= len(cases)
    assert hub_state.alarms is not None and hub_state.alarms.full_reads >= 1  # its start
    # A scheduler of the test's own, passing when the test says (the hub's leader runs too: the
    # database still writes each alarm once).
    mine = Alarms(hub_state.pool, hub_state.dsn, hub_state.cases)
    clock.now = at(9, 30)
    assert await mine.check() == at(12)  # the 75 % moment of every case
    assert (mine.last_read, mine.last_rows) == ("full", running)
    assert await mine.check() is not None
    assert (mine.last_read, mine.last_rows) == ("incremental", 0)

    # The department gets an extension to Tuesday 12:00: three events on one case, one read.
    svc = hub_state.cases
    actor = wf.Actor(admin, wf.Role.ADMIN)
    for cmd in (
        wf.Command(A.ACCEPT),
        wf.Command(A.REQUEST_EXTENSION, note="材料未到", extension_until=at(12, day=2)),
        wf.Command(A.APPROVE_EXTENSION),
    ):
        clock.now += timedelta(minutes=5)
        detail = await svc.get(actor, moved)
        await svc.transition(actor, moved, detail["version"], cmd)
    detail = await svc.get(actor, moved)
    assert detail["deadline"] == at(12, day=2)
    warn_at = datetime.fromisoformat(detail["countdown"]["next_at"])
    assert at(9, day=2) < warn_at < at(12, day=2)
    assert await mine.check() == at(12)
    assert (mine.last_read, mine.last_rows) == ("incremental", 1)
    assert await mine.check() == at(12)
    assert (mine.last_read, mine.last_rows) == ("incremental", 0)

    # Monday: the other cases' alarms fire at 12:00 and 15:30; the moved one's at its old
    # deadline does not.
    for when in (at(12), at(15, 30), at(17)):
        clock.now = when
        await mine.check()
        assert mine.last_read == "incremental"
    assert await alarms_of(hub_state, moved) == []
    assert [k for k, *_ in await alarms_of(hub_state, cases[0])] == ["warning", "overdue"]
    # Tuesday: its warning at the new 75 % moment, its overdue at the new deadline, once each.
    for when in (warn_at - SECOND, warn_at, warn_at, at(12, day=2) - SECOND):
        clock.now = when
        await asyncio.gather(mine.check(), mine.check())
    clock.now = at(12, day=2)
    await asyncio.gather(mine.check(), hub_state.alarms.check(), mine.check())
    clock.now = at(14, 30, day=2)
    await mine.check()
    assert await alarms_of(hub_state, moved) == [
        ("warning", 0.75, warn_at, warn_at),
        ("overdue", 1.0, at(12, day=2), at(12, day=2)),
    ]
    actions = [a for a, _, _ in await events_of(hub_state, moved)]
    assert actions.count("deadline_warning") == actions.count("overdue") == 1
    assert actions.count("escalate") == 1
    # The safety net: with a full read due at every pass, every pass reads every running clock.
    mine.full_every = 0.0
    await mine.check()
    assert mine.last_read == "full"
