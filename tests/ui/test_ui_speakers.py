"""The speaker console (realtime_ui/static/speakers*.js) against a real demo hub, in Debian's
Chromium through Playwright: the demo's simulated loudspeakers with their live status, a group
chosen as a whole, a clip uploaded through the page and played to the group, the warning appearing
live with each speaker's outcome and then in the log; a warning started by another seat shown live
and stopped from the page; schedules; the clip library's upload, text-to-speech and delete; a viewer
who sees everything but may play nothing; push-to-talk from Chromium's fake microphone; and the
plain-http page that says why there is no microphone.

The hub is this module's own (``cityhub serve --demo``, its 22 simulated speakers, health checks
every 2 s so statuses arrive quickly). What another user does goes over the API with a bearer token.
"""

from __future__ import annotations

import io
import math
import re
import struct
import uuid
import wave
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import LiveHub, scratch_dir, start_hub
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.ui.test_ui_live import LIVE_MS, PASSWORDS, Page

pytestmark = pytest.mark.browser

PASSWORDS.setdefault("admin", "Admin#2026")
PASSWORDS.setdefault("dept01", "Dept#2026")
CITY = ZoneInfo("Asia/Shanghai")
ROW = '[data-testid="speaker-row"]'
RUNNING = '[data-testid="running-warning"]'
PLAY_MS = 30_000  # a warning to a few simulated speakers: ring, a few seconds of RTP, BYE


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speaker_hub(scratch_root: Path) -> Iterator[LiveHub]:
    hub = start_hub(
        scratch_dir(scratch_root, "speakers") / "data",
        demo_cases=100,
        env={
            "CITYHUB_SPEAKER_HEALTH_INTERVAL": "2",
            "CITYHUB_WARNING_RETRY_DELAY": "0.5",
            "CITYHUB_WARNING_RING_TIMEOUT": "5",
        },
    )
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium with a fake microphone (a tone) that it hands out without asking, and a made-up
    host name for the hub so a page can be opened on an origin that is not secure."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        # WebRTC on loopback only: Chromium offers 127.0.0.1, and the hub (CITYHUB_WEBRTC_NETWORKS
        # 127.0.0.0/8, set by start_hub) drops its other candidates and gathers loopback only.
        "--allow-loopback-in-peer-connection",
        "--host-resolver-rules=MAP speakers.cityhub.test 127.0.0.1",
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

    def post(self, path: str, body: Any, status: int | None = None) -> Any:
        r = self.http.post(path, json=body)
        assert r.is_success if status is None else r.status_code == status, r.text
        return r.json() if r.content else None

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def admin(speaker_hub: LiveHub) -> Iterator[Api]:
    a = Api(speaker_hub.base_url, "admin")
    try:
        yield a
    finally:
        a.close()


@pytest.fixture(scope="module")
def seat2(speaker_hub: LiveHub) -> Iterator[Api]:
    a = Api(speaker_hub.base_url, "seat2")
    try:
        yield a
    finally:
        a.close()


