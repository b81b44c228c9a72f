"""Voice warnings in PostgreSQL: the clip library, the warning log and the schedules (tables in
``migrations/0004_voice_warnings.sql``); the speakers and their groups are ``storage.speakers``,
re-exported here so that callers import one module.

Theory of operation: every function takes a connection (the caller picks the transaction) and
returns frozen dataclasses.

A warning is written once when it starts (``create_warning``: the warning row and one target row
per speaker, the speaker's name copied so the log survives renames and removals), then each
target's progress by ``update_target`` as the player calls, hangs up or gives up, and the end by
``finish_warning``, which also closes any target still pending or playing. A hub that restarts
with warnings still ``running`` closes them with ``fail_running_warnings``.

Schedules fire once per slot across every hub process: ``claim_schedule_fire`` moves
``last_fire_at`` forward only if it is earlier than the slot (one ``UPDATE ... WHERE``, so of two
processes claiming the same slot the second finds the row already moved and gets ``False``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, time
from typing import Any

import asyncpg

from storage.db import map_pg_errors
from storage.speakers import (
    SPEAKER_COLUMNS,
    Speaker,
    SpeakerFields,
    SpeakerGroup,
    delete_group,
    delete_speaker,
    get_group,
    get_group_by_name,
    get_speaker,
    get_speaker_by_name,
    get_speakers,
    insert_group,
    insert_speaker,
    list_groups,
    list_speakers,
    nearest_speaker,
    set_speaker_groups,
    speakers_of_groups,
    update_group,
    update_speaker,
    upsert_speaker,
)

#: The speakers' part lives in ``storage.speakers``; re-exported so callers import one module.
__all__ = [
    "SPEAKER_COLUMNS",
    "Speaker",
    "SpeakerFields",
    "SpeakerGroup",
    "delete_group",
    "delete_speaker",
    "get_group",
    "get_group_by_name",
    "get_speaker",
    "get_speaker_by_name",
    "get_speakers",
    "insert_group",
    "insert_speaker",
    "list_groups",
    "list_speakers",
    "nearest_speaker",
    "set_speaker_groups",
    "speakers_of_groups",
    "update_group",
    "update_speaker",
    "upsert_speaker",
]

# -- clips -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Clip:
    id: int
    name: str
    category: str
    duration_ms: int
    g711_sha256: str
    preview_sha256: str
    source: str
    text: str | None
    created_by: int | None
    created_by_name: str
    created_at: datetime
    deleted_at: datetime | None


_CLIP_COLS = (
    "c.id, c.name, c.category, c.duration_ms, c.g711_sha256, c.preview_sha256, c.source, c.text,"
    " c.created_by, coalesce(u.display_name, '') AS created_by_name, c.created_at, c.deleted_at"
)
_CLIP_FROM = "FROM clips c LEFT JOIN users u ON u.id = c.created_by"


def _clip(rec: Mapping[str, Any]) -> Clip:
    return Clip(**{f.name: rec[f.name] for f in dataclasses.fields(Clip)})


async def insert_clip(
    conn: asyncpg.Connection,
    *,
    name: str,
    category: str,
    duration_ms: int,
    g711_sha256: str,
    preview_sha256: str,
    source: str,
    text: str | None,
    created_by: int | None,
) -> Clip:
    with map_pg_errors():
        cid = await conn.fetchval(
            "INSERT INTO clips (name, category, duration_ms, g711_sha256, preview_sha256, source,"
            " text, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            name,
            category,
            duration_ms,
            g711_sha256,
            preview_sha256,
            source,
            text,
            created_by,
        )
    clip = await get_clip(conn, int(cid), include_deleted=True)
    assert clip is not None
    return clip


async def get_clip(
    conn: asyncpg.Connection, clip_id: int, *, include_deleted: bool = False
) -> Clip | None:
    alive = "" if include_deleted else " AND c.deleted_at IS NULL"
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_CLIP_COLS} {_CLIP_FROM} WHERE c.id = $1{alive}", clip_id
        )
    return None if rec is None else _clip(rec)


async def list_clips(conn: asyncpg.Connection) -> list[Clip]:
    """The library: clips not deleted, by category, then name."""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_CLIP_COLS} {_CLIP_FROM} WHERE c.deleted_at IS NULL"
            " ORDER BY c.category, c.name, c.id"
        )
    return [_clip(r) for r in rows]


async def delete_clip(conn: asyncpg.Connection, clip_id: int) -> bool:
    """Take a clip out of the library (the warnings that played it keep naming it)."""
    with map_pg_errors():
        status = await conn.execute(
            "UPDATE clips SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL", clip_id
        )
    return not status.endswith(" 0")


# -- warnings --------------------------------------------------------------------------------

WARNING_STATES = frozenset({"running", "done", "stopped", "failed"})
TARGET_OUTCOMES = frozenset(
    {"pending", "playing", "delivered", "busy", "rejected", "no_answer", "unreachable", "stopped",
     "failed"}
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class WarningTarget:
    warning_id: int
    speaker_id: int
    speaker_name: str
    outcome: str
    status: int | None
    attempts: int
    packets: int
    started_at: datetime | None
    ended_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class Warning:
    id: int
    kind: str
    clip_id: int | None
    clip_name: str | None
    repeat: int
    case_id: int | None
    schedule_id: int | None
    state: str
    started_by: int | None
    started_by_name: str
    started_at: datetime
    ended_at: datetime | None
    stopped_by: int | None
    targets: tuple[WarningTarget, ...]


_TARGET_COLS = (
    "t.warning_id, t.speaker_id, t.speaker_name, t.outcome, t.status, t.attempts, t.packets,"
    " t.started_at, t.ended_at"
)
_WARNING_COLS = (
    "w.id, w.kind, w.clip_id, c.name AS clip_name, w.repeat, w.case_id, w.schedule_id, w.state,"
    " w.started_by, coalesce(u.display_name, '') AS started_by_name, w.started_at, w.ended_at,"
    " w.stopped_by"
)
_WARNING_FROM = (
    "FROM warnings w LEFT JOIN clips c ON c.id = w.clip_id LEFT JOIN users u ON u.id = w.started_by"
)


def _target(rec: Mapping[str, Any]) -> WarningTarget:
    return WarningTarget(**{f.name: rec[f.name] for f in dataclasses.fields(WarningTarget)})


async def _warnings(conn: asyncpg.Connection, where: str, *args: Any) -> list[Warning]:
    """Warnings matching ``where`` (newest first), each with its targets (two queries in all)."""
    with map_pg_errors():
        rows = await conn.fetch(f"SELECT {_WARNING_COLS} {_WARNING_FROM} {where}", *args)
        ids = [r["id"] for r in rows]
        targets = await conn.fetch(
            f"SELECT {_TARGET_COLS} FROM warning_targets t WHERE t.warning_id = ANY($1::bigint[])"
            " ORDER BY t.warning_id, t.speaker_id",
            ids,
        )
    by_warning: dict[int, list[WarningTarget]] = {}
    for t in targets:
        by_warning.setdefault(t["warning_id"], []).append(_target(t))
    return [
        Warning(
            id=r["id"],
            kind=r["kind"],
            clip_id=r["clip_id"],
            clip_name=r["clip_name"],
            repeat=r["repeat"],
            case_id=r["case_id"],
            schedule_id=r["schedule_id"],
            state=r["state"],
            started_by=r["started_by"],
            started_by_name=r["started_by_name"],
            started_at=r["started_at"],
            ended_at=r["ended_at"],
            stopped_by=r["stopped_by"],
            targets=tuple(by_warning.get(r["id"], ())),
        )
        for r in rows
    ]


async def create_warning(
    conn: asyncpg.Connection,
    *,
    started_by: int | None,
    clip_id: int | None,
    kind: str,
    repeat: int,
    case_id: int | None,
    schedule_id: int | None,
    speaker_ids: Sequence[int],
) -> Warning:
    """A running warning with one pending target per speaker (each speaker's name copied). Speaker
    ids that name no speaker are skipped; call inside a transaction."""
    with map_pg_errors():
        wid = await conn.fetchval(
            "INSERT INTO warnings (started_by, clip_id, kind, repeat, case_id, schedule_id)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            started_by,
            clip_id,
            kind,
            repeat,
            case_id,
            schedule_id,
        )
        await conn.execute(
            "INSERT INTO warning_targets (warning_id, speaker_id, speaker_name)"
            " SELECT $1, s.id, s.name FROM speakers s WHERE s.id = ANY($2::int[])",
            wid,
            list(speaker_ids),
        )
    warning = await get_warning(conn, int(wid))
    assert warning is not None
    return warning


async def update_target(
    conn: asyncpg.Connection,
    warning_id: int,
    speaker_id: int,
    *,
    outcome: str,
    status: int | None = None,
    attempts: int | None = None,
    packets: int | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
) -> WarningTarget | None:
    """Record a target's progress: ``outcome`` always; each other field only when given (None keeps
    the stored value). None when the warning has no such target."""
    with map_pg_errors():
        rec = await conn.fetchrow(
            "UPDATE warning_targets t SET outcome = $3, status = coalesce($4, status),"
            " attempts = coalesce($5, attempts), packets = coalesce($6, packets),"
            " started_at = coalesce($7, started_at), ended_at = coalesce($8, ended_at)"
            f" WHERE t.warning_id = $1 AND t.speaker_id = $2 RETURNING {_TARGET_COLS}",
            warning_id,
            speaker_id,
            outcome,
            status,
            attempts,
            packets,
            started_at,
            ended_at,
        )
    return None if rec is None else _target(rec)


async def finish_warning(
    conn: asyncpg.Connection, warning_id: int, state: str, stopped_by: int | None = None
) -> Warning | None:
    """End a running warning (``state``: done, stopped or failed); targets still pending or playing
    become ``stopped`` (or ``failed`` for a failed warning). None when it is not running (already
    ended, or no such warning): the first to finish wins."""
    if state not in WARNING_STATES - {"running"}:
        raise ValueError(f"not a final warning state: {state!r}")
    leftover = "failed" if state == "failed" else "stopped"
    with map_pg_errors():
        async with conn.transaction():
            wid = await conn.fetchval(
                "UPDATE warnings SET state = $2, ended_at = now(), stopped_by = $3"
                " WHERE id = $1 AND state = 'running' RETURNING id",
                warning_id,
                state,
                stopped_by,
            )
            if wid is None:
                return None
            await conn.execute(
                "UPDATE warning_targets SET outcome = $2, ended_at = coalesce(ended_at, now())"
                " WHERE warning_id = $1 AND outcome IN ('pending', 'playing')",
                warning_id,
                leftover,
            )
    return await get_warning(conn, warning_id)


async def fail_running_warnings(conn: asyncpg.Connection) -> int:
    """At start-up: warnings left ``running`` by a hub that stopped are ``failed``. Only for a
    single-process installation (another process's running warnings would be ended too)."""
    with map_pg_errors():
        async with conn.transaction():
            ids = [
                r[0]
                for r in await conn.fetch(
                    "UPDATE warnings SET state = 'failed', ended_at = now()"
                    " WHERE state = 'running' RETURNING id"
                )
            ]
            await conn.execute(
                "UPDATE warning_targets SET outcome = 'failed', ended_at = coalesce(ended_at, now())"
                " WHERE warning_id = ANY($1::bigint[]) AND outcome IN ('pending', 'playing')",
                ids,
            )
    return len(ids)


async def get_warning(conn: asyncpg.Connection, warning_id: int) -> Warning | None:
    found = await _warnings(conn, "WHERE w.id = $1", warning_id)
    return found[0] if found else None


async def list_warnings(
    conn: asyncpg.Connection, limit: int = 50, before: int | None = None
) -> list[Warning]:
    """The log, newest first: at most ``limit`` warnings with ids below ``before`` (keyset)."""
    if before is None:
        return await _warnings(conn, "ORDER BY w.id DESC LIMIT $1", limit)
    return await _warnings(conn, "WHERE w.id < $2 ORDER BY w.id DESC LIMIT $1", limit, before)


async def running_warnings(conn: asyncpg.Connection) -> list[Warning]:
    return await _warnings(conn, "WHERE w.state = 'running' ORDER BY w.id DESC")


async def warnings_for_case(
    conn: asyncpg.Connection, case_id: int, limit: int = 100
) -> list[Warning]:
    """Warnings played for a case, newest first (for the case's timeline)."""
    return await _warnings(conn, "WHERE w.case_id = $1 ORDER BY w.id DESC LIMIT $2", case_id, limit)


# -- schedules -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleFields:
    name: str
    clip_id: int
    speaker_ids: tuple[int, ...]
    group_ids: tuple[int, ...]
    repeat: int
    every_minutes: int
    from_time: time
    until_time: time
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)  # ISO: 1 = Monday … 7 = Sunday
    active: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    name: str
    clip_id: int
    speaker_ids: tuple[int, ...]
    group_ids: tuple[int, ...]
    repeat: int
    every_minutes: int
    from_time: time
    until_time: time
    weekdays: tuple[int, ...]
    active: bool
    created_by: int | None
    created_at: datetime
    last_fire_at: datetime | None


