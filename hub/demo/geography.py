"""The ground of the demo city: 5 street grids (first level) over a 22 x 21 lattice of ~300 m unit
grids (second level), placed like Qujing's Qilin district (county code 530302, centre about
25.50 N 103.80 E, WGS84). Each street is a contiguous band of columns with three communities of
7 rows. Pure: ``grid_lattice`` is what the loader inserts and what the tests check.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

COUNTY_CODE: Final = "530302"  # 曲靖市麒麟区
CENTER_LON: Final = 103.80
CENTER_LAT: Final = 25.50
CELL_M: Final = 300.0
COLUMNS: Final = 22
ROWS: Final = 21
ROWS_PER_COMMUNITY: Final = 7
#: (street code, name, width in lattice columns), west to east; widths sum to COLUMNS.
STREETS: Final[tuple[tuple[str, str, int], ...]] = (
    ("001", "南宁街道", 5),
    ("002", "白石江街道", 5),
    ("003", "建宁街道", 4),
    ("004", "寥廓街道", 4),
    ("005", "益宁街道", 4),
)


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``lat`` (WGS84 ellipsoid series)."""
    phi = math.radians(lat)
    m_lat = (
        111132.92
        - 559.82 * math.cos(2 * phi)
        + 1.175 * math.cos(4 * phi)
        - 0.0023 * math.cos(6 * phi)
    )
    m_lon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    return m_lon, m_lat


@dataclasses.dataclass(frozen=True, slots=True)
class GridCell:
    """A demo grid: a lon/lat rectangle (first level: a street; second level: a unit grid)."""

    code: str
    name: str
    level: int
    parent_code: str | None
    street: str
    west: float
    south: float
    east: float
    north: float
    area_m2: float

    @property
    def boundary(self) -> str:
        """PostgreSQL polygon text, x = longitude, y = latitude (floats round-trip exactly)."""
        w, s, e, n = (repr(v) for v in (self.west, self.south, self.east, self.north))
        return f"(({w},{s}),({e},{s}),({e},{n}),({w},{n}))"

    def contains(self, lon: float, lat: float) -> bool:
        return self.west <= lon <= self.east and self.south <= lat <= self.north


def _area(west: float, south: float, east: float, north: float) -> float:
    m_lon, m_lat = metres_per_degree((south + north) / 2)
    return (east - west) * m_lon * (north - south) * m_lat


def grid_lattice() -> list[GridCell]:
    """The 5 street grids (level 1) then the 22 x 21 lattice of ~300 m unit grids (level 2), each
    street a contiguous band of columns, three communities of 7 rows each per street."""
    m_lon, m_lat = metres_per_degree(CENTER_LAT)
    dlon, dlat = CELL_M / m_lon, CELL_M / m_lat
    lon0, lat0 = CENTER_LON - COLUMNS * dlon / 2, CENTER_LAT - ROWS * dlat / 2
    lons = [lon0 + i * dlon for i in range(COLUMNS + 1)]
    lats = [lat0 + j * dlat for j in range(ROWS + 1)]
    streets: list[GridCell] = []
    cells: list[GridCell] = []
    col = 0
    for street, name, width in STREETS:
        code1 = COUNTY_CODE + street
        w, e, s, n = lons[col], lons[col + width], lats[0], lats[ROWS]
        streets.append(GridCell(code1, name, 1, None, street, w, s, e, n, _area(w, s, e, n)))
        number = 0
        for row in range(ROWS):
            community, row_in = divmod(row, ROWS_PER_COMMUNITY)
            for c in range(width):
                number += 1
                seq = row_in * width + c + 1
                w, e = lons[col + c], lons[col + c + 1]
                s, n = lats[row], lats[row + 1]
                cells.append(
                    GridCell(
                        f"{code1}{community + 1:03d}{seq:03d}",
                        f"{name}第{number:03d}网格",
                        2,
                        code1,
                        street,
                        w,
                        s,
                        e,
                        n,
                        _area(w, s, e, n),
                    )
                )
        col += width
    return streets + cells