def tone_wav(seconds: float, freq: float = 440.0, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of a sine tone."""
    n = int(seconds * rate)
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n)
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def open_console(browser: Any, hub: LiveHub, username: str) -> Page:
    p = Page(browser)
    p.sign_in(hub.base_url, username, "/speakers")
    p.page.wait_for_selector(ROW)
    p.wait_live()
    p.page.evaluate("window.__sameDocument = true")
    return p


def wait_online(api: Api, want: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The speakers once at least ``want`` of them are online (the health check has run)."""
    import time

    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = api.get("/api/speakers")["items"]
        if sum(1 for s in items if s["status"]["state"] == "online") >= want:
            return items
        time.sleep(0.5)
    raise AssertionError(f"fewer than {want} speakers online: {[s['status'] for s in items]}")


def make_group(admin: Api, speaker_ids: list[int]) -> dict[str, Any]:
    name = f"界面测试组-{uuid.uuid4().hex[:6]}"
    return dict(
        admin.post(
            "/api/speaker-groups",
            {"name": name, "description": "浏览器测试", "speaker_ids": speaker_ids},
        )
    )


def upload_clip(page: Any, name: str, seconds: float) -> int:
    """Upload a tone through the page's form; the new clip's id (it becomes the chosen one)."""
    page.click('[data-testid="tab-clips"]')
    page.set_input_files(
        '[data-testid="clip-file"]',
        {"name": f"{name}.wav", "mimeType": "audio/wav", "buffer": tone_wav(seconds)},
    )
    page.fill('[data-testid="clip-upload-name"]', name)
    page.fill('[data-testid="clip-upload-category"]', "界面测试")
    page.click('[data-testid="clip-upload-submit"]')
    row = page.locator('[data-testid="clip-row"]', has_text=name)
    row.wait_for()
    return int(row.get_attribute("data-id") or 0)


def city_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(CITY).strftime("%Y-%m-%d %H:%M:%S")


# -- tests -------------------------------------------------------------------------------------


def test_speakers_listed_with_live_status(browser: Any, speaker_hub: LiveHub, admin: Api) -> None:
    """Every speaker of GET /api/speakers is a row and (with a place) a marker on the map, showing
    the status the hub reports (在线 for the demo's answering speakers) with its since-time in the
    city's zone; the name and group filters narrow the list the way the data says."""
    items = wait_online(admin, 10)
    p = open_console(browser, speaker_hub, "seat1")
    page = p.page
    try:
        page.wait_for_function(
            f"document.querySelectorAll('{ROW}').length === {len(items)}", timeout=LIVE_MS * 3
        )
        assert len(items) >= 20
        placed = [s for s in items if s["location"]]
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=speaker-marker]').length === {len(placed)}"
        )
        # Statuses follow the hub (the channel or the list, whichever is newer).
        page.wait_for_selector(f'{ROW}[data-status="online"]')
        fresh = {s["id"]: s for s in admin.get("/api/speakers")["items"]}
        online = [sid for sid, s in fresh.items() if s["status"]["state"] == "online"]
        sp = fresh[online[0]]
        row = page.locator(f'{ROW}[data-id="{sp["id"]}"]')
        row.locator('[data-testid="speaker-status"]', has_text="在线").wait_for()
        if sp["status"]["since"]:
            since = datetime.fromisoformat(sp["status"]["since"]).astimezone(CITY)
            assert (
                since.strftime("%H:%M") in row.locator('[data-testid="speaker-since"]').inner_text()
            )
        # A marker on the map chooses its speaker (and the row says so), a second click lets go.
        marker = page.locator(f'[data-testid="speaker-marker"][data-id="{placed[0]["id"]}"]')
        marker.click()
        page.wait_for_selector('[data-testid="selection-summary"][data-count="1"]')
        assert page.locator(
            f'{ROW}[data-id="{placed[0]["id"]}"] [data-testid="speaker-check"]'
        ).is_checked()
        marker.click()
        page.wait_for_selector('[data-testid="selection-summary"][data-count="0"]')
        # The name filter.
        needle = items[0]["name"][-2:]
        page.fill('[data-testid="filter-name"]', needle)
        want = sum(1 for s in items if needle.lower() in s["name"].lower())
        page.wait_for_function(f"document.querySelectorAll('{ROW}').length === {want}")
        page.fill('[data-testid="filter-name"]', "")
        # The group filter.
        group = make_group(admin, [s["id"] for s in items[:3]])
        page.reload()
        page.wait_for_selector(ROW)
        page.select_option('[data-testid="filter-group"]', str(group["id"]))
        page.wait_for_function(f"document.querySelectorAll('{ROW}').length === 3")
        shown = {int(x) for x in page.locator(ROW).evaluate_all("rs => rs.map(r => r.dataset.id)")}
        assert shown == {s["id"] for s in items[:3]}
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_play_to_group_live_outcomes_then_log(
    browser: Any, speaker_hub: LiveHub, admin: Api
) -> None:
    """A seat picks a whole group, uploads and chooses a clip and plays it: the warning appears
    live (without a reload) with one outcome per speaker moving to 已送达, leaves the running list
    when it ends, and is in the log with the same outcomes and its start in the city's time."""
    items = wait_online(admin, 10)
    members = [s["id"] for s in items if s["status"]["state"] == "online"][:3]
    group = make_group(admin, members)
    p = open_console(browser, speaker_hub, "seat1")
    page = p.page
    try:
        chip = page.locator(f'[data-testid="group-chip"][data-id="{group["id"]}"]')
        chip.click()
        page.wait_for_selector('[data-testid="selection-summary"][data-count="3"]')
        clip_id = upload_clip(page, f"测试提示音-{uuid.uuid4().hex[:4]}", 3.0)
        assert page.input_value('[data-testid="play-clip"]') == str(clip_id)
        # Record every outcome the running list shows, from now on.
        page.evaluate(
            """() => {
                window.__outcomes = new Set();
                const note = () => document.querySelectorAll('[data-testid="running-warning"] [data-testid="warning-target"]')
                    .forEach((n) => window.__outcomes.add(n.dataset.outcome));
                new MutationObserver(note).observe(document.body,
                    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-outcome"] });
            }"""
        )
        with page.expect_response(
            lambda r: r.url.endswith("/api/warnings") and r.request.method == "POST"
        ) as answer:
            page.click('[data-testid="play-button"]')
        assert answer.value.status == 202, answer.value.text()
        wid = int(answer.value.json()["id"])
        card = page.locator(f'{RUNNING}[data-id="{wid}"]')
        card.wait_for(timeout=LIVE_MS)
        assert card.locator('[data-testid="warning-target"]').count() == 3
        # The speakers' own status follows the call (the speakers channel): 通话中 while it plays.
        busy = page.locator(f'{ROW}[data-id="{members[0]}"]')
        page.wait_for_selector(
            f'{ROW}[data-id="{members[0]}"][data-status="busy"]', timeout=PLAY_MS
        )
        assert busy.locator('[data-testid="speaker-status"]').inner_text() == "通话中"
        # It ends: the card goes (the channel drops it), the page was never reloaded.
        page.wait_for_selector(f'{RUNNING}[data-id="{wid}"]', state="detached", timeout=PLAY_MS)
        assert page.evaluate("window.__sameDocument === true")
        seen = set(page.evaluate("[...window.__outcomes]"))
        assert seen & {"pending", "playing"}, seen
        final = admin.get(f"/api/warnings/{wid}")
        assert final["state"] == "done", final
        assert {t["speaker_id"] for t in final["targets"]} == set(members)
        assert all(t["outcome"] == "delivered" for t in final["targets"]), final["targets"]
        page.wait_for_selector(
            f'{ROW}[data-id="{members[0]}"][data-status="online"]', timeout=PLAY_MS
        )
        assert final["clip"]["id"] == clip_id and final["repeat"] == 1
        # The log: newest first, the same outcomes, the city's clock.
        page.click('[data-testid="tab-log"]')
        entry = page.locator(f'[data-testid="log-row"][data-id="{wid}"][data-state="done"]')
        entry.wait_for(timeout=LIVE_MS)
        assert page.locator('[data-testid="log-row"]').first.get_attribute("data-id") == str(wid)
        outcomes = entry.locator('[data-testid="log-target"]').evaluate_all(
            "ts => ts.map(t => [Number(t.dataset.speakerId), t.dataset.outcome])"
        )
        assert sorted(map(tuple, outcomes)) == sorted(
            (t["speaker_id"], t["outcome"]) for t in final["targets"]
        )
        assert entry.locator('[data-testid="log-time"]').inner_text() == city_time(
            final["started_at"]
        )
        assert "已完成" in entry.inner_text() and "已送达" in entry.inner_text()
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_other_seats_warning_shows_live_and_stops(
    browser: Any, speaker_hub: LiveHub, admin: Api, seat2: Api
) -> None:
    """A warning another seat starts over the API appears on this page while it runs; 停止 here
    stops it: every speaker that had not finished is 已停止, and the log says so."""
    items = wait_online(admin, 10)
    target = [s for s in items if s["status"]["state"] == "online"][-1]
    clips = seat2.get("/api/clips")["items"]
    if not clips:
        clips = [
            seat2.post(
                "/api/clips/tts",
                {"name": "停止测试", "category": "界面测试", "text": "请勿占道经营"},
            )
        ]
    p = open_console(browser, speaker_hub, "seat1")
    page = p.page
    try:
        w = seat2.post(
            "/api/warnings",
            {
                "clip_id": clips[0]["id"],
                "speaker_ids": [target["id"]],
                "group_ids": [],
                "repeat": 10,
            },
            status=202,
        )
        card = page.locator(f'{RUNNING}[data-id="{w["id"]}"]')
        card.wait_for(timeout=LIVE_MS)
        card.locator('[data-testid="warning-target"]').first.wait_for()
        card.locator('[data-testid="warning-stop"]').click()
        page.wait_for_selector(f'{RUNNING}[data-id="{w["id"]}"]', state="detached", timeout=PLAY_MS)
        final = admin.get(f"/api/warnings/{w['id']}")
        assert final["state"] == "stopped", final
        assert final["targets"][0]["outcome"] == "stopped", final
        page.click('[data-testid="tab-log"]')
        page.locator(
            f'[data-testid="log-row"][data-id="{w["id"]}"][data-state="stopped"]'
        ).wait_for()
        assert page.evaluate("window.__sameDocument === true")
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_lost_event_reloads_and_goes_on_live(
    browser: Any, speaker_hub: LiveHub, admin: Api, seat2: Api
) -> None:
    """An event of the `warnings` channel lost on the way (dropped by a websocket route here) is a
    gap: the page reloads the warnings over REST (GET /api/warnings) and goes on live, showing the
    warning another seat started and its end when that seat stops it."""
    items = wait_online(admin, 1)
    target = next(s for s in items if s["status"]["state"] == "online")
    clip = seat2.get("/api/clips")["items"][0]
    p = Page(browser)
    page = p.page
    dropped: list[str] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        def to_page(message: Any) -> None:
            text = str(message)
            if (
                not dropped
                and '"channel":"warnings"' in text.replace(" ", "")
                and ('"state.changed"' in text)
            ):
                dropped.append(text)  # lost: the page must notice the hole
                return
            ws.send(message)

        ws.on_message(lambda m: server.send(m))
        server.on_message(to_page)

    page.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    loads: list[str] = []
    page.on(
        "request",
        lambda r: loads.append(r.url) if re.search(r"/api/warnings(\?|$)", r.url) else None,
    )
    try:
        p.sign_in(speaker_hub.base_url, "seat1", "/speakers")
        page.wait_for_selector(ROW)
        p.wait_live()
        page.wait_for_timeout(500)
        before = len(loads)
        assert before == 1, loads  # the page's own first page of the log
        w = seat2.post(
            "/api/warnings",
            {"clip_id": clip["id"], "speaker_ids": [target["id"]], "group_ids": [], "repeat": 10},
            status=202,
        )
        card = page.locator(f'{RUNNING}[data-id="{w["id"]}"]')
        card.wait_for(timeout=LIVE_MS)
        for _ in range(50):
            if len(loads) > before:
                break
            page.wait_for_timeout(100)
        assert dropped and len(loads) == before + 1, (dropped, loads)
        page.click('[data-testid="tab-log"]')
        page.locator(f'[data-testid="log-row"][data-id="{w["id"]}"]').wait_for()
        assert seat2.http.post(f"/api/warnings/{w['id']}/stop").is_success
        card.wait_for(state="detached", timeout=PLAY_MS)
        page.locator(
            f'[data-testid="log-row"][data-id="{w["id"]}"][data-state="stopped"]'
        ).wait_for()
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_play_refused_shows_the_api_message(browser: Any, speaker_hub: LiveHub, admin: Api) -> None:
    """A clip deleted elsewhere after the seat chose it: 播放 shows the API's own refusal."""
    items = wait_online(admin, 1)
    p = open_console(browser, speaker_hub, "seat1")
    page = p.page
    try:
        clip_id = upload_clip(page, f"被删录音-{uuid.uuid4().hex[:4]}", 1.0)
        page.locator(f'{ROW}[data-id="{items[0]["id"]}"] [data-testid="speaker-check"]').check()
        assert admin.http.delete(f"/api/clips/{clip_id}").is_success
        r = admin.http.post(
            "/api/warnings",
            json={
                "clip_id": clip_id,
                "speaker_ids": [items[0]["id"]],
                "group_ids": [],
                "repeat": 1,
            },
        )
        assert r.status_code >= 400, r.text
        message = r.json()["error"]["message"]
        page.click('[data-testid="play-button"]')
        page.locator('[data-testid="play-error"]', has_text=message).wait_for()
        assert page.locator(RUNNING).count() == 0
    finally:
        p.close()


