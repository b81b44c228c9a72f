"""The evaluation's per-case summary (migration 0016: ``case_facts`` and ``case_spans``), which the
trigger on ``case_events`` keeps in each event's transaction and the indicators read.

Two independent derivations must agree: the trigger, event by event, and
``cityhub_case_facts_rebuild()``, set-based over the whole log. They are compared on the demo city
(its 400 generated histories written with COPY: returns, extensions, deferrals, reworks,
voids, quick cases) and on cases driven through ``CaseService`` one move at a time; and the spans
of a driven history are checked against what happened to it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from hub.core import workflow as wf
from hub.state import HubState
from storage.db import connect, migrate
from tests.conftest import dsn_for
from tests.storage.test_evaluation import Driver, at, drive, m

__all__ = ["drive"]

A = wf.Action

_FACTS = "SELECT * FROM case_facts ORDER BY case_id"
_SPANS = "SELECT * FROM case_spans ORDER BY case_id, version"


async def snapshot(state: HubState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with connect(state.pool) as conn:
        return (
            [dict(r) for r in await conn.fetch(_FACTS)],
            [dict(r) for r in await conn.fetch(_SPANS)],
        )


async def rebuilt(state: HubState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with connect(state.pool) as conn:
        await conn.execute("SELECT cityhub_case_facts_rebuild()")
    return await snapshot(state)


async def test_the_demo_citys_summary_is_what_the_log_says(hub_state: HubState) -> None:
    facts, spans = await snapshot(hub_state)
    async with connect(hub_state.pool) as conn:
        n_cases = await conn.fetchval("SELECT count(*) FROM cases")
        kinds = dict(await conn.fetch("SELECT kind, count(*) FROM case_spans GROUP BY kind"))
    # Every case has its row, and the demo has every kind of span the indicators read.
    assert len(facts) == n_cases >= 400
    assert set(kinds) == {"deadline", "feedback", "deferral", "return"}
    again_facts, again_spans = await rebuilt(hub_state)
    assert again_facts == facts
    assert again_spans == spans


async def test_a_driven_history_in_spans(drive: tuple[Driver, list[int]]) -> None:
    d, (dep_a, dep_b) = drive
    # Dispatched to A, returned, re-dispatched to B, an extension asked and approved, then asked
    # and denied, deferred and resumed, fed back, reworked, fed back again, verified and closed.
    cid = await d.report(at(6, 9))
    until = at(9, 17)
    await d.path(
        cid,
        m(A.REGISTER, at(6, 9, 5)),
        m(A.DISPATCH, at(6, 9, 10), department_id=dep_a),
        m(A.RETURN, at(6, 9, 30), note="非本部门"),
        m(A.DISPATCH, at(6, 10), department_id=dep_b),
        m(A.ACCEPT, at(6, 10, 5)),
        m(A.REQUEST_EXTENSION, at(6, 11), extension_until=until, note="材料未到"),
        m(A.APPROVE_EXTENSION, at(6, 11, 30)),
        m(A.REQUEST_EXTENSION, at(7, 9), extension_until=until + timedelta(days=1), note="再延"),
        m(A.DENY_EXTENSION, at(7, 9, 30), note="不予再延"),
        m(A.DEFER, at(7, 10), note="待天气"),
        m(A.RESUME, at(7, 14, 30)),
        m(A.FEEDBACK, at(7, 15)),
        m(A.REWORK, at(7, 15, 30), note="未清理干净"),
        m(A.FEEDBACK, at(7, 16)),
        m(A.REQUEST_VERIFY, at(7, 16, 10)),
        m(A.VERIFY_PASS, at(7, 16, 20)),
        m(A.CLOSE, at(7, 16, 30)),
    )
    quick = await d.report(at(6, 9), quick=True)
    facts, spans = await snapshot(d.state)
    f = next(r for r in facts if r["case_id"] == cid)
    s = [
        (r["kind"], r["action"], r["at"], r["until"], r["department_id"], r["answered_at"])
        for r in spans
        if r["case_id"] == cid
    ]
    # the case ended on the deadline span in force at its close (the rework's), and only there
    ends = [(r["action"], r["ended_at"], r["closed_at"]) for r in spans if r["case_id"] == cid]
    async with connect(d.state.pool) as conn:
        keys = await conn.fetchrow(
            "SELECT source, category_id, grid_id, is_quick FROM cases WHERE id = $1", cid
        )
        deadlines = {
            r["version"]: r["deadline"]
            for r in await conn.fetch(
                "SELECT version, (data ->> 'deadline')::timestamptz AS deadline FROM case_events"
                " WHERE case_id = $1",
                cid,
            )
        }
        final = await conn.fetchval("SELECT deadline FROM case_spans WHERE case_id = $1"
                                    " ORDER BY version DESC LIMIT 1", cid)  # fmt: skip
    assert s == [
        ("deadline", "dispatch", at(6, 9, 10), at(6, 10), dep_a, at(6, 9, 30)),  # answered by 回退
        ("return", "return", at(6, 9, 30), None, dep_a, None),  # the department that sent it back
        ("deadline", "dispatch", at(6, 10), at(6, 11, 30), dep_b, None),
        ("deadline", "approve_extension", at(6, 11, 30), at(7, 14, 30), dep_b, at(7, 10)),
        ("deferral", "defer", at(7, 10), at(7, 14, 30), None, None),
        ("deadline", "resume", at(7, 14, 30), at(7, 15, 30), dep_b, at(7, 15)),
        ("feedback", "feedback", at(7, 15), at(7, 16), dep_b, None),
        ("deadline", "rework", at(7, 15, 30), None, dep_b, at(7, 16)),
        ("feedback", "feedback", at(7, 16), None, dep_b, None),
    ]
    assert [e for e in ends if e[1] is not None] == [("rework", at(7, 16, 30), at(7, 16, 30))]
    assert {(r["source"], r["category_id"], r["grid_id"], r["is_quick"]) for r in spans
            if r["case_id"] == cid} == {tuple(keys)}  # fmt: skip
    approved = next(r for r in spans if r["case_id"] == cid and r["action"] == "approve_extension")
    assert approved["deadline"] == until  # the approved request's date, not the denied one's
    last_fb = [r for r in spans if r["case_id"] == cid and r["kind"] == "feedback"][-1]
    assert last_fb["deadline"] == final == max(v for v in deadlines.values() if v is not None)
    assert f == {
        "case_id": cid,
        "is_quick": False,
        "reported_at": at(6, 9),
        "registered_at": at(6, 9, 5),
        "first_dispatch_at": at(6, 9, 10),
        "first_dispatch_dep": dep_a,
        "closed_at": at(7, 16, 30),
        "close_dep": dep_b,
        "ended_at": at(7, 16, 30),
        "last_feedback_at": at(7, 16),
        "deadline": final,
        # the open spans, and the last extension asked for (the denied one)
        "deadline_version": next(
            r["version"] for r in spans if r["case_id"] == cid and r["action"] == "rework"
        ),
        "feedback_version": last_fb["version"],
        "deferral_version": None,
        "requested_until": until + timedelta(days=1),
        # the case's keys, fixed at the report (migration 0021)
        "source": keys["source"],
        "category_id": keys["category_id"],
        "grid_id": keys["grid_id"],
    }
    q = next(r for r in facts if r["case_id"] == quick)
    assert q["is_quick"] and q["reported_at"] == at(6, 9) and q["first_dispatch_at"] is None
    assert await rebuilt(d.state) == (facts, spans)


async def test_a_void_ends_a_deferral(drive: tuple[Driver, list[int]]) -> None:
    d, (dep_a, _) = drive
    cid = await d.report(at(6, 9))
    await d.path(
        cid,
        m(A.REGISTER, at(6, 9, 5)),
        m(A.DISPATCH, at(6, 9, 10), department_id=dep_a),
        m(A.ACCEPT, at(6, 9, 20)),
        m(A.DEFER, at(6, 10), note="待施工"),
        m(A.VOID, at(6, 11), note="已拆除"),
    )
    facts, spans = await snapshot(d.state)
    mine = {r["kind"]: r for r in spans if r["case_id"] == cid}
    assert mine["deferral"]["until"] == at(6, 11)
    assert mine["deadline"]["answered_at"] == at(6, 10)  # the deferral answered the deadline
    # voided, not closed: the span says the case ended, and not by a close
    assert mine["deadline"]["ended_at"] == at(6, 11) and mine["deadline"]["closed_at"] is None
    f = next(r for r in facts if r["case_id"] == cid)
    assert f["ended_at"] == at(6, 11) and f["closed_at"] is None
    assert await rebuilt(d.state) == (facts, spans)


#: The tables the case log's triggers write, whose lookups a bulk load plans once per session.
_TRIGGER_TABLES = ("case_facts", "case_spans", "case_urgency", "case_tasks", "case_task_heads")


async def test_a_new_database_does_not_plan_the_summary_as_empty(pg_base: str) -> None:
    """A table ANALYZEd while empty is planned as one page: the triggers' lookups, planned once at
    the first event of a bulk load (the demo city is written in one transaction), would then scan
    the table for every event. The migrations leave a new database's summary tables unanalyzed
    (``reltuples`` -1: planned as at least ten pages, so the lookups use their keys)."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(pg_base)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        pool = await asyncpg.create_pool(dsn_for(pg_base, name), min_size=1, max_size=2)
        try:
            await migrate(pool)
            async with pool.acquire() as conn:
                stats = dict(
                    await conn.fetch(
                        "SELECT relname, reltuples FROM pg_class WHERE relname = ANY($1::text[])",
                        list(_TRIGGER_TABLES),
                    )
                )
        finally:
            await pool.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    assert set(stats) == set(_TRIGGER_TABLES)
    assert {t: n for t, n in stats.items() if n >= 0} == {}
