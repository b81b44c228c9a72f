"""Video as a hub subsystem: what it plugs into the kernel (``hub.subsystem``).

Today it declares the ``cameras`` state channel (camera status), so that every process and every
browser already knows it; the camera registry, ingest and the video wall come with their issue and
start from ``run``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from hub.core.workflow import Role
from hub.subsystem import CliCommand, StateChannel

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from hub.state import HubState
    from hub.web.http import ApiRoute

WALL = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})


class VideoSubsystem:
    name = "video"

    def routes(self) -> Sequence[ApiRoute]:
        from video.media_routes import ROUTES as MEDIA_ROUTES
        from video.routes import ROUTES
        from video.wall_routes import ROUTES as WALL_ROUTES

        return [*ROUTES, *MEDIA_ROUTES, *WALL_ROUTES]

    def web_routes(self) -> Sequence[BaseRoute]:
        return []

    def state_channels(self) -> Sequence[StateChannel]:
        return [
            StateChannel("cameras", WALL, "摄像头状态"),
            StateChannel("patrol", WALL, "轮巡进度（按坐席）"),
        ]

    def cli_commands(self) -> Sequence[CliCommand]:
        from video.cli import CAMERAS_CLI

        return [CAMERAS_CLI]

    @contextlib.asynccontextmanager
    async def run(self, hub: HubState) -> AsyncIterator[None]:
        from video.service import VideoService

        async with VideoService.running(hub) as service:
            hub.services["video"] = service
            try:
                yield
            finally:
                hub.services.pop("video", None)
