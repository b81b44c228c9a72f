"""The demo city's cameras: 48 simulated RTSP cameras at street corners, and one with a clock.

``start_demo_cameras(hub)`` starts the ``CameraSimulator`` (``video/simulator``: real H.264 over
RTSP on a free loopback port, pre-encoded clips served without re-encoding, plus a live ``/clock``
whose picture carries the time so a tile's latency can be read) and upserts the demo cameras with
URLs pointing at it (the port changes at each start; the rows stay, so layouts and patrol records
keep naming them). They stand at the centres of unit grids spread over the five streets, each with
the nearest demo speaker within 200 m. Where the simulator cannot run (no Debian GStreamer for
``/usr/bin/python3``), the demo goes on without cameras and says so.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from storage import cameras as store
from storage import voice
from storage.db import connect
from video.simulator.control import CameraSimulator, SimulatorError

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger(__name__)

DEMO_CAMERAS = 48
CLOCK_CAMERA = "演示时钟摄像头"


async def register_demo(hub: HubState, sim: CameraSimulator) -> int:
    """Upsert the demo cameras pointing at ``sim``; returns how many."""
    async with connect(hub.pool) as conn:
        sites = await voice.demo_sites(conn, DEMO_CAMERAS)
        n = 0
        for i, site in enumerate(sites, start=1):
            fields = await store.locate(
                conn,
                store.CameraFields(
                    name=f"{site.grid_name}摄像头", main_url=sim.url(i, credentials=False),
                    lon=site.lon, lat=site.lat, tags=("演示",),
                ),
            )  # fmt: skip
            await store.upsert_camera(conn, fields)
            n += 1
        if sim.clock and sites:
            first = sites[0]
            fields = await store.locate(
                conn,
                store.CameraFields(
                    name=CLOCK_CAMERA, main_url=sim.clock_url, lon=first.lon, lat=first.lat,
                    tags=("演示", "时钟"),
                ),
            )  # fmt: skip
            await store.upsert_camera(conn, fields)
            n += 1
    return n


@contextlib.asynccontextmanager
async def start_demo_cameras(hub: HubState) -> AsyncIterator[CameraSimulator | None]:
    # one media for every mount: ~5 % of a core for 48 cameras instead of ~26 % (a fresh session
    # waits up to one GOP for its first keyframe; the hub holds one session per camera anyway)
    sim = CameraSimulator(DEMO_CAMERAS, clock=True, one_media=True)
    try:
        await sim.start()
    except (SimulatorError, OSError) as exc:
        log.warning(
            "demo: no simulated cameras (%s); scripts/system-deps.sh --run installs them", exc
        )
        yield None
        return
    try:
        n = await register_demo(hub, sim)
        log.info("demo: %d simulated cameras on rtsp://127.0.0.1:%d", n, sim.port)
        yield sim
    finally:
        await sim.close()
