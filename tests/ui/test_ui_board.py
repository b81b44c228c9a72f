"""The case board on the component library (board.js, store.js, countdown.js) in Debian's Chromium:
the browser's working-time arithmetic against hub/core/workcal.py, the work queues and their counts
against GET /api/queues and GET /api/cases, and a filtered list that follows live changes the way the
server's list query would answer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.core.workcal import WorkCalendar, parse_work_hours
from hub.web.routes.queues import calendar_json
from tests.ui.test_ui_live import PASSWORDS, Page
from tests.ui.test_ui_live import browser as browser

PASSWORDS.setdefault("super01", "Super#2026")
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
        assert p.unexpected_errors() == []
    finally:
        p.close()
