"""The live pages (realtime_ui/static/live.js, board.js, ops.js) against a real hub, in Debian's
Chromium through Playwright: rows follow case changes without a reload, new cases appear, the
connection indicator follows a dropped socket and the page resumes what it missed, the operations
picture counts and maps a new report, and a department's board never shows another department's case.

Changes are made over the API with bearer tokens (httpx), as another user would make them.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

STATIC = Path(__file__).resolve().parents[2] / "realtime_ui" / "static"
TIMEOUT_MS = 20_000
LIVE_MS = 3_000  # "within 3 s, without a reload"
SHOTS = Path("/tmp/cityhub-ui-live")

ROW = '[data-testid="case-row"]'
INDICATOR = '[data-testid="live-indicator"]'
PASSWORDS = {
    "seat1": "Seat#2026",
    "seat2": "Seat#2026",
    "dispatch1": "Dispatch#2026",
    "dept01": "Dept#2026",
    "bigscreen": "Viewer#2026",
}
_seq = itertools.count(1)


# -- API side ----------------------------------------------------------------------------------


class ApiUser:
    """A bearer-token API client for one demo user."""

    def __init__(self, base_url: str, username: str) -> None:
        r = httpx.post(
            f"{base_url}/api/auth/login",
            json={"username": username, "password": PASSWORDS[username], "token": True},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        self.user: dict[str, Any] = body["user"]
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {body['token']}"}, timeout=10
        )

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def report(self, lon: float = 103.80, lat: float = 25.50) -> dict[str, Any]:
        """A video-patrol report (seats may file those; they need coordinates)."""
        cats = self.get("/api/categories")["items"]
        cat = next(c for c in cats if c["kind"] == "event")
        n = next(_seq)
        r = self.http.post(
            "/api/cases",
            json={
                "category_id": cat["id"],
                "source": "video",
                "description": f"视频巡查发现道路旁暴露垃圾（界面实时测试 {n}）",
                "address": f"麒麟区南宁北路 {100 + n} 号",
                "lon": lon,
                "lat": lat,
            },
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def act(self, case_id: int, action: str, **fields: Any) -> dict[str, Any]:
        version = self.get(f"/api/cases/{case_id}")["version"]
        r = self.http.post(
            f"/api/cases/{case_id}/actions", json={"action": action, "version": version, **fields}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def users(live_hub: Any) -> Iterator[dict[str, ApiUser]]:
    made = {name: ApiUser(live_hub.base_url, name) for name in ("seat2", "dispatch1", "dept01")}
    try:
        yield made
    finally:
        for u in made.values():
            u.close()


# -- browser side ------------------------------------------------------------------------------


class Page:
    """A signed-in page in its own context, with its console errors."""

    def __init__(
        self, browser: Any, *, width: int = 1920, height: int = 1080, tz: str = "Asia/Shanghai"
    ) -> None:
        self.ctx = browser.new_context(
            viewport={"width": width, "height": height},
            locale="zh-CN",
            timezone_id=tz,
        )
        self.ctx.set_default_timeout(TIMEOUT_MS)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def sign_in(self, base_url: str, username: str, path: str = "/board") -> Any:
        page = self.page
        page.goto(f"{base_url}/login?next={path}")
        page.fill('[data-testid="login-username"]', username)
        page.fill('[data-testid="login-password"]', PASSWORDS[username])
        page.click('[data-testid="login-submit"]')
        page.wait_for_url(re.compile(re.escape(path) + r"(\?|$)"))
        return page

    def wait_live(self) -> None:
        try:
            self.page.wait_for_selector(f'{INDICATOR}[data-state="live"]')
        except Exception as exc:
            # Typically the page's CSP (connect-src) refusing the websocket's origin.
            raise AssertionError(f"the page never went live; console: {self.errors}") from exc

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def unexpected_errors(self) -> list[str]:
        # A dropped socket is logged by Chromium itself; that one we provoke on purpose.
        return [
            e
            for e in self.errors
            if "WebSocket" not in e
            and "ERR_FAILED" not in e
            and "net::" not in e
            and "Failed to load resource" not in e
        ]

    def close(self) -> None:
        self.ctx.close()


def open_board(browser: Any, base_url: str, username: str, path: str = "/board") -> Page:
    """A signed-in board; ``path="/board?all=1"`` opens it on 全部案件 instead of the user's queue."""
    p = Page(browser)
    p.sign_in(base_url, username, path)
    p.page.wait_for_selector(ROW)
    p.wait_live()
    # A marker that survives only as long as the document does: proves "without a reload".
    p.page.evaluate("window.__sameDocument = true")
    return p


