"""The wall's media API: thumbnails, live tiles (WebRTC), and a snapshot as a new case's evidence.

Handlers are thin: they find the process's ``VideoService`` (``hub.services["video"]``; 503 where
the video role does not run), call it and serialise. A snapshot is stored like any photo (the
content-addressed attachment store, an ``attachments`` row of kind ``snapshot`` with its SHA-256)
and opens a case with source 视频巡查 at the camera's location, through the case service, so the
workflow, the time limit and the live feed treat it like every other report.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any, cast

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.core.errors import Conflict, NotFound, Unavailable
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


class CameraRef(msgspec.Struct, forbid_unknown_fields=True):
    camera_id: Id


class ViewerRef(msgspec.Struct, forbid_unknown_fields=True):
    viewer_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,40}$")]


class LiveBody(msgspec.Struct, forbid_unknown_fields=True):
    sdp: Annotated[str, msgspec.Meta(min_length=10, max_length=64_000)]


class SnapshotBody(msgspec.Struct, forbid_unknown_fields=True):
    category_id: Id
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


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


async def snapshot(request: Request, p: Principal) -> Response:
    h = hub(request)
    cid = params_of(request, CameraRef).camera_id
    body = body_of(request, SnapshotBody)
    async with connect(h.pool) as conn:
        camera = await camera_store.get_camera(conn, cid)
    if camera is None:
        raise NotFound("摄像头不存在")
    if camera.lon is None or camera.lat is None:
        raise Conflict("摄像头没有位置，无法立案", code="no_location")
    jpeg, captured = await video(request).snapshot(cid)
    blob = await asyncio.to_thread(h.attachments.put, jpeg, kind="snapshot")
    async with connect(h.pool) as conn:
        with map_pg_errors():
            row = await case_store.insert_attachment(
                conn,
                sha256=blob.sha256,
                media_type=blob.media_type,
                size=blob.size,
                kind=blob.kind,
                original_name=f"{camera.name} {captured:%Y%m%d-%H%M%S}.jpg",
                uploaded_by=p.user.id,
            )
    description = body.description.strip() or f"视频巡查发现：{camera.name}"
    case = await h.cases.create(
        p.actor,
        NewCase(
            category_id=body.category_id,
            source=wf.Source.VIDEO.value,
            description=description,
            address=camera.name,
            lon=camera.lon,
            lat=camera.lat,
            attachment_ids=(row.id,),
        ),
    )
    async with connect(h.pool) as conn:
        await user_store.audit(
            conn,
            user_id=p.user.id,
            action="camera_snapshot",
            target=f"case:{case['id']}",
            detail={"camera_id": cid, "sha256": blob.sha256},
            ip=client_ip(request),
        )
    out: dict[str, Any] = {
        "case_id": case["id"],
        "case_created": True,
        "attachment": {"id": row.id, "sha256": blob.sha256, "url": f"/api/attachments/{row.id}"},
        "captured_at": captured.isoformat(),
        "camera_id": cid,
    }
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
        "POST", "/api/cameras/{camera_id:int}/snapshot", snapshot, "截图立案（视频巡查）",
        REPORTERS, SnapshotBody, params=CameraRef, status=201, errors=(409, 422), tag=TAG,
    ),
]  # fmt: skip
