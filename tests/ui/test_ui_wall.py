"""The video wall (realtime_ui/static/wall*.js) against a real demo hub, in Debian's Chromium
through Playwright: the board's 视频墙 link and who may use the page (a viewer sees it without
controls); the camera tree by street and grid with its search; a camera put on a tile by a click and
by drag and drop, a named layout saved and applied after a reload, two windows sharing the wall;
then, with the video API and the camera simulator: a 16-tile wall whose thumbnails advance (one
request in flight per tile at most, none while the window is hidden), a tile enlarged to live
WebRTC video whose ``currentTime`` advances, and a snapshot to a new case whose JPEG attachment has
the SHA-256 the snapshot answered.

The hub is this module's own (``cityhub serve --demo``). When the demo has fewer than 16 cameras the
module starts a ``CameraSimulator`` (contract S, in a thread with its own event loop) and creates
cameras over ``POST /api/cameras`` as admin, placed at the demo speakers' locations (so they fall in
the demo's grids). Tests needing a route the hub does not have yet are skipped, naming the route.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveHub, scratch_dir, start_hub
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.ui.test_ui_live import PASSWORDS, ApiUser, Page

pytestmark = pytest.mark.browser

PASSWORDS.setdefault("admin", "Admin#2026")
PASSWORDS.setdefault("dept01", "Dept#2026")
TILE = '[data-testid="wall-tile"]'
ITEM = '[data-testid="camera-item"]'
WANT_CAMERAS = 16
VIDEO_MS = 60_000  # first keyframe through ingest, thumbnailer and the page (on a busy machine)

THUMBNAIL = "/api/cameras/{camera_id}/thumbnail"
LIVE = "/api/cameras/{camera_id}/live"
SNAPSHOT = "/api/cameras/{camera_id}/snapshot"


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wall_hub(scratch_root: Path) -> Iterator[LiveHub]:
    hub = start_hub(scratch_dir(scratch_root, "wall") / "data", demo_cases=50)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium with WebRTC allowed on loopback (the hub keeps its candidates on 127.0.0.0/8)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = [
        *CHROMIUM_ARGS,
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield b
        finally:
            b.close()


class Api:
    """A bearer-token client for one demo user."""

    def __init__(self, base_url: str, username: str) -> None:
        r = httpx.post(
            f"{base_url}/api/auth/login",
            json={"username": username, "password": PASSWORDS[username], "token": True},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {r.json()['token']}"},
            timeout=30,
        )

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: Any) -> Any:
        r = self.http.post(path, json=body)
        assert r.is_success, r.text
        return r.json() if r.content else None

    def patch(self, path: str, body: Any) -> Any:
        r = self.http.patch(path, json=body)
        assert r.is_success, r.text
        return r.json() if r.content else None

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def admin(wall_hub: LiveHub) -> Iterator[Api]:
    a = Api(wall_hub.base_url, "admin")
    try:
        yield a
    finally:
        a.close()


class SimulatorThread:
    """A CameraSimulator run by its own event loop in a thread, for these synchronous tests."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.urls: list[str] = []
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-simulator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test through start()
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        from video.simulator.control import CameraSimulator

        async with CameraSimulator(self.count, clock=False) as sim:
            self.urls = [sim.url(n) for n in range(1, self.count + 1)]
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.1)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(120) or self.error is not None:
            raise RuntimeError(f"camera simulator did not start: {self.error!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture(scope="module")
def cams(wall_hub: LiveHub, admin: Api) -> Iterator[list[dict[str, Any]]]:
    """At least 16 cameras on the hub: the demo's, or simulated ones created here."""
    have = admin.get("/api/cameras")["items"]
    sim: SimulatorThread | None = None
    if len(have) < WANT_CAMERAS:
        from video.simulator.control import unavailable_reason

        why = unavailable_reason()
        if why:
            pytest.skip(f"camera simulator unavailable: {why}")
        sim = SimulatorThread(WANT_CAMERAS)
        sim.start()
        places = [s["location"] for s in admin.get("/api/speakers")["items"] if s["location"]]
        tag = uuid.uuid4().hex[:4]
        for i, url in enumerate(sim.urls):
            where = places[i % len(places)]
            admin.post(
                "/api/cameras",
                {
                    "name": f"界面测试摄像头{tag}-{i + 1:02d}",
                    "url": url,
                    "location": {"lon": where["lon"] + 0.0001 * i, "lat": where["lat"]},
                },
            )
        have = admin.get("/api/cameras")["items"]
    try:
        yield [c for c in have if c["active"]]
    finally:
        if sim is not None:
            sim.stop()


def body_fields(hub: LiveHub, path: str) -> set[str]:
    """The JSON body fields the hub's OpenAPI document gives for POST ``path``."""
    doc = httpx.get(f"{hub.base_url}/openapi.json", timeout=10).json()
    ops = {k.replace(":int", ""): v for k, v in doc.get("paths", {}).items()}
    op = ops.get(path, {}).get("post", {})
    schema = (
        op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    )
    ref = schema.get("$ref", "")
    if ref:
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return set(schema.get("properties", {}))


def api_paths(hub: LiveHub) -> set[str]:
    doc = httpx.get(f"{hub.base_url}/openapi.json", timeout=10).json()
    return {p.replace(":int", "") for p in doc.get("paths", {})}


def need(hub: LiveHub, *paths: str) -> None:
    have = api_paths(hub)
    assert "/api/cameras/{camera_id}" in have, sorted(have)  # the spelling compared below
    missing = [p for p in paths if p not in have]
    if missing:
        pytest.skip(f"the hub has no {', '.join(missing)} yet")


def open_wall(
    browser: Any, hub: LiveHub, username: str, path: str = "/wall", init: str | None = None
) -> Page:
    p = Page(browser)
    if init:
        p.page.add_init_script(init)
    p.sign_in(hub.base_url, username, path)
    p.page.wait_for_selector('[data-testid="video-wall"]')
    p.wait_live()
    return p


def place(page: Any, tile: int, camera_id: int) -> None:
    """Click a tile, then a camera in the tree."""
    page.click(f'{TILE}[data-index="{tile}"]')
    page.click(f'{ITEM}[data-id="{camera_id}"]')
    page.wait_for_selector(f'{TILE}[data-index="{tile}"][data-camera-id="{camera_id}"]')


def fill_wall(page: Any, camera_ids: list[int], tiles: int = 16) -> None:
    page.click(f'[data-testid="layout-{tiles}"]')
    page.wait_for_function(f"() => document.querySelectorAll('{TILE}').length === {tiles}")
    page.click(f'{TILE}[data-index="0"]')
    for i, cid in enumerate(camera_ids[:tiles]):
        page.click(f'{ITEM}[data-id="{cid}"]')  # the next tile is chosen after each click
        page.wait_for_selector(f'{TILE}[data-index="{i}"][data-camera-id="{cid}"]')


# -- tests: the page ---------------------------------------------------------------------------


def test_wall_files_have_no_inline_html_or_styles() -> None:
    """The page lives under a strict CSP: no innerHTML, inline scripts, styles or handlers."""
    static = Path(__file__).resolve().parents[2] / "realtime_ui" / "static"
    files = sorted(static.glob("wall*.*"))
    assert {f.suffix for f in files} == {".html", ".js", ".css"}
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert not re.search(
            r"\.(inner|outer)HTML\s*[+]?=|insertAdjacentHTML\(|document\.write", text
        ), f.name
        assert not re.search(r"<script>|<style>|\sstyle=[\"$]|\son[a-z]+=\"", text), f.name
        if f.suffix == ".js":
            assert len(text.splitlines()) < 400, f.name


def test_board_link_and_roles(browser: Any, wall_hub: LiveHub) -> None:
    """A seat finds 视频墙 on the board and gets the wall with its controls; the viewer (the big
    screen) sees the wall without snapshot, warning or patrol controls; a department is told the
    wall is not theirs."""
    p = Page(browser)
    try:
        page = p.sign_in(wall_hub.base_url, "seat1", "/board")
        link = page.locator('[data-testid="nav-wall"]')
        link.wait_for(state="visible")
        link.click()
        page.wait_for_url("**/wall")
        page.wait_for_selector('[data-testid="video-wall"][data-can-control="true"]')
        page.wait_for_selector('[data-testid="patrol-form"]')
        for n in (1, 4, 9, 16, 25, 36, 48):
            page.click(f'[data-testid="layout-{n}"]')
            page.wait_for_function(f"() => document.querySelectorAll('{TILE}').length === {n}")
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()
    v = open_wall(browser, wall_hub, "bigscreen")
    try:
        v.page.wait_for_selector('[data-testid="video-wall"][data-can-control="false"]')
        v.page.wait_for_selector('[data-testid="read-only-note"]')
        assert v.page.locator('[data-testid="patrol-panel"]').count() == 0
        assert v.page.locator('[data-testid="tile-snapshot"]').count() == 0
    finally:
        v.close()
    d = Page(browser)
    try:
        d.sign_in(wall_hub.base_url, "dept01", "/wall")
        d.page.wait_for_selector('[data-testid="wall-denied"]')
    finally:
        d.close()


def test_tree_search_place_and_layouts(
    browser: Any, wall_hub: LiveHub, admin: Api, cams: list[dict[str, Any]]
) -> None:
    """The tree groups every camera by street and grid; the search narrows it; a camera goes on a
    tile by click and by drag and drop; a named layout is saved, and after a reload applied
    again; a second window of the same seat follows the wall; a camera added meanwhile (its
    status heard on the cameras channel) joins the tree."""
    p = open_wall(browser, wall_hub, "seat1")
    page = p.page
    try:
        page.wait_for_function(
            f"() => document.querySelectorAll('{ITEM}').length === {len(cams)}", timeout=10_000
        )
        streets = {c["street"]["name"] if c["street"] else "未划分" for c in cams}
        shown = set(
            page.locator('[data-testid="tree-street"]').evaluate_all(
                "ss => ss.map(s => s.firstChild.textContent.trim())"
            )
        )
        assert shown == streets
        needle = cams[3]["name"]
        page.fill('[data-testid="camera-search"]', needle)
        want = sum(1 for c in cams if needle.lower() in c["name"].lower())
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length === {want}")
        page.fill('[data-testid="camera-search"]', "")

        page.click('[data-testid="layout-4"]')
        page.wait_for_function(f"() => document.querySelectorAll('{TILE}').length === 4")
        place(page, 0, cams[0]["id"])
        # HTML5 drag and drop from the tree onto tile 2.
        page.drag_and_drop(f'{ITEM}[data-id="{cams[1]["id"]}"]', f'{TILE}[data-index="2"]')
        page.wait_for_selector(f'{TILE}[data-index="2"][data-camera-id="{cams[1]["id"]}"]')
        assert (
            page.locator(f'{TILE}[data-index="0"] [data-testid="tile-name"]').inner_text()
            == (cams[0]["name"])
        )

        # A second window of the seat shows the same wall and follows a change made here.
        other = p.ctx.new_page()
        other.goto(f"{wall_hub.base_url}/wall")
        other.wait_for_selector(f'{TILE}[data-index="2"][data-camera-id="{cams[1]["id"]}"]')
        place(page, 3, cams[2]["id"])
        other.wait_for_selector(f'{TILE}[data-index="3"][data-camera-id="{cams[2]["id"]}"]')
        other.close()

        name = f"测试布局-{uuid.uuid4().hex[:4]}"
        page.fill('[data-testid="layout-name"]', name)
        page.click('[data-testid="layout-save"]')
        page.wait_for_selector(
            f'[data-testid="layout-select"] option[value="{name}"]', state="attached"
        )
        # Change the wall, reload, apply the saved layout.
        page.click('[data-testid="layout-9"]')
        page.click(f'{TILE}[data-index="0"]')  # chosen: its tools show
        page.click(f'{TILE}[data-index="0"] [data-testid="tile-clear"]')
        page.wait_for_selector(f'{TILE}[data-index="0"][data-camera-id=""]')
        page.reload()
        page.wait_for_selector(
            f'[data-testid="layout-select"] option[value="{name}"]', state="attached"
        )
        page.select_option('[data-testid="layout-select"]', name)
        page.wait_for_function(f"() => document.querySelectorAll('{TILE}').length === 4")
        page.wait_for_selector(f'{TILE}[data-index="0"][data-camera-id="{cams[0]["id"]}"]')
        page.wait_for_selector(f'{TILE}[data-index="2"][data-camera-id="{cams[1]["id"]}"]')
        page.wait_for_selector(f'{TILE}[data-index="3"][data-camera-id="{cams[2]["id"]}"]')
        assert page.get_attribute(f'{TILE}[data-index="1"]', "data-camera-id") == ""
        p.shot("wall-layout-4")
        # A camera added meanwhile (its status heard on the channel) joins the tree.
        added = admin.post(
            "/api/cameras",
            {
                "name": f"新增摄像头-{uuid.uuid4().hex[:4]}",
                "url": cams[0]["url"],
                "location": cams[0]["location"],
            },
        )
        page.wait_for_selector(f'{ITEM}[data-id="{added["id"]}"]', timeout=20_000)
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_new_window_is_the_next_screen(
    browser: Any, wall_hub: LiveHub, cams: list[dict[str, Any]]
) -> None:
    """「新窗口」 opens /wall?screen=2: the same tile count, its own cameras, and a camera put on
    screen 2 leaves screen 1 as it was."""
    p = open_wall(browser, wall_hub, "seat2")
    page = p.page
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 2")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cams[0]["id"])
        with p.ctx.expect_page() as popup:
            page.click('[data-testid="new-window"]')
        second = popup.value
        second.wait_for_url("**/wall?screen=2")
        second.wait_for_selector('[data-testid="video-wall"][data-screen="2"]')
        assert second.locator('[data-testid="screen-no"]').inner_text() == "第 2 屏"
        second.wait_for_function(f"() => document.querySelectorAll('{TILE}').length === 4")
        assert second.get_attribute(f'{TILE}[data-index="0"]', "data-camera-id") == ""
        # The tree is folded away on the extra screens; open it and place a camera there.
        second.click('[data-testid="tree-toggle"]')
        place(second, 0, cams[1]["id"])
        # Both windows share the tile count.
        second.click('[data-testid="layout-9"]')
        page.wait_for_function(f"() => document.querySelectorAll('{TILE}').length === 9")
        assert page.get_attribute(f'{TILE}[data-index="0"]', "data-camera-id") == str(cams[0]["id"])
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


# -- tests: video ------------------------------------------------------------------------------

COUNT_FETCHES = """() => {
    window.__thumbs = { inFlight: {}, maxInFlight: 0, started: 0 };
    const orig = window.fetch;
    window.fetch = async (...args) => {
        const url = String(args[0]);
        const m = /\\/api\\/cameras\\/(\\d+)\\/thumbnail/.exec(url);
        if (!m) return orig(...args);
        const t = window.__thumbs;
        t.started += 1;
        t.inFlight[m[1]] = (t.inFlight[m[1]] || 0) + 1;
        t.maxInFlight = Math.max(t.maxInFlight, t.inFlight[m[1]]);
        try { return await orig(...args); } finally { t.inFlight[m[1]] -= 1; }
    };
}"""


def captured(page: Any) -> dict[str, str]:
    return dict(
        page.locator(TILE).evaluate_all(
            "ts => ts.filter(t => t.dataset.capturedAt).map(t => [t.dataset.index, t.dataset.capturedAt])"
        )
    )


def test_sixteen_tiles_update(
    browser: Any, wall_hub: LiveHub, admin: Api, cams: list[dict[str, Any]]
) -> None:
    """16 cameras on 16 tiles: every tile shows what the hub has (its newest thumbnail, at most a
    few seconds behind, or 暂无画面), with its status and a capture age; the capture times advance; a tile never has two thumbnail requests in flight; a hidden window
    stops polling and starts again when shown."""
    need(wall_hub, THUMBNAIL)
    p = Page(browser)
    p.page.add_init_script(f"({COUNT_FETCHES})()")
    p.sign_in(wall_hub.base_url, "seat1", "/wall")
    page = p.page
    try:
        page.wait_for_selector('[data-testid="video-wall"]')
        page.wait_for_function(
            f"() => document.querySelectorAll('{ITEM}').length >= {WANT_CAMERAS}"
        )
        ids = [c["id"] for c in cams[:WANT_CAMERAS]]
        fill_wall(page, ids)
        # Every tile answers: a picture, or the hub's 暂无画面 while it has none.
        page.wait_for_function(
            f"""() => [...document.querySelectorAll('{TILE}')].every(t => t.dataset.capturedAt
                    || (t.querySelector('[data-testid=tile-nopic]')?.textContent || '').includes('暂无画面'))
                  && document.querySelectorAll('{TILE} [data-testid=tile-thumb]').length >= {WANT_CAMERAS // 2}""",
            timeout=VIDEO_MS,
        )
        page.wait_for_selector(f'{TILE}[data-status="online"]', timeout=VIDEO_MS)
        first = captured(page)
        # The simulator's GOP is 2 s: the capture times advance.
        deadline = time.monotonic() + 20
        advanced = 0
        while time.monotonic() < deadline:
            now = captured(page)
            advanced = sum(1 for k, v in now.items() if v > first.get(k, ""))
            if advanced >= len(first) * 3 // 4:
                break
            time.sleep(0.5)
        assert advanced >= max(4, len(first) // 2), (first, captured(page))
        # Each tile shows what the hub has: within a few seconds (it polls once a second) its
        # capture time reaches the one the hub answers now.
        by_index = dict(
            page.locator(TILE).evaluate_all(
                "ts => ts.map(t => [Number(t.dataset.index), Number(t.dataset.cameraId)])"
            )
        )
        for index, cid in by_index.items():
            r = admin.http.get(f"/api/cameras/{cid}/thumbnail")
            if r.status_code == 409:
                continue  # the hub has no picture yet; its tile says so
            assert r.status_code == 200, r.text
            hub_ms = datetime.fromisoformat(r.headers["X-Captured-At"]).timestamp() * 1000
            page.wait_for_function(
                f"""() => Date.parse(document.querySelector('{TILE}[data-index="{index}"]')
                                       .dataset.capturedAt || 0) >= {hub_ms} - 2000""",
                timeout=5000,
            )
        with_picture = next(iter(captured(page)))
        age = page.locator(
            f'{TILE}[data-index="{with_picture}"] [data-testid="tile-age"]'
        ).inner_text()
        assert "秒前" in age, age
        p.shot("wall-16")
        stats = page.evaluate("window.__thumbs")
        assert stats["maxInFlight"] == 1, stats
        # About once a second per tile (not a busy loop).
        page.evaluate("window.__thumbs.started = 0")
        time.sleep(3)
        started = page.evaluate("window.__thumbs.started")
        assert WANT_CAMERAS <= started <= WANT_CAMERAS * 5, started
        # Off-screen (the grid moved out of the viewport): polling stops, and comes back.
        page.evaluate(
            "document.querySelector('[data-testid=wall-grid]').style.transform = 'translateY(4000px)'"
        )
        time.sleep(1.5)
        page.evaluate("window.__thumbs.started = 0")
        time.sleep(2.5)
        assert page.evaluate("window.__thumbs.started") == 0
        page.evaluate("document.querySelector('[data-testid=wall-grid]').style.transform = ''")
        time.sleep(2)
        assert page.evaluate("window.__thumbs.started") >= WANT_CAMERAS
        # Hidden: polling stops (what is in flight may finish).
        page.evaluate(
            """() => { Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
                       document.dispatchEvent(new Event('visibilitychange')); }"""
        )
        time.sleep(1.5)
        page.evaluate("window.__thumbs.started = 0")
        time.sleep(2.5)
        assert page.evaluate("window.__thumbs.started") == 0
        page.evaluate(
            """() => { Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
                       document.dispatchEvent(new Event('visibilitychange')); }"""
        )
        time.sleep(2)
        assert page.evaluate("window.__thumbs.started") >= WANT_CAMERAS
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_tile_status_follows_the_camera(
    browser: Any, wall_hub: LiveHub, admin: Api, cams: list[dict[str, Any]]
) -> None:
    """A camera that goes away (its URL pointed at a closed port) turns its tile 离线 with the
    reason, without a reload, and 在线 again when it comes back: the cameras state channel."""
    cam = cams[WANT_CAMERAS - 1]
    p = open_wall(browser, wall_hub, "seat1")
    page = p.page
    tile = f'{TILE}[data-index="0"]'
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cam["id"])
        page.wait_for_selector(f'{tile}[data-status="online"]', timeout=VIDEO_MS)
        page.evaluate("window.__sameDocument = true")
        admin.patch(f"/api/cameras/{cam['id']}", {"url": "rtsp://127.0.0.1:9/gone"})
        page.wait_for_selector(f'{tile}[data-status="offline"]', timeout=30_000)
        status = page.locator(f'{tile} [data-testid="tile-status"]').inner_text()
        st = admin.get(f"/api/cameras/{cam['id']}")["status"]
        reason = st["message"] or st["reason"]  # the zh-CN message, the code where there is none
        assert status == f"离线（{reason}）" if reason else status == "离线", (status, reason)
        admin.patch(f"/api/cameras/{cam['id']}", {"url": cam["url"]})
        page.wait_for_selector(f'{tile}[data-status="online"]', timeout=30_000)
        assert page.evaluate("window.__sameDocument === true")
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_enlarge_to_live_video(browser: Any, wall_hub: LiveHub, cams: list[dict[str, Any]]) -> None:
    """A double click on a tile opens live WebRTC video of its camera; the video plays (its
    currentTime advances); closing stops the viewer on the hub."""
    need(wall_hub, LIVE, "/api/live/{viewer_id}/stop")
    p = open_wall(browser, wall_hub, "seat1", init=f"({COUNT_FETCHES})()")
    page = p.page
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cams[0]["id"])
        with page.expect_response(
            lambda r: r.url.endswith("/live") and r.request.method == "POST"
        ) as ans:
            page.dblclick(f'{TILE}[data-index="0"]')
        assert ans.value.status == 200, ans.value.text()
        page.wait_for_selector('[data-testid="live-view"][data-peer="connected"]', timeout=VIDEO_MS)
        page.wait_for_function(
            "() => document.querySelector('[data-testid=live-video]').currentTime > 0.5",
            timeout=VIDEO_MS,
        )
        t1 = page.evaluate("document.querySelector('[data-testid=live-video]').currentTime")
        time.sleep(2)
        t2 = page.evaluate("document.querySelector('[data-testid=live-video]').currentTime")
        assert t2 > t1 + 1, (t1, t2)
        assert page.evaluate("document.querySelector('[data-testid=live-video]').videoWidth") > 0
        p.shot("wall-live")
        # The tiles under the enlarged view do not poll.
        page.evaluate("window.__thumbs.started = 0")
        time.sleep(2.5)
        assert page.evaluate("window.__thumbs.started") == 0
        with page.expect_request(
            lambda r: "/api/live/" in r.url and r.url.endswith("/stop")
        ) as stop:
            page.click('[data-testid="live-close"]')
        assert stop.value.method == "POST"
        page.wait_for_selector('[data-testid="live-view"]', state="detached")
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_live_limit_shows_the_hubs_message(
    browser: Any, wall_hub: LiveHub, cams: list[dict[str, Any]]
) -> None:
    """Four windows of one seat each enlarge a tile to live video; a fifth is refused by the hub
    (409 too_many_live) and its view shows the hub's own message; closing one lets it in."""
    need(wall_hub, LIVE, "/api/live/{viewer_id}/stop")
    p = open_wall(browser, wall_hub, "dispatch1")
    page = p.page
    pages = [page]
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cams[0]["id"])
        for _ in range(4):
            other = p.ctx.new_page()
            other.goto(f"{wall_hub.base_url}/wall")
            other.wait_for_selector(f'{TILE}[data-index="0"][data-camera-id="{cams[0]["id"]}"]')
            pages.append(other)
        for w in pages[:4]:
            w.dblclick(f'{TILE}[data-index="0"]')
            w.wait_for_selector(
                '[data-testid="live-view"][data-viewer-id]:not([data-viewer-id=""])'
            )
        last = pages[4]
        with last.expect_response(lambda r: r.url.endswith("/live")) as ans:
            last.dblclick(f'{TILE}[data-index="0"]')
        assert ans.value.status == 409, ans.value.text()
        message = ans.value.json()["error"]["message"]
        error = last.locator('[data-testid="live-error"]')
        error.wait_for()
        assert error.inner_text() == message
        # One window closes its view: the fifth gets in.
        pages[0].click('[data-testid="live-close"]')
        pages[0].wait_for_selector('[data-testid="live-view"]', state="detached")
        last.click('[data-testid="live-close"]')
        with last.expect_response(lambda r: r.url.endswith("/live")) as again:
            last.dblclick(f'{TILE}[data-index="0"]')
        assert again.value.status == 200, again.value.text()
        last.wait_for_selector('[data-testid="live-view"][data-peer="connected"]', timeout=VIDEO_MS)
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_warning_at_the_cameras_speaker(
    browser: Any, wall_hub: LiveHub, admin: Api, cams: list[dict[str, Any]]
) -> None:
    """喊话 on a tile plays the chosen clip at the camera's own speaker."""
    cam = next((c for c in cams if c["speaker_id"]), None)
    clips = admin.get("/api/clips")["items"]
    if cam is None or not clips:
        pytest.skip("no camera with a speaker, or no clip, in this demo")
    p = open_wall(browser, wall_hub, "seat1")
    page = p.page
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cam["id"])
        page.click(f'{TILE}[data-index="0"]')
        page.click(f'{TILE}[data-index="0"] [data-testid="tile-warning"]')
        page.wait_for_selector('[data-testid="warning-dialog"]')
        page.wait_for_selector('[data-testid="warning-clip"] option:nth-child(2)', state="attached")
        page.select_option('[data-testid="warning-clip"]', str(clips[0]["id"]))
        with page.expect_response(
            lambda r: r.url.endswith("/api/warnings") and r.request.method == "POST"
        ) as ans:
            page.click('[data-testid="warning-dialog"] [data-testid="dialog-submit"]')
        assert ans.value.status == 202, ans.value.text()
        assert ans.value.request.post_data_json == {
            "clip_id": clips[0]["id"],
            "speaker_ids": [cam["speaker_id"]],
        }
        page.wait_for_selector('[data-testid="warning-dialog"]', state="detached")
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_snapshot_to_new_case(
    browser: Any, wall_hub: LiveHub, admin: Api, cams: list[dict[str, Any]]
) -> None:
    """截图立案 on a tile: a category and a description make a new case whose JPEG attachment has
    the SHA-256 the snapshot answered."""
    need(wall_hub, SNAPSHOT)
    p = open_wall(browser, wall_hub, "seat1")
    page = p.page
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cams[0]["id"])
        page.wait_for_selector(
            f'{TILE}[data-index="0"] [data-testid="tile-thumb"]', timeout=VIDEO_MS
        )
        page.click(f'{TILE}[data-index="0"]')  # chosen: its tools show
        page.click(f'{TILE}[data-index="0"] [data-testid="tile-snapshot"]')
        dialog = page.locator('[data-testid="snapshot-dialog"]')
        dialog.wait_for()
        page.wait_for_selector(
            '[data-testid="snapshot-category"] option:nth-child(2)', state="attached"
        )
        page.select_option('[data-testid="snapshot-category"]', index=1)
        page.fill('[data-testid="snapshot-description"]', "视频墙截图：道路旁暴露垃圾（界面测试）")
        with page.expect_response(
            lambda r: r.url.endswith("/snapshot") and r.request.method == "POST"
        ) as ans:
            page.click('[data-testid="snapshot-dialog"] [data-testid="dialog-submit"]')
        assert ans.value.status == 201, ans.value.text()
        body = ans.value.json()
        assert body["case_created"] is True
        page.wait_for_selector(f'[data-testid="snapshot-result"][data-case-id="{body["case_id"]}"]')
        dialog.wait_for(state="detached")
        case = admin.get(f"/api/cases/{body['case_id']}")
        assert case["source"] == "video"
        atts = {a["id"]: a for a in case["attachments"]}
        att = atts[body["attachment"]["id"]]
        assert att["media_type"] == "image/jpeg"
        data = admin.http.get(att["url"]).content
        assert data[:2] == b"\xff\xd8"
        assert hashlib.sha256(data).hexdigest() == body["attachment"]["sha256"] == att["sha256"]
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_snapshot_to_existing_case(
    browser: Any, wall_hub: LiveHub, admin: Api, cams: list[dict[str, Any]]
) -> None:
    """截图立案 onto an existing case, found by its number: no new case, one more attachment."""
    need(wall_hub, SNAPSHOT)
    if "case_id" not in body_fields(wall_hub, SNAPSHOT):
        pytest.skip("the hub's snapshot takes no case_id yet (contract V)")
    seat = ApiUser(wall_hub.base_url, "seat2")
    try:
        case = seat.report()
    finally:
        seat.close()
    before = len(admin.get(f"/api/cases/{case['id']}")["attachments"])
    p = open_wall(browser, wall_hub, "seat1")
    page = p.page
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cams[0]["id"])
        page.wait_for_selector(
            f'{TILE}[data-index="0"] [data-testid="tile-thumb"]', timeout=VIDEO_MS
        )
        page.click(f'{TILE}[data-index="0"]')
        page.click(f'{TILE}[data-index="0"] [data-testid="tile-snapshot"]')
        page.check('[data-testid="snapshot-existing"]')
        page.fill('[data-testid="snapshot-case"]', case["case_no"])
        with page.expect_response(
            lambda r: r.url.endswith("/snapshot") and r.request.method == "POST"
        ) as more:
            page.click('[data-testid="snapshot-dialog"] [data-testid="dialog-submit"]')
        assert more.value.status == 201, more.value.text()
        assert more.value.json()["case_created"] is False
        assert more.value.json()["case_id"] == case["id"]
        after = admin.get(f"/api/cases/{case['id']}")["attachments"]
        assert len(after) == before + 1
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


