"""Every figure is the length of its list: over the demo city's generated histories, month by
month, each family's counts (one filtered pass per family, ``storage.evaluation_sql``) against its
drill-downs (the same conditions as ``SELECT case_id``): the city's, every street's and unit grid's,
every source's and the urgent cases'. (The departments': ``test_evaluation_units.py``.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from hub.state import HubState
from storage import evaluation as ev
from storage import evaluation_regions as er
from storage import evaluation_sources as es
from storage.db import connect


async def months(conn: asyncpg.Connection, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    first, last = await conn.fetchrow("SELECT min(at), max(at) FROM case_events")
    out = []
    day = first.astimezone(tz).date().replace(day=1)
    while day <= last.astimezone(tz).date():
        out.append(ev.period_bounds("month", day, tz))
        day = out[-1][1].date() + timedelta(days=1)
    return out


async def test_the_city_regions_and_sources_of_the_demo_city(hub_state: HubState) -> None:
    tz = ZoneInfo(hub_state.settings.timezone)
    seen: dict[str, int] = {}
    async with connect(hub_state.pool) as conn:
        for start, end in await months(conn, tz):
            city = await ev.city_indicators(conn, start, end)
            for ind in ev.Indicator:
                ids = await ev.drill_down(conn, ind, start, end)
                assert len(ids) == city.count(ind), (start.date(), ind.value)
                seen[f"city {ind.value}"] = seen.get(f"city {ind.value}", 0) + len(ids)
            for level in ("street", "grid"):
                rows = await er.region_indicators(conn, start, end, level=level)
                for row in (r for r in rows if any(r.counts.values())):
                    for rf in er.RegionFigure:
                        ids = await er.region_drill_down(
                            conn, rf, start, end, grid_id=row.grid_id, level=level
                        )
                        assert len(ids) == row.count(rf), (start.date(), row.grid_id, rf.value)
                    for major, n in row.by_category.items():
                        ids = await er.region_drill_down(
                            conn, "reported", start, end, grid_id=row.grid_id, level=level,
                            major_name=major,
                        )  # fmt: skip
                        assert len(ids) == n, (start.date(), row.grid_id, major)
                # every case reported in the month is in exactly one region of the level
                assert sum(r.count("reported") for r in rows) == city.accepted + city.quick_reported
            for srow in await es.source_indicators(conn, start, end):
                for sf in es.SourceFigure:
                    ids = await es.source_drill_down(conn, sf, start, end, source=srow.source)
                    assert len(ids) == srow.count(sf), (start.date(), srow.source, sf.value)
            urgent = await es.urgent_indicators(conn, start, end)
            for uf in es.UrgentFigure:
                ids = await es.urgent_drill_down(conn, uf, start, end)
                assert len(ids) == urgent.count(uf), (start.date(), uf.value)
                seen[f"urgent {uf.value}"] = seen.get(f"urgent {uf.value}", 0) + len(ids)
    assert all(seen[f"city {i.value}"] for i in ev.Indicator), seen