_SCHEDULE_COLS = (
    "id, name, clip_id, speaker_ids, group_ids, repeat, every_minutes, from_time, until_time,"
    " weekdays, active, created_by, created_at, last_fire_at"
)
#: Columns ``update_schedule`` may change.
SCHEDULE_COLUMNS = frozenset(f.name for f in dataclasses.fields(ScheduleFields))
_ARRAYS = frozenset({"speaker_ids", "group_ids", "weekdays"})


def _schedule(rec: Mapping[str, Any]) -> Schedule:
    values = {f.name: rec[f.name] for f in dataclasses.fields(Schedule)}
    for name in _ARRAYS:
        values[name] = tuple(values[name])
    return Schedule(**values)


async def insert_schedule(
    conn: asyncpg.Connection, fields: ScheduleFields, *, created_by: int | None
) -> Schedule:
    with map_pg_errors():
        rec = await conn.fetchrow(
            "INSERT INTO warning_schedules (name, clip_id, speaker_ids, group_ids, repeat,"
            " every_minutes, from_time, until_time, weekdays, active, created_by)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_SCHEDULE_COLS}",
            fields.name,
            fields.clip_id,
            list(fields.speaker_ids),
            list(fields.group_ids),
            fields.repeat,
            fields.every_minutes,
            fields.from_time,
            fields.until_time,
            list(fields.weekdays),
            fields.active,
            created_by,
        )
    return _schedule(rec)


