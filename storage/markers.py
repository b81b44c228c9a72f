"""The map markers of the open cases: one compact row per case, for the big screen's first load.

One query answers every open case a scope may see (the department's, the supervisor's grids, or all),
with what a marker and its countdown need and nothing personal (no reporter, contact or description).
It reads ``cases_state_idx`` (state, reported_at DESC, id DESC) per open state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from storage.cases import Scope, _scope_sql
from storage.db import map_pg_errors

MARKER_FIELDS = (
    "id",
    "case_no",
    "state",
    "version",
    "lon",
    "lat",
    "category_id",
    "department_id",
    "is_urgent",
    "reported_at",
    "deadline",
    "time_limit_s",
    "paused_remaining_s",
    "clock_since",
    "pending_extension_until",
)
_SELECT = ", ".join(f"c.{f}" for f in MARKER_FIELDS)


@dataclasses.dataclass(frozen=True, slots=True)
class MarkerRow:
    id: int
    case_no: str
    state: str
    version: int
    lon: float | None
    lat: float | None
    category_id: int
    department_id: int | None
    is_urgent: bool
    reported_at: datetime
    deadline: datetime | None
    time_limit_s: int | None
    paused_remaining_s: int | None
    clock_since: datetime | None
    pending_extension_until: datetime | None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> MarkerRow:
        return cls(**{k: rec[k] for k in MARKER_FIELDS})


async def open_markers(
    conn: asyncpg.Connection, states: Sequence[str], scope: Scope, *, limit: int
) -> list[MarkerRow]:
    """The cases in ``states`` that ``scope`` may see, newest report first, at most ``limit``."""
    where: list[str] = []
    args: list[Any] = []
    _scope_sql(scope, where, args)
    args.append(list(states))
    where.append(f"c.state = ANY(${len(args)}::text[])")
    args.append(limit)
    sql = (
        f"SELECT {_SELECT} FROM cases c WHERE {' AND '.join(where)}"
        f" ORDER BY c.reported_at DESC, c.id DESC LIMIT ${len(args)}"
    )
    with map_pg_errors():
        rows = await conn.fetch(sql, *args)
    return [MarkerRow.from_record(r) for r in rows]
