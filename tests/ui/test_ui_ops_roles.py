"""Who may open the big screen (/ops, realtime_ui/static/ops.js ``OPS_ROLES``), against the
session's demo hub in Debian's Chromium through Playwright.

A 12319 hotline agent is refused the page the way the other pages refuse a role (a plain notice,
here with the way to the agent's own console): the map's markers, the evaluation and the alarms
are all refused to agents by the API, so the page asks none of them, opens no websocket and shows
no error. A field supervisor, whom the markers serve (their grids' cases), gets the picture.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from hub.demo import DEMO_USERS
from tests.ui.test_ui_live import Page

pytestmark = pytest.mark.browser

MARKER = '[data-testid="map-marker"]'


def sign_in(p: Page, base_url: str, username: str, path: str) -> Any:
    page = p.page
    page.goto(f"{base_url}/login?next={path}")
    page.fill('[data-testid="login-username"]', username)
    page.fill('[data-testid="login-password"]', DEMO_USERS[username][1])
    page.click('[data-testid="login-submit"]')
    page.wait_for_url(re.compile(re.escape(path) + r"(\?|$)"))
    return page


def bearer(base_url: str, username: str) -> httpx.Client:
    r = httpx.post(
        f"{base_url}/api/auth/login",
        json={"username": username, "password": DEMO_USERS[username][1], "token": True},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {r.json()['token']}"}, timeout=10
    )


def test_a_hotline_agent_is_refused_the_big_screen(browser: Any, live_hub: Any) -> None:
    base = live_hub.base_url
    agent = bearer(base, "agent1")
    try:
        # What the picture is made of is not the agent's to read ...
        for path in ("/api/cases/markers", "/api/evaluation/city", "/api/alarms"):
            r = agent.get(path)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["code"] == "role_forbidden"
    finally:
        agent.close()
    p = Page(browser)
    asked: list[str] = []
    sockets: list[str] = []
    try:
        p.page.on("request", lambda r: asked.append(r.url))
        p.page.on("websocket", lambda ws: sockets.append(ws.url))
        page = sign_in(p, base, "agent1", "/ops")
        # ... so the page says so, in place of the picture, and points to the agent's console.
        denied = page.locator('[data-testid="ops-denied"]')
        denied.wait_for()
        text = denied.inner_text()
        assert "热线坐席" in text and "没有查看运行态势大屏的权限" in text, text
        link = page.locator('[data-testid="ops-denied-link"]')
        assert link.get_attribute("href") == "/hotline"
        assert page.locator('[data-testid="user-name"]').inner_text().strip()
        time.sleep(1.5)  # anything the page would still ask for
        api = [u for u in asked if "/api/" in u]
        assert [u for u in api if "/api/auth/" not in u] == [], api
        assert sockets == []
        assert page.locator('[data-testid="ops-map"]').count() == 0
        assert page.locator('[data-testid="eval-city"]').count() == 0
        assert page.locator('[data-testid="error-banner"]').is_hidden()
        assert p.unexpected_errors() == []
        p.shot("ops-agent-denied")
        link.click()
        page.wait_for_url(re.compile(r"/hotline(\?|$)"))
    finally:
        p.close()


def test_a_field_supervisor_gets_the_picture_of_their_grids(browser: Any, live_hub: Any) -> None:
    base = live_hub.base_url
    sup = bearer(base, "sup01")
    try:
        r = sup.get("/api/cases/markers")
        assert r.status_code == 200, r.text
        theirs = {m["id"] for m in r.json()["items"] if m["lon"] is not None}
    finally:
        sup.close()
    assert theirs, "sup01's street has open cases in the demo city"
    p = Page(browser)
    try:
        page = sign_in(p, base, "sup01", "/ops")
        page.wait_for_selector(MARKER)
        p.wait_live()
        shown = set(
            page.eval_on_selector_all(MARKER, "ns => ns.map((n) => Number(n.dataset.caseId))")
        )
        assert theirs & shown
        assert page.locator('[data-testid="ops-denied"]').count() == 0
        assert page.locator('[data-testid="error-banner"]').is_hidden()
        assert p.unexpected_errors() == []
    finally:
        p.close()
