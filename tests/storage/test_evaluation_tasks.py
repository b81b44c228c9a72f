"""The posts' tasks (migration 0022: ``case_tasks`` and its bookkeeping ``case_task_heads``),
which the trigger on ``case_events`` keeps in each event's transaction and the posts' figures
(``storage.evaluation_posts``) read.

Two derivations must agree: the trigger, event by event, and ``cityhub_case_tasks_rebuild()``,
set-based over the whole log. They are compared on the demo city (its generated histories, COPYd:
registrations and rejections, returns and re-dispatches, reworks, voids, quick cases) and on cases
driven through ``CaseService`` by the demo's own seats, dispatchers and field supervisor: a return
and a re-dispatch by the same dispatcher and by another, a failed check and a second one, a void
after registration, a confirmation sent twice, a quick report, a rejection, a report registered
the next week. A driven history's rows are checked against what happened to it, and every user's
figures and lists, over periods cut at every moment of those histories, are compared with what
the figures' previous definition gives (``_BEFORE``: the events of the period, with per-event
lookups of the request a check answered and of the returns after a dispatch)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.state import HubState
from storage import evaluation_posts as ep
from storage.db import connect
from storage.evaluation_regions import parse_polygon
from tests.storage.test_evaluation import WEEK, Driver, at, drive

__all__ = ["drive"]  # the fixture, imported for this module's tests

A = wf.Action

_TASKS = "SELECT * FROM case_tasks ORDER BY case_id, version"
_HEADS = "SELECT * FROM case_task_heads ORDER BY case_id"

#: The posts' members as storage/evaluation_posts.py computed them before migration 0022 (its
#: ``_POST_MEMBERS``, verbatim): the reference the figures read from case_tasks must equal.
_BEFORE = """
WITH kinds (action, kind) AS (
    VALUES ('report', 'report'), ('quick_report', 'report'), ('register', 'decide'),
           ('reject', 'decide'), ('register', 'register'), ('dispatch', 'dispatch'),
           ('verify_pass', 'check'), ('verify_fail', 'check'),
           ('confirm_pass', 'confirm'), ('confirm_fail', 'confirm')
),
p_ev AS (
    -- the user's events of the period; what came before or after them is read from the per-case
    -- summary of migration 0016 (case_facts, case_spans) where it holds it, else by the case's
    -- own events (the request a check or a confirmation answered)
    SELECT e.case_id, e.version, e.action, e.at, e.actor_id, u.role, k.kind,
           CASE WHEN k.kind IN ('decide', 'register') THEN f.reported_at
                WHEN k.kind = 'dispatch' THEN coalesce((
                    SELECT max(r.at) FROM case_spans r
                     WHERE r.case_id = e.case_id AND r.kind = 'return' AND r.version < e.version),
                    f.registered_at)
                WHEN k.kind = 'check' THEN (
                    SELECT r.at FROM case_events r
                     WHERE r.case_id = e.case_id AND r.version < e.version
                       AND r.action = 'request_verify'
                     ORDER BY r.version DESC LIMIT 1)
                WHEN k.kind = 'confirm' THEN (
                    SELECT r.at FROM case_events r
                     WHERE r.case_id = e.case_id AND r.version < e.version
                       AND r.action = 'request_confirm'
                     ORDER BY r.version DESC LIMIT 1)
           END AS since,
           CASE k.kind WHEN 'decide' THEN $3::interval WHEN 'register' THEN $4::interval
                       WHEN 'dispatch' THEN $5::interval WHEN 'check' THEN $6::interval
                       WHEN 'confirm' THEN $7::interval
           END AS allowed,
           CASE WHEN k.kind = 'report' THEN e.action = 'quick_report'
                                            OR coalesce(f.registered_at < $2, false)
                -- voided before the end: ended, and not by a close (closed is terminal)
                WHEN k.kind = 'register' THEN NOT (f.ended_at < $2 AND f.closed_at IS NULL)
                                              IS TRUE
                WHEN k.kind = 'dispatch' THEN NOT EXISTS (
                    SELECT 1 FROM case_spans r
                     WHERE r.case_id = e.case_id AND r.kind = 'return'
                       AND r.version > e.version AND r.at < $2
                       AND NOT EXISTS (
                            SELECT 1 FROM case_spans n
                             WHERE n.case_id = e.case_id AND n.kind = 'deadline'
                               AND n.action = 'dispatch'
                               AND n.version > e.version AND n.version < r.version))
           END AS good
      FROM case_events e
      JOIN kinds k ON k.action = e.action
      JOIN users u ON u.id = e.actor_id AND u.role = $8
      JOIN case_facts f ON f.case_id = e.case_id
     WHERE e.at >= $1 AND e.at < $2
),
p_case AS (
    SELECT role, kind, actor_id, case_id,
           bool_and(at - since <= allowed) AS in_time, bool_and(good) AS good
      FROM p_ev GROUP BY role, kind, actor_id, case_id
),
post_members (post, indicator, user_id, item_id) AS (
    SELECT 'supervisor', 'reported', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'report'
    UNION ALL
    SELECT 'supervisor', 'valid', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'report' AND good
    UNION ALL
    SELECT 'supervisor', 'confirmed', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'confirm'
    UNION ALL
    SELECT 'supervisor', 'confirmed_on_time', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'confirm' AND in_time
    UNION ALL
    SELECT 'supervisor', 'checked', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'check'
    UNION ALL
    SELECT 'supervisor', 'checked_on_time', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'check' AND in_time
    UNION ALL
    SELECT 'seat', 'decided', actor_id, case_id FROM p_case WHERE role = 'seat' AND kind = 'decide'
    UNION ALL
    SELECT 'seat', 'decided_on_time', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'decide' AND in_time
    UNION ALL
    SELECT 'seat', 'registered', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'register'
    UNION ALL
    SELECT 'seat', 'registered_on_time', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'register' AND in_time
    UNION ALL
    SELECT 'seat', 'registered_accurate', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'register' AND good
    UNION ALL
    SELECT 'dispatcher', 'dispatched', actor_id, case_id FROM p_case
     WHERE role = 'dispatcher' AND kind = 'dispatch'
    UNION ALL
    SELECT 'dispatcher', 'dispatched_on_time', actor_id, case_id FROM p_case
     WHERE role = 'dispatcher' AND kind = 'dispatch' AND in_time
    UNION ALL
    SELECT 'dispatcher', 'dispatched_accurate', actor_id, case_id FROM p_case
     WHERE role = 'dispatcher' AND kind = 'dispatch' AND good
    UNION ALL
    SELECT 'agent', 'answered', h.agent_id, h.id FROM hotline_calls h
      JOIN users u ON u.id = h.agent_id AND u.role = 'agent'
     WHERE $8::text = 'agent' AND h.answered_at >= $1 AND h.answered_at < $2
    UNION ALL
    SELECT DISTINCT 'agent', 'cases_made', h.agent_id, h.case_id FROM hotline_calls h
      JOIN users u ON u.id = h.agent_id AND u.role = 'agent'
     WHERE h.answered_at >= $1 AND h.answered_at < $2 AND h.case_id IS NOT NULL
)
"""
_BEFORE_LISTS = (
    _BEFORE
    + "SELECT user_id, indicator, array_agg(item_id ORDER BY item_id) AS ids FROM post_members"
    + " WHERE post = $8 GROUP BY user_id, indicator"
)


async def snapshot(state: HubState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with connect(state.pool) as conn:
        return (
            [dict(r) for r in await conn.fetch(_TASKS)],
            [dict(r) for r in await conn.fetch(_HEADS)],
        )


async def rebuilt(state: HubState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with connect(state.pool) as conn:
        await conn.execute("SELECT cityhub_case_tasks_rebuild()")
    return await snapshot(state)


Lists = dict[tuple[str, int, str], list[int]]


async def before(state: HubState, start: datetime, end: datetime) -> Lists:
    """Every (post, user, figure) list of the period by the previous definition (non-empty ones)."""
    allow = ep.PostAllowances()
    args = (start, end, allow.accept, allow.register, allow.dispatch, allow.check, allow.confirm)
    out: Lists = {}
    async with connect(state.pool) as conn:
        for post in ep.POSTS:
            for r in await conn.fetch(_BEFORE_LISTS, *args, post):
                out[(post, int(r["user_id"]), str(r["indicator"]))] = list(r["ids"])
    return out


async def now(state: HubState, start: datetime, end: datetime, *, lists: bool = True) -> Lists:
    """The same from the figures of case_tasks: the counts, and (``lists``) each list."""
    out: Lists = {}
    async with connect(state.pool) as conn:
        for post in ep.POSTS:
            for row in await ep.post_indicators(conn, start, end, post):
                for fig, n in row.counts.items():
                    if not n:
                        continue
                    ids = (
                        await ep.post_drill_down(conn, post, fig, start, end, user_id=row.user_id)
                        if lists
                        else list(range(n))
                    )
                    assert len(ids) == n, (post, row.user_id, fig)
                    out[(post, row.user_id, fig)] = ids
    return out


def lengths(lists: Lists) -> dict[tuple[str, int, str], int]:
    return {k: len(v) for k, v in lists.items()}


@dataclass
class Crew:
    """The demo's own post holders, and the driver acting as each of them in turn."""

    d: Driver
    sup: wf.Actor
    seat1: wf.Actor
    seat2: wf.Actor
    disp1: wf.Actor
    disp2: wf.Actor
    spot: tuple[float, float]
    dep: int

    async def by(
        self, actor: wf.Actor, case: int, action: wf.Action, when: datetime, **kw: Any
    ) -> None:
        admin, self.d.actor = self.d.actor, actor
        try:
            await self.d.act(case, action, when, **kw)
        finally:
            self.d.actor = admin

    async def admin(self, case: int, action: wf.Action, when: datetime, **kw: Any) -> None:
        await self.d.act(case, action, when, **kw)

    async def report(self, actor: wf.Actor, when: datetime, *, quick: bool = False) -> int:
        """A report at the spot (in the supervisor's grid), by ``actor``."""
        admin, self.d.actor = self.d.actor, actor
        self.d.now = when
        try:
            photos = (await self.d.photo(),) if quick else ()
            source = "supervisor" if actor is self.sup else "public"
            new = NewCase(
                self.d.category_id,
                source,
                "岗位任务测试",
                lon=self.spot[0],
                lat=self.spot[1],
                quick=quick,
                attachment_ids=photos,
            )
            body = await self.d.svc.create(actor, new)
        finally:
            self.d.actor = admin
        self.d.version[body["id"]] = body["version"]
        return int(body["id"])


