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
        return []

    def web_routes(self) -> Sequence[BaseRoute]:
        return []

    def state_channels(self) -> Sequence[StateChannel]:
        return [StateChannel("cameras", WALL, "摄像头状态")]

    def cli_commands(self) -> Sequence[CliCommand]:
        return []

    @contextlib.asynccontextmanager
    async def run(self, hub: HubState) -> AsyncIterator[None]:
        yield
