"""Shared pieces of the ``/api`` endpoints: value types and the request helpers every handler
starts from (sign-in and role, path and query parameters)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from starlette.requests import Request

from hub.core import workflow as wf
from hub.core.errors import (
    BadRequest,
    NotFound,
    ValidationFailed,
)
from hub.state import HubState
from hub.web.auth import ALL_ROLES, Principal, require
from hub.web.forwarded import client_address, trusted_networks

Str200 = Annotated[str, msgspec.Meta(max_length=200)]
Str4000 = Annotated[str, msgspec.Meta(max_length=4000)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
BigId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


def hub(request: Request) -> HubState:
    state: HubState = request.app.state.hub
    return state


def client_ip(request: Request) -> str:
    """The client's address, for the login throttle and audit rows: the direct peer, or when that
    is a trusted proxy (``CITYHUB_TRUSTED_PROXIES``) what it says in ``X-Forwarded-For``
    (``hub.web.forwarded``)."""
    peer = request.client.host if request.client else ""
    trusted = trusted_networks(hub(request).settings.trusted_proxies)
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)


async def principal(request: Request, roles: frozenset[wf.Role] = ALL_ROLES) -> Principal:
    p = await hub(request).auth.principal(request, method=request.method)
    require(p, roles)
    return p


def path_int(request: Request, name: str) -> int:
    raw = request.path_params[name]
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound("请求的资源不存在") from None
    if not 1 <= value <= 2**63 - 1:
        raise NotFound("请求的资源不存在")
    return value


def query_int(request: Request, name: str, *, lo: int = 1, hi: int = 2**31 - 1) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"参数 {name} 须为整数", code="invalid_field", details={"field": name}
        ) from None
    if not lo <= value <= hi:
        raise BadRequest(f"参数 {name} 超出范围", code="invalid_field", details={"field": name})
    return value


def query_float(request: Request, name: str) -> float:
    raw = request.query_params.get(name)
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationFailed(f"参数 {name} 须为数值", code="bad_coordinates") from None


def query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(
            f"参数 {name} 须为 ISO 8601 时间", code="invalid_field", details={"field": name}
        ) from None
    if value.tzinfo is None:  # a local time of the city
        value = value.replace(tzinfo=hub(request).cases.calendar.tz)
    return value


STATE_VALUES = frozenset(s.value for s in wf.CaseState)
