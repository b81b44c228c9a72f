"""Composition in one place: ``create_app(settings)`` builds the routes of the subsystems this
process runs (``hub.subsystem``); its lifespan (``build_state``) opens the database (embedded or
external), applies migrations, loads reference data (and the demo city when asked), builds the
services and the live core, then enters each subsystem's context — all on one ``AsyncExitStack``, so
``close_state`` closes everything in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub import __version__, subsystem
from hub.cases.alarms import Alarms
from hub.cases.reference import ensure_reference_data
from hub.cases.service import CaseService
from hub.core.deadlines import parse_policy
from hub.core.errors import CityhubError
from hub.core.workcal import WorkCalendar, parse_work_hours
from hub.core.workflow import Role
from hub.live.bus import create_bus
from hub.live.fanout import Fanout
from hub.live.relay import Relay
from hub.metrics import Metrics
from hub.settings import Settings
from hub.state import HubState
from hub.subsystem import Subsystem
from hub.web.auth import Authenticator, require
from hub.web.http import (
    ErrorMiddleware,
    JSONResponse,
    build_routes,
    cityhub_error_handler,
    http_exception_handler,
    openapi,
)
from hub.web.middleware import MetricsMiddleware, SecurityHeadersMiddleware
from storage import db
from storage import live as live_store
from storage.attachments import AttachmentStore
from storage.catalog import load_catalog
from storage.errors import StorageError
from storage.reference import load_calendar

log = logging.getLogger("cityhub")


async def build_state(
    settings: Settings,
    *,
    demo: bool = False,
    demo_cases: int = 10_000,
    live: bool = True,
    subsystems: Sequence[Subsystem] | None = None,
) -> HubState:
    """Open everything a hub process needs, each part on one ``AsyncExitStack`` (``close_state``
    closes them in reverse): the database (embedded or external), migrations, reference data, the
    demo city when asked, the services; with ``live``, the bus, this process's fan-out and the relay,
    then the subsystems it runs (``subsystems``; default: every installed one)."""
    stack = contextlib.AsyncExitStack()
    try:
        return await _open(stack, settings, demo, demo_cases, live, subsystems)
    except BaseException:
        await stack.aclose()
        raise


async def close_state(state: HubState) -> None:
    await state.stack.aclose()


async def _open(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    demo: bool,
    demo_cases: int,
    live: bool,
    subsystems: Sequence[Subsystem] | None,
) -> HubState:
    settings = settings.with_secret_key()
    installed = subsystem.installed()
    running = list(installed if subsystems is None else subsystems)
    dsn = settings.database_url.reveal()
    embedded = None
    if not dsn:
        embedded, dsn = await db.start_embedded(settings.pg_dir)
        stack.push_async_callback(asyncio.to_thread, embedded.stop)
        log.info("embedded PostgreSQL started under %s", settings.pg_dir)
    pool = await db.create_pool(dsn, max_size=settings.db_pool_max)
    stack.push_async_callback(_close_pool, pool)
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
        from hub.demo import load_demo

        t0 = time.monotonic()
        summary = await load_demo(
            pool,
            attachments=attachments,
            calendar=calendar,
            now=datetime.now(UTC),
            n_cases=demo_cases,
            urgent_limit_hours=settings.urgent_limit,
        )
        log.info("demo city ready in %.1f s: %s", time.monotonic() - t0, summary)
    async with pool.acquire() as conn:
        catalog_ref = [await load_catalog(conn)]
    metrics = Metrics()
    cases = CaseService(
        pool,
        catalog_ref,
        calendar,
        default_time_limit_hours=settings.default_time_limit_hours,
        urgent_time_limit_hours=settings.urgent_limit,
        policy=parse_policy(
            settings.deadline_warnings, settings.deadline_pause, settings.deadline_escalate
        ),
    )

    async def count(event: object) -> None:
        metrics.case_events[getattr(event, "action", "?")] += 1

    cases.listeners.append(count)
    auth = Authenticator(settings, pool, catalog_ref)
    stack.push_async_callback(auth.close)
    state = HubState(
        settings=settings,
        pool=pool,
        catalog_ref=catalog_ref,
        auth=auth,
        cases=cases,
        attachments=attachments,
        metrics=metrics,
        dsn=dsn,
        demo=demo,
        embedded=embedded,
        stack=stack,
        installed=installed,
        state_channels=subsystem.state_channels(installed),
    )
    if live:
        await _start_live(state)
        for sub in running:
            await stack.enter_async_context(sub.run(state))
            state.running.append(sub.name)
        log.info("subsystems running: %s", ", ".join(state.running) or "none")
    return state


async def _close_pool(pool: asyncpg.Pool) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pool.close(), timeout=10)


async def _start_live(state: HubState) -> None:
    """The live core every process has: the bus, this process's fan-out (case envelopes and the
    shared state channels) and the relay (which leads if elected)."""
    stack = state.stack
    bus = state.bus = create_bus(state.settings.redis_url.reveal())
    await bus.start()
    stack.push_async_callback(bus.close)
    async with state.pool.acquire() as conn:
        epoch = await live_store.ensure_epoch(conn)
    fanout = state.fanout = Fanout(
        state.pool, state.dsn, bus, epoch, state_channels=state.state_channels
    )
    await fanout.start()
    stack.callback(fanout.close)
    state.relay = Relay(state.pool, state.dsn, state.cases, fanout.publish, epoch=epoch)
    state.alarms = Alarms(state.pool, state.dsn, state.cases)
    loop = asyncio.get_running_loop()
    tasks = [
        loop.create_task(state.relay.run(state.stop), name="relay"),
        loop.create_task(state.alarms.run(state.stop), name="alarms"),
        loop.create_task(fanout.run(state.stop), name="fanout"),
    ]

    async def stop_tasks() -> None:
        state.stop.set()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=5)

    stack.push_async_callback(stop_tasks)


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
    for name, service in sorted(hub.services.items()):
        check = getattr(service, "health_check", None)
        if check is not None:
            checks[name] = check()
    return JSONResponse({"status": status, "version": __version__, "checks": checks})


async def metrics_endpoint(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    require(await hub.auth.principal(request), frozenset({Role.ADMIN}))
    gauges = {
        "cityhub_db_pool_size": float(hub.pool.get_size()),
        "cityhub_db_pool_idle": float(hub.pool.get_idle_size()),
        "cityhub_uptime_seconds": round(time.monotonic() - hub.started, 1),
    }
    text = hub.metrics.render(gauges)
    for _, service in sorted(hub.services.items()):
        lines = getattr(service, "metrics_lines", None)
        if lines is not None:
            text += "\n".join(lines()) + "\n"
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def create_app(
    settings: Settings,
    *,
    demo: bool = False,
    demo_cases: int = 10_000,
    subsystems: Sequence[Subsystem] | None = None,
) -> Starlette:
    """The ASGI app of one process: the kernel's own endpoints (/, /healthz, /metrics,
    /openapi.json) and the routes of the subsystems it runs (default: those ``settings.roles``
    names, or every installed one)."""
    running = (
        subsystem.select(subsystem.installed(), settings.roles)
        if subsystems is None
        else subsystems
    )
    api = [r for sub in running for r in sub.routes()]
    doc = openapi(api, __version__, settings)

    async def openapi_endpoint(request: Request) -> Response:
        return JSONResponse(doc)

    async def root(request: Request) -> Response:
        return RedirectResponse("/board", status_code=302)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = await build_state(settings, demo=demo, demo_cases=demo_cases, subsystems=running)
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
        *build_routes(api),
        *(r for sub in running for r in sub.web_routes()),
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