async def get_schedule(conn: asyncpg.Connection, schedule_id: int) -> Schedule | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_SCHEDULE_COLS} FROM warning_schedules WHERE id = $1", schedule_id
        )
    return None if rec is None else _schedule(rec)


async def list_schedules(conn: asyncpg.Connection, *, active_only: bool = False) -> list[Schedule]:
    where = "WHERE active" if active_only else ""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_SCHEDULE_COLS} FROM warning_schedules {where} ORDER BY id"
        )
    return [_schedule(r) for r in rows]


async def update_schedule(
    conn: asyncpg.Connection, schedule_id: int, changes: Mapping[str, Any]
) -> Schedule | None:
    """Set the given columns (keys of ``SCHEDULE_COLUMNS``); None when there is no such schedule."""
    unknown = set(changes) - SCHEDULE_COLUMNS
    if unknown:
        raise ValueError(f"not schedule columns: {sorted(unknown)}")
    if not changes:
        return await get_schedule(conn, schedule_id)
    args: list[Any] = [schedule_id]
    sets = []
    for column, value in changes.items():
        args.append(list(value) if column in _ARRAYS else value)
        sets.append(f"{column} = ${len(args)}")
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"UPDATE warning_schedules SET {', '.join(sets)} WHERE id = $1"
            f" RETURNING {_SCHEDULE_COLS}",
            *args,
        )
    return None if rec is None else _schedule(rec)


