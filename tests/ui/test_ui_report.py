"""The report form (report.js, gridmap.js, photos-upload.js) in Debian's Chromium, as a seat at a
desk and a field supervisor on a phone use it: the location picked on the grid map or from the
phone's position, the address filled in from the grid, the grid checked before anything is sent,
the category found by major / minor class or by search, every missing field reported at once, a
character counter instead of a cut, and photos checked, previewed and compressed in the browser.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from typing import Any

import httpx
import pytest

from tests.helpers import png_bytes

TIMEOUT_MS = 20_000
PASSWORDS = {"seat1": "Seat#2026", "sup01": "Super#2026", "sup03": "Super#2026"}
ROW = '[data-testid="case-row"]'
DIALOG = '[data-testid="report-dialog"]'
MAP = '[data-testid="report-map"]'


class Board:
    """A signed-in board in its own context, counting the writes the page sends."""

    def __init__(self, browser: Any, base: str, username: str, **ctx: Any) -> None:
        opts = {"viewport": {"width": 1366, "height": 900}, "locale": "zh-CN"}
        opts.update(ctx)
        self.base = base
        self.ctx = browser.new_context(timezone_id="Asia/Shanghai", **opts)
        self.ctx.set_default_timeout(TIMEOUT_MS)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.posts: list[str] = []
        self.page.on(
            "request",
            lambda r: (
                self.posts.append(r.url.split("?")[0].removeprefix(base))
                if r.method == "POST"
                else None
            ),
        )
        page = self.page
        page.goto(f"{base}/login?next=/board")
        page.fill('[data-testid="login-username"]', username)
        page.fill('[data-testid="login-password"]', PASSWORDS[username])
        page.click('[data-testid="login-submit"]')
        page.wait_for_url(re.compile(r"/board(\?|$)"))
        page.wait_for_selector('[data-testid="new-case-button"]:visible')
        self.posts.clear()

    def open_report(self) -> Any:
        page = self.page
        page.click('[data-testid="new-case-button"]')
        page.wait_for_selector(f"{DIALOG}[open]")
        page.wait_for_selector(f"{MAP} polygon.cell")
        return page

    def problems(self) -> dict[str, str]:
        items = self.page.locator('[data-testid="report-problem"]')
        return {
            items.nth(i).get_attribute("data-field") or "": items.nth(i).inner_text()
            for i in range(items.count())
        }

    def close(self) -> None:
        self.ctx.close()


def api_login(base: str, username: str) -> dict[str, str]:
    r = httpx.post(
        f"{base}/api/auth/login",
        json={"username": username, "password": PASSWORDS[username], "token": True},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def grids(base: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def level(n: int) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{base}/api/grids",
            params={"level": n, "with_boundary": "true"},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    return level(1), level(2)


def centre(g: dict[str, Any]) -> tuple[float, float]:
    ring = g["boundary"]
    return (
        round(sum(p[0] for p in ring) / len(ring), 6),
        round(sum(p[1] for p in ring) / len(ring), 6),
    )


def inside(g: dict[str, Any], lon: float, lat: float) -> bool:
    xs = [p[0] for p in g["boundary"]]
    ys = [p[1] for p in g["boundary"]]
    return min(xs) <= lon <= max(xs) and min(ys) <= lat <= max(ys)


def expected_address(g: dict[str, Any], streets: list[dict[str, Any]]) -> str:
    street = next(s["name"] for s in streets if s["id"] == g["parent_id"])
    assert g["name"].startswith(street)
    return f"{street} {g['name'][len(street) :]}"


def noise_png(width: int, height: int) -> bytes:
    """An RGB PNG of random pixels: it does not compress, so it is about width x height x 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = os.urandom(width * 3 * height)
    raw = b"".join(b"\x00" + rows[y * width * 3 : (y + 1) * width * 3] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(raw, 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOF segment."""
    assert data[:2] == b"\xff\xd8"
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    raise AssertionError("no SOF segment")


def pick_category(page: Any, query: str, name: str) -> None:
    page.fill('[data-testid="report-category-search"]', query)
    page.click(f'[data-testid="report-minor"]:has-text("{name}")')


# -- the map, the address, the category --------------------------------------------------------


@pytest.mark.browser
def test_seat_reports_on_the_map_with_category_search(browser: Any, live_hub: Any) -> None:
    base = live_hub.base_url
    seat = api_login(base, "seat1")
    streets, cells = grids(base, seat)
    cats = httpx.get(f"{base}/api/categories", headers=seat, timeout=10).json()["items"]
    b = Board(browser, base, "seat1")
    try:
        page = b.open_report()
        # The grid map: every unit grid drawn, and the street names.
        assert page.locator(f"{MAP} polygon.cell").count() == len(cells)
        assert set(page.locator(f"{MAP} .street-label").all_text_contents()) == {
            s["name"] for s in streets
        }

        # A click on a grid sets the coordinates inside it, names the grid and fills the address.
        target = cells[len(cells) // 3]
        page.click(f'{MAP} polygon.cell[data-grid-id="{target["id"]}"]')
        lon = float(page.input_value('[data-testid="report-lon"]'))
        lat = float(page.input_value('[data-testid="report-lat"]'))
        assert inside(target, lon, lat)
        address = expected_address(target, streets)
        assert page.input_value('[data-testid="report-address"]') == address
        assert page.inner_text('[data-testid="report-grid"]') == f"所属网格：{address}"
        assert page.locator('[data-testid="report-pin"]').count() == 1
        assert page.get_attribute(
            '[data-testid="report-map-chosen"]', "points"
        ) == page.get_attribute(f'{MAP} polygon.cell[data-grid-id="{target["id"]}"]', "points")
        # Another grid: the address follows while the user has not touched it ...
        other = cells[len(cells) // 3 + 1]
        page.click(f'{MAP} polygon.cell[data-grid-id="{other["id"]}"]')
        assert page.input_value('[data-testid="report-address"]') == expected_address(
            other, streets
        )
        # ... and an address the user wrote stays as written.
        page.fill('[data-testid="report-address"]', "麒麟南路 88 号门前")
        page.click(f'{MAP} polygon.cell[data-grid-id="{target["id"]}"]')
        assert page.input_value('[data-testid="report-address"]') == "麒麟南路 88 号门前"
        assert inside(target, float(page.input_value('[data-testid="report-lon"]')), lat)

        # The category: by major class, then minor class ...
        e0101 = next(c for c in cats if c["code"] == "E0101")
        major = e0101["major_name"]
        page.click(f'[data-testid="report-major"][data-kind="event"][data-major="{major}"]')
        shown = page.locator('[data-testid="report-minor"]')
        assert {
            int(shown.nth(i).get_attribute("data-category-id")) for i in range(shown.count())
        } == {c["id"] for c in cats if c["major_name"] == major and c["kind"] == e0101["kind"]}
        # ... or by a search matching either name.
        for query in ("乱建", major):
            page.fill('[data-testid="report-category-search"]', query)
            found = page.locator(
                '[data-testid="report-category-results"] [data-testid="report-minor"]'
            )
            ids = {
                int(found.nth(i).get_attribute("data-category-id")) for i in range(found.count())
            }
            assert ids == {c["id"] for c in cats if query in c["major_name"] or query in c["name"]}
        page.fill('[data-testid="report-category-search"]', "没有这种类别")
        assert page.inner_text('[data-testid="report-category-none"]') == "没有匹配的类别"
        pick_category(page, "乱建", e0101["name"])
        chosen = page.inner_text('[data-testid="report-category-chosen"]')
        assert f"{major} › {e0101['name']}" in chosen
        assert f"处置时限：{e0101['time_limit_label']}" in chosen

        page.select_option('[data-testid="report-source"]', "video")
        page.fill('[data-testid="report-description"]', "人行道上搭建彩钢棚，占道约 20 平方米")
        page.set_input_files(
            '[data-testid="report-photos"]',
            files=[{"name": "现场.png", "mimeType": "image/png", "buffer": png_bytes(size=64)}],
        )
        preview = page.locator('[data-testid="report-photos-preview"] img')
        preview.wait_for()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth === 64", arg=preview.element_handle()
        )
        page.click('[data-testid="report-submit"]')
        toast = page.locator('[data-testid="toast"]')
        toast.wait_for(state="visible")
        case_no = re.search(r"案件 (\S+) 已上报", toast.inner_text())
        assert case_no, toast.inner_text()
        assert not page.is_visible(f"{DIALOG}[open]")
        listed = httpx.get(
            f"{base}/api/cases", params={"q": case_no.group(1)}, headers=seat, timeout=10
        ).json()["items"]
        case = httpx.get(f"{base}/api/cases/{listed[0]['id']}", headers=seat, timeout=10).json()
        assert case["category"]["id"] == e0101["id"]
        assert case["grid"]["id"] == target["id"]
        assert case["address"] == "麒麟南路 88 号门前"
        assert [a["media_type"] for a in case["attachments"]] == ["image/png"]
        assert b.posts == ["/api/attachments", "/api/cases"]
        assert b.errors == []
    finally:
        b.close()


# -- everything missing at once, the counter, the grid check before the upload ----------------


@pytest.mark.browser
def test_problems_at_once_counter_and_grid_check_before_upload(browser: Any, live_hub: Any) -> None:
    base = live_hub.base_url
    b = Board(browser, base, "seat1")
    try:
        page = b.open_report()
        page.select_option('[data-testid="report-source"]', "video")
        page.click('[data-testid="report-submit"]')
        # Every missing field at once, each highlighted where it is.
        problems = b.problems()
        assert problems == {
            "category": "请选择案件类别",
            "description": "请填写问题描述",
            "location": "请在地图上点选问题位置，或使用当前位置",
        }
        assert page.inner_text('[data-testid="report-error"]').startswith("还有 3 项需要填写或修改")
        for name in problems:
            box = page.locator(f'[data-field-box="{name}"]')
            assert "has-error" in (box.get_attribute("class") or "")
            assert box.locator('[data-testid="report-field-error"]').inner_text() == problems[name]
        assert page.get_attribute('[data-testid="report-description"]', "aria-invalid") == "true"

        # A long description is kept whole and counted, not cut at the limit.
        long_text = "占道经营" * 1025  # 4100 characters
        page.fill('[data-testid="report-description"]', long_text)
        assert len(page.input_value('[data-testid="report-description"]')) == 4100
        counter = page.locator('[data-testid="report-description-count"]')
        assert counter.inner_text() == "4100 / 4000（超出 100 字）"
        assert "over" in (counter.get_attribute("class") or "")
        # Fixing a field clears its mark (the form re-checks once it has been submitted).
        pick_category(page, "乱建", "私搭乱建")
        assert "category" not in b.problems()
        assert b.problems()["description"] == "问题描述最多 4000 字，已超出 100 字"
        page.fill('[data-testid="report-description"]', "人行道上搭建彩钢棚")
        assert page.inner_text('[data-testid="report-description-count"]') == "9 / 4000"

        # A point outside every grid is refused before the photos are uploaded.
        page.fill('[data-testid="report-lon"]', "103.5")
        page.fill('[data-testid="report-lat"]', "25.2")
        assert page.inner_text('[data-testid="report-grid"]') == "该位置不在本市网格范围内"
        page.set_input_files(
            '[data-testid="report-photos"]',
            files=[{"name": "a.png", "mimeType": "image/png", "buffer": png_bytes()}],
        )
        page.wait_for_selector('[data-testid="report-photos-preview"]')
        page.click('[data-testid="report-submit"]')
        assert b.problems() == {"location": "该位置不在本市网格范围内，请在网格内选点"}
        # Clicking the map's margin (outside the city) says the same.
        box = page.locator(MAP).bounding_box()
        page.mouse.click(box["x"] + 3, box["y"] + 3)
        assert page.get_attribute('[data-testid="report-grid"]', "data-state") == "outside"
        page.click('[data-testid="report-submit"]')
        assert "location" in b.problems()
        assert b.posts == []  # nothing uploaded, nothing reported
        assert b.errors == []
    finally:
        b.close()


# -- photos: checked, previewed, compressed -----------------------------------------------------


@pytest.mark.browser
def test_photos_checked_previewed_and_compressed(browser: Any, live_hub: Any) -> None:
    base = live_hub.base_url
    seat = api_login(base, "seat1")
    _streets, cells = grids(base, seat)
    limits = httpx.get(f"{base}/api/auth/me", headers=seat, timeout=10).json()["uploads"]
    assert limits == {
        "max_bytes": 20 * 1024 * 1024,
        "max_files": 9,
        "photo_types": ["image/jpeg", "image/png", "image/webp"],
    }
    b = Board(browser, base, "seat1")
    try:
        page = b.open_report()
        # Wrong type, too big, not a picture: said plainly, in the browser, nothing sent.
        page.set_input_files(
            '[data-testid="report-photos"]',
            files=[
                {"name": "动图.gif", "mimeType": "image/gif", "buffer": b"GIF89a" + b"\x00" * 64},
                {
                    "name": "大图.jpg",
                    "mimeType": "image/jpeg",
                    "buffer": b"\xff\xd8\xff" + b"\x00" * (20 * 1024 * 1024 + 10),
                },
                {"name": "坏图.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"\x00" * 90},
            ],
        )
        problem = page.locator('[data-testid="report-photos-problem"]')
        problem.first.wait_for()
        assert problem.all_inner_texts() == [
            "“动图.gif”不是 JPEG、PNG 或 WebP 格式的照片",
            "“大图.jpg”超过 20 MB",
            "“坏图.png”无法识别为照片，请换一张",
        ]
        assert page.locator('[data-testid="report-photos-preview"]').count() == 0

        # A 3000 x 2000 photo of about 18 MB is shrunk to 1920 px wide JPEG before it is sent.
        big = noise_png(3000, 2000)
        page.set_input_files(
            '[data-testid="report-photos"]',
            files=[{"name": "全景.png", "mimeType": "image/png", "buffer": big}],
        )
        preview = page.locator('[data-testid="report-photos-preview"]')
        preview.wait_for(timeout=60_000)
        assert preview.get_attribute("data-compressed") == "true"
        assert re.fullmatch(
            r"已压缩 \d+\.\d MB → \d+(\.\d)? (MB|KB)", preview.locator(".photo-size").inner_text()
        )
        assert page.locator('[data-testid="report-photos-problem"]').count() == 0
        # Removing a preview drops the photo; choosing it again brings it back.
        page.click('[data-testid="report-photos-remove"]')
        assert preview.count() == 0
        page.set_input_files(
            '[data-testid="report-photos"]',
            files=[{"name": "全景.png", "mimeType": "image/png", "buffer": big}],
        )
        preview.wait_for(timeout=60_000)

        pick_category(page, "乱建", "私搭乱建")
        page.fill('[data-testid="report-description"]', "彩钢棚全景照片")
        page.click(f'{MAP} polygon.cell[data-grid-id="{cells[5]["id"]}"]')
        page.click('[data-testid="report-submit"]')
        toast = page.locator('[data-testid="toast"]')
        toast.wait_for(state="visible", timeout=60_000)
        no = re.search(r"案件 (\S+) 已上报", toast.inner_text())
        assert no
        listed = httpx.get(
            f"{base}/api/cases", params={"q": no.group(1)}, headers=seat, timeout=10
        ).json()["items"]
        case = httpx.get(f"{base}/api/cases/{listed[0]['id']}", headers=seat, timeout=10).json()
        [att] = case["attachments"]
        assert att["media_type"] == "image/jpeg" and att["original_name"] == "全景.jpg"
        assert att["size"] < len(big) // 2
        data = httpx.get(f"{base}/api/attachments/{att['id']}", headers=seat, timeout=10).content
        assert jpeg_size(data) == (1920, 1280)
        assert b.errors == []
    finally:
        b.close()


GIF_1X1 = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


@pytest.mark.browser
def test_a_refused_upload_is_said_plainly(browser: Any, live_hub: Any) -> None:
    """A GIF named .png passes the browser (Chromium draws it) but not the server's check of the
    bytes: the form says why in plain Chinese, and reports nothing."""
    base = live_hub.base_url
    _streets, cells = grids(base, api_login(base, "seat1"))
    b = Board(browser, base, "seat1")
    try:
        page = b.open_report()
        pick_category(page, "乱建", "私搭乱建")
        page.fill('[data-testid="report-description"]', "照片格式不对的上报")
        page.click(f'{MAP} polygon.cell[data-grid-id="{cells[7]["id"]}"]')
        page.set_input_files(
            '[data-testid="report-photos"]',
            files=[{"name": "其实是动图.png", "mimeType": "image/png", "buffer": GIF_1X1}],
        )
        page.wait_for_selector('[data-testid="report-photos-preview"]')
        page.click('[data-testid="report-submit"]')
        failure = page.locator('[data-testid="report-failure"]')
        failure.wait_for()
        assert failure.inner_text() == (
            "照片上传失败：不支持的文件类型：照片须为 JPEG、PNG 或 WebP 格式，"
            "录音须为 MP3、WAV、OGG、AMR 或 M4A 格式，视频须为 MP4 格式"
        )
        assert b.posts == ["/api/attachments"]  # the case was not reported
        assert page.is_visible(f"{DIALOG}[open]")
        assert page.inner_text('[data-testid="report-submit"]') == "提交上报"
    finally:
        b.close()


# -- a field supervisor on a phone ---------------------------------------------------------------


@pytest.mark.browser
def test_supervisor_on_a_phone_uses_the_position(browser: Any, live_hub: Any) -> None:
    base = live_hub.base_url
    sup = api_login(base, "sup01")
    me = httpx.get(f"{base}/api/auth/me", headers=sup, timeout=10).json()["user"]
    streets, cells = grids(base, sup)
    mine = [g for g in cells if g["parent_id"] in me["grid_ids"]]
    foreign = [g for g in cells if g["parent_id"] not in me["grid_ids"]]
    assert mine and foreign
    home = mine[len(mine) // 2]
    lon, lat = centre(home)
    b = Board(
        browser,
        base,
        "sup01",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        geolocation={"longitude": lon, "latitude": lat},
        permissions=["geolocation"],
    )
    try:
        page = b.open_report()
        # The map fits the phone's width.
        box = page.locator(MAP).bounding_box()
        assert box["width"] <= 390 and box["width"] > 300
        page.click('[data-testid="report-locate"]')
        page.wait_for_function(
            "() => document.querySelector('[data-testid=\"report-lon\"]').value !== ''"
        )
        assert float(page.input_value('[data-testid="report-lon"]')) == pytest.approx(lon, abs=1e-6)
        assert float(page.input_value('[data-testid="report-lat"]')) == pytest.approx(lat, abs=1e-6)
        address = expected_address(home, streets)
        assert page.input_value('[data-testid="report-address"]') == address
        assert page.inner_text('[data-testid="report-grid"]') == f"所属网格：{address}"

        # Zoomed in around the point, a neighbouring grid is a finger wide and still picks right.
        full_box = page.get_attribute(MAP, "viewBox") or ""
        full = [float(v) for v in full_box.split()]
        page.click('[data-testid="report-map-zoom-in"]')
        page.click('[data-testid="report-map-zoom-in"]')
        assert page.get_attribute(MAP, "data-zoom") == "4"
        zoomed = [float(v) for v in (page.get_attribute(MAP, "viewBox") or "").split()]
        assert zoomed[2] == pytest.approx(full[2] / 4, abs=0.2)
        near = min(
            (g for g in mine if g["id"] != home["id"]),
            key=lambda g: (centre(g)[0] - lon) ** 2 + (centre(g)[1] - lat) ** 2,
        )
        cell = page.locator(f'{MAP} polygon.cell[data-grid-id="{near["id"]}"]')
        assert cell.bounding_box()["width"] > 40
        cell.click()
        assert inside(
            near,
            float(page.input_value('[data-testid="report-lon"]')),
            float(page.input_value('[data-testid="report-lat"]')),
        )
        assert page.input_value('[data-testid="report-address"]') == expected_address(near, streets)
        page.click('[data-testid="report-map-zoom-reset"]')
        assert page.get_attribute(MAP, "data-zoom") == "1"
        assert page.get_attribute(MAP, "viewBox") == full_box

        # Somewhere outside the supervisor's grids: said before sending anything.
        away = centre(foreign[0])
        b.ctx.set_geolocation({"longitude": away[0], "latitude": away[1]})
        page.click('[data-testid="report-locate"]')
        page.wait_for_function(
            "lon => Number(document.querySelector('[data-testid=\"report-lon\"]').value) === lon",
            arg=away[0],
        )
        assert page.inner_text('[data-testid="report-grid"]').endswith("（不在您负责的网格内）")
        pick_category(page, "乱建", "私搭乱建")
        page.fill('[data-testid="report-description"]', "巷口违规搭建")
        page.click('[data-testid="report-submit"]')
        assert b.problems() == {"location": "该位置不在您负责的网格内"}
        assert b.posts == []

        # Quick handling needs a before-photo: said with the rest, gone once unticked.
        page.check('[data-testid="report-quick"]')
        page.click('[data-testid="report-submit"]')
        assert b.problems()["photos"] == "快速处置需要上传处置前照片"
        page.uncheck('[data-testid="report-quick"]')
        assert "photos" not in b.problems()

        # Back home: the report goes through, in the supervisor's grid.
        b.ctx.set_geolocation({"longitude": lon, "latitude": lat})
        page.click('[data-testid="report-locate"]')
        page.wait_for_function(
            "lon => Number(document.querySelector('[data-testid=\"report-lon\"]').value) === lon",
            arg=lon,
        )
        page.click('[data-testid="report-submit"]')
        page.locator('[data-testid="toast"]').wait_for(state="visible")
        assert b.posts == ["/api/cases"]
        assert b.errors == []
    finally:
        b.close()