def test_clip_library_upload_tts_preview_delete(
    browser: Any, speaker_hub: LiveHub, admin: Api
) -> None:
    """Upload through the page stores the clip with its real duration; the preview plays the
    hub's WAV; a made-from-text clip appears with its text; a file that is not audio is refused
    with the API's own message; delete removes it from the page and the hub."""
    p = open_console(browser, speaker_hub, "seat1")
    page = p.page
    try:
        name = f"上传测试-{uuid.uuid4().hex[:4]}"
        clip_id = upload_clip(page, name, 1.5)
        clip = next(c for c in admin.get("/api/clips")["items"] if c["id"] == clip_id)
        assert abs(clip["duration_ms"] - 1500) < 100, clip
        row = page.locator(f'[data-testid="clip-row"][data-id="{clip_id}"]')
        assert row.locator('[data-testid="clip-duration"]').inner_text() == "1.5 秒"
        src = row.locator('[data-testid="clip-preview"]').get_attribute("src")
        assert src == clip["preview_url"]
        got = page.evaluate(
            """async (src) => { const r = await fetch(src); const b = new Uint8Array(await r.arrayBuffer());
                return [r.status, r.headers.get("content-type"), String.fromCharCode(...b.slice(0, 4))]; }""",
            src,
        )
        assert got[0] == 200 and "audio/wav" in got[1] and got[2] == "RIFF", got
        duration = row.locator('[data-testid="clip-preview"]').evaluate(
            """(a) => new Promise((ok) => { a.preload = "metadata"; a.onloadedmetadata = () => ok(a.duration);
                a.onerror = () => ok(-1); a.load(); })"""
        )
        assert abs(duration - 1.5) < 0.1, duration

        # Made from text (espeak-ng on the hub).
        tts = f"文字测试-{uuid.uuid4().hex[:4]}"
        page.fill('[data-testid="clip-tts-name"]', tts)
        page.fill('[data-testid="clip-tts-category"]', "界面测试")
        page.fill('[data-testid="clip-tts-text"]', "请勿占道经营，请将摊位移至规定区域。")
        page.click('[data-testid="clip-tts-submit"]')
        trow = page.locator('[data-testid="clip-row"]', has_text=tts)
        trow.wait_for(timeout=PLAY_MS)
        assert "请勿占道经营" in trow.locator('[data-testid="clip-text"]').inner_text()

        # Not audio: the API's message, as the API says it.
        junk = b"this is not audio at all" * 40
        r = admin.http.post(
            "/api/clips",
            files={"file": ("junk.wav", junk, "audio/wav")},
            data={"name": "坏文件", "category": "x"},
        )
        assert r.status_code >= 400, r.text
        message = r.json()["error"]["message"]
        page.set_input_files(
            '[data-testid="clip-file"]',
            {"name": "junk.wav", "mimeType": "audio/wav", "buffer": junk},
        )
        page.fill('[data-testid="clip-upload-name"]', "坏文件")
        page.click('[data-testid="clip-upload-submit"]')
        page.locator('[data-testid="clip-error"]', has_text=message).wait_for()

        # Delete.
        page.once("dialog", lambda d: d.accept())
        row.locator('[data-testid="clip-delete"]').click()
        row.wait_for(state="detached")
        assert clip_id not in {c["id"] for c in admin.get("/api/clips")["items"]}
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_schedule_create_disable_delete(browser: Any, speaker_hub: LiveHub, admin: Api) -> None:
    """A schedule made on the page (the selection, a clip, every 15 minutes 08:00-20:00 on
    weekdays) is what the hub stores; 停用 and 删除 reach the hub."""
    items = wait_online(admin, 1)
    p = open_console(browser, speaker_hub, "seat1")
    page = p.page
    try:
        clip_id = upload_clip(page, f"定时测试-{uuid.uuid4().hex[:4]}", 1.0)
        first = items[0]["id"]
        page.locator(f'{ROW}[data-id="{first}"] [data-testid="speaker-check"]').check()
        page.click('[data-testid="tab-schedules"]')
        name = f"市场门口-{uuid.uuid4().hex[:4]}"
        page.fill('[data-testid="schedule-name"]', name)
        page.select_option('[data-testid="schedule-clip"]', str(clip_id))
        page.fill('[data-testid="schedule-every"]', "15")
        # A window that does not hold the city's present time: the schedule must not fire here.
        hour = datetime.now(CITY).hour
        window = ("21:00", "23:00") if 8 <= hour < 20 else ("08:00", "20:00")
        page.fill('[data-testid="schedule-from"]', window[0])
        page.fill('[data-testid="schedule-until"]', window[1])
        page.click('[data-testid="schedule-submit"]')
        row = page.locator('[data-testid="schedule-row"]', has_text=name)
        row.wait_for()
        sc = next(s for s in admin.get("/api/warning-schedules")["items"] if s["name"] == name)
        assert sc["clip_id"] == clip_id and sc["speaker_ids"] == [first] and sc["group_ids"] == []
        assert (sc["every_minutes"], sc["from_time"], sc["until_time"]) == (15, *window)
        assert sc["weekdays"] == [1, 2, 3, 4, 5] and sc["active"] is True
        row.locator('[data-testid="schedule-toggle"]').click()
        page.locator(
            f'[data-testid="schedule-row"][data-id="{sc["id"]}"][data-active="false"]'
        ).wait_for()
        again = next(s for s in admin.get("/api/warning-schedules")["items"] if s["id"] == sc["id"])
        assert again["active"] is False
        page.once("dialog", lambda d: d.accept())
        row.locator('[data-testid="schedule-delete"]').click()
        row.wait_for(state="detached")
        assert sc["id"] not in {s["id"] for s in admin.get("/api/warning-schedules")["items"]}
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_viewer_sees_but_cannot_play(
    browser: Any, speaker_hub: LiveHub, admin: Api, seat2: Api
) -> None:
    """The big screen's viewer account sees the speakers, the clips, a running warning and the
    log, and none of the controls that would play, stop, talk, upload, delete or schedule."""
    items = wait_online(admin, 1)
    target = next(s for s in items if s["status"]["state"] == "online")
    clip = seat2.get("/api/clips")["items"][0]
    p = open_console(browser, speaker_hub, "bigscreen")
    page = p.page
    w = seat2.post(
        "/api/warnings",
        {"clip_id": clip["id"], "speaker_ids": [target["id"]], "group_ids": [], "repeat": 10},
        status=202,
    )
    try:
        page.wait_for_selector('[data-testid="read-only-note"]')
        page.locator(f'{RUNNING}[data-id="{w["id"]}"]').wait_for(timeout=LIVE_MS)
        page.wait_for_selector('[data-testid="clip-row"]')
        assert page.get_attribute('[data-testid="speaker-console"]', "data-can-control") == "false"
        for testid in (
            "play-button",
            "talk-button",
            "clip-upload-form",
            "clip-tts-form",
            "clip-delete",
            "warning-stop",
        ):
            assert page.locator(f'[data-testid="{testid}"]').count() == 0, testid
        page.click('[data-testid="tab-schedules"]')
        page.wait_for_selector('[data-testid="schedules"]')
        assert page.locator('[data-testid="schedule-form"]').count() == 0
        page.click('[data-testid="tab-log"]')
        page.locator(f'[data-testid="log-row"][data-id="{w["id"]}"]').wait_for()
        assert not p.unexpected_errors(), p.errors
    finally:
        seat2.http.post(f"/api/warnings/{w['id']}/stop")
        p.close()


