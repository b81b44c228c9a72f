"""The posts' indicators (``storage.evaluation_posts``) on a real PostgreSQL: cases driven through
the real workflow by the demo's own seats, dispatchers and a field supervisor (``CaseService``
with an injected clock), calls recorded through ``storage.hotline``; a hand-counted week where
every user's figure and drill-down is counted by hand below; a second week of 核实 (reports the
seat sends to the grid's supervisor before registering them) counted by hand the same way."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.state import HubState
from storage import evaluation_posts as ep
from storage import hotline
from storage.db import connect
from storage.errors import InvalidRequest
from storage.evaluation_regions import parse_polygon
from tests.storage.test_evaluation import WEEK, Driver, at, drive

__all__ = ["drive"]  # the fixture, imported for this module's tests

A = wf.Action


async def test_a_hand_counted_post_week(drive: tuple[Driver, list[int]]) -> None:
    d, (dep, _) = drive
    admin = d.actor
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
    sup = wf.Actor(ids["sup01"], wf.Role.SUPERVISOR, grid_ids=frozenset(c["id"] for c in cells))
    s1, s2 = wf.Actor(ids["seat1"], wf.Role.SEAT), wf.Actor(ids["seat2"], wf.Role.SEAT)
    t1 = wf.Actor(ids["dispatch1"], wf.Role.DISPATCHER)
    t2 = wf.Actor(ids["dispatch2"], wf.Role.DISPATCHER)

    async def by(actor: wf.Actor, case: int, action: wf.Action, when: datetime, **kw: Any) -> None:
        d.actor = actor
        try:
            await d.act(case, action, when, **kw)
        finally:
            d.actor = admin

    async def sup_report(when: datetime, *, quick: bool = False) -> int:
        d.now = when
        d.actor = sup  # the photo is the supervisor's upload
        try:
            photos = (await d.photo(),) if quick else ()
        finally:
            d.actor = admin
        new = NewCase(
            category_id=d.category_id,
            source="supervisor",
            description="岗位评价测试",
            lon=spot[0],
            lat=spot[1],
            quick=quick,
            attachment_ids=photos,
        )
        body = await d.svc.create(sup, new)
        d.version[body["id"]] = body["version"]
        return int(body["id"])

    async def handled(case: int, when: datetime) -> None:
        """The department (as the admin) accepts and feeds back; the seat sends it to check."""
        await d.path(
            case,
            (A.ACCEPT, when, {}),
            (A.FEEDBACK, when + timedelta(minutes=10), {}),
            (A.REQUEST_VERIFY, when + timedelta(minutes=20), {}),
        )

    c1 = await sup_report(at(6, 9))  # s1 registers at 5 min, t1 dispatches at 15, checked in 30
    await by(s1, c1, A.REGISTER, at(6, 9, 5))
    await by(t1, c1, A.DISPATCH, at(6, 9, 20), department_id=dep)
    await handled(c1, at(6, 9, 30))  # verification requested 09:50
    await by(sup, c1, A.VERIFY_PASS, at(6, 10, 20))
    await by(s1, c1, A.CLOSE, at(6, 10, 30))
    c2 = await sup_report(at(6, 9))  # s2 rejects it after 20 min (late): not a valid report
    await by(s2, c2, A.REJECT, at(6, 9, 20))
    c3 = await d.report(at(6, 9))  # s2 registers at 25 min (受理 late, 立案 in time)
    await by(s2, c3, A.REGISTER, at(6, 9, 25))
    await by(t2, c3, A.DISPATCH, at(6, 10, 30), department_id=dep)  # 65 min: late
    await d.act(c3, A.RETURN, at(6, 10, 40))  # ... and returned: t2's was not accurate
    await by(t1, c3, A.DISPATCH, at(6, 11), department_id=dep)  # 20 min after the return
    c4 = await d.report(at(6, 9))  # s1 registers at 40 min (both late), voids it Tuesday
    await by(s1, c4, A.REGISTER, at(6, 9, 40))
    await by(s1, c4, A.VOID, at(7, 9))
    c5 = await sup_report(at(6, 9), quick=True)  # valid without registration; checked in 2 h
    await by(sup, c5, A.QUICK_COMPLETE, at(6, 9, 30))
    await d.act(c5, A.REQUEST_VERIFY, at(6, 10))
    await by(sup, c5, A.VERIFY_PASS, at(6, 12))
    c6 = await sup_report(at(12, 23, 50))  # Sunday night, not registered by the end
    d.now = at(6, 9)  # c7: the admin's, in sup01's grid: only the checks are someone's post
    body = await d.svc.create(
        admin,
        NewCase(d.category_id, "public", "岗位评价测试", lon=spot[0], lat=spot[1]),
    )
    c7 = int(body["id"])
    d.version[c7] = body["version"]
    await d.path(
        c7, (A.REGISTER, at(6, 9, 1), {}), (A.DISPATCH, at(6, 9, 2), {"department_id": dep})
    )
    await handled(c7, at(6, 9, 10))  # verification requested 09:30
    await by(sup, c7, A.VERIFY_FAIL, at(6, 10))  # 30 min: in time
    await d.path(c7, (A.FEEDBACK, at(6, 11), {}), (A.REQUEST_VERIFY, at(6, 12), {}))
    await by(sup, c7, A.VERIFY_PASS, at(6, 15))  # 3 h: late, so the case is not on time
    # -- the hotline: agent1 answers two calls in the week (one made c3), one the week before.
    async with connect(d.state.pool) as conn:
        calls = []
        for answered, case in ((at(6, 9), c3), (at(6, 10), None), (at(5, 9), c4)):
            call = await hotline.create_call(conn, caller="13800000000", arrived_at=answered)
            await hotline.mark_answered(conn, call.id, ids["agent1"], answered)
            if case is not None:
                await hotline.link_case(conn, call.id, case)
            calls.append(call.id)

    # By hand:
    #   sup01: 上报 c1 c2 c5 c6; 有效 c1 (registered), c5 (quick); 核查 c1 (30 min), c5 (2 h),
    #     c7 (30 min, then 3 h); 按时核查 c1.
    #   seat1: 受理 c1 (5 min), c4 (40 min); 按时受理 c1; 立案 c1 c4; 按时立案 c1; 准确 c1 (c4 voided).
    #   seat2: 受理 c2 (20 min), c3 (25 min); 按时受理 none; 立案 c3, in time (25 <= 30), accurate.
    #   dispatch1: 派遣 c1 (15 min), c3 (20 min after the return); both in time and accurate.
    #   dispatch2: 派遣 c3 (65 min), returned: neither.
    #   agent1: 接听 the two calls of the week; 建案 c3.
    want: dict[tuple[ep.Post, str], dict[str, list[int]]] = {
        ("supervisor", "sup01"): {
            "reported": [c1, c2, c5, c6],
            "valid": [c1, c5],
            "confirmed": [],
            "confirmed_on_time": [],
            "checked": [c1, c5, c7],
            "checked_on_time": [c1],
        },
        ("seat", "seat1"): {
            "decided": [c1, c4],
            "decided_on_time": [c1],
            "registered": [c1, c4],
            "registered_on_time": [c1],
            "registered_accurate": [c1],
        },
        ("seat", "seat2"): {
            "decided": [c2, c3],
            "decided_on_time": [],
            "registered": [c3],
            "registered_on_time": [c3],
            "registered_accurate": [c3],
        },
        ("dispatcher", "dispatch1"): {
            "dispatched": [c1, c3],
            "dispatched_on_time": [c1, c3],
            "dispatched_accurate": [c1, c3],
        },
        ("dispatcher", "dispatch2"): {
            "dispatched": [c3],
            "dispatched_on_time": [],
            "dispatched_accurate": [],
        },
        ("agent", "agent1"): {"answered": calls[:2], "cases_made": [c3]},
    }
    async with connect(d.state.pool) as conn:
        tables = {p: await ep.post_indicators(conn, *WEEK, p) for p in ep.POSTS}
        for (post, username), figures in want.items():
            row = next(r for r in tables[post] if r.user_id == ids[username])
            figures = {k: sorted(v) for k, v in figures.items()}
            assert row.counts == {k: len(v) for k, v in figures.items()}, username
            for fig, cases in figures.items():
                got = await ep.post_drill_down(conn, post, fig, *WEEK, user_id=ids[username])
                assert got == cases, (username, fig)
        named = {ids[u] for _, u in want}
        for rows in tables.values():  # everyone else of each post: zeros
            assert all(not any(r.counts.values()) for r in rows if r.user_id not in named)
        assert {r.user_id for r in tables["seat"]} >= {ids["seat1"], ids["seat2"], ids["seat3"]}
        sup_row = next(r for r in tables["supervisor"] if r.user_id == ids["sup01"])
        assert sup_row.rates() == {
            "valid_rate": Fraction(2, 4),
            "confirm_on_time_rate": None,  # no 核实 this week: no rate, not 0 %
            "check_on_time_rate": Fraction(1, 3),
        }
        seat2 = next(r for r in tables["seat"] if r.user_id == ids["seat2"])
        assert seat2.rates()["accept_on_time_rate"] == Fraction(0)
        # Other allowances change the on-time figures: 受理 within 30 min makes seat2's both.
        wide = ep.PostAllowances(accept=timedelta(minutes=30))
        only = await ep.post_indicators(conn, *WEEK, "seat", allowances=wide, user_id=ids["seat2"])
        assert [r.user_id for r in only] == [ids["seat2"]]
        assert only[0].counts["decided_on_time"] == 2
        # The admin acted in every role and is nobody's post.
        assert all(r.user_id != admin.user_id for rows in tables.values() for r in rows)


async def test_a_hand_counted_confirmation_week(drive: tuple[Driver, list[int]]) -> None:
    """核实数 / 按时核实数 / 按时核实率: answers by sup01 in the week, each timed from the
    ``request_confirm`` it answered (30 min by default)."""
    d, _deps = drive
    admin = d.actor
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
    sup = wf.Actor(ids["sup01"], wf.Role.SUPERVISOR, grid_ids=frozenset(c["id"] for c in cells))
    seat = wf.Actor(ids["seat1"], wf.Role.SEAT)

    async def public(when: datetime) -> int:
        """A public report the seat files at the spot (in sup01's grid)."""
        d.now = when
        body = await d.svc.create(
            seat, NewCase(d.category_id, "public", "核实测试", lon=spot[0], lat=spot[1])
        )
        assert body["grid"]["id"] in sup.grid_ids
        d.version[body["id"]] = body["version"]
        return int(body["id"])

    async def by(actor: wf.Actor, case: int, action: wf.Action, when: datetime, **kw: Any) -> None:
        d.actor = actor
        try:
            await d.act(case, action, when, **kw)
        finally:
            d.actor = admin

    async def state(case: int) -> str:
        async with connect(d.state.pool) as conn:
            return str(await conn.fetchval("SELECT state FROM cases WHERE id = $1", case))

    k1 = await public(at(6, 9))  # 属实 in 20 min, then registered
    await by(seat, k1, A.REQUEST_CONFIRM, at(6, 9, 5))
    assert await state(k1) == "confirming"
    d.actor = sup  # the site photo is the supervisor's upload
    try:
        photo = await d.photo()
    finally:
        d.actor = admin
    await by(sup, k1, A.CONFIRM_PASS, at(6, 9, 25), attachment_ids=(photo,))
    assert await state(k1) == "reported"
    await by(seat, k1, A.REGISTER, at(6, 9, 30))
    k2 = await public(at(6, 9))  # 不属实 after 60 min (late), then rejected
    await by(seat, k2, A.REQUEST_CONFIRM, at(6, 9, 10))
    await by(sup, k2, A.CONFIRM_FAIL, at(6, 10, 10))
    await by(seat, k2, A.REJECT, at(6, 10, 20))
    k3 = await public(at(6, 9))  # 不属实 in 10 min, sent again, 属实 after 70 min: not on time
    await by(seat, k3, A.REQUEST_CONFIRM, at(6, 9))
    await by(sup, k3, A.CONFIRM_FAIL, at(6, 9, 10))
    await by(seat, k3, A.REQUEST_CONFIRM, at(6, 9, 20))
    await by(sup, k3, A.CONFIRM_PASS, at(6, 10, 30))
    k4 = await public(at(12, 23, 30))  # asked Sunday night, answered next Monday: not this week
    await by(seat, k4, A.REQUEST_CONFIRM, at(12, 23, 40))
    await by(sup, k4, A.CONFIRM_PASS, at(13, 0, 5))
    k5 = await public(at(5, 23, 30))  # asked before the week, answered in it after 20 min
    await by(seat, k5, A.REQUEST_CONFIRM, at(5, 23, 50))
    await by(sup, k5, A.CONFIRM_PASS, at(6, 0, 10))
    k6 = await public(at(6, 9))  # asked, never answered: nobody's
    await by(seat, k6, A.REQUEST_CONFIRM, at(6, 9, 1))
    k7 = await public(at(6, 9))  # answered by the admin: no post's
    await by(seat, k7, A.REQUEST_CONFIRM, at(6, 9, 2))
    await d.act(k7, A.CONFIRM_PASS, at(6, 9, 3))
    assert await state(k6) == "confirming"

    # By hand: sup01 核实 k1 (20 min), k2 (60 min), k3 (10 min, then 70 min), k5 (20 min);
    # 按时核实 k1, k5 (30 min each at most); with 90 min allowed, k2 and k3 too.
    async with connect(d.state.pool) as conn:
        (row,) = await ep.post_indicators(conn, *WEEK, "supervisor", user_id=ids["sup01"])
        assert (row.count("confirmed"), row.count("confirmed_on_time")) == (4, 2)
        assert row.rates()["confirm_on_time_rate"] == Fraction(2, 4)
        assert (row.count("reported"), row.count("checked")) == (0, 0)  # the seat's reports
        for fig, cases in (("confirmed", [k1, k2, k3, k5]), ("confirmed_on_time", [k1, k5])):
            got = await ep.post_drill_down(conn, "supervisor", fig, *WEEK, user_id=ids["sup01"])
            assert got == sorted(cases), fig
        wide = ep.PostAllowances(confirm=timedelta(minutes=90))
        (row,) = await ep.post_indicators(
            conn, *WEEK, "supervisor", allowances=wide, user_id=ids["sup01"]
        )
        assert row.count("confirmed_on_time") == 4
        got = await ep.post_drill_down(
            conn, "supervisor", "confirmed_on_time", *WEEK, user_id=ids["sup01"], allowances=wide
        )
        assert got == sorted([k1, k2, k3, k5])
        # The next week holds k4's answer (25 min: on time) and nothing else of sup01's.
        nxt = (WEEK[1], WEEK[1] + timedelta(days=7))
        (row,) = await ep.post_indicators(conn, *nxt, "supervisor", user_id=ids["sup01"])
        assert (row.count("confirmed"), row.count("confirmed_on_time")) == (1, 1)
        assert await ep.post_drill_down(
            conn, "supervisor", "confirmed", *nxt, user_id=ids["sup01"]
        ) == [k4]


def test_allowances_parse() -> None:
    default = ep.PostAllowances()
    assert ep.PostAllowances.parse("") == default
    assert ep.PostAllowances.parse(" confirm=45 , check=90 ") == ep.PostAllowances(
        check=timedelta(minutes=90), confirm=timedelta(minutes=45)
    )
    full = ep.PostAllowances.parse("accept=10,register=30,dispatch=30,check=60,confirm=30")
    assert full == default
    for bad in ("confirm", "confirm=", "confirm=0", "confirm=-5", "confirm=1.5", "核实=30",
                "confirm=30,confirm=40", "accept=10081", "confirm=３０", "x" * 501):  # fmt: skip
        with pytest.raises(ValueError):
            ep.PostAllowances.parse(bad)


async def test_refusals(hub_state: HubState) -> None:
    async with connect(hub_state.pool) as conn:
        with pytest.raises(InvalidRequest) as exc:
            await ep.post_indicators(conn, *WEEK, "mayor")  # type: ignore[arg-type]
        assert exc.value.code == "bad_post"
        with pytest.raises(InvalidRequest) as exc:
            await ep.post_drill_down(conn, "seat", "dispatched", *WEEK, user_id=1)
        assert exc.value.code == "unknown_indicator"
