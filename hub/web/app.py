"""Composition in one place: ``create_app(settings)`` builds the routes; the lifespan opens the
database (embedded or external), applies migrations, loads reference data (and the demo city when
asked), builds the services, and closes everything in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import __version__
from hub.cases.reference import ensure_reference_data
from hub.cases.service import CaseService
from hub.core.errors import CityhubError
from hub.core.workcal import WorkCalendar, parse_work_hours
from hub.core.workflow import Role
from hub.live.bus import create_bus
from hub.live.fanout import Fanout
from hub.live.relay import Relay
from hub.live.server import LiveServer
from hub.metrics import Metrics
from hub.settings import Settings
from hub.state import HubState
from hub.web.auth import Authenticator, require
from hub.web.http import (
    ErrorMiddleware,
    JSONResponse,
    build_routes,
    cityhub_error_handler,
    http_exception_handler,
    openapi,
)
from hub.web.routes.cases import API
from realtime_ui import STATIC_DIR
from storage import db
from storage import live as live_store
from storage.attachments import AttachmentStore
from storage.catalog import load_catalog
from storage.errors import StorageError
from storage.reference import load_calendar

log = logging.getLogger("cityhub")


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = getattr(scope.get("app"), "state", None)
                hub = getattr(state, "hub", None) if state is not None else None
                if hub is not None:
                    hub.metrics.observe_request(scope["method"], message["status"])
            await send(message)

        await self.app(scope, receive, _send)


class SecurityHeadersMiddleware:
    """Conservative headers on every response (pages are same-origin only, no framing)."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )
    CSP = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self';"
        " connect-src 'self'{ws}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )

    @classmethod
    def csp(cls, scope: Scope) -> bytes:
        """The policy, allowing the websocket listener (same host, its own port) for connections."""
        ws = ""
        state = getattr(scope.get("app"), "state", None)
        hub = getattr(state, "hub", None) if state is not None else None
        live = getattr(hub, "live", None)
        if live is not None:
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if hostname and all(c.isalnum() or c in ".-[]:" for c in hostname):
                port = live.bound_port
                ws = f" ws://{hostname}:{port} wss://{hostname}:{port}"
        return cls.CSP.format(ws=ws).encode()

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k for k, _ in headers}
                for k, v in self.HEADERS:
                    if k not in names:
                        headers.append((k, v))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.csp(scope)))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, _send)


async def start_live(state: HubState) -> None:
    """The live picture: the bus, this process's fan-out, the relay (leads if elected) and the
    websocket listener."""
    settings = state.settings
    state.bus = create_bus(settings.redis_url.reveal())
    await state.bus.start()
    async with state.pool.acquire() as conn:
        epoch = await live_store.ensure_epoch(conn)
    state.fanout = Fanout(state.pool, state.dsn, state.bus, epoch)
    await state.fanout.start()
    state.relay = Relay(state.pool, state.dsn, state.cases, state.fanout.publish, epoch=epoch)
    state.live = LiveServer(
        state.auth,
        state.fanout,
        state.catalog_ref,
        settings.host,
        settings.effective_ws_port,
        heartbeat=settings.ws_heartbeat,
        allowed_origins=settings.allowed_origins,
        http_port=settings.port,
    )
    await state.live.start()
    loop = asyncio.get_running_loop()
    state.tasks = [
        loop.create_task(state.relay.run(state.stop), name="relay"),
        loop.create_task(state.fanout.run(state.stop), name="fanout"),
    ]
    log.info(
        "live updates on ws://%s:%d/ws (bus: %s)",
        settings.host,
        state.live.bound_port,
        state.bus.name,
    )


async def stop_live(state: HubState) -> None:
    state.stop.set()
    if state.live is not None:
        await state.live.close()
    for task in state.tasks:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, timeout=5)
    state.tasks = []
    if state.bus is not None:
        await state.bus.close()


