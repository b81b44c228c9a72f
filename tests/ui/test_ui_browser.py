"""The browser pages (realtime_ui/static) driven through Debian's Chromium with Playwright.

The browser tests need ``/usr/bin/chromium`` (never ``playwright install``) and the ``live_hub``
fixture (a real hub with the demo city). One test without a browser checks that ``labels.js`` mirrors
the workflow's labels and argument rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hub.core import workflow as wf

STATIC = Path(__file__).resolve().parents[2] / "realtime_ui" / "static"
TIMEOUT_MS = 20_000

ROW = '[data-testid="case-row"]'
TIMELINE_ITEM = '[data-testid="detail-pane"] [data-testid="timeline-item"]'
DETAIL_BADGE = '[data-testid="detail-pane"] .detail-head [data-testid="state-badge"]'


# -- labels.js mirrors hub/workflow.py (no browser) ------------------------------------------


def _js_object(source: str, name: str) -> dict[str, str]:
    m = re.search(rf"export const {name} = \{{(.*?)\n\}};", source, re.S)
    assert m, f"labels.js has no object {name}"
    return dict(re.findall(r'^\s*"?([a-z_0-9]+)"?:\s*"([^"]*)",?\s*$', m.group(1), re.M))


def _js_set(source: str, name: str) -> set[str]:
    m = re.search(rf"export const {name} = new Set\(\[(.*?)\]\);", source, re.S)
    assert m, f"labels.js has no set {name}"
    return set(re.findall(r'"([a-z_]+)"', m.group(1)))


def test_labels_js_mirrors_workflow() -> None:
    src = (STATIC / "labels.js").read_text(encoding="utf-8")
    states = _js_object(src, "STATE_LABELS")
    actions = _js_object(src, "ACTION_LABELS")
    roles = _js_object(src, "ROLE_LABELS")
    assert set(states) == {s.value for s in wf.CaseState}
    assert set(actions) == {a.value for a in wf.Action}
    assert set(roles) == {r.value for r in wf.Role}
    for s in wf.CaseState:
        assert states[s.value] == wf.STATE_LABELS[s], s
    for a in wf.Action:
        assert actions[a.value] == wf.ACTION_LABELS[a], a
    for r in wf.Role:
        assert roles[r.value] == wf.ROLE_LABELS[r], r
    assert _js_set(src, "NOTE_REQUIRED") == {a.value for a in wf.NOTE_REQUIRED}
    assert _js_set(src, "PHOTO_REQUIRED") == {a.value for a in wf.PHOTO_REQUIRED}
    assert _js_set(src, "REPORT_ROLES") == {r.value for r in wf.ACTION_ROLES[wf.Action.REPORT]}


def test_pages_have_no_inner_html_and_no_remote_assets() -> None:
    for path in STATIC.iterdir():
        if path.suffix not in {".js", ".html", ".css"}:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(
            r"\.(inner|outer)HTML\s*[+]?=|insertAdjacentHTML\(|document\.write", text
        ), path.name
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path.name
        assert "@import" not in text and "url(http" not in text, path.name
        if path.suffix == ".html":
            assert '<html lang="zh-CN">' in text, path.name


# -- browser fixtures ------------------------------------------------------------------------


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def unexpected(self, *statuses: int) -> list[str]:
        """The errors, less Chromium's own line about a refused request we provoked on purpose."""
        expected = {
            f"Failed to load resource: the server responded with a status of {n} " for n in statuses
        }
        return [e for e in self.errors if not any(e.startswith(x) for x in expected)]


