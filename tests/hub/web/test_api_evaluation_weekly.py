"""The weekly report (周报) over HTTP: the HTML parsed back holds the week's figures, the change
against the previous week, the score, the league table, the departments to supervise, overdue by
department and the hot spots; it is printable (A4) and runs no script; department staff get their
department's report."""

from __future__ import annotations

from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.state import HubState
from storage.db import connect
from storage.evaluation_regions import parse_polygon
from tests.conftest import Api
from tests.hub.web.test_api_evaluation import DAY, Week, at, ok, week
from tests.storage.test_evaluation import Driver, m

__all__ = ["week"]


class Report(HTMLParser):
    """The report's tables (lists of rows of cell texts), its headings and its list items."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.h2: list[str] = []
        self.items: list[str] = []
        self.score = ""
        self._cell: list[str] | None = None
        self._tag: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th", "h2", "li") or dict(attrs).get("id") == "score":
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text).strip()
        if tag in ("td", "th"):
            self.tables[-1][-1].append(text)
        elif tag == "h2":
            self.h2.append(text)
        elif tag == "li":
            self.items.append(text)
        elif tag == "span" and not self.score:
            self.score = text
        if self._tag:
            self._tag.pop()

    def handle_data(self, data: str) -> None:
        self._text.append(data)


async def weekly(api: Api, **params: Any) -> tuple[Report, str, dict[str, str]]:
    r = await api.get("/api/evaluation/weekly", params={"day": DAY, **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    rep = Report()
    rep.feed(r.text)
    return rep, r.text, dict(r.headers)


def table_with(rep: Report, header: str) -> list[list[str]]:
    return next(t for t in rep.tables if t and t[0] and t[0][0] == header)


async def test_weekly_report_renders_the_figures(week: tuple[Week, dict[str, Api]]) -> None:
    w, u = week
    city = await ok(u["viewer"], "/api/evaluation/city")
    deps = await ok(u["viewer"], "/api/evaluation/departments")
    rep, text, headers = await weekly(u["viewer"])
    assert "2028年第10周 (3月6日–3月12日)" in text and "2028年第9周" in text
    assert "@page { size: A4" in text and "@media print" in text
    assert "<script" not in text and "script-src" not in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert rep.score == city["score"]["total_text"] == "35.00"
    figures = {row[0]: row[1:] for row in table_with(rep, "指标")[1:]}
    assert figures["受理数"] == ["3", "0", "增加 3"]
    assert figures["结案数"] == ["1", "0", "增加 1"]
    assert figures["按期结案率"] == [city["rates"]["on_time_rate"]["text"], "—", "—"]
    terms = table_with(rep, "评价项")[1:]
    assert [t[2] for t in terms] == ["30.00", "0.00", "5.00"]
    league = table_with(rep, "名次")[1:]
    assert [(r[0], r[1], r[-1]) for r in league] == [
        (str(d["rank"]), d["name"], d["score"]["total_text"]) for d in deps["rows"]
    ]
    b = next(d for d in deps["rows"] if d["department_id"] == w.dep_b)
    assert rep.items and rep.items[0].startswith(b["name"])
    overdue = table_with(rep, "部门")[1:]
    assert overdue == [[b["name"], "1", "1", "100.00%"]]
    hot = table_with(rep, "案件类别")[1:]
    assert len(hot) == 1 and hot[0][1] == "3"
    assert rep.h2[0] == "一、综合评价得分" and len(rep.h2) == 6


async def test_weekly_report_of_a_department(week: tuple[Week, dict[str, Api]]) -> None:
    w, u = week
    rep, text, _ = await weekly(u["dept_b"])
    figures = {row[0]: row[1:] for row in table_with(rep, "指标")[1:]}
    assert figures["受理数"][0] == "0" and figures["派遣数"][0] == "1"
    league = table_with(rep, "名次")[1:]
    assert len(league) == 1
    rows = (await ok(u["viewer"], "/api/evaluation/departments"))["rows"]
    a_name = next(r["name"] for r in rows if r["department_id"] == w.dep_a)
    assert league[0][1] != a_name and a_name not in text


async def test_weekly_hot_spots_are_the_hand_counted_top_five(
    hub_state: HubState, week: tuple[Week, dict[str, Api]]
) -> None:
    w, u = week
    async with connect(hub_state.pool) as conn:
        admin = await conn.fetchval("SELECT id FROM users WHERE username = 'admin'")
        grid_rows = await conn.fetch(
            "SELECT id, code, name, boundary::text AS b FROM grids WHERE level = 2"
            " ORDER BY id LIMIT 3"
        )
    cats = sorted(
        (c for c in hub_state.catalog.categories.values() if c.active), key=lambda c: c.id
    )
    fixture_cat = next(
        c for c in cats if c.time_limit_unit == "hours" and c.time_limit_value == 4
    )  # the week fixture's three cases (no grid) are of this category
    x = [c for c in cats if f"{c.major_name}·{c.minor_name}" != name(fixture_cat)][:6]
    d = Driver(hub_state, int(admin), fixture_cat.id)

    def centre(b: str) -> tuple[float, float]:
        ring = parse_polygon(b)
        return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)

    spots = [centre(str(g["b"])) for g in grid_rows]
    gname = [f"{g['name']}（{g['code']}）" for g in grid_rows]

    async def report(cat: int, when: datetime, grid: int | None) -> int:
        d.now = when
        lon, lat = spots[grid] if grid is not None else (None, None)
        new = NewCase(
            category_id=cat, source="public", description="热点测试", address="测试路2号",
            lon=lon, lat=lat,
        )  # fmt: skip
        body = await d.svc.create(d.actor, new)
        d.version[body["id"]] = body["version"]
        return int(body["id"])

    # This week: x0 three times (grids 0, 0, 1), x1 twice (grids 1, 2), x2..x5 once each (grid 2
    # for x2, no grid for the others). Last week: x1 three more times in grid 2 (not counted).
    for cat, grid in [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (3, None), (4, None),
                      (5, None)]:  # fmt: skip
        await report(x[cat].id, at(7, 10), grid)
    for _ in range(3):
        await report(x[1].id, at(6, 10) - timedelta(days=7), 2)
    # One of them dispatched to B: B's report counts what was dispatched to B in the week.
    to_b = await report(x[4].id, at(8, 10), 0)
    await d.path(
        to_b,
        m(wf.Action.REGISTER, at(8, 10, 5)),
        m(wf.Action.DISPATCH, at(8, 10, 10), department_id=w.dep_b),
    )

    # By hand: the fixture's category 3 (its three cases), x0 3, x1 2, x4 2 (with to_b), then
    # x2, x3, x5 one each: the fifth place goes to the first of those three by name.
    ones = sorted([name(x[2]), name(x[3]), name(x[5])])
    top = [(name(fixture_cat), 3), (name(x[0]), 3), (name(x[1]), 2), (name(x[4]), 2)]
    want_cats = [*sorted(top, key=lambda kv: (-kv[1], kv[0])), (ones[0], 1)]
    # Grids: 0 holds x0, x0, to_b (3); 1 holds x0, x1 (2); 2 holds x1, x2 (2).
    want_grids = [(gname[0], 3), *sorted([(gname[1], 2), (gname[2], 2)])]

    rep, _, _ = await weekly(u["viewer"])
    assert [(r[0], int(r[1])) for r in table_with(rep, "案件类别")[1:]] == want_cats
    assert [(r[0], int(r[1])) for r in table_with(rep, "网格")[1:]] == want_grids
    # The department's: the fixture's late case and to_b, both dispatched to B this week.
    rep, _, _ = await weekly(u["dept_b"])
    assert [(r[0], int(r[1])) for r in table_with(rep, "案件类别")[1:]] == sorted(
        [(name(fixture_cat), 1), (name(x[4]), 1)], key=lambda kv: kv[0]
    )
    assert [(r[0], int(r[1])) for r in table_with(rep, "网格")[1:]] == [(gname[0], 1)]


def name(cat: Any) -> str:
    return f"{cat.major_name}·{cat.minor_name}"
