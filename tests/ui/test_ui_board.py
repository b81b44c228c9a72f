"""The case board on the component library (board.js, store.js, countdown.js) in Debian's Chromium:
the browser's working-time arithmetic against hub/core/workcal.py, the work queues and their counts
against GET /api/queues and GET /api/cases, and a filtered list that follows live changes the way the
server's list query would answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.core.workcal import WorkCalendar, parse_work_hours
from hub.web.routes.queues import calendar_json
from tests.ui.test_ui_live import LIVE_MS, PASSWORDS, ROW, ApiUser, Page, row

PASSWORDS.setdefault("sup01", "Super#2026")
PASSWORDS.setdefault("admin", "Admin#2026")
CITY = ZoneInfo("Asia/Shanghai")
QUEUE_TAB = '[data-testid="queue-tab"]'


def _calendar() -> WorkCalendar:
    """A 国庆 week: 10-01..10-07 off, Saturday 10-10 worked (调休), lunch 12:00-14:30."""
    ex = {date(2026, 10, d): False for d in range(1, 8)}
    ex[date(2026, 10, 10)] = True
    return WorkCalendar(CITY, parse_work_hours("08:30-12:00,14:30-18:00"), ex)


def _instants() -> list[datetime]:
    out = []
    for day in (date(2026, 9, 29), date(2026, 9, 30), date(2026, 10, 3), date(2026, 10, 8)):
        for hm in ("07:00", "08:30", "10:15", "12:00", "13:00", "14:30", "17:59", "18:00", "23:30"):
            h, m = map(int, hm.split(":"))
            out.append(datetime(day.year, day.month, day.day, h, m, tzinfo=CITY))
    out += [
        datetime(2026, 10, 10, 9, 0, 30, tzinfo=CITY),  # the 调休 Saturday
        datetime(2026, 10, 11, 10, 0, tzinfo=CITY),  # the Sunday after
        datetime(2026, 10, 12, 15, 45, 10, tzinfo=CITY),
        datetime(2026, 10, 12, 8, 0, tzinfo=UTC),  # another zone's instant: 16:00 in the city
    ]
    return out


@pytest.mark.browser
def test_countdown_agrees_with_workcalendar(browser: Any, live_hub: Any) -> None:
    """workingSecondsBetween in Chromium equals WorkCalendar.working_seconds_between for every pair
    of instants across a holiday week, a 调休 Saturday, weekends, lunch breaks and off hours; the
    countdown's words and levels (剩余 / 将超时 / 已超时) follow from it."""
    cal = _calendar()
    inst = _instants()
    pairs = [(a, b) for a in inst for b in inst]
    p = Page(browser)
    try:
        p.sign_in(live_hub.base_url, "seat1", "/board")
        p.page.wait_for_selector('[data-testid="user-name"]:not(:empty)')
        served = p.page.evaluate(
            """async () => (await import("/static/api.js")).api("/api/calendar")"""
        )
        got = p.page.evaluate(
            """async ([cal, pairs]) => {
                const m = await import("/static/countdown.js");
                return pairs.map(([a, b]) => m.workingSecondsBetween(cal, a, b));
            }""",
            [
                calendar_json(cal, date(2026, 9, 1), date(2026, 11, 1)),
                [[a.isoformat(), b.isoformat()] for a, b in pairs],
            ],
        )
        want = [cal.working_seconds_between(a, b) for a, b in pairs]
        bad = [
            (a, b, g, w) for (a, b), g, w in zip(pairs, got, want, strict=True) if abs(g - w) > 1e-3
        ]
        assert not bad, bad[:5]
        assert sum(1 for w in want if w > 0) > 300  # the sample is not all zeros

        # The served calendar is the hub's: its periods and zone, a bounded window of exceptions.
        assert served["timezone"] == "Asia/Shanghai"
        assert served["periods"] and all(len(x) == 2 for x in served["periods"])
        span = date.fromisoformat(served["until"]) - date.fromisoformat(served["from"])
        assert timedelta(days=300) < span < timedelta(days=800)

        # Words and levels: 4-hour limit, due 10-08 10:00 (after the holiday week).
        due = datetime(2026, 10, 8, 10, 0, tzinfo=CITY)
        cases = {
            "ok": datetime(2026, 9, 30, 17, 0, tzinfo=CITY),  # 1 h + 1.5 h = 2 h 30 min left
            "warn": datetime(2026, 10, 8, 9, 15, tzinfo=CITY),  # 45 min of 4 h left
            "over": datetime(2026, 10, 8, 15, 35, tzinfo=CITY),  # 10:00-12:00 + 14:30-15:35 late
        }
        words = p.page.evaluate(
            """async ([cal, due, nows]) => {
                const m = await import("/static/countdown.js");
                const out = {};
                for (const [k, now] of Object.entries(nows)) out[k] = m.countdownOf(cal, due, Date.parse(now), 4 * 3600);
                return { out, share: m.WARN_SHARE };
            }""",
            [
                calendar_json(cal, date(2026, 9, 1), date(2026, 11, 1)),
                due.isoformat(),
                {k: v.isoformat() for k, v in cases.items()},
            ],
        )
        out = words["out"]
        assert out["ok"]["level"] == "ok" and out["ok"]["text"] == "剩余 2 小时 30 分"
        assert out["warn"]["level"] == "warn" and out["warn"]["text"] == "剩余 45 分"
        assert out["over"]["level"] == "over" and out["over"]["text"] == "已超时 3 小时 5 分"
        assert words["share"] == 0.25
        for k, now in cases.items():
            left = cal.working_seconds_between(now, due) or cal.working_seconds_between(due, now)
            assert abs(out[k]["seconds"] - left) < 1e-3, k
        # The component: it follows the page's minute signal, in place (same node), and colours.
        shown = p.page.evaluate(
            """async ([cal]) => {
                const m = await import("/static/countdown.js");
                const { html, render } = await import("/static/ui.js");
                // The page's own timer moves minuteNow at each minute (+50 ms): start well inside a
                // minute so that it cannot overwrite the instants this test sets.
                while (Date.now() % 60000 < 1000 || Date.now() % 60000 > 50000) {
                  await new Promise((r) => setTimeout(r, 200));
                }
                m.calendarSignal.value = cal;
                const box = document.createElement("div");
                document.body.append(box);
                m.minuteNow.value = Date.parse("2026-10-08T09:00:00+08:00");
                render(html`<${m.Countdown} deadline="2026-10-08T15:30:00+08:00" limitSeconds=${4 * 3600} />`, box);
                const node = box.firstElementChild;
                const out = [[node.textContent, node.dataset.level]];
                for (const at of ["2026-10-08T15:00:00+08:00", "2026-10-09T09:00:00+08:00"]) {
                    m.minuteNow.value = Date.parse(at);
                    await new Promise((r) => setTimeout(r, 50));
                    out.push([box.firstElementChild.textContent, box.firstElementChild.dataset.level]);
                }
                return { out, same: box.firstElementChild === node, cls: node.className };
            }""",
            [calendar_json(cal, date(2026, 9, 1), date(2026, 11, 1))],
        )
        assert shown["out"] == [
            ["剩余 4 小时", "ok"],  # 09:00-12:00 + 14:30-15:30
            ["剩余 30 分", "warn"],
            ["已超时 3 小时", "over"],  # 15:30-18:00 on the 8th, 08:30-09:00 on the 9th
        ]
        assert shown["same"] is True and shown["cls"] == "countdown countdown-over"
        assert p.unexpected_errors() == []
    finally:
        p.close()


