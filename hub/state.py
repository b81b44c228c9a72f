"""The hub's typed state, built by the lifespan in ``hub/web/app.py`` (no module-level singletons),
and handed to every subsystem it runs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncpg

from hub.cases.alarms import Alarms
from hub.cases.service import CaseService
from hub.core.workflow import Role
from hub.live.bus import Bus
from hub.live.fanout import Fanout
from hub.live.relay import Relay
from hub.live.server import LiveServer
from hub.metrics import Metrics
from hub.settings import Settings
from hub.web.auth import Authenticator
from storage.attachments import AttachmentStore
from storage.catalog import Catalog, load_catalog
from storage.db import EmbeddedPostgres, connect

if TYPE_CHECKING:
    from hub.subsystem import Subsystem


@dataclasses.dataclass
class HubState:
    settings: Settings
    pool: asyncpg.Pool
    catalog_ref: list[Catalog]
    auth: Authenticator
    cases: CaseService
    attachments: AttachmentStore
    metrics: Metrics
    dsn: str = ""
    #: Serving the demo city (``--demo``): subsystems start their simulated peers.
    demo: bool = False
    embedded: EmbeddedPostgres | None = None
    bus: Bus | None = None
    fanout: Fanout | None = None
    relay: Relay | None = None
    #: The deadline alarm scheduler (hub/cases/alarms.py), started with the live core.
    alarms: Alarms | None = None
    live: LiveServer | None = None
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    started: float = dataclasses.field(default_factory=time.monotonic)
    #: Everything opened for this state, closed in reverse by ``hub.web.app.close_state``.
    stack: contextlib.AsyncExitStack = dataclasses.field(default_factory=contextlib.AsyncExitStack)
    #: The installed subsystems (``hub.subsystem.installed``) and the names of those running here.
    installed: list[Subsystem] = dataclasses.field(default_factory=list)
    running: list[str] = dataclasses.field(default_factory=list)
    #: Every installed subsystem's state channels, with their readers.
    state_channels: Mapping[str, frozenset[Role]] = dataclasses.field(default_factory=dict)
    #: What the subsystems running here offer to request handlers, by name (e.g. "voice": the
    #: telephony process's voice-warning service); set on entering ``run`` and removed on exit.
    services: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def catalog(self) -> Catalog:
        return self.catalog_ref[0]

    async def reload_catalog(self) -> None:
        async with connect(self.pool) as conn:
            self.catalog_ref[0] = await load_catalog(conn)
