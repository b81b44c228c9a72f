"""``/api/speakers``, ``/api/speaker-groups`` and ``/api/clips``: the speaker registry and the clip
library over HTTP (contract D), as ``ROUTES`` for the telephony subsystem.

Theory of operation: the route table declares who may call what (reading: admin, seat, dispatcher,
viewer; clips: admin, seat, dispatcher; speakers and groups: admin) and the strict bodies; handlers
validate with ``telephony.warnings.speakers``, write through ``storage.voice`` and ``audit`` in one
transaction, and answer JSON. A speaker's credentials go in and never come out: ``speaker_json``
has ``has_credentials`` and the URI without any password, and audit rows name the fields changed,
not their values. A speaker's ``status`` is read from the ``speakers`` state channel that the
warning service fills (``unknown`` until it has a value, or without a fan-out). The clip routes
are ``telephony.warnings.clip_routes`` (``CLIP_ROUTES``, included in ``ROUTES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from hub.core.errors import (
    Conflict,
    NotFound,
    ValidationFailed,
)
from hub.core.workflow import Role
from hub.state import HubState
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, body_of, params_of
from hub.web.routes.common import NO_NUL, Id, client_ip, hub
from storage import users as user_store
from storage import voice
from storage.db import connect, map_pg_errors
from storage.errors import InvalidData, RecordConflict
from telephony.warnings.clip_routes import CLIP_ROUTES, READERS
from telephony.warnings.speakers import public_uri, speaker_fields

ADMIN = frozenset({Role.ADMIN})

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Uri = Annotated[str, msgspec.Meta(min_length=1, max_length=400, description="sip: 或 sips: 地址")]
Credential = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
Camera = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
AutoAnswer = Literal["call-info", "alert-info", "none"]


class Location(msgspec.Struct, forbid_unknown_fields=True):
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]


class SpeakerBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    uri: Uri
    username: Credential | None = None
    password: Annotated[Credential, msgspec.Meta(description="只写：从不返回")] | None = None
    location: Location | None = None
    grid_id: Id | None = None
    cameras: Annotated[list[Camera], msgspec.Meta(max_length=32)] = []
    groups: Annotated[list[Id], msgspec.Meta(max_length=32)] = []
    auto_answer: AutoAnswer = "call-info"
    active: bool = True


class SpeakerPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields given change; ``null`` clears username, password, location or grid."""

    name: Name | UnsetType = UNSET
    uri: Uri | UnsetType = UNSET
    username: Credential | UnsetType | None = UNSET
    password: Credential | UnsetType | None = UNSET
    location: Location | UnsetType | None = UNSET
    grid_id: Id | UnsetType | None = UNSET
    cameras: Annotated[list[Camera], msgspec.Meta(max_length=32)] | UnsetType = UNSET
    groups: Annotated[list[Id], msgspec.Meta(max_length=32)] | UnsetType = UNSET
    auto_answer: AutoAnswer | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class SpeakerRef(msgspec.Struct, forbid_unknown_fields=True):
    speaker_id: Id


class GroupBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] = ""
    speaker_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)] = []


class GroupPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    description: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] | None = None
    speaker_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)] | None = None


class GroupRef(msgspec.Struct, forbid_unknown_fields=True):
    group_id: Id


# -- JSON --------------------------------------------------------------------------------------


def health_soon(h: HubState) -> None:
    """A speaker was added, changed or removed: check the speakers now, not at the next round."""
    service = h.services.get("voice")
    if service is not None:
        service.speakers_changed()


def speaker_status(h: HubState) -> Mapping[str, Any]:
    """The ``speakers`` state channel (key: speaker id as a string), or nothing without a fan-out."""
    if h.fanout is None:
        return {}
    return h.fanout.states.snapshot("speakers")


def speaker_json(s: voice.Speaker, status: Mapping[str, Any]) -> dict[str, Any]:
    """A speaker as browsers see it: never the username or the password."""
    live = status.get(str(s.id))
    state = {"state": "unknown", "since": None}
    if isinstance(live, Mapping):
        state = {"state": live.get("state", "unknown"), "since": live.get("since")}
    return {
        "id": s.id,
        "name": s.name,
        "uri": public_uri(s.uri),
        "location": None if s.lon is None else {"lon": s.lon, "lat": s.lat},
        "grid_id": s.grid_id,
        "cameras": list(s.camera_codes),
        "groups": list(s.group_ids),
        "auto_answer": s.auto_answer,
        "active": s.active,
        "has_credentials": s.has_credentials,
        "status": state,
    }


def group_json(g: voice.SpeakerGroup) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "speaker_ids": list(g.speaker_ids),
    }


# -- speakers ------------------------------------------------------------------------------------


def _check_grid(h: HubState, grid_id: int | None) -> None:
    if grid_id is not None and grid_id not in h.catalog.grids:
        raise ValidationFailed("网格不存在", code="unknown_grid", details={"field": "grid_id"})


