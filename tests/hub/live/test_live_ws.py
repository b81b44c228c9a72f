"""/ws against a real hub state (PostgreSQL, the relay, the fan-out, the websockets listener): live
delivery, exact resume, department isolation, slow consumers, bad input."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import orjson
import pytest
from websockets.exceptions import InvalidStatus

from hub.state import HubState
from tests.conftest import Api
from tests.hub.web.test_api_cases import report
from tests.live_client import LiveClient


def ws_url(state: HubState) -> str:
    assert state.live is not None
    return f"ws://127.0.0.1:{state.live.bound_port}/ws"


async def token_of(api: Api) -> str:
    return api.headers["Authorization"].removeprefix("Bearer ")


async def registered_case(login: Any) -> tuple[int, Api]:
    sup, seat = await login("sup01"), await login("seat1")
    case = await report(sup)
    r = await seat.act(case["id"], "register")
    assert r.status_code == 200
    return int(case["id"]), seat


async def escalate(seat: Api, case_id: int, n: int) -> None:
    for i in range(n):
        r = await seat.act(case_id, "escalate", note=f"督办第 {i + 1} 次")
        assert r.status_code == 200, r.text


async def test_update_reaches_client_and_resume_is_exact(hub_state: HubState, login: Any) -> None:
    case_id, seat = await registered_case(login)
    client = LiveClient(ws_url(hub_state), await token_of(seat))
    hello = await client.open()
    assert hello["channels"] == ["cases"]
    await client.subscribe("cases")
    await escalate(seat, case_id, 1)

    def escalations() -> list[dict[str, Any]]:
        return [
            e for e in client.events.get("cases", []) if e["data"]["event"]["action"] == "escalate"
        ]

    await client.wait(lambda: len(escalations()) >= 1)
    ev = escalations()[-1]
    assert ev["type"] == "case.updated" and ev["data"]["id"] == case_id
    assert ev["data"]["event"]["action"] == "escalate" and ev["data"]["escalation_count"] >= 1
    version = ev["data"]["version"]
    seen = client.offsets["cases"]
    await client.close()

    # Away for 50 events.
    await escalate(seat, case_id, 50)
    assert hub_state.fanout is not None
    async with asyncio.timeout(10):
        while hub_state.fanout.head("cases") < seen + 50:
            await asyncio.sleep(0.05)

    again = LiveClient(ws_url(hub_state), await token_of(seat))
    await again.open()
    again.offsets["cases"] = seen
    again.epoch = client.epoch
    await again.subscribe("cases", resume=True)
    replayed = again.events.get("cases", [])
    assert [e["offset"] for e in replayed] == list(range(seen + 1, seen + 51))
    assert [e["data"]["version"] for e in replayed] == list(range(version + 1, version + 51))
    sub = next(c for c in again.control if c["type"] == "subscribed")
    assert sub["replayed"] == 50 and sub["offset"] == seen + 50
    await escalate(seat, case_id, 1)
    await again.wait(lambda: again.count("cases") == 51)
    assert again.events["cases"][-1]["offset"] == seen + 51
    assert not again.problems
    # A resume from another epoch is answered "not recovered" with the head.
    third = LiveClient(ws_url(hub_state), await token_of(seat))
    await third.open()
    await third.send(
        {"type": "subscribe", "channels": [{"channel": "cases", "epoch": "old", "offset": 1}]}
    )
    await third.wait(lambda: any(c["type"] == "resync" for c in third.control))
    resync = next(c for c in third.control if c["type"] == "resync")
    assert resync["reason"] == "not_recovered" and resync["offset"] == seen + 51
    for c in (again, third):
        await c.close()


async def test_department_never_receives_another_departments_case(
    hub_state: HubState, login: Any
) -> None:
    from tests.hub.web.test_api_cases import dept_user_for

    sup, seat, disp = await login("sup01"), await login("seat1"), await login("dispatch1")
    deps = (await disp.get("/api/departments")).json()["items"]
    mine, other = deps[0]["id"], deps[1]["id"]
    dept = await dept_user_for(login, mine)
    client = LiveClient(ws_url(hub_state), await token_of(dept))
    hello = await client.open()
    assert hello["channels"] == [f"dept:{mine}"]
    await client.send(
        {"type": "subscribe", "channels": ["cases", f"dept:{other}", "alarms", f"dept:{mine}"]}
    )
    await client.wait(lambda: any(c.get("type") == "subscribed" for c in client.control))
    errors = [c for c in client.control if c.get("type") == "error"]
    assert sorted(e["channel"] for e in errors) == sorted(["cases", f"dept:{other}", "alarms"])
    assert all(e["code"] == "forbidden_channel" for e in errors)
    ids = {}
    for dep in (other, mine, other):
        case = await report(sup)
        await seat.act(case["id"], "register")
        r = await disp.act(case["id"], "dispatch", department_id=dep)
        assert r.status_code == 200
        ids.setdefault(dep, []).append(case["id"])
    await client.wait(lambda: client.count(f"dept:{mine}") >= 1)
    await asyncio.sleep(0.5)  # time for anything wrongly routed to arrive
    got = {e["data"]["id"] for e in client.events.get(f"dept:{mine}", [])}
    assert got == set(ids[mine])
    assert all(e["data"]["department"]["id"] == mine for e in client.events[f"dept:{mine}"])
    assert set(client.events) == {f"dept:{mine}"}
    await client.close()


async def test_bad_input_gets_errors_or_a_close(hub_state: HubState, login: Any) -> None:
    seat = await login("seat1")
    client = LiveClient(ws_url(hub_state), await token_of(seat))
    await client.open()
    for garbage in [
        b"\x00\x01binary",
        "not json",
        "[]",
        '{"type": "dance"}',
        '{"type": "subscribe", "channels": 5}',
        '{"type": "subscribe", "channels": [{"channel": "cases", "offset": "x"}]}',
    ]:
        await client.send(garbage)
    await client.send({"type": "subscribe", "channels": ["nope", "dept:abc"]})
    await client.wait(lambda: sum(1 for c in client.control if c.get("type") == "error") >= 8)
    codes = [c["code"] for c in client.control if c.get("type") == "error"]
    assert codes.count("bad_message") == 6 and codes.count("unknown_channel") == 2
    # Still serving after garbage.
    await client.send({"type": "ping", "id": 1})
    await client.wait(lambda: any(c.get("type") == "pong" for c in client.control))
    # An oversized frame closes with 1009 and a reason.
    await client.send("x" * 100_000)
    assert await client.closed() == 1009
    await client.close()
    # Too many bad messages: 4400.
    noisy = LiveClient(ws_url(hub_state), await token_of(seat))
    await noisy.open()
    for _ in range(25):
        await noisy.send("garbage")
    assert await noisy.closed() == 4400
    await noisy.close()


async def test_handshake_needs_a_signed_in_user_and_origin(
    hub_state: HubState, login: Any, client: Any
) -> None:
    url = ws_url(hub_state)
    with pytest.raises(InvalidStatus) as no_auth:
        await LiveClient(url).open()
    assert no_auth.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as bad_token:
        await LiveClient(url, "not-a-token").open()
    assert bad_token.value.response.status_code == 401
    # A browser session cookie works only with the hub's own Origin.
    r = await client.post("/api/auth/login", json={"username": "seat1", "password": "Seat#2026"})
    cookie = f"cityhub_session={r.cookies['cityhub_session']}"
    port = hub_state.settings.port
    with pytest.raises(InvalidStatus) as cross_site:
        await LiveClient(url, headers={"Cookie": cookie, "Origin": "http://evil.example"}).open()
    assert cross_site.value.response.status_code == 403
    ok = LiveClient(url, headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"})
    await ok.open()
    await ok.close()
    # Kiosk tickets are single use.
    seat = await login("seat1")
    t = (await seat.post("/api/live/ticket")).json()["ticket"]
    kiosk = LiveClient(url + f"?ticket={t}")
    assert (await kiosk.open())["user"]["username"] == "seat1"
    await kiosk.close()
    with pytest.raises(InvalidStatus) as reused:
        await LiveClient(url + f"?ticket={t}").open()
    assert reused.value.response.status_code == 401


async def test_stalled_client_is_told_to_resync_and_does_not_delay_others(
    hub_state: HubState, login: Any
) -> None:
    assert hub_state.live is not None
    hub_state.live.policy.max_bytes = 32 * 1024
    case_id, seat = await registered_case(login)
    token = await token_of(seat)
    healthy = LiveClient(ws_url(hub_state), token)
    await healthy.open()
    await healthy.subscribe("cases")
    # A client that subscribes and then never reads, with a tiny receive buffer.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", hub_state.live.bound_port))
    stalled.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    payload = orjson.dumps({"type": "subscribe", "channels": ["cases"]})
    mask = bytes(random.getrandbits(8) for _ in range(4))
    stalled.sendall(
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )
    async with asyncio.timeout(10):
        while not (
            len(hub_state.live.sessions) == 2 and all(s.subs for s in hub_state.live.sessions)
        ):
            await asyncio.sleep(0.05)
    # Simulate a slow network on the server side of that connection: a tiny kernel send buffer.
    port = stalled.getsockname()[1]
    slow = next(
        s for s in hub_state.live.sessions if s.conn.transport.get_extra_info("peername")[1] == port
    )
    slow.conn.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
    )
    # Many updates: the healthy client gets each promptly; the stalled one overflows.
    n = 120
    await escalate(seat, case_id, n)
    await healthy.wait(lambda: healthy.count("cases") >= n, timeout=20)
    assert not healthy.problems
    overflowed = [s for s in hub_state.live.sessions if s.overflowed]
    assert overflowed == [slow]
    # Once it reads again, it is told to resync (after the buffered frames).
    stalled.setblocking(False)
    received = b""
    async with asyncio.timeout(15):
        while b"slow_consumer" not in received:
            try:
                chunk = stalled.recv(1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.02)
                continue
            if not chunk:
                break
            received += chunk
    assert b'"type":"resync"' in received and b"slow_consumer" in received
    stalled.close()
    await healthy.close()


async def test_writers_and_reconnecting_clients_miss_nothing(
    hub_state: HubState, login: Any
) -> None:
    """8 concurrent writers x 40 transitions while 4 clients disconnect and reconnect at random:
    every client ends with exactly the events of its channel, no gap, no duplicate."""
    seat = await login("seat1")
    token = await token_of(seat)
    cases = [await registered_case(login) for _ in range(8)]
    assert hub_state.fanout is not None
    async with asyncio.timeout(10):  # the 16 set-up events (report, register) are relayed
        while hub_state.fanout.head("cases") < 16:
            await asyncio.sleep(0.05)
    start = hub_state.fanout.head("cases")
    clients = [LiveClient(ws_url(hub_state), token) for _ in range(4)]
    for c in clients:
        await c.open()
        await c.subscribe("cases")
    per_writer = 40
    stop = asyncio.Event()

    async def writer(case_id: int, api: Api) -> None:
        await escalate(api, case_id, per_writer)

    async def churn(c: LiveClient) -> None:
        rng = random.Random(id(c))
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            await c.close()
            await asyncio.sleep(rng.uniform(0.0, 0.2))
            await c.open()
            await c.subscribe("cases", resume=True)

    churners = [asyncio.ensure_future(churn(c)) for c in clients]
    await asyncio.gather(*(writer(cid, api) for cid, api in cases))
    stop.set()
    await asyncio.gather(*churners)
    total = 8 * per_writer
    async with asyncio.timeout(15):
        while hub_state.fanout.head("cases") < start + total:
            await asyncio.sleep(0.05)
    for c in clients:
        await c.wait(lambda c=c: c.offsets.get("cases", 0) >= start + total, timeout=15)
        offsets = [e["offset"] for e in c.events["cases"]]
        assert not c.problems, c.problems[:5]
        assert offsets == sorted(set(offsets)) and offsets[-1] == start + total
        assert offsets[0] == start + 1 or any(x["type"] == "resync" for x in c.control)
        await c.close()


async def test_many_reconnects_share_replays(hub_state: HubState, login: Any) -> None:
    """300 clients resuming from the same offset at once: the missed events are read from
    PostgreSQL once (the recent ring is emptied first, as after a restart), and all get them."""
    case_id, seat = await registered_case(login)
    assert hub_state.fanout is not None
    await escalate(seat, case_id, 10)
    async with asyncio.timeout(10):
        while hub_state.fanout.head("cases") < 12:
            await asyncio.sleep(0.05)
    head = hub_state.fanout.head("cases")
    hub_state.fanout.history = type(hub_state.fanout.history)(
        heads=dict(hub_state.fanout.history.heads)
    )
    token = await token_of(seat)
    clients = [LiveClient(ws_url(hub_state), token) for _ in range(300)]
    await asyncio.gather(*(c.open() for c in clients))
    before = hub_state.fanout.replay_queries
    for c in clients:
        c.offsets["cases"] = head - 10
    await asyncio.gather(*(c.subscribe("cases", resume=True) for c in clients))
    assert all(
        [e["offset"] for e in c.events["cases"]] == list(range(head - 9, head + 1)) for c in clients
    )
    assert hub_state.fanout.replay_queries - before <= 3
    await asyncio.gather(*(c.close() for c in clients))


async def test_state_channel_snapshot_then_changes(hub_state: HubState, login: Any) -> None:
    assert hub_state.fanout is not None
    hub_state.fanout.set_state(
        "alarms", "gas-07", {"level": "high", "grid_id": 3, "label": "化粪池可燃气体超标"}
    )
    await asyncio.sleep(0.05)
    seat = await login("seat1")
    client = LiveClient(ws_url(hub_state), await token_of(seat))
    await client.open()
    await client.subscribe("alarms")
    snap = next(c for c in client.control if c["type"] == "snapshot")
    assert snap["data"] == {
        "gas-07": {"level": "high", "grid_id": 3, "label": "化粪池可燃气体超标"}
    }
    hub_state.fanout.set_state("alarms", "gas-07", None)
    hub_state.fanout.set_state("alarms", "lamp-02", {"level": "low"})
    await client.wait(lambda: client.count("alarms") >= 2)
    changes = [(e["data"]["key"], e["data"]["value"]) for e in client.events["alarms"]]
    assert changes == [("gas-07", None), ("lamp-02", {"level": "low"})]
    assert [e["offset"] for e in client.events["alarms"]] == [
        snap["offset"] + 1,
        snap["offset"] + 2,
    ]
    await client.close()


async def test_dead_peer_is_detected_by_heartbeat(
    fresh_dsn: str, shared_data_dir: Any, login: Any
) -> None:
    from hub.web.app import build_state, close_state
    from tests.conftest import test_settings

    state = await build_state(test_settings(shared_data_dir, fresh_dsn, ws_heartbeat=0.5))
    try:
        assert state.live is not None
        seat_token = await token_of(await login("seat1"))
        # A peer that completes the handshake and then never answers pings.
        peer = socket.create_connection(("127.0.0.1", state.live.bound_port))
        peer.sendall(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + f"Authorization: Bearer {seat_token}\r\n\r\n".encode()
        )
        async with asyncio.timeout(10):
            while len(state.live.sessions) < 1:
                await asyncio.sleep(0.05)
        async with asyncio.timeout(5):
            while state.live.sessions:
                await asyncio.sleep(0.05)
        peer.close()
    finally:
        await close_state(state)


@pytest.mark.parametrize("first_xid", ["early", "late"])
async def test_events_committed_out_of_sequence_order_are_not_skipped(
    hub_state: HubState, login: Any, first_xid: str
) -> None:
    """Transaction A appends an event (lower seq) but commits after B (higher seq), whichever of the
    two took its transaction id first: the client still gets both, once each."""
    case_id, seat = await registered_case(login)
    client = LiveClient(ws_url(hub_state), await token_of(seat))
    await client.open()
    await client.subscribe("cases")
    insert = (
        "INSERT INTO case_events (case_id, version, action, actor_id, from_state, to_state, note)"
        " VALUES ($1, $2, 'escalate', $3, 'registered', 'registered', $4) RETURNING seq"
    )
    uid = seat.user["id"]
    async with hub_state.pool.acquire() as a, hub_state.pool.acquire() as b:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        if first_xid == "early":
            await a.fetchval("SELECT pg_current_xact_id()")
        else:
            await b.fetchval("SELECT pg_current_xact_id()")
        seq_a = await a.fetchval(insert, case_id, 1001, uid, "A")
        seq_b = await b.fetchval(insert, case_id, 1002, uid, "B")
        assert seq_a < seq_b
        await tb.commit()
        await asyncio.sleep(0.8)  # several relay passes while A is still open
        await ta.commit()

    def notes() -> list[str]:
        return [
            e["data"]["event"]["note"]
            for e in client.events.get("cases", [])
            if e["data"]["event"]["note"] in ("A", "B")
        ]

    await client.wait(lambda: len(notes()) >= 2)
    await asyncio.sleep(0.5)
    assert sorted(notes()) == ["A", "B"]
    assert not client.problems
    await client.close()
