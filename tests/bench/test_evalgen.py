"""The benchmark's data generator against the workflow (bench/evaluation.py generates its cases
with ``hub.demo.load_demo``): generated histories replayed move by move through ``CaseService``
(the clock set to each move's instant, each move by the user who made it) give the same rows,
and every evaluation figure takes the replayed cases exactly where it takes the generated ones.

The generated cases are the template database's demo city (tests/conftest.py loads it with the
same generator); a few hundred of them are replayed into the same database."""

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
from storage.db import connect
from storage.users import list_users
from tests.helpers import png_bytes

TZ = ZoneInfo("Asia/Shanghai")
A = wf.Action
REPLAYED = 300
#: Columns that name the row rather than describe the case.
IDENTITY = {"id", "case_no", "search", "duplicate_of"}
#: The countdown's columns (migration 0011), which the demo generator does not fold yet and no
#: indicator reads; the deadlines themselves are compared (case row and every event).
COUNTDOWN = {"time_limit_s", "paused_remaining_s", "clock_since"}


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
        # Every k-th generated case, so the sample spans the whole history and every fate.
        step = max(1, total // REPLAYED)
        cases = [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM cases WHERE id % $1 = 0 ORDER BY id LIMIT $2", step, REPLAYED
            )
        ]
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
    seen = 0
    async with connect(state.pool) as conn:
        for start, end in periods:
            for ind in ev.Indicator:
                ids = await ev.drill_down(conn, ind, start, end)
                want = sorted(rp.ids[c] for c in ids if c in generated)
                assert sorted(c for c in ids if c in replays) == want, (ind, start)
                seen += len(want)
    assert seen > REPLAYED, "the sample is counted in the figures"
