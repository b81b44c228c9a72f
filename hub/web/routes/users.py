"""``/api/users``: account management for admins (every change audited)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.core import passwords
from hub.core import workflow as wf
from hub.core.errors import (
    Forbidden,
    NotFound,
    ValidationFailed,
)
from hub.state import HubState
from hub.web.auth import Principal, user_json
from hub.web.http import JSONResponse, body_of, params_of
from hub.web.routes.common import (
    NO_NUL,
    Id,
    client_ip,
    hub,
)
from storage import users as user_store
from storage.db import connect, map_pg_errors

DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=NO_NUL)]
Password = Annotated[
    str,
    msgspec.Meta(
        min_length=passwords.MIN_LENGTH,
        max_length=passwords.MAX_LENGTH,
        description="须同时包含字母和数字或符号（否则 422 weak_password）",
    ),
]


class CreateUserBody(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{2,64}$")]
    display_name: DisplayName
    password: Password
    role: wf.Role
    department_id: Annotated[Id, msgspec.Meta(description="部门人员必填，其他角色不填")] | None = (
        None
    )
    grid_ids: Annotated[
        list[Id], msgspec.Meta(max_length=500, description="只有监督员可分配网格")
    ] = []


class UpdateUserBody(msgspec.Struct, forbid_unknown_fields=True):
    display_name: DisplayName | None = None
    password: Password | None = None
    active: bool | None = None
    grid_ids: Annotated[list[Id], msgspec.Meta(max_length=500)] | None = None


class UserRef(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id


# -- users (admin) -------------------------------------------------------------------------

ADMIN = frozenset({wf.Role.ADMIN})


async def list_users(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        users = await user_store.list_users(conn)
    return JSONResponse({"items": [user_json(u) for u in users]})


def check_user_shape(
    h: HubState, r: wf.Role, department_id: int | None, grid_ids: list[int]
) -> None:
    if (r is wf.Role.DEPARTMENT) != (department_id is not None):
        raise ValidationFailed("只有部门人员须指定部门", details={"field": "department_id"})
    if department_id is not None and department_id not in h.catalog.departments:
        raise ValidationFailed("部门不存在", code="unknown_department")
    if grid_ids and r is not wf.Role.SUPERVISOR:
        raise ValidationFailed("只有监督员可分配网格", details={"field": "grid_ids"})
    unknown = [g for g in grid_ids if g not in h.catalog.grids]
    if unknown:
        raise ValidationFailed(
            "网格不存在", code="unknown_grid", details={"grid_ids": unknown[:20]}
        )


async def create_user(request: Request, p: Principal) -> Response:
    h = hub(request)
    body = body_of(request, CreateUserBody)
    check_user_shape(h, body.role, body.department_id, body.grid_ids)
    hashed = await asyncio.to_thread(passwords.hash_password, body.password)
    async with connect(h.pool) as conn:
        with map_pg_errors():
            async with conn.transaction():
                uid = await user_store.insert_user(
                    conn,
                    username=body.username,
                    display_name=body.display_name,
                    password_hash=hashed,
                    role=body.role.value,
                    department_id=body.department_id,
                    grid_ids=sorted(set(body.grid_ids)),
                )
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="user_create",
                    target=f"user:{uid}",
                    detail={"username": body.username, "role": body.role.value},
                    ip=client_ip(request),
                )
        user = await user_store.get_user(conn, uid)
    assert user is not None
    return JSONResponse(user_json(user), status_code=201)


async def update_user(request: Request, p: Principal) -> Response:
    h = hub(request)
    uid = params_of(request, UserRef).user_id
    body = body_of(request, UpdateUserBody)
    hashed = None
    if body.password is not None:
        hashed = await asyncio.to_thread(passwords.hash_password, body.password)
    async with connect(h.pool) as conn:
        current = await user_store.get_user(conn, uid)
        if current is None:
            raise NotFound("用户不存在")
        if body.grid_ids is not None:
            check_user_shape(h, wf.Role(current.role), current.department_id, body.grid_ids)
        if uid == p.user.id and body.active is False:
            raise Forbidden("不能停用自己的账户", code="self_disable")
        with map_pg_errors():
            async with conn.transaction():
                await user_store.update_user(
                    conn,
                    uid,
                    display_name=body.display_name,
                    password_hash=hashed,
                    active=body.active,
                    grid_ids=None if body.grid_ids is None else sorted(set(body.grid_ids)),
                )
                changed = [
                    k
                    for k in ("display_name", "password", "active", "grid_ids")
                    if getattr(body, k) is not None
                ]
                await user_store.audit(
                    conn,
                    user_id=p.user.id,
                    action="user_update",
                    target=f"user:{uid}",
                    detail={"changed": changed},
                    ip=client_ip(request),
                )
        user = await user_store.get_user(conn, uid)
    assert user is not None
    return JSONResponse(user_json(user))
