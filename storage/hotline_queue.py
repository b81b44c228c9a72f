"""The 12319 hotline queue's records in PostgreSQL: the callbacks callers ask for instead of
waiting, and the log of the agents' changes of state (tables in ``migrations/0008_hotline.sql``).

Theory of operation: as in ``storage.hotline``, every function takes a connection (the caller picks
the transaction) and returns frozen dataclasses; nothing here imports the hub. A callback's number
is kept normalised (``storage.hotline.normalize_number``), ready to dial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidData
from storage.hotline import normalize_number

# -- callbacks -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Callback:
    id: int
    call_id: int | None
    number: str
    requested_at: datetime
    done_at: datetime | None
    done_by: int | None
    note: str


_CALLBACK_COLS = "id, call_id, number, requested_at, done_at, done_by, note"


def _callback(rec: Mapping[str, Any]) -> Callback:
    return Callback(**{f.name: rec[f.name] for f in dataclasses.fields(Callback)})


async def create_callback(
    conn: asyncpg.Connection,
    number: str,
    *,
    call_id: int | None = None,
    requested_at: datetime | None = None,
    note: str = "",
) -> Callback:
    """A citizen asked to be called back at ``number`` (kept normalised, ready to dial).
    ``InvalidData`` when there is no number to call (an anonymous caller)."""
    norm = normalize_number(number)
    if not norm:
        raise InvalidData("没有可回拨的号码", code="no_callback_number")
    with map_pg_errors():
        rec = await conn.fetchrow(
            "INSERT INTO hotline_callbacks (call_id, number, requested_at, note)"
            f" VALUES ($1, $2, coalesce($3::timestamptz, now()), $4) RETURNING {_CALLBACK_COLS}",
            call_id,
            norm,
            requested_at,
            note,
        )
    return _callback(rec)


async def open_callbacks(conn: asyncpg.Connection, *, limit: int = 100) -> list[Callback]:
    """Callbacks not yet done, oldest request first."""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_CALLBACK_COLS} FROM hotline_callbacks WHERE done_at IS NULL"
            " ORDER BY requested_at, id LIMIT $1",
            limit,
        )
    return [_callback(r) for r in rows]


async def mark_callback_done(
    conn: asyncpg.Connection, callback_id: int, *, done_by: int | None, note: str | None = None
) -> Callback | None:
    """Close an open callback; None when no open callback has that id (done already, or none)."""
    with map_pg_errors():
        rec = await conn.fetchrow(
            "UPDATE hotline_callbacks SET done_at = now(), done_by = $2, note = coalesce($3, note)"
            f" WHERE id = $1 AND done_at IS NULL RETURNING {_CALLBACK_COLS}",
            callback_id,
            done_by,
            note,
        )
    return None if rec is None else _callback(rec)


# -- agent states ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStateChange:
    id: int
    agent_id: int
    at: datetime
    state: str
    reason: str


_STATE_COLS = "id, agent_id, at, state, reason"


def _state(rec: Mapping[str, Any]) -> AgentStateChange:
    return AgentStateChange(**{f.name: rec[f.name] for f in dataclasses.fields(AgentStateChange)})


async def log_agent_state(
    conn: asyncpg.Connection,
    agent_id: int,
    state: str,
    reason: str = "",
    *,
    at: datetime | None = None,
) -> AgentStateChange:
    """Append an agent's change of state (e.g. ``not_ready`` with its reason code)."""
    with map_pg_errors():
        rec = await conn.fetchrow(
            "INSERT INTO hotline_agent_states (agent_id, at, state, reason)"
            f" VALUES ($1, coalesce($2::timestamptz, now()), $3, $4) RETURNING {_STATE_COLS}",
            agent_id,
            at,
            state,
            reason,
        )
    return _state(rec)


async def agent_states(
    conn: asyncpg.Connection,
    *,
    since: datetime,
    until: datetime,
    agent_id: int | None = None,
) -> list[AgentStateChange]:
    """The changes in [since, until), oldest first, and for each agent the last change before
    ``since`` (the state the period starts in)."""
    with map_pg_errors():
        rows = await conn.fetch(
            f"(SELECT DISTINCT ON (agent_id) {_STATE_COLS} FROM hotline_agent_states"
            "  WHERE at < $1 AND ($3::int IS NULL OR agent_id = $3) ORDER BY agent_id, at DESC, id DESC)"
            f" UNION ALL (SELECT {_STATE_COLS} FROM hotline_agent_states"
            "  WHERE at >= $1 AND at < $2 AND ($3::int IS NULL OR agent_id = $3))"
            " ORDER BY at, id",
            since,
            until,
            agent_id,
        )
    return [_state(r) for r in rows]