def new_page(browser: Any, *, width: int = 1920, height: int = 1080) -> tuple[Any, Any, Console]:
    ctx = browser.new_context(
        viewport={"width": width, "height": height}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    console = Console()
    console.attach(page)
    return ctx, page, console


def sign_in(page: Any, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill('[data-testid="login-username"]', username)
    page.fill('[data-testid="login-password"]', password)
    page.click('[data-testid="login-submit"]')
    page.wait_for_url(re.compile(r"/board(\?|$)"))
    page.wait_for_selector(ROW)


def wait_rows(page: Any, predicate_js: str) -> None:
    """Wait until the list is loaded, non-empty, and every row satisfies ``predicate_js(row)``."""
    page.wait_for_function(
        f"""() => {{
            if (!document.getElementById("list-loading").hidden) return false;
            const rows = [...document.querySelectorAll('{ROW}')];
            return rows.length > 0 && rows.every({predicate_js});
        }}"""
    )


# -- browser tests ---------------------------------------------------------------------------


@pytest.mark.browser
def test_wrong_password_shows_chinese_error(browser: Any, live_hub: Any) -> None:
    ctx, page, console = new_page(browser, width=390, height=844)
    try:
        page.goto(f"{live_hub.base_url}/login?next=/board")
        assert page.get_attribute("html", "lang") == "zh-CN"
        page.fill('[data-testid="login-username"]', "seat3")
        page.fill('[data-testid="login-password"]', "not-the-password")
        page.click('[data-testid="login-submit"]')
        banner = page.locator('[data-testid="error-banner"]')
        banner.wait_for(state="visible")
        assert "用户名或密码错误" in banner.inner_text()
        assert "/login" in page.url
        assert page.input_value('[data-testid="login-password"]') == ""
        # The only console noise allowed is the browser's own line about the 401 answer.
        assert console.unexpected(401) == []
    finally:
        ctx.close()


@pytest.mark.browser
def test_unauthenticated_board_redirects_to_login_and_back(browser: Any, live_hub: Any) -> None:
    ctx, page, _console = new_page(browser)
    try:
        page.goto(f"{live_hub.base_url}/")
        page.wait_for_url(re.compile(r"/login\?next="))
        page.fill('[data-testid="login-username"]', "seat2")
        page.fill('[data-testid="login-password"]', "Seat#2026")
        page.click('[data-testid="login-submit"]')
        page.wait_for_url(re.compile(r"/board(\?|$)"))
        page.wait_for_selector(ROW)
    finally:
        ctx.close()


@pytest.mark.browser
def test_seat_filters_and_registers_department_sees_own(browser: Any, live_hub: Any) -> None:
    base = live_hub.base_url
    ctx, page, console = new_page(browser)
    try:
        sign_in(page, base, "seat1", "Seat#2026")
        assert page.inner_text('[data-testid="user-role"]') == "监督中心坐席"
        assert page.inner_text('[data-testid="user-name"]').strip() != ""
        assert page.locator(ROW).count() > 0
        assert page.is_visible('[data-testid="new-case-button"]')

        # Filter by state 待受理: only such rows remain.
        page.locator('[data-testid="filter-state-reported"]').check()
        wait_rows(page, 'r => r.dataset.state === "reported"')
        assert "state=reported" in page.url
        badges = page.locator(f'{ROW} [data-testid="state-badge"]').all_inner_texts()
        assert badges and set(badges) == {"待受理"}

        # Open one and register it: the timeline grows by one 立案 item.
        row = page.locator(ROW).first
        case_id = row.get_attribute("data-case-id")
        case_no = row.locator(".case-no").inner_text()
        row.click()
        page.wait_for_selector(TIMELINE_ITEM)
        assert page.inner_text('[data-testid="detail-case-no"]') == case_no
        before = page.locator(TIMELINE_ITEM).count()
        buttons = page.locator('[data-testid="action-button"]')
        assert set(buttons.evaluate_all("bs => bs.map(b => b.dataset.action)")) >= {
            "register",
            "reject",
        }
        page.click('[data-testid="action-button"][data-action="register"]')
        page.click('[data-testid="action-form"] [data-testid="action-submit"]')
        page.wait_for_function(
            f"n => document.querySelectorAll('{TIMELINE_ITEM}').length === n", arg=before + 1
        )
        last = page.locator(TIMELINE_ITEM).last
        assert last.get_attribute("data-action") == "register"
        assert last.locator('[data-testid="timeline-action"]').inner_text() == "立案"
        assert "待受理 → 待派遣" in last.inner_text()
        assert page.inner_text(DETAIL_BADGE) == "待派遣"
        # The list follows the case: registered, it no longer matches the 待受理 filter and leaves
        # the list (the detail keeps showing it).
        page.wait_for_selector(f'{ROW}[data-case-id="{case_id}"]', state="detached")
        assert page.locator(f'{ROW}:not([data-state="reported"])').count() == 0
        assert page.locator('[data-testid="action-button"][data-action="register"]').count() == 0

        # A reject without a note is refused in the form, in Chinese, before reaching the server.
        # (The registered case no longer offers reject; pick another reported case.)
        others = page.locator(f'{ROW}[data-state="reported"]')
        if others.count():
            others.first.click()
            page.wait_for_selector('[data-testid="action-button"][data-action="reject"]')
            page.click('[data-testid="action-button"][data-action="reject"]')
            page.click('[data-testid="action-form"] [data-testid="action-submit"]')
            err = page.locator('[data-testid="action-error"]')
            err.wait_for(state="visible")
            assert "需要填写说明" in err.inner_text()

            # Someone else registers it meanwhile: our stale submit says so and shows the new state.
            other_id = int(page.evaluate("new URLSearchParams(location.search).get('case')"))
            csrf = page.request.get(f"{base}/api/auth/me").json()["csrf_token"]
            shown = page.request.get(f"{base}/api/cases/{other_id}").json()
            r = page.request.post(
                f"{base}/api/cases/{other_id}/actions",
                data={"action": "register", "version": shown["version"]},
                headers={"X-CSRF-Token": csrf},
            )
            assert r.status == 200, r.text()
            page.click('[data-testid="action-button"][data-action="register"]')
            page.click('[data-testid="action-form"] [data-testid="action-submit"]')
            notice = page.locator('[data-testid="detail-notice"]')
            notice.wait_for(state="visible")
            assert notice.inner_text() == "案件已被他人更新，已刷新"
            assert page.inner_text(DETAIL_BADGE) == "待派遣"

        # A department user in a second browser context sees only their department's cases.
        ctx2, page2, console2 = new_page(browser)
        try:
            sign_in(page2, base, "dept01", "Dept#2026")
            me = page2.request.get(f"{base}/api/auth/me").json()["user"]
            depts = page2.request.get(f"{base}/api/departments").json()["items"]
            name = next(d["name"] for d in depts if d["id"] == me["department_id"])
            assert page2.inner_text('[data-testid="user-role"]') == "专业部门"
            assert not page2.is_visible('[data-testid="filter-department"]')
            assert not page2.is_visible('[data-testid="new-case-button"]')
            dept_cells = page2.locator(f"{ROW} .col-dept").all_inner_texts()
            assert dept_cells and set(dept_cells) == {name}
            # Paging keeps the scope.
            more = page2.locator('[data-testid="load-more"]')
            if more.is_visible():
                n = page2.locator(ROW).count()
                more.click()
                page2.wait_for_function(
                    f"n => document.querySelectorAll('{ROW}').length > n", arg=n
                )
                assert set(page2.locator(f"{ROW} .col-dept").all_inner_texts()) == {name}
            assert console2.errors == []
        finally:
            ctx2.close()

        # The first session is untouched by the second sign-in.
        page.reload()
        page.wait_for_selector(ROW)
        assert page.inner_text('[data-testid="user-role"]') == "监督中心坐席"
        assert console.unexpected(409) == []  # the version conflict above
    finally:
        ctx.close()
