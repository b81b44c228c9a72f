"""The big screen (/ops: realtime_ui/static/ops*.js) as the whole operations picture, against the
session's demo hub in Debian's Chromium through Playwright: an open case reported on an earlier day
is on the map (not only today's), cameras and speakers are on the map with the status the API gives,
the 12319 queue board shows the day's call count, this week's evaluation shows the API's rates, a
case change arrives live, and after the server drops the websocket (and refuses reconnects for a
while) the page reconnects by itself, shows the change it missed and a later one. A click on a
speaker offers its recordings only to a role that may play them (a seat plays one and sees it
among the warnings playing now; the viewer gets a note); a click on a camera opens its live tile.
The evaluation widgets refresh every minute; department staff see their department only.

The websocket is routed through Playwright so the test can close it from the server's side.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.ui.test_ui_live import INDICATOR, LIVE_MS, ApiUser, Page

pytestmark = pytest.mark.browser

MARKER = '[data-testid="map-marker"]'
CAMERA = '[data-testid="map-camera"]'
SPEAKER = '[data-testid="map-speaker"]'
OPEN_STATES = ("registered", "dispatched", "handling", "feedback", "verifying", "returned")
#: Every state a case is still open in (hub/core/workflow.py CaseState, less closed/rejected/voided).
ALL_OPEN = (
    "reported",
    "confirming",
    "quick_handling",
    "registered",
    "dispatched",
    "returned",
    "handling",
    "deferred",
    "feedback",
    "verifying",
    "verified",
)


@pytest.fixture(scope="module")
def seat(live_hub: Any) -> Iterator[ApiUser]:
    u = ApiUser(live_hub.base_url, "seat2")
    try:
        yield u
    finally:
        u.close()


@pytest.fixture(scope="module")
def dispatcher(live_hub: Any) -> Iterator[ApiUser]:
    u = ApiUser(live_hub.base_url, "dispatch1")
    try:
        yield u
    finally:
        u.close()


def city_midnight(api: ApiUser) -> datetime:
    zone = ZoneInfo(api.get("/api/auth/me")["timezone"])
    return datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)


def earlier_open_case(api: ApiUser) -> dict[str, Any]:
    """An open case with a place, reported before the city's today."""
    midnight = city_midnight(api)
    for state in OPEN_STATES:
        items = api.get("/api/cases", state=state, until=midnight.isoformat(), limit=50)["items"]
        for c in items:
            if (
                isinstance(c.get("lon"), float)
                and datetime.fromisoformat(c["reported_at"]) < midnight
            ):
                return dict(c)
    pytest.fail("the demo city has no open case of an earlier day")


