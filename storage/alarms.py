"""Deadline alarms (黄灯预警, 红灯超期): the running clocks to watch, and firing one alarm exactly once.

An alarm is a row of ``case_alarms`` keyed by (case, threshold, deadline) and a system event on the
case (action ``deadline_warning`` or ``overdue``, no actor) that the relay publishes like any case
event. ``fire`` writes both in one transaction, with ``INSERT ... ON CONFLICT DO NOTHING`` as the
final guard: however many hub processes try, and however often they restart, one alarm and one
event are written per key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from storage.cases import _SELECT_CASE, CaseRow, get_case
from storage.db import map_pg_errors

#: The system actions whose events do not make a person's view of the case stale (no 409).
SYSTEM_ACTIONS = ("deadline_warning", "overdue", "escalate")


@dataclasses.dataclass(frozen=True, slots=True)
class RunningClock:
    """A case whose department clock runs, with the thresholds already fired for its deadline."""

    case: CaseRow
    fired: frozenset[float]


@dataclasses.dataclass(frozen=True, slots=True)
class AlarmRow:
    id: int
    case_id: int
    case_no: str
    threshold: float
    kind: str
    deadline: datetime
    due_at: datetime
    fired_at: datetime
    department_id: int | None
    grid_id: int | None
    is_urgent: bool
    state: str


_CLOCKS_SQL = (
    f"SELECT {_SELECT_CASE}, NULL::text AS reporter_name,"
    " COALESCE((SELECT array_agg(a.threshold::float8) FROM case_alarms a"
    "           WHERE a.case_id = c.id AND a.deadline = c.deadline), '{}') AS fired"
    " FROM cases c"
    " WHERE c.state IN ('dispatched', 'handling') AND c.deadline IS NOT NULL"
    "   AND c.paused_remaining_s IS NULL AND c.clock_since IS NOT NULL"
)


async def running_clocks(
    conn: asyncpg.Connection, case_ids: Sequence[int] | None = None
) -> list[RunningClock]:
    """Open cases whose clock runs (dispatched or handling, a deadline, not paused, set since
    migration 0011), with the thresholds fired for the current deadline; with ``case_ids``, only
    those of these cases whose clock runs (the others have stopped, or never ran)."""
    sql, args = _CLOCKS_SQL, []
    if case_ids is not None:
        sql += " AND c.id = ANY($1::bigint[])"
        args.append(list(case_ids))
    with map_pg_errors():
        rows = await conn.fetch(sql, *args)
    return [RunningClock(CaseRow.from_record(r), frozenset(r["fired"])) for r in rows]


#: An alarm scheduler's place in the case log: events at or after it (in (txid, seq) order) may
#: not have been seen yet. It is the ``[txid, seq]`` form of the relay's cursor.
EventsCursor = tuple[str, int]


async def events_cursor(conn: asyncpg.Connection) -> EventsCursor:
    """The cursor to read changes from for a reader about to read the running clocks: every event
    this statement's snapshot does not see was written by a transaction still running (or not yet
    begun), whose txid is at or above the snapshot's xmin. So (xmin, 0) is before all of them, and
    the running clocks read after this statement see at least what it saw."""
    with map_pg_errors():
        xmin = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
    return (str(xmin), 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Changed:
    """The cases touched by events after a cursor, and the cursor to read from next time."""

    case_ids: list[int]
    cursor: EventsCursor


_CHANGED_SQL = """
SELECT b.xmin::text AS xmin,
       ARRAY(SELECT DISTINCT e.case_id FROM case_events e
             WHERE (e.txid, e.seq) > ($1::text::xid8, $2) LIMIT $3) AS ids
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) b
"""


async def cases_changed_after(
    conn: asyncpg.Connection, cursor: EventsCursor, limit: int
) -> Changed | None:
    """The cases of the events this statement sees after ``cursor``, or None when more than
    ``limit`` cases were touched (the caller reads every running clock instead).

    Unlike the relay (which must not skip or reorder), nothing here waits for older transactions
    to finish: every committed event after the cursor is read now, and the next cursor is this
    snapshot's xmin, so the events it could not see yet (their transactions still running) are
    read on a later call. Events of transactions that committed above a long-running one are read
    again until it ends; reading a case twice is harmless."""
    with map_pg_errors():
        row = await conn.fetchrow(_CHANGED_SQL, cursor[0], cursor[1], limit + 1)
    ids = [int(i) for i in row["ids"]]
    if len(ids) > limit:
        return None
    return Changed(ids, (str(row["xmin"]), 0))


async def fire(
    conn: asyncpg.Connection,
    *,
    case_id: int,
    version: int,
    deadline: datetime,
    threshold: float,
    kind: str,
    action: str,
    due_at: datetime,
    now: datetime,
    data: Mapping[str, Any],
    escalation: tuple[str, int] | None = None,
) -> list[int] | None:
    """Fire one alarm if the case is still at ``version`` with ``deadline`` and the alarm has not
    fired: the ``case_alarms`` row, the alarm event and, with ``escalation`` (the note and the new
    escalation count), an ``escalate`` event by the system (督办), in one transaction. Returns the events' seqs, or None when nothing
    was written (already fired, or the case moved: the caller looks again)."""
    with map_pg_errors():
        async with conn.transaction():
            case = await get_case(conn, case_id, for_update=True)
            if case is None or case.version != version or case.deadline != deadline:
                return None
            alarm_id = await conn.fetchval(
                "INSERT INTO case_alarms (case_id, threshold, deadline, kind, due_at, fired_at,"
                " department_id, grid_id, is_urgent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (case_id, threshold, deadline) DO NOTHING RETURNING id",
                case_id,
                threshold,
                deadline,
                kind,
                due_at,
                now,
                case.department_id,
                case.grid_id,
                case.is_urgent,
            )
            if alarm_id is None:
                return None
            seqs = [
                await _system_event(
                    conn, case, version + 1, action, now, "", {**data, "alarm_id": alarm_id}
                )
            ]
            count = case.escalation_count
            if escalation is not None:
                note, count = escalation
                seqs.append(
                    await _system_event(
                        conn,
                        case,
                        version + 2,
                        "escalate",
                        now,
                        note,
                        {"alarm_id": alarm_id, "auto": True},
                    )
                )
            await conn.execute(
                "UPDATE cases SET version = $2, updated_at = $3, escalation_count = $4"
                " WHERE id = $1",
                case_id,
                version + len(seqs),
                now,
                count,
            )
            await conn.execute(
                "UPDATE case_alarms SET event_seq = $2 WHERE id = $1", alarm_id, seqs[0]
            )
    return seqs


async def _system_event(
    conn: asyncpg.Connection,
    case: CaseRow,
    version: int,
    action: str,
    at: datetime,
    note: str,
    data: Mapping[str, Any],
) -> int:
    seq = await conn.fetchval(
        "INSERT INTO case_events (case_id, version, action, actor_id, at, from_state, to_state,"
        " note, data, attachment_ids, department_id, grid_id)"
        " VALUES ($1, $2, $3, NULL, $4, $5, $5, $6, $7, '{}', $8, $9) RETURNING seq",
        case.id,
        version,
        action,
        at,
        case.state,
        note,
        dict(data),
        case.department_id,
        case.grid_id,
    )
    return int(seq)


async def only_system_events_since(conn: asyncpg.Connection, case_id: int, version: int) -> bool:
    """Whether every event after ``version`` is a system alarm or escalation (no actor): a person
    who saw ``version`` has not missed anything another person did."""
    with map_pg_errors():
        n = await conn.fetchval(
            "SELECT count(*) FROM case_events WHERE case_id = $1 AND version > $2"
            " AND NOT (actor_id IS NULL AND action = ANY($3::text[]))",
            case_id,
            version,
            list(SYSTEM_ACTIONS),
        )
    return int(n) == 0


async def list_open_alarms(
    conn: asyncpg.Connection, *, department_id: int | None, limit: int
) -> list[AlarmRow]:
    """Alarms still open, newest first: the case still runs on the deadline they fired for (the
    department still holds it, not yet handled). ``department_id`` limits them to one department."""
    args: list[Any] = [limit]
    where = ""
    if department_id is not None:
        args.append(department_id)
        where = " AND c.department_id = $2"
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT a.id, a.case_id, c.case_no, a.threshold::float8 AS threshold, a.kind,"
            " a.deadline, a.due_at, a.fired_at, c.department_id, c.grid_id, c.is_urgent, c.state"
            " FROM case_alarms a JOIN cases c ON c.id = a.case_id"
            " WHERE c.state IN ('dispatched', 'handling', 'deferred') AND c.deadline = a.deadline"
            f"{where} ORDER BY a.fired_at DESC, a.id DESC LIMIT $1",
            *args,
        )
    return [AlarmRow(**dict(r)) for r in rows]


async def count_alarms(conn: asyncpg.Connection, case_ids: Sequence[int]) -> dict[int, int]:
    """Alarms ever fired per case (for tests and the detail)."""
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT case_id, count(*) AS n FROM case_alarms WHERE case_id = ANY($1::bigint[])"
            " GROUP BY case_id",
            list(case_ids),
        )
    return {int(r["case_id"]): int(r["n"]) for r in rows}
