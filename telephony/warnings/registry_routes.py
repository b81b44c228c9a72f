"""``/api/speakers``, ``/api/speaker-groups`` and ``/api/clips``: the speaker registry and the clip
library over HTTP (contract D), as ``ROUTES`` for the telephony subsystem.

Theory of operation: the route table declares who may call what (reading: admin, seat, dispatcher,
viewer; clips: admin, seat, dispatcher; speakers and groups: admin) and the strict bodies; handlers
validate with ``telephony.warnings.speakers`` and ``clips``, write through ``storage.voice`` and
``audit`` in one transaction, and answer JSON. A speaker's credentials go in and never come out:
``speaker_json`` has ``has_credentials`` and the URI without any password, and audit rows name the
fields changed, not their values. A speaker's ``status`` is read from the ``speakers`` state
channel that the warning service fills (``unknown`` until it has a value, or without a fan-out).
Clip audio is decoded in a worker thread; the A-law and the preview go to the content-addressed
store before the row is written (an orphan blob is harmless, a row without its audio is not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from hub.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from hub.core.workflow import Role
from hub.state import HubState
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, Upload, body_of, params_of
from hub.web.routes.common import NO_NUL, Id, client_ip, hub
from storage import users as user_store
from storage import voice
from storage.db import connect, map_pg_errors
from storage.errors import InvalidData, RecordConflict
from telephony.warnings import clips
from telephony.warnings.speakers import public_uri, speaker_fields

READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
ISSUERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER})
ADMIN = frozenset({Role.ADMIN})

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Category = Annotated[str, msgspec.Meta(max_length=50, pattern=NO_NUL)]
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


class ClipForm(msgspec.Struct, forbid_unknown_fields=True):
    """The plain fields of a clip upload (besides its ``file`` part)."""

    name: Name
    category: Category = ""


class TtsBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=clips.TEXT_MAX, pattern=NO_NUL)]
    category: Category = ""


class ClipRef(msgspec.Struct, forbid_unknown_fields=True):
    clip_id: Id


# -- JSON --------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


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


def clip_json(c: voice.Clip) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "category": c.category,
        "duration_ms": c.duration_ms,
        "source": c.source,
        "text": c.text,
        "created_by": None
        if c.created_by is None
        else {"id": c.created_by, "name": c.created_by_name},
        "created_at": _iso(c.created_at),
        "preview_url": f"/api/clips/{c.id}/audio",
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


# -- clips ---------------------------------------------------------------------------------------


async def list_clips(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        items = await voice.list_clips(conn)
    return JSONResponse({"items": [clip_json(c) for c in items]})


def _clip_form(form: FormData) -> ClipForm:
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key == "file":
            continue
        if isinstance(value, UploadFile) or key in fields:
            raise BadRequest("上传字段无效", code="invalid_field", details={"field": key[:40]})
        fields[key] = value
    try:
        return msgspec.convert(fields, ClipForm)
    except msgspec.ValidationError as exc:
        text = str(exc)
        code = "unknown_field" if "unknown field" in text else "invalid_field"
        raise BadRequest("上传字段无效", code=code, details={"reason": text}) from None


async def _save_clip(
    request: Request,
    p: Principal,
    prepared: clips.PreparedClip,
    *,
    name: str,
    category: str,
    source: str,
    text: str | None,
) -> Response:
    h = hub(request)
    name, category = name.strip(), category.strip()
    if not name:
        raise ValidationFailed("请填写录音名称", details={"field": "name"})
    g711_sha, preview_sha = await asyncio.to_thread(clips.store_clip, h.attachments, prepared)
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                clip = await voice.insert_clip(
                    conn,
                    name=name,
                    category=category,
                    duration_ms=prepared.duration_ms,
                    g711_sha256=g711_sha,
                    preview_sha256=preview_sha,
                    source=source,
                    text=text,
                    created_by=p.user.id,
                )
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="clip_create",
                    target=f"clip:{clip.id}",
                    detail={"name": name, "source": source, "duration_ms": clip.duration_ms},
                    ip=client_ip(request),
                )
    return JSONResponse(clip_json(clip), status_code=201)


async def upload_clip(request: Request, p: Principal) -> Response:
    h = hub(request)
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("上传须为 multipart/form-data")
    limit = h.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 65536:
        raise PayloadTooLarge("上传内容过大", details={"limit": limit})
    try:
        # The route table documents the hub's per-request file limit for every upload; a clip is
        # one file, so more than one is a 422 below rather than a parse failure here.
        max_files = h.settings.max_attachments_per_request
        form = await request.form(max_files=max_files, max_fields=5, max_part_size=64 * 1024)
    except Exception as exc:  # starlette's multipart errors (HTTPException, MultiPartException)
        raise BadRequest(
            "上传内容无法解析", code="bad_multipart", details={"reason": str(exc)[:200]}
        ) from None
    try:
        fields = _clip_form(form)
        files = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
        if not files:
            raise BadRequest("没有上传文件", code="no_file", details={"field": "file"})
        if len(files) > 1:
            raise ValidationFailed(
                "一次只能上传一个录音文件", code="one_file_only", details={"field": "file"}
            )
        data = await files[0].read(limit + 1)
    finally:
        await form.close()
    prepared = await clips.prepare_clip_async(
        data, max_bytes=limit, max_seconds=h.settings.clip_max_seconds
    )
    return await _save_clip(
        request, p, prepared, name=fields.name, category=fields.category, source="upload", text=None
    )


async def tts_clip(request: Request, p: Principal) -> Response:
    h = hub(request)
    body = body_of(request, TtsBody)
    text = clips.check_text(body.text)
    prepared = await clips.synthesize(text, max_seconds=h.settings.clip_max_seconds)
    return await _save_clip(
        request, p, prepared, name=body.name, category=body.category, source="tts", text=text
    )


async def clip_audio(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, ClipRef).clip_id
    async with connect(h.pool) as conn:
        clip = await voice.get_clip(conn, cid)
    if clip is None:
        raise NotFound("录音不存在")
    data = await asyncio.to_thread(h.attachments.open, clip.preview_sha256)
    return Response(
        data,
        media_type="audio/wav",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400, immutable",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def delete_clip(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, ClipRef).clip_id
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                clip = await voice.get_clip(conn, cid)
                if clip is None or not await voice.delete_clip(conn, cid):
                    raise NotFound("录音不存在")
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="clip_delete",
                    target=f"clip:{cid}",
                    detail={"name": clip.name},
                    ip=client_ip(request),
                )
    return Response(status_code=204)


AUDIO_TYPES = ("audio/wav", "audio/mpeg", "audio/aac", "audio/mp4")

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
    ApiRoute("GET", "/api/clips", list_clips, "录音库", READERS, tag="voice"),
    ApiRoute(
        "POST",
        "/api/clips",
        upload_clip,
        "上传录音（WAV、MP3、AAC、M4A；multipart）",
        ISSUERS,
        upload=Upload(ClipForm, media_types=AUDIO_TYPES),
        status=201,
        errors=(422,),
        tag="voice",
    ),
    ApiRoute(
        "POST",
        "/api/clips/tts",
        tts_clip,
        "文字合成录音（普通话）",
        ISSUERS,
        TtsBody,
        status=201,
        errors=(422,),
        tag="voice",
    ),
    ApiRoute(
        "GET",
        "/api/clips/{clip_id:int}/audio",
        clip_audio,
        "试听录音（8 kHz WAV，与喇叭播放的一致）",
        READERS,
        params=ClipRef,
        produces=("audio/wav",),
        tag="voice",
    ),
    ApiRoute(
        "DELETE",
        "/api/clips/{clip_id:int}",
        delete_clip,
        "删除录音（播放记录保留）",
        ISSUERS,
        params=ClipRef,
        status=204,
        tag="voice",
    ),
]
