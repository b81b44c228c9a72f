"""``/api/cameras``: the camera registry over HTTP, as ``ROUTES`` for the video subsystem.

Theory of operation: the route table declares who may call what (reading: admin, seat,
dispatcher, viewer; writing: admin) and the strict bodies; handlers validate with
``video.cameras``, resolve the grid and the automatic speaker from the location
(``storage.cameras.locate``), write and ``audit`` in one transaction, and answer JSON. Credentials
go in (as ``username``/``password`` or inside a URL) and never come out: ``camera_json`` has
``has_credentials`` and the URLs without them, and audit rows name the fields changed, not their
values. A camera's ``status`` is read from the ``cameras`` state channel the ingest fills
(``unknown`` until it has a value, or without a fan-out). After every write the video service,
when there is one, is told to re-read the registry (``cameras_changed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from hub.core.errors import Conflict, NotFound, ValidationFailed
from hub.core.workflow import Role
from hub.state import HubState
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, body_of, params_of
from hub.web.routes.common import NO_NUL, Id, client_ip, hub
from storage import cameras as store
from storage import users as user_store
from storage.catalog import Catalog
from storage.db import connect, map_pg_errors
from storage.errors import RecordConflict
from storage.speakers import get_speaker
from video.cameras import camera_fields, check_rtsp_url, public_url

READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
ADMIN = frozenset({Role.ADMIN})
STATES = frozenset({"online", "connecting", "offline", "unknown"})

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Url = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=1000,
        description="rtsp:// 或 rtsps:// 地址；其中的用户名和密码会移到认证字段，从不返回",
    ),
]
Credential = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=NO_NUL)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=16)]


class Location(msgspec.Struct, forbid_unknown_fields=True):
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]


class CameraBody(msgspec.Struct, forbid_unknown_fields=True):
    """``speaker_id`` absent: the nearest speaker within 200 m; ``null``: none."""

    name: Name
    url: Url
    sub_url: Url | None = None
    username: Credential | None = None
    password: Annotated[Credential, msgspec.Meta(description="只写：从不返回")] | None = None
    location: Location | None = None
    speaker_id: Id | UnsetType | None = UNSET
    tags: Tags = []
    pinned: bool = False
    active: bool = True


class CameraPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields given change; ``null`` clears sub_url, username, password, location or
    speaker_id. A URL without credentials keeps the camera's."""

    name: Name | UnsetType = UNSET
    url: Url | UnsetType = UNSET
    sub_url: Url | UnsetType | None = UNSET
    username: Credential | UnsetType | None = UNSET
    password: Credential | UnsetType | None = UNSET
    location: Location | UnsetType | None = UNSET
    speaker_id: Id | UnsetType | None = UNSET
    speaker_auto: Annotated[bool, msgspec.Meta(description="true：改用最近的喇叭")] | UnsetType = (
        UNSET
    )
    tags: Tags | UnsetType = UNSET
    pinned: bool | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class CameraRef(msgspec.Struct, forbid_unknown_fields=True):
    camera_id: Id


# -- JSON --------------------------------------------------------------------------------------


def cameras_changed(h: HubState) -> None:
    """A camera was added, changed or removed: the video service (when running) re-reads them."""
    service = h.services.get("video")
    notify = getattr(service, "cameras_changed", None)
    if callable(notify):
        notify()


def camera_status(h: HubState) -> Mapping[str, Any]:
    """The ``cameras`` state channel (key: camera id as a string), or nothing without a fan-out."""
    if h.fanout is None:
        return {}
    return h.fanout.states.snapshot("cameras")


def _status(live: Any) -> dict[str, Any]:
    if not isinstance(live, Mapping):
        return {"state": "unknown", "reason": None, "message": None, "since": None}
    state = live.get("state")
    return {
        "state": state if state in STATES else "unknown",
        "reason": live.get("reason"),
        "message": live.get("message"),
        "since": live.get("since"),
    }


def camera_json(c: store.Camera, catalog: Catalog, status: Mapping[str, Any]) -> dict[str, Any]:
    """A camera as browsers see it: never the username, the password or a URL holding them."""
    grid = None if c.grid_id is None else catalog.grids.get(c.grid_id)
    street = None if grid is None or grid.parent_id is None else catalog.grids.get(grid.parent_id)
    return {
        "id": c.id,
        "name": c.name,
        "url": public_url(c.main_url),
        "sub_url": public_url(c.sub_url),
        "has_credentials": c.has_credentials,
        "location": None if c.lon is None else {"lon": c.lon, "lat": c.lat},
        "grid": None if grid is None else {"id": grid.id, "name": grid.name, "code": grid.code},
        "street": None if street is None else {"id": street.id, "name": street.name},
        "speaker_id": c.speaker_id,
        "speaker_auto": c.speaker_auto,
        "tags": list(c.tags),
        "pinned": c.pinned,
        "active": c.active,
        "status": _status(status.get(str(c.id))),
    }


def _name_taken() -> Conflict:
    return Conflict("摄像头名称已存在", code="name_taken", details={"field": "name"})


async def _check_speaker(conn: Any, speaker_id: int | None) -> None:
    if speaker_id is not None and await get_speaker(conn, speaker_id) is None:
        raise ValidationFailed(
            "喇叭不存在", code="unknown_speaker", details={"field": "speaker_id"}
        )


# -- handlers ------------------------------------------------------------------------------------


async def list_cameras(request: Request, p: Principal) -> Response:
    h = hub(request)
    async with connect(h.pool) as conn:
        cams = await store.list_cameras(conn)
    status = camera_status(h)
    return JSONResponse({"items": [camera_json(c, h.catalog, status) for c in cams]})