def row(case_id: int, state: str | None = None) -> str:
    sel = f'{ROW}[data-case-id="{case_id}"]'
    return f'{sel}[data-state="{state}"]' if state else sel


# -- tests -------------------------------------------------------------------------------------


def test_live_js_has_no_inner_html() -> None:
    for name in ("live.js", "ops.js", "ops.html", "ops.css"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(
            r"\.(inner|outer)HTML\s*[+]?=|insertAdjacentHTML\(|document\.write", text
        ), name
        assert not re.search(r"<script>|<style>|\sstyle=\"|\son[a-z]+=\"", text), name


def _csp_allows(csp: str, page_url: str, ws_url: str) -> bool:
    """Whether ``connect-src`` (or ``default-src``) of a CSP lets ``page_url`` open ``ws_url``."""
    directives = {
        d.split()[0]: d.split()[1:] for d in (x.strip() for x in csp.split(";")) if d.strip()
    }
    sources = directives.get("connect-src", directives.get("default-src", []))
    page, ws = httpx.URL(page_url), httpx.URL(ws_url)
    ws_origin = f"{ws.scheme}://{ws.host}:{ws.port}"
    for src in sources:
        if src in ("*", f"{ws.scheme}:"):
            return True
        if src == "'self'" and ws.host == page.host and ws.port == page.port:
            return True
        if src.rstrip("/") in (ws_origin, f"{ws_origin}/ws"):
            return True
    return False


@pytest.mark.parametrize("path", ["/board", "/ops"])
def test_pages_csp_lets_them_reach_the_websocket(live_hub: Any, path: str) -> None:
    """The pages' Content-Security-Policy must allow the websocket's origin (its own port)."""
    seat = ApiUser(live_hub.base_url, "seat1")
    try:
        ws_url = seat.get("/api/live")["url"]
        r = httpx.get(f"{live_hub.base_url}{path}", timeout=10)
        assert r.status_code == 200, r.text
        csp = r.headers.get("content-security-policy", "")
        assert _csp_allows(csp, f"{live_hub.base_url}{path}", ws_url), (csp, ws_url)
    finally:
        seat.close()


@pytest.mark.browser
def test_helpers_backoff_and_versions(browser: Any, live_hub: Any) -> None:
    """live.js's pure helpers, run in the browser as the pages use them."""
    p = Page(browser)
    try:
        p.sign_in(live_hub.base_url, "seat1", "/board")
        # the board must have finished loading: an evaluate during its navigation loses its context
        p.page.wait_for_load_state("load")
        out = p.page.evaluate(
            """async () => {
                const m = await import("/static/live.js");
                const delays = [];
                for (const r of [0, 0.5, 1]) for (const n of [1, 2, 3, 6, 10, 50]) {
                    delays.push(m.backoffDelay(n, { random: () => r }));
                }
                const t = m.createVersionTracker();
                const seq = [t.accept(1, 3), t.accept(1, 3), t.accept(1, 2), t.accept(1, 4), t.isNewer(2, 1)];
                t.see(1, 2);
                return { delays, seq, v: t.get(1) };
            }"""
        )
        assert min(out["delays"]) >= 500 and max(out["delays"]) <= 15_000
        assert out["delays"][-1] == 15_000  # full jitter at the cap
        assert out["seq"] == [True, False, False, True, True]
        assert out["v"] == 4  # see() never moves backwards
    finally:
        p.close()


@pytest.mark.browser
def test_registered_elsewhere_updates_row_in_place(browser: Any, live_hub: Any, users: Any) -> None:
    """(a) A case registered by another seat: the row's badge says 待派遣 within 3 s, no reload."""
    seat = users["seat2"]
    case = seat.report()
    p = open_board(browser, live_hub.base_url, "seat1", "/board?all=1")
    try:
        page = p.page
        page.wait_for_selector(row(case["id"], "reported"))
        seat.act(case["id"], "register")
        page.wait_for_selector(row(case["id"], "registered"), timeout=LIVE_MS)
        badge = page.locator(f'{row(case["id"])} [data-testid="state-badge"]')
        assert badge.inner_text() == "待派遣"
        assert page.evaluate("window.__sameDocument") is True
        p.shot("a-board-registered")

        # Dispatched: department and deadline follow in place too.
        dept = users["dept01"].user["department_id"]
        users["dispatch1"].act(case["id"], "dispatch", department_id=dept)
        page.wait_for_selector(row(case["id"], "dispatched"), timeout=LIVE_MS)
        cells = page.locator(row(case["id"]))
        assert cells.locator(".col-dept").inner_text() != "—"
        assert cells.locator(".col-deadline").inner_text() != "—"
        assert page.evaluate("window.__sameDocument") is True
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_new_report_appears_at_top(browser: Any, live_hub: Any, users: Any) -> None:
    """(b) A case reported over the API appears at the top of the list, flashing."""
    p = open_board(browser, live_hub.base_url, "seat1")
    try:
        page = p.page
        case = users["seat2"].report(lon=103.79, lat=25.49)
        page.wait_for_selector(row(case["id"]), timeout=LIVE_MS)
        first = page.locator(ROW).first
        assert first.get_attribute("data-case-id") == str(case["id"])
        assert first.locator(".case-no").inner_text() == case["case_no"]
        assert first.get_attribute("data-state") == "reported"
        assert "row-new" in (first.get_attribute("class") or "")
        p.shot("b-board-new-case")

        # Open it; another seat registers it while we look: the pane follows.
        first.click()
        page.wait_for_selector('[data-testid="detail-case-no"]')
        users["seat2"].act(case["id"], "register")
        page.wait_for_selector(
            '[data-testid="detail-pane"] .detail-head [data-testid="state-badge"][data-state="registered"]',
            timeout=LIVE_MS + 2000,
        )
        # With an action form half filled, a change shows a notice instead of wiping the form.
        page.click('[data-testid="action-button"][data-action="escalate"]')
        page.fill('[data-testid="action-note"]', "请尽快处理")
        users["dispatch1"].act(
            case["id"], "dispatch", department_id=users["dept01"].user["department_id"]
        )
        notice = page.locator('[data-testid="detail-live-notice"]')
        notice.wait_for(state="visible", timeout=LIVE_MS)
        assert "案件已更新" in notice.inner_text()
        assert page.input_value('[data-testid="action-note"]') == "请尽快处理"
        p.shot("b-detail-notice")
        page.click('[data-testid="detail-live-reload"]')
        page.wait_for_selector(
            '[data-testid="detail-pane"] .detail-head [data-testid="state-badge"][data-state="dispatched"]'
        )
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_indicator_reconnects_and_resumes(browser: Any, live_hub: Any, users: Any) -> None:
    """(c) Live; the socket drops and reconnects fail for a while (amber, counting attempts); a case
    changes meanwhile; once back (green) the change is shown - replayed, not reloaded."""
    seat = users["seat2"]
    case = seat.report(lon=103.81, lat=25.51)
    p = open_board(browser, live_hub.base_url, "seat1", "/board?all=1")
    try:
        page = p.page
        page.wait_for_selector(row(case["id"], "reported"))
        assert page.get_attribute(INDICATOR, "data-state") == "live"
        assert page.inner_text(INDICATOR).strip() == "实时"
        p.shot("c-live")

        list_loads: list[str] = []
        page.on(
            "request",
            lambda r: list_loads.append(r.url) if re.search(r"/api/cases(\?|$)", r.url) else None,
        )
        # Away: /api/live refuses (every reconnect starts there), and the socket is closed.
        page.route("**/api/live", lambda route: route.abort())
        page.evaluate("window.cityhubLive.socket.close()")
        page.wait_for_selector(f'{INDICATOR}[data-state="connecting"]', timeout=LIVE_MS)
        seat.act(case["id"], "register")
        page.wait_for_function(
            f"() => Number(document.querySelector('{INDICATOR}').dataset.attempt) >= 2"
        )
        assert "重连中" in page.inner_text(INDICATOR)
        p.shot("c-reconnecting")
        # Still away: the row has not changed.
        assert page.locator(row(case["id"], "reported")).count() == 1

        # Back: the next attempt (or a click on the indicator) connects and resumes.
        page.unroute("**/api/live")
        page.click(INDICATOR)
        p.wait_live()
        page.wait_for_selector(row(case["id"], "registered"), timeout=LIVE_MS)
        assert page.evaluate("window.__sameDocument") is True
        assert list_loads == [], "resumed by replay, not by reloading the list"
        p.shot("c-back-live")
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_ops_picture_maps_and_counts(browser: Any, live_hub: Any, users: Any) -> None:
    """(d) The operations picture: grids and markers on the map, a counter that follows a report."""
    p = Page(browser)
    try:
        page = p.sign_in(live_hub.base_url, "bigscreen", "/ops")
        p.wait_live()
        page.wait_for_function(
            "() => document.querySelectorAll('#ops-map polygon.cell').length >= 400"
        )
        page.wait_for_selector('[data-testid="counter-report"] .counter-value:not(:text("—"))')
        before = int(
            page.get_attribute('[data-testid="counter-report"] .counter-value', "data-value") or 0
        )
        assert page.locator('[data-testid="ops-clock"]').inner_text().strip() != ""

        case = users["seat2"].report(lon=103.795, lat=25.505)
        page.wait_for_function(
            "n => Number(document.querySelector('[data-testid=\"counter-report\"] .counter-value')"
            ".dataset.value) === n",
            arg=before + 1,
            timeout=LIVE_MS,
        )
        marker = page.locator(f'[data-testid="map-marker"][data-case-id="{case["id"]}"]')
        marker.wait_for(timeout=LIVE_MS)
        assert marker.get_attribute("data-state") == "reported"
        assert "grp-pending" in (marker.get_attribute("class") or "")
        first_tick = page.locator('[data-testid="ticker-item"]').first
        assert case["case_no"] in first_tick.inner_text()
        assert "上报" in first_tick.inner_text()
        # The marker sits inside the map's drawing (projected, not at the origin).
        box = marker.bounding_box()
        map_box = page.locator('[data-testid="ops-map"]').bounding_box()
        assert box and map_box
        assert map_box["x"] < box["x"] < map_box["x"] + map_box["width"]
        assert map_box["y"] < box["y"] < map_box["y"] + map_box["height"]

        users["seat2"].act(case["id"], "register")
        page.wait_for_selector(
            f'[data-testid="map-marker"][data-case-id="{case["id"]}"][data-state="registered"]',
            timeout=LIVE_MS,
        )
        assert (
            page.locator('[data-testid="ticker-item"]').first.get_attribute("data-action")
            == "register"
        )
        time.sleep(0.5)
        p.shot("d-ops")
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_department_board_never_shows_other_departments_case(
    browser: Any, live_hub: Any, users: Any
) -> None:
    """(e) dept01's board: a case dispatched to another department never shows up, while one
    dispatched to dept01 does (so the page is listening)."""
    mine = users["dept01"].user["department_id"]
    depts = users["seat2"].get("/api/departments")["items"]
    other = next(d["id"] for d in depts if d["id"] != mine)
    seat, dispatcher = users["seat2"], users["dispatch1"]

    p = open_board(browser, live_hub.base_url, "dept01")
    try:
        page = p.page
        page.evaluate(
            f"""() => {{
                window.__seenIds = new Set();
                const body = document.querySelector('[data-testid="case-rows"]');
                const note = () => body.querySelectorAll('{ROW}').forEach(r => window.__seenIds.add(r.dataset.caseId));
                note();
                new MutationObserver(note).observe(body, {{ childList: true, subtree: true }});
            }}"""
        )
        theirs = seat.report(lon=103.805, lat=25.495)
        ours = seat.report(lon=103.806, lat=25.496)
        for c in (theirs, ours):
            seat.act(c["id"], "register")
        dispatcher.act(theirs["id"], "dispatch", department_id=other)
        dispatcher.act(ours["id"], "dispatch", department_id=mine)
        page.wait_for_selector(row(ours["id"], "dispatched"), timeout=LIVE_MS)
        time.sleep(1.0)  # the other case's events came before ours; give stragglers a moment
        seen = set(page.evaluate("() => [...window.__seenIds]"))
        assert str(ours["id"]) in seen
        assert str(theirs["id"]) not in seen
        names = set(page.locator(f"{ROW} .col-dept").all_inner_texts())
        assert len(names) == 1, names
        assert page.evaluate("window.__sameDocument") is True
        p.shot("e-department-board")
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_silent_socket_is_given_up_and_replaced(browser: Any, live_hub: Any) -> None:
    """A socket that stays open but delivers nothing (a sleeping laptop, a dead NAT entry) is closed
    after two heartbeats of silence and replaced. The heartbeat is shortened to 1 s for the test; the
    websocket is routed through Playwright, which stops forwarding on the first connection."""
    p = Page(browser)
    try:
        page = p.sign_in(live_hub.base_url, "seat1", "/board")
        p.wait_live()
        connections: list[dict[str, Any]] = []

        def route(ws: Any) -> None:
            conn = {"silent": False, "frames": 0}
            connections.append(conn)
            server = ws.connect_to_server()

            def to_page(message: Any) -> None:
                if conn["silent"]:
                    return
                conn["frames"] += 1
                ws.send(message)
                # The first connection goes silent once subscribed; later ones stay healthy.
                if len(connections) == 1 and "subscribed" in str(message):
                    conn["silent"] = True

            ws.on_message(lambda m: server.send(m))
            server.on_message(to_page)

        page.route_web_socket(re.compile(r"/ws(\?|$)"), route)
        page.evaluate(
            """async () => {
                const m = await import("/static/live.js");
                window.__states = [];
                window.__probe = m.connectLive({
                    channels: ["cases"], heartbeat: 1,
                    onState: (s) => window.__states.push(s.state),
                });
            }"""
        )
        page.wait_for_function(
            """() => { const s = window.__states.join(" ");
                       return /live.*connecting.*live/.test(s); }""",
            timeout=10_000,
        )
        assert len(connections) >= 2
        assert connections[0]["silent"] is True
        page.evaluate("window.__probe.close()")
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_resync_reloads_the_list_with_its_filters(browser: Any, live_hub: Any, users: Any) -> None:
    """A resume the hub cannot serve (here: an offset past its head, as after a hub reset) is
    answered with `resync`; the board reloads the list over REST with the filters it shows."""
    p = open_board(browser, live_hub.base_url, "seat1")
    try:
        page = p.page
        page.locator('[data-testid="filter-state-reported"]').check()
        page.wait_for_function(
            f"""() => document.getElementById("list-loading").hidden &&
                [...document.querySelectorAll('{ROW}')].every(r => r.dataset.state === "reported")"""
        )
        positions = page.evaluate("window.cityhubLive.positions()")
        assert "cases" in positions
        page.evaluate(
            """() => {
                const key = "cityhub.live." + location.pathname;
                const pos = JSON.parse(sessionStorage.getItem(key));
                pos.cases.offset += 1000000;
                sessionStorage.setItem(key, JSON.stringify(pos));
            }"""
        )
        loads: list[str] = []
        page.on(
            "request",
            lambda r: loads.append(r.url) if re.search(r"/api/cases\?", r.url) else None,
        )
        page.reload()
        p.wait_live()
        deadline = time.monotonic() + 5
        while len(loads) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(loads) == 2, loads  # the page's own load, then the resync's
        assert all("state=reported" in u for u in loads)
        # And it goes on from the hub's head: a new report shows up.
        case = users["seat2"].report(lon=103.802, lat=25.503)
        page.wait_for_selector(row(case["id"], "reported"), timeout=LIVE_MS)
        now = page.evaluate("window.cityhubLive.positions()")
        assert now["cases"]["offset"] < positions["cases"]["offset"] + 1000000
        assert p.unexpected_errors() == []
    finally:
        p.close()
