"""The HTTP edge: JSON responses, bounded body reading, strict decoding, error translation, and the
route table: each operation declared once (roles, path and query parameters, body, statuses),
enforced by ``build_routes`` before its handler runs and documented by ``openapi`` from the same
declaration.

Nothing a client sends can produce a stack trace: ``CityhubError`` becomes its 4xx JSON body,
decoding errors become 400, and anything unexpected becomes a logged 500 JSON body with a
reference (``ErrorMiddleware``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Collection
from decimal import Decimal
from typing import Any, TypeVar, cast

import msgspec
import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.core.errors import (
    BadRequest,
    CityhubError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from hub.core.workflow import Role
from hub.settings import Settings
from hub.web.auth import Authenticator, Principal, require
from hub.web.status import AnyError, headers_of, status_of
from storage.attachments import human_size
from storage.db import DB_OUTAGE_ERRORS
from storage.errors import StorageError

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


def error_response(exc: AnyError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=status_of(exc), headers=headers_of(exc))


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
    """Both error trees (the domain's and storage's), answered with their mapped status."""
    assert isinstance(exc, CityhubError | StorageError)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s -> %s %s", request.method, request.url.path, status, exc.code)
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
        except (CityhubError, StorageError) as exc:
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
        except ClientDisconnect:  # the browser went away mid-request: nobody to answer
            log.debug("client disconnected during %s %s", scope.get("method"), scope.get("path"))
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
                raise PayloadTooLarge(
                    f"提交的内容过大：不能超过 {human_size(limit)}", details={"limit": limit}
                )
        except ValueError:
            raise BadRequest("Content-Length 无效") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"提交的内容过大：不能超过 {human_size(limit)}", details={"limit": limit}
            )
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


def _integral(value: Any, depth: int = 0) -> Any:
    """JSON numbers without a fraction as ints: to JSON Schema (and so to ``/openapi.json``)
    ``1.0`` is an integer, so an integer field accepts it. No body of ours nests deeper than a
    few levels; below 16 the value is left as it is (conversion refuses it anyway)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if depth > 16:
        return value
    if isinstance(value, list):
        return [_integral(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v, depth + 1) for k, v in value.items()}
    return value


