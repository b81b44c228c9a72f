"""The relay's global position survives retention and a change of leader.

Three hub states share one PostgreSQL and a real Redis. A leads the relay; a client watches on C.
After a quiet spell longer than the retention, pruning empties ``live_log``; then A goes away and B
or C takes over the relay. Every later change must still reach the client on C, in order: a relay that
derived its position from ``max(pos)`` of the (now empty) log restarted at 1, and C — already past
that — silently dropped everything until the new positions caught up with the old ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.settings import Secret
from hub.state import HubState
from hub.web.app import build_state, close_state, create_app
from tests import conftest
from tests.conftest import Api
from tests.live_client import LiveClient, until
from tests.redis_fixture import RedisServer

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def api_for(state: HubState, username: str, password: str) -> AsyncIterator[Api]:
    app = create_app(state.settings)
    app.state.hub = state
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.post(
            "/api/auth/login", json={"username": username, "password": password, "token": True}
        )
        assert r.status_code == 200, r.text
        yield Api(c, r.json()["token"], r.json()["user"])


async def escalate(seat: Api, case_id: int, n: int) -> None:
    for i in range(n):
        r = await seat.act(case_id, "escalate", note=f"督办 {i + 1}")
        assert r.status_code == 200, r.text


async def test_position_is_monotonic_across_retention_and_leader_change(
    fresh_dsn: str, redis_server: RedisServer, shared_data_dir: Path
) -> None:
    settings = conftest.test_settings(
        shared_data_dir, fresh_dsn, redis_url=Secret(redis_server.url)
    )
    a = await build_state(settings)
    b = c = None
    client: LiveClient | None = None
    try:
        assert a.relay is not None
        await until(lambda: a.relay is not None and a.relay.is_leader, "A never led the relay")
        b = await build_state(settings)
        c = await build_state(settings)
        assert c.live is not None and c.fanout is not None
        async with api_for(a, "seat1", "Seat#2026") as seat:
            client = LiveClient(
                f"ws://127.0.0.1:{c.live.bound_port}/ws", seat.headers["Authorization"][7:]
            )
            await client.open()
            await client.subscribe("cases")
            case = (await seat.get("/api/cases", params={"state": "registered", "limit": 1})).json()
            case_id = case["items"][0]["id"]
            await escalate(seat, case_id, 5)
            await until(
                lambda: client is not None and client.count("cases") >= 5, "C missed events"
            )
        before = c.fanout.last_pos
        assert before >= 5

        # A quiet spell longer than the retention: pruning empties the log.
        async with a.pool.acquire() as conn:
            await conn.execute("UPDATE live_log SET at = now() - interval '80 hours'")
        a.relay._pruned_at = -1e9
        assert await a.relay.prune() >= 5
        async with a.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM live_log") == 0

        # Leadership moves: A stops, B or C takes over the relay (whichever tries the lock first).
        await close_state(a)
        a = None
        await until(
            lambda: any(
                s is not None and s.relay is not None and s.relay.is_leader for s in (b, c)
            ),
            "nobody took over the relay",
        )

        async with api_for(b, "seat1", "Seat#2026") as seat:
            await escalate(seat, case_id, 7)
        await until(lambda: client is not None and client.count("cases") >= 12, "C lost events")
        mine = [e for e in client.events["cases"] if e["data"]["id"] == case_id]
        versions = [e["data"]["version"] for e in mine]
        assert versions == list(range(versions[0], versions[0] + 12))
        assert not client.problems
        async with b.pool.acquire() as conn:
            first, last = await conn.fetchrow("SELECT min(pos), max(pos) FROM live_log")
        assert first == before + 1  # numbering went on where it stopped, not from 1
        assert c.fanout.last_pos == last
    finally:
        if client is not None:
            await client.close()
        for s in (a, b, c):
            if s is not None:
                await close_state(s)
