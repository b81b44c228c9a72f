"""A browser session lapses after CITYHUB_SESSION_TTL_HOURS without a request and is renewed by
use (once half of it has gone), never past CITYHUB_SESSION_MAX_DAYS after the sign-in: the big
screen left running on /ops stays signed in for days. Bearer tokens are not renewed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from hub.state import HubState
from storage.db import connect


async def _session(hub: HubState, kind: str) -> tuple[datetime, datetime]:
    async with connect(hub.pool) as conn:
        row = await conn.fetchrow(
            "SELECT created_at, expires_at FROM sessions WHERE kind = $1"
            " ORDER BY created_at DESC LIMIT 1",
            kind,
        )
    assert row is not None
    return row["created_at"], row["expires_at"]


async def _set(hub: HubState, kind: str, **columns: datetime) -> None:
    async with connect(hub.pool) as conn:
        for name, value in columns.items():
            assert name in ("created_at", "expires_at")
            await conn.execute(f"UPDATE sessions SET {name} = $1 WHERE kind = $2", value, kind)


async def test_a_used_cookie_session_is_renewed_within_its_maximum_age(
    client: httpx.AsyncClient, hub_state: HubState
) -> None:
    r = await client.post(
        "/api/auth/login", json={"username": "bigscreen", "password": "Viewer#2026"}
    )
    assert r.status_code == 200, r.text
    ttl = timedelta(hours=hub_state.settings.session_ttl_hours)
    # the cookie outlives the idle limit: the server decides when the session lapses
    max_age = int(r.headers["set-cookie"].lower().split("max-age=")[1].split(";")[0])
    assert max_age == hub_state.settings.session_max_days * 86400

    # fresh: a request does not write (more than half of the TTL is left)
    _, before = await _session(hub_state, "cookie")
    assert (await client.get("/api/auth/me")).status_code == 200
    assert (await _session(hub_state, "cookie"))[1] == before

    # an hour left: the next request renews it to a whole TTL from now
    now = datetime.now(UTC)
    await _set(hub_state, "cookie", expires_at=now + timedelta(hours=1))
    assert (await client.get("/api/auth/me")).status_code == 200
    _, renewed = await _session(hub_state, "cookie")
    assert abs(renewed - (now + ttl)) < timedelta(minutes=1)

    # signed in almost 30 days ago: renewed only up to the maximum age, then it lapses
    max_days = timedelta(days=hub_state.settings.session_max_days)
    created = now - max_days + timedelta(hours=2)
    await _set(hub_state, "cookie", created_at=created, expires_at=now + timedelta(hours=1))
    assert (await client.get("/api/auth/me")).status_code == 200
    assert (await _session(hub_state, "cookie"))[1] == created + max_days
    await _set(hub_state, "cookie", expires_at=now - timedelta(seconds=1))
    r = await client.get("/api/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"


async def test_a_bearer_token_is_not_renewed(
    client: httpx.AsyncClient, hub_state: HubState
) -> None:
    r = await client.post("/api/auth/login", json={
        "username": "seat1", "password": "Seat#2026", "token": True})  # fmt: skip
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    soon = datetime.now(UTC) + timedelta(minutes=30)
    await _set(hub_state, "bearer", expires_at=soon)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    assert (await _session(hub_state, "bearer"))[1] == soon
