"""The HTTP edge: JSON responses, bounded body reading, strict decoding, error translation, routes
with their roles, and the OpenAPI document built from the same route table.

Nothing a client sends can produce a stack trace: ``CityhubError`` becomes its 4xx JSON body,
decoding errors become 400, and anything unexpected becomes a logged 500 JSON body with a
reference (``ErrorMiddleware``).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import msgspec
import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.core.errors import (
    BadRequest,
    CityhubError,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from hub.core.workflow import Role
from storage.db import DB_OUTAGE_ERRORS

log = logging.getLogger("cityhub.http")

T = TypeVar("T")


def _default(obj: Any) -> Any:
    if isinstance(obj, frozenset | set | tuple):
        return list(obj)
    raise TypeError


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


def error_response(exc: CityhubError) -> JSONResponse:
    headers = {}
    retry = getattr(exc, "retry_after", None)
    if retry:
        headers["Retry-After"] = str(retry)
    return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)


_HTTP_CODES = {
    404: ("not_found", "请求的资源不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
}


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    body = {"error": {"code": code, "message": message, "details": None}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def cityhub_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CityhubError)
    if exc.status >= 500:
        log.warning("%s %s -> %s %s", request.method, request.url.path, exc.status, exc.code)
    return error_response(exc)


class ErrorMiddleware:
    """Outermost middleware: an unexpected exception becomes a 500 JSON body with a reference that
    is also in the log (the traceback goes to the log, never to the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def _send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except CityhubError as exc:
            if started:
                raise
            await error_response(exc)(scope, receive, send)
        except DB_OUTAGE_ERRORS as exc:
            log.warning(
                "database unavailable during %s %s: %r", scope.get("method"), scope.get("path"), exc
            )
            if started:
                raise
            outage = Unavailable(
                "数据库暂时不可用，请稍后重试", details={"reason": type(exc).__name__}
            )
            await error_response(outage)(scope, receive, send)
        except Exception:
            ref = secrets.token_hex(6)
            log.exception(
                "unhandled error ref=%s %s %s", ref, scope.get("method"), scope.get("path")
            )
            if started:
                raise
            body = {
                "error": {
                    "code": "internal_error",
                    "message": "服务器内部错误，请联系管理员",
                    "details": {"ref": ref},
                }
            }
            await JSONResponse(body, status_code=500)(scope, receive, send)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"请求体超过 {limit} 字节", details={"limit": limit})
        except ValueError:
            raise BadRequest("Content-Length 无效") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"请求体超过 {limit} 字节", details={"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def _msgspec_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> BadRequest:
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):  # ValidationError subclasses DecodeError
        return BadRequest("请求体不是有效的 JSON", code="malformed_json", details={"reason": text})
    if "unknown field" in text:
        return BadRequest("请求包含未知字段", code="unknown_field", details={"reason": text})
    return BadRequest("请求字段类型或取值无效", code="invalid_field", details={"reason": text})


async def decode_json(request: Request, typ: type[T], limit: int) -> T:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType(
            "请求体须为 application/json", details={"content_type": ctype[:100]}
        )
    body = await read_body(request, limit)
    return decode_bytes(body, typ)


def decode_bytes(body: bytes, typ: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=typ, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _msgspec_error(exc) from None


# ---------------------------------------------------------------------------------------------
# Route table with roles, and the OpenAPI document built from it.

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    roles: Collection[Role] | None  # None: no sign-in needed
    body: type | None = None
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    tag: str = "cases"


def build_routes(api: list[ApiRoute]) -> list[Route]:
    by_path: dict[str, dict[str, Endpoint]] = {}
    for r in api:
        by_path.setdefault(r.path, {})[r.method] = r.endpoint
    routes: list[Route] = []
    for path, methods in by_path.items():

        def make(methods: dict[str, Endpoint]) -> Endpoint:
            async def dispatch(request: Request) -> Response:
                return await methods[request.method if request.method != "HEAD" else "GET"](request)

            return dispatch

        routes.append(Route(path, make(methods), methods=list(methods)))
    return routes


def openapi(api: list[ApiRoute], version: str) -> dict[str, Any]:
    bodies = [r.body for r in api if r.body is not None]
    schemas, components = msgspec.json.schema_components(
        bodies, ref_template="#/components/schemas/{name}"
    )
    body_schema = dict(zip(bodies, schemas, strict=True))
    error_schema = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {},
                },
                "required": ["code", "message", "details"],
            }
        },
    }
    components["Error"] = error_schema
    paths: dict[str, dict[str, Any]] = {}
    for r in api:
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "responses": {
                "200": {"description": "OK"},
                "4XX": {
                    "description": "Refused, with a reason",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if r.roles is not None:
            op["security"] = [{"session": []}, {"bearer": []}]
            op["x-roles"] = sorted(role.value for role in r.roles)
        params = [
            {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
            for n, t, d in r.query
        ]
        params += [
            {
                "name": seg[1:-1].split(":")[0],
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if seg.endswith(":int}") else "string"},
            }
            for seg in r.path.split("/")
            if seg.startswith("{")
        ]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_schema[r.body]}},
            }
        path = "/".join(
            seg.split(":")[0] + "}" if seg.startswith("{") and ":" in seg else seg
            for seg in r.path.split("/")
        )
        paths.setdefault(path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "cityhub API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "cityhub_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
