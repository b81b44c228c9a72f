"""The weekly report (周报) over HTTP: the HTML parsed back holds the week's figures, the change
against the previous week, the score, the league table, the departments to supervise, overdue by
department and the hot spots; it is printable (A4) and runs no script; department staff get their
department's report."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from tests.conftest import Api
from tests.hub.web.test_api_evaluation import DAY, Week, ok, week

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