# -- tests: patrol -----------------------------------------------------------------------------


def test_patrol_round_pages_reports_resume_and_stop(
    browser: Any, wall_hub: LiveHub, cams: list[dict[str, Any]]
) -> None:
    """A seat starts a round (4 tiles a page, 1 minute): the tiles show the round's page, the
    progress bar its page and counts; the page reports which of its cameras were seen; the next
    page comes on time; a reload resumes the same round; 停止轮巡 ends it; 漏巡 lists what the
    hub says was missed."""
    api = Api(wall_hub.base_url, "seat2")
    p = open_wall(browser, wall_hub, "seat2")
    page = p.page
    try:
        page.click('[data-testid="layout-4"]')
        page.fill('[data-testid="patrol-tiles"]', "4")
        page.fill('[data-testid="patrol-period"]', "1")
        with page.expect_response(
            lambda r: r.url.endswith("/api/patrol/rounds") and r.request.method == "POST"
        ) as ans:
            page.click('[data-testid="patrol-start"]')
        assert ans.value.status == 201, ans.value.text()
        r = ans.value.json()
        progress = f'[data-testid="patrol-progress"][data-round-id="{r["id"]}"]'
        page.wait_for_selector(progress)
        now = r["cameras_now"]
        for i, cid in enumerate(now):
            page.wait_for_selector(f'{TILE}[data-index="{i}"][data-camera-id="{cid}"]')
        assert page.locator('[data-testid="patrol-page"]').inner_text() == str(r["page"] + 1)
        # The reports name the page's cameras.
        with page.expect_request(
            lambda q: q.url.endswith(f"/api/patrol/rounds/{r['id']}/report"), timeout=10_000
        ) as rep:
            pass
        sent = rep.value.post_data_json["reports"]
        assert {x["camera_id"] for x in sent} == set(now)
        assert all(isinstance(x["visible"], bool) for x in sent)
        # The next page, on time (the page's reports advance the round at the hub).
        wait_s = r["dwell_seconds"] + 8
        page.wait_for_selector(f'{progress}[data-page="{r["page"] + 1}"]', timeout=wait_s * 1000)
        cur = api.get("/api/patrol/rounds/current")
        assert cur["id"] == r["id"] and cur["page"] >= r["page"] + 1
        if THUMBNAIL in api_paths(wall_hub):
            # The first page's cameras had pictures on visible tiles: the hub counted them shown.
            assert cur["shown"] >= 1, cur
        shown = page.locator(TILE).evaluate_all("ts => ts.map(t => Number(t.dataset.cameraId))")
        page_now = api.get("/api/patrol/rounds/current")["cameras_now"]
        assert shown[: len(page_now)] in (cur["cameras_now"], page_now)
        p.shot("wall-patrol")
        # A reload resumes the round.
        page.reload()
        page.wait_for_selector(progress)
        # Stop.
        page.click('[data-testid="patrol-stop"]')
        page.wait_for_selector('[data-testid="patrol-form"]')
        assert api.http.get("/api/patrol/rounds/current").status_code == 404
        # 漏巡: what the hub says.
        want = api.get("/api/patrol/missed")["items"]
        page.click('[data-testid="patrol-missed-button"]')
        page.wait_for_selector('[data-testid="patrol-missed-list"]')
        assert page.locator('[data-testid="missed-item"]').count() == len(want)
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()
        api.close()


