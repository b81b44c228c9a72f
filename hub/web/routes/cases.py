"""The ``/api`` endpoints: request bodies as strict msgspec structs, handlers, and the route table.

Every handler starts from ``principal()`` (sign-in and role) and ends in the case service or a small
query; errors are ``CityhubError`` and become 4xx JSON at the edge (``hub/http.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from hub.cases.service import NewCase, attachment_json
from hub.core import workflow as wf
from hub.core.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from hub.web.auth import ALL_ROLES, SESSION_COOKIE, user_json
from hub.web.http import ApiRoute, JSONResponse, decode_json
from hub.web.routes.common import (
    STATE_VALUES,
    BigId,
    Id,
    Str200,
    Str4000,
    client_ip,
    hub,
    path_int,
    principal,
    query_int,
    query_time,
)
from hub.web.routes.reference import (
    get_component_endpoint,
    get_grid,
    list_categories,
    list_components_endpoint,
    list_departments,
    list_grids,
    lookup_grid,
)
from hub.web.routes.users import (
    ADMIN,
    CreateUserBody,
    UpdateUserBody,
    create_user,
    list_users,
    update_user,
)
from storage import cases as q
from storage import users as user_store
from storage.attachments import safe_label
from storage.db import connect, map_pg_errors
from storage.search import query_terms


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    token: bool = False


class CreateCaseBody(msgspec.Struct, forbid_unknown_fields=True):
    category_id: Id
    source: Annotated[str, msgspec.Meta(max_length=20)]
    description: Str4000 = ""
    address: Str200 = ""
    lon: float | None = None
    lat: float | None = None
    contact_name: Annotated[str, msgspec.Meta(max_length=50)] = ""
    contact_phone: Annotated[str, msgspec.Meta(max_length=30, pattern=r"^[0-9+\- ]*$")] = ""
    component_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{16}$")] | None = None
    quick: bool = False
    attachment_ids: Annotated[list[BigId], msgspec.Meta(max_length=9)] = []


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    action: Annotated[str, msgspec.Meta(max_length=40)]
    version: Annotated[int, msgspec.Meta(ge=1)]
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    department_id: Id | None = None
    extension_until: datetime | None = None
    reject_reason: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    duplicate_of: BigId | None = None
    attachment_ids: Annotated[list[BigId], msgspec.Meta(max_length=9)] = []


# -- auth ----------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    h = hub(request)
    body = await decode_json(request, LoginBody, h.settings.max_json_bytes)
    kind = "bearer" if body.token else "cookie"
    if kind == "cookie":
        h.auth.check_origin(request)
    user, token, csrf, expires = await h.auth.login(
        body.username,
        body.password,
        kind=kind,
        client=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    if kind == "bearer":
        return JSONResponse({"token": token, "expires_at": expires, "user": user_json(user)})
    resp = JSONResponse({"user": user_json(user), "csrf_token": csrf})
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=h.settings.session_ttl_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=h.settings.cookie_secure,
        path="/",
    )
    return resp


async def logout(request: Request) -> Response:
    p = await principal(request)
    await hub(request).auth.logout(p, client_ip(request))
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


async def me(request: Request) -> Response:
    p = await principal(request)
    return JSONResponse(
        {
            "user": p.public(),
            "csrf_token": p.csrf_token,
            "timezone": hub(request).settings.timezone,
        }
    )


# -- cases ---------------------------------------------------------------------------------


async def list_cases(request: Request) -> Response:
    p = await principal(request)
    h = hub(request)
    qp = request.query_params
    states = tuple(qp.getlist("state"))
    for s in states:
        if s not in STATE_VALUES:
            raise BadRequest("状态无效", code="invalid_field", details={"state": s[:40]})
    source = qp.get("source") or None
    if source is not None and source not in wf.SOURCES:
        raise BadRequest("来源无效", code="invalid_field", details={"source": source[:40]})
    grid_id = query_int(request, "grid_id")
    grid_ids: tuple[int, ...] = ()
    if grid_id is not None:
        grid_ids = tuple(sorted(h.catalog.expand_grids([grid_id]))) or (-1,)
    text = qp.get("q", "")
    if len(text) > 100:
        raise BadRequest("搜索文本过长", code="invalid_field", details={"field": "q"})
    tq = query_terms(text) if text.strip() else None
    cursor = qp.get("cursor")
    overdue = qp.get("overdue", "").lower()
    if overdue not in ("", "true", "false", "1", "0"):
        raise BadRequest("参数 overdue 须为 true 或 false", code="invalid_field")
    f = q.CaseFilter(
        states=states,
        category_id=query_int(request, "category_id"),
        grid_ids=grid_ids,
        department_id=query_int(request, "department_id"),
        source=source,
        overdue=overdue in ("true", "1"),
        since=query_time(request, "since"),
        until=query_time(request, "until"),
        text_query=tq,
        limit=(query_int(request, "limit", lo=1, hi=200) or 50) + 1,
        after=q.decode_cursor(cursor) if cursor else None,
    )
    if text.strip() and tq is None:
        return JSONResponse({"items": [], "next_cursor": None})
    rows = await h.cases.list_cases(p.actor, f)
    more = len(rows) == f.limit
    rows = rows[: f.limit - 1]
    now = h.cases.clock()
    return JSONResponse(
        {
            "items": [h.cases.case_json(r, now) for r in rows],
            "next_cursor": q.encode_cursor(rows[-1].reported_at, rows[-1].id)
            if more and rows
            else None,
        }
    )


async def get_case(request: Request) -> Response:
    p = await principal(request)
    return JSONResponse(await hub(request).cases.get(p.actor, path_int(request, "case_id")))


async def create_case(request: Request) -> Response:
    p = await principal(
        request,
        frozenset(wf.ACTION_ROLES[wf.Action.REPORT] | wf.ACTION_ROLES[wf.Action.QUICK_REPORT]),
    )
    h = hub(request)
    body = await decode_json(request, CreateCaseBody, h.settings.max_json_bytes)
    new = NewCase(
        category_id=body.category_id,
        source=body.source,
        description=body.description.strip(),
        address=body.address.strip(),
        lon=body.lon,
        lat=body.lat,
        contact_name=body.contact_name.strip(),
        contact_phone=body.contact_phone.strip(),
        component_id=body.component_id,
        quick=body.quick,
        attachment_ids=tuple(body.attachment_ids),
    )
    detail = await h.cases.create(p.actor, new)
    return JSONResponse(detail, status_code=201)


async def case_action(request: Request) -> Response:
    p = await principal(request)
    h = hub(request)
    case_id = path_int(request, "case_id")
    body = await decode_json(request, ActionBody, h.settings.max_json_bytes)
    try:
        action = wf.Action(body.action)
    except ValueError:
        raise BadRequest(
            "未知操作", code="unknown_action", details={"action": body.action}
        ) from None
    reason = None
    if body.reject_reason is not None:
        try:
            reason = wf.RejectReason(body.reject_reason)
        except ValueError:
            raise BadRequest(
                "不予立案原因无效", code="invalid_field", details={"field": "reject_reason"}
            ) from None
    if body.extension_until is not None and body.extension_until.tzinfo is None:
        raise BadRequest(
            "延期时间须带时区", code="invalid_field", details={"field": "extension_until"}
        )
    cmd = wf.Command(
        action=action,
        note=body.note.strip(),
        department_id=body.department_id,
        extension_until=body.extension_until,
        reject_reason=reason,
        duplicate_of=body.duplicate_of,
        attachment_ids=tuple(body.attachment_ids),
    )
    return JSONResponse(await h.cases.act(p.actor, case_id, body.version, cmd))


# -- attachments ---------------------------------------------------------------------------


async def upload_attachments(request: Request) -> Response:
    p = await principal(request, frozenset(ALL_ROLES - {wf.Role.VIEWER}))
    h = hub(request)
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("上传须为 multipart/form-data")
    limit = h.settings.max_upload_bytes
    max_files = h.settings.max_attachments_per_request
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit * max_files + 65536:
        raise PayloadTooLarge("上传内容过大", details={"limit": limit})
    try:
        form = await request.form(max_files=max_files, max_fields=10, max_part_size=limit)
    except (
        Exception
    ) as exc:  # multipart parse errors: starlette raises HTTPException / MultiPartException
        raise BadRequest(
            "上传内容无法解析", code="bad_multipart", details={"reason": str(exc)[:200]}
        ) from None
    try:
        kind = form.get("kind")
        if kind is not None and kind not in ("photo", "audio", "snapshot"):
            raise ValidationFailed("附件类型无效", details={"field": "kind"})
        files = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
        if not files:
            raise ValidationFailed("没有上传文件", code="no_file")
        blobs = []
        for up in files:
            data = await up.read(limit + 1)
            blob = await asyncio.to_thread(
                h.attachments.put, data, kind=kind if isinstance(kind, str) else None
            )
            blobs.append((blob, safe_label(up.filename)))
    finally:
        await form.close()
    out = []
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                for blob, label in blobs:
                    row = await q.insert_attachment(
                        conn,
                        sha256=blob.sha256,
                        media_type=blob.media_type,
                        size=blob.size,
                        kind=blob.kind,
                        original_name=label,
                        uploaded_by=p.user.id,
                    )
                    out.append(row)
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="upload",
                    target="attachments:" + ",".join(str(r.id) for r in out),
                    ip=client_ip(request),
                )
    return JSONResponse({"items": [attachment_json(r) for r in out]}, status_code=201)


async def get_attachment(request: Request) -> Response:
    p = await principal(request)
    h = hub(request)
    aid = path_int(request, "attachment_id")
    async with connect(h.pool) as conn:
        row = await q.get_attachment(conn, aid)
        if row is None:
            raise NotFound("附件不存在")
        visible = row.uploaded_by == p.user.id
        if not visible and row.case_id is not None:
            case = await q.get_case(conn, row.case_id)
            visible = case is not None and h.cases.can_see(p.actor, case)
    if not visible:
        raise NotFound("附件不存在")
    data = await asyncio.to_thread(h.attachments.open, row.sha256)
    return Response(
        data,
        media_type=row.media_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400, immutable",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


# -- live updates --------------------------------------------------------------------------


async def live_info(request: Request) -> Response:
    p = await principal(request)
    h = hub(request)
    if h.live is None or h.fanout is None:
        raise NotFound("实时推送未启用", code="live_disabled")
    from hub.core import live

    viewer = h.live.viewer_for(p)
    first = [g.id for g in h.catalog.grids.values() if g.level == 1]
    host = (request.url.hostname or h.settings.host).strip("[]")
    if ":" in host:
        host = f"[{host}]"
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return JSONResponse(
        {
            "url": f"{scheme}://{host}:{h.live.bound_port}/ws",
            "epoch": h.fanout.epoch,
            "channels": live.default_channels(viewer, first),
            "state_channels": [
                c
                for c in live.STATE_CHANNELS
                if live.may_subscribe(viewer, live.ChannelName.of_state(c))
            ],
            "heartbeat": h.settings.ws_heartbeat,
        }
    )


async def live_ticket(request: Request) -> Response:
    p = await principal(request)
    h = hub(request)
    ticket = secrets.token_urlsafe(24)
    expires = datetime.now(UTC) + timedelta(seconds=60)
    async with connect(h.pool) as conn:
        await conn.execute("DELETE FROM live_tickets WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO live_tickets (ticket_hash, user_id, expires_at) VALUES ($1, $2, $3)",
            hashlib.sha256(ticket.encode()).digest(),
            p.user.id,
            expires,
        )
    return JSONResponse({"ticket": ticket, "expires_at": expires}, status_code=201)


# -- the route table ----------------------------------------------------------------------

CASE_LIST_QUERY = (
    ("state", "string", "状态，可重复"),
    ("category_id", "integer", ""),
    ("grid_id", "integer", "一级网格包含其下二级网格"),
    ("department_id", "integer", ""),
    ("source", "string", "supervisor|hotline|video|sensor|public"),
    ("overdue", "boolean", "只看超期"),
    ("since", "string", "上报时间起 (ISO 8601)"),
    ("until", "string", "上报时间止 (ISO 8601)"),
    ("q", "string", "案件号、描述、地址中的文字"),
    ("limit", "integer", "1–200，默认 50"),
    ("cursor", "string", "上一页的 next_cursor"),
)

REPORTERS = frozenset(wf.ACTION_ROLES[wf.Action.REPORT] | wf.ACTION_ROLES[wf.Action.QUICK_REPORT])

API: list[ApiRoute] = [
    ApiRoute(
        "POST",
        "/api/auth/login",
        login,
        "登录（会话 Cookie 或 Bearer 令牌）",
        None,
        LoginBody,
        tag="auth",
    ),
    ApiRoute("POST", "/api/auth/logout", logout, "退出登录", ALL_ROLES, tag="auth"),
    ApiRoute("GET", "/api/auth/me", me, "当前用户", ALL_ROLES, tag="auth"),
    ApiRoute(
        "GET",
        "/api/cases",
        list_cases,
        "案件列表（筛选、键集分页）",
        ALL_ROLES,
        query=CASE_LIST_QUERY,
    ),
    ApiRoute("POST", "/api/cases", create_case, "上报案件", REPORTERS, CreateCaseBody),
    ApiRoute("GET", "/api/cases/{case_id:int}", get_case, "案件详情与流转记录", ALL_ROLES),
    ApiRoute(
        "POST",
        "/api/cases/{case_id:int}/actions",
        case_action,
        "案件流转操作",
        ALL_ROLES,
        ActionBody,
    ),
    ApiRoute(
        "POST",
        "/api/attachments",
        upload_attachments,
        "上传附件（multipart）",
        ALL_ROLES - {wf.Role.VIEWER},
        tag="attachments",
    ),
    ApiRoute(
        "GET",
        "/api/attachments/{attachment_id:int}",
        get_attachment,
        "下载附件",
        ALL_ROLES,
        tag="attachments",
    ),
    ApiRoute("GET", "/api/categories", list_categories, "案件类别", ALL_ROLES, tag="reference"),
    ApiRoute("GET", "/api/departments", list_departments, "专业部门", ALL_ROLES, tag="reference"),
    ApiRoute(
        "GET",
        "/api/grids",
        list_grids,
        "网格",
        ALL_ROLES,
        query=(
            ("level", "integer", "1 或 2"),
            ("parent_id", "integer", ""),
            ("with_boundary", "boolean", "附带边界坐标"),
        ),
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/grids/lookup",
        lookup_grid,
        "坐标所在网格",
        ALL_ROLES,
        query=(("lon", "number", "经度 WGS84"), ("lat", "number", "纬度 WGS84")),
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/grids/{grid_id:int}",
        get_grid,
        "网格详情（含边界）",
        ALL_ROLES,
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/components",
        list_components_endpoint,
        "部件（按网格、类别）",
        ALL_ROLES,
        query=(
            ("grid_id", "integer", ""),
            ("category_id", "integer", ""),
            ("after", "string", "上一页最后的部件编码"),
            ("limit", "integer", "1–500"),
        ),
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/components/{component_id}",
        get_component_endpoint,
        "部件详情（16 位部件编码）",
        ALL_ROLES,
        tag="reference",
    ),
    ApiRoute("GET", "/api/live", live_info, "实时推送地址与可订阅频道", ALL_ROLES, tag="live"),
    ApiRoute(
        "POST",
        "/api/live/ticket",
        live_ticket,
        "大屏一次性连接票据（60 秒）",
        ALL_ROLES,
        tag="live",
    ),
    ApiRoute("GET", "/api/users", list_users, "用户列表", ADMIN, tag="users"),
    ApiRoute("POST", "/api/users", create_user, "新建用户", ADMIN, CreateUserBody, tag="users"),
    ApiRoute(
        "PATCH",
        "/api/users/{user_id:int}",
        update_user,
        "修改用户",
        ADMIN,
        UpdateUserBody,
        tag="users",
    ),
]
