"""The case detail pane (realtime_ui/static/detail.js) in Debian's Chromium through Playwright, as the
people who use it all day would find it: a department that returns a case is told so and the case
goes; the deadline counts down in working time; dispatch suggests the category's department; before
and after photos side by side; a printable case sheet; the list's state and deadline columns stay in
sight at 1366 and 1440 pixels; the phone's Back button closes the case; no internal numbers.

Cases are prepared over the API with bearer tokens (httpx), as other users would make them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from hub.demo import DEMO_USERS
from tests.helpers import png_bytes

TIMEOUT_MS = 20_000
ROW = '[data-testid="case-row"]'
PANE = '[data-testid="detail-pane"]'
TIMELINE_ITEM = f'{PANE} [data-testid="timeline-item"]'

pytestmark = pytest.mark.browser


# -- API side ----------------------------------------------------------------------------------


class ApiUser:
    """A bearer-token API client for one demo user."""

    def __init__(self, base_url: str, username: str) -> None:
        r = httpx.post(
            f"{base_url}/api/auth/login",
            json={"username": username, "password": DEMO_USERS[username][1], "token": True},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        self.username = username
        self.user: dict[str, Any] = body["user"]
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {body['token']}"}, timeout=10
        )

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def photo(self, seed: int) -> int:
        data = png_bytes(seed % 256, (seed * 7) % 256, (seed * 13) % 256, size=32)
        r = self.http.post("/api/attachments", files={"file": (f"p{seed}.png", data, "image/png")})
        assert r.status_code == 201, r.text
        return int(r.json()["items"][0]["id"])

    def act(self, case_id: int, action: str, **fields: Any) -> dict[str, Any]:
        version = self.get(f"/api/cases/{case_id}")["version"]
        r = self.http.post(
            f"/api/cases/{case_id}/actions", json={"action": action, "version": version, **fields}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def close(self) -> None:
        self.http.close()


class City:
    """The demo users these tests act as, and the cases they prepare."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.users: dict[str, ApiUser] = {}
        self.seq = 0

    def user(self, name: str) -> ApiUser:
        if name not in self.users:
            self.users[name] = ApiUser(self.base_url, name)
        return self.users[name]

    def category(self, name: str = "暴露垃圾") -> dict[str, Any]:
        items = self.user("seat2").get("/api/categories")["items"]
        return dict(next(c for c in items if c["name"] == name))

    def department_user(self, department_id: int) -> ApiUser:
        for name, (role, _pw) in DEMO_USERS.items():
            if role == "department" and self.user(name).user["department_id"] == department_id:
                return self.user(name)
        raise AssertionError(f"no demo user for department {department_id}")

    def report(self, *, photo: bool = False) -> dict[str, Any]:
        """A video-patrol report by a seat (with a before photo if asked)."""
        self.seq += 1
        seat = self.user("seat2")
        body: dict[str, Any] = {
            "category_id": self.category()["id"],
            "source": "video",
            "description": f"视频巡查发现道路旁暴露垃圾（详情测试 {self.seq}）",
            "address": f"麒麟区南宁北路 {200 + self.seq} 号",
            "lon": 103.80,
            "lat": 25.50,
        }
        if photo:
            body["attachment_ids"] = [seat.photo(self.seq)]
        r = seat.http.post("/api/cases", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def supervisor_report(self, username: str = "sup01") -> dict[str, Any]:
        """A field supervisor's report with a before photo, at the middle of one of their grids."""
        self.seq += 1
        sup = self.user(username)
        mine = set(sup.user["grid_ids"])
        grid = next(
            g
            for g in sup.get("/api/grids", level=2)["items"]
            if g["id"] in mine or g["parent_id"] in mine
        )
        ring = sup.get(f"/api/grids/{grid['id']}")["boundary"]
        xs, ys = [pt[0] for pt in ring], [pt[1] for pt in ring]
        r = sup.http.post(
            "/api/cases",
            json={
                "category_id": self.category()["id"],
                "source": "supervisor",
                "description": f"巡查发现暴露垃圾（详情测试 {self.seq}）",
                "address": f"麒麟区建宁路 {self.seq} 号",
                "lon": (min(xs) + max(xs)) / 2,
                "lat": (min(ys) + max(ys)) / 2,
                "attachment_ids": [sup.photo(self.seq)],
            },
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def registered(self, **kw: Any) -> dict[str, Any]:
        case = self.report(**kw)
        return self.user("seat2").act(case["id"], "register")

    def dispatched(self, **kw: Any) -> tuple[dict[str, Any], ApiUser]:
        """A case dispatched to its category's default department, and a user of that department."""
        case = self.registered(**kw)
        dep = self.category()["default_department_id"]
        case = self.user("dispatch1").act(case["id"], "dispatch", department_id=dep)
        return case, self.department_user(dep)

    def close(self) -> None:
        for u in self.users.values():
            u.close()


@pytest.fixture(scope="module")
def city(live_hub: Any) -> Iterator[City]:
    c = City(live_hub.base_url)
    try:
        yield c
    finally:
        c.close()


# -- browser side ------------------------------------------------------------------------------


class Session:
    """A signed-in board page in its own browser context, with its console errors."""

    def __init__(
        self,
        browser: Any,
        base_url: str,
        username: str,
        *,
        width: int = 1920,
        height: int = 1080,
        query: str = "",
        clock: datetime | None = None,
    ) -> None:
        self.base_url = base_url
        self.ctx = browser.new_context(
            viewport={"width": width, "height": height},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        self.ctx.set_default_timeout(TIMEOUT_MS)
        self.page = page = self.ctx.new_page()
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        if clock is not None:
            page.clock.install(time=clock)
        page.goto(f"{base_url}/login?next=/board{query}")
        page.fill('[data-testid="login-username"]', username)
        page.fill('[data-testid="login-password"]', DEMO_USERS[username][1])
        page.click('[data-testid="login-submit"]')
        page.wait_for_url(re.compile(r"/board(\?|$)"))
        page.wait_for_selector(ROW)

    def open_case(self, case_id: int) -> None:
        """Open a case: from its row when the list shows it, else by its link (``?case=``)."""
        row = self.page.locator(f'{ROW}[data-case-id="{case_id}"]')
        if row.count():
            row.click()
        else:
            self.page.goto(f"{self.base_url}/board?case={case_id}")
        try:
            self.page.wait_for_selector(f'{PANE} [data-testid="detail-fields"]')
        except Exception:
            raise AssertionError(
                f"{self.page.url} {self.errors} {self.page.inner_text(PANE)[:300]}"
            ) from None

    def detail_text(self) -> str:
        return str(self.page.inner_text(f"{PANE} .detail-screen"))

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def session(browser: Any, live_hub: Any) -> Iterator[Any]:
    made: list[Session] = []

    def _open(username: str, **kw: Any) -> Session:
        s = Session(browser, live_hub.base_url, username, **kw)
        made.append(s)
        return s

    try:
        yield _open
    finally:
        for s in made:
            s.close()


# -- 1. a returned case is said to be gone, not drawn as an empty case -------------------------------


def test_department_return_says_so_and_the_case_goes(session: Any, city: City) -> None:
    case, dept = city.dispatched()
    s = session(dept.username)
    page = s.page
    s.open_case(case["id"])
    page.click('[data-testid="action-button"][data-action="return"]')
    page.fill('[data-testid="action-form"] [data-testid="action-note"]', "不属于本部门职责")
    page.click('[data-testid="action-form"] [data-testid="action-submit"]')

    gone = page.locator(f'{PANE} [data-testid="detail-gone"]')
    gone.wait_for(state="visible")
    assert "已退回指挥中心" in gone.inner_text()
    text = page.inner_text(PANE)
    assert "暂无处理记录" not in text and "案件类别" not in text
    # The row goes and stays gone (no blank row left behind), then the pane closes by itself.
    page.wait_for_selector(f'{ROW}[data-case-id="{case["id"]}"]', state="detached")
    page.wait_for_function("() => !document.body.classList.contains('detail-open')")
    assert page.locator(f'{ROW}[data-case-id="{case["id"]}"]').count() == 0
    assert page.locator(f"{ROW}:not([data-state])").count() == 0
    assert s.errors == []


# -- 2. the countdown in working time -------------------------------------------------------------


def countdown(page: Any) -> Any:
    loc = page.locator(f'{PANE} [data-field="deadline"] [data-testid="countdown"]')
    loc.wait_for(state="visible")
    return loc


def test_countdown_left_soon_and_overdue(session: Any, city: City) -> None:
    case, _dept = city.dispatched()
    s = session("seat1")
    s.open_case(case["id"])
    cd = countdown(s.page)
    assert cd.get_attribute("data-level") == "ok"
    assert re.fullmatch(r"剩余 (\d+ 小时( \d+ 分)?|\d+ 分)", cd.inner_text()), cd.inner_text()
    s.close()

    # The same case seen with the browser's clock half an hour before its deadline: yellow.
    due = datetime.fromisoformat(case["deadline"])
    s = session("seat1", clock=due - timedelta(minutes=30))
    s.open_case(case["id"])
    cd = countdown(s.page)
    assert cd.get_attribute("data-level") == "warn"
    assert cd.inner_text().startswith("剩余 ")
    warn_bg = cd.evaluate("e => getComputedStyle(e).backgroundColor")
    s.close()

    # And a working day after it: red, 已超时.
    s = session("seat1", clock=due + timedelta(hours=30))
    s.open_case(case["id"])
    cd = countdown(s.page)
    assert cd.get_attribute("data-level") == "over"
    assert cd.inner_text().startswith("已超时 ")
    over_bg = cd.evaluate("e => getComputedStyle(e).backgroundColor")
    assert over_bg != warn_bg
    assert over_bg == "rgb(198, 40, 40)"  # --danger


# -- 3. dispatch suggests the category's department ---------------------------------------------------


def test_dispatch_preselects_the_default_department(session: Any, city: City) -> None:
    case = city.registered()
    cat = city.category()
    deps = {d["id"]: d["name"] for d in city.user("dispatch1").get("/api/departments")["items"]}
    s = session("dispatch1")
    s.open_case(case["id"])
    s.page.click('[data-testid="action-button"][data-action="dispatch"]')
    sel = s.page.locator('[data-testid="action-department"]')
    assert sel.input_value() == str(cat["default_department_id"])
    hint = s.page.inner_text('[data-testid="dispatch-suggestion"]')
    assert hint.startswith(f"建议：{deps[cat['default_department_id']]}")
    # Submitting as suggested dispatches there.
    s.page.click('[data-testid="action-form"] [data-testid="action-submit"]')
    s.page.wait_for_selector(f'{PANE} .detail-head [data-state="dispatched"]')
    dept = s.page.inner_text(f'{PANE} [data-field="department"]')
    assert dept == deps[cat["default_department_id"]]


# -- 4. before/after photos side by side --------------------------------------------------------------


def test_before_and_after_photos_side_by_side(session: Any, city: City) -> None:
    case, dept = city.dispatched(photo=True)
    dept.act(case["id"], "accept")
    after = dept.photo(900 + case["id"] % 100)
    dept.act(case["id"], "feedback", note="已清运完毕", attachment_ids=[after])
    s = session("seat1")
    s.open_case(case["id"])
    page = s.page
    before_col = page.locator(f'{PANE} [data-testid="photos-before"]')
    after_col = page.locator(f'{PANE} [data-testid="photos-after"]')
    assert before_col.locator(".photo-label").inner_text() == "处置前"
    assert after_col.locator(".photo-label").inner_text() == "处置后"
    assert before_col.locator("img").count() == 1
    assert after_col.locator("img").count() == 1
    assert after_col.locator("a").get_attribute("href") == f"/api/attachments/{after}"
    b, a = before_col.bounding_box(), after_col.bounding_box()
    assert abs(b["y"] - a["y"]) < 2 and b["x"] + b["width"] <= a["x"] + 1  # one row, before first
    # Both images really load.
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="photo-compare"] img')]
            .every(i => i.complete && i.naturalWidth > 0)"""
    )


def test_verifier_sees_the_photos_first(session: Any, city: City) -> None:
    case = city.supervisor_report("sup01")
    city.user("seat2").act(case["id"], "register")
    dep = city.category()["default_department_id"]
    city.user("dispatch1").act(case["id"], "dispatch", department_id=dep)
    dept = city.department_user(dep)
    dept.act(case["id"], "accept")
    dept.act(case["id"], "feedback", attachment_ids=[dept.photo(500 + city.seq)])
    city.user("seat2").act(case["id"], "request_verify")
    s = session("sup01")
    s.open_case(case["id"])
    page = s.page
    page.wait_for_selector('[data-testid="action-button"][data-action="verify_pass"]')
    compare = page.locator(f'{PANE} [data-testid="photo-compare"]').bounding_box()
    fields = page.locator(f'{PANE} [data-testid="detail-fields"]').bounding_box()
    assert compare["y"] < fields["y"]  # before and after come before the case's fields
    assert page.locator(f'{PANE} [data-testid="photos-before"] img').count() == 1
    assert page.locator(f'{PANE} [data-testid="photos-after"] img').count() == 1


def test_supervisor_confirms_a_report_on_site(session: Any, city: City) -> None:
    """核实: the seat sends a public report to the grid's supervisor (发送核实), who sees the
    report's photo first, must say why it is 不属实, and hands it back to the seat (待受理)."""
    city.seq += 1
    seat, sup = city.user("seat2"), city.user("sup01")
    mine = set(sup.user["grid_ids"])
    grid = next(
        g
        for g in sup.get("/api/grids", level=2)["items"]
        if g["id"] in mine or g["parent_id"] in mine
    )
    ring = sup.get(f"/api/grids/{grid['id']}")["boundary"]
    xs, ys = [pt[0] for pt in ring], [pt[1] for pt in ring]
    r = seat.http.post(
        "/api/cases",
        json={
            "category_id": city.category()["id"],
            "source": "public",
            "description": f"市民反映路边暴露垃圾（核实测试 {city.seq}）",
            "address": f"麒麟区建宁路 {city.seq} 号",
            "lon": (min(xs) + max(xs)) / 2,
            "lat": (min(ys) + max(ys)) / 2,
            "attachment_ids": [seat.photo(700 + city.seq)],
        },
    )
    assert r.status_code == 201, r.text
    case = r.json()

    s = session("seat2")  # the seat sends it from the detail pane
    s.open_case(case["id"])
    page = s.page
    page.click('[data-testid="action-button"][data-action="request_confirm"]')
    assert page.inner_text('[data-testid="action-submit"]') == "确认发送核实"
    page.click('[data-testid="action-form"] [data-testid="action-submit"]')
    page.wait_for_selector(
        f'{PANE} .detail-head [data-testid="state-badge"][data-state="confirming"]'
    )
    assert page.inner_text(f'{PANE} .detail-head [data-testid="state-badge"]') == "核实中"

    s = session("sup01")
    s.open_case(case["id"])
    page = s.page
    buttons = page.locator(f'{PANE} [data-testid="action-button"]')
    buttons.first.wait_for()
    assert buttons.all_inner_texts() == ["核实属实", "核实不属实", "补充证据"]
    compare = page.locator(f'{PANE} [data-testid="photos-before"]').bounding_box()
    fields = page.locator(f'{PANE} [data-testid="detail-fields"]').bounding_box()
    assert compare["y"] < fields["y"]  # the report's photo comes before the fields
    page.click('[data-testid="action-button"][data-action="confirm_fail"]')
    page.click('[data-testid="action-form"] [data-testid="action-submit"]')
    error = page.locator('[data-testid="action-error"]')
    error.wait_for()
    assert error.inner_text() == "“核实不属实”需要填写说明"
    page.fill('[data-testid="action-form"] [data-testid="action-note"]', "现场未发现暴露垃圾")
    page.click('[data-testid="action-form"] [data-testid="action-submit"]')
    page.wait_for_selector(
        f'{PANE} .detail-head [data-testid="state-badge"][data-state="reported"]'
    )
    timeline = " ".join(page.locator(TIMELINE_ITEM).all_inner_texts())
    assert "核实不属实" in timeline and "现场未发现暴露垃圾" in timeline
    assert seat.get(f"/api/cases/{case['id']}")["state"] == "reported"
    assert not s.errors


# -- 5. the printable case sheet ----------------------------------------------------------------------


def test_print_shows_the_case_sheet_only(session: Any, city: City) -> None:
    case, _dept = city.dispatched(photo=True)
    s = session("seat1")
    s.open_case(case["id"])
    page = s.page
    assert page.is_visible('[data-testid="print-sheet"]')
    assert page.inner_text('[data-testid="print-sheet"]') == "打印案件单"
    sheet = page.locator('[data-testid="case-sheet"]')
    assert not sheet.is_visible()  # on screen it is not shown

    page.emulate_media(media="print")
    sheet.wait_for(state="visible")
    text = sheet.inner_text()
    assert "数字城管案件单" in text and case["case_no"] in text
    events = page.locator('[data-testid="sheet-event"]')
    assert events.count() == 3  # report, register, dispatch
    assert "派遣" in events.nth(2).inner_text()
    photos = sheet.locator('[data-testid="sheet-photos"]')
    assert photos.first.inner_text().startswith("处置前")
    assert photos.first.locator("img").count() == 1
    for hidden in (".topbar", ".filters", ".list-pane", f"{PANE} .detail-screen"):
        assert not page.is_visible(hidden), hidden
    page.emulate_media(media="screen")
    assert not sheet.is_visible() and page.is_visible(".list-pane")


# -- 6. the list's state and deadline columns stay in sight ---------------------------------------------

COVERED_JS = """([sel, n]) => {
  const out = [];
  for (const row of [...document.querySelectorAll(sel)].slice(0, n)) {
    for (const cls of ["col-state", "col-deadline"]) {
      const cell = row.querySelector("." + cls);
      const r = cell.getBoundingClientRect();
      const x = r.left + Math.min(r.width / 2, 20), y = r.top + r.height / 2;
      const hit = document.elementFromPoint(x, y);
      const ok = r.width > 0 && r.right <= innerWidth && hit !== null && cell.contains(hit);
      if (!ok) out.push(`${row.dataset.caseId} ${cls}: ${hit ? hit.className : "none"}`);
    }
  }
  return out;
}"""


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (1440, 900)])
def test_detail_leaves_state_and_deadline_columns_visible(
    session: Any, city: City, width: int, height: int
) -> None:
    case, _dept = city.dispatched()
    s = session("seat1", width=width, height=height)
    page = s.page
    s.open_case(case["id"])
    assert page.is_visible(f'{PANE} [data-testid="detail-fields"]')
    assert page.evaluate(COVERED_JS, [ROW, 8]) == []
    # The pane and the list do not overlap at all.
    pane = page.locator(PANE).bounding_box()
    table = page.locator(".table-wrap").bounding_box()
    assert table["x"] + table["width"] <= pane["x"] + 1
    # Closing brings the filters back.
    page.click('[data-testid="detail-close"]')
    assert page.is_visible('[data-testid="filter-form"]')


