"""Small helpers shared by the API tests: real PNG bytes, a point inside a grid, uploads."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from tests.conftest import Api


def png_bytes(r: int = 200, g: int = 80, b: int = 40, size: int = 8) -> bytes:
    """A real RGB PNG of ``size`` x ``size`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + bytes([r, g, b]) * size for _ in range(size))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def upload_photo(api: Api, name: str = "photo.png", seed: int = 0) -> int:
    data = png_bytes(seed % 256, (seed * 7) % 256, (seed * 13) % 256)
    r = await api.post("/api/attachments", files={"file": (name, data, "image/png")})
    assert r.status_code == 201, r.text
    return int(r.json()["items"][0]["id"])


async def grid_center(api: Api, grid_id: int) -> tuple[float, float]:
    r = await api.get(f"/api/grids/{grid_id}")
    assert r.status_code == 200, r.text
    ring = r.json()["boundary"]
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


async def point_for(api: Api) -> tuple[float, float, int]:
    """A point inside one of the (supervisor) user's second-level grids, and that grid's id."""
    r = await api.get("/api/grids", params={"level": 2})
    grids = r.json()["items"]
    mine = set(api.user["grid_ids"])
    for g in grids:
        if not mine or g["parent_id"] in mine or g["id"] in mine:
            lon, lat = await grid_center(api, g["id"])
            return lon, lat, g["id"]
    raise AssertionError("user has no grid")


async def category_id(api: Api, name: str = "暴露垃圾") -> dict[str, Any]:
    r = await api.get("/api/categories")
    for c in r.json()["items"]:
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"no category {name}")
