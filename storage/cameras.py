"""The video wall's camera registry in PostgreSQL (table in ``migrations/0005_cameras.sql``).

Theory of operation: every function takes a connection (the caller picks the transaction) and
returns frozen dataclasses. A camera row carries its RTSP credentials in ``username`` and
``password`` (never inside the URLs: a constraint refuses ``user:password@`` there), and
``Camera.password`` is left out of ``repr``; nothing here logs, and the HTTP layer decides what a
browser sees (``video.cameras.public_url``).

Where a camera is follows from its location: ``locate`` fills in the unit grid containing the
point (``grid_at``: ``point(lon, lat) <@ boundary`` on the grids' built-in ``polygon``) and, when
the speaker is automatic (``speaker_auto``), the nearest active speaker within 200 m
(``nearest_speaker_id``). Callers run ``locate`` before ``insert_camera``, ``upsert_camera`` or an
``update_camera`` that moves the camera. When speakers are added, moved or removed,
``refresh_auto_speakers`` chooses again for every automatic camera at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from storage.catalog import grid_at
from storage.db import map_pg_errors
from storage.speakers import nearest_speaker

__all__ = [
    "CAMERA_COLUMNS",
    "SPEAKER_RADIUS_M",
    "Camera",
    "CameraFields",
    "delete_camera",
    "get_camera",
    "get_camera_by_name",
    "get_cameras",
    "grid_at",
    "insert_camera",
    "list_cameras",
    "locate",
    "nearest_speaker_id",
    "refresh_auto_speakers",
    "update_camera",
    "upsert_camera",
]

#: How far the automatic speaker of a camera may be (metres).
SPEAKER_RADIUS_M: Final = 200.0


@dataclasses.dataclass(frozen=True, slots=True)
class CameraFields:
    """What a caller sets on a camera (the API body or a CSV row, already validated): URLs
    without credentials, which are ``username`` and ``password``."""

    name: str
    main_url: str
    sub_url: str | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    lon: float | None = None
    lat: float | None = None
    grid_id: int | None = None
    speaker_id: int | None = None
    speaker_auto: bool = True
    tags: tuple[str, ...] = ()
    pinned: bool = False
    active: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Camera:
    id: int
    name: str
    main_url: str
    sub_url: str | None
    username: str | None
    password: str | None = dataclasses.field(repr=False)
    lon: float | None
    lat: float | None
    grid_id: int | None
    speaker_id: int | None
    speaker_auto: bool
    tags: tuple[str, ...]
    pinned: bool
    active: bool
    created_at: datetime
    updated_at: datetime

    @property
    def has_credentials(self) -> bool:
        return self.username is not None


_COLS = (
    "id, name, main_url, sub_url, username, password, lon, lat, grid_id, speaker_id,"
    " speaker_auto, tags, pinned, active, created_at, updated_at"
)
_ARGS = (
    "name, main_url, sub_url, username, password, lon, lat, grid_id, speaker_id, speaker_auto,"
    " tags, pinned, active"
)
_VALUES = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"


def _camera(rec: Mapping[str, Any]) -> Camera:
    return Camera(
        id=rec["id"],
        name=rec["name"],
        main_url=rec["main_url"],
        sub_url=rec["sub_url"],
        username=rec["username"],
        password=rec["password"],
        lon=rec["lon"],
        lat=rec["lat"],
        grid_id=rec["grid_id"],
        speaker_id=rec["speaker_id"],
        speaker_auto=rec["speaker_auto"],
        tags=tuple(rec["tags"]),
        pinned=rec["pinned"],
        active=rec["active"],
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
    )


def _fields_args(f: CameraFields) -> tuple[Any, ...]:
    return (
        f.name,
        f.main_url,
        f.sub_url,
        f.username,
        f.password,
        f.lon,
        f.lat,
        f.grid_id,
        f.speaker_id,
        f.speaker_auto,
        list(f.tags),
        f.pinned,
        f.active,
    )


async def list_cameras(conn: asyncpg.Connection, *, active_only: bool = False) -> list[Camera]:
    where = "WHERE active" if active_only else ""
    with map_pg_errors():
        rows = await conn.fetch(f"SELECT {_COLS} FROM cameras {where} ORDER BY id")
    return [_camera(r) for r in rows]


async def get_camera(conn: asyncpg.Connection, camera_id: int) -> Camera | None:
    with map_pg_errors():
        rec = await conn.fetchrow(f"SELECT {_COLS} FROM cameras WHERE id = $1", camera_id)
    return None if rec is None else _camera(rec)


async def get_cameras(conn: asyncpg.Connection, camera_ids: Sequence[int]) -> list[Camera]:
    """The cameras of ``camera_ids`` that exist, in id order."""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_COLS} FROM cameras WHERE id = ANY($1::int[]) ORDER BY id", list(camera_ids)
        )
    return [_camera(r) for r in rows]


async def get_camera_by_name(conn: asyncpg.Connection, name: str) -> Camera | None:
    with map_pg_errors():
        rec = await conn.fetchrow(f"SELECT {_COLS} FROM cameras WHERE name = $1", name)
    return None if rec is None else _camera(rec)


async def insert_camera(conn: asyncpg.Connection, fields: CameraFields) -> Camera:
    """A new camera (a name already taken is ``RecordConflict``)."""
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"INSERT INTO cameras ({_ARGS}) VALUES ({_VALUES}) RETURNING {_COLS}",
            *_fields_args(fields),
        )
    return _camera(rec)


async def upsert_camera(conn: asyncpg.Connection, fields: CameraFields) -> tuple[Camera, bool]:
    """Insert the camera, or update the one of the same name; ``True`` when it was created. An
    update keeps the camera's ``pinned`` and ``active`` (what an import file does not say)."""
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"INSERT INTO cameras ({_ARGS}) VALUES ({_VALUES})"
            " ON CONFLICT (name) DO UPDATE SET main_url = EXCLUDED.main_url,"
            " sub_url = EXCLUDED.sub_url, username = EXCLUDED.username,"
            " password = EXCLUDED.password, lon = EXCLUDED.lon, lat = EXCLUDED.lat,"
            " grid_id = EXCLUDED.grid_id, speaker_id = EXCLUDED.speaker_id,"
            " speaker_auto = EXCLUDED.speaker_auto, tags = EXCLUDED.tags, updated_at = now()"
            f" RETURNING {_COLS}, (xmax = 0) AS created",
            *_fields_args(fields),
        )
    return _camera(rec), bool(rec["created"])


