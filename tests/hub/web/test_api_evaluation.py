"""The evaluation API over HTTP against a real PostgreSQL: a hand-counted week driven through the
real workflow (``CaseService`` with an injected clock, in a week of 2028 no demo case reaches),
read back as the city's figures, rates and score, the department league table, the trend and the
drill-down; department staff see only their own department; period errors are 400 with Chinese
reasons; the formula is data an admin edits (and the score follows it)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from hub.core import workflow as wf
from hub.state import HubState
from storage.db import connect
from tests.conftest import Api
from tests.storage.test_evaluation import TZ, Driver, m

A = wf.Action
DAY = "2028-03-08"  # a Wednesday: the week 2028-03-06 .. 2028-03-12


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2028, 3, day, hour, minute, tzinfo=TZ)


@dataclasses.dataclass
class Week:
    dep_a: int
    dep_b: int
    on_time: int  # dispatched to A Monday 09:10, fed back 11:00, closed 16:20
    rejected: int
    late: int  # dispatched to B Monday 09:10 as urgent (紧急), never handled


@pytest.fixture
async def week(hub_state: HubState, login: Any) -> AsyncIterator[tuple[Week, dict[str, Api]]]:
    """Three cases in the week of 2028-03-06, and the users who look at them."""
    depts: dict[int, Api] = {}
    for name in ("dept01", "dept02", "dept03", "dept04"):
        api = await login(name)
        depts.setdefault(api.user["department_id"], api)
    dep_a, dep_b = sorted(depts)[:2]
    async with connect(hub_state.pool) as conn:
        admin = await conn.fetchval("SELECT id FROM users WHERE username = 'admin'")
    cats = [
        c
        for c in hub_state.catalog.categories.values()
        if c.active and c.time_limit_unit == "hours" and c.time_limit_value == 4
    ]
    d = Driver(hub_state, int(admin), cats[0].id)

    async def dispatched(when: datetime, dep: int, **kw: Any) -> int:
        cid = await d.report(when - timedelta(minutes=10))
        await d.path(
            cid,
            m(A.REGISTER, when - timedelta(minutes=5)),
            m(A.DISPATCH, when, department_id=dep, **kw),
        )
        return cid

    on_time = await dispatched(at(6, 9, 10), dep_a)
    await d.path(
        on_time,
        m(A.ACCEPT, at(6, 9, 30)),
        m(A.FEEDBACK, at(6, 11)),
        m(A.REQUEST_VERIFY, at(6, 16)),
        m(A.VERIFY_PASS, at(6, 16, 10)),
        m(A.CLOSE, at(6, 16, 20)),
    )
    rejected = await d.report(at(6, 9))
    await d.act(rejected, A.REJECT, at(6, 9, 20))
    late = await dispatched(at(6, 9, 10), dep_b, urgent=True)  # 紧急 at the dispatch
    users = {
        "viewer": await login("bigscreen"),
        "admin": await login("admin"),
        "dept_a": depts[dep_a],
        "dept_b": depts[dep_b],
        "sup": await login("sup01"),
    }
    yield Week(dep_a, dep_b, on_time, rejected, late), users


async def ok(api: Api, url: str, **params: Any) -> dict[str, Any]:
    r = await api.get(url, params={"day": DAY, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_city_figures_rates_and_score(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    body = await ok(u["viewer"], "/api/evaluation/city")
    assert body["period"]["label"] == "2028年第10周 (3月6日–3月12日)"
    assert body["period"]["start"] == "2028-03-06T00:00:00+08:00"
    assert body["period"]["end"] == "2028-03-13T00:00:00+08:00"
    c = body["counts"]
    assert (c["accepted"], c["registered"], c["dispatched"]) == (3, 2, 2)
    assert (c["due"], c["closed"], c["on_time"], c["reworked"]) == (2, 1, 1, 0)
    assert body["labels"]["on_time"] == "按期结案数"
    r = body["rates"]
    assert r["register_rate"]["text"] == "66.67%"
    assert (r["register_rate"]["num"], r["register_rate"]["den"]) == (3 - 1, 3)
    assert abs(r["register_rate"]["value"] - 2 / 3) < 1e-6
    assert r["on_time_rate"] == {"value": 0.5, "text": "50.00%", "num": 1, "den": 2}
    assert r["close_rate"]["text"] == "50.00%"
    # Default formula: on time 50 % (20 points short of 70: 30 of 50), closed 50 % (40 short of
    # 90: 0 of 20), no rework (5 of 5).
    s = body["score"]
    assert s["total"] == 35 and s["max"] == 75
    assert [t["earned"] for t in s["terms"]] == [30, 0, 5]
    assert s["terms"][0]["value_text"] == "50.00%"
    assert "扣 20.00 分" in s["terms"][0]["text"]


async def test_drill_down_lists_exactly_the_figure(week: tuple[Week, dict[str, Api]]) -> None:
    w, u = week
    body = await ok(u["viewer"], "/api/evaluation/cases", table="city", figure="due")
    assert body["count"] == 2 and body["label"] == "应结案数"
    assert sorted(c["id"] for c in body["cases"]) == sorted([w.on_time, w.late])
    late = next(c for c in body["cases"] if c["id"] == w.late)
    assert late["department_id"] == w.dep_b and late["state"] == "dispatched"
    assert late["state_label"] and late["number"]
    body = await ok(u["viewer"], "/api/evaluation/cases", figure="accepted", limit=1, offset=1)
    assert body["count"] == 3 and len(body["cases"]) == 1
    body = await ok(
        u["viewer"], "/api/evaluation/cases", table="departments", key=str(w.dep_a), figure="closed"
    )
    assert [c["id"] for c in body["cases"]] == [w.on_time]


async def test_departments_league_table(week: tuple[Week, dict[str, Api]]) -> None:
    w, u = week
    body = await ok(u["viewer"], "/api/evaluation/departments")
    rows = {r["department_id"]: r for r in body["rows"]}
    a, b = rows[w.dep_a], rows[w.dep_b]
    assert a["counts"]["closed"] == 1 and a["rates"]["on_time_rate"]["text"] == "100.00%"
    assert a["score"]["total"] == 75
    # B: nothing closed of one due: 0 + 0 + 5.
    assert b["counts"]["due"] == 1 and b["counts"]["closed"] == 0 and b["score"]["total"] == 5
    # The departments' own figures: A handled its case on time; B's is overdue.
    assert (a["counts"]["handled"], a["counts"]["handled_on_time"]) == (1, 1)
    assert a["rates"]["handle_on_time_rate"]["text"] == "100.00%"
    assert (b["counts"]["to_handle"], b["counts"]["overdue"], b["counts"]["handled"]) == (1, 1, 0)
    assert b["rates"]["overdue_rate"] == {"value": 1.0, "text": "100.00%", "num": 1, "den": 1}
    drill = await ok(
        u["viewer"],
        "/api/evaluation/cases",
        table="departments",
        key=str(w.dep_b),
        figure="overdue",
    )
    assert drill["label"] == "超期数" and [c["id"] for c in drill["cases"]] == [w.late]
    totals = [r["score"]["total"] for r in body["rows"]]
    assert totals == sorted(totals, reverse=True)
    assert body["rows"][-1]["department_id"] == w.dep_b and b["rank"] == len(body["rows"])
    assert a["rank"] == 1
    keys = {c["key"]: c["kind"] for c in body["columns"]}
    assert keys["on_time_rate"] == "rate" and keys["score"] == "score" and keys["due"] == "count"


async def test_department_staff_see_only_their_department(
    week: tuple[Week, dict[str, Api]],
) -> None:
    w, u = week
    dept_b = u["dept_b"]
    body = await ok(dept_b, "/api/evaluation/city")
    assert body["department"]["id"] == w.dep_b
    c = body["counts"]
    assert (c["accepted"], c["dispatched"], c["due"], c["closed"]) == (0, 1, 1, 0)
    rows = (await ok(dept_b, "/api/evaluation/departments"))["rows"]
    assert [r["department_id"] for r in rows] == [w.dep_b]
    body = await ok(dept_b, "/api/evaluation/cases", figure="due")
    assert [x["id"] for x in body["cases"]] == [w.late] and body["count"] == 1
    trend = await ok(dept_b, "/api/evaluation/trend", count=2)
    assert trend["points"][-1]["counts"]["due"] == 1
    # Another department's figures or cases: refused.
    for url, params in (
        ("/api/evaluation/city", {"department_id": w.dep_a}),
        ("/api/evaluation/trend", {"department_id": w.dep_a}),
        ("/api/evaluation/cases", {"table": "departments", "key": w.dep_a, "figure": "closed"}),
    ):
        r = await dept_b.get(url, params={"day": DAY, **params})
        assert r.status_code == 403, (url, r.text)
        assert r.json()["error"]["code"] == "other_department"
    # Supervisors see no evaluation.
    r = await u["sup"].get("/api/evaluation/city")
    assert r.status_code == 403


async def test_trend_points(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    body = await ok(u["viewer"], "/api/evaluation/trend", count=3)
    labels = [p["period"]["label"] for p in body["points"]]
    assert labels == [
        "2028年第8周 (2月21日–2月27日)",
        "2028年第9周 (2月28日–3月5日)",
        "2028年第10周 (3月6日–3月12日)",
    ]
    assert body["points"][-1]["counts"]["accepted"] == 3
    assert body["points"][0]["counts"]["accepted"] == 0
    assert body["points"][-1]["score"]["total"] == 35


@pytest.mark.parametrize(
    ("params", "field", "status"),
    [
        # Not a date, not a period: the parameter's declaration refuses it (400).
        ({"day": "2028-13-01"}, "day", 400),
        ({"period": "decade"}, "period", 400),
        # Well-formed but no period (422, as every refusal the document cannot express).
        ({"start": "2028-03-01"}, "end", 422),
        ({"start": "2028-03-08", "end": "2028-03-08"}, "end", 422),
        ({"start": "2028-03-08", "end": "2028-03-01"}, "end", 422),
        ({"start": "2027-01-01", "end": "2028-03-01"}, "end", 422),
        ({"day": "9999-12-31", "period": "year"}, "day", 422),
    ],
)
async def test_bad_periods_are_refused_in_chinese(
    login: Any, params: dict[str, str], field: str, status: int
) -> None:
    viewer = await login("bigscreen")
    r = await viewer.get("/api/evaluation/city", params=params)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["details"]["field"] == field
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err["message"]), err["message"]


async def test_custom_range(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    r = await u["viewer"].get(
        "/api/evaluation/city", params={"start": "2028-03-06", "end": "2028-03-07"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"]["label"] == "2028年3月6日–3月6日"
    assert body["counts"]["accepted"] == 3 and body["counts"]["closed"] == 1


async def test_formula_is_data_an_admin_edits(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    body = await ok(u["viewer"], "/api/evaluation/formula")
    assert body["is_default"] is True and body["max_points"] == 75
    new = {
        "name": "按期结案率一项",
        "terms": [
            {"kind": "rate", "indicator": "on_time_rate", "points": 100, "threshold": 100},
        ],
    }
    r = await u["viewer"].client.put(
        "/api/evaluation/formula", json=new, headers=u["viewer"].headers
    )
    assert r.status_code == 403
    r = await u["admin"].client.put("/api/evaluation/formula", json=new, headers=u["admin"].headers)
    assert r.status_code == 200, r.text
    assert r.json()["is_default"] is False
    # 50 % on time: 50 points short of 100, one point each: 50 of 100.
    city = await ok(u["viewer"], "/api/evaluation/city")
    assert city["score"]["total"] == 50 and city["score"]["max"] == 100
    assert city["score"]["formula"] == "按期结案率一项"
    bad = {"terms": [{"kind": "rate", "indicator": "nope", "points": 5, "threshold": 90}]}
    r = await u["admin"].client.put("/api/evaluation/formula", json=bad, headers=u["admin"].headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "terms[0].indicator"
    got = await ok(u["viewer"], "/api/evaluation/formula")
    assert got["formula"]["name"] == "按期结案率一项"


async def test_sources_and_urgent_cases(week: tuple[Week, dict[str, Api]]) -> None:
    w, u = week
    body = await ok(u["viewer"], "/api/evaluation/sources")
    rows = {r["source"]: r for r in body["rows"]}
    public = rows["public"]
    assert public["counts"]["accepted"] == 3 and public["counts"]["closed"] == 1
    assert public["share"] == {"value": 1.0, "text": "100.00%", "num": 3, "den": 3}
    assert all(r["counts"]["accepted"] == 0 for s, r in rows.items() if s != "public")
    drill = await ok(
        u["viewer"], "/api/evaluation/cases", table="sources", key="public", figure="accepted"
    )
    assert sorted(c["id"] for c in drill["cases"]) == sorted([w.on_time, w.rejected, w.late])
    city = await ok(u["viewer"], "/api/evaluation/city")
    urgent = city["urgent"]
    assert (urgent["counts"]["accepted"], urgent["counts"]["dispatched"]) == (1, 1)
    assert (urgent["counts"]["due"], urgent["counts"]["closed"]) == (1, 0)
    assert urgent["rates"]["close_rate"]["text"] == "0.00%"
    drill = await ok(u["viewer"], "/api/evaluation/cases", table="urgent", figure="due")
    assert [c["id"] for c in drill["cases"]] == [w.late]
    r = await u["dept_b"].get("/api/evaluation/sources", params={"day": DAY})
    assert r.status_code == 403
    assert (await ok(u["dept_b"], "/api/evaluation/city"))["urgent"] is None
