"""The built-in ``web`` subsystem: the case API, the pages, and the websocket listener (``/ws``)
through which browsers get the live picture. A process without it (``--roles telephony``) still
relays and fans out, serves ``/healthz`` and ``/metrics``, and publishes the state its subsystems
produce; browsers connect to the web processes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hub.core.workflow import Role
from hub.live.server import LiveServer, server_tls_context
from hub.state import HubState
from hub.subsystem import CliCommand, StateChannel
from hub.web.http import ApiRoute
from hub.web.routes.cases import API
from hub.web.routes.evaluation import ROUTES as EVALUATION_ROUTES
from realtime_ui import STATIC_DIR

log = logging.getLogger("cityhub.web")

PAGES = (
    "login.html",
    "board.html",
    "ops.html",
    "speakers.html",
    "wall.html",
    "hotline.html",
    "evaluation.html",
)


def _page(name: str) -> Route:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

    return Route(f"/{name.removesuffix('.html')}", page, methods=["GET"])


class WebSubsystem:
    name = "web"

    def routes(self) -> Sequence[ApiRoute]:
        return [*API, *EVALUATION_ROUTES]

    def web_routes(self) -> Sequence[BaseRoute]:
        return [
            *(_page(p) for p in PAGES),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    def state_channels(self) -> Sequence[StateChannel]:
        return [
            StateChannel(
                "alarms",
                frozenset(Role) - {Role.DEPARTMENT},
                "告警：时限预警、超期与督办",
            )
        ]

    def cli_commands(self) -> Sequence[CliCommand]:
        return []

    @contextlib.asynccontextmanager
    async def run(self, hub: HubState) -> AsyncIterator[None]:
        assert hub.fanout is not None
        settings = hub.settings
        live = LiveServer(
            hub.auth,
            hub.fanout,
            hub.catalog_ref,
            settings.host,
            settings.effective_ws_port,
            heartbeat=settings.ws_heartbeat,
            allowed_origins=settings.allowed_origins,
            http_port=settings.port,
            ssl_context=server_tls_context(settings.tls_cert, settings.tls_key)
            if settings.tls
            else None,
        )
        await live.start()
        hub.live = live
        log.info("live updates on %s://%s:%d/ws", live.scheme, settings.host, live.bound_port)
        try:
            yield
        finally:
            hub.live = None
            await live.close()
