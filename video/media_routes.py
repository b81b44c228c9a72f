"""The wall's media API: thumbnails, live tiles (WebRTC), and snapshots as case evidence.

Handlers are thin: they find the process's ``VideoService`` (``hub.services["video"]``; 503 where
the video role does not run), call it and serialise. A snapshot is stored like any photo (the
content-addressed attachment store, an ``attachments`` row of kind ``snapshot`` with its SHA-256,
the camera and the capture time), optionally with the last seconds as an MP4 clip (kind ``clip``,
copied from the camera's packets, not re-encoded). It either opens a case with source 视频巡查 at the
camera's location (``category_id``) or goes onto an open case as 补充证据 (``case_id``), through the
case service, so the workflow, the time limit and the live feed treat it like every other move.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Annotated, Any, cast

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.core.errors import Conflict, NotFound, Unavailable, ValidationFailed
from hub.core.workflow import Role
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, body_of, params_of
from hub.web.routes.common import Id, client_ip, hub
from storage import cameras as camera_store
from storage import cases as case_store
from storage import users as user_store
from storage.db import connect, map_pg_errors
from video.service import VideoService

READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
#: Who may open a case from a camera: those whose reports may have source "video".
REPORTERS = frozenset(r for r, sources in wf.SOURCE_ROLES.items() if wf.Source.VIDEO in sources)
#: Who may take a snapshot: the reporters, and the wall's users who may add evidence to a case
#: (a dispatcher; the workflow still judges a new case's report by role).
SNAPSHOT_ROLES = REPORTERS | (READERS & wf.ACTION_ROLES[wf.Action.ADD_EVIDENCE])


class CameraRef(msgspec.Struct, forbid_unknown_fields=True):
    camera_id: Id


class ViewerRef(msgspec.Struct, forbid_unknown_fields=True):
    viewer_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,40}$")]


class LiveBody(msgspec.Struct, forbid_unknown_fields=True):
    sdp: Annotated[str, msgspec.Meta(min_length=10, max_length=64_000)]


class SnapshotBody(msgspec.Struct, forbid_unknown_fields=True):
    #: A new case of this category, or
    category_id: Id | None = None
    #: more evidence on this open case (exactly one of the two).
    case_id: Id | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    #: Also keep about the last N seconds as an MP4 clip (0: none; at most CITYHUB_VIDEO_CLIP_SECONDS).
    clip_seconds: Annotated[int, msgspec.Meta(ge=0, le=60)] = 0


def video(request: Request) -> VideoService:
    service = hub(request).services.get("video")
    if service is None:
        raise Unavailable("本进程未运行视频子系统（--roles 中没有 video）", code="no_video")
    return cast(VideoService, service)


async def thumbnail(request: Request, p: Principal) -> Response:
    cid = params_of(request, CameraRef).camera_id
    thumb = video(request).thumbnail(cid)
    if thumb is None:
        raise Conflict("暂无画面", code="no_picture")
    etag = '"' + hashlib.blake2b(thumb.jpeg, digest_size=12).hexdigest() + '"'
    headers = {
        "ETag": etag,
        "X-Captured-At": thumb.captured_at.isoformat(),
        "Cache-Control": "no-store",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(thumb.jpeg, media_type="image/jpeg", headers=headers)


async def live(request: Request, p: Principal) -> Response:
    cid = params_of(request, CameraRef).camera_id
    body = body_of(request, LiveBody)
    viewer_id, answer = await video(request).live(cid, p.user.id, body.sdp)
    return JSONResponse({"viewer_id": viewer_id, "sdp": answer})


async def stop_live(request: Request, p: Principal) -> Response:
    vid = params_of(request, ViewerRef).viewer_id
    await video(request).stop_live(vid, p.user.id)
    return JSONResponse({"viewer_id": vid})


async def _store(
    request: Request,
    p: Principal,
    data: bytes,
    kind: str,
    name: str,
    camera_id: int,
    captured: datetime,
) -> case_store.AttachmentRow:
    h = hub(request)
    blob = await asyncio.to_thread(h.attachments.put, data, kind=kind)
    async with connect(h.pool) as conn:
        with map_pg_errors():
            return await case_store.insert_attachment(
                conn, sha256=blob.sha256, media_type=blob.media_type, size=blob.size,
                kind=blob.kind, original_name=name, uploaded_by=p.user.id,
                camera_id=camera_id, captured_at=captured,
            )  # fmt: skip


def _attachment(row: case_store.AttachmentRow) -> dict[str, Any]:
    return {"id": row.id, "sha256": row.sha256, "url": f"/api/attachments/{row.id}",
            "media_type": row.media_type, "size": row.size}  # fmt: skip


async def snapshot(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, CameraRef).camera_id
    body = body_of(request, SnapshotBody)
    if (body.category_id is None) == (body.case_id is None):
        raise ValidationFailed(
            "请选择案件类别（新建案件）或填写已有案件", code="category_or_case",
            details={"fields": ["category_id", "case_id"]},
        )  # fmt: skip
    max_clip = h.settings.video_clip_seconds
    if body.clip_seconds > max_clip:
        raise ValidationFailed(
            f"视频片段最长 {max_clip:g} 秒" if max_clip else "本中心未开启视频片段",
            code="clip_too_long", details={"field": "clip_seconds", "max": max_clip},
        )  # fmt: skip
    async with connect(h.pool) as conn:
        camera = await camera_store.get_camera(conn, cid)
    if camera is None:
        raise NotFound("摄像头不存在")
    if body.case_id is None and (camera.lon is None or camera.lat is None):
        raise Conflict("摄像头没有位置，无法立案", code="no_location")
    if body.case_id is not None:  # 404 before the picture is stored, when the case is not there
        await h.cases.get(p.actor, body.case_id)
    service = video(request)
    jpeg, captured = await service.snapshot(cid)
    stamp = f"{captured.astimezone(h.cases.calendar.tz):%Y%m%d-%H%M%S}"
    rows = [await _store(request, p, jpeg, "snapshot", f"{camera.name} {stamp}.jpg", cid, captured)]
    clip_error = ""
    if body.clip_seconds:
        try:
            mp4, seconds = await service.clip(cid, body.clip_seconds)
        except (Conflict, ValidationFailed) as exc:  # no packets yet: the picture still counts
            clip_error = str(exc)
        else:
            name = f"{camera.name} {stamp} {seconds:.0f}秒.mp4"
            rows.append(await _store(request, p, mp4, "clip", name, cid, captured))
    ids = tuple(r.id for r in rows)
    if body.case_id is not None:
        note = body.description.strip() or f"视频截图：{camera.name}"
        await h.cases.add_evidence(p.actor, body.case_id, ids, note=note)
        case_id, created = body.case_id, False
    else:
        assert body.category_id is not None
        case = await h.cases.create(
            p.actor,
            NewCase(
                category_id=body.category_id,
                source=wf.Source.VIDEO.value,
                description=body.description.strip() or f"视频巡查发现：{camera.name}",
                address=camera.name,
                lon=camera.lon,
                lat=camera.lat,
                attachment_ids=ids,
            ),
        )
        case_id, created = case["id"], True
    async with connect(h.pool) as conn:
        await user_store.audit(
            conn,
            user_id=p.user.id,
            action="camera_snapshot",
            target=f"case:{case_id}",
            detail={"camera_id": cid, "sha256": rows[0].sha256, "clip": len(rows) > 1},
            ip=client_ip(request),
        )
    out: dict[str, Any] = {
        "case_id": case_id,
        "case_created": created,
        "attachment": _attachment(rows[0]),
        "clip": _attachment(rows[1]) if len(rows) > 1 else None,
        "captured_at": captured.isoformat(),
        "camera_id": cid,
    }
    if clip_error:
        out["clip_error"] = clip_error
    return JSONResponse(out, status_code=201)


TAG = "video"
ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET", "/api/cameras/{camera_id:int}/thumbnail", thumbnail, "摄像头最新缩略图（JPEG）",
        READERS, params=CameraRef, errors=(304, 409), produces=("image/jpeg",), tag=TAG,
    ),
    ApiRoute(
        "POST", "/api/cameras/{camera_id:int}/live", live, "实时视频（WebRTC，H.264 直通）",
        READERS, LiveBody, params=CameraRef, errors=(409, 422), tag=TAG,
    ),
    ApiRoute(
        "POST", "/api/live/{viewer_id}/stop", stop_live, "关闭实时视频", READERS,
        params=ViewerRef, tag=TAG,
    ),
    ApiRoute(
        "POST", "/api/cameras/{camera_id:int}/snapshot", snapshot,
        "截图立案（视频巡查），或截图加入已有案件（补充证据）；可附最近数秒视频片段",
        SNAPSHOT_ROLES, SnapshotBody, params=CameraRef, status=201, errors=(403, 404, 409, 422),
        tag=TAG,
    ),
]  # fmt: skip