@pytest.fixture
async def crew(drive: tuple[Driver, list[int]]) -> AsyncIterator[Crew]:
    d, (dep, _) = drive
    async with connect(d.state.pool) as conn:
        ids = {
            r["username"]: int(r["id"]) for r in await conn.fetch("SELECT id, username FROM users")
        }
        street = await conn.fetchval(
            "SELECT grid_id FROM user_grids WHERE user_id = $1", ids["sup01"]
        )
        cells = await conn.fetch(
            "SELECT id, boundary::text AS b FROM grids WHERE parent_id = $1 ORDER BY code", street
        )
    ring = parse_polygon(cells[0]["b"])
    spot = (sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring))
    yield Crew(
        d,
        wf.Actor(ids["sup01"], wf.Role.SUPERVISOR, grid_ids=frozenset(c["id"] for c in cells)),
        wf.Actor(ids["seat1"], wf.Role.SEAT),
        wf.Actor(ids["seat2"], wf.Role.SEAT),
        wf.Actor(ids["dispatch1"], wf.Role.DISPATCHER),
        wf.Actor(ids["dispatch2"], wf.Role.DISPATCHER),
        spot,
        dep,
    )


async def test_the_demo_citys_tasks_are_what_the_log_says(hub_state: HubState) -> None:
    tasks, heads = await snapshot(hub_state)
    async with connect(hub_state.pool) as conn:
        n_cases = await conn.fetchval("SELECT count(*) FROM cases")
        kinds = dict(await conn.fetch("SELECT kind, count(*) FROM case_tasks GROUP BY kind"))
        n_repeated = await conn.fetchval("SELECT count(*) FROM case_tasks WHERE repeated")
        n_undone = await conn.fetchval(
            "SELECT count(*) FROM case_tasks WHERE undone_at IS NOT NULL"
        )
        span = await conn.fetchrow("SELECT min(at) AS lo, max(at) AS hi FROM case_events")
    # Every case has its bookkeeping row, and the demo has every task the figures read, repeated
    # ones (re-dispatches, second checks) and undone ones (returned, voided).
    assert len(heads) == n_cases >= 400
    assert set(kinds) == {"report", "decide", "dispatch", "check", "confirm"}
    assert n_repeated > 0 and n_undone > 0
    assert await rebuilt(hub_state) == (tasks, heads)
    # The figures read from the tasks are the previous definition's, over the demo's whole history
    # (with every list) and month by month (the counts).
    whole = (span["lo"], span["hi"] + timedelta(seconds=1))
    want = await before(hub_state, *whole)
    assert want and await now(hub_state, *whole) == want
    start = span["lo"]
    while start < whole[1]:
        end = start + timedelta(days=30)
        assert lengths(await now(hub_state, start, end, lists=False)) == lengths(
            await before(hub_state, start, end)
        ), (start, end)
        start = end


