"""Demo components (部件) for the component registry: water-supply manhole covers (上水井盖, the one
class whose code, 01 公用设施 / 01 上水井盖, is verified in the catalog), two per unit grid, with
standard 16-digit ids: county 530302 + major 01 + minor 01 + 6-digit serial."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import date

import asyncpg

from hub.demo.geography import COUNTY_CODE, GridCell

PER_GRID = 2
CLASS_CODE = "0101"
CATEGORY_CODE = "C0101"
OWNER = "GPS"  # 供排水公司 owns and maintains the water network


def component_rows(
    cells: Sequence[tuple[int, GridCell]], category_id: int, owner_id: int, seed: int
) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    rows: list[tuple[object, ...]] = []
    serial = 0
    for grid_id, cell in cells:
        if cell.level != 2:
            continue
        for _ in range(PER_GRID):
            serial += 1
            lon = rng.uniform(cell.west, cell.east)
            lat = rng.uniform(cell.south, cell.north)
            rows.append(
                (
                    f"{COUNTY_CODE}{CLASS_CODE}{serial:06d}",
                    category_id,
                    f"上水井盖 {serial:06d}",
                    owner_id,
                    owner_id,
                    grid_id,
                    "damaged" if rng.random() < 0.02 else "normal",
                    lon,
                    lat,
                    "2025 年部件普查",
                    date(2025, 3, 1),
                )
            )
    return rows


async def insert_components(
    conn: asyncpg.Connection,
    cells: Sequence[tuple[int, GridCell]],
    departments: Mapping[str, int],
    seed: int,
) -> int:
    category_id = await conn.fetchval("SELECT id FROM categories WHERE code = $1", CATEGORY_CODE)
    if category_id is None:
        return 0
    rows = component_rows(cells, category_id, departments[OWNER], seed)
    await conn.copy_records_to_table(
        "components",
        records=rows,
        columns=[
            "id",
            "category_id",
            "name",
            "owner_department_id",
            "maintainer_department_id",
            "grid_id",
            "state",
            "lon",
            "lat",
            "data_source",
            "installed_on",
        ],
    )
    return len(rows)
