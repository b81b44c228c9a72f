"""The indicators by source and of urgent cases (``storage.evaluation_sources``) on a real
PostgreSQL, from cases driven through the real workflow with an injected clock: a hand-counted
week (every source's figures and lists, the shares, the quick cases apart; the urgent cases as of
the week's end with their average handling time), unchanged by a mark after the week."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.state import HubState
from storage import evaluation_sources as es
from storage.db import connect
from storage.errors import InvalidRequest
from storage.evaluation_regions import parse_polygon
from tests.storage.test_evaluation import WEEK, Driver, at, drive, m

__all__ = ["drive"]  # the fixture, imported for this module's tests

A = wf.Action


async def test_a_hand_counted_source_and_urgent_week(drive: tuple[Driver, list[int]]) -> None:
    d, (dep, _) = drive
    async with connect(d.state.pool) as conn:
        ring = parse_polygon(
            await conn.fetchval("SELECT boundary::text FROM grids WHERE level = 2 LIMIT 1")
        )
    spot = (sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring))

    async def report(source: str, when: datetime, **kw: Any) -> int:
        d.now = when
        located = source in ("supervisor", "video")
        if kw.get("quick"):
            kw["attachment_ids"] = (await d.photo(),)
        new = NewCase(
            category_id=d.category_id,
            source=source,
            description="来源评价测试",
            address="测试路1号",
            lon=spot[0] if located else None,
            lat=spot[1] if located else None,
            **kw,
        )
        body = await d.svc.create(d.actor, new)
        d.version[body["id"]] = body["version"]
        return int(body["id"])

    async def handle(cid: int, dispatched: datetime, fed_back: datetime, **kw: Any) -> None:
        await d.path(
            cid,
            m(A.REGISTER, dispatched - timedelta(minutes=5)),
            m(A.DISPATCH, dispatched, department_id=dep, **kw),
            m(A.ACCEPT, dispatched + timedelta(minutes=5)),
            m(A.FEEDBACK, fed_back),
            m(A.REQUEST_VERIFY, fed_back + timedelta(minutes=5)),
            m(A.VERIFY_PASS, fed_back + timedelta(minutes=10)),
            m(A.CLOSE, fed_back + timedelta(minutes=15)),
        )

    a1 = await report("supervisor", at(6, 9))  # 4 working hours: due 15:40, fed back 11:00
    await handle(a1, at(6, 9, 10), at(6, 11))
    a2 = await report("hotline", at(6, 9))  # rejected
    await d.act(a2, A.REJECT, at(6, 9, 30))
    a3 = await report("hotline", at(6, 9), urgent=True)  # urgent limit 2 h: due 11:10, 1 h work
    await handle(a3, at(6, 9, 10), at(6, 10, 10))
    assert await d.deadline(a3) == at(6, 11, 10)
    a4 = await report("public", at(6, 9))  # urgent at dispatch: due 11:10, fed back 12:10 late
    await handle(a4, at(6, 9, 10), at(6, 12, 10), urgent=True)
    a5 = await report("video", at(6, 9), urgent=True)  # urgent, then not, at registration
    await d.act(a5, A.REGISTER, at(6, 9, 5), urgent=False)
    a6 = await report("sensor", at(6, 9))  # waits; marked urgent after the week
    q1 = await report("supervisor", at(6, 9), quick=True)  # quick: apart
    await d.path(
        q1,
        m(A.QUICK_COMPLETE, at(6, 9, 30)),
        m(A.REQUEST_VERIFY, at(6, 9, 40)),
        m(A.VERIFY_PASS, at(6, 9, 50)),
        m(A.CLOSE, at(6, 10)),
    )

    # By hand, per source (受理 6 in all: a1-a6; q1 is quick):
    want: dict[str, dict[str, list[int]]] = {
        "supervisor": {
            "accepted": [a1],
            "registered": [a1],
            "due": [a1],
            "closed": [a1],
            "on_time": [a1],
            "quick_reported": [q1],
            "quick_closed": [q1],
        },
        "hotline": {
            "accepted": [a2, a3],
            "registered": [a3],
            "due": [a3],
            "closed": [a3],
            "on_time": [a3],
        },
        "public": {"accepted": [a4], "registered": [a4], "due": [a4], "closed": [a4]},
        "video": {"accepted": [a5], "registered": [a5]},
        "sensor": {"accepted": [a6]},
    }
    # Urgent as of the week's end: a3 (at the report), a4 (at the dispatch); not a5 (unmarked).
    # 平均处置时长: a3 09:10 -> 10:10 and a4 09:10 -> 12:10: (1 h + 3 h) / 2 = 2 h.
    want_urgent = {
        "accepted": [a3, a4],
        "registered": [a3, a4],
        "dispatched": [a3, a4],
        "due": [a3, a4],
        "closed": [a3, a4],
        "on_time": [a3],
    }

    async def check() -> None:
        async with connect(d.state.pool) as conn:
            rows = await es.source_indicators(conn, *WEEK)
            assert [r.source for r in rows] == list(es.SOURCE_LABELS)
            for r in rows:
                w = {k: sorted(v) for k, v in want[r.source].items()}
                assert {k: v for k, v in r.counts.items() if v} == {
                    k: len(v) for k, v in w.items()
                }, r.source
                for fig in es.SourceFigure:
                    got = await es.source_drill_down(conn, fig, *WEEK, source=r.source)
                    assert got == w.get(fig.value, []), (r.source, fig)
            by = {r.source: r for r in rows}
            assert by["hotline"].rates() == {
                "share": Fraction(2, 6),
                "register_rate": Fraction(1, 2),
                "close_rate": Fraction(1),
                "on_time_rate": Fraction(1),
            }
            assert by["public"].rates()["on_time_rate"] == Fraction(0)
            assert sum((r.share or 0) for r in rows) == 1
            urgent = await es.urgent_indicators(conn, *WEEK)
            assert {k: v for k, v in urgent.counts.items() if v} == {
                k: len(v) for k, v in want_urgent.items()
            }
            for ufig in es.UrgentFigure:
                got = await es.urgent_drill_down(conn, ufig, *WEEK)
                assert got == sorted(want_urgent.get(ufig.value, [])), ufig
            assert urgent.average_handling_s == 7200
            assert urgent.rates()["on_time_rate"] == Fraction(1, 2)

    await check()
    await d.act(a6, A.REGISTER, at(13, 9), urgent=True)  # after the week: the week is the same
    await check()


async def test_refusals(hub_state: HubState) -> None:
    async with connect(hub_state.pool) as conn:
        with pytest.raises(InvalidRequest) as exc:
            await es.source_drill_down(conn, "accepted", *WEEK, source="pigeon")
        assert exc.value.code == "bad_source"
        with pytest.raises(InvalidRequest) as exc:
            await es.urgent_drill_down(conn, "quick_closed", *WEEK)
        assert exc.value.code == "unknown_indicator"
        empty = await es.urgent_indicators(conn, *WEEK)
        assert empty.average_handling_s is None and not any(empty.counts.values())


# -- migration 0017: the urgent marks as spans (case_urgency) --------------------------------

_URGENCY = "SELECT * FROM case_urgency ORDER BY case_id, version"


async def urgency(state: HubState, *, rebuild: bool = False) -> list[dict[str, Any]]:
    async with connect(state.pool) as conn:
        if rebuild:
            await conn.execute("SELECT cityhub_case_urgency_rebuild()")
        return [dict(r) for r in await conn.fetch(_URGENCY)]


async def test_the_trigger_and_the_rebuild_keep_the_same_urgent_spans(
    drive: tuple[Driver, list[int]],
) -> None:
    d, (dep, dep_b) = drive
    # Marked at registration, unmarked at a dispatch, returned, marked again at a re-dispatch.
    c1 = await d.report(at(6, 9))
    await d.path(
        c1,
        m(A.REGISTER, at(6, 9, 5), urgent=True),
        m(A.DISPATCH, at(6, 9, 10), department_id=dep, urgent=False),
        m(A.RETURN, at(6, 9, 30), note="非本部门"),
        m(A.DISPATCH, at(6, 10), department_id=dep_b, urgent=True),
    )
    c2 = await d.report(at(6, 9))  # never marked: no row
    await d.act(c2, A.REGISTER, at(6, 9, 5))
    c3 = await d.report(at(6, 9))  # marked twice in a row (true, then true again)
    await d.path(
        c3,
        m(A.REGISTER, at(6, 9, 5), urgent=True),
        m(A.DISPATCH, at(6, 9, 10), department_id=dep, urgent=True),
    )
    rows = await urgency(d.state)
    mine = (c1, c2, c3)
    assert [
        (r["case_id"], r["at"], r["urgent"], r["until"]) for r in rows if r["case_id"] in mine
    ] == [
        (c1, at(6, 9, 5), True, at(6, 9, 10)),
        (c1, at(6, 9, 10), False, at(6, 10)),
        (c1, at(6, 10), True, None),
        (c3, at(6, 9, 5), True, at(6, 9, 10)),
        (c3, at(6, 9, 10), True, None),
    ]
    assert await urgency(d.state, rebuild=True) == rows
    # The demo city's histories (written with COPY, through the same trigger; some urgent) agree
    # as well: a row per marking event.
    async with connect(d.state.pool) as conn:
        marks = await conn.fetchval("SELECT count(*) FROM case_events WHERE data ? 'urgent'")
    assert len(rows) == marks > 5


async def test_urgency_changed_after_the_end_does_not_move_the_week(
    drive: tuple[Driver, list[int]],
) -> None:
    d, (dep, dep_b) = drive
    end = WEEK[1]
    next_week = (end, end + timedelta(days=7))
    b1 = await d.report(at(6, 9))  # urgent at registration, dispatched, still open at the end
    await d.path(
        b1,
        m(A.REGISTER, at(6, 9, 5), urgent=True),
        m(A.DISPATCH, at(6, 9, 10), department_id=dep),
    )
    b2 = await d.report(at(6, 9))  # registered, not urgent, waits for dispatch
    await d.act(b2, A.REGISTER, at(6, 9, 5))
    b3 = await d.report(at(6, 9))  # urgent, closed in the week
    await d.path(
        b3,
        m(A.REGISTER, at(6, 9, 5), urgent=True),
        m(A.DISPATCH, at(6, 9, 10), department_id=dep),
        m(A.ACCEPT, at(6, 9, 15)),
        m(A.FEEDBACK, at(6, 9, 40)),
        m(A.REQUEST_VERIFY, at(6, 9, 45)),
        m(A.VERIFY_PASS, at(6, 9, 50)),
        m(A.CLOSE, at(6, 10)),
    )
    want = {
        "accepted": [b1, b3],
        "registered": [b1, b3],
        "dispatched": [b1, b3],
        "due": [b1, b3],  # b1's urgent deadline (11:10) passed open in the week
        "closed": [b3],
        "on_time": [b3],
    }

    async def week(period: tuple[datetime, datetime] = WEEK) -> dict[str, list[int]]:
        async with connect(d.state.pool) as conn:
            figs = await es.urgent_indicators(conn, *period)
            got = {f.value: await es.urgent_drill_down(conn, f, *period) for f in es.UrgentFigure}
        assert {k: len(v) for k, v in got.items()} == figs.counts
        if period == WEEK:
            assert figs.average_handling_s == 30 * 60  # b3: dispatched 09:10, fed back 09:40
        return {k: v for k, v in got.items() if v}

    assert await week() == want
    # At the very end (the first instant after the week): b1 sent back and re-dispatched unmarked,
    # b2 dispatched urgent. The week's figures stay; the next week sees the new marks.
    await d.path(
        b1,
        m(A.RETURN, end, note="非本部门"),
        m(A.DISPATCH, end, department_id=dep_b, urgent=False),
    )
    await d.act(b2, A.DISPATCH, end, department_id=dep, urgent=True)
    assert await week() == want
    following = await week(next_week)
    assert following["dispatched"] == [b2] and b1 not in following.get("due", [])
    assert await urgency(d.state, rebuild=True) == await urgency(d.state)
    assert await week() == want