# -- 7. the phone's Back button closes the case ----------------------------------------------------------


def test_phone_back_button_closes_the_case(session: Any, city: City) -> None:
    case, _dept = city.dispatched()
    s = session("seat1", width=390, height=844)
    page = s.page
    s.open_case(case["id"])
    assert page.is_visible(f'{PANE} [data-testid="detail-fields"]')
    page.evaluate("window.__sameDocument = true")  # survives only if Back stays on this page
    page.go_back()
    page.wait_for_function("() => !document.body.classList.contains('detail-open')")
    assert page.evaluate("window.__sameDocument") is True
    assert re.search(r"/board(\?|$)", page.url) and "case=" not in page.url
    assert not page.is_visible(f'{PANE} [data-testid="detail-fields"]')
    assert page.locator(ROW).first.is_visible()
    # Opened again and closed with its button: the page stays on the board, the list in sight.
    s.open_case(case["id"])
    page.evaluate("window.__sameDocument = true")
    page.click('[data-testid="detail-close"]')
    page.wait_for_function("() => !document.body.classList.contains('detail-open')")
    page.wait_for_timeout(300)  # the history.back() of the closed case's entry has settled
    assert page.evaluate("window.__sameDocument") is True
    assert re.search(r"/board(\?|$)", page.url) and "case=" not in page.url
    assert page.locator(ROW).first.is_visible()
    assert s.errors == []


# -- 8. plain Chinese: no internal numbers ---------------------------------------------------------------


def test_detail_shows_no_internal_numbers(session: Any, city: City) -> None:
    case, _dept = city.dispatched(photo=True)
    s = session("seat1")
    s.open_case(case["id"])
    page = s.page
    text = s.detail_text()
    assert case["grid"] is None or case["grid"]["code"] not in text
    assert not re.search(r"\d{12,}", text), text  # grid or component codes without their names
    assert "版本" not in text
    assert not re.search(r"\d\s*级", text), text
    assert page.inner_text(f'{PANE} [data-field="urgency"]') in {"紧急", "一般", "较缓"}
    assert not re.search(rf"(附件|案件)\s*{case['id']}\b", text)
