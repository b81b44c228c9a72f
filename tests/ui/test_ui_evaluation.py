"""The evaluation page (realtime_ui/static/evaluation*.js) against a real hub, in Debian's Chromium
through Playwright: cases made through the workflow (reported, registered, dispatched to dept01's
department) show in the department league table with the figures GET /api/evaluation/departments
gives; a click on a count opens exactly that many cases, each linking to the board; the ECharts
trend draws its canvas; the ECharts bundle loads under the page's CSP with no console error; a
table whose endpoint is missing says 暂无数据; the page has no inline script or style.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveHub, scratch_dir, start_hub
from tests.ui.test_ui_live import PASSWORDS, STATIC, ApiUser, Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PASSWORDS.setdefault("admin", "Admin#2026")
MADE = 3  # cases this module puts through the workflow


@pytest.fixture(scope="module")
def eval_hub(scratch_root: Path) -> Iterator[LiveHub]:
    hub = start_hub(scratch_dir(scratch_root, "evaluation") / "data", demo_cases=50, timeout=180.0)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def api_users(eval_hub: LiveHub) -> Iterator[dict[str, ApiUser]]:
    made = {n: ApiUser(eval_hub.base_url, n) for n in ("seat2", "dispatch1", "dept01", "admin")}
    try:
        yield made
    finally:
        for u in made.values():
            u.close()


def dept_row(admin: ApiUser, department_id: int) -> dict[str, Any]:
    rows = admin.get("/api/evaluation/departments", period="week")["rows"]
    return next(r for r in rows if r["department_id"] == department_id)


@pytest.fixture(scope="module")
def made(api_users: dict[str, ApiUser]) -> tuple[int, int]:
    """MADE cases reported, registered and dispatched to dept01's department this week →
    (the department, its 派遣数 before them)."""
    seat, disp, dept, admin = (api_users[n] for n in ("seat2", "dispatch1", "dept01", "admin"))
    dep_id = int(dept.user["department_id"])
    before = int(dept_row(admin, dep_id)["counts"]["dispatched"])
    for i in range(MADE):
        case = seat.report(lon=103.80 + i / 1000, lat=25.50)
        seat.act(case["id"], "register")
        disp.act(case["id"], "dispatch", department_id=dep_id)
    return dep_id, before


def test_evaluation_files_have_no_inline_script_or_style() -> None:
    text = (STATIC / "evaluation.html").read_text()
    assert re.search(r"<script(?![^>]*\bsrc=)", text) is None
    assert "<style" not in text and " style=" not in text
    assert '<script type="module" src="/static/evaluation.js">' in text


def test_league_table_matches_the_api_and_a_count_lists_its_cases(
    browser: Any, eval_hub: LiveHub, api_users: dict[str, ApiUser], made: tuple[int, int]
) -> None:
    admin = api_users["admin"]
    dep_id, before = made
    row = dept_row(admin, dep_id)
    assert row["counts"]["dispatched"] == before + MADE  # the workflow's cases are counted

    p = Page(browser)
    try:
        page = p.sign_in(eval_hub.base_url, "admin", "/evaluation")
        table = page.locator('[data-testid="ev-table-departments"]')
        table.wait_for()
        tr = table.locator(f'[data-testid="ev-row"][data-key="{dep_id}"]')
        # Every count of the department's row is the API's figure.
        for key, value in row["counts"].items():
            cell = tr.locator(f'[data-testid="ev-count"][data-figure="{key}"]')
            assert cell.get_attribute("data-value") == str(value), key
            assert cell.inner_text().replace(",", "") == str(value), key
        assert tr.locator(".ev-rank").inner_text() == str(row["rank"])
        # Each rate reads as the API's text; one with a value is graded (a background colour).
        for key, rate in row["rates"].items():
            cell = tr.locator(f'[data-testid="ev-rate-cell"][data-key="{key}"]')
            assert cell.inner_text() == rate["text"], key
            background = cell.evaluate("c => getComputedStyle(c).backgroundColor")
            assert (background != "rgba(0, 0, 0, 0)") == (rate["value"] is not None), key

        # The click on 派遣数 lists exactly that many cases, each a link to the board.
        tr.locator('[data-testid="ev-count"][data-figure="dispatched"]').click()
        drill = page.locator('[data-testid="ev-drill"]')
        drill.locator('[data-testid="ev-drill-row"]').first.wait_for()
        assert drill.locator('[data-testid="ev-drill-count"]').inner_text() == str(before + MADE)
        assert drill.locator('[data-testid="ev-drill-row"]').count() == before + MADE
        hrefs = drill.locator('[data-testid="ev-drill-row"] a').evaluate_all(
            "as => as.map(a => a.getAttribute('href'))"
        )
        assert all(re.fullmatch(r"/board\?case=\d+", h) for h in hrefs)
        ids = {int(h.split("=")[1]) for h in hrefs}
        api_ids = {
            c["id"]
            for c in admin.get(
                "/api/evaluation/cases",
                table="departments",
                key=str(dep_id),
                figure="dispatched",
                period="week",
            )["cases"]
        }
        assert ids == api_ids
        drill.locator('[data-testid="ev-drill-close"]').click()
        assert drill.count() == 0

        # The city's 受理数 tile opens as many cases as it says.
        city = admin.get("/api/evaluation/city", period="week")
        tile = page.locator('[data-testid="ev-city"] [data-figure="accepted"]')
        assert tile.get_attribute("data-value") == str(city["counts"]["accepted"])
        tile.click()
        page.locator('[data-testid="ev-drill-count"]').wait_for()
        n = city["counts"]["accepted"]
        assert page.locator('[data-testid="ev-drill-count"]').inner_text() == str(n)
        assert page.locator('[data-testid="ev-drill-row"]').count() == min(n, 200)
        page.locator('[data-testid="ev-drill-close"]').click()

        # The composite score and its terms' sentences.
        score = city["score"]
        assert page.locator('[data-testid="ev-score-total"]').inner_text() == str(
            score.get("total_text", score["total"])
        )
        assert page.locator('[data-testid="ev-term"]').count() == len(score["terms"])

        # The ECharts trend chart has drawn its canvas (non-blank pixels).
        canvas = page.locator('[data-testid="ev-trend-chart"] canvas')
        canvas.first.wait_for()
        pixels = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
        drawn = canvas.first.evaluate(pixels)
        assert drawn > 1000
        # Its tooltip shows on hover without an inline style the CSP would refuse.
        box = canvas.first.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.6)
        page.wait_for_function(
            "([c, n]) => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
            ".filter((v, i) => i % 4 === 3 && v).length > n",
            arg=[canvas.first.element_handle(), drawn],
        )
        assert (
            page.locator('[data-testid="ev-period-label"]').inner_text() == city["period"]["label"]
        )
        p.shot("evaluation")
        assert p.unexpected_errors() == []
    finally:
        p.close()


def test_a_missing_endpoint_shows_no_data_and_the_period_picker_reloads(
    browser: Any, eval_hub: LiveHub, api_users: dict[str, ApiUser]
) -> None:
    p = Page(browser)
    try:
        page = p.sign_in(eval_hub.base_url, "admin", "/evaluation")
        page.route("**/api/evaluation/sources*", lambda r: r.fulfill(status=404, body="{}"))
        page.locator('[data-testid="ev-table-departments"]').wait_for()
        page.locator('[data-testid="ev-kind-month"]').click()
        month = api_users["admin"].get("/api/evaluation/city", period="month")["period"]["label"]
        page.wait_for_function(
            "t => document.querySelector('[data-testid=ev-period-label]').textContent === t",
            arg=month,
        )
        assert "period=month" in page.url
        page.locator('[data-testid="ev-tab-sources"]').click()
        body = page.locator('[data-testid="ev-tab-body"]')
        assert body.locator('[data-testid="ev-empty"]').inner_text().startswith("暂无数据")
        # The page is still there: back to the department table.
        page.locator('[data-testid="ev-tab-departments"]').click()
        page.locator('[data-testid="ev-table-departments"]').wait_for()

        # A range of local dates (end exclusive): the API's label; the trend by day, as the API's.
        page.locator('[data-testid="ev-kind-range"]').click()
        page.locator('[data-testid="ev-start"]').fill("2026-11-01")
        page.locator('[data-testid="ev-end"]').fill("2026-11-16")
        label = api_users["admin"].get("/api/evaluation/city", start="2026-11-01", end="2026-11-16")
        page.wait_for_function(
            "t => document.querySelector('[data-testid=ev-period-label]').textContent === t",
            arg=label["period"]["label"],
        )
        days = api_users["admin"].get("/api/evaluation/trend", start="2026-11-01", end="2026-11-16")
        assert days["bucket"] == "day" and len(days["points"]) == 15
        page.locator('[data-testid="ev-trend-chart"][data-points="15"] canvas').wait_for()
        assert "按日" in page.locator('[data-testid="ev-trend-title"]').inner_text()
        assert "start=2026-11-01" in page.url and "end=2026-11-16" in page.url

        # The export buttons and the weekly report answer with the browser's session.
        for testid, disposition in (("ev-export-xlsx", ".xlsx"), ("ev-export-csv", ".csv")):
            href = page.locator(f'[data-testid="{testid}"]').get_attribute("href")
            assert "start=2026-11-01" in href and "table=departments" in href
            r = page.request.get(eval_hub.base_url + href)
            assert r.status == 200, r.text()
            cd = r.headers["content-disposition"]
            assert cd.startswith("attachment") and disposition in cd
        weekly = page.locator('[data-testid="ev-weekly"]').get_attribute("href")
        r = page.request.get(eval_hub.base_url + weekly)
        assert r.status == 200 and r.headers["content-type"].startswith("text/html")
        assert "周报" in r.text()
        assert p.unexpected_errors() == []
    finally:
        p.close()


def test_department_staff_see_their_own_row_only(
    browser: Any, eval_hub: LiveHub, api_users: dict[str, ApiUser]
) -> None:
    dep_id = int(api_users["dept01"].user["department_id"])
    p = Page(browser)
    try:
        page = p.sign_in(eval_hub.base_url, "dept01", "/evaluation")
        table = page.locator('[data-testid="ev-table-departments"]')
        table.wait_for()
        keys = table.locator('[data-testid="ev-row"]').evaluate_all(
            "rs => rs.map(r => r.dataset.key)"
        )
        assert keys == [str(dep_id)]
        assert p.unexpected_errors() == []
    finally:
        p.close()


TABS = [  # tab, table, the API call behind it, the row key
    ("streets", "regions", ("/api/evaluation/regions", {"level": "street"}), "grid_id"),
    ("posts", "posts", ("/api/evaluation/posts", {"post": "seat"}), "user_id"),
    ("sources", "sources", ("/api/evaluation/sources", {}), "source"),
]


@pytest.mark.parametrize(("tab", "table", "call", "row_key"), TABS)
def test_other_tabs_show_the_api_rows(
    browser: Any,
    eval_hub: LiveHub,
    api_users: dict[str, ApiUser],
    made: tuple[int, int],
    tab: str,
    table: str,
    call: tuple[str, dict[str, str]],
    row_key: str,
) -> None:
    """Each tab is the API's table (its rows, a count, exactly that many cases behind it): the
    module's own cases (a video report in a street, registered by seat2) are in all three."""
    admin = api_users["admin"]
    path, params = call
    r = admin.http.get(path, params={**params, "period": "week"})
    p = Page(browser)
    try:
        page = p.sign_in(eval_hub.base_url, "admin", "/evaluation")
        page.locator('[data-testid="ev-table-departments"]').wait_for()
        page.locator(f'[data-testid="ev-tab-{tab}"]').click()
        assert r.status_code == 200, r.text
        rows = r.json()["rows"]
        assert rows, f"{path}: the module's cases are in no row"
        tbl = page.locator(f'[data-testid="ev-table-{table}"]')
        tbl.wait_for()
        assert tbl.locator('[data-testid="ev-row"]').count() == len(rows)
        row = max(rows, key=lambda x: max(x["counts"].values(), default=0))
        figure, value = max(row["counts"].items(), key=lambda kv: kv[1])
        tr = tbl.locator(f'[data-testid="ev-row"][data-key="{row[row_key]}"]')
        cell = tr.locator(f'[data-testid="ev-count"][data-figure="{figure}"]')
        assert cell.get_attribute("data-value") == str(value)
        assert value > 0
        cell.click()
        page.locator('[data-testid="ev-drill-count"]').wait_for()
        assert page.locator('[data-testid="ev-drill-count"]').inner_text() == str(value)
        assert page.locator('[data-testid="ev-drill-row"]').count() == min(value, 200)
        # The export buttons give this tab's table.
        href = page.locator('[data-testid="ev-export-csv"]').get_attribute("href")
        assert href is not None and f"table={table}" in href
        exported = page.request.get(eval_hub.base_url + href)
        assert exported.status == 200, exported.text()
    finally:
        p.close()