async def test_driven_histories(crew: Crew) -> None:
    c = crew
    # c1: the supervisor's report; registered; dispatched, returned, dispatched again by the same
    # dispatcher; a failed check (rework) and a second, late one; closed.
    c1 = await c.report(c.sup, at(6, 9))
    await c.by(c.seat1, c1, A.REGISTER, at(6, 9, 5))
    await c.by(c.disp1, c1, A.DISPATCH, at(6, 9, 20), department_id=c.dep)
    await c.admin(c1, A.RETURN, at(6, 9, 40), note="非本部门")
    await c.by(c.disp1, c1, A.DISPATCH, at(6, 10), department_id=c.dep)
    await c.admin(c1, A.ACCEPT, at(6, 10, 5))
    await c.admin(c1, A.FEEDBACK, at(6, 10, 20))
    await c.by(c.seat1, c1, A.REQUEST_VERIFY, at(6, 10, 30))
    await c.by(c.sup, c1, A.VERIFY_FAIL, at(6, 11), note="未清理")
    await c.admin(c1, A.FEEDBACK, at(6, 12))
    await c.by(c.seat1, c1, A.REQUEST_VERIFY, at(6, 12, 10))
    await c.by(c.sup, c1, A.VERIFY_PASS, at(6, 14))
    await c.by(c.seat1, c1, A.CLOSE, at(6, 14, 30))
    # c2: a public report the seat sends to 核实 twice (不属实, then 属实 late); registered by
    # the other seat; dispatched by the other dispatcher, returned, re-dispatched; voided Tuesday.
    c2 = await c.report(c.seat1, at(6, 9))
    await c.by(c.seat1, c2, A.REQUEST_CONFIRM, at(6, 9, 5))
    await c.by(c.sup, c2, A.CONFIRM_FAIL, at(6, 9, 20), note="未见问题")
    await c.by(c.seat1, c2, A.REQUEST_CONFIRM, at(6, 9, 30))
    await c.by(c.sup, c2, A.CONFIRM_PASS, at(6, 10, 30))
    await c.by(c.seat2, c2, A.REGISTER, at(6, 10, 40))
    await c.by(c.disp2, c2, A.DISPATCH, at(6, 11), department_id=c.dep)
    await c.admin(c2, A.RETURN, at(6, 11, 30), note="非本部门")
    await c.by(c.disp1, c2, A.DISPATCH, at(6, 12), department_id=c.dep)
    await c.by(c.seat1, c2, A.VOID, at(7, 9))
    # c3: a quick report, checked; c4: the admin's report, rejected; c5: reported Sunday night,
    # registered Monday after the week.
    c3 = await c.report(c.sup, at(6, 9), quick=True)
    await c.by(c.sup, c3, A.QUICK_COMPLETE, at(6, 9, 30))
    await c.by(c.seat1, c3, A.REQUEST_VERIFY, at(6, 10))
    await c.by(c.sup, c3, A.VERIFY_PASS, at(6, 10, 20))
    c4 = await c.d.report(at(6, 9))
    await c.by(c.seat2, c4, A.REJECT, at(6, 9, 50))
    c5 = await c.report(c.sup, at(12, 23, 50))
    await c.by(c.seat1, c5, A.REGISTER, at(13, 0, 10))

    tasks, heads = await snapshot(c.d.state)
    mine = {c1, c2, c3, c4, c5}

    def rows(case: int) -> list[tuple[Any, ...]]:
        return [
            (
                r["kind"],
                r["action"],
                r["actor_id"],
                r["at"],
                r["since"],
                r["valid_at"],
                r["undone_at"],
                r["repeated"],
            )
            for r in tasks
            if r["case_id"] == case
        ]

    sup, s1, s2 = c.sup.user_id, c.seat1.user_id, c.seat2.user_id
    t1, t2, admin = c.disp1.user_id, c.disp2.user_id, c.d.actor.user_id
    assert rows(c1) == [
        ("report", "report", sup, at(6, 9), at(6, 9), at(6, 9, 5), None, False),
        ("decide", "register", s1, at(6, 9, 5), at(6, 9), None, None, False),
        # returned before the next dispatch: not accurate; the next one is timed from the return
        ("dispatch", "dispatch", t1, at(6, 9, 20), at(6, 9, 5), None, at(6, 9, 40), True),
        ("dispatch", "dispatch", t1, at(6, 10), at(6, 9, 40), None, None, True),
        # each check from the request it answered
        ("check", "verify_fail", sup, at(6, 11), at(6, 10, 30), None, None, True),
        ("check", "verify_pass", sup, at(6, 14), at(6, 12, 10), None, None, True),
    ]
    assert rows(c2) == [
        ("report", "report", s1, at(6, 9), at(6, 9), at(6, 10, 40), None, False),
        ("confirm", "confirm_fail", sup, at(6, 9, 20), at(6, 9, 5), None, None, True),
        ("confirm", "confirm_pass", sup, at(6, 10, 30), at(6, 9, 30), None, None, True),
        # voided after its registration: the registration is undone then
        ("decide", "register", s2, at(6, 10, 40), at(6, 9), None, at(7, 9), False),
        ("dispatch", "dispatch", t2, at(6, 11), at(6, 10, 40), None, at(6, 11, 30), True),
        ("dispatch", "dispatch", t1, at(6, 12), at(6, 11, 30), None, None, True),
    ]
    assert rows(c3) == [
        ("report", "quick_report", sup, at(6, 9), at(6, 9), at(6, 9), None, False),  # valid at once
        ("check", "verify_pass", sup, at(6, 10, 20), at(6, 10), None, None, False),
    ]
    assert rows(c4) == [
        ("report", "report", admin, at(6, 9), at(6, 9), None, None, False),
        ("decide", "reject", s2, at(6, 9, 50), at(6, 9), None, None, False),
    ]
    assert rows(c5) == [
        ("report", "report", sup, at(12, 23, 50), at(12, 23, 50), at(13, 0, 10), None, False),
        ("decide", "register", s1, at(13, 0, 10), at(12, 23, 50), None, None, False),
    ]
    h2 = next(h for h in heads if h["case_id"] == c2)
    v2 = {r["action"] + str(r["actor_id"]): r["version"] for r in tasks if r["case_id"] == c2}
    assert (h2["reported_at"], h2["registered_at"], h2["returned_at"]) == (
        at(6, 9),
        at(6, 10, 40),
        at(6, 11, 30),
    )
    assert (h2["dispatch_version"], h2["register_version"]) == (
        v2[f"dispatch{t1}"],
        v2[f"register{s2}"],
    )
    assert h2["confirm_requested_at"] == at(6, 9, 30) and h2["verify_requested_at"] is None
    assert await rebuilt(c.d.state) == (tasks, heads)

    # The figures, against the previous definition, over the week, each day, and periods from the
    # week's start cut just before and just after every moment of these histories.
    async with connect(c.d.state.pool) as conn:
        moments = sorted(
            {
                r["at"]
                for r in await conn.fetch(
                    "SELECT at FROM case_events WHERE case_id = ANY($1::bigint[])", list(mine)
                )
            }
        )
    week = await before(c.d.state, *WEEK)
    assert week[("dispatcher", t1, "dispatched")] == sorted([c1, c2])
    assert week[("dispatcher", t1, "dispatched_accurate")] == [c2]  # c1's first was returned
    assert week[("supervisor", sup, "confirmed")] == [c2]
    assert ("supervisor", sup, "confirmed_on_time") not in week  # the second answer was late
    assert await now(c.d.state, *WEEK) == week
    for day in range(6, 13):
        period = (at(day, 0), at(day + 1, 0))
        assert await now(c.d.state, *period) == await before(c.d.state, *period), day
    for moment in moments:
        for end in (moment, moment + timedelta(seconds=1)):
            if end > WEEK[0]:
                got = await now(c.d.state, WEEK[0], end, lists=False)
                assert lengths(got) == lengths(await before(c.d.state, WEEK[0], end)), end
    # c2's dispatch by dispatch2 was accurate until its return, and is counted so before it.
    cut = (WEEK[0], at(6, 11, 15))
    assert (await now(c.d.state, *cut))[("dispatcher", t2, "dispatched_accurate")] == [c2]