def test_push_to_talk_from_the_microphone(browser: Any, speaker_hub: LiveHub, admin: Api) -> None:
    """Holding 按住说话 with Chromium's fake microphone opens a live talk to the chosen speaker
    (a running warning of kind live, the page's peer connected); releasing ends it and the log
    has it."""
    items = wait_online(admin, 1)
    sp = next(s for s in items if s["status"]["state"] == "online")
    p = open_console(browser, speaker_hub, "seat1")
    page = p.page
    try:
        page.locator(f'{ROW}[data-id="{sp["id"]}"] [data-testid="speaker-check"]').check()
        button = page.locator('[data-testid="talk-button"]')
        box = button.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        with page.expect_response(
            lambda r: r.url.endswith("/api/talk") and r.request.method == "POST", timeout=PLAY_MS
        ) as answer:
            page.mouse.down()
        assert answer.value.ok, answer.value.text()
        wid = int(answer.value.json()["warning_id"])
        page.wait_for_selector('[data-testid="talk-button"][data-state="live"]', timeout=PLAY_MS)
        # The page's peer connection is up (ICE and DTLS with the hub's aiortc peer).
        page.wait_for_selector(
            '[data-testid="talk-button"][data-peer="connected"]', timeout=PLAY_MS
        )
        card = page.locator(f'{RUNNING}[data-id="{wid}"][data-kind="live"]')
        card.wait_for(timeout=LIVE_MS)
        live = admin.get(f"/api/warnings/{wid}")
        assert live["kind"] == "live" and live["state"] == "running", live
        assert [t["speaker_id"] for t in live["targets"]] == [sp["id"]]
        page.wait_for_timeout(1500)  # speak a little
        page.mouse.up()
        page.wait_for_selector('[data-testid="talk-button"][data-state="idle"]', timeout=PLAY_MS)
        page.wait_for_selector(f'{RUNNING}[data-id="{wid}"]', state="detached", timeout=PLAY_MS)
        final = admin.get(f"/api/warnings/{wid}")
        assert final["state"] in ("done", "stopped"), final
        assert final["targets"][0]["packets"] > 0, final
        page.click('[data-testid="tab-log"]')
        row = page.locator(f'[data-testid="log-row"][data-id="{wid}"]')
        row.wait_for()
        assert "实时喊话" in row.inner_text()

        # The keyboard holds it too (Space down ... up).
        button.focus()
        with page.expect_response(
            lambda r: r.url.endswith("/api/talk") and r.request.method == "POST", timeout=PLAY_MS
        ) as answer:
            page.keyboard.down(" ")
        page.wait_for_selector(
            '[data-testid="talk-button"][data-peer="connected"]', timeout=PLAY_MS
        )
        page.keyboard.up(" ")
        page.wait_for_selector('[data-testid="talk-button"][data-state="idle"]', timeout=PLAY_MS)
        second = int(answer.value.json()["warning_id"])
        page.wait_for_selector(f'{RUNNING}[data-id="{second}"]', state="detached", timeout=PLAY_MS)

        # A tap shorter than the set-up leaves no talk behind: it is ended as soon as it is up.
        talks = []
        page.on(
            "response",
            lambda r: talks.append(r) if r.url.endswith("/api/talk") else None,
        )
        page.mouse.down()
        page.mouse.up()
        page.wait_for_selector('[data-testid="talk-button"][data-state="idle"]', timeout=PLAY_MS)
        page.wait_for_timeout(500)
        for r in talks:
            wid3 = int(r.json()["warning_id"])
            page.wait_for_selector(
                f'{RUNNING}[data-id="{wid3}"]', state="detached", timeout=PLAY_MS
            )
            assert admin.get(f"/api/warnings/{wid3}")["state"] != "running"
        assert page.locator(f'{RUNNING}[data-kind="live"]').count() == 0
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()