def test_grid_heat_map_colours_the_grids_and_a_grid_lists_its_problems(
    browser: Any, eval_hub: LiveHub, api_users: dict[str, ApiUser], made: tuple[int, int]
) -> None:
    rows = api_users["admin"].get("/api/evaluation/regions", level="grid", period="week")["rows"]
    placed = [r for r in rows if r["grid_id"] is not None and r["counts"]["reported"] > 0]
    assert placed, "the module's cases are in no grid"
    top = max(placed, key=lambda r: r["per_km2"])
    p = Page(browser)
    try:
        page = p.sign_in(eval_hub.base_url, "admin", "/evaluation")
        heat = page.locator('[data-testid="ev-grid-heat"]')
        heat.wait_for()
        coloured = heat.locator("polygon.has-data")
        assert coloured.count() == len([r for r in rows if r["grid_id"] is not None])
        cell = heat.locator(f'polygon[data-grid-id="{top["grid_id"]}"]')
        assert cell.get_attribute("data-per-km2") == str(top["per_km2"])
        # The densest grid is the darkest: its fill differs from a grid without data.
        assert cell.get_attribute("fill") != "#f3f4f6"
        cell.dispatch_event("click")
        page.locator('[data-testid="ev-drill-count"]').wait_for()
        n = top["counts"]["reported"]
        assert page.locator('[data-testid="ev-drill-count"]').inner_text() == str(n)
        assert page.locator('[data-testid="ev-drill-row"]').count() == min(n, 200)
        assert page.locator('[data-testid="ev-grid-chart"] canvas').count() >= 1
        assert p.unexpected_errors() == []
    finally:
        p.close()


def test_a_supervisor_sees_their_own_post_row_only(browser: Any, eval_hub: LiveHub) -> None:
    PASSWORDS.setdefault("sup01", "Super#2026")
    sup = ApiUser(eval_hub.base_url, "sup01")
    try:
        rows = sup.get("/api/evaluation/posts", post="supervisor", period="week")["rows"]
    finally:
        sup.close()
    assert [r["user_id"] for r in rows] == [sup.user["id"]]
    p = Page(browser)
    try:
        page = p.sign_in(eval_hub.base_url, "sup01", "/evaluation")
        table = page.locator('[data-testid="ev-table-posts"]')
        table.wait_for()
        keys = table.locator('[data-testid="ev-row"]').evaluate_all(
            "rs => rs.map(r => r.dataset.key)"
        )
        assert keys == [str(sup.user["id"])]
        for key, value in rows[0]["counts"].items():
            cell = table.locator(f'[data-testid="ev-count"][data-figure="{key}"]')
            assert cell.get_attribute("data-value") == str(value), key
        assert page.locator('[data-testid="ev-city"]').count() == 0  # the city is not theirs
        assert p.unexpected_errors() == []
    finally:
        p.close()