# -- the board's list over the store ------------------------------------------------------------


@pytest.fixture(scope="module")
def api_users(live_hub: Any) -> Iterator[dict[str, ApiUser]]:
    made = {n: ApiUser(live_hub.base_url, n) for n in ("seat2", "dispatch1", "dept01", "sup01")}
    try:
        yield made
    finally:
        for u in made.values():
            u.close()


def _board(browser: Any, base_url: str, username: str, path: str = "/board") -> Page:
    p = Page(browser)
    p.sign_in(base_url, username, path)
    p.page.wait_for_selector(
        "#list-loading[hidden]", state="attached"
    )  # the component rendered its first answer
    p.wait_live()
    p.page.evaluate("window.__sameDocument = true")
    return p


def _tab_counts(page: Any) -> dict[str, int]:
    out = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid="queue-tab"]')]
            .map(t => [t.dataset.queue, Number(t.querySelector('[data-testid="queue-count"]').textContent)]))"""
    )
    return {k: int(v) for k, v in out.items()}


def _shown(page: Any) -> int:
    text = page.inner_text('[data-testid="list-count"]')
    m = re.match(r"已显示 (\d+) 件", text)
    return int(m.group(1)) if m else 0


@pytest.mark.browser
def test_queue_list_drops_a_case_that_stops_matching(
    browser: Any, live_hub: Any, api_users: Any
) -> None:
    """A seat's board opens on 待受理 (its first queue) with the counts of GET /api/queues. A new
    report enters the list and its count (announced); registered by another seat it leaves the
    待受理 list and count (it no longer matches), and the 全部 view shows it as 待派遣."""
    seat = api_users["seat2"]
    p = _board(browser, live_hub.base_url, "seat1")
    try:
        page = p.page
        active = page.locator(f'{QUEUE_TAB}[aria-pressed="true"]')
        assert active.get_attribute("data-queue") == "to_accept"
        assert "待受理" in active.inner_text()
        states = page.evaluate(
            """() => [...document.querySelectorAll('input[name="state"]:checked')].map(b => b.value)"""
        )
        assert states == ["reported"]
        served = {q["name"]: q["count"] for q in seat.get("/api/queues")["items"]}
        assert _tab_counts(page) == served
        assert all(
            r == "reported"
            for r in page.locator(ROW).evaluate_all("rs => rs.map(r => r.dataset.state)")
        )
        before_rows, before_count = _shown(page), _tab_counts(page)["to_accept"]

        case = seat.report(lon=103.801, lat=25.501)
        page.wait_for_selector(row(case["id"], "reported"), timeout=LIVE_MS)
        page.wait_for_function(
            f'() => Number(document.querySelector(\'[data-queue="to_accept"] [data-testid="queue-count"]\').textContent) === {before_count + 1}',
            timeout=LIVE_MS,
        )
        notice = page.locator('[data-testid="queue-notice"]')
        notice.wait_for(state="visible", timeout=LIVE_MS)
        assert "待受理 +1" in notice.inner_text()
        assert _shown(page) == before_rows + 1

        seat.act(case["id"], "register")
        page.wait_for_selector(row(case["id"]), state="detached", timeout=LIVE_MS)
        page.wait_for_function(
            f'() => Number(document.querySelector(\'[data-queue="to_accept"] [data-testid="queue-count"]\').textContent) === {before_count}',
            timeout=LIVE_MS,
        )
        assert _shown(page) == before_rows
        assert page.locator(f'{ROW}:not([data-state="reported"])').count() == 0

        page.click('[data-testid="queue-all"]')
        page.wait_for_selector(row(case["id"], "registered"))
        assert "all=1" in page.url
        assert page.evaluate("window.__sameDocument") is True
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_department_queue_counts_and_returned_case_leaves(
    browser: Any, live_hub: Any, api_users: Any
) -> None:
    """dept01 opens on 待签收 with a countdown in working time on each row; a case dispatched to it
    enters with 剩余 …; once it is returned it leaves the list and the count."""
    seat, disp, dept = api_users["seat2"], api_users["dispatch1"], api_users["dept01"]
    p = _board(browser, live_hub.base_url, "dept01")
    try:
        page = p.page
        assert (
            page.locator(f'{QUEUE_TAB}[aria-pressed="true"]').get_attribute("data-queue")
            == "to_sign"
        )
        assert _tab_counts(page) == {
            q["name"]: q["count"] for q in dept.get("/api/queues")["items"]
        }
        for r in page.locator(ROW).all()[:10]:
            cd = r.locator('[data-testid="countdown"]')
            text, level = cd.inner_text(), cd.get_attribute("data-level")
            assert re.fullmatch(r"(剩余|已超时) (\d+ 小时( \d+ 分)?|\d+ 分|不足 1 分)", text), text
            assert (level == "over") == text.startswith("已超时")
            assert (level == "over") == ("is-overdue" in (r.get_attribute("class") or ""))
        n = _tab_counts(page)["to_sign"]
        shown = _shown(page)

        case = seat.report(lon=103.803, lat=25.502)
        seat.act(case["id"], "register")
        disp.act(case["id"], "dispatch", department_id=dept.user["department_id"])
        new_row = page.locator(row(case["id"], "dispatched"))
        new_row.wait_for(timeout=LIVE_MS)
        cd = new_row.locator('[data-testid="countdown"]')
        assert cd.inner_text().startswith("剩余 ") and cd.get_attribute("data-level") in (
            "ok",
            "warn",
        )
        page.wait_for_function(
            f'() => Number(document.querySelector(\'[data-queue="to_sign"] [data-testid="queue-count"]\').textContent) === {n + 1}',
            timeout=LIVE_MS,
        )
        assert _shown(page) == shown + 1

        dept.act(case["id"], "return", note="不属于本部门职责")
        new_row.wait_for(state="detached", timeout=LIVE_MS)
        page.wait_for_function(
            f'() => Number(document.querySelector(\'[data-queue="to_sign"] [data-testid="queue-count"]\').textContent) === {n}',
            timeout=LIVE_MS,
        )
        assert _shown(page) == shown
        assert p.unexpected_errors() == []
    finally:
        p.close()


@pytest.mark.browser
def test_supervisor_queue_counts_are_their_grids(
    browser: Any, live_hub: Any, api_users: Any
) -> None:
    """A field supervisor's 待核查 counts the verifications in their grids: the tab, GET /api/queues
    and GET /api/cases?state=verifying (their scope) agree."""
    sup = api_users["sup01"]
    p = _board(browser, live_hub.base_url, "sup01")
    try:
        page = p.page
        counts = _tab_counts(page)
        assert set(counts) == {"to_check", "to_confirm", "quick"}
        listed = sup.get("/api/cases", state="verifying", limit=200)["items"]
        assert counts["to_check"] == len(listed)
        assert all(c["state"] == "verifying" for c in listed)
        assert _shown(page) == min(len(listed), 50)
    finally:
        p.close()
    if not listed:
        return
    # A link to a case opens it on the default queue, and the address keeps it.
    case_id = listed[0]["id"]
    p = _board(browser, live_hub.base_url, "sup01", f"/board?case={case_id}")
    try:
        page = p.page
        page.wait_for_selector(f'{row(case_id)}[aria-selected="true"]')
        assert f"case={case_id}" in page.url and "state=verifying" in page.url
        assert page.inner_text('[data-testid="filter-count"]') == "（1 项）"
    finally:
        p.close()


FILTERS: list[dict[str, Any]] = [
    {"state": ["reported"]},
    {"state": ["dispatched", "handling"]},
    {"overdue": True},
    {"source": "video"},
    {"state": ["handling"], "overdue": True},
    {"since": "2026-11-01", "until": "2026-11-20"},
    {"grid": True},
    {"category": True},
    {"department": True, "state": ["handling", "feedback"]},
]


@pytest.mark.browser
def test_browser_match_agrees_with_the_list_query(
    browser: Any, live_hub: Any, api_users: Any
) -> None:
    """board.js matchesFilters (what a live update is judged by) against GET /api/cases on the demo
    city's cases: for each filter (states, overdue, source, grid, category, department, report time,
    and the text search with its bigram rules), a case of the newest 200 matches in the browser
    exactly when the server lists it."""
    seat = api_users["seat2"]
    sample = seat.get("/api/cases", limit=200)["items"]
    grid = next(c["grid"]["id"] for c in sample if c["grid"])
    grids = {g["id"]: g for g in seat.get("/api/grids", level=1)["items"]}
    first_level = next(iter(grids))
    category = sample[0]["category"]["id"]
    department = next(c["department"]["id"] for c in sample if c["department"])
    number = next(m.group(0) for c in sample if (m := re.search(r"\d{2,}", c["address"] or "")))
    texts = [
        sample[3]["description"][2:5],  # a Chinese phrase (its bigrams)
        sample[7]["description"][:1],  # one character (a prefix)
        sample[5]["case_no"][2:9],  # part of a case number
        f"街道 {number}",  # two runs
        "路口",
    ]
    p = _board(browser, live_hub.base_url, "seat1", "/board?all=1")
    try:
        page = p.page
        checked = 0
        for f in [*FILTERS, *({"q": t} for t in texts), {"q": texts[0], "state": ["closed"]}]:
            form = {
                "state": f.get("state", []),
                "overdue": f.get("overdue", False),
                "source": f.get("source", ""),
                "since": f.get("since", ""),
                "until": f.get("until", ""),
                "grid_id": str(first_level if f.get("grid") else ""),
                "category_id": str(category if f.get("category") else ""),
                "department_id": str(department if f.get("department") else ""),
                "q": f.get("q", ""),
            }
            got = page.evaluate(
                """async ([form, sample]) => {
                    const { matchesFilters } = await import("/static/board.js");
                    return sample.map((c) => matchesFilters(c, form));
                }""",
                [form, sample],
            )
            params: dict[str, Any] = {"limit": 200}
            if form["state"]:
                params["state"] = form["state"]
            if form["overdue"]:
                params["overdue"] = "true"
            for k in ("source", "grid_id", "category_id", "department_id", "q"):
                if form[k]:
                    params[k] = form[k]
            if form["since"]:
                params["since"] = f"{form['since']}T00:00:00+08:00"
            if form["until"]:
                # the page's 至 a date: the end of that day in the city
                params["until"] = f"{form['until']}T23:59:59.999+08:00"
            served = {c["id"] for c in seat.get("/api/cases", **params)["items"]}
            want = [c["id"] in served for c in sample]
            wrong = [c["case_no"] for c, g, w in zip(sample, got, want, strict=True) if g != w]
            assert not wrong, (f, wrong[:5])
            checked += sum(want)
        assert checked > 100  # the filters do select cases of the sample
        assert grid  # the sample has located cases
    finally:
        p.close()


@pytest.mark.browser
def test_stores_keep_the_newest_and_follow_the_filter(browser: Any, live_hub: Any) -> None:
    """store.js on its own, fed envelopes as live.js delivers them: the newest version per case wins
    (also against a REST answer that raced an event), a case that stops matching leaves, one that
    starts matching is inserted in list order (not past the loaded page); a state channel's store
    takes a snapshot then state.changed."""
    p = Page(browser)
    try:
        p.sign_in(live_hub.base_url, "seat1", "/board")
        p.page.wait_for_selector('[data-testid="user-name"]:not(:empty)')
        out = p.page.evaluate(
            """async () => {
                const { createCaseStore, createStateStore } = await import("/static/store.js");
                const c = (id, v, state, t) => ({ id, version: v, state, reported_at: `2026-11-0${t}T08:00:00Z` });
                const s = createCaseStore({ matches: (x) => x.state === "reported" });
                const seen = [];
                s.subscribe((kind, x) => seen.push(`${kind}:${x.id}`));
                s.loading();
                s.apply(c(2, 5, "registered", 2));        // heard while the list loads: left
                s.reset([c(3, 1, "reported", 3), c(2, 4, "reported", 2), c(1, 1, "reported", 1)]);
                const afterReset = [...s.ids.value];
                s.apply(c(3, 1, "registered", 3));        // not newer: ignored
                s.apply(c(4, 1, "reported", 4));          // starts matching: on top
                s.apply(c(1, 2, "registered", 1));        // stops matching: dropped
                s.apply(c(5, 1, "reported", 2));          // same time as 2, higher id: before it
                const ids = [...s.ids.value];
                s.reset([c(9, 1, "reported", 9)], "next");
                s.apply(c(8, 1, "reported", 1));          // sorts past the loaded page: not inserted
                s.apply(c(10, 1, "reported", 9));
                const paged = [...s.ids.value];
                const st = createStateStore("alarms");
                st.onEnvelope({ type: "snapshot", channel: "alarms", data: { a: { n: 1 }, b: { n: 2 } } });
                st.onEnvelope({ type: "state.changed", channel: "alarms", data: { key: "a", value: { n: 3 } } });
                st.onEnvelope({ type: "state.changed", channel: "alarms", data: { key: "b", value: null } });
                st.onEnvelope({ type: "state.changed", channel: "alarms", data: { key: "c", value: { n: 4 } } });
                return { afterReset, ids, paged, seen, keys: [...st.keys.value], a: st.get("a").n,
                         handles: [st.handles({ channel: "alarms" }), st.handles({ channel: "queue" })] };
            }"""
        )
        assert out["afterReset"] == [3, 1]  # case 2 was registered meanwhile: not shown
        assert out["ids"] == [4, 3, 5]
        assert out["seen"] == ["inserted:4", "dropped:1", "inserted:5", "inserted:10"]
        assert out["paged"] == [10, 9]
        assert out["keys"] == ["a", "c"] and out["a"] == 3
        assert out["handles"] == [True, False]
    finally:
        p.close()
