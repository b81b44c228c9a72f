"""What a user notices on the pages: every time is the city's clock, and every word is Chinese.

A hub of its own runs with ``CITYHUB_TIMEZONE=Asia/Kolkata`` (a half-hour offset, so hour-only
arithmetic shows) while Chromium runs in ``America/Los_Angeles``: a page that formatted in the
browser's zone, or assumed Asia/Shanghai, would show other times than the ones asserted here, which
are computed with Python's zoneinfo from the instants the API returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import LiveHub, scratch_dir, start_hub

TIMEOUT_MS = 20_000
CITY_TZ = "Asia/Kolkata"
CITY = ZoneInfo(CITY_TZ)
BROWSER_TZ = "America/Los_Angeles"
PASSWORDS = {
    "admin": "Admin#2026",
    "seat1": "Seat#2026",
    "dispatch1": "Dispatch#2026",
    "bigscreen": "Viewer#2026",
}
ROW = '[data-testid="case-row"]'
TIMELINE_ITEM = '[data-testid="detail-pane"] [data-testid="timeline-item"]'


@pytest.fixture(scope="module")
def city_hub(scratch_root: Path) -> Iterator[LiveHub]:
    hub = start_hub(
        scratch_dir(scratch_root, "city") / "data",
        demo_cases=150,
        env={"CITYHUB_TIMEZONE": CITY_TZ},
    )
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(
        viewport={"width": 1600, "height": 1000}, locale="zh-CN", timezone_id=BROWSER_TZ
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    p = ctx.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield p
        assert errors == []
    finally:
        ctx.close()


def sign_in(page: Any, base: str, username: str, next_path: str = "/board") -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill('[data-testid="login-username"]', username)
    page.fill('[data-testid="login-password"]', PASSWORDS[username])
    page.click('[data-testid="login-submit"]')
    page.wait_for_url(re.compile(re.escape(next_path.split("?")[0]) + r"(\?|$)"))


def city(iso: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromisoformat(iso).astimezone(CITY).strftime(fmt)


def instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def city_midnight() -> datetime:
    now = datetime.now(CITY)
    return datetime(now.year, now.month, now.day, tzinfo=CITY).astimezone(UTC)


def api_token(base: str, username: str) -> dict[str, str]:
    r = httpx.post(
        f"{base}/api/auth/login",
        json={"username": username, "password": PASSWORDS[username], "token": True},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


# -- times -------------------------------------------------------------------------------------


@pytest.mark.browser
def test_board_and_detail_show_the_city_clock(page: Any, city_hub: LiveHub) -> None:
    base = city_hub.base_url
    sign_in(page, base, "seat1")
    page.wait_for_selector(ROW)
    assert page.request.get(f"{base}/api/auth/me").json()["timezone"] == CITY_TZ

    rows = page.eval_on_selector_all(
        ROW,
        """rs => rs.slice(0, 12).map(r => {
            const cell = r.querySelector(".col-time");
            return { id: Number(r.dataset.caseId), at: r.dataset.reportedAt,
                     title: cell.title, text: cell.textContent };
        })""",
    )
    assert len(rows) >= 5
    this_year = datetime.now(CITY).year
    for r in rows:
        assert r["title"] == city(r["at"]), r
        short = "%m-%d %H:%M" if instant(r["at"]).astimezone(CITY).year == this_year else None
        assert r["text"] == city(r["at"], short or "%Y-%m-%d %H:%M"), r
        # Not the browser's clock (13.5 hours behind the city's).
        assert r["title"] != datetime.fromisoformat(r["at"]).astimezone(
            ZoneInfo(BROWSER_TZ)
        ).strftime("%Y-%m-%d %H:%M")

    # The detail pane: the fields and every timeline entry (to the second).
    page.locator(ROW).first.click()
    page.wait_for_selector(TIMELINE_ITEM)
    case = page.request.get(f"{base}/api/cases/{rows[0]['id']}").json()
    assert page.inner_text('[data-field="reported_at"]') == city(case["reported_at"])
    stamps = page.eval_on_selector_all(
        f"{TIMELINE_ITEM} time", "ts => ts.map(t => [t.getAttribute('datetime'), t.textContent])"
    )
    assert stamps and len(stamps) == len(case["timeline"])
    for at, text in stamps:
        assert text == city(at, "%Y-%m-%d %H:%M:%S")

    # The 上报时间 filter takes the city's wall-clock time: typing the fifth row's minute asks
    # the API for that instant, and the row is still listed.
    fifth = rows[4]
    wall = instant(fifth["at"]).astimezone(CITY).replace(second=0, microsecond=0)
    with page.expect_request(lambda r: "/api/cases?" in r.url and "since=" in r.url) as req:
        page.fill('[data-testid="filter-since"]', wall.strftime("%Y-%m-%d %H:%M"))
        page.press('[data-testid="filter-since"]', "Enter")
    since = parse_qs(urlsplit(req.value.url).query)["since"][0]
    assert instant(since) == wall.astimezone(UTC)
    page.wait_for_selector(f'{ROW}[data-case-id="{fifth["id"]}"]')
    # the fifth row was listed before the filter too: wait for the filtered list to replace it
    page.wait_for_function(
        "([sel, since]) => { const rs = [...document.querySelectorAll(sel)];"
        " return rs.length > 0 && rs.every(r => Date.parse(r.dataset.reportedAt) >= since); }",
        arg=[ROW, wall.timestamp() * 1000],
    )
    listed = page.eval_on_selector_all(ROW, "rs => rs.map(r => r.dataset.reportedAt)")
    assert listed and all(instant(x) >= wall for x in listed)

    # A bare date in 至 means the end of that city day.
    day = wall.date()
    with page.expect_request(lambda r: "/api/cases?" in r.url and "until=" in r.url) as req:
        page.fill('[data-testid="filter-until"]', day.isoformat())
        page.press('[data-testid="filter-until"]', "Enter")
    until = parse_qs(urlsplit(req.value.url).query)["until"][0]
    next_midnight = datetime(day.year, day.month, day.day, tzinfo=CITY) + timedelta(days=1)
    assert instant(until) == next_midnight - timedelta(milliseconds=1)

    # Something that is not a date is said so, in Chinese, and marked.
    page.fill('[data-testid="filter-until"]', "2026-02-30 08:00")
    page.press('[data-testid="filter-until"]', "Enter")
    banner = page.locator('[data-testid="error-banner"]')
    banner.wait_for(state="visible")
    assert "上报时间格式有误" in banner.inner_text()
    assert page.get_attribute('[data-testid="filter-until"]', "aria-invalid") == "true"


@pytest.mark.browser
def test_ops_clock_and_today_are_the_citys(page: Any, city_hub: LiveHub) -> None:
    base = city_hub.base_url
    before = city_midnight()
    with page.expect_request(lambda r: "/api/cases?" in r.url and "since=" in r.url) as req:
        sign_in(page, base, "bigscreen", "/ops")
    # "Today" starts at the city's midnight (either side of it, should the day turn meanwhile).
    since = parse_qs(urlsplit(req.value.url).query)["since"][0]
    assert instant(since) in {before, city_midnight()}

    clock = page.locator('[data-testid="ops-clock"]')
    page.wait_for_function(
        "() => /\\d{2}:\\d{2}:\\d{2}$/.test(document.querySelector('[data-testid=\"ops-clock\"]').textContent)"
    )
    text = clock.inner_text()
    m = re.fullmatch(r"(\d{4})年(\d{2})月(\d{2})日 星期(.) (\d{2}):(\d{2}):(\d{2})", text.strip())
    assert m, text
    shown = datetime(*(int(m[i]) for i in (1, 2, 3, 5, 6, 7)), tzinfo=CITY)
    assert abs((datetime.now(CITY) - shown).total_seconds()) < 5, (text, datetime.now(CITY))
    assert m[4] == "一二三四五六日"[shown.weekday()]

    # A report now shows in the ticker at the city's time of day.
    seat = api_token(base, "seat1")
    cats = httpx.get(f"{base}/api/categories", headers=seat, timeout=10).json()["items"]
    r = httpx.post(
        f"{base}/api/cases",
        headers=seat,
        json={
            "category_id": cats[0]["id"],
            "source": "public",
            "description": "城市时间测试：路边垃圾堆放",
            "address": "测试路1号",
        },
        timeout=10,
    )
    assert r.status_code in (200, 201), r.text
    tick = page.locator('[data-testid="ticker-item"]', has_text=r.json()["case_no"])
    tick.wait_for()
    at = tick.locator("time").get_attribute("datetime")
    assert at and tick.locator("time").inner_text() == city(at, "%H:%M:%S")


@pytest.mark.browser
def test_time_helpers(page: Any, city_hub: LiveHub) -> None:
    """dom.js's zone arithmetic as the pages use it, checked against Python's zoneinfo."""
    page.goto(f"{city_hub.base_url}/login")
    out = page.evaluate(
        """async () => {
            const m = await import("/static/dom.js");
            const r = {};
            r.badZone = m.setCityTimeZone("Not/A_Zone");
            r.ny = m.setCityTimeZone("America/New_York");
            r.gap = m.fromCityInput("2026-03-08 02:30");          // skipped by the spring jump
            r.twice = m.fromCityInput("2026-11-01 01:30");        // seen twice in autumn
            r.secondOne = m.toCityInput("2026-11-01T06:30:00Z");  // the second 01:30
            r.nyFmt = m.fmtTime("2026-07-04T16:05:09Z", { seconds: true });
            m.setCityTimeZone("Asia/Kolkata");
            r.zone = m.cityTimeZone();
            r.forms = ["2026-12-01 08:30", "2026/12/1 8:30", "2026年12月1日 8:30", "2026年12月1日8时30分",
                       "２０２６-１２-０１ ０８：３０", "2026-12-01T08:30", " 2026-12-01 08:30:00 "]
              .map((t) => m.fromCityInput(t));
            r.endOfDay = m.fromCityInput("2026-12-01", { endOfDay: true });
            r.startOfDayText = m.fromCityInput("2026-12-01");
            r.bad = ["2026-02-30 08:00", "2026-12-01 24:00", "2026-13-01", "明天", "", null]
              .map((t) => m.fromCityInput(t));
            r.midnight = m.startOfCityDay(new Date("2026-12-01T20:00:00Z")).toISOString();
            r.parts = m.zonedParts(new Date("2026-12-06T20:00:00Z"));
            r.short = m.fmtTime("2026-12-01T03:00:00Z", { short: true, now: new Date("2026-06-01T00:00:00Z") });
            r.longAgo = m.fmtTime("2025-12-01T03:00:00Z", { short: true, now: new Date("2026-06-01T00:00:00Z") });
            r.clock = m.fmtClock("2026-12-01T03:00:05Z");
            return r;
        }"""
    )
    ny = ZoneInfo("America/New_York")

    def utc_iso(dt: datetime) -> str:
        return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"

    assert out["badZone"] is False and out["ny"] is True
    # zoneinfo: 02:30 does not exist (fold=0 maps it with the offset before the jump, i.e. 03:30 EDT).
    assert out["gap"] == utc_iso(datetime(2026, 3, 8, 2, 30, tzinfo=ny))
    assert out["twice"] == utc_iso(datetime(2026, 11, 1, 1, 30, fold=0, tzinfo=ny))
    assert out["secondOne"] == "2026-11-01 01:30"
    assert out["nyFmt"] == "2026-07-04 12:05:09"
    assert out["zone"] == CITY_TZ
    at_0830 = utc_iso(datetime(2026, 12, 1, 8, 30, tzinfo=CITY))
    assert out["forms"] == [at_0830] * 7
    assert out["startOfDayText"] == utc_iso(datetime(2026, 12, 1, tzinfo=CITY))
    assert out["endOfDay"] == utc_iso(
        datetime(2026, 12, 2, tzinfo=CITY) - timedelta(milliseconds=1)
    )
    assert out["bad"] == [""] * 6
    assert out["midnight"] == utc_iso(datetime(2026, 12, 2, tzinfo=CITY))
    local = datetime(2026, 12, 6, 20, tzinfo=UTC).astimezone(CITY)  # Monday 01:30 in the city
    assert out["parts"] == {
        "year": local.year,
        "month": local.month,
        "day": local.day,
        "hour": local.hour,
        "minute": local.minute,
        "second": 0,
        "weekday": local.isoweekday() % 7,
    }
    assert out["short"] == "12-01 08:30"
    assert out["longAgo"] == "2025-12-01 08:30"
    assert out["clock"] == "08:30:05"


# -- words -------------------------------------------------------------------------------------

#: Visible text, titles, placeholders and labels of the page, less attachments' own file names.
VISIBLE_TEXT_JS = """() => {
    const out = [];
    const attrs = ["title", "placeholder", "aria-label", "alt", "label"];
    const walk = (n) => {
        if (n.nodeType === Node.TEXT_NODE) {
            const p = n.parentElement;
            if (p && (p.offsetParent !== null || p.closest("svg"))) out.push(n.textContent);
            return;
        }
        if (n.nodeType !== Node.ELEMENT_NODE || ["SCRIPT", "STYLE"].includes(n.tagName)) return;
        if (n.matches('[data-testid="attachment"]')) return;
        for (const a of attrs) if (n.getAttribute(a)) out.push(n.getAttribute(a));
        for (const c of n.childNodes) walk(c);
    };
    walk(document.body);
    out.push(document.title);
    return out;
}"""


def latin_words(page: Any) -> set[str]:
    texts = page.evaluate(VISIBLE_TEXT_JS)
    return {w for t in texts for w in re.findall(r"[A-Za-z]{2,}", t)}


@pytest.mark.browser
def test_every_page_speaks_chinese(page: Any, city_hub: LiveHub) -> None:
    base = city_hub.base_url
    page.goto(f"{base}/login")
    seen = {"login": latin_words(page)}

    sign_in(page, base, "admin")
    page.wait_for_selector(ROW)
    seen["board"] = latin_words(page)
    # Native date and time inputs are drawn in the browser's interface language ("mm/dd/yyyy").
    assert (
        page.locator('input[type="date"], input[type="datetime-local"], input[type="time"]').count()
        == 0
    )
    rows = page.locator(ROW)
    for i in range(min(rows.count(), 8)):
        rows.nth(i).click()
        page.wait_for_selector(TIMELINE_ITEM)
        seen[f"detail {i}"] = latin_words(page)
        buttons = page.locator('[data-testid="action-button"]')
        for j in range(buttons.count()):
            buttons.nth(j).click()
            seen[f"detail {i} action {buttons.nth(j).get_attribute('data-action')}"] = latin_words(
                page
            )
    page.click('[data-testid="new-case-button"]')
    page.wait_for_selector('[data-testid="report-dialog"][open]')
    seen["report dialog"] = latin_words(page)
    page.keyboard.press("Escape")

    page.goto(f"{base}/ops")
    page.wait_for_selector('[data-testid="counter-report"] .counter-value:not(:text("—"))')
    page.wait_for_selector('[data-testid="live-indicator"][data-state="live"]')
    seen["ops"] = latin_words(page)
    assert {k: v for k, v in seen.items() if v} == {}


@pytest.mark.browser
def test_time_limit_is_shown_in_chinese(page: Any, city_hub: LiveHub) -> None:
    """私搭乱建's limit is "4 working hours (stop work); ..." in the catalog: pages say it in Chinese."""
    base = city_hub.base_url
    seat = api_token(base, "seat1")
    cats = httpx.get(f"{base}/api/categories", headers=seat, timeout=10).json()["items"]
    cat = next(c for c in cats if c["code"] == "E0101")
    assert cat["time_limit"] == {
        "value": 4,
        "unit": "hours",
        "text": "4 working hours (stop work); 7 working days (penalty); 20 working days (demolish)",
    }
    label = "4个工作时（责令停工）；7个工作日（处罚）；20个工作日（拆除）"
    assert cat["time_limit_label"] == label
    r = httpx.post(
        f"{base}/api/cases",
        headers=seat,
        json={
            "category_id": cat["id"],
            "source": "public",
            "description": "人行道上搭建彩钢棚",
            "address": "测试路8号",
        },
        timeout=10,
    )
    assert r.status_code in (200, 201), r.text
    case = r.json()
    r = httpx.post(
        f"{base}/api/cases/{case['id']}/actions",
        headers=seat,
        json={"action": "register", "version": case["version"]},
        timeout=10,
    )
    assert r.status_code == 200, r.text

    sign_in(page, base, "dispatch1", f"/board?case={case['id']}")
    page.wait_for_selector(TIMELINE_ITEM)
    assert page.inner_text('[data-field="time_limit"]') == label
    page.click('[data-testid="action-button"][data-action="dispatch"]')
    hint = page.locator('[data-testid="action-form"] small.muted')
    assert hint.inner_text() == f"处置时限按“{label}”自动计算"
