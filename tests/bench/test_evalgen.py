"""The benchmark's data generator against the workflow (bench/evaluation.py generates its cases
with ``hub.demo.load_demo``): generated histories replayed move by move through ``CaseService``
(the clock set to each move's instant, each move by the user who made it) give the same rows,
and every evaluation figure takes the replayed cases exactly where it takes the generated ones.

The generated cases are the template database's demo city (tests/conftest.py loads it with the
same generator); a few hundred of them are replayed into the same database: every urgent (紧急) and
every confirmed (核实) one, and every k-th of the rest. The figures compared are the city's, the
urgent cases' and the supervisors' 核实数 / 按时核实数."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.cases.service import CaseService, NewCase
from hub.core import workflow as wf
from hub.state import HubState
from hub.web.auth import make_actor
from storage import cases as q
from storage import evaluation as ev
from storage import evaluation_posts as ep
from storage import evaluation_sources as es
from storage.db import connect
from storage.users import list_users
from tests.helpers import png_bytes

TZ = ZoneInfo("Asia/Shanghai")
A = wf.Action
REPLAYED = 300
#: Columns that name the row rather than describe the case.
IDENTITY = {"id", "case_no", "search", "duplicate_of"}
#: When the running clock was set: the service sets it, the demo leaves it empty (its clocks predate
#: the alarm scheduler, docs/architecture.md); ``time_limit_s`` and ``paused_remaining_s`` compare.
COUNTDOWN = {"clock_since"}
CONFIRM_ACTIONS = ("request_confirm", "confirm_pass", "confirm_fail")


@pytest.fixture
async def quiet_state(fresh_dsn: str, shared_data_dir: Any) -> AsyncIterator[HubState]:
    """A hub state without the live core (no relay reading every event back meanwhile)."""
    from hub.web.app import build_state, close_state
    from tests.conftest import test_settings

    state = await build_state(test_settings(shared_data_dir, fresh_dsn), live=False)
    try:
        yield state
    finally:
        await close_state(state)


class Replayer:
    def __init__(self, state: HubState, actors: dict[int, wf.Actor]) -> None:
        self.now = datetime.now(UTC)
        self.state = state
        self.svc = CaseService(
            state.pool, state.catalog_ref, state.cases.calendar, clock=lambda: self.now
        )
        self.actors = actors
        self.blob = state.attachments.put(png_bytes(10, 20, 30), kind="photo")
        self.ids: dict[int, int] = {}

    async def photos(self, n: int, actor: wf.Actor) -> tuple[int, ...]:
        out = []
        async with connect(self.state.pool) as conn:
            for _ in range(n):
                row = await q.insert_attachment(
                    conn,
                    sha256=self.blob.sha256,
                    media_type=self.blob.media_type,
                    size=self.blob.size,
                    kind="photo",
                    original_name="p.png",
                    uploaded_by=actor.user_id,
                )
                out.append(row.id)
        return tuple(out)

    async def replay(self, case: dict[str, Any], events: list[dict[str, Any]]) -> int:
        first = events[0]
        actor = self.actors[first["actor_id"]]
        self.now = first["at"]
        body = await self.svc.create(
            actor,
            NewCase(
                category_id=case["category_id"],
                source=case["source"],
                description=case["description"],
                address=case["address"],
                lon=case["lon"],
                lat=case["lat"],
                contact_name=case["contact_name"],
                contact_phone=case["contact_phone"],
                component_id=case["component_id"],
                quick=case["is_quick"],
                attachment_ids=await self.photos(len(first["attachment_ids"]), actor),
                urgent=bool(first["data"].get("urgent", False)),
            ),
        )
        cid = int(body["id"])
        self.ids[case["id"]] = cid
        version = 1
        for e in events[1:]:
            actor = self.actors[e["actor_id"]]
            self.now = e["at"]
            d = e["data"]
            dup = d.get("duplicate_of")
            cmd = wf.Command(
                wf.Action(e["action"]),
                note=e["note"],
                department_id=d.get("department_id"),
                extension_until=(
                    datetime.fromisoformat(d["extension_until"]) if "extension_until" in d else None
                ),
                reject_reason=wf.RejectReason(d["reject_reason"]) if "reject_reason" in d else None,
                duplicate_of=None if dup is None else self.ids.get(dup, dup),
                attachment_ids=await self.photos(len(e["attachment_ids"]), actor),
                urgent=d.get("urgent"),
            )
            event = await self.svc.transition(actor, cid, version, cmd)
            version = event.version
        return cid


def event_view(e: dict[str, Any], ids: dict[int, int]) -> tuple[Any, ...]:
    data = dict(e["data"])
    if "duplicate_of" in data:
        data["duplicate_of"] = ids.get(data["duplicate_of"], data["duplicate_of"])
    note = e["note"] if e["version"] > 1 else ""  # the report's note is the generator's text
    return (
        e["version"],
        e["action"],
        e["at"],
        e["from_state"],
        e["to_state"],
        note,
        data,
        len(e["attachment_ids"]),
        e["department_id"],
        e["grid_id"],
    )


async def test_generated_histories_are_what_the_workflow_writes(quiet_state: HubState) -> None:
    state = quiet_state
    async with connect(state.pool) as conn:
        actors = {u.id: make_actor(u, state.catalog) for u in await list_users(conn)}
        total = await conn.fetchval("SELECT count(*) FROM cases")
        # Every urgent or confirmed case, and every k-th of the others, so the sample spans the
        # whole history and every fate.
        marked = {
            r["case_id"]
            for r in await conn.fetch(
                "SELECT DISTINCT case_id FROM case_events"
                " WHERE data ? 'urgent' OR action = ANY($1::text[])",
                list(CONFIRM_ACTIONS),
            )
        }
        step = max(1, total // REPLAYED)
        cases = [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM cases WHERE id % $1 = 0 OR id = ANY($2::bigint[]) ORDER BY id",
                step,
                list(marked),
            )
        ]
        cases = [c for c in cases if c["id"] in marked] + [
            c for c in cases if c["id"] not in marked
        ][: max(0, REPLAYED - len(marked))]
        cases.sort(key=lambda c: c["id"])
        events: dict[int, list[dict[str, Any]]] = {c["id"]: [] for c in cases}
        for r in await conn.fetch(
            "SELECT * FROM case_events WHERE case_id = ANY($1::bigint[]) ORDER BY case_id, version",
            list(events),
        ):
            events[r["case_id"]].append(dict(r))
    assert len(cases) >= REPLAYED * 0.9
    actions = {e["action"] for evs in events.values() for e in evs}
    # The sample has the moves the indicators read.
    assert {"report", "register", "dispatch", "feedback", "close", "quick_report"} <= actions
    assert sum(1 for evs in events.values() for e in evs if e["department_id"] is not None) > 0
    # ... urgent cases marked at each step and un-marked, and 核实 with both answers, one late.
    marks = [(e["action"], e["data"]["urgent"]) for evs in events.values() for e in evs
             if "urgent" in e["data"]]  # fmt: skip
    assert {("report", True), ("register", True), ("dispatch", True), ("register", False)} <= set(
        marks
    ), marks
    assert {"request_confirm", "confirm_pass", "confirm_fail"} <= actions
    assert any(c["state"] == "confirming" for c in cases)
    assert any(c["is_urgent"] and c["time_limit_s"] == 7200 for c in cases)
    answers = [
        (evs[i]["at"] - evs[i - 1]["at"]).total_seconds()
        for evs in events.values()
        for i, e in enumerate(evs)
        if e["action"] in ("confirm_pass", "confirm_fail")
    ]
    assert min(answers) < 30 * 60 < max(answers), answers

    rp = Replayer(state, actors)
    for case in cases:
        await rp.replay(case, events[case["id"]])

    async with connect(state.pool) as conn:
        for case in cases:
            new_id = rp.ids[case["id"]]
            replayed = dict(await conn.fetchrow("SELECT * FROM cases WHERE id = $1", new_id))
            got = [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM case_events WHERE case_id = $1 ORDER BY version", new_id
                )
            ]
            assert [event_view(e, rp.ids) for e in got] == [
                event_view(e, rp.ids) for e in events[case["id"]]
            ], case["id"]
            assert {k: v for k, v in replayed.items() if k not in IDENTITY | COUNTDOWN} == {
                k: v for k, v in case.items() if k not in IDENTITY | COUNTDOWN
            }, case["id"]

    # Every figure of every month of the history, and of the whole of it: the replayed cases are
    # in exactly the lists the generated ones are in.
    first = min(e["at"] for evs in events.values() for e in evs).astimezone(TZ).date()
    last = max(e["at"] for evs in events.values() for e in evs).astimezone(TZ).date()
    periods = [(datetime.combine(first, datetime.min.time(), TZ), datetime.now(TZ) + timedelta(1))]
    day = first.replace(day=1)
    while day <= last:
        periods.append(ev.period_bounds("month", day, TZ))
        day = periods[-1][1].date()
    generated, replays = set(rp.ids), set(rp.ids.values())
    seen: dict[str, int] = {"city": 0, "urgent": 0, "confirmed": 0, "confirmed_on_time": 0}

    def same(ids: list[int], what: Any, family: str) -> None:
        want = sorted(rp.ids[c] for c in ids if c in generated)
        assert sorted(c for c in ids if c in replays) == want, what
        seen[family] += len(want)

    supervisors = sorted(u for u, a in actors.items() if a.role is wf.Role.SUPERVISOR)
    async with connect(state.pool) as conn:
        for start, end in periods:
            for ind in ev.Indicator:
                same(await ev.drill_down(conn, ind, start, end), (ind, start), "city")
            for fig in es.UrgentFigure:
                same(await es.urgent_drill_down(conn, fig, start, end), (fig, start), "urgent")
            for uid in supervisors:
                for pf in (ep.PostFigure.CONFIRMED, ep.PostFigure.CONFIRMED_ON_TIME):
                    ids = await ep.post_drill_down(conn, "supervisor", pf, start, end, user_id=uid)
                    same(ids, (pf, uid, start), pf.value)
    assert seen["city"] > REPLAYED, "the sample is counted in the figures"
    assert all(seen.values()), seen
    assert seen["confirmed_on_time"] < seen["confirmed"], seen