def decode_bytes(body: bytes, typ: type[T]) -> T:
    """Strict decoding (no strings for numbers, unknown fields refused), except that a number
    without a fraction is an integer, as JSON Schema says."""
    try:
        return msgspec.convert(_integral(msgspec.json.decode(body)), typ, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _msgspec_error(exc) from None


# ---------------------------------------------------------------------------------------------
# The route table: one declaration per operation (who may call it, its path and query parameters,
# its body, the statuses it answers). ``build_routes`` enforces the declaration before a handler
# runs and ``openapi`` documents the same declaration, so the two cannot diverge.

Endpoint = Callable[[Request, Principal], Awaitable[Response]]
"""A handler behind sign-in: the caller is signed in with one of the route's roles, and the route's
parameters and body are decoded (``params_of``, ``body_of``) before it runs."""
PublicEndpoint = Callable[[Request], Awaitable[Response]]
"""A handler of a route with ``roles=None`` (no sign-in)."""

_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_ERROR_FIELD = re.compile(r"at `\$\.(\w+)|field `(\w+)`")


@dataclasses.dataclass(frozen=True, slots=True)
class Upload:
    """A ``multipart/form-data`` body: one or more file parts named ``file_field`` (at most the
    ``max_attachments_per_request`` setting) and the plain form fields of ``fields``."""

    fields: type[msgspec.Struct]
    media_types: tuple[str, ...]
    file_field: str = "file"


@dataclasses.dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # a Starlette template; ``{name:int}`` segments only match digits
    endpoint: Endpoint | PublicEndpoint
    summary: str
    roles: Collection[Role] | None  # None: no sign-in needed
    body: type | None = None  # a JSON body, decoded strictly (unknown fields refused)
    params: type[msgspec.Struct] | None = None  # path and query parameters, by field name
    tag: str = "cases"
    status: int = 200  # the success status
    errors: tuple[int, ...] = ()  # refusals beyond those the declaration implies
    upload: Upload | None = None
    produces: tuple[str, ...] = ("application/json",)
    description: str = ""

    def __post_init__(self) -> None:
        shape = len(inspect.signature(self.endpoint).parameters)
        if shape != (1 if self.roles is None else 2):
            raise TypeError(f"{self.method} {self.path}: a handler takes (request, principal)")
        fields = set() if self.params is None else set(self.params.__struct_fields__)
        missing = set(self.path_names) - fields
        if missing:
            raise TypeError(f"{self.method} {self.path}: no parameter declared for {missing}")
        if self.body is not None and self.upload is not None:
            raise TypeError(f"{self.method} {self.path}: a JSON body or an upload, not both")

    @property
    def path_names(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def query_names(self) -> tuple[str, ...]:
        if self.params is None:
            return ()
        return tuple(n for n in self.params.__struct_fields__ if n not in self.path_names)

    @property
    def statuses(self) -> frozenset[int]:
        """Every status the route answers: its success status, what the declaration implies (sign-in
        and role, path ids, parameters and body), the extra ``errors``, and 503 (no database)."""
        out = {self.status, 503, *self.errors}
        if self.roles is not None:
            out |= {401, 403}
        if self.path_names:
            out.add(404)
        if self.query_names or self.body is not None or self.upload is not None:
            out.add(400)
        if self.body is not None or self.upload is not None:
            out |= {413, 415}
        return frozenset(out)


_INT = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_BOOLS = {"true": True, "false": False}


def _plain(t: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """A field's type without its constraints and without ``None`` (an absent parameter)."""
    if isinstance(t, msgspec.inspect.Metadata):
        return _plain(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        rest = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
        return _plain(rest[0]) if len(rest) == 1 else t
    return t


def _from_wire(text: str, t: msgspec.inspect.Type) -> Any:
    """A query or path string as the JSON value the parameter's schema describes: integers and
    numbers as JSON numbers (an integer has no fraction), booleans as ``true``/``false``; anything
    else stays a string, for strict conversion to refuse or to parse (dates, enums, patterns)."""
    if isinstance(t, msgspec.inspect.IntType):
        if _INT.fullmatch(text):
            return int(text)
        if _NUMBER.fullmatch(text):  # "5.0" and "5e2" are integers to JSON Schema too
            number = Decimal(text)
            if number.adjusted() <= 30 and number == number.to_integral_value():
                return int(number)
    if isinstance(t, msgspec.inspect.FloatType) and _NUMBER.fullmatch(text):
        return float(text)
    if isinstance(t, msgspec.inspect.BoolType) and text in _BOOLS:
        return _BOOLS[text]
    return text


@functools.cache
def _wire_fields(typ: type[msgspec.Struct]) -> dict[str, msgspec.inspect.Type]:
    """Each parameter's type, as ``_from_wire`` reads it (computed once per declaration)."""
    info = msgspec.inspect.type_info(typ)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.name: _plain(f.type) for f in info.fields}


def _bad_field(exc: msgspec.ValidationError) -> str:
    m = _ERROR_FIELD.search(str(exc))
    return (m.group(1) or m.group(2)) if m else ""


def decode_params(route: ApiRoute, request: Request) -> msgspec.Struct | None:
    """The route's path and query parameters, converted and checked against their declaration.
    A path id outside its declared range names nothing: 404. A query parameter that breaks its
    declaration: 400 ``invalid_field``. Undeclared query parameters are ignored."""
    if route.params is None:
        return None
    raw: dict[str, Any] = {}
    path = route.path_names
    for name, t in _wire_fields(route.params).items():
        if name in path:
            value = request.path_params[name]  # an int already for ``{name:int}``
            raw[name] = _from_wire(value, t) if isinstance(value, str) else value
        elif isinstance(t, msgspec.inspect.ListType):
            values = request.query_params.getlist(name)
            if values:
                raw[name] = [_from_wire(v, _plain(t.item_type)) for v in values]
        elif name in request.query_params:
            raw[name] = _from_wire(request.query_params[name], t)
    try:
        return msgspec.convert(raw, route.params, strict=True)
    except msgspec.ValidationError as exc:
        field = _bad_field(exc)
        if field in path:
            raise NotFound("请求的资源不存在", details={"field": field}) from None
        raise BadRequest(
            f"参数 {field} 无效" if field else "参数无效",
            code="invalid_field",
            details={"field": field, "reason": str(exc)},
        ) from None


def params_of(request: Request, typ: type[T]) -> T:
    """The route's decoded parameters (``typ`` must be the declared ``params``)."""
    value = getattr(request.state, "params", None)
    if not isinstance(value, typ):
        raise TypeError(f"route declares {type(value).__name__} parameters, not {typ.__name__}")
    return value


def body_of(request: Request, typ: type[T]) -> T:
    """The route's decoded JSON body (``typ`` must be the declared ``body``)."""
    value = getattr(request.state, "body", None)
    if not isinstance(value, typ):
        raise TypeError(f"route declares a {type(value).__name__} body, not {typ.__name__}")
    return value


def _dispatcher(route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    """Sign-in and role (401, 403), then parameters (404, 400), then the body; then the handler."""

    async def decode(request: Request) -> None:
        request.state.params = decode_params(route, request)
        if route.body is not None:
            limit: int = request.app.state.hub.settings.max_json_bytes
            request.state.body = await decode_json(request, route.body, limit)

    if route.roles is None:
        public = cast(PublicEndpoint, route.endpoint)

        async def call_public(request: Request) -> Response:
            await decode(request)
            return await public(request)

        return call_public
    roles = frozenset(route.roles)
    endpoint = cast(Endpoint, route.endpoint)

    async def call(request: Request) -> Response:
        auth: Authenticator = request.app.state.hub.auth
        p = await auth.principal(request, method=request.method)
        require(p, roles)
        await decode(request)
        return await endpoint(request, p)

    return call


def build_routes(api: list[ApiRoute]) -> list[Route]:
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for r in api:
        methods = by_path.setdefault(r.path, {})
        if r.method in methods:
            raise ValueError(f"{r.method} {r.path} is declared twice")
        methods[r.method] = _dispatcher(r)
    routes: list[Route] = []
    for path, methods in by_path.items():

        def make(
            methods: dict[str, Callable[[Request], Awaitable[Response]]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def dispatch(request: Request) -> Response:
                return await methods[request.method if request.method != "HEAD" else "GET"](request)

            return dispatch

        routes.append(Route(path, make(methods), methods=list(methods)))
    return routes


# -- the OpenAPI document --------------------------------------------------------------------

STATUS_TEXT: dict[int, str] = {
    200: "成功",
    201: "已创建",
    202: "已受理，正在进行（结果稍后可查）",
    204: "成功，无内容",
    304: "未修改（与 If-None-Match 给出的 ETag 相同）",
    400: "请求不符合本文档（参数或字段的类型、取值范围、格式、未知字段）",
    401: "未登录或登录已过期",
    403: "角色或数据范围不允许，或 Cookie 会话缺少 CSRF 令牌 / 来源不被允许",
    404: "不存在或无权查看（路径中的编号超出文档范围时同样如此）",
    409: "冲突：案件已被他人修改（version），或流转规则不允许，或唯一值已被占用",
    413: "请求体过大",
    415: "媒体类型不被接受：请求体不是文档所列类型，或上传的文件内容不是可接受的图片或音频",
    422: "格式正确但业务规则不允许（如类别不存在、坐标不在城市内、游标不是本服务给出的、文件为空）",
    429: "尝试过于频繁（见 Retry-After）",
    503: "数据库暂时不可用，或本进程未运行所需的子系统，请稍后重试",
}

_ERROR_SCHEMA: dict[str, Any] = {
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
    "required": ["error"],
}


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the ``null`` branch of an optional field (absent is null)."""
    schema = dict(schema)
    branches = schema.pop("anyOf", None)
    if branches is not None:
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _parameters(r: ApiRoute, struct: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(struct.get("required", ()))
    out = []
    for name, prop in struct["properties"].items():
        schema = _strip_null(prop)
        param: dict[str, Any] = {
            "name": name,
            "in": "path" if name in r.path_names else "query",
            "required": name in r.path_names or name in required,
            "schema": schema,
        }
        if "description" in schema:
            param["description"] = schema.pop("description")
        out.append(param)
    return out


def _upload_schema(up: Upload, fields: dict[str, Any], max_files: int | None) -> dict[str, Any]:
    files: dict[str, Any] = {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "minItems": 1,
    }
    if max_files is not None:
        files["maxItems"] = max_files
    props = {up.file_field: files} | {
        name: _strip_null(prop) for name, prop in fields["properties"].items()
    }
    return {
        "schema": {
            "type": "object",
            "properties": props,
            "required": [up.file_field, *fields.get("required", ())],
            "additionalProperties": False,
        },
        "encoding": {up.file_field: {"contentType": ", ".join(up.media_types)}},
    }


def _responses(r: ApiRoute) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in sorted(r.statuses):
        resp: dict[str, Any] = {"description": STATUS_TEXT[status]}
        if status == r.status and status != 204:
            resp["content"] = {
                mt: {"schema": {"type": "object"} if mt == "application/json" else {}}
                for mt in r.produces
            }
        elif status >= 400:
            resp["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }
        out[str(status)] = resp
    return out


def openapi(api: list[ApiRoute], version: str, settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the route table (``settings`` adds its upload limit)."""
    bodies = [r.body for r in api if r.body is not None]
    params = [r.params for r in api if r.params is not None]
    forms = [r.upload.fields for r in api if r.upload is not None]
    kinds: list[type] = list(dict.fromkeys([*bodies, *params, *forms]))
    refs, components = msgspec.json.schema_components(
        kinds, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(kinds, refs, strict=True))
    inlined = {t: components[schema_of[t]["$ref"].rsplit("/", 1)[1]] for t in [*params, *forms]}
    for t in {*params, *forms} - set(bodies):
        components.pop(schema_of[t]["$ref"].rsplit("/", 1)[1], None)
    components["Error"] = _ERROR_SCHEMA
    max_files = settings.max_attachments_per_request if settings is not None else None
    paths: dict[str, dict[str, Any]] = {}
    for r in api:
        op: dict[str, Any] = {
            "operationId": "_".join(
                [r.method.lower(), *re.findall(r"\w+", _PATH_PARAM.sub(r"\1", r.path))]
            ),
            "summary": r.summary,
            "tags": [r.tag],
            "responses": _responses(r),
        }
        if r.description:
            op["description"] = r.description
        if r.roles is None:
            op["security"] = []
        else:
            op["security"] = [{"session": []}, {"bearer": []}]
            op["x-roles"] = sorted(role.value for role in r.roles)
        if r.params is not None:
            op["parameters"] = _parameters(r, inlined[r.params])
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[r.body]}},
            }
        if r.upload is not None:
            form = _upload_schema(r.upload, inlined[r.upload.fields], max_files)
            op["requestBody"] = {"required": True, "content": {"multipart/form-data": form}}
        path = _PATH_PARAM.sub(r"{\1}", r.path)
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
