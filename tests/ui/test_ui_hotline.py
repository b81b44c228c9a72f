"""The 12319 agent console and queue board (realtime_ui/static/hotline*.js) against a real hub with
the telephony role, in Debian's Chromium through Playwright: a SIP caller (the ``Caller`` of the
hotline's end-to-end test, run by its own event loop in a thread) dials 12319 and waits in the
queue while the big screen (the viewer account, ``/hotline?view=board``) shows the call with a
ticking wait; agent1 signs in, goes ready, sees the 来电 banner, answers in the browser (Chromium's
fake microphone plays a 1000 Hz sine from a WAV file), and the caller hears that tone; a case made
from the call carries source hotline and the caller's number and is linked on the call record; the
agent hangs up, saves the wrap-up and is ready again; the big screen counts the answered call; an
attended transfer between two consoles, then a blind one back to the queue. Also:
no inline scripts or styles in the files, the board's links by role, and a department user who
gets neither the API nor the page.

The hub is this module's own (``cityhub serve --demo``, CITYHUB_HOTLINE_TRUNKS 127.0.0.0/8, a fixed
SIP port the caller dials, a long wrap-up and ring timeout so the steps are not raced by timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
import wave
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from tests.conftest import LiveHub, scratch_dir, start_hub
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.ui.test_ui_live import PASSWORDS, Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PASSWORDS.setdefault("admin", "Admin#2026")
PASSWORDS.setdefault("dept01", "Dept#2026")
PASSWORDS.setdefault("agent1", "Agent#2026")
PASSWORDS.setdefault("agent2", "Agent#2026")
CALLER = "13800001111"
MASKED = "138****1111"
TONE_HZ = 1000.0
CALL_MS = 30_000  # the welcome prompt, queueing, ICE and DTLS on a busy machine
T = TypeVar("T")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hotline_hub(scratch_root: Path) -> Iterator[LiveHub]:
    sip_port = free_udp_port()
    hub = start_hub(
        scratch_dir(scratch_root, "hotline") / "data",
        demo_cases=50,
        timeout=180.0,  # the demo city, prompts and simulators on a busy machine
        env={
            "CITYHUB_SIP_PORT": str(sip_port),
            "CITYHUB_HOTLINE_TRUNKS": "127.0.0.0/8",
            "CITYHUB_HOTLINE_WRAPUP": "120",
            "CITYHUB_HOTLINE_RING_TIMEOUT": "60",
            "CITYHUB_HOTLINE_ANNOUNCE_EVERY": "20",
        },
    )
    hub.sip_port = sip_port  # type: ignore[attr-defined]
    try:
        yield hub
    finally:
        hub.stop()


def sine_wav(path: Path, freq: float, seconds: float = 60.0, rate: int = 48_000) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (np.sin(2 * np.pi * freq * t) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium whose fake microphone plays a 1000 Hz sine, handed out without asking; WebRTC on
    loopback (the hub keeps its candidates on 127.0.0.0/8); audio plays without a gesture."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    wav = sine_wav(tmp_path_factory.mktemp("mic") / "mic.wav", TONE_HZ)
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
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
        self.user = r.json()["user"]
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {r.json()['token']}"},
            timeout=30,
        )

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.http.close()


class CallerThread:
    """The hotline test's SIP ``Caller`` on its own event loop in a thread (Playwright's sync API
    owns the test's thread): dial, hang up, and what it heard."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="sip-caller", daemon=True
        )
        self._thread.start()
        self.caller: Any = None
        self.ua: Any = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def dial(self, port: int, caller: str) -> None:
        from telephony.rtp.session import PortPool
        from telephony.sip.agent import UserAgent
        from tests.telephony.hotline.support import Caller

        async def start() -> None:
            self.ua = UserAgent("127.0.0.1", 0, user="citizen")
            await self.ua.start()
            self.caller = Caller(self.ua, PortPool(47100, 47999))
            await self.caller.dial(port, caller=caller)

        self.run(start())

    def heard_seconds(self) -> float:
        return 0.0 if self.caller is None else len(self.caller.heard) / 8000

    def last(self, seconds: float) -> np.ndarray:
        async def take() -> np.ndarray:
            return np.asarray(self.caller.last(seconds))

        return self.run(take())

    def close(self) -> None:
        async def stop() -> None:
            if self.caller is not None:
                # the hub may have hung up first: nothing left to end then
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.caller.hang_up(), 5)
            if self.ua is not None:
                self.ua.close()
                await self.ua.wait_closed()

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


