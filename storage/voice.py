"""Voice warnings in PostgreSQL: speakers and their groups, the clip library, the warning log and the
schedules (tables in ``migrations/0004_voice_warnings.sql``).

Theory of operation: every function takes a connection (the caller picks the transaction) and
returns frozen dataclasses. A speaker row carries its digest credentials, but ``Speaker.password``
is left out of ``repr`` and nothing here logs; the HTTP layer decides what a browser sees.

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
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, time
from typing import Any

import asyncpg

from storage.db import map_pg_errors

# -- speakers --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SpeakerFields:
    """What a caller sets on a speaker (the API body or a CSV row, already validated)."""

    name: str
    uri: str
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    lon: float | None = None
    lat: float | None = None
    grid_id: int | None = None
    camera_codes: tuple[str, ...] = ()
    auto_answer: str = "call-info"
    active: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Speaker:
    id: int
    name: str
    uri: str
    username: str | None
    password: str | None = dataclasses.field(repr=False)
    lon: float | None
    lat: float | None
    grid_id: int | None
    camera_codes: tuple[str, ...]
    auto_answer: str
    active: bool
    group_ids: tuple[int, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def has_credentials(self) -> bool:
        return self.username is not None


_SPEAKER_COLS = (
    "s.id, s.name, s.uri, s.username, s.password, s.lon, s.lat, s.grid_id, s.camera_codes,"
    " s.auto_answer, s.active, s.created_at, s.updated_at,"
    " array(SELECT m.group_id FROM speaker_group_members m WHERE m.speaker_id = s.id"
    " ORDER BY m.group_id) AS group_ids"
)

_SPEAKER_ARGS = (
    "name, uri, username, password, lon, lat, grid_id, camera_codes, auto_answer, active"
)


def _speaker(rec: Mapping[str, Any]) -> Speaker:
    return Speaker(
        id=rec["id"],
        name=rec["name"],
        uri=rec["uri"],
        username=rec["username"],
        password=rec["password"],
        lon=rec["lon"],
        lat=rec["lat"],
        grid_id=rec["grid_id"],
        camera_codes=tuple(rec["camera_codes"]),
        auto_answer=rec["auto_answer"],
        active=rec["active"],
        group_ids=tuple(rec["group_ids"]),
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
    )


def _fields_args(f: SpeakerFields) -> tuple[Any, ...]:
    return (
        f.name,
        f.uri,
        f.username,
        f.password,
        f.lon,
        f.lat,
        f.grid_id,
        list(f.camera_codes),
        f.auto_answer,
        f.active,
    )


async def list_speakers(conn: asyncpg.Connection, *, active_only: bool = False) -> list[Speaker]:
    where = "WHERE s.active" if active_only else ""
    with map_pg_errors():
        rows = await conn.fetch(f"SELECT {_SPEAKER_COLS} FROM speakers s {where} ORDER BY s.id")
    return [_speaker(r) for r in rows]


async def get_speaker(conn: asyncpg.Connection, speaker_id: int) -> Speaker | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_SPEAKER_COLS} FROM speakers s WHERE s.id = $1", speaker_id
        )
    return None if rec is None else _speaker(rec)


async def get_speakers(conn: asyncpg.Connection, speaker_ids: Sequence[int]) -> list[Speaker]:
    """The speakers of ``speaker_ids`` that exist, in id order."""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_SPEAKER_COLS} FROM speakers s WHERE s.id = ANY($1::int[]) ORDER BY s.id",
            list(speaker_ids),
        )
    return [_speaker(r) for r in rows]


async def get_speaker_by_name(conn: asyncpg.Connection, name: str) -> Speaker | None:
    with map_pg_errors():
        rec = await conn.fetchrow(f"SELECT {_SPEAKER_COLS} FROM speakers s WHERE s.name = $1", name)
    return None if rec is None else _speaker(rec)


async def insert_speaker(conn: asyncpg.Connection, fields: SpeakerFields) -> Speaker:
    with map_pg_errors():
        sid = await conn.fetchval(
            f"INSERT INTO speakers ({_SPEAKER_ARGS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            *_fields_args(fields),
        )
    speaker = await get_speaker(conn, int(sid))
    assert speaker is not None
    return speaker


async def upsert_speaker(conn: asyncpg.Connection, fields: SpeakerFields) -> tuple[Speaker, bool]:
    """Insert the speaker, or update the one of the same name; ``True`` when it was created."""
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"INSERT INTO speakers ({_SPEAKER_ARGS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (name) DO UPDATE SET uri = EXCLUDED.uri, username = EXCLUDED.username,"
            " password = EXCLUDED.password, lon = EXCLUDED.lon, lat = EXCLUDED.lat,"
            " grid_id = EXCLUDED.grid_id, camera_codes = EXCLUDED.camera_codes,"
            " auto_answer = EXCLUDED.auto_answer, active = EXCLUDED.active, updated_at = now()"
            " RETURNING id, (xmax = 0) AS created",
            *_fields_args(fields),
        )
    speaker = await get_speaker(conn, int(rec["id"]))
    assert speaker is not None
    return speaker, bool(rec["created"])


#: Columns ``update_speaker`` may change (``camera_codes`` given as a sequence).
SPEAKER_COLUMNS = frozenset(
    {"name", "uri", "username", "password", "lon", "lat", "grid_id", "camera_codes",
     "auto_answer", "active"}
)  # fmt: skip


async def update_speaker(
    conn: asyncpg.Connection, speaker_id: int, changes: Mapping[str, Any]
) -> Speaker | None:
    """Set the given columns (keys of ``SPEAKER_COLUMNS``; a value of None clears a nullable
    column); None when there is no such speaker."""
    unknown = set(changes) - SPEAKER_COLUMNS
    if unknown:
        raise ValueError(f"not speaker columns: {sorted(unknown)}")
    args: list[Any] = [speaker_id]
    sets = ["updated_at = now()"]
    for column, value in changes.items():
        args.append(list(value) if column == "camera_codes" else value)
        sets.append(f"{column} = ${len(args)}")
    with map_pg_errors():
        status = await conn.execute(f"UPDATE speakers SET {', '.join(sets)} WHERE id = $1", *args)
    if status.endswith(" 0"):
        return None
    return await get_speaker(conn, speaker_id)


async def delete_speaker(conn: asyncpg.Connection, speaker_id: int) -> bool:
    """Remove a speaker (its group memberships go with it, and schedules stop naming it). The
    warning log keeps its name."""
    with map_pg_errors():
        status = await conn.execute("DELETE FROM speakers WHERE id = $1", speaker_id)
        if status.endswith(" 0"):
            return False
        await conn.execute(
            "UPDATE warning_schedules SET speaker_ids = array_remove(speaker_ids, $1)"
            " WHERE $1 = ANY(speaker_ids)",
            speaker_id,
        )
    return True


async def set_speaker_groups(
    conn: asyncpg.Connection, speaker_id: int, group_ids: Sequence[int]
) -> None:
    """Make ``group_ids`` the speaker's groups (an unknown group is ``InvalidData``)."""
    with map_pg_errors():
        await conn.execute("DELETE FROM speaker_group_members WHERE speaker_id = $1", speaker_id)
        await conn.executemany(
            "INSERT INTO speaker_group_members (group_id, speaker_id) VALUES ($1, $2)",
            [(g, speaker_id) for g in sorted(set(group_ids))],
        )