async def _check_groups(conn: Any, group_ids: list[int]) -> None:
    known = {g.id for g in await voice.list_groups(conn)}
    unknown = sorted(set(group_ids) - known)
    if unknown:
        raise ValidationFailed(
            "分组不存在", code="unknown_group", details={"field": "groups", "ids": unknown[:20]}
        )


async def _check_speakers(conn: Any, speaker_ids: list[int]) -> None:
    found = {s.id for s in await voice.get_speakers(conn, speaker_ids)}
    unknown = sorted(set(speaker_ids) - found)
    if unknown:
        raise ValidationFailed(
            "喇叭不存在",
            code="unknown_speaker",
            details={"field": "speaker_ids", "ids": unknown[:20]},
        )


def _name_taken(what: str) -> Conflict:
    return Conflict(f"{what}名称已存在", code="name_taken", details={"field": "name"})


async def list_speakers(request: Request, p: Principal) -> Response:
    h = hub(request)
    async with connect(h.pool) as conn:
        speakers = await voice.list_speakers(conn)
    status = speaker_status(h)
    return JSONResponse({"items": [speaker_json(s, status) for s in speakers]})


async def create_speaker(request: Request, p: Principal) -> Response:
    h = hub(request)
    body = body_of(request, SpeakerBody)
    _check_grid(h, body.grid_id)
    fields = speaker_fields(
        name=body.name,
        uri=body.uri,
        username=body.username,
        password=body.password,
        lon=None if body.location is None else body.location.lon,
        lat=None if body.location is None else body.location.lat,
        grid_id=body.grid_id,
        camera_codes=body.cameras,
        auto_answer=body.auto_answer,
        active=body.active,
    )
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                await _check_groups(conn, body.groups)
                try:
                    async with conn.transaction():
                        speaker = await voice.insert_speaker(conn, fields)
                except RecordConflict:
                    raise _name_taken("喇叭") from None
                await voice.set_speaker_groups(conn, speaker.id, body.groups)
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="speaker_create",
                    target=f"speaker:{speaker.id}",
                    detail={"name": fields.name, "uri": public_uri(fields.uri)},
                    ip=client_ip(request),
                )
            stored = await voice.get_speaker(conn, speaker.id)
    assert stored is not None
    health_soon(h)
    return JSONResponse(speaker_json(stored, speaker_status(h)), status_code=201)


def _patched(current: voice.Speaker, body: SpeakerPatch) -> dict[str, Any]:
    """The speaker's fields after the patch, as ``speaker_fields`` arguments."""

    def pick(value: Any, default: Any) -> Any:
        return default if value is UNSET else value

    lon, lat = current.lon, current.lat
    if not isinstance(body.location, UnsetType):
        lon = None if body.location is None else body.location.lon
        lat = None if body.location is None else body.location.lat
    username = pick(body.username, current.username)
    # Clearing the username clears the password with it (a password needs a username).
    default_password = None if body.username is None else current.password
    return {
        "name": pick(body.name, current.name),
        "uri": pick(body.uri, current.uri),
        "username": username,
        "password": pick(body.password, default_password),
        "lon": lon,
        "lat": lat,
        "grid_id": pick(body.grid_id, current.grid_id),
        "camera_codes": pick(body.cameras, current.camera_codes),
        "auto_answer": pick(body.auto_answer, current.auto_answer),
        "active": pick(body.active, current.active),
    }


async def update_speaker(request: Request, p: Principal) -> Response:
    h = hub(request)
    sid = params_of(request, SpeakerRef).speaker_id
    body = body_of(request, SpeakerPatch)
    changed = [f for f in body.__struct_fields__ if getattr(body, f) is not UNSET]
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                current = await voice.get_speaker(conn, sid)
                if current is None:
                    raise NotFound("喇叭不存在")
                fields = speaker_fields(**_patched(current, body))
                _check_grid(h, fields.grid_id)
                columns = {
                    "name": fields.name,
                    "uri": fields.uri,
                    "username": fields.username,
                    "password": fields.password,
                    "lon": fields.lon,
                    "lat": fields.lat,
                    "grid_id": fields.grid_id,
                    "camera_codes": fields.camera_codes,
                    "auto_answer": fields.auto_answer,
                    "active": fields.active,
                }
                try:
                    async with conn.transaction():
                        await voice.update_speaker(conn, sid, columns)
                except RecordConflict:
                    raise _name_taken("喇叭") from None
                if not isinstance(body.groups, UnsetType):
                    await _check_groups(conn, body.groups)
                    await voice.set_speaker_groups(conn, sid, body.groups)
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="speaker_update",
                    target=f"speaker:{sid}",
                    detail={"changed": changed},
                    ip=client_ip(request),
                )
            stored = await voice.get_speaker(conn, sid)
    assert stored is not None
    health_soon(h)
    return JSONResponse(speaker_json(stored, speaker_status(h)))


