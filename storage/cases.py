"""Case queries: SQL constants next to typed functions returning dataclasses.

A case change is one statement (a data-modifying CTE) that updates the case row only if its version is
still the one the caller judged, and appends the event with the new version: either both happen or
neither does, and a concurrent change makes the update match no row (the caller answers 409).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidRequest

CASE_FIELDS = (
    "id",
    "case_no",
    "source",
    "category_id",
    "state",
    "version",
    "lon",
    "lat",
    "address",
    "grid_id",
    "component_id",
    "description",
    "reporter_id",
    "contact_name",
    "contact_phone",
    "department_id",
    "is_quick",
    "urgency",
    "deadline",
    "pending_extension_until",
    "reject_reason",
    "duplicate_of",
    "rework_count",
    "extension_count",
    "escalation_count",
    "reported_at",
    "registered_at",
    "dispatched_at",
    "accepted_at",
    "handled_at",
    "verified_at",
    "closed_at",
    "updated_at",
    "is_urgent",
    "time_limit_s",
    "paused_remaining_s",
    "clock_since",
)
#: Every column of ``cases``: the fields of a ``CaseRow`` and the search document.
CASE_COLUMNS = (*CASE_FIELDS, "search")
_SELECT_CASE = ", ".join(f"c.{f}" for f in CASE_FIELDS)

#: Columns a workflow outcome may change (anything else in Outcome.changes is a bug).
MUTABLE_FIELDS = frozenset(
    {
        "state",
        "department_id",
        "deadline",
        "pending_extension_until",
        "reject_reason",
        "duplicate_of",
        "rework_count",
        "extension_count",
        "escalation_count",
        "registered_at",
        "dispatched_at",
        "accepted_at",
        "handled_at",
        "verified_at",
        "closed_at",
        "is_quick",
        "is_urgent",
        "time_limit_s",
        "paused_remaining_s",
        "clock_since",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class CaseRow:
    id: int
    case_no: str
    source: str
    category_id: int
    state: str
    version: int
    lon: float | None
    lat: float | None
    address: str
    grid_id: int | None
    component_id: str | None
    description: str
    reporter_id: int | None
    contact_name: str
    contact_phone: str
    department_id: int | None
    is_quick: bool
    urgency: int
    deadline: datetime | None
    pending_extension_until: datetime | None
    reject_reason: str | None
    duplicate_of: int | None
    rework_count: int
    extension_count: int
    escalation_count: int
    reported_at: datetime
    registered_at: datetime | None
    dispatched_at: datetime | None
    accepted_at: datetime | None
    handled_at: datetime | None
    verified_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    #: 紧急: runs on the urgent time limit, counted apart (migration 0011).
    is_urgent: bool = False
    #: Working seconds granted to the running department clock (restart limit + approved extensions).
    time_limit_s: int | None = None
    #: Working seconds left when the countdown paused (缓办, pending extension); None while it runs.
    paused_remaining_s: int | None = None
    #: When the running deadline was set; alarms due before it are not armed.
    clock_since: datetime | None = None
    reporter_name: str | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> CaseRow:
        return cls(**{k: rec[k] for k in (*CASE_FIELDS, "reporter_name") if k in rec})


@dataclasses.dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    case_id: int
    version: int
    action: str
    actor_id: int | None
    actor_name: str | None
    at: datetime
    from_state: str | None
    to_state: str
    note: str
    data: dict[str, Any]
    attachment_ids: list[int]


@dataclasses.dataclass(frozen=True, slots=True)
class AttachmentRow:
    id: int
    sha256: str
    media_type: str
    size: int
    kind: str
    original_name: str
    case_id: int | None
    uploaded_by: int | None
    created_at: datetime
    #: Pictures and clips taken from a camera: which one, and when the picture was captured.
    camera_id: int | None = None
    captured_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CaseFilter:
    """Filters of the case list; the visibility scope is given separately (``Scope``)."""

    states: tuple[str, ...] = ()
    category_id: int | None = None
    grid_ids: tuple[int, ...] = ()
    department_id: int | None = None
    source: str | None = None
    overdue: bool = False
    since: datetime | None = None
    until: datetime | None = None
    text_query: str | None = None  # a tsquery literal from storage.search.query_terms
    limit: int = 50
    after: tuple[datetime, int] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """What a user may see: None means everything."""

    department_id: int | None = None
    grid_ids: tuple[int, ...] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.department_id is None and self.grid_ids is None


def encode_cursor(reported_at: datetime, case_id: int) -> str:
    raw = f"{reported_at.isoformat()}|{case_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, cid = raw.partition("|")
        at = datetime.fromisoformat(ts)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, int(cid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            "分页游标无效", code="bad_cursor", details={"cursor": cursor[:50]}
        ) from exc


def _scope_sql(scope: Scope, where: list[str], args: list[Any]) -> None:
    if scope.department_id is not None:
        args.append(scope.department_id)
        where.append(f"c.department_id = ${len(args)}")
    if scope.grid_ids is not None:
        args.append(list(scope.grid_ids))
        where.append(f"c.grid_id = ANY(${len(args)}::int[])")


async def list_cases(
    conn: asyncpg.Connection, f: CaseFilter, scope: Scope, now: datetime
) -> list[CaseRow]:
    where: list[str] = []
    args: list[Any] = []
    _scope_sql(scope, where, args)
    if len(f.states) == 1:  # a scalar lets PostgreSQL read an index in order (not = ANY(array))
        args.append(f.states[0])
        where.append(f"c.state = ${len(args)}")
    elif f.states:
        args.append(list(f.states))
        where.append(f"c.state = ANY(${len(args)}::text[])")
    if f.category_id is not None:
        args.append(f.category_id)
        where.append(f"c.category_id = ${len(args)}")
    if f.grid_ids:
        args.append(list(f.grid_ids))
        where.append(f"c.grid_id = ANY(${len(args)}::int[])")
    if f.department_id is not None:
        args.append(f.department_id)
        where.append(f"c.department_id = ${len(args)}")
    if f.source is not None:
        args.append(f.source)
        where.append(f"c.source = ${len(args)}")
    if f.overdue:
        args.append(now)
        where.append(
            f"c.state IN ('dispatched', 'handling') AND c.deadline < ${len(args)}"
            " AND c.paused_remaining_s IS NULL"  # a paused countdown is not running late
        )
    if f.since is not None:
        args.append(f.since)
        where.append(f"c.reported_at >= ${len(args)}")
    if f.until is not None:
        args.append(f.until)
        where.append(f"c.reported_at < ${len(args)}")
    if f.text_query is not None:
        args.append(f.text_query)
        where.append(f"c.search @@ ${len(args)}::tsquery")
    if f.after is not None:
        args.extend(f.after)
        where.append(f"(c.reported_at, c.id) < (${len(args) - 1}, ${len(args)})")
    args.append(f.limit)
    sql = (
        f"SELECT {_SELECT_CASE}, u.display_name AS reporter_name FROM cases c"
        " LEFT JOIN users u ON u.id = c.reporter_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY c.reported_at DESC, c.id DESC LIMIT ${len(args)}"
    )
    with map_pg_errors():
        rows = await conn.fetch(sql, *args)
    return [CaseRow.from_record(r) for r in rows]


async def get_case(
    conn: asyncpg.Connection, case_id: int, *, for_update: bool = False
) -> CaseRow | None:
    sql = (
        f"SELECT {_SELECT_CASE}, u.display_name AS reporter_name FROM cases c"
        " LEFT JOIN users u ON u.id = c.reporter_id WHERE c.id = $1"
    )
    if for_update:
        sql += " FOR UPDATE OF c"
    with map_pg_errors():
        rec = await conn.fetchrow(sql, case_id)
    return None if rec is None else CaseRow.from_record(rec)


async def get_cases(conn: asyncpg.Connection, case_ids: Sequence[int]) -> list[CaseRow]:
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_SELECT_CASE}, u.display_name AS reporter_name FROM cases c"
            " LEFT JOIN users u ON u.id = c.reporter_id WHERE c.id = ANY($1::bigint[])",
            list(case_ids),
        )
    return [CaseRow.from_record(r) for r in rows]


async def case_exists(conn: asyncpg.Connection, case_id: int) -> bool:
    with map_pg_errors():
        return bool(
            await conn.fetchval("SELECT EXISTS (SELECT 1 FROM cases WHERE id = $1)", case_id)
        )


async def list_events(conn: asyncpg.Connection, case_id: int) -> list[EventRow]:
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT e.seq, e.case_id, e.version, e.action, e.actor_id, u.display_name AS actor_name,"
            " e.at, e.from_state, e.to_state, e.note, e.data, e.attachment_ids"
            " FROM case_events e LEFT JOIN users u ON u.id = e.actor_id"
            " WHERE e.case_id = $1 ORDER BY e.version",
            case_id,
        )
    return [EventRow(**dict(r)) for r in rows]


_ATTACHMENT_COLS = (
    "id, sha256, media_type, size, kind, original_name, case_id, uploaded_by, created_at,"
    " camera_id, captured_at"
)


async def list_attachments(conn: asyncpg.Connection, case_id: int) -> list[AttachmentRow]:
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_ATTACHMENT_COLS} FROM attachments WHERE case_id = $1 ORDER BY id", case_id
        )
    return [AttachmentRow(**dict(r)) for r in rows]


async def get_attachment(conn: asyncpg.Connection, attachment_id: int) -> AttachmentRow | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_ATTACHMENT_COLS} FROM attachments WHERE id = $1", attachment_id
        )
    return None if rec is None else AttachmentRow(**dict(rec))


async def insert_attachment(
    conn: asyncpg.Connection,
    *,
    sha256: str,
    media_type: str,
    size: int,
    kind: str,
    original_name: str,
    uploaded_by: int,
    camera_id: int | None = None,
    captured_at: datetime | None = None,
) -> AttachmentRow:
    with map_pg_errors():
        rec = await conn.fetchrow(
            "INSERT INTO attachments"
            " (sha256, media_type, size, kind, original_name, uploaded_by, camera_id, captured_at)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_ATTACHMENT_COLS}",
            sha256,
            media_type,
            size,
            kind,
            original_name,
            uploaded_by,
            camera_id,
            captured_at,
        )
    assert rec is not None
    return AttachmentRow(**dict(rec))


async def claim_attachments(
    conn: asyncpg.Connection, ids: Sequence[int], case_id: int, user_id: int
) -> int:
    """Attach uploaded, not yet used attachments of ``user_id`` to a case; returns how many."""
    if not ids:
        return 0
    with map_pg_errors():
        rows = await conn.fetch(
            "UPDATE attachments SET case_id = $2 WHERE id = ANY($1::bigint[])"
            " AND case_id IS NULL AND uploaded_by = $3 RETURNING id",
            list(ids),
            case_id,
            user_id,
        )
    return len(rows)


async def next_case_no(conn: asyncpg.Connection, day: Any) -> str:
    with map_pg_errors():
        n = await conn.fetchval(
            "INSERT INTO case_counters (day, last) VALUES ($1, 1)"
            " ON CONFLICT (day) DO UPDATE SET last = case_counters.last + 1 RETURNING last",
            day,
        )
    return f"{day:%Y%m%d}-{int(n):05d}"


async def insert_case(conn: asyncpg.Connection, values: Mapping[str, Any], search: str) -> int:
    cols = list(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    with map_pg_errors():
        case_id = await conn.fetchval(
            f"INSERT INTO cases ({', '.join(cols)}, search)"
            f" VALUES ({placeholders}, ${len(cols) + 1}::tsvector) RETURNING id",
            *values.values(),
            search,
        )
    return int(case_id)


async def insert_event(
    conn: asyncpg.Connection,
    *,
    case_id: int,
    version: int,
    action: str,
    actor_id: int | None,
    at: datetime,
    from_state: str | None,
    to_state: str,
    note: str,
    data: Mapping[str, Any],
    attachment_ids: Sequence[int],
    department_id: int | None = None,
    grid_id: int | None = None,
) -> int:
    with map_pg_errors():
        seq = await conn.fetchval(
            "INSERT INTO case_events (case_id, version, action, actor_id, at, from_state, to_state,"
            " note, data, attachment_ids, department_id, grid_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq",
            case_id,
            version,
            action,
            actor_id,
            at,
            from_state,
            to_state,
            note,
            dict(data),
            list(attachment_ids),
            department_id,
            grid_id,
        )
    return int(seq)


async def transition(
    conn: asyncpg.Connection,
    *,
    case_id: int,
    expected_version: int,
    changes: Mapping[str, Any],
    action: str,
    actor_id: int,
    at: datetime,
    from_state: str,
    note: str,
    data: Mapping[str, Any],
    attachment_ids: Sequence[int],
) -> int | None:
    """Write a workflow outcome: update the row if still at ``expected_version`` and append the
    event, in one statement. Returns the event's seq, or None if the case moved meanwhile."""
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"not mutable: {sorted(unknown)}")
    args: list[Any] = [case_id, expected_version, at]
    sets = ["version = version + 1", "updated_at = $3"]
    for col, val in changes.items():
        args.append(val.value if hasattr(val, "value") else val)
        sets.append(f"{col} = ${len(args)}")
    base = len(args)
    args.extend([action, actor_id, from_state, note, dict(data), list(attachment_ids)])
    sql = (
        f"WITH u AS (UPDATE cases SET {', '.join(sets)} WHERE id = $1 AND version = $2"
        " RETURNING id, version, state, department_id, grid_id)"
        " INSERT INTO case_events (case_id, version, action, actor_id, at, from_state, to_state,"
        " note, data, attachment_ids, department_id, grid_id)"
        f" SELECT u.id, u.version, ${base + 1}, ${base + 2}, $3, ${base + 3}, u.state,"
        f" ${base + 4}, ${base + 5}, ${base + 6}, u.department_id, u.grid_id FROM u RETURNING seq"
    )
    with map_pg_errors():
        seq = await conn.fetchval(sql, *args)
    return None if seq is None else int(seq)