def open_page(browser: Any, hub: LiveHub, username: str, path: str, ready: str) -> Page:
    p = Page(browser)
    p.sign_in(hub.base_url, username, path)
    p.page.wait_for_selector(ready)
    p.wait_live()
    return p


def until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- tests: the files and who may use the page ------------------------------------------------


def test_hotline_files_have_no_inline_html_or_styles() -> None:
    """The page lives under a strict CSP: no innerHTML, inline scripts, styles or handlers."""
    static = Path(__file__).resolve().parents[2] / "realtime_ui" / "static"
    files = sorted(static.glob("hotline*.*"))
    assert {f.suffix for f in files} == {".html", ".js", ".css"}
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert not re.search(
            r"\.(inner|outer)HTML\s*[+]?=|insertAdjacentHTML\(|document\.write", text
        ), f.name
        assert not re.search(r"<script>|<style>|\sstyle=[\"$]|\son[a-z]+=\"", text), f.name
        if f.suffix == ".js":
            assert len(text.splitlines()) < 250, f.name


def test_board_links_by_role_and_a_department_is_refused(
    browser: Any, hotline_hub: LiveHub
) -> None:
    """The case board links an agent to the console (12319 坐席) and a seat to the queue board
    (热线看板); a department sees neither link, gets 403 from the hotline API, and the page tells
    it the console is not theirs."""
    p = Page(browser)
    try:
        page = p.sign_in(hotline_hub.base_url, "agent1", "/board")
        link = page.locator('[data-testid="nav-hotline"]')
        link.wait_for(state="visible")
        assert page.locator('[data-testid="nav-hotline-board"]').is_hidden()
        link.click()
        page.wait_for_url(re.compile(r"/hotline$"))
        page.wait_for_selector('[data-testid="hotline-console"]')
        page.wait_for_selector('[data-testid="agent-state"]:has-text("签出")')
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()
    p = Page(browser)
    try:
        page = p.sign_in(hotline_hub.base_url, "seat1", "/board")
        link = page.locator('[data-testid="nav-hotline-board"]')
        link.wait_for(state="visible")
        assert page.locator('[data-testid="nav-hotline"]').is_hidden()
        link.click()
        page.wait_for_selector('[data-testid="hotline-board-view"]')
        assert page.locator('[data-testid="hotline-console"]').count() == 0
        assert not p.unexpected_errors(), p.errors
    finally:
        p.close()
    dept = Api(hotline_hub.base_url, "dept01")
    try:
        for path in ("/api/hotline/me", "/api/hotline/board", "/api/hotline/calls"):
            assert dept.http.get(path).status_code == 403, path
    finally:
        dept.close()
    p = Page(browser)
    try:
        page = p.sign_in(hotline_hub.base_url, "dept01", "/board")
        page.wait_for_selector('[data-testid="user-name"]:not(:empty)')
        assert page.locator('[data-testid="nav-hotline"]').is_hidden()
        assert page.locator('[data-testid="nav-hotline-board"]').is_hidden()
        page.goto(f"{hotline_hub.base_url}/hotline")
        denied = page.locator('[data-testid="hotline-denied"]')
        denied.wait_for()
        assert "没有使用 12319" in denied.inner_text()
        assert page.locator('[data-testid="queue-board"]').count() == 0
    finally:
        p.close()


# -- tests: a call -----------------------------------------------------------------------------