async def nearest_speaker(
    conn: asyncpg.Connection, lon: float, lat: float, *, max_distance_m: float | None = None
) -> tuple[Speaker, float] | None:
    """The active located speaker nearest to (lon, lat) and its distance in metres (equirectangular:
    exact enough within a city), or None (none located, or none within ``max_distance_m``)."""
    k = 111_320.0  # metres per degree of latitude
    coslat = math.cos(math.radians(lat))
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_SPEAKER_COLS}, sqrt(power((s.lon - $1) * $3, 2) + power(s.lat - $2, 2)) * $4"
            " AS distance FROM speakers s WHERE s.active AND s.lon IS NOT NULL"
            " ORDER BY distance, s.id LIMIT 1",
            lon,
            lat,
            coslat,
            k,
        )
    if rec is None:
        return None
    distance = float(rec["distance"])
    if max_distance_m is not None and distance > max_distance_m:
        return None
    return _speaker(rec), distance


# -- groups ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SpeakerGroup:
    id: int
    name: str
    description: str
    speaker_ids: tuple[int, ...]


_GROUP_COLS = (
    "g.id, g.name, g.description, array(SELECT m.speaker_id FROM speaker_group_members m"
    " WHERE m.group_id = g.id ORDER BY m.speaker_id) AS speaker_ids"
)


