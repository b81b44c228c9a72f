"""Subsystems plug into the kernel: a process runs the ones its roles name, they start in order and
stop in reverse while the database and the bus are still there, and the state channels one process
produces reach a browser on another — also one that joins later."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from starlette.routing import BaseRoute

from hub import subsystem
from hub.core.workflow import Role
from hub.settings import Secret
from hub.state import HubState
from hub.subsystem import CliCommand, StateChannel, SubsystemError
from hub.web.app import build_state, close_state, create_app
from hub.web.http import ApiRoute
from tests import conftest
from tests.live_client import LiveClient, until
from tests.redis_fixture import RedisServer


class Recorder:
    """A subsystem that records when it starts and stops, and checks the kernel is still up then."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def routes(self) -> Sequence[ApiRoute]:
        return []

    def web_routes(self) -> Sequence[BaseRoute]:
        return []

    def state_channels(self) -> Sequence[StateChannel]:
        return []

    def cli_commands(self) -> Sequence[CliCommand]:
        return []

    @contextlib.asynccontextmanager
    async def run(self, hub: HubState) -> AsyncIterator[None]:
        self.log.append(f"start {self.name}")
        try:
            yield
        finally:
            async with hub.pool.acquire() as conn:  # still open while subsystems stop
                assert await conn.fetchval("SELECT 1") == 1
            assert hub.bus is not None and hub.bus.healthy
            self.log.append(f"stop {self.name}")


def test_installed_subsystems_and_roles() -> None:
    names = [s.name for s in subsystem.installed()]
    assert names == ["web", "telephony", "video"]
    channels = subsystem.state_channels(subsystem.installed())
    assert {"alarms", "queue", "agents", "speakers", "cameras"} <= set(channels)
    assert Role.DEPARTMENT not in channels["cameras"]
    picked = subsystem.select(subsystem.installed(), ("video", "web"))
    assert [s.name for s in picked] == ["web", "video"]
    assert [s.name for s in subsystem.select(subsystem.installed(), ())] == names
    with pytest.raises(SubsystemError, match="gps"):
        subsystem.select(subsystem.installed(), ("web", "gps"))


def test_a_state_channel_declared_twice_is_refused() -> None:
    log: list[str] = []

    class Twice(Recorder):
        def state_channels(self) -> Sequence[StateChannel]:
            return [StateChannel("cameras", frozenset({Role.ADMIN}))]

    with pytest.raises(SubsystemError, match="cameras"):
        subsystem.state_channels([*subsystem.installed(), Twice("x", log)])


async def test_subsystems_start_in_order_and_stop_in_reverse(
    fresh_dsn: str, shared_data_dir: Path
) -> None:
    log: list[str] = []
    state = await build_state(
        conftest.test_settings(shared_data_dir, fresh_dsn),
        subsystems=[Recorder("a", log), Recorder("b", log)],
    )
    assert state.running == ["a", "b"] and state.live is None  # no web: no websocket listener
    assert log == ["start a", "start b"]
    await close_state(state)
    assert log == ["start a", "start b", "stop b", "stop a"]
    assert state.pool.is_closing()


async def test_a_process_without_web_serves_health_but_not_the_api(
    fresh_dsn: str, shared_data_dir: Path
) -> None:
    settings = conftest.test_settings(shared_data_dir, fresh_dsn, roles=("video",))
    app = create_app(settings)
    state = await build_state(
        settings, subsystems=subsystem.select(subsystem.installed(), ("video",))
    )
    app.state.hub = state
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/healthz")).json()["status"] == "ok"
            r = await c.get("/api/cases")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            paths = (await c.get("/openapi.json")).json()["paths"]
            # only the video subsystem's own API: cameras, live tiles, the wall; no case API
            assert paths and all(
                p.startswith(("/api/cameras", "/api/live/", "/api/wall/", "/api/patrol/"))
                for p in paths
            ), sorted(paths)
    finally:
        await close_state(state)


@pytest.mark.slow
async def test_state_produced_on_one_process_reaches_a_browser_on_another(
    fresh_dsn: str, redis_server: RedisServer, shared_data_dir: Path
) -> None:
    settings = conftest.test_settings(
        shared_data_dir, fresh_dsn, redis_url=Secret(redis_server.url)
    )
    installed = subsystem.installed()
    video = await build_state(settings, subsystems=subsystem.select(installed, ("video",)))
    web = None
    client = None
    try:
        assert video.fanout is not None
        await until(lambda: video.bus is not None and video.bus.healthy, "video: no bus")
        # Set before the web process exists: it must still get it in its first snapshot.
        video.fanout.set_state("cameras", "cam-7", {"status": "online", "name": "南宁北路口"})
        video.fanout.set_state("cameras", "cam-8", {"status": "offline", "reason": "连接超时"})
        web = await build_state(settings, subsystems=subsystem.select(installed, ("web",)))
        assert web.live is not None and web.fanout is not None
        await until(lambda: len(web.fanout.states.snapshot("cameras")) == 2, "web never learned")

        app = create_app(web.settings, subsystems=subsystem.select(installed, ("web",)))
        app.state.hub = web
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.post(
                "/api/auth/login",
                json={"username": "seat1", "password": "Seat#2026", "token": True},
            )
            token = r.json()["token"]
        client = LiveClient(f"ws://127.0.0.1:{web.live.bound_port}/ws", token)
        await client.open()
        await client.subscribe("cameras")
        snap = next(m for m in client.control if m["type"] == "snapshot")
        assert snap["data"] == {
            "cam-7": {"status": "online", "name": "南宁北路口"},
            "cam-8": {"status": "offline", "reason": "连接超时"},
        }
        # A change on the producer arrives live.
        video.fanout.set_state("cameras", "cam-8", {"status": "online"})
        await until(lambda: client is not None and client.count("cameras") >= 1, "no change")
        assert client.events["cameras"][-1]["data"] == {
            "key": "cam-8",
            "value": {"status": "online"},
        }
        # The producer stops: what it owned is cleared for the browser at once.
        await close_state(video)
        video = None
        await until(lambda: client is not None and client.count("cameras") >= 3, "not cleared")
        cleared = {e["data"]["key"] for e in client.events["cameras"][1:]}
        assert cleared == {"cam-7", "cam-8"}
        assert all(e["data"]["value"] is None for e in client.events["cameras"][1:])
        assert not client.problems
    finally:
        if client is not None:
            await client.close()
        for s in (video, web):
            if s is not None:
                await close_state(s)


def test_serve_refuses_an_unknown_role(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--roles",
            "web,gps",
        ],
        cwd=conftest.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "unknown role(s) gps" in r.stderr and "telephony" in r.stderr and "video" in r.stderr
