"""``/api/clips``: the clip library over HTTP (contract D), part of the registry's ``ROUTES``.

Theory of operation: reading is for admin, seat, dispatcher and viewer; uploading, synthesising and
deleting for admin, seat and dispatcher. An upload is one WAV, MP3, AAC or M4A file (the route
table documents the hub's per-request file limit for every upload, so more than one is a 422, not a
parse failure); text becomes speech with espeak-ng. Audio is decoded in a worker thread
(``telephony.warnings.clips``); the A-law and the preview go to the content-addressed store before
the row is written (an orphan blob is harmless, a row without its audio is not); every write is
audited. The preview is served as ``audio/wav`` with ``nosniff`` and a sandboxing CSP.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import msgspec
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from hub.core.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from hub.core.workflow import Role
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, Upload, body_of, params_of
from hub.web.routes.common import NO_NUL, Id, client_ip, hub
from storage import users as user_store
from storage import voice
from storage.db import connect, map_pg_errors
from telephony.warnings import clips

READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
ISSUERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER})

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Category = Annotated[str, msgspec.Meta(max_length=50, pattern=NO_NUL)]


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


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


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

CLIP_ROUTES: list[ApiRoute] = [
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
