"""The board's deadline cell turns 黄灯 and then 红灯 on an open page, live, in Debian's Chromium, with
the hub's own clock (nothing injected into it): the alarm scheduler (hub/cases/alarms.py) fires at
the real 75 % and 100 % moments, and the board (board-list.js DeadlineBadge) shows them as they come.

How the deadline is made near without touching the hub's clock: the case's history is written by a
CaseService of the test process whose clock is set in the past: dispatched (on its urgent time
limit) and accepted hours ago, and 18 s after the dispatch the department asked for an extension to
an instant 20 s from now, which paused the countdown (``CITYHUB_DEADLINE_PAUSE=extension``: 18 s of
the limit used). The dispatcher approves it through the running hub, in real time, 14 s before that
instant: the deadline becomes the asked instant and the limit the 18 s used plus the 14 s from now
to it (hub/core/deadlines.py ``clock_changes``), so 黄灯 (75 %: 24 s used) comes 6 s after the
approval and 红灯 14 s after it. The hub counts every hour of yesterday, today and tomorrow as
working time (``CITYHUB_WORK_HOURS=00:00-23:59``, the days marked workdays), so the test runs the
same at night or at a weekend.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from hub.cases.service import NewCase
from hub.core import deadlines as dl
from hub.core import workflow as wf
from hub.core.errors import Conflict
from hub.web.app import build_state, close_state
from tests.conftest import LiveHub, dsn_for, scratch_dir, start_hub
from tests.conftest import test_settings as hub_settings
from tests.ui.test_ui_live import LIVE_MS, PASSWORDS, ROW, ApiUser, Page

PASSWORDS.setdefault("seat1", "Seat#2026")
CITY = ZoneInfo("Asia/Shanghai")  # the hub's default zone
WORK_HOURS = "00:00-23:59"
ENV = {"CITYHUB_WORK_HOURS": WORK_HOURS, "CITYHUB_DEADLINE_PAUSE": "extension"}
#: Working seconds of the limit used before the extension request (the clock paused at it).
USED_S = 18
#: The asked deadline, this long after the history is written (the board opens meanwhile).
AHEAD_S = 20
#: The approval comes this long before the asked deadline: limit 18 + 14 = 32 s, 黄灯 at 75 % (24 s
#: used: 6 s after the approval), 红灯 14 s after it.
APPROVE_BEFORE_S = 14
BADGE = '[data-testid="deadline-badge"]'
T = TypeVar("T")


def _in_thread(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a thread of its own (Playwright's loop holds this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()  # type: ignore[arg-type]


async def _admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def case_db(pg_base: str, template_db: str) -> Iterator[str]:
    """A fresh copy of the template database (the demo city's users and reference data) whose
    calendar works yesterday, today and tomorrow."""
    name = "t_alarms_" + uuid.uuid4().hex[:10]
    _in_thread(lambda: _admin(pg_base, f"CREATE DATABASE {name} TEMPLATE {template_db}"))
    try:
        dsn = dsn_for(pg_base, name)
        _in_thread(lambda: _workdays(dsn))
        yield dsn
    finally:
        _in_thread(lambda: _admin(pg_base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _workdays(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        today = datetime.now(CITY).date()
        for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
            await conn.execute(
                "INSERT INTO calendar_days (day, is_workday, note) VALUES ($1, true, '测试')"
                " ON CONFLICT (day) DO UPDATE SET is_workday = true",
                day,
            )
    finally:
        await conn.close()


@pytest.fixture
def alarm_hub(case_db: str, scratch_root: Path) -> Iterator[LiveHub]:
    # Midnight's minute off (23:59-00:00) must not fall in the run.
    late = datetime.now(CITY)
    if late.hour == 23 and late.minute >= 58:
        time.sleep((60 - late.minute) * 60 - late.second + 5)
    hub = start_hub(
        scratch_dir(scratch_root, "alarms") / "data",
        demo=False,
        env={"CITYHUB_DATABASE_URL": case_db, **ENV},
    )
    try:
        yield hub
    finally:
        hub.stop()


async def _write_history(dsn: str, data_dir: Path) -> dict[str, Any]:
    """A case in the department's hands whose extension request (to AHEAD_S from now) awaits
    approval, its countdown paused with USED_S of its limit used. Written while the hub runs: should
    its scheduler fire the first deadline's alarms between two of these moves, the next move is
    tried again on the new version (the board's sequence after the approval is the same)."""
    settings = hub_settings(data_dir, dsn, work_hours=WORK_HOURS, deadline_pause="extension")
    conn = await asyncpg.connect(dsn)
    try:
        users = {
            r["username"]: r
            for r in await conn.fetch(
                "SELECT id, username, department_id FROM users"
                " WHERE username IN ('seat1', 'dispatch1', 'dept01')"
            )
        }
    finally:
        await conn.close()
    seat = wf.Actor(users["seat1"]["id"], wf.Role.SEAT)
    disp = wf.Actor(users["dispatch1"]["id"], wf.Role.DISPATCHER)
    dept_id = users["dept01"]["department_id"]
    dept = wf.Actor(users["dept01"]["id"], wf.Role.DEPARTMENT, department_id=dept_id)

    state = await build_state(settings, live=False)
    try:
        svc = state.cases
        assert svc.policy.pause_extension
        now = datetime.now(UTC)
        until = now + timedelta(seconds=AHEAD_S)
        cat = next(c for c in svc.catalog.categories.values() if c.kind == "event" and c.active)
        limit = svc.time_limit_s(cat.id, urgent=True)
        # Dispatched so that the first deadline fell an hour ago (the extension must exceed it).
        dispatched = dl.shift(svc.calendar, now - timedelta(hours=1), -limit)
        at = [dispatched - timedelta(seconds=20)]
        svc.clock = lambda: at[0]

        async def act(actor: wf.Actor, case_id: int, cmd: wf.Command) -> dict[str, Any]:
            for _ in range(5):
                version = (await svc.get(actor, case_id))["version"]
                try:
                    return await svc.act(actor, case_id, version, cmd)
                except Conflict:
                    continue  # an alarm of the first deadline was written meanwhile
            raise AssertionError("the case kept moving")

        case = await svc.create(
            seat,
            NewCase(
                category_id=cat.id,
                source="video",
                description="视频巡查发现井盖缺失（时限告警界面测试）",
                address="麒麟区南宁北路 66 号",
                lon=103.80,
                lat=25.50,
                urgent=True,
            ),
        )
        cid = case["id"]
        at[0] = dispatched - timedelta(seconds=10)
        await act(seat, cid, wf.Command(wf.Action.REGISTER))
        at[0] = dispatched
        await act(disp, cid, wf.Command(wf.Action.DISPATCH, department_id=dept_id))
        at[0] = dispatched + timedelta(seconds=5)
        await act(dept, cid, wf.Command(wf.Action.ACCEPT))
        at[0] = dl.shift(svc.calendar, dispatched, USED_S)
        out = await act(
            dept,
            cid,
            wf.Command(
                wf.Action.REQUEST_EXTENSION, note="需协调管线单位，申请延期", extension_until=until
            ),
        )
        assert out["countdown"]["paused"] is True, out["countdown"]
        assert out["countdown"]["limit_s"] - out["countdown"]["remaining_s"] == USED_S
    finally:
        await close_state(state)
    return {"id": cid, "case_no": case["case_no"], "until": until}


def _badge(page: Any, case_id: int) -> tuple[str | None, str]:
    """(data-level or None without a badge, the deadline cell's class)."""
    out = page.evaluate(
        """(id) => {
            const row = document.querySelector(`[data-testid="case-row"][data-case-id="${id}"]`);
            const cell = row && row.querySelector(".col-deadline");
            const b = cell && cell.querySelector('[data-testid="deadline-badge"]');
            return [b ? b.dataset.level + (b.dataset.paused === "1" ? ":paused" : "") : null,
                    cell ? cell.className : ""];
        }""",
        case_id,
    )
    return out[0], out[1]


@pytest.mark.browser
def test_deadline_cell_turns_yellow_then_red_live(
    browser: Any, alarm_hub: LiveHub, case_db: str, shared_data_dir: Path
) -> None:
    paused_case = _in_thread(lambda: _write_history(case_db, shared_data_dir))
    case_id, until = paused_case["id"], paused_case["until"]
    row = f'{ROW}[data-case-id="{case_id}"]'
    dispatcher = ApiUser(alarm_hub.base_url, "dispatch1")
    p = Page(browser)
    try:
        page = p.page
        p.sign_in(alarm_hub.base_url, "seat1", f"/board?all=1&q={paused_case['case_no']}")
        page.wait_for_selector(row)
        p.wait_live()
        page.evaluate("window.__sameDocument = true")
        cell = page.locator(f"{row} .col-deadline")
        # Paused while the extension awaits approval: 计时暂停 and 延期待批, no 黄灯/红灯, and not 超时
        # although the first deadline passed an hour ago (a paused clock is not running late).
        assert cell.locator(BADGE).inner_text() == "计时暂停"
        assert "延期待批" in cell.inner_text()
        assert "overdue" not in (cell.get_attribute("class") or "")

        wait = (until - timedelta(seconds=APPROVE_BEFORE_S) - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(wait)
        approved = dispatcher.act(case_id, "approve_extension", note="同意延期")
        cd = approved["countdown"]
        assert cd["level"] == "normal" and cd["paused"] is False, cd
        warn_at = datetime.fromisoformat(cd["next_at"])
        assert warn_at > datetime.now(UTC), "the hub took too long to start: the 75 % moment passed"
        assert datetime.fromisoformat(approved["deadline"]) == until

        # Running again: the badge goes (正常 has none), 延期待批 too.
        page.wait_for_function(
            "([id, sel]) => !document.querySelector(sel)",
            arg=[case_id, f"{row} {BADGE}"],
            timeout=LIVE_MS,
        )
        assert "延期待批" not in cell.inner_text()
        page.wait_for_function(
            "(sel) => !document.querySelector(sel).classList.contains('overdue')",
            arg=f"{row} .col-deadline",
            timeout=LIVE_MS,
        )

        # 黄灯 at the 75 % moment, live, not before it.
        yellow = cell.locator(f'{BADGE}[data-level="warning"]')
        yellow.wait_for(timeout=int((warn_at - datetime.now(UTC)).total_seconds() * 1000) + 5000)
        assert datetime.now(UTC) >= warn_at - timedelta(seconds=0.5)
        assert yellow.inner_text() == "黄灯"
        assert "tag-pending" in (yellow.get_attribute("class") or "")
        assert "overdue" not in (cell.get_attribute("class") or "")

        # 红灯 at the deadline, live: the cell and the row turn overdue.
        red = cell.locator(f'{BADGE}[data-level="overdue"]')
        red.wait_for(timeout=int((until - datetime.now(UTC)).total_seconds() * 1000) + 5000)
        assert datetime.now(UTC) >= until - timedelta(seconds=0.5)
        assert red.inner_text() == "红灯"
        assert "tag-overdue" in (red.get_attribute("class") or "")
        page.wait_for_function(
            "(sel) => document.querySelector(sel).classList.contains('overdue')",
            arg=f"{row} .col-deadline",
            timeout=LIVE_MS,
        )
        assert "is-overdue" in (page.get_attribute(row, "class") or "")
        assert page.evaluate("window.__sameDocument") is True, "changed without a reload"

        # After a reload the list says the same, and the countdown counts the time overdue.
        page.reload()
        page.wait_for_selector(row)
        assert _badge(page, case_id)[0] == "overdue"
        assert "overdue" in _badge(page, case_id)[1]
        assert cell.locator(BADGE).inner_text() == "红灯"
        assert cell.locator('[data-testid="countdown"]').inner_text().startswith("已超时")
        assert p.unexpected_errors() == []
    finally:
        p.close()
        dispatcher.close()
