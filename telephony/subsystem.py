"""Telephony as a hub subsystem: what it plugs into the kernel (``hub.subsystem``).

Today it declares the state channels the hotline and the voice warnings will produce, so that every
process (and every browser) already knows them; the SIP core, the voice warnings and the hotline come
with their issues and start from ``run``.
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

CASE_READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.AGENT, Role.VIEWER})
WALL = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})


class TelephonySubsystem:
    name = "telephony"

    def routes(self) -> Sequence[ApiRoute]:
        return []

    def web_routes(self) -> Sequence[BaseRoute]:
        return []

    def state_channels(self) -> Sequence[StateChannel]:
        return [
            StateChannel("queue", CASE_READERS, "12319 热线排队"),
            StateChannel("agents", CASE_READERS, "坐席状态"),
            StateChannel("speakers", WALL, "广播喇叭状态"),
        ]

    def cli_commands(self) -> Sequence[CliCommand]:
        return []

    @contextlib.asynccontextmanager
    async def run(self, hub: HubState) -> AsyncIterator[None]:
        yield
