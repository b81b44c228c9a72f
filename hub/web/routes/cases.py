"""The ``/api`` endpoints: parameters and bodies as strict msgspec structs, handlers, and the route
table (``API``).

The route table is the one declaration of each operation: its roles, parameters, body and statuses.
The dispatcher (``hub.web.http.build_routes``) signs the caller in, enforces the roles and decodes
parameters and body before a handler runs, and ``/openapi.json`` is built from the same table.
Handlers keep the finer rules (department and grid scope, the workflow) and end in the case service
or a small query; errors become 4xx JSON at the edge (``hub/web/http.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from hub.cases.render import attachment_json
from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.core.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from hub.web.auth import ALL_ROLES, SESSION_COOKIE, Principal, user_json
from hub.web.http import ApiRoute, JSONResponse, Upload, body_of, params_of
from hub.web.routes.alarms import ALARM_ROUTES
from hub.web.routes.common import (
    NO_NUL,
    BigId,
    Id,
    QueryTime,
    Str200,
    Str4000,
    city_time,
    client_ip,
    hub,
)
from hub.web.routes.markers import MARKER_ROUTES
from hub.web.routes.queues import ROUTES as QUEUE_ROUTES
from hub.web.routes.reference import (
    ComponentListQuery,
    ComponentRef,
    GridListQuery,
    GridRef,
    Point,
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
    UserRef,
    create_user,
    list_users,
    update_user,
)
from storage import cases as q
from storage import live as live_store
from storage import users as user_store
from storage.attachments import ACCEPTED, safe_label
from storage.db import connect, map_pg_errors
from storage.errors import InvalidRequest
from storage.search import query_terms

Lon = Annotated[float, msgspec.Meta(ge=-180, le=180, description="经度 WGS84")]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90, description="纬度 WGS84")]
AttachmentIds = Annotated[
    list[BigId],
    msgspec.Meta(max_length=9, description="先上传附件（POST /api/attachments）得到的编号"),
]


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    token: bool = False


class CreateCaseBody(msgspec.Struct, forbid_unknown_fields=True):
    category_id: Id
    source: Annotated[wf.Source, msgspec.Meta(description="各角色可用的来源不同（否则 403）")]
    description: Str4000 = ""
    address: Str200 = ""
    lon: Annotated[Lon, msgspec.Meta(description="经度 WGS84，与 lat 同时提供")] | None = None
    lat: Annotated[Lat, msgspec.Meta(description="纬度 WGS84，与 lon 同时提供")] | None = None
    contact_name: Annotated[str, msgspec.Meta(max_length=50, pattern=NO_NUL)] = ""
    contact_phone: Annotated[str, msgspec.Meta(max_length=30, pattern=r"^[0-9+\- ]*$")] = ""
    component_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{16}$")] | None = None
    quick: bool = False
    attachment_ids: AttachmentIds = []
    urgent: Annotated[bool, msgspec.Meta(description="紧急案件（按紧急时限计时）")] = False


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    action: wf.Action
    version: Annotated[
        int, msgspec.Meta(ge=1, le=2**31 - 1, description="您看到的案件版本（已变化则 409）")
    ]
    note: Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)] = ""
    department_id: Annotated[Id, msgspec.Meta(description="派遣的部门")] | None = None
    extension_until: (
        Annotated[datetime, msgspec.Meta(tz=True, description="申请延期到（带时区）")] | None
    ) = None
    reject_reason: wf.RejectReason | None = None
    duplicate_of: Annotated[BigId, msgspec.Meta(description="重复的原案件")] | None = None
    attachment_ids: AttachmentIds = []
    urgent: (
        Annotated[bool, msgspec.Meta(description="立案、派遣时标记（true）或取消（false）紧急")]
        | None
    ) = None


class CaseListQuery(msgspec.Struct, forbid_unknown_fields=True):
    state: Annotated[
        list[wf.CaseState], msgspec.Meta(max_length=len(wf.CaseState), description="状态，可重复")
    ] = []
    category_id: Id | None = None
    grid_id: Annotated[Id, msgspec.Meta(description="一级网格包含其下二级网格")] | None = None
    department_id: Id | None = None
    source: wf.Source | None = None
    overdue: Annotated[bool, msgspec.Meta(description="只看超期")] = False
    since: Annotated[QueryTime, msgspec.Meta(description="上报时间起")] | None = None
    until: Annotated[QueryTime, msgspec.Meta(description="上报时间止")] | None = None
    q: Annotated[
        str, msgspec.Meta(max_length=100, pattern=NO_NUL, description="案件号、描述、地址中的文字")
    ] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    cursor: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^[A-Za-z0-9_-]{1,200}$",
                description="上一页的 next_cursor（不是本服务给出的游标：422 bad_cursor）",
            ),
        ]
        | None
    ) = None


class CaseRef(msgspec.Struct, forbid_unknown_fields=True):
    case_id: BigId


class AttachmentRef(msgspec.Struct, forbid_unknown_fields=True):
    attachment_id: BigId


class UploadForm(msgspec.Struct, forbid_unknown_fields=True):
    """The plain fields of an attachment upload (besides its ``file`` parts)."""

    kind: (
        Annotated[
            Literal["photo", "audio", "snapshot"],
            msgspec.Meta(description="photo / snapshot 须为图片，audio 须为音频（否则 422）"),
        ]
        | None
    ) = None


# -- auth ----------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    h = hub(request)
    body = body_of(request, LoginBody)
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
        max_age=h.settings.session_max_days * 86400,  # the server lapses it when idle
        httponly=True,
        samesite="lax",
        secure=h.settings.cookie_secure or h.settings.tls,
        path="/",
    )
    return resp


async def logout(request: Request, p: Principal) -> Response:
    await hub(request).auth.logout(p, client_ip(request))
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


async def me(request: Request, p: Principal) -> Response:
    return JSONResponse(
        {
            "user": p.public(),
            "csrf_token": p.csrf_token,
            "timezone": hub(request).settings.timezone,
            "map": {
                "tiles": hub(request).settings.map_tiles or None,
                "attribution": hub(request).settings.map_attribution,
            },
            "uploads": {
                "max_bytes": hub(request).settings.max_upload_bytes,
                "max_files": hub(request).settings.max_attachments_per_request,
                "photo_types": [t for t, k in ACCEPTED.items() if k == "photo"],
            },
        }
    )


# -- cases ---------------------------------------------------------------------------------


def _after(cursor: str | None) -> tuple[datetime, int] | None:
    """The position a ``next_cursor`` names. The parameter's shape is documented; a well-formed
    string that is not a cursor this hub issued is a 422 (no schema can say which strings are)."""
    if cursor is None:
        return None
    try:
        at, case_id = q.decode_cursor(cursor)
        at.astimezone(UTC)
    except (InvalidRequest, OverflowError):
        raise ValidationFailed(
            "分页游标无效", code="bad_cursor", details={"cursor": cursor[:50]}
        ) from None
    if not 1 <= case_id <= 2**63 - 1:
        raise ValidationFailed("分页游标无效", code="bad_cursor", details={"cursor": cursor[:50]})
    return at, case_id


async def list_cases(request: Request, p: Principal) -> Response:
    h = hub(request)
    args = params_of(request, CaseListQuery)
    grid_ids: tuple[int, ...] = ()
    if args.grid_id is not None:
        grid_ids = tuple(sorted(h.catalog.expand_grids([args.grid_id]))) or (-1,)
    text = args.q
    tq = query_terms(text) if text.strip() else None
    f = q.CaseFilter(
        states=tuple(s.value for s in args.state),
        category_id=args.category_id,
        grid_ids=grid_ids,
        department_id=args.department_id,
        source=None if args.source is None else args.source.value,
        overdue=args.overdue,
        since=city_time(request, args.since),
        until=city_time(request, args.until),
        text_query=tq,
        limit=args.limit + 1,
        after=_after(args.cursor),
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


async def get_case(request: Request, p: Principal) -> Response:
    case_id = params_of(request, CaseRef).case_id
    return JSONResponse(await hub(request).cases.get(p.actor, case_id))


async def create_case(request: Request, p: Principal) -> Response:
    h = hub(request)
    body = body_of(request, CreateCaseBody)
    new = NewCase(
        category_id=body.category_id,
        source=body.source.value,
        description=body.description.strip(),
        address=body.address.strip(),
        lon=body.lon,
        lat=body.lat,
        contact_name=body.contact_name.strip(),
        contact_phone=body.contact_phone.strip(),
        component_id=body.component_id,
        quick=body.quick,
        attachment_ids=tuple(body.attachment_ids),
        urgent=body.urgent,
    )
    detail = await h.cases.create(p.actor, new)
    return JSONResponse(detail, status_code=201)


async def case_action(request: Request, p: Principal) -> Response:
    h = hub(request)
    case_id = params_of(request, CaseRef).case_id
    body = body_of(request, ActionBody)
    until = body.extension_until
    if until is not None:
        try:
            until = until.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59-23:00: no such time in UTC
            raise ValidationFailed(
                "延期时间超出范围", details={"field": "extension_until"}
            ) from None
    cmd = wf.Command(
        action=body.action,
        note=body.note.strip(),
        department_id=body.department_id,
        extension_until=until,
        reject_reason=body.reject_reason,
        duplicate_of=body.duplicate_of,
        attachment_ids=tuple(body.attachment_ids),
        urgent=body.urgent,
    )
    return JSONResponse(await h.cases.act(p.actor, case_id, body.version, cmd))


# -- attachments ---------------------------------------------------------------------------


def _upload_form(form: FormData) -> UploadForm:
    """The plain fields of an upload, checked against ``UploadForm`` (400 like a JSON body)."""
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key == "file":
            continue
        if isinstance(value, UploadFile) or key in fields:
            raise BadRequest("上传字段无效", code="invalid_field", details={"field": key[:40]})
        fields[key] = value
    try:
        return msgspec.convert(fields, UploadForm)
    except msgspec.ValidationError as exc:
        text = str(exc)
        code = "unknown_field" if "unknown field" in text else "invalid_field"
        raise BadRequest("上传字段无效", code=code, details={"reason": text}) from None


async def upload_attachments(request: Request, p: Principal) -> Response:
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
        kind = _upload_form(form).kind
        files = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
        if not files:
            raise BadRequest("没有上传文件", code="no_file", details={"field": "file"})
        blobs = []
        for up in files:
            data = await up.read(limit + 1)
            blob = await asyncio.to_thread(h.attachments.put, data, kind=kind)
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


async def get_attachment(request: Request, p: Principal) -> Response:
    h = hub(request)
    aid = params_of(request, AttachmentRef).attachment_id
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


async def live_info(request: Request, p: Principal) -> Response:
    h = hub(request)
    if h.live is None or h.fanout is None:
        raise NotFound("实时推送未启用", code="live_disabled")
    from hub.core import live

    viewer = h.live.viewer_for(p)
    first = [g.id for g in h.catalog.grids.values() if g.level == 1]
    host = (request.url.hostname or h.settings.host).strip("[]")
    if ":" in host:
        host = f"[{host}]"
    scheme = h.live.scheme
    return JSONResponse(
        {
            "url": f"{scheme}://{host}:{h.live.bound_port}/ws",
            "epoch": h.fanout.epoch,
            "channels": live.default_channels(viewer, first),
            "state_channels": [
                c
                for c in h.fanout.state_channels
                if live.may_subscribe(viewer, live.ChannelName.of_state(c), h.fanout.state_channels)
            ],
            "heartbeat": h.settings.ws_heartbeat,
        }
    )


async def live_ticket(request: Request, p: Principal) -> Response:
    h = hub(request)
    expires = datetime.now(UTC) + timedelta(seconds=60)
    async with connect(h.pool) as conn:
        ticket = await live_store.create_ticket(conn, p.user.id, expires)
    return JSONResponse({"ticket": ticket, "expires_at": expires}, status_code=201)


# -- the route table ----------------------------------------------------------------------

REPORTERS = frozenset(wf.ACTION_ROLES[wf.Action.REPORT] | wf.ACTION_ROLES[wf.Action.QUICK_REPORT])
UPLOADERS = frozenset(ALL_ROLES - {wf.Role.VIEWER})
ACTIONS_DOC = (
    "成功时答复案件详情（同 GET /api/cases/{case_id}）；若操作使案件离开操作者的可见范围"
    '（如部门回退），答复 {"visible": false, "id", "version", "state", "state_label",'
    ' "message"}（message 如“已退回指挥中心”），不是案件。\n\n'
    "各操作可由哪些角色执行（其他角色 403 role_forbidden）：\n"
) + "\n".join(
    f"- {a.value}（{wf.label(a)}）: {', '.join(sorted(r.value for r in wf.ACTION_ROLES[a]))}"
    for a in wf.Action
    if a not in wf.INITIAL
)

API: list[ApiRoute] = [
    ApiRoute(
        "POST",
        "/api/auth/login",
        login,
        "登录（会话 Cookie 或 Bearer 令牌）",
        None,
        LoginBody,
        errors=(401, 403, 429),
        tag="auth",
    ),
    ApiRoute("POST", "/api/auth/logout", logout, "退出登录", ALL_ROLES, status=204, tag="auth"),
    ApiRoute("GET", "/api/auth/me", me, "当前用户", ALL_ROLES, tag="auth"),
    ApiRoute(
        "GET",
        "/api/cases",
        list_cases,
        "案件列表（筛选、键集分页）",
        ALL_ROLES,
        params=CaseListQuery,
        errors=(422,),
    ),
    ApiRoute(
        "POST",
        "/api/cases",
        create_case,
        "上报案件",
        REPORTERS,
        CreateCaseBody,
        status=201,
        errors=(422,),
    ),
    ApiRoute(
        "GET",
        "/api/cases/{case_id:int}",
        get_case,
        "案件详情与流转记录",
        ALL_ROLES,
        params=CaseRef,
    ),
    ApiRoute(
        "POST",
        "/api/cases/{case_id:int}/actions",
        case_action,
        "案件流转操作",
        ALL_ROLES,
        ActionBody,
        params=CaseRef,
        errors=(409, 422),
        description=ACTIONS_DOC,
    ),
    ApiRoute(
        "POST",
        "/api/attachments",
        upload_attachments,
        "上传附件（multipart）",
        UPLOADERS,
        upload=Upload(UploadForm, media_types=tuple(ACCEPTED)),
        status=201,
        errors=(422,),
        tag="attachments",
    ),
    ApiRoute(
        "GET",
        "/api/attachments/{attachment_id:int}",
        get_attachment,
        "下载附件",
        ALL_ROLES,
        params=AttachmentRef,
        produces=tuple(ACCEPTED),
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
        params=GridListQuery,
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/grids/lookup",
        lookup_grid,
        "坐标所在网格（不在任何网格内：404 outside_city）",
        ALL_ROLES,
        params=Point,
        errors=(404,),
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/grids/{grid_id:int}",
        get_grid,
        "网格详情（含边界）",
        ALL_ROLES,
        params=GridRef,
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/components",
        list_components_endpoint,
        "部件（按网格、类别）",
        ALL_ROLES,
        params=ComponentListQuery,
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/components/{component_id}",
        get_component_endpoint,
        "部件详情（16 位部件编码）",
        ALL_ROLES,
        params=ComponentRef,
        tag="reference",
    ),
    ApiRoute(
        "GET",
        "/api/live",
        live_info,
        "实时推送地址与可订阅频道（未启用：404 live_disabled）",
        ALL_ROLES,
        errors=(404,),
        tag="live",
    ),
    ApiRoute(
        "POST",
        "/api/live/ticket",
        live_ticket,
        "大屏一次性连接票据（60 秒）",
        ALL_ROLES,
        status=201,
        tag="live",
    ),
    ApiRoute("GET", "/api/users", list_users, "用户列表", ADMIN, tag="users"),
    ApiRoute(
        "POST",
        "/api/users",
        create_user,
        "新建用户",
        ADMIN,
        CreateUserBody,
        status=201,
        errors=(409, 422),
        tag="users",
    ),
    ApiRoute(
        "PATCH",
        "/api/users/{user_id:int}",
        update_user,
        "修改用户（不能停用自己：403 self_disable）",
        ADMIN,
        UpdateUserBody,
        params=UserRef,
        errors=(422,),
        tag="users",
    ),
    *QUEUE_ROUTES,
    *ALARM_ROUTES,
    *MARKER_ROUTES,
]