def _group(rec: Mapping[str, Any]) -> SpeakerGroup:
    return SpeakerGroup(rec["id"], rec["name"], rec["description"], tuple(rec["speaker_ids"]))


async def list_groups(conn: asyncpg.Connection) -> list[SpeakerGroup]:
    with map_pg_errors():
        rows = await conn.fetch(f"SELECT {_GROUP_COLS} FROM speaker_groups g ORDER BY g.id")
    return [_group(r) for r in rows]


async def get_group(conn: asyncpg.Connection, group_id: int) -> SpeakerGroup | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_GROUP_COLS} FROM speaker_groups g WHERE g.id = $1", group_id
        )
    return None if rec is None else _group(rec)


async def get_group_by_name(conn: asyncpg.Connection, name: str) -> SpeakerGroup | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_GROUP_COLS} FROM speaker_groups g WHERE g.name = $1", name
        )
    return None if rec is None else _group(rec)


async def _set_members(conn: asyncpg.Connection, group_id: int, speaker_ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM speaker_group_members WHERE group_id = $1", group_id)
    await conn.executemany(
        "INSERT INTO speaker_group_members (group_id, speaker_id) VALUES ($1, $2)",
        [(group_id, s) for s in sorted(set(speaker_ids))],
    )


async def insert_group(
    conn: asyncpg.Connection, *, name: str, description: str = "", speaker_ids: Sequence[int] = ()
) -> SpeakerGroup:
    """A new group (an unknown speaker id is ``InvalidData``; call inside a transaction)."""
    with map_pg_errors():
        gid = await conn.fetchval(
            "INSERT INTO speaker_groups (name, description) VALUES ($1, $2) RETURNING id",
            name,
            description,
        )
        await _set_members(conn, int(gid), speaker_ids)
    group = await get_group(conn, int(gid))
    assert group is not None
    return group


async def update_group(
    conn: asyncpg.Connection,
    group_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    speaker_ids: Sequence[int] | None = None,
) -> SpeakerGroup | None:
    with map_pg_errors():
        status = await conn.execute(
            "UPDATE speaker_groups SET name = coalesce($2, name),"
            " description = coalesce($3, description) WHERE id = $1",
            group_id,
            name,
            description,
        )
        if status.endswith(" 0"):
            return None
        if speaker_ids is not None:
            await _set_members(conn, group_id, speaker_ids)
    return await get_group(conn, group_id)


async def delete_group(conn: asyncpg.Connection, group_id: int) -> bool:
    with map_pg_errors():
        status = await conn.execute("DELETE FROM speaker_groups WHERE id = $1", group_id)
        if status.endswith(" 0"):
            return False
        await conn.execute(
            "UPDATE warning_schedules SET group_ids = array_remove(group_ids, $1)"
            " WHERE $1 = ANY(group_ids)",
            group_id,
        )
    return True


async def speakers_of_groups(conn: asyncpg.Connection, group_ids: Sequence[int]) -> list[int]:
    """The ids of the active speakers in any of ``group_ids``, distinct and sorted."""
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT DISTINCT m.speaker_id FROM speaker_group_members m"
            " JOIN speakers s ON s.id = m.speaker_id"
            " WHERE m.group_id = ANY($1::int[]) AND s.active ORDER BY 1",
            list(group_ids),
        )
    return [r[0] for r in rows]


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