def all_cases(api: ApiUser, **params: Any) -> list[dict[str, Any]]:
    """Every page of GET /api/cases with these filters."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        res = api.get("/api/cases", **params, limit=200, **({"cursor": cursor} if cursor else {}))
        out.extend(res["items"])
        cursor = res.get("next_cursor")
        if not cursor:
            return out


def open_ops(
    browser: Any,
    base_url: str,
    username: str,
    drops: list[Any] | None = None,
    down: dict[str, bool] | None = None,
) -> Page:
    """/ops signed in; with `drops`, every websocket goes through Playwright and its route is kept;
    while `down["on"]` the "server" closes every new websocket at once (a hub restarting)."""
    p = Page(browser)
    if drops is not None:

        def route(ws: Any) -> None:
            if down and down["on"]:
                ws.close(code=1013, reason="try again later")
                return
            server = ws.connect_to_server()
            ws.on_message(lambda m: server.send(m))
            server.on_message(lambda m: ws.send(m))
            drops.append(ws)

        p.page.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    p.sign_in(base_url, username, "/ops")
    p.wait_live()
    p.page.wait_for_function("() => Number(document.body.dataset.markers || 0) > 0")
    return p


def test_ops_files_are_modules_of_a_readable_size() -> None:
    from tests.ui.test_ui_live import STATIC

    files = sorted(STATIC.glob("ops*.js"))
    assert {f.name for f in files} >= {"ops.js", "ops-map.js", "ops-cases.js", "ops-panels.js"}
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert len(text.splitlines()) < 400, f.name
        assert "innerHTML" not in text, f.name


def test_ops_shows_every_flow_and_recovers_from_a_dropped_socket(
    browser: Any, live_hub: Any, seat: ApiUser, dispatcher: ApiUser
) -> None:
    old = earlier_open_case(seat)
    cams = [c for c in seat.get("/api/cameras")["items"] if c["location"] and c["active"]]
    spks = [s for s in seat.get("/api/speakers")["items"] if s["location"] and s["active"]]
    assert cams and spks, "the demo city has cameras and speakers"
    drops: list[Any] = []
    down = {"on": False}
    p = open_ops(browser, live_hub.base_url, "bigscreen", drops, down)
    try:
        page = p.page
        # An open case of an earlier day is on the map, drawn in its state.
        marker = page.locator(f'{MARKER}[data-case-id="{old["id"]}"]')
        marker.wait_for()
        assert marker.get_attribute("data-state") == old["state"]
        # The open-cases counter is the number of open cases drawn or not (all days).
        page.wait_for_selector('[data-testid="counter-open"] .counter-value:not(:text("—"))')
        assert (
            int(
                page.get_attribute('[data-testid="counter-open"] .counter-value', "data-value") or 0
            )
            > 0
        )

        # Cameras and speakers with the status the API gives them (the channel's, once it has one).
        page.wait_for_function(
            f"n => document.querySelectorAll('{CAMERA}').length === n", arg=len(cams)
        )
        page.wait_for_function(
            f"n => document.querySelectorAll('{SPEAKER}').length === n", arg=len(spks)
        )
        cam_now = {c["id"]: c["status"]["state"] for c in seat.get("/api/cameras")["items"]}
        spk_now = {s["id"]: s["status"]["state"] for s in seat.get("/api/speakers")["items"]}
        shown_cams = page.eval_on_selector_all(
            CAMERA, "ns => ns.map((n) => [Number(n.dataset.cameraId), n.dataset.status])"
        )
        shown_spks = page.eval_on_selector_all(
            SPEAKER, "ns => ns.map((n) => [Number(n.dataset.speakerId), n.dataset.status])"
        )
        assert {i: s for i, s in shown_cams} == {c["id"]: cam_now[c["id"]] for c in cams}
        assert {i: s for i, s in shown_spks} == {s["id"]: spk_now[s["id"]] for s in spks}

        # The queue board shows the day's call count, as the hotline API gives it.
        board = seat.get("/api/hotline/board")
        page.wait_for_selector('[data-testid="queue-board"][data-ready="true"]')
        arrived = page.get_attribute('[data-testid="today-arrived"]', "data-value")
        assert arrived == str(board["today"]["arrived"])
        waiting = sum(1 for c in board["calls"] if c["state"] == "queued")
        assert page.get_attribute('[data-testid="board-waiting-count"]', "data-value") == str(
            waiting
        )

        # This week's evaluation: the API's rates and the worst departments.
        city = seat.get("/api/evaluation/city", period="week")
        page.wait_for_selector('[data-testid="eval-rate"]')
        rates = dict(
            page.eval_on_selector_all(
                '[data-testid="eval-rate"]',
                "ns => ns.map((n) => [n.dataset.key, n.querySelector('strong').textContent])",
            )
        )
        assert rates["on_time_rate"] == city["rates"]["on_time_rate"]["text"]
        assert rates["register_rate"] == city["rates"]["register_rate"]["text"]
        assert page.inner_text('[data-testid="eval-period"]') == city["period"]["label"]
        depts = seat.get("/api/evaluation/departments", period="week")["rows"]
        worst = page.eval_on_selector_all(
            '[data-testid="worst-dept"]', "ns => ns.map((n) => Number(n.dataset.departmentId))"
        )
        assert worst == [r["department_id"] for r in reversed(depts)][: len(worst)] and worst
        # No alarms API yet: the panel says so plainly.
        assert page.locator('[data-testid="alarms-panel"]').is_visible()

        # A case change arrives live.
        case = seat.report(lon=103.796, lat=25.503)
        new = page.locator(f'{MARKER}[data-case-id="{case["id"]}"]')
        new.wait_for(timeout=LIVE_MS)
        assert new.get_attribute("data-state") == "reported"
        seat.act(case["id"], "register")
        page.wait_for_selector(
            f'{MARKER}[data-case-id="{case["id"]}"][data-state="registered"]', timeout=LIVE_MS
        )
        page.evaluate("window.__sameDocument = true")

        # The server drops the websocket and refuses the reconnects for a while; a case changes
        # meanwhile. Once it is back the page has reconnected by itself and shows the change it
        # missed, then follows later ones.
        assert len(drops) == 1
        down["on"] = True
        drops[0].close(code=1012, reason="restart")
        page.wait_for_selector(f'{INDICATOR}[data-state="connecting"]', timeout=LIVE_MS)
        dispatcher.act(case["id"], "dispatch", department_id=first_department(dispatcher))
        page.wait_for_function(
            f"() => Number(document.querySelector('{INDICATOR}').dataset.attempt) >= 2",
            timeout=20_000,
        )
        assert page.locator(
            f'{MARKER}[data-case-id="{case["id"]}"][data-state="registered"]'
        ).count()
        down["on"] = False
        page.wait_for_selector(f'{INDICATOR}[data-state="live"]', timeout=30_000)
        assert len(drops) >= 2, "a second websocket was opened"
        page.wait_for_selector(
            f'{MARKER}[data-case-id="{case["id"]}"][data-state="dispatched"]', timeout=LIVE_MS
        )
        later = seat.report(lon=103.798, lat=25.504)
        page.locator(f'{MARKER}[data-case-id="{later["id"]}"]').wait_for(timeout=LIVE_MS)
        assert page.evaluate("window.__sameDocument") is True, "recovered without a reload"
        # The state channels came back too: the board is still fed.
        assert page.get_attribute('[data-testid="queue-board"]', "data-ready") == "true"

        # The viewer may look at a speaker but not play to it; a camera opens its live tile.
        page.locator(SPEAKER).first.dispatch_event("click")
        page.wait_for_selector('[data-testid="speaker-dialog"]')
        assert page.locator('[data-testid="speaker-readonly"]').is_visible()
        assert page.locator('[data-testid="speaker-play"]').count() == 0
        page.keyboard.press("Escape")
        page.wait_for_selector('[data-testid="speaker-dialog"]', state="detached")
        cam_id = page.locator(CAMERA).first.get_attribute("data-camera-id")
        page.locator(CAMERA).first.dispatch_event("click")
        view = page.locator('[data-testid="camera-overlay"] [data-testid="live-view"]')
        view.wait_for()
        assert view.get_attribute("data-camera-id") == cam_id
        # The hub answered the live request (a viewer may watch): the view holds a viewer id.
        page.wait_for_selector('[data-testid="live-view"]:not([data-viewer-id=""])', timeout=20_000)
        page.click('[data-testid="live-close"]')
        page.wait_for_selector('[data-testid="camera-overlay"]', state="detached")
        p.shot("ops-whole-picture")
        assert p.unexpected_errors() == []
    finally:
        p.close()


def test_ops_first_load_reads_the_markers_in_one_answer(
    browser: Any, live_hub: Any, seat: ApiUser
) -> None:
    """/ops loads every open case (all days) with one GET /api/cases/markers instead of paging the
    case list by state; the map then holds exactly those markers with a place (and today's cases),
    each in its state, and the open-cases counter is their number."""
    viewer = ApiUser(live_hub.base_url, "bigscreen")
    p = Page(browser)
    asked: list[str] = []
    p.page.on("request", lambda r: asked.append(r.url) if "/api/cases" in r.url else None)
    try:
        p.sign_in(live_hub.base_url, "bigscreen", "/ops")
        p.wait_live()
        page = p.page
        page.wait_for_function("() => Number(document.body.dataset.markers || 0) > 0")
        page.wait_for_selector('[data-testid="counter-open"] .counter-value:not(:text("—"))')
        served = viewer.get("/api/cases/markers")["items"]
        assert sum("/api/cases/markers" in u for u in asked) == 1
        assert not [u for u in asked if "/api/cases?" in u and "state=" in u], asked
        open_ids = {m["id"]: m for m in served if m["state"] in ALL_OPEN}
        placed = {i for i, m in open_ids.items() if m["lon"] is not None}
        today = all_cases(viewer, since=city_midnight(viewer).isoformat())
        may_show = placed | {c["id"] for c in today if c["lon"] is not None}
        shown = dict(
            page.eval_on_selector_all(
                MARKER, "ns => ns.map((n) => [Number(n.dataset.caseId), n.dataset.state])"
            )
        )
        assert placed <= set(shown) <= may_show
        assert all(shown[i] == open_ids[i]["state"] for i in placed)
        counter = page.get_attribute('[data-testid="counter-open"] .counter-value', "data-value")
        assert int(counter or 0) == len(open_ids)
        assert p.unexpected_errors() == []
    finally:
        p.close()
        viewer.close()


def test_ops_for_department_staff_shows_only_their_department(
    browser: Any, live_hub: Any, seat: ApiUser, dispatcher: ApiUser
) -> None:
    """dept01 on /ops: the map holds their department's open cases only, the hotline and speaker
    panels say they are not theirs, and a case dispatched to them arrives live (their `dept:N`
    channel) while one dispatched elsewhere does not."""
    staff = ApiUser(live_hub.base_url, "dept01")
    p = open_ops(browser, live_hub.base_url, "dept01")
    try:
        page = p.page
        mine = staff.user["department_id"]
        other = next(d["id"] for d in staff.get("/api/departments")["items"] if d["id"] != mine)
        drawable = {"lon", "lat"}
        open_cases = [c for c in all_cases(staff, state=list(ALL_OPEN)) if drawable <= c.keys()]
        today = all_cases(staff, since=city_midnight(staff).isoformat())
        want_open = {c["id"] for c in open_cases if c["lon"] is not None}
        may_show = want_open | {c["id"] for c in today if c["state"] not in ("rejected", "voided")}
        shown = set(
            page.eval_on_selector_all(MARKER, "ns => ns.map((n) => Number(n.dataset.caseId))")
        )
        assert want_open, "dept01 holds open cases in the demo city"
        assert want_open <= shown <= may_show
        assert page.locator('[data-testid="ops-no-access"]').count() == 2
        assert page.locator(CAMERA).count() == 0 and page.locator(SPEAKER).count() == 0

        ours = seat.report(lon=103.807, lat=25.497)
        elsewhere = seat.report(lon=103.808, lat=25.498)
        for c in (ours, elsewhere):
            seat.act(c["id"], "register")
        dispatcher.act(elsewhere["id"], "dispatch", department_id=other)
        dispatcher.act(ours["id"], "dispatch", department_id=mine)
        page.wait_for_selector(
            f'{MARKER}[data-case-id="{ours["id"]}"][data-state="dispatched"]', timeout=LIVE_MS
        )
        assert page.locator(f'{MARKER}[data-case-id="{elsewhere["id"]}"]').count() == 0
        assert p.unexpected_errors() == []
    finally:
        p.close()
        staff.close()


def first_department(api: ApiUser) -> int:
    return int(api.get("/api/departments")["items"][0]["id"])


def test_ops_seat_plays_a_warning_at_a_speaker(browser: Any, live_hub: Any) -> None:
    """A seat (a role POST /api/warnings allows) picks a recording on a speaker of the map; the
    warning shows among the warnings playing now."""
    p = open_ops(browser, live_hub.base_url, "seat1")
    try:
        page = p.page
        page.wait_for_selector(f'{SPEAKER}[data-status="online"]')
        page.locator(f'{SPEAKER}[data-status="online"]').first.dispatch_event("click")
        dialog = page.locator('[data-testid="speaker-dialog"]')
        dialog.wait_for()
        speaker_id = dialog.get_attribute("data-speaker-id")
        dialog.locator('[data-testid="speaker-play"]').first.click()
        dialog.wait_for(state="detached")
        card = page.locator('[data-testid="ops-warnings"] [data-testid="running-warning"]')
        card.first.wait_for(timeout=LIVE_MS)
        target = card.first.locator('[data-testid="warning-target"]')
        assert target.first.get_attribute("data-speaker-id") == speaker_id
        assert p.unexpected_errors() == []
    finally:
        p.close()


def test_ops_evaluation_widgets_refresh_by_themselves(
    browser: Any, live_hub: Any, seat: ApiUser
) -> None:
    """The evaluation widgets are read again every minute: a case registered meanwhile shows in
    this week's 派遣率 denominator without a reload. The page's clock is Playwright's, jumped a
    minute ahead (the websocket may be given up by the jump; it comes back by itself)."""
    p = Page(browser)
    try:
        p.page.clock.install()
        p.sign_in(live_hub.base_url, "bigscreen", "/ops")
        p.wait_live()
        page = p.page
        rate = '[data-testid="eval-rate"][data-key="dispatch_rate"]'
        page.wait_for_selector(rate)
        page.evaluate("window.__sameDocument = true")
        before = seat.get("/api/evaluation/city", period="week")["rates"]["dispatch_rate"]
        assert page.get_attribute(rate, "title") == f"{before['num']} / {before['den']}"

        case = seat.report(lon=103.797, lat=25.502)
        seat.act(case["id"], "register")
        after = seat.get("/api/evaluation/city", period="week")["rates"]["dispatch_rate"]
        assert after["den"] == before["den"] + 1
        with page.expect_request(lambda r: "/api/evaluation/city" in r.url):
            page.clock.fast_forward(61_000)
        page.wait_for_selector(f'{rate}[title="{after["num"]} / {after["den"]}"]')
        assert page.locator(rate).locator("strong").inner_text() == after["text"]
        assert page.evaluate("window.__sameDocument") is True
        p.wait_live()
        assert p.unexpected_errors() == []
    finally:
        p.close()