def test_plain_http_page_says_there_is_no_microphone(browser: Any, speaker_hub: LiveHub) -> None:
    """On an origin that is not secure (plain http, not localhost) the browser gives no
    microphone: the page says so in Chinese and the talk button is disabled."""
    url = speaker_hub.base_url.replace("127.0.0.1", "speakers.cityhub.test")
    p = Page(browser)
    try:
        p.sign_in(url, "seat1", "/speakers")
        page = p.page
        page.wait_for_selector(ROW)
        assert page.evaluate("window.isSecureContext") is False
        note = page.locator('[data-testid="talk-insecure"]')
        note.wait_for()
        assert re.search(r"不是安全连接.*麦克风", note.inner_text(), re.S)
        assert page.locator('[data-testid="talk-button"]').is_disabled()
    finally:
        p.close()


def test_board_links_to_the_console_for_its_roles(browser: Any, speaker_hub: LiveHub) -> None:
    """The case board shows 喊话控制台 to a seat (it opens /speakers) and not to a department; a
    department that opens /speakers anyway is told it may not use it."""
    p = Page(browser)
    try:
        page = p.sign_in(speaker_hub.base_url, "seat1", "/board")
        link = page.locator('[data-testid="nav-speakers"]')
        link.wait_for()
        assert link.inner_text() == "喊话控制台"
        link.click()
        page.wait_for_url(re.compile(r"/speakers$"))
        page.wait_for_selector(ROW)
    finally:
        p.close()
    p = Page(browser)
    try:
        page = p.sign_in(speaker_hub.base_url, "dept01", "/board")
        page.wait_for_selector('[data-testid="user-name"]:not(:empty)')
        assert page.locator('[data-testid="nav-speakers"]').is_hidden()
        page.goto(f"{speaker_hub.base_url}/speakers")
        page.wait_for_selector('[data-testid="speakers-denied"]')
        assert page.locator(ROW).count() == 0
    finally:
        p.close()