async def delete_speaker(request: Request, p: Principal) -> Response:
    h = hub(request)
    sid = params_of(request, SpeakerRef).speaker_id
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                current = await voice.get_speaker(conn, sid)
                if current is None:
                    raise NotFound("喇叭不存在")
                try:
                    async with conn.transaction():
                        await voice.delete_speaker(conn, sid)
                except InvalidData:
                    raise Conflict(
                        "该喇叭是某个定时播放唯一的目标，请先修改或删除该定时播放",
                        code="speaker_in_schedule",
                    ) from None
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="speaker_delete",
                    target=f"speaker:{sid}",
                    detail={"name": current.name},
                    ip=client_ip(request),
                )
    health_soon(h)
    return Response(status_code=204)


# -- groups --------------------------------------------------------------------------------------


async def list_groups(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        groups = await voice.list_groups(conn)
    return JSONResponse({"items": [group_json(g) for g in groups]})


async def create_group(request: Request, p: Principal) -> Response:
    h = hub(request)
    body = body_of(request, GroupBody)
    name = body.name.strip()
    if not name:
        raise ValidationFailed("请填写分组名称", details={"field": "name"})
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                await _check_speakers(conn, body.speaker_ids)
                try:
                    async with conn.transaction():
                        group = await voice.insert_group(
                            conn,
                            name=name,
                            description=body.description.strip(),
                            speaker_ids=body.speaker_ids,
                        )
                except RecordConflict:
                    raise _name_taken("分组") from None
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="speaker_group_create",
                    target=f"speaker_group:{group.id}",
                    detail={"name": name, "speaker_ids": list(group.speaker_ids)},
                    ip=client_ip(request),
                )
    return JSONResponse(group_json(group), status_code=201)


async def update_group(request: Request, p: Principal) -> Response:
    h = hub(request)
    gid = params_of(request, GroupRef).group_id
    body = body_of(request, GroupPatch)
    name = None if body.name is None else body.name.strip()
    if name == "":
        raise ValidationFailed("请填写分组名称", details={"field": "name"})
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                if body.speaker_ids is not None:
                    await _check_speakers(conn, body.speaker_ids)
                try:
                    async with conn.transaction():
                        group = await voice.update_group(
                            conn,
                            gid,
                            name=name,
                            description=None
                            if body.description is None
                            else body.description.strip(),
                            speaker_ids=body.speaker_ids,
                        )
                except RecordConflict:
                    raise _name_taken("分组") from None
                if group is None:
                    raise NotFound("分组不存在")
                changed = [f for f in body.__struct_fields__ if getattr(body, f) is not None]
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="speaker_group_update",
                    target=f"speaker_group:{gid}",
                    detail={"changed": changed},
                    ip=client_ip(request),
                )
    return JSONResponse(group_json(group))


async def delete_group(request: Request, p: Principal) -> Response:
    h = hub(request)
    gid = params_of(request, GroupRef).group_id
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                current = await voice.get_group(conn, gid)
                if current is None:
                    raise NotFound("分组不存在")
                try:
                    async with conn.transaction():
                        await voice.delete_group(conn, gid)
                except InvalidData:
                    raise Conflict(
                        "该分组是某个定时播放唯一的目标，请先修改或删除该定时播放",
                        code="group_in_schedule",
                    ) from None
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="speaker_group_delete",
                    target=f"speaker_group:{gid}",
                    detail={"name": current.name},
                    ip=client_ip(request),
                )
    return Response(status_code=204)


ROUTES: list[ApiRoute] = [
    ApiRoute("GET", "/api/speakers", list_speakers, "广播喇叭（含实时状态）", READERS, tag="voice"),
    ApiRoute(
        "POST",
        "/api/speakers",
        create_speaker,
        "登记喇叭",
        ADMIN,
        SpeakerBody,
        status=201,
        errors=(409, 422),
        tag="voice",
    ),
    ApiRoute(
        "PATCH",
        "/api/speakers/{speaker_id:int}",
        update_speaker,
        "修改喇叭（null 清除认证、位置或网格）",
        ADMIN,
        SpeakerPatch,
        params=SpeakerRef,
        errors=(409, 422),
        tag="voice",
    ),
    ApiRoute(
        "DELETE",
        "/api/speakers/{speaker_id:int}",
        delete_speaker,
        "删除喇叭（播放记录保留其名称）",
        ADMIN,
        params=SpeakerRef,
        status=204,
        errors=(409,),
        tag="voice",
    ),
    ApiRoute("GET", "/api/speaker-groups", list_groups, "喇叭分组", READERS, tag="voice"),
    ApiRoute(
        "POST",
        "/api/speaker-groups",
        create_group,
        "新建喇叭分组",
        ADMIN,
        GroupBody,
        status=201,
        errors=(409, 422),
        tag="voice",
    ),
    ApiRoute(
        "PATCH",
        "/api/speaker-groups/{group_id:int}",
        update_group,
        "修改喇叭分组",
        ADMIN,
        GroupPatch,
        params=GroupRef,
        errors=(409, 422),
        tag="voice",
    ),
    ApiRoute(
        "DELETE",
        "/api/speaker-groups/{group_id:int}",
        delete_group,
        "删除喇叭分组",
        ADMIN,
        params=GroupRef,
        status=204,
        errors=(409,),
        tag="voice",
    ),
    *CLIP_ROUTES,
]
