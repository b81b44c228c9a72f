"""The hub's typed state, built by the lifespan in ``hub/app.py`` (no module-level singletons)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg

from hub.cases.service import CaseService
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
    embedded: EmbeddedPostgres | None = None
    bus: Bus | None = None
    fanout: Fanout | None = None
    relay: Relay | None = None
    live: LiveServer | None = None
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def catalog(self) -> Catalog:
        return self.catalog_ref[0]

    async def reload_catalog(self) -> None:
        async with connect(self.pool) as conn:
            self.catalog_ref[0] = await load_catalog(conn)