def test_a_call_answered_in_the_browser(browser: Any, hotline_hub: LiveHub) -> None:
    """A caller waits on the big screen, rings agent1's console, is answered over WebRTC and hears
    the agent's microphone; a case is made from the call; the agent hangs up, files the wrap-up and
    is ready again; the big screen counts the call answered."""
    agent_api = Api(hotline_hub.base_url, "agent1")
    caller = CallerThread()
    board = open_page(
        browser, hotline_hub, "bigscreen", "/hotline", '[data-testid="hotline-board-view"]'
    )
    console = open_page(
        browser, hotline_hub, "agent1", "/hotline", '[data-testid="hotline-console"]'
    )
    b, c = board.page, console.page
    try:
        assert b.url.endswith("/hotline?view=board")  # the viewer is sent to the board screen
        answered_before = int(b.get_attribute('[data-testid="today-answered"]', "data-value") or 0)
        # 签入: signed in, not ready (示忙).
        c.click('[data-testid="sign-in"]')
        c.wait_for_selector('[data-testid="agent-bar"][data-state="not_ready"]')
        assert c.inner_text('[data-testid="agent-state"]') == "示忙"
        b.wait_for_selector(f'[data-testid="board-agent"][data-agent="{agent_api.user["id"]}"]')

        # The call waits in the queue: the big screen shows it, masked, its wait ticking.
        caller.dial(hotline_hub.sip_port, CALLER)  # type: ignore[attr-defined]
        row = b.locator('[data-testid="waiting-call"][data-state="queued"]')
        row.wait_for(timeout=CALL_MS)
        assert MASKED in row.inner_text()
        assert b.get_attribute('[data-testid="board-waiting-count"]', "data-value") == "1"
        first = int(row.get_attribute("data-wait") or 0)
        b.wait_for_function(
            "(w) => Number(document.querySelector('[data-testid=waiting-call]')?.dataset.wait) >= w + 2",
            arg=first,
        )
        assert caller.heard_seconds() > 1.0  # the welcome prompt at least

        # 示闲: the call rings this agent: the banner, the masked number.
        c.click('[data-testid="set-ready"]')
        banner = c.locator('[data-testid="ring-banner"]')
        banner.wait_for(timeout=CALL_MS)
        assert MASKED in banner.locator('[data-testid="ring-number"]').inner_text()
        b.wait_for_selector('[data-testid="waiting-call"][data-state="offered"]')

        # 接听: the microphone, the WebRTC offer, the answer; in call with the full number.
        c.click('[data-testid="answer"]')
        panel = c.locator('[data-testid="call-panel"]')
        panel.wait_for(timeout=CALL_MS)
        c.wait_for_selector('[data-testid="call-panel"][data-peer="connected"]', timeout=CALL_MS)
        assert panel.locator('[data-testid="call-status"]').inner_text() == "通话中"
        c.wait_for_selector(f'[data-testid="call-number"]:has-text("{CALLER}")')
        assert banner.count() == 0
        c.wait_for_selector('[data-testid="call-audio"][data-playing="true"]', state="attached")
        b.wait_for_selector('[data-testid="board-no-waiting"]')
        b.wait_for_selector('[data-testid="agents-talking"][data-value="1"]')

        # The caller hears the agent's microphone: the 1000 Hz sine, not silence.
        from tests.telephony.warnings.test_talk import dominant

        until(lambda: abs(dominant(caller.last(1.0)) - TONE_HZ) < 20, 15, "the agent's tone")
        pcm = caller.last(1.0).astype(np.float64)
        assert np.sqrt(np.mean(pcm**2)) > 500, "the caller hears silence"

        def tone() -> bool:
            return abs(dominant(caller.last(0.5)) - TONE_HZ) < 20

        def rms() -> float:
            return float(np.sqrt(np.mean(caller.last(0.5).astype(np.float64) ** 2)))

        # 保持: the caller hears the hold music instead of the agent; 恢复: the agent again.
        c.click('[data-testid="hold"]')
        c.wait_for_selector('[data-testid="call-panel"][data-held="true"]')
        assert panel.locator('[data-testid="call-status"]').inner_text() == "保持中"
        until(lambda: not tone() and rms() > 300, 10, "hold music instead of the agent")
        c.click('[data-testid="hold"]')
        c.wait_for_selector('[data-testid="call-panel"][data-held="false"]')
        assert panel.locator('[data-testid="call-status"]').inner_text() == "通话中"
        until(tone, 10, "the agent's tone after 恢复")
        # 静音: the microphone's track disabled: the caller hears (near) silence, then the tone.
        c.click('[data-testid="mute"]')
        c.wait_for_selector('[data-testid="call-panel"][data-muted="true"]')
        until(lambda: rms() < 100, 10, "silence while muted")
        c.click('[data-testid="mute"]')
        until(tone, 10, "the agent's tone after 取消静音")

        # 新建案件 from the call: source hotline, the caller's number, linked on the record.
        c.click('[data-testid="new-case"]')
        form = c.locator('[data-testid="new-case-form"]')
        form.wait_for()
        c.wait_for_function(
            "() => document.querySelectorAll('[data-testid=new-case-category] option').length > 1"
        )
        category = c.eval_on_selector(
            '[data-testid="new-case-category"]', "s => s.querySelectorAll('option')[1].value"
        )
        c.select_option('[data-testid="new-case-category"]', category)
        c.fill('[data-testid="new-case-description"]', "来电反映：小区门口井盖缺失，夜间有安全隐患")
        c.fill('[data-testid="new-case-address"]', "幸福路 12 号小区东门")
        c.click('[data-testid="new-case-submit"]')
        link = c.locator('[data-testid="call-case"] [data-testid="case-link"]')
        link.wait_for()
        case_id = int(link.get_attribute("data-case-id") or 0)
        case = agent_api.get(f"/api/cases/{case_id}")
        assert case["source"] == "hotline" and case["contact_phone"] == CALLER, case
        assert case["category"]["id"] == int(category), case
        assert link.inner_text() == case["case_no"]
        record = agent_api.get("/api/hotline/calls")["items"][0]
        assert record["caller"] == CALLER and record["case"]["id"] == case_id, record

        # 挂断: wrap-up with its countdown; the disposition saved, then ready again.
        c.click('[data-testid="hangup"]')
        c.wait_for_selector('[data-testid="agent-bar"][data-state="wrap_up"]', timeout=CALL_MS)
        assert c.locator('[data-testid="call-panel"]').count() == 0
        clock = c.locator('[data-testid="agent-bar"] [data-testid="wrapup-countdown"]')
        assert 100 <= int(clock.get_attribute("data-left") or 0) <= 120
        wrap = c.locator('[data-testid="wrapup-panel"]')
        wrap.wait_for()
        assert wrap.get_attribute("data-call-id") == str(record["id"])
        # A reload in 话后整理 brings the form back for the same call record.
        c.reload()
        c.wait_for_selector('[data-testid="agent-bar"][data-state="wrap_up"]')
        console.wait_live()
        wrap.wait_for()
        assert wrap.get_attribute("data-call-id") == str(record["id"])
        c.wait_for_function(
            "() => document.querySelectorAll('[data-testid=wrapup-code] option').length > 1"
        )
        c.select_option('[data-testid="wrapup-code"]', "report")
        c.fill('[data-testid="wrapup-note"]', "已立案，告知来电人处理时限")
        c.click('[data-testid="wrapup-save-ready"]')
        c.wait_for_selector('[data-testid="agent-bar"][data-state="ready"]')
        assert wrap.count() == 0
        done = agent_api.get("/api/hotline/calls")["items"][0]
        assert done["id"] == record["id"] and done["outcome"] == "answered", done
        assert done["disposition"] == "report" and done["note"] == "已立案，告知来电人处理时限"

        # My calls today: the call with its disposition and a playable recording.
        mine = c.locator(f'[data-testid="my-call"][data-id="{record["id"]}"]')
        mine.wait_for()
        mine.locator('[data-testid="my-call-disposition"]', has_text="投诉举报").wait_for()
        src = mine.locator('[data-testid="my-call-recording"]').get_attribute("src")
        assert src == f"/api/hotline/calls/{record['id']}/recording"
        r = agent_api.http.get(src)
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        # The browser's own session plays it (the cookie authorises the <audio>).
        duration = c.eval_on_selector(
            '[data-testid="my-call-recording"]',
            """a => new Promise((ok) => { a.preload = 'metadata'; a.load();
                 a.addEventListener('loadedmetadata', () => ok(a.duration), { once: true });
                 a.addEventListener('error', () => ok(-1), { once: true }); })""",
        )
        assert duration > 1.0, duration

        # The big screen counts it.
        b.wait_for_selector(
            f'[data-testid="today-answered"][data-value="{answered_before + 1}"]', timeout=CALL_MS
        )
        assert b.locator('[data-testid="waiting-call"]').count() == 0

        # The same number calls again: its open case comes first, the earlier call after it,
        # and one click links the new call to that case.
        again = CallerThread()
        try:
            again.dial(hotline_hub.sip_port, CALLER)  # type: ignore[attr-defined]
            c.click('[data-testid="answer"]', timeout=CALL_MS)
            c.wait_for_selector(
                '[data-testid="call-panel"][data-peer="connected"]', timeout=CALL_MS
            )
            history = c.locator('[data-testid="caller-history"]')
            history.wait_for()
            item = history.locator(f'[data-testid="open-case"][data-case-id="{case_id}"]')
            item.wait_for()
            assert case["case_no"] in item.inner_text() and "幸福路 12 号" in item.inner_text()
            assert history.locator('[data-testid="earlier-call"]').count() == 1
            assert "投诉举报" in history.locator('[data-testid="earlier-call"]').inner_text()
            item.locator('[data-testid="open-case-link"]').click()
            c.locator('[data-testid="call-case"]', has_text=case["case_no"]).wait_for()
            console.shot("hotline-console-in-call")
            board.shot("hotline-board-view")
            second = agent_api.get("/api/hotline/calls")["items"][0]
            assert second["id"] != record["id"] and second["case"]["id"] == case_id, second
            c.click('[data-testid="hangup"]')
            c.wait_for_selector('[data-testid="agent-bar"][data-state="wrap_up"]')
            c.select_option('[data-testid="wrapup-code"]', "follow_up")
            c.click('[data-testid="wrapup-save"]')
            c.wait_for_selector('[data-testid="wrapup-panel"]', state="detached")
            assert agent_api.get("/api/hotline/calls")["items"][0]["disposition"] == "follow_up"
            b.wait_for_selector(
                f'[data-testid="today-answered"][data-value="{answered_before + 2}"]',
                timeout=CALL_MS,
            )
        finally:
            again.close()
        assert not console.unexpected_errors(), console.errors
        assert not board.unexpected_errors(), board.errors
    finally:
        try:
            agent_api.http.post("/api/hotline/me/state", json={"state": "signed_out"})
        finally:
            caller.close()
            agent_api.close()
            console.close()
            board.close()


