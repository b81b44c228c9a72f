"""Fixtures of the hotline's end-to-end tests: a hub with the hotline taking calls from loopback
(``hub``; a module tunes it by overriding ``hotline_options``), its API signed in as a demo user
(``api("agent1")``) and a citizen's phone (``caller``). ICE gathers loopback candidates only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioice.ice
import httpx
import pytest

from hub.state import HubState
from hub.web.app import build_state, close_state, create_app
from telephony.rtp.session import PortPool
from telephony.sip.agent import UserAgent
from tests.conftest import Api
from tests.conftest import test_settings as settings_for
from tests.telephony.hotline.support import Caller


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield


@pytest.fixture
def hotline_options() -> dict[str, Any]:
    """Settings of the test hub (``Settings`` fields); a module overrides this fixture."""
    return {"hotline_wrapup": 2.0, "hotline_announce_every": 5.0}


@pytest.fixture
async def hub(
    fresh_dsn: str, shared_data_dir: Path, hotline_options: dict[str, Any]
) -> AsyncIterator[HubState]:
    options = {"hotline_trunks": ("127.0.0.0/8",), **hotline_options}
    state = await build_state(settings_for(shared_data_dir, fresh_dsn, **options))
    try:
        yield state
    finally:
        await close_state(state)


@pytest.fixture
async def client(hub: HubState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub.settings)
    app.state.hub = hub
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def api(client: httpx.AsyncClient) -> Any:
    """``await api("agent1")``: an ``Api`` signed in as that demo user."""

    async def login(username: str) -> Api:
        from hub.demo import DEMO_USERS

        r = await client.post("/api/auth/login", json={
            "username": username, "password": DEMO_USERS[username][1], "token": True})  # fmt: skip
        assert r.status_code == 200, r.text
        return Api(client, r.json()["token"], r.json()["user"])

    return login


@pytest.fixture
def caller_ports() -> tuple[int, int]:
    """The caller's RTP port range (a module picks another to keep apart from the hub's)."""
    return (46000, 46999)


@pytest.fixture
async def caller(caller_ports: tuple[int, int]) -> AsyncIterator[Caller]:
    ua = UserAgent("127.0.0.1", 0, user="citizen")
    await ua.start()
    c = Caller(ua, PortPool(*caller_ports))
    try:
        yield c
    finally:
        await c.hang_up()
        ua.close()
        await ua.wait_closed()
