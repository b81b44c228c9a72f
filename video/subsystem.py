"""Video as a hub subsystem: what it plugs into the kernel (``hub.subsystem``).

It declares the ``cameras`` (camera status) and ``patrol`` (each seat's round) state channels, the
camera registry, media and wall API, and ``cityhub cameras import``. ``run`` starts the video service
(``video.service``: ingest, thumbnails, live viewers, snapshots) and, for the demo city, 48 simulated
RTSP cameras; handlers reach the service through ``hub.services["video"]``.
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
        from video.mse_routes import ROUTES as MSE_ROUTES
        from video.routes import ROUTES
        from video.wall_routes import ROUTES as WALL_ROUTES

        return [*ROUTES, *MEDIA_ROUTES, *MSE_ROUTES, *WALL_ROUTES]

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

        async with contextlib.AsyncExitStack() as stack:
            if hub.demo:  # the cameras first, so the service's first sync finds them
                from video.demo import start_demo_cameras

                await stack.enter_async_context(start_demo_cameras(hub))
            service = await stack.enter_async_context(VideoService.running(hub))
            hub.services["video"] = service
            try:
                yield
            finally:
                hub.services.pop("video", None)