async def get_camera(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, CameraRef).camera_id
    async with connect(h.pool) as conn:
        cam = await store.get_camera(conn, cid)
    if cam is None:
        raise NotFound("摄像头不存在")
    return JSONResponse(camera_json(cam, h.catalog, camera_status(h)))


async def create_camera(request: Request, p: Principal) -> Response:
    h = hub(request)
    body = body_of(request, CameraBody)
    auto = isinstance(body.speaker_id, UnsetType)
    fields = camera_fields(
        name=body.name,
        url=body.url,
        sub_url=body.sub_url,
        username=body.username,
        password=body.password,
        lon=None if body.location is None else body.location.lon,
        lat=None if body.location is None else body.location.lat,
        speaker_id=None if isinstance(body.speaker_id, UnsetType) else body.speaker_id,
        speaker_auto=auto,
        tags=body.tags,
        pinned=body.pinned,
        active=body.active,
    )
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                await _check_speaker(conn, fields.speaker_id)
                located = await store.locate(conn, fields)
                try:
                    async with conn.transaction():
                        cam = await store.insert_camera(conn, located)
                except RecordConflict:
                    raise _name_taken() from None
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="camera_create",
                    target=f"camera:{cam.id}",
                    detail={"name": cam.name, "url": public_url(cam.main_url)},
                    ip=client_ip(request),
                )
    cameras_changed(h)
    return JSONResponse(camera_json(cam, h.catalog, camera_status(h)), status_code=201)


def _patched(current: store.Camera, body: CameraPatch) -> dict[str, Any]:
    """The camera's fields after the patch, as ``camera_fields`` arguments."""

    def pick(value: Any, default: Any) -> Any:
        return default if value is UNSET else value

    lon, lat = current.lon, current.lat
    if not isinstance(body.location, UnsetType):
        lon = None if body.location is None else body.location.lon
        lat = None if body.location is None else body.location.lat
    username, password = current.username, current.password
    # New credentials inside a new URL replace the stored ones (unless given beside it).
    for url in (body.url, body.sub_url):
        if isinstance(url, str) and check_rtsp_url(url).username is not None:
            username = password = None
    if body.username is None:
        password = None  # clearing the username clears the password with it
    speaker_id, auto = current.speaker_id, current.speaker_auto
    if not isinstance(body.speaker_id, UnsetType):
        speaker_id, auto = body.speaker_id, False
    if body.speaker_auto is True:
        speaker_id, auto = None, True
    elif body.speaker_auto is False:
        auto = False  # the speaker it has stays, chosen from now on
    return {
        "name": pick(body.name, current.name),
        "url": pick(body.url, current.main_url),
        "sub_url": pick(body.sub_url, current.sub_url),
        "username": pick(body.username, username),
        "password": pick(body.password, password),
        "lon": lon,
        "lat": lat,
        "speaker_id": speaker_id,
        "speaker_auto": auto,
        "tags": pick(body.tags, current.tags),
        "pinned": pick(body.pinned, current.pinned),
        "active": pick(body.active, current.active),
    }


async def update_camera(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, CameraRef).camera_id
    body = body_of(request, CameraPatch)
    changed = [f for f in body.__struct_fields__ if getattr(body, f) is not UNSET]
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                current = await store.get_camera(conn, cid)
                if current is None:
                    raise NotFound("摄像头不存在")
                fields = camera_fields(**_patched(current, body))
                await _check_speaker(conn, fields.speaker_id)
                located = await store.locate(conn, fields)
                columns = {c: getattr(located, c) for c in store.CAMERA_COLUMNS}
                try:
                    async with conn.transaction():
                        cam = await store.update_camera(conn, cid, columns)
                except RecordConflict:
                    raise _name_taken() from None
                assert cam is not None
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="camera_update",
                    target=f"camera:{cid}",
                    detail={"changed": changed},
                    ip=client_ip(request),
                )
    cameras_changed(h)
    return JSONResponse(camera_json(cam, h.catalog, camera_status(h)))


async def delete_camera(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, CameraRef).camera_id
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                current = await store.get_camera(conn, cid)
                if current is None or not await store.delete_camera(conn, cid):
                    raise NotFound("摄像头不存在")
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="camera_delete",
                    target=f"camera:{cid}",
                    detail={"name": current.name},
                    ip=client_ip(request),
                )
    cameras_changed(h)
    return Response(status_code=204)


ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET",
        "/api/cameras",
        list_cameras,
        "摄像头（含实时状态、网格和街道）",
        READERS,
        tag="video",
    ),
    ApiRoute(
        "GET",
        "/api/cameras/{camera_id:int}",
        get_camera,
        "一个摄像头",
        READERS,
        params=CameraRef,
        tag="video",
    ),
    ApiRoute(
        "POST",
        "/api/cameras",
        create_camera,
        "登记摄像头（网格由位置确定；未指定喇叭时取 200 米内最近的喇叭）",
        ADMIN,
        CameraBody,
        status=201,
        errors=(409, 422),
        tag="video",
    ),
    ApiRoute(
        "PATCH",
        "/api/cameras/{camera_id:int}",
        update_camera,
        "修改摄像头（null 清除子码流、认证、位置或喇叭）",
        ADMIN,
        CameraPatch,
        params=CameraRef,
        errors=(409, 422),
        tag="video",
    ),
    ApiRoute(
        "DELETE",
        "/api/cameras/{camera_id:int}",
        delete_camera,
        "删除摄像头",
        ADMIN,
        params=CameraRef,
        status=204,
        tag="video",
    ),
]
