"""The city's base map under the report form's grid map (``CITYHUB_MAP_TILES``), in Chromium: the
tiles that cover the city are drawn under the grids and loaded from the configured tile server (the
page's CSP lets exactly that origin in), zooming the map loads sharper tiles, the attribution is shown,
and picking a point on the map still lands in the grid under it. The tile server is a small HTTP
server on loopback standing in for the city's (a real tile service is not reachable here)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveHub, scratch_dir, start_hub
from tests.helpers import png_bytes
from tests.ui.test_ui_report import MAP, Board, api_login, grids

pytestmark = pytest.mark.browser

TILE = png_bytes(200, 200, 190, size=256)


class Tiles:
    """A loopback tile server answering any /tiles/{z}/{x}/{y}.png, remembering what was asked."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        tiles = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tiles.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(TILE)))
                self.end_headers()
                self.wfile.write(TILE)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tiles() -> Iterator[Tiles]:
    t = Tiles()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def map_hub(scratch_root: Path, tiles: Tiles) -> Iterator[LiveHub]:
    env = {
        "CITYHUB_MAP_TILES": f"http://127.0.0.1:{tiles.port}/tiles/{{z}}/{{x}}/{{y}}.png",
        "CITYHUB_MAP_ATTRIBUTION": "麒麟区自然资源局",
    }
    hub = start_hub(scratch_dir(scratch_root, "basemap") / "data", demo_cases=50, env=env)
    try:
        yield hub
    finally:
        hub.stop()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    r = math.radians(lat)
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(r)) / math.pi) / 2 * n)


def keys(page: Any) -> list[tuple[int, int, int]]:
    raw = page.eval_on_selector_all(
        f"{MAP} .basemap image", "els => els.map(e => e.getAttribute('data-tile'))"
    )
    return [tuple(int(p) for p in k.split("/")) for k in raw]  # type: ignore[misc]


def test_the_city_base_map_lies_under_the_grids(
    browser: Any, map_hub: LiveHub, tiles: Tiles
) -> None:
    base = map_hub.base_url
    csp = httpx.get(f"{base}/board").headers["content-security-policy"]
    assert f"img-src 'self' data: blob: http://127.0.0.1:{tiles.port};" in csp
    level1, _level2 = grids(base, api_login(base, "seat1"))
    board = Board(browser, base, "seat1")
    try:
        page = board.open_report()
        page.wait_for_selector(f"{MAP} .basemap image")
        drawn = keys(page)
        zooms = {z for z, _x, _y in drawn}
        assert len(zooms) == 1
        z = zooms.pop()
        xs = sorted({x for _z, x, _y in drawn})
        ys = sorted({y for _z, _x, y in drawn})
        # A full rectangle of tiles, a handful across, covering every street's corners.
        assert len(drawn) == len(xs) * len(ys) and xs == list(range(xs[0], xs[-1] + 1))
        assert ys == list(range(ys[0], ys[-1] + 1)) and 2 <= len(xs) <= 7
        for g in level1:
            for lon, lat in g["boundary"]:
                tx, ty = tile_of(lon, lat, z)
                assert xs[0] <= tx <= xs[-1] and ys[0] <= ty <= ys[-1], (g["name"], lon, lat)
        # Loaded from the tile server (the CSP let them in), under the grid cells.
        page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=report-map] .basemap image').length === n",
            arg=len(drawn),
        )
        for zz, x, y in drawn:
            page.wait_for_function(
                "p => performance.getEntriesByType('resource').some(e => e.name.endsWith(p))",
                arg=f"/tiles/{zz}/{x}/{y}.png",
            )
        assert {f"/tiles/{zz}/{x}/{y}.png" for zz, x, y in drawn} <= set(tiles.paths)
        order = page.eval_on_selector(
            MAP, "svg => [...svg.children].map(c => c.getAttribute('class'))"
        )
        assert order.index("basemap") < order.index("cells")
        assert "麒麟区自然资源局" in page.inner_text('[data-testid="report-map-attribution"]')

        # A click still picks the grid under it; zooming in loads deeper tiles.
        cell = page.locator(f"{MAP} polygon.cell").nth(40)
        grid_id = cell.get_attribute("data-grid-id")
        box = cell.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector('[data-testid="report-map-chosen"]')
        assert page.get_attribute(
            '[data-testid="report-map-chosen"]', "points"
        ) == cell.get_attribute("points")
        page.click('[data-testid="report-map-zoom-in"]')
        page.click('[data-testid="report-map-zoom-in"]')
        page.wait_for_function(
            "z => [...document.querySelectorAll('[data-testid=report-map] .basemap image')]"
            ".every(e => e.getAttribute('data-tile').startsWith(z + '/'))",
            arg=str(z + 2),
        )
        assert {k[0] for k in keys(page)} == {z + 2}
        assert grid_id is not None
        assert not board.errors
    finally:
        board.close()


def test_without_a_base_map_the_grids_stand_alone(browser: Any, live_hub: LiveHub) -> None:
    assert (
        "http"
        not in httpx.get(f"{live_hub.base_url}/board")
        .headers["content-security-policy"]
        .split("img-src", 1)[1]
        .split(";", 1)[0]
    )
    board = Board(browser, live_hub.base_url, "seat1")
    try:
        page = board.open_report()
        assert page.locator(f"{MAP} .basemap").count() == 0
        assert page.locator('[data-testid="report-map-attribution"]').count() == 0
    finally:
        board.close()
