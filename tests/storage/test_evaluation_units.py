"""The departments' indicators (``storage.evaluation_units``) on a real PostgreSQL, from cases
driven through the real workflow (``CaseService`` with an injected clock, as
``test_evaluation.py`` does): a hand-counted week where every figure of two departments and every
drill-down list is counted by hand below, department scoping, and the refusals."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.core import scoring
from hub.core import workflow as wf
from hub.state import HubState
from storage import evaluation as ev
from storage import evaluation_units as eu
from storage.db import connect
from storage.errors import InvalidRequest
from tests.storage.test_evaluation import WEEK, Driver, at, drive, m
from tests.storage.test_evaluation_lists import months

__all__ = ["drive"]  # the fixture, imported for this module's tests

A = wf.Action


async def rows(state: HubState, **kw: Any) -> dict[int, eu.DepartmentRow]:
    async with connect(state.pool) as conn:
        return {r.department_id: r for r in await eu.department_indicators(conn, *WEEK, **kw)}


async def lists(state: HubState, dep: int) -> dict[str, list[int]]:
    async with connect(state.pool) as conn:
        return {
            f.value: await eu.department_drill_down(conn, f, *WEEK, department_id=dep)
            for f in eu.UnitFigure
        }


async def test_a_hand_counted_department_week(drive: tuple[Driver, list[int]]) -> None:
    d, (dep_a, dep_b) = drive
    # The category's limit is 4 working hours (09:00-12:00, 14:30-18:00): dispatched Monday 09:10
    # -> due 15:40; Friday 17:00 -> next Monday 11:30.
    start = await rows(d.state)
    assert start[dep_a].counts == {f.value: 0 for f in eu.UnitFigure}

    async def dispatched(when: Any, dep: int = dep_a, accept: bool = True) -> int:
        cid = await d.report(when - timedelta(minutes=10))
        await d.path(
            cid, m(A.REGISTER, when - timedelta(minutes=5)), m(A.DISPATCH, when, department_id=dep)
        )
        if accept:
            await d.act(cid, A.ACCEPT, when + timedelta(minutes=5))
        return cid

    def close(t: Any) -> list[tuple[wf.Action, Any, dict[str, Any]]]:
        return [
            m(A.REQUEST_VERIFY, t),
            m(A.VERIFY_PASS, t + timedelta(minutes=10)),
            m(A.CLOSE, t + timedelta(minutes=20)),
        ]

    # Before the week.
    p1 = await dispatched(at(3, 9, 10))  # A, due Fri 15:40, fed back late Fri 17:00 (before)
    await d.act(p1, A.FEEDBACK, at(3, 17))
    p2 = await dispatched(at(3, 17))  # A, due Mon 11:30, never fed back
    # The week.
    await d.path(p1, *close(at(6, 9, 40)))  # closed in the week (late): 结案, not 处置 this week
    u1 = await dispatched(at(6, 9, 10))  # A: fed back 11:00 (due 15:40), closed
    await d.path(u1, m(A.FEEDBACK, at(6, 11)), *close(at(6, 16)))
    u2 = await dispatched(at(6, 9, 10))  # A: fed back 16:00, late
    await d.act(u2, A.FEEDBACK, at(6, 16))
    u3 = await dispatched(at(6, 9, 10))  # A: fed back 10:00, verification failed 11:00 -> 17:30
    await d.path(
        u3,
        m(A.FEEDBACK, at(6, 10)),
        m(A.REQUEST_VERIFY, at(6, 10, 10)),
        m(A.VERIFY_FAIL, at(6, 11)),
    )
    assert await d.deadline(u3) == at(6, 17, 30)
    u4 = await dispatched(at(6, 9, 10), dep_b, accept=False)  # B returns it, A handles it
    await d.path(
        u4,
        m(A.RETURN, at(6, 9, 30)),
        m(A.DISPATCH, at(6, 10), department_id=dep_a),
        m(A.ACCEPT, at(6, 10, 5)),
        m(A.FEEDBACK, at(6, 15)),
    )
    u5 = await dispatched(at(10, 17))  # A: due next Monday, not handled: nowhere
    u6 = await dispatched(at(10, 16))  # A: due next Monday, fed back Friday 17:00: early
    await d.act(u6, A.FEEDBACK, at(10, 17))
    u7 = await dispatched(at(6, 9, 10), dep_b)  # B: extended to Wed 18:00, never fed back
    await d.path(
        u7,
        m(A.REQUEST_EXTENSION, at(6, 10), extension_until=at(8, 18)),
        m(A.APPROVE_EXTENSION, at(6, 11)),
    )
    u8 = await dispatched(at(6, 9, 10), dep_b)  # B: returned 09:30, left at the centre
    await d.act(u8, A.RETURN, at(6, 9, 30))
    u9 = await dispatched(at(6, 9, 10))  # A: deferred 10:00 (the centre's call)
    await d.act(u9, A.DEFER, at(6, 10))
    u10 = await dispatched(at(6, 9, 10))  # A: voided 10:00, before its deadline
    await d.act(u10, A.VOID, at(6, 10))
    u11 = await dispatched(at(6, 9, 10))  # A: voided Tuesday, after its deadline
    await d.act(u11, A.VOID, at(7, 9))
    u12 = await dispatched(at(6, 9, 10), dep_b)  # B: rework 10:30 -> due 17:00, fed back Tue
    await d.path(
        u12,
        m(A.FEEDBACK, at(6, 10)),
        m(A.REWORK, at(6, 10, 30)),
        m(A.FEEDBACK, at(7, 9)),
        *close(at(7, 9, 30)),
    )
    assert await d.deadline(u12) == at(6, 17)
    assert u5

    # By hand, department A:
    #   处置 (last feedback in the week, by A): u1 11:00, u2 16:00, u3 10:00, u4 15:00, u6 Fri.
    #   应处置: those, plus due in the week for A and not fed back/returned/deferred/closed/voided
    #     by the deadline: p2 (Mon 11:30), u3 (17:30 after the failed check), u11 (voided late).
    #     u9 was deferred, u10 voided before their deadlines; u5 is due next week; p1's deadline
    #     and its feedback were before the week.
    #   按期处置: u1, u4 (16:30 after the re-dispatch), u6; u2 late; u3 due again unhandled.
    #   超期: 应处置 − 按期处置 = p2, u2, u3, u11.
    #   city figures for A: 派遣 = first dispatch in the week to A: u1 u2 u3 u5 u6 u9 u10 u11
    #     (u4's first dispatch was to B); 应结案 = closed (p1, u1) + due and open at the deadline:
    #     p2, u2 (fed back late, not closed), u3 (17:30), u4 (16:30), u9 (deferred, kept),
    #     u11 (voided after 15:40); 结案 p1 u1; 按期结案 u1; 返工 u3; 缓办 u9.
    # Department B:
    #   处置: u12 (Tue 09:00, due Mon 17:00: late). 应处置: u12, u7 (Wed 18:00, never fed back).
    #   u8 returned before its deadline, u4 is A's now. 按期处置: none. 超期: u7, u12.
    #   回退: u4, u8. 派遣 u4 u7 u8 u12; 应结案 u7, u8 (the city keeps a returned case's deadline),
    #   u12 (closed); 结案 u12; 返工 u12; 延期 u7.
    want_a = {
        "handled": [u1, u2, u3, u4, u6],
        "to_handle": [p2, u1, u2, u3, u4, u6, u11],
        "handled_on_time": [u1, u4, u6],
        "overdue": [p2, u2, u3, u11],
        "returned": [],
        "dispatched": [u1, u2, u3, u5, u6, u9, u10, u11],
        "due": [p1, p2, u1, u2, u3, u4, u9, u11],
        "closed": [p1, u1],
        "on_time": [u1],
        "reworked": [u3],
        "extended": [],
        "deferred": [u9],
    }
    want_b = {
        "handled": [u12],
        "to_handle": [u7, u12],
        "handled_on_time": [],
        "overdue": [u7, u12],
        "returned": [u4, u8],
        "dispatched": [u4, u7, u8, u12],
        "due": [u7, u8, u12],
        "closed": [u12],
        "on_time": [],
        "reworked": [u12],
        "extended": [u7],
        "deferred": [],
    }
    got = await rows(d.state)
    for dep, want in ((dep_a, want_a), (dep_b, want_b)):
        want = {k: sorted(v) for k, v in want.items()}
        assert got[dep].counts == {k: len(v) for k, v in want.items()}, dep
        assert await lists(d.state, dep) == want, dep
    a, b = got[dep_a], got[dep_b]
    assert (a.handle_rate, a.handle_on_time_rate, a.overdue_rate) == (
        Fraction(5, 7),
        Fraction(3, 7),
        Fraction(4, 7),
    )
    assert a.rates()["on_time_rate"] == Fraction(1, 8)
    assert a.rates()["rework_rate"] == Fraction(1, 8)
    assert (b.handle_on_time_rate, b.rates()["extension_rate"]) == (Fraction(0), Fraction(1, 3))
    # The city figures by department add up to the city's (every non-quick case here has one).
    async with connect(d.state.pool) as conn:
        city = await ev.city_indicators(conn, *WEEK)
    for k in ("dispatched", "due", "closed", "on_time", "reworked", "extended", "deferred"):
        assert sum(r.counts[k] for r in got.values()) == city.count(ev.Indicator(k)), k
    # Every other department has a row of zeros.
    assert all(not any(r.counts.values()) for k, r in got.items() if k not in (dep_a, dep_b))

    # The score reads the department's city figures: 按期结案率 1/8 = 12.5%, 57.5 points short of
    # 70 -> 0 of 50; 结案率 2/8 = 25% -> 0 of 20; 1 rework -> 4.8 of 5.
    sc = scoring.score(a.indicators, scoring.DEFAULT_FORMULA)
    assert sc.total == Fraction(48, 10)

    # The deferred-subtracting variant takes u9 out of A's 应结案 in the rates.
    variant = await rows(d.state, subtract_deferred=True)
    assert variant[dep_a].rates()["on_time_rate"] == Fraction(1, 7)

    # Department staff: their row only.
    only_b = await rows(d.state, department_id=dep_b)
    assert list(only_b) == [dep_b] and only_b[dep_b].counts == got[dep_b].counts


async def test_refusals(hub_state: HubState) -> None:
    async with connect(hub_state.pool) as conn:
        with pytest.raises(InvalidRequest) as exc:
            await eu.department_indicators(conn, WEEK[1], WEEK[0])
        assert exc.value.code == "bad_period"
        with pytest.raises(InvalidRequest) as exc:
            await eu.department_drill_down(conn, "nonsense", *WEEK, department_id=1)
        assert exc.value.code == "unknown_indicator"


async def test_every_figure_of_the_demo_city_is_the_length_of_its_list(
    hub_state: HubState,
) -> None:
    """Over the demo's generated histories (returns, reworks, extensions, deferrals, late and
    early feedback), month by month: each department's figure, counted in one pass (应处置 and
    按期处置 by inclusion-exclusion), is exactly the number of cases its drill-down lists."""
    tz = ZoneInfo(hub_state.settings.timezone)
    async with connect(hub_state.pool) as conn:
        seen: dict[str, int] = {}
        for start, end in await months(conn, tz):
            for row in await eu.department_indicators(conn, start, end):
                for f in eu.UnitFigure:
                    ids = await eu.department_drill_down(
                        conn, f, start, end, department_id=row.department_id
                    )
                    assert len(ids) == row.count(f), (start.date(), row.department_id, f.value)
                    seen[f.value] = seen.get(f.value, 0) + len(ids)
    # the demo exercises every figure, so the comparison compared something
    assert all(seen.get(f.value) for f in eu.UnitFigure if f is not eu.UnitFigure.DEFERRED), seen