#: Columns ``update_camera`` may change (``tags`` given as a sequence).
CAMERA_COLUMNS: Final = frozenset(
    {"name", "main_url", "sub_url", "username", "password", "lon", "lat", "grid_id",
     "speaker_id", "speaker_auto", "tags", "pinned", "active"}
)  # fmt: skip


async def update_camera(
    conn: asyncpg.Connection, camera_id: int, changes: Mapping[str, Any]
) -> Camera | None:
    """Set the given columns (keys of ``CAMERA_COLUMNS``; None clears a nullable column); None
    when there is no such camera."""
    unknown = set(changes) - CAMERA_COLUMNS
    if unknown:
        raise ValueError(f"not camera columns: {sorted(unknown)}")
    args: list[Any] = [camera_id]
    sets = ["updated_at = now()"]
    for column, value in changes.items():
        args.append(list(value) if column == "tags" else value)
        sets.append(f"{column} = ${len(args)}")
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"UPDATE cameras SET {', '.join(sets)} WHERE id = $1 RETURNING {_COLS}", *args
        )
    return None if rec is None else _camera(rec)


async def delete_camera(conn: asyncpg.Connection, camera_id: int) -> bool:
    with map_pg_errors():
        status = await conn.execute("DELETE FROM cameras WHERE id = $1", camera_id)
    return not status.endswith(" 0")


async def nearest_speaker_id(
    conn: asyncpg.Connection, lon: float, lat: float, max_m: float = SPEAKER_RADIUS_M
) -> int | None:
    """The id of the active located speaker nearest to (lon, lat) within ``max_m`` metres."""
    found = await nearest_speaker(conn, lon, lat, max_distance_m=max_m)
    return None if found is None else found[0].id


async def locate(conn: asyncpg.Connection, fields: CameraFields) -> CameraFields:
    """``fields`` with the grid resolved from the location (None without one or outside every
    unit grid) and, when ``speaker_auto``, the nearest speaker within ``SPEAKER_RADIUS_M``."""
    if fields.lon is None or fields.lat is None:
        speaker = None if fields.speaker_auto else fields.speaker_id
        return dataclasses.replace(fields, grid_id=None, speaker_id=speaker)
    grid_id = await grid_at(conn, fields.lon, fields.lat)
    speaker_id = fields.speaker_id
    if fields.speaker_auto:
        speaker_id = await nearest_speaker_id(conn, fields.lon, fields.lat)
    return dataclasses.replace(fields, grid_id=grid_id, speaker_id=speaker_id)


async def refresh_auto_speakers(
    conn: asyncpg.Connection, max_m: float = SPEAKER_RADIUS_M
) -> list[int]:
    """Choose the nearest speaker again for every located camera whose speaker is automatic (the
    same rule as ``nearest_speaker_id``, in one statement); the ids of the cameras that changed."""
    with map_pg_errors():
        rows = await conn.fetch(
            "WITH pick AS (SELECT c.id, (SELECT s.id FROM speakers s"
            " WHERE s.active AND s.lon IS NOT NULL AND sqrt(power((s.lon - c.lon)"
            " * cos(radians(c.lat)), 2) + power(s.lat - c.lat, 2)) * 111320.0 <= $1"
            " ORDER BY power((s.lon - c.lon) * cos(radians(c.lat)), 2)"
            " + power(s.lat - c.lat, 2), s.id LIMIT 1) AS speaker_id"
            " FROM cameras c WHERE c.speaker_auto AND c.lon IS NOT NULL)"
            " UPDATE cameras c SET speaker_id = pick.speaker_id, updated_at = now() FROM pick"
            " WHERE c.id = pick.id AND c.speaker_id IS DISTINCT FROM pick.speaker_id"
            " RETURNING c.id",
            max_m,
        )
    return sorted(r["id"] for r in rows)