LIVE_MP4 = "/api/cameras/{camera_id}/live.mp4"
NO_WEBRTC = "delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;"
# A peer that never connects (as behind a firewall): no ICE candidate reaches either side.
STALL_ICE = """(() => {
  const strip = (sdp) => sdp.split("\\r\\n").filter((l) => !l.startsWith("a=candidate")).join("\\r\\n");
  const Real = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Real {
    get localDescription() {
      const d = super.localDescription;
      return d && { type: d.type, sdp: strip(d.sdp) };
    }
    setRemoteDescription(d) {
      return super.setRemoteDescription({ type: d.type, sdp: strip(d.sdp) });
    }
  };
})();"""


def test_enlarge_falls_back_to_mse(
    browser: Any, wall_hub: LiveHub, cams: list[dict[str, Any]]
) -> None:
    """When the WebRTC peer does not connect within 4 s the view stops its viewer on the hub and
    switches to MSE. Without WebRTC at all (the page's RTCPeerConnection removed before its scripts
    run) a double click on a tile plays the camera over MSE: fragmented MP4 from GET .../live.mp4
    into a SourceBuffer; the view says data-transport="mse" and 实时(MSE), the bytes go through the
    SourceBuffer and the video's currentTime advances; closing the view closes it.

    Debian's Chromium plays H.264 in MSE (MediaSource.isTypeSupported('video/mp4;
    codecs="avc1.42E01E"') is true). The page's Content-Security-Policy must allow blob: media
    (media-src 'self' blob:): under default-src 'self' alone Chromium refuses the MediaSource's
    blob: URL (and a worker's MediaSourceHandle alike), and the view shows 实时视频无法播放（MSE）."""
    need(wall_hub, LIVE_MP4, LIVE)
    stalled = open_wall(browser, wall_hub, "seat2", init=STALL_ICE)
    page = stalled.page
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cams[0]["id"])
        with (
            page.expect_response(lambda r: r.url.endswith("/live.mp4"), timeout=20_000) as mse,
            page.expect_request(lambda r: r.url.endswith("/stop"), timeout=20_000) as stop,
            page.expect_response(
                lambda r: r.url.endswith("/live") and r.request.method == "POST"
            ) as ans,
        ):
            page.dblclick(f'{TILE}[data-index="0"]')
        assert ans.value.status == 200  # the hub answered; the peer cannot connect
        viewer = ans.value.json()["viewer_id"]
        assert stop.value.url.endswith(f"/api/live/{viewer}/stop")  # the WebRTC viewer released
        assert mse.value.status == 200
        page.wait_for_selector('[data-testid="live-view"][data-transport="mse"]')
        assert page.get_attribute('[data-testid="live-view"]', "data-peer") != "connected"
        page.click('[data-testid="live-close"]')
        page.wait_for_selector('[data-testid="live-view"]', state="detached")
    finally:
        stalled.close()
    p = open_wall(browser, wall_hub, "seat2", init=NO_WEBRTC)
    page = p.page
    try:
        assert page.evaluate("typeof window.RTCPeerConnection") == "undefined"
        assert page.evaluate("MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.42E01E\"')")
        page.wait_for_function(f"() => document.querySelectorAll('{ITEM}').length >= 1")
        page.click('[data-testid="layout-4"]')
        place(page, 0, cams[0]["id"])
        with page.expect_response(lambda r: r.url.endswith("/live.mp4")) as ans:
            page.dblclick(f'{TILE}[data-index="0"]')
        assert ans.value.status == 200
        assert ans.value.headers["x-codec"].startswith("avc1.")
        page.wait_for_selector('[data-testid="live-view"][data-transport="mse"]')
        video = "document.querySelector('[data-testid=live-video]')"
        csp = page.request.get(f"{wall_hub.base_url}/wall").headers["content-security-policy"]
        media = next((d for d in csp.split(";") if d.strip().startswith("media-src")), "")
        assert "blob:" in media, csp  # otherwise the browser refuses the MediaSource
        # A GOP and more of 720p H.264 (~10 kB a frame) has come through the SourceBuffer.
        page.wait_for_function(
            f"() => Number({video}.dataset.mseBytes || 0) > 200000", timeout=VIDEO_MS
        )
        page.wait_for_function(f"() => {video}.currentTime > 0.5", timeout=VIDEO_MS)
        t1 = page.evaluate(f"{video}.currentTime")
        time.sleep(2)
        t2 = page.evaluate(f"{video}.currentTime")
        assert t2 > t1 + 1, (t1, t2)
        assert page.evaluate(f"{video}.videoWidth") == 1280
        assert page.inner_text('[data-testid="live-transport"]') == "实时(MSE)"
        p.shot("wall-live-mse")
        page.click('[data-testid="live-close"]')
        page.wait_for_selector('[data-testid="live-view"]', state="detached")
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()