async def delete_schedule(conn: asyncpg.Connection, schedule_id: int) -> bool:
    """Remove a schedule (the warnings it fired stay, no longer naming it)."""
    with map_pg_errors():
        status = await conn.execute("DELETE FROM warning_schedules WHERE id = $1", schedule_id)
    return not status.endswith(" 0")


async def claim_schedule_fire(
    conn: asyncpg.Connection, schedule_id: int, fire_at: datetime
) -> bool:
    """Claim the slot ``fire_at`` of an active schedule: True for exactly one caller across all
    processes (the row moves forward only if its last slot is earlier; a concurrent claimer waits
    on the row lock, then finds it moved)."""
    with map_pg_errors():
        got = await conn.fetchval(
            "UPDATE warning_schedules SET last_fire_at = $2"
            " WHERE id = $1 AND active AND (last_fire_at IS NULL OR last_fire_at < $2)"
            " RETURNING id",
            schedule_id,
            fire_at,
        )
    return got is not None


VoiceWarning = Warning


# -- demo sites ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Site:
    """A unit grid's centre: where a demo speaker stands."""

    grid_id: int
    grid_name: str
    street_name: str
    lon: float
    lat: float


async def demo_sites(conn: asyncpg.Connection, count: int) -> list[Site]:
    """``count`` unit grids spread evenly over the city (every k-th by code), with their centres
    and streets; fewer when the city has fewer grids."""
    with map_pg_errors():
        rows = await conn.fetch(
            "WITH g AS (SELECT c.id, c.name, p.name AS street, (@@ c.boundary) AS centre,"
            " row_number() OVER (ORDER BY c.code) AS n, count(*) OVER () AS total"
            " FROM grids c JOIN grids p ON p.id = c.parent_id WHERE c.level = 2)"
            " SELECT id, name, street, centre[0] AS lon, centre[1] AS lat FROM g"
            " WHERE (n - 1) % greatest(1, total / $1) = 0 ORDER BY n LIMIT $1",
            count,
        )
    return [Site(r["id"], r["name"], r["street"], float(r["lon"]), float(r["lat"])) for r in rows]
