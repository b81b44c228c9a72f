"""The voice warnings' loudspeakers and their groups in PostgreSQL (tables in
``migrations/0004_voice_warnings.sql``); ``storage.voice`` re-exports all of it.

Theory of operation: every function takes a connection (the caller picks the transaction) and
returns frozen dataclasses. A speaker row carries its digest credentials, but ``Speaker.password``
is left out of ``repr`` and nothing here logs; the HTTP layer decides what a browser sees. Removing
a speaker or a group also takes it out of the schedules that name it (a schedule left with no
target is refused by its constraint: ``InvalidData``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
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
