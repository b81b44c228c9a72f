"""Telephony as a hub subsystem: what it plugs into the kernel (``hub.subsystem``).

It declares the state channels of the voice warnings (``speakers``, ``warnings``) and of the hotline
(``queue``, ``agents``), the warning and registry API, and ``cityhub speakers import``. ``run`` starts
the shared SIP and media stack (``telephony.stack``: the user agent, RTP ports, the media clock, the
numbers served), then the voice-warning service on it (``telephony.warnings.service``: speaker
health, warnings, live talk, schedules) and, for the demo city, 22 simulated speakers; handlers reach the
service through ``hub.services["voice"]`` (503 in a process without the telephony role).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, cast

from hub.core.errors import Unavailable
from hub.core.workflow import Role
from hub.subsystem import CliCommand, StateChannel

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.routing import BaseRoute

    from hub.state import HubState
    from hub.web.http import ApiRoute
    from telephony.warnings.service import VoiceService

CASE_READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.AGENT, Role.VIEWER})
WALL = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})


class TelephonySubsystem:
    name = "telephony"

    def routes(self) -> Sequence[ApiRoute]:
        from telephony.hotline.routes import ROUTES as HOTLINE_ROUTES
        from telephony.warnings.registry_routes import ROUTES as REGISTRY_ROUTES
        from telephony.warnings.routes import make_routes

        return [*REGISTRY_ROUTES, *make_routes(voice_service), *HOTLINE_ROUTES]

    def web_routes(self) -> Sequence[BaseRoute]:
        return []

    def state_channels(self) -> Sequence[StateChannel]:
        return [
            StateChannel("queue", CASE_READERS, "12319 热线排队"),
            StateChannel("agents", CASE_READERS, "坐席状态"),
            StateChannel("speakers", WALL, "广播喇叭状态"),
            StateChannel("warnings", WALL, "正在播放的喊话警示"),
        ]

    def cli_commands(self) -> Sequence[CliCommand]:
        from telephony.hotline.cli import CALL_CLI
        from telephony.warnings.cli import SPEAKERS_CLI

        return [SPEAKERS_CLI, CALL_CLI]

    @contextlib.asynccontextmanager
    async def run(self, hub: HubState) -> AsyncIterator[None]:
        from telephony.hotline.prompts import Prompts
        from telephony.hotline.retention import run_retention
        from telephony.hotline.service import HotlineService
        from telephony.stack import TelephonyStack
        from telephony.warnings.service import VoiceService

        async with contextlib.AsyncExitStack() as stack:
            sip = await stack.enter_async_context(TelephonyStack.running(hub.settings))
            voice = await stack.enter_async_context(VoiceService.running(hub, sip))
            st = hub.settings
            prompts = Prompts(st.data_dir / "prompts", number=st.hotline_number,
                              callback_key=st.hotline_callback_key)  # fmt: skip
            hotline = await stack.enter_async_context(HotlineService.running(hub, sip, prompts))
            retention = asyncio.get_running_loop().create_task(
                run_retention(hub.pool, st.data_dir / "recordings", st.hotline_recordings_days),
                name="hotline-retention",
            )
            stack.callback(retention.cancel)
            if hub.demo:
                from telephony.warnings.demo import start_demo_speakers

                await stack.enter_async_context(start_demo_speakers(hub))
                voice.speakers_changed()
            hub.services["voice"] = voice
            hub.services["hotline"] = hotline
            try:
                yield
            finally:
                hub.services.pop("voice", None)
                hub.services.pop("hotline", None)


def voice_service(request: Request) -> VoiceService:
    """The running voice-warning service, or 503 where this process does not run telephony."""
    from hub.web.routes.common import hub

    voice = hub(request).services.get("voice")
    if voice is None:
        raise Unavailable("本进程未运行电话子系统（--roles 中没有 telephony）", code="no_telephony")
    return cast("VoiceService", voice)
