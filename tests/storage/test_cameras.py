"""The camera registry in PostgreSQL (``storage.cameras``) with the constraints of
``0005_cameras.sql``: queries, upsert by name, grid resolution against the demo city's unit grids,
and the nearest speaker."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.demo.geography import grid_lattice
from storage import cameras, voice
from storage.errors import InvalidData, RecordConflict

SECRET = "cam-Pa55"


@pytest.fixture
async def conn(fresh_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(fresh_dsn)
    try:
        yield c
    finally:
        await c.close()


def cam(name: str, lon: float | None = None, lat: float | None = None) -> cameras.CameraFields:
    return cameras.CameraFields(
        name=name,
        main_url=f"rtsp://127.0.0.1:8554/{name}",
        sub_url=f"rtsp://127.0.0.1:8554/{name}-sub",
        username="admin",
        password=SECRET,
        lon=lon,
        lat=lat,
        tags=("路口", "夜间"),
    )


async def test_cameras_insert_update_upsert_delete(conn: asyncpg.Connection) -> None:
    a = await cameras.insert_camera(conn, cam("cam01"))
    assert a.tags == ("路口", "夜间") and a.active and not a.pinned and a.speaker_auto
    assert a.has_credentials and a.password == SECRET and SECRET not in repr(a)
    with pytest.raises(RecordConflict):
        await cameras.insert_camera(conn, cam("cam01"))
    b = await cameras.update_camera(
        conn, a.id, {"pinned": True, "tags": ["x"], "username": None, "password": None}
    )
    assert b is not None and b.pinned and b.tags == ("x",) and not b.has_credentials
    assert b.updated_at >= a.updated_at
    assert await cameras.update_camera(conn, 999_999, {"active": False}) is None
    with pytest.raises(ValueError):
        await cameras.update_camera(conn, a.id, {"id": 5})
    # Upsert by name: the same name updates (keeping pinned and active), a new one inserts.
    again, created = await cameras.upsert_camera(
        conn, dataclasses.replace(cam("cam01"), main_url="rtsp://127.0.0.1/new", pinned=False)
    )
    assert not created and again.id == a.id and again.main_url == "rtsp://127.0.0.1/new"
    assert again.pinned and again.tags == ("路口", "夜间") and again.has_credentials
    other, created = await cameras.upsert_camera(conn, cam("cam02"))
    assert created and other.id != a.id
    await cameras.update_camera(conn, other.id, {"active": False})
    assert [c.name for c in await cameras.list_cameras(conn)] == ["cam01", "cam02"]
    assert [c.name for c in await cameras.list_cameras(conn, active_only=True)] == ["cam01"]
    assert await cameras.get_camera_by_name(conn, "cam01") == await cameras.get_camera(conn, a.id)
    assert await cameras.get_camera_by_name(conn, "nope") is None
    assert [c.id for c in await cameras.get_cameras(conn, [other.id, 999])] == [other.id]
    assert await cameras.delete_camera(conn, a.id)
    assert not await cameras.delete_camera(conn, a.id)
    assert await cameras.get_camera(conn, a.id) is None


async def test_constraints(conn: asyncpg.Connection) -> None:
    # Credentials never inside a stored URL; rtsp only; a password needs a username; a location
    # is a point or nothing.
    bad = [
        dataclasses.replace(cam("a"), main_url=f"rtsp://admin:{SECRET}@127.0.0.1/x"),
        dataclasses.replace(cam("b"), sub_url="rtsp://u@127.0.0.1/x"),
        dataclasses.replace(cam("c"), main_url="http://127.0.0.1/x"),
        dataclasses.replace(cam("d"), username=None),
        dataclasses.replace(cam("e"), lon=103.8),
        dataclasses.replace(cam("f"), tags=tuple(str(i) for i in range(17))),
        dataclasses.replace(cam("g"), grid_id=999_999, lon=1.0, lat=1.0),
    ]
    for fields in bad:
        with pytest.raises(InvalidData):
            await cameras.insert_camera(conn, fields)
    assert await cameras.list_cameras(conn) == []


async def test_grid_at_resolves_the_unit_grid_containing_the_point(
    conn: asyncpg.Connection,
) -> None:
    cell = next(c for c in grid_lattice() if c.level == 2)
    lon, lat = (cell.west + cell.east) / 2, (cell.south + cell.north) / 2
    gid = await cameras.grid_at(conn, lon, lat)
    assert gid is not None
    assert await conn.fetchval("SELECT code FROM grids WHERE id = $1", gid) == cell.code
    assert await conn.fetchval("SELECT level FROM grids WHERE id = $1", gid) == 2
    # Far outside the city (Beijing): no grid.
    assert await cameras.grid_at(conn, 116.39, 39.91) is None
    # ``locate`` fills it in, and clears it without a location.
    located = await cameras.locate(conn, cam("x", lon, lat))
    assert located.grid_id == gid and located.speaker_id is None
    stored = await cameras.insert_camera(conn, located)
    assert stored.grid_id == gid
    outside = await cameras.locate(conn, cam("y", 116.39, 39.91))
    assert outside.grid_id is None
    nowhere = await cameras.locate(conn, dataclasses.replace(located, lon=None, lat=None))
    assert nowhere.grid_id is None


async def test_nearest_speaker_within_200_m(conn: asyncpg.Connection) -> None:
    lon, lat = 103.80, 25.50
    assert await cameras.nearest_speaker_id(conn, lon, lat) is None

    def spk(name: str, dlon: float) -> voice.SpeakerFields:
        return voice.SpeakerFields(name=name, uri=f"sip:{name}@127.0.0.1", lon=lon + dlon, lat=lat)

    # 0.001° of longitude at 25.5°N is about 100 m.
    near = await voice.insert_speaker(conn, spk("near", 0.001))
    await voice.insert_speaker(conn, spk("far", 0.0015))
    far_only = await voice.insert_speaker(conn, spk("farther", 0.01))
    assert await cameras.nearest_speaker_id(conn, lon, lat) == near.id
    assert await cameras.nearest_speaker_id(conn, lon, lat, max_m=50) is None
    assert await cameras.nearest_speaker_id(conn, lon + 0.01, lat) == far_only.id
    assert await cameras.nearest_speaker_id(conn, lon + 0.0125, lat) is None  # 250 m from both
    # Automatic: the nearest; explicit: kept as given (also when it is far).
    auto = await cameras.locate(conn, cam("auto", lon, lat))
    assert auto.speaker_id == near.id
    fixed = await cameras.locate(
        conn,
        dataclasses.replace(cam("fixed", lon, lat), speaker_id=far_only.id, speaker_auto=False),
    )
    assert fixed.speaker_id == far_only.id
    none = await cameras.locate(
        conn, dataclasses.replace(cam("none", lon, lat), speaker_id=None, speaker_auto=False)
    )
    assert none.speaker_id is None
    # A speaker removed leaves its cameras without one.
    stored = await cameras.insert_camera(conn, auto)
    assert await voice.delete_speaker(conn, near.id)
    after = await cameras.get_camera(conn, stored.id)
    assert after is not None and after.speaker_id is None


async def test_refresh_auto_speakers(conn: asyncpg.Connection) -> None:
    lon, lat = 103.80, 25.50
    auto = await cameras.insert_camera(conn, await cameras.locate(conn, cam("auto", lon, lat)))
    fixed = await cameras.insert_camera(
        conn, dataclasses.replace(cam("fixed", lon, lat), speaker_auto=False)
    )
    await cameras.insert_camera(conn, cam("nowhere"))
    assert auto.speaker_id is None
    assert await cameras.refresh_auto_speakers(conn) == []
    far = await voice.insert_speaker(
        conn, voice.SpeakerFields(name="far", uri="sip:f@127.0.0.1", lon=lon + 0.0015, lat=lat)
    )
    assert await cameras.refresh_auto_speakers(conn) == [auto.id]
    near = await voice.insert_speaker(
        conn, voice.SpeakerFields(name="near", uri="sip:n@127.0.0.1", lon=lon, lat=lat + 0.0005)
    )
    assert await cameras.refresh_auto_speakers(conn) == [auto.id]
    assert await cameras.refresh_auto_speakers(conn) == []  # nothing changed since
    after = await cameras.get_camera(conn, auto.id)
    assert after is not None and after.speaker_id == near.id
    assert after.speaker_id == await cameras.nearest_speaker_id(conn, lon, lat)
    still = await cameras.get_camera(conn, fixed.id)
    assert still is not None and still.speaker_id is None
    await voice.update_speaker(conn, near.id, {"active": False})
    await voice.update_speaker(conn, far.id, {"lon": lon + 0.01})
    assert await cameras.refresh_auto_speakers(conn) == [auto.id]
    gone = await cameras.get_camera(conn, auto.id)
    assert gone is not None and gone.speaker_id is None