async def build_state(
    settings: Settings, *, demo: bool = False, demo_cases: int = 10_000, live: bool = True
) -> HubState:
    settings = settings.with_secret_key()
    embedded = None
    dsn = settings.database_url.reveal()
    if not dsn:
        embedded, dsn = await db.start_embedded(settings.pg_dir)
        log.info("embedded PostgreSQL started under %s", settings.pg_dir)
    try:
        pool = await db.create_pool(dsn, max_size=settings.db_pool_max)
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    state: HubState | None = None
    try:
        applied = await db.migrate(pool)
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        async with pool.acquire() as conn:
            await ensure_reference_data(conn)
            exceptions = await load_calendar(conn)
        calendar = WorkCalendar(
            tz=ZoneInfo(settings.timezone),
            periods=parse_work_hours(settings.work_hours),
            exceptions=exceptions,
        )
        attachments = AttachmentStore(settings.attachments_dir, settings.max_upload_bytes)
        if demo:
            from hub.demo.city import load_demo

            t0 = time.monotonic()
            summary = await load_demo(
                pool,
                attachments=attachments,
                calendar=calendar,
                now=datetime.now(UTC),
                n_cases=demo_cases,
            )
            log.info("demo city ready in %.1f s: %s", time.monotonic() - t0, summary)
        async with pool.acquire() as conn:
            catalog_ref = [await load_catalog(conn)]
        metrics = Metrics()
        cases = CaseService(
            pool, catalog_ref, calendar, default_time_limit_hours=settings.default_time_limit_hours
        )

        async def count(event: object) -> None:
            metrics.case_events[getattr(event, "action", "?")] += 1

        cases.listeners.append(count)
        state = HubState(
            settings=settings,
            pool=pool,
            catalog_ref=catalog_ref,
            auth=Authenticator(settings, pool, catalog_ref),
            cases=cases,
            attachments=attachments,
            metrics=metrics,
            dsn=dsn,
            embedded=embedded,
        )
        if live:
            await start_live(state)
        return state
    except BaseException:
        if state is not None:
            await stop_live(state)
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise


async def close_state(state: HubState) -> None:
    await stop_live(state)
    await state.auth.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(state.pool.close(), timeout=10)
    if state.embedded is not None:
        await asyncio.to_thread(state.embedded.stop)


async def healthz(request: Request) -> Response:
    """200 "ok" when ready; 200 "degraded" when serving without the bus (Redis down: this process
    still serves its own clients, others catch up from PostgreSQL); 503 when the database is down."""
    hub: HubState = request.app.state.hub
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2), hub.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"
        checks["database"] = type(exc).__name__
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    status = "ok"
    if hub.bus is not None:
        checks["bus"] = f"{hub.bus.name}: {'ok' if hub.bus.healthy else 'down'}"
        if not hub.bus.healthy:
            status = "degraded"
    if hub.relay is not None:
        checks["relay"] = "leader" if hub.relay.is_leader else "follower"
    return JSONResponse({"status": status, "version": __version__, "checks": checks})


async def metrics_endpoint(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    require(await hub.auth.principal(request), frozenset({Role.ADMIN}))
    gauges = {
        "cityhub_db_pool_size": float(hub.pool.get_size()),
        "cityhub_db_pool_idle": float(hub.pool.get_idle_size()),
        "cityhub_uptime_seconds": round(time.monotonic() - hub.started, 1),
    }
    return PlainTextResponse(hub.metrics.render(gauges), media_type="text/plain; version=0.0.4")


def _page(name: str) -> Route:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

    return Route(f"/{name.removesuffix('.html')}", page, methods=["GET"])


def create_app(settings: Settings, *, demo: bool = False, demo_cases: int = 10_000) -> Starlette:
    doc = openapi(API, __version__)

    async def openapi_endpoint(request: Request) -> Response:
        return JSONResponse(doc)

    async def root(request: Request) -> Response:
        return RedirectResponse("/board", status_code=302)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = await build_state(settings, demo=demo, demo_cases=demo_cases)
        app.state.hub = state
        try:
            yield
        finally:
            await close_state(state)

    routes: list[BaseRoute] = [
        Route("/", root, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        _page("login.html"),
        _page("board.html"),
        _page("ops.html"),
        *build_routes(API),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(ErrorMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(MetricsMiddleware),
        ],
        exception_handlers={
            HTTPException: http_exception_handler,
            CityhubError: cityhub_error_handler,
            StorageError: cityhub_error_handler,
        },
    )
