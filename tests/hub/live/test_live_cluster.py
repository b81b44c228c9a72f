"""Two hub processes sharing one PostgreSQL and one real Redis: an update made through process A
reaches a client of process B; Redis killed and restarted mid-run loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveHub, scratch_dir, start_hub
from tests.live_client import LiveClient
from tests.redis_fixture import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture
def two_hubs(
    fresh_dsn: str, redis_server: RedisServer, scratch_root: Path
) -> Iterator[tuple[LiveHub, LiveHub]]:
    env = {"CITYHUB_DATABASE_URL": fresh_dsn, "CITYHUB_REDIS_URL": redis_server.url}
    a = start_hub(scratch_dir(scratch_root, "a") / "data", demo=False, env=env)
    try:
        b = start_hub(scratch_dir(scratch_root, "b") / "data", demo=False, env=env)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def bearer(hub: LiveHub, username: str, password: str) -> str:
    r = httpx.post(
        f"{hub.base_url}/api/auth/login",
        json={"username": username, "password": password, "token": True},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def open_case(client: httpx.AsyncClient, h: dict[str, str]) -> int:
    grid = (await client.get("/api/grids", params={"level": 2}, headers=h)).json()["items"][0]
    ring = (await client.get(f"/api/grids/{grid['id']}", headers=h)).json()["boundary"]
    lon = sum(p[0] for p in ring[:4]) / 4
    lat = sum(p[1] for p in ring[:4]) / 4
    cat = (await client.get("/api/categories", headers=h)).json()["items"][0]
    r = await client.post(
        "/api/cases",
        headers=h,
        json={
            "category_id": cat["id"],
            "source": "video",
            "lon": lon,
            "lat": lat,
            "description": "集群测试",
        },
    )
    assert r.status_code == 201, r.text
    cid = int(r.json()["id"])
    r = await client.post(
        f"/api/cases/{cid}/actions", headers=h, json={"action": "register", "version": 1}
    )
    assert r.status_code == 200
    return cid


async def escalate(client: httpx.AsyncClient, h: dict[str, str], cid: int, n: int) -> None:
    for i in range(n):
        v = (await client.get(f"/api/cases/{cid}", headers=h)).json()["version"]
        r = await client.post(
            f"/api/cases/{cid}/actions",
            headers=h,
            json={"action": "escalate", "version": v, "note": f"督办 {i}"},
        )
        assert r.status_code == 200, r.text


async def ws_url(hub: LiveHub, token: str) -> str:
    async with httpx.AsyncClient(base_url=hub.base_url) as c:
        r = await c.get("/api/live", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return str(r.json()["url"])


async def test_update_through_a_reaches_client_on_b(two_hubs: tuple[LiveHub, LiveHub]) -> None:
    a, b = two_hubs
    token = bearer(a, "seat1", "Seat#2026")
    h = {"Authorization": f"Bearer {token}"}
    client = LiveClient(await ws_url(b, token), token)
    await client.open()
    await client.subscribe("cases")
    async with httpx.AsyncClient(base_url=a.base_url) as api:
        cid = await open_case(api, h)
        await escalate(api, h, cid, 5)
    await client.wait(
        lambda: sum(1 for e in client.events.get("cases", []) if e["data"]["id"] == cid) >= 7
    )
    mine = [e for e in client.events["cases"] if e["data"]["id"] == cid]
    assert [e["data"]["event"]["action"] for e in mine] == ["report", "register", *["escalate"] * 5]
    assert not client.problems
    health = httpx.get(f"{b.base_url}/healthz").json()
    assert health["status"] == "ok" and health["checks"]["bus"] == "redis: ok"
    await client.close()


async def test_redis_outage_loses_nothing(
    two_hubs: tuple[LiveHub, LiveHub], redis_server: RedisServer
) -> None:
    a, b = two_hubs
    token = bearer(a, "seat1", "Seat#2026")
    h = {"Authorization": f"Bearer {token}"}
    client = LiveClient(await ws_url(b, token), token)
    await client.open()
    await client.subscribe("cases")
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as api:
        cid = await open_case(api, h)
        await escalate(api, h, cid, 5)
        redis_server.kill()
        deadline = asyncio.get_running_loop().time() + 10
        while httpx.get(f"{b.base_url}/healthz").json()["status"] != "degraded":
            assert asyncio.get_running_loop().time() < deadline, "B never reported the bus down"
            await asyncio.sleep(0.2)
        await escalate(api, h, cid, 20)  # written while Redis is down
        await client.wait(
            lambda: sum(1 for e in client.events.get("cases", []) if e["data"]["id"] == cid) >= 27,
            timeout=20,
        )
        redis_server.restart()
        deadline = asyncio.get_running_loop().time() + 15
        while httpx.get(f"{b.base_url}/healthz").json()["status"] != "ok":
            assert asyncio.get_running_loop().time() < deadline, "B never recovered the bus"
            await asyncio.sleep(0.2)
        await escalate(api, h, cid, 5)
    await client.wait(
        lambda: sum(1 for e in client.events.get("cases", []) if e["data"]["id"] == cid) >= 32,
        timeout=20,
    )
    mine = [e for e in client.events["cases"] if e["data"]["id"] == cid]
    assert [e["data"]["version"] for e in mine] == list(range(1, 33))
    assert not client.problems
    assert "Traceback" not in a.log() + b.log()
    await client.close()


_ = Any