def test_attended_then_blind_transfer(browser: Any, hotline_hub: LiveHub) -> None:
    """agent1 answers, consults agent2 (咨询转接: agent2's console rings and answers) and hands the
    caller over (完成转接: agent1 to wrap-up, agent2 in the call with the full number); agent2 sends
    the caller back to the queue (blind), where it waits at the front until agent1 is ready and
    takes it again."""
    api1, api2 = Api(hotline_hub.base_url, "agent1"), Api(hotline_hub.base_url, "agent2")
    id1, id2 = str(api1.user["id"]), str(api2.user["id"])
    caller = CallerThread()
    one = open_page(browser, hotline_hub, "agent1", "/hotline", '[data-testid="hotline-console"]')
    two = open_page(browser, hotline_hub, "agent2", "/hotline", '[data-testid="hotline-console"]')
    p1, p2 = one.page, two.page

    def states() -> dict[str, str]:
        return {a["agent"]: a["state"] for a in api1.get("/api/hotline/board")["agents"]}

    try:
        for p in (p1, p2):
            p.click('[data-testid="sign-in"]')
            p.wait_for_selector('[data-testid="agent-bar"][data-state="not_ready"]')
        p1.click('[data-testid="set-ready"]')
        caller.dial(hotline_hub.sip_port, "13900002222")  # type: ignore[attr-defined]
        p1.click('[data-testid="answer"]', timeout=CALL_MS)
        p1.wait_for_selector('[data-testid="call-panel"][data-peer="connected"]', timeout=CALL_MS)

        # 咨询转接 to agent2, who is ready now and listed as a target.
        p2.click('[data-testid="set-ready"]')
        p1.wait_for_selector(
            f'[data-testid="transfer-target"] option[value="{id2}"]', state="attached"
        )
        p1.select_option('[data-testid="transfer-target"]', id2)
        p1.check('[data-testid="transfer-attended"]')
        p1.click('[data-testid="transfer"]')
        p1.wait_for_selector('[data-testid="transfer-pending"]')
        p2.click('[data-testid="answer"]', timeout=CALL_MS)
        p2.wait_for_selector('[data-testid="call-panel"][data-peer="connected"]', timeout=CALL_MS)
        p1.click('[data-testid="transfer-complete"]')
        p1.wait_for_selector('[data-testid="agent-bar"][data-state="wrap_up"]', timeout=CALL_MS)
        p2.wait_for_selector('[data-testid="call-number"]:has-text("13900002222")')
        assert p1.locator('[data-testid="call-panel"]').count() == 0
        until(lambda: states().get(id2) == "talking", 10, "agent2 talking")

        # agent2: blind back to the queue; it waits (agent1 is in wrap-up) until agent1 is ready.
        p2.select_option('[data-testid="transfer-target"]', "queue")
        p2.click('[data-testid="transfer"]')
        p2.wait_for_selector('[data-testid="agent-bar"][data-state="wrap_up"]', timeout=CALL_MS)
        p1.wait_for_selector('[data-testid="waiting-call"][data-state="queued"]')
        p1.click('[data-testid="set-ready"]')
        p1.click('[data-testid="answer"]', timeout=CALL_MS)
        p1.wait_for_selector('[data-testid="call-panel"][data-peer="connected"]', timeout=CALL_MS)
        p1.wait_for_selector('[data-testid="call-number"]:has-text("13900002222")')
        assert states()[id1] == "talking" and states()[id2] == "wrap_up"
        p1.click('[data-testid="hangup"]')
        p1.wait_for_selector('[data-testid="agent-bar"][data-state="wrap_up"]', timeout=CALL_MS)
        assert not one.unexpected_errors(), one.errors
        assert not two.unexpected_errors(), two.errors
    finally:
        try:
            for a in (api1, api2):
                a.http.post("/api/hotline/me/state", json={"state": "signed_out"})
        finally:
            caller.close()
            api1.close()
            api2.close()
            one.close()
            two.close()
