"""Desk phones on loopback: sipp as an agent's desk phone registers to the hub with digest auth
(``phone_register.xml``, sipp's ``[authentication]``) and takes the call side
(``phone_answer.xml``: rings, answers in PCMU, plays a 1000 Hz tone with ``rtp_stream``, hangs
up). A citizen dials 12319 (the hub's own user agent, PCMA, a 440 Hz tone); the agent, ready on
the phone, is offered the call by INVITE; the caller hears the phone's tone re-coded to A-law; the
phone's BYE is the agent hanging up; the record is answered by the agent. A phone with the wrong
password is refused 403 and never offered a call (it stays queued, the agent 示忙 话机未注册), and
a REGISTER storm of garbage and wrong passwords leaves the registrar answering."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hub.state import HubState
from hub.web.app import build_state, close_state
from storage.db import connect
from telephony.g711 import G711Law
from telephony.hotline.acd import DECLINED_REASON, RING_TIMEOUT_REASON
from telephony.hotline.phone import UNREGISTERED, PhoneLeg, transcoder
from telephony.sip.message import Response, parse
from tests.conftest import Api
from tests.conftest import test_settings as settings_for
from tests.telephony.hotline.support import Caller, channel, hotline, until
from tests.telephony.test_sip_endpoint import SIPP_DIR, run_sipp, sipp_or_skip
from tests.telephony.test_sip_registrar import answer as digest_answer
from tests.telephony.test_sip_registrar import register as reg_request
from tests.telephony.test_sip_registrar import wire
from tests.telephony.test_sip_sipp import free_udp_port
from tests.telephony.warnings.test_talk import dominant

pytestmark = pytest.mark.timeout(120)

SIP_USER = "8001"
PASSWORD = "Desk#2026pw"
SIPP_TIMEOUT = 30.0


@pytest.fixture
def hotline_options() -> dict[str, Any]:
    return {"hotline_wrapup": 2.0, "hotline_ring_timeout": 10.0}


@pytest.fixture
def caller_ports() -> tuple[int, int]:
    return (47000, 47999)


def scenario(tmp: Path, name: str, **subs: str) -> Path:
    """A scenario of tests/telephony/sipp with its @KEY@ placeholders filled in."""
    text = (SIPP_DIR / name).read_text()
    for key, value in subs.items():
        text = text.replace(f"@{key.upper()}@", value)
    assert re.search(r"@[A-Z_]+@", text.split("-->", 1)[-1]) is None, "unfilled placeholder"
    path = tmp / name
    path.write_text(text)
    return path


def tone_file(path: Path, freq: float = 1000.0, seconds: float = 10.0) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    path.write_bytes(G711Law.ULAW.encode((np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)))
    return path


async def provision(admin: Api, agent_id: int, password: str = PASSWORD) -> httpx.Response:
    return await admin.client.put(f"/api/hotline/phones/{agent_id}", headers=admin.headers,
                                  json={"sip_user": SIP_USER, "password": password})  # fmt: skip


async def register(
    tmp: Path, hub_port: int, phone_port: int, *, password: str, expect: int, calls: int = 1
) -> int:
    """sipp registering ``SIP_USER`` with ``password``; its exit code (0: every REGISTER ended
    with ``expect``)."""
    cwd = tmp / f"reg-{expect}-{calls}"
    cwd.mkdir(exist_ok=True)
    path = scenario(cwd, "phone_register.xml", expect=str(expect))
    return await run_sipp(
        "-sf", str(path), f"127.0.0.1:{hub_port}", "-i", "127.0.0.1", "-p", "0",
        "-m", str(calls), "-r", "100", "-l", "20",
        "-s", SIP_USER, "-au", SIP_USER, "-ap", password, "-key", "phone_port", str(phone_port),
        "-timeout", "15", "-timeout_error", "-trace_err",
        cwd=cwd, timeout=SIPP_TIMEOUT,
    )  # fmt: skip


class DeskPhone:
    """The call side of the phone: sipp running phone_answer.xml on ``port``."""

    def __init__(self, tmp: Path, name: str = "phone_answer.xml", *, talk_ms: int = 4000) -> None:
        self.cwd = tmp / f"phone-{name}"
        self.cwd.mkdir(exist_ok=True)
        self.port = free_udp_port()
        tone = tone_file(self.cwd / "tone.pcmu")
        self.path = scenario(self.cwd, name, tone=str(tone), talk_ms=str(talk_ms))
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> DeskPhone:
        self.proc = await asyncio.create_subprocess_exec(
            sipp_or_skip(), "-sf", str(self.path), "-i", "127.0.0.1", "-p", str(self.port),
            "-mp", str(free_udp_port(pair=True)), "-m", "1", "-s", SIP_USER,
            "-timeout", "60", "-timeout_error", "-trace_err", "-trace_msg",
            "-message_file", "msg.log", "-nostdin",
            cwd=self.cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(0.3)
        return self

    async def finish(self) -> int:
        assert self.proc is not None
        _, err = await asyncio.wait_for(self.proc.communicate(), SIPP_TIMEOUT)
        assert self.proc.returncode in (0, 1), err.decode(errors="replace")
        return self.proc.returncode

    def errors(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.cwd.glob("*_errors.log"))

    def messages(self) -> str:
        log = self.cwd / "msg.log"
        return log.read_text(errors="replace") if log.exists() else ""

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def test_a_desk_phone_registers_with_digest_and_answers_a_queued_call(
    hub: HubState, api: Any, caller: Caller, tmp_path: Path
) -> None:
    service = hotline(hub)
    _, hub_port = service.stack.agent.local_address
    admin, agent = await api("admin"), await api("agent1")
    me = str(agent.user["id"])

    r = await provision(admin, agent.user["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sip_user"] == SIP_USER and body["registered"] is False
    assert PASSWORD not in r.text and "ha1" not in body
    async with connect(hub.pool) as conn:
        row = await conn.fetchrow("SELECT * FROM hotline_phones WHERE user_id = $1", int(me))
        audit = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'hotline_phone_set'"
            " AND target = $1", f"user:{me}")  # fmt: skip
    assert row is not None and PASSWORD not in str(dict(row))
    assert row["ha1"] == hashlib.md5(f"{SIP_USER}:cityhub:{PASSWORD}".encode()).hexdigest()  # noqa: S324
    assert audit == 1

    async with DeskPhone(tmp_path) as phone:
        rc = await register(tmp_path, hub_port, phone.port, password=PASSWORD, expect=200)
        assert rc == 0, "the phone's REGISTER was not granted"
        listed = (await admin.get("/api/hotline/phones")).json()["items"]
        assert [p["sip_user"] for p in listed] == [SIP_USER] and listed[0]["registered"]
        assert listed[0]["contacts"][0]["contact"] == f"sip:{SIP_USER}@127.0.0.1:{phone.port}"
        assert 100 <= listed[0]["contacts"][0]["expires_in"] <= 120
        assert "ha1" not in listed[0]

        r = await agent.post("/api/hotline/me/state", json={"state": "signed_in"})
        assert r.status_code == 200, r.text
        r = await agent.post("/api/hotline/me/device", json={"device": "phone"})
        assert r.status_code == 200, r.text
        assert r.json()["device"] == "phone" and r.json()["phone"]["registered"] is True
        r = await agent.post("/api/hotline/me/state", json={"state": "ready"})
        assert r.status_code == 200, r.text

        await caller.dial(hub_port)
        # queued, offered to the phone (INVITE), answered by it: talking, bridged to a PhoneLeg
        await until(lambda: channel(hub, "agents").get(me, {}).get("state") == "talking", 30,
                    "the phone to answer")  # fmt: skip
        call = channel(hub, "agents")[me]["call"]
        bridged = service.legs[call].agent
        assert bridged is not None and isinstance(bridged.leg, PhoneLeg)
        assert bridged.leg.codec == "PCMU" and not bridged.leg.passthrough  # re-coded to A-law
        await asyncio.sleep(2.0)
        heard = caller.last(1.0)
        assert np.abs(heard).mean() > 500, "the caller hears silence"
        assert abs(dominant(heard) - 1000.0) < 20  # the phone's tone, through the hub
        assert bridged.leg.frames_in > 50 and bridged.leg.frames_out > 50

        # the phone hangs up: the agent has hung up (wrap-up), the caller gets BYE
        await until(lambda: channel(hub, "agents")[me]["state"] in ("wrap_up", "ready"), 15,
                    "the phone's BYE")  # fmt: skip
        assert caller.call is not None
        assert await asyncio.wait_for(caller.call.ended, 5) == "remote_bye"
        assert await phone.finish() == 0, phone.errors()
        assert "INVITE sip:8001@127.0.0.1" in phone.messages()
        assert "P-Asserted-Identity: <sip:13800001111@127.0.0.1>" in phone.messages()

    await until(lambda: channel(hub, "queue")["today"]["answered"] == 1, 10, "counted")
    items = (await agent.get("/api/hotline/calls")).json()["items"]
    assert len(items) == 1
    assert items[0]["outcome"] == "answered" and items[0]["agent_id"] == agent.user["id"]
    assert items[0]["caller"] == "13800001111"


async def test_a_wrong_password_is_refused_and_the_call_is_not_offered_to_the_phone(
    hub: HubState, api: Any, caller: Caller, tmp_path: Path
) -> None:
    service = hotline(hub)
    _, hub_port = service.stack.agent.local_address
    admin, agent = await api("admin"), await api("agent1")
    me = str(agent.user["id"])

    r = await agent.post("/api/hotline/me/device", json={"device": "phone"})
    assert r.status_code == 404, r.text  # no phone provisioned yet
    r = await agent.client.put(f"/api/hotline/phones/{me}", headers=agent.headers,
                               json={"sip_user": SIP_USER, "password": PASSWORD})  # fmt: skip
    assert r.status_code == 403  # only an admin provisions phones
    assert (await provision(admin, agent.user["id"])).status_code == 200
    other = await api("agent2")
    r = await provision(admin, other.user["id"])  # the same SIP user for another agent
    assert r.status_code == 409, r.text

    phone_port = free_udp_port()
    rc = await register(tmp_path, hub_port, phone_port, password="not-the-password", expect=403)
    assert rc == 0, "a wrong password was not refused with 403"
    assert service.phones.contacts(me) == []

    assert (await agent.post("/api/hotline/me/state", json={"state": "signed_in"})).is_success
    r = await agent.post("/api/hotline/me/device", json={"device": "phone"})
    assert r.status_code == 200 and r.json()["phone"]["registered"] is False
    assert (await agent.post("/api/hotline/me/state", json={"state": "ready"})).is_success

    sent_before = service.stack.agent.stats["sent"]
    await caller.dial(hub_port)
    await until(lambda: channel(hub, "agents").get(me, {}).get("state") == "not_ready", 20,
                "the offer to the unregistered phone to be withdrawn")  # fmt: skip
    assert channel(hub, "agents")[me]["reason"] == UNREGISTERED
    await asyncio.sleep(1.0)
    calls = channel(hub, "queue")["calls"]
    assert len(calls) == 1 and calls[0]["state"] == "queued" and calls[0]["agent"] is None
    assert service.phones._ringing == {}  # no INVITE went anywhere
    assert service.stack.agent.stats["sent"] - sent_before < 10  # the caller's answer only
    mine = (await agent.get("/api/hotline/me")).json()
    assert mine["state"] == "not_ready" and mine["device"] == "phone"

    # back to the browser: the agent is offered the waiting call again, as before
    r = await agent.post("/api/hotline/me/device", json={"device": "browser"})
    assert r.status_code == 200 and r.json()["device"] == "browser"
    assert (await agent.post("/api/hotline/me/state", json={"state": "ready"})).is_success
    await until(lambda: channel(hub, "agents")[me]["state"] == "offered", 10, "offered again")

    # the account goes: the phones list is empty again, and the audit says who did it
    r = await admin.client.delete(f"/api/hotline/phones/{me}", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await admin.get("/api/hotline/phones")).json()["items"] == []
    async with connect(hub.pool) as conn:
        actions = await conn.fetch(
            "SELECT action, user_id FROM audit_log WHERE action LIKE 'hotline_phone%' ORDER BY id"
        )
    assert [(a["action"], a["user_id"]) for a in actions] == [
        ("hotline_phone_set", admin.user["id"]), ("hotline_phone_delete", admin.user["id"])]  # fmt: skip


async def test_a_busy_phone_declines_and_a_phone_ringing_out_is_cancelled(
    hub: HubState, api: Any, caller: Caller, tmp_path: Path
) -> None:
    """486 from the phone is the agent declining; a phone that only rings is CANCELled at the
    ACD's ring timeout (10 s here). Both times the call goes back to its place in the queue."""
    service = hotline(hub)
    _, hub_port = service.stack.agent.local_address
    admin, agent = await api("admin"), await api("agent1")
    me = str(agent.user["id"])
    assert (await provision(admin, agent.user["id"])).status_code == 200
    assert (await agent.post("/api/hotline/me/state", json={"state": "signed_in"})).is_success
    assert (await agent.post("/api/hotline/me/device", json={"device": "phone"})).is_success

    def agent_is(state: str, reason: str) -> bool:
        a = channel(hub, "agents").get(me, {})
        return bool(a.get("state") == state and a.get("reason") == reason)

    def queued() -> bool:
        calls = channel(hub, "queue").get("calls", [])
        return len(calls) == 1 and calls[0]["state"] == "queued"

    async with DeskPhone(tmp_path, "uas_486.xml") as busy:
        rc = await register(tmp_path, hub_port, busy.port, password=PASSWORD, expect=200)
        assert rc == 0
        assert (await agent.post("/api/hotline/me/state", json={"state": "ready"})).is_success
        await caller.dial(hub_port)
        await until(lambda: agent_is("not_ready", DECLINED_REASON), 20, "486 = declined")
        await until(queued, 5, "the call back in the queue")
        assert await busy.finish() == 0, busy.errors()

    async with DeskPhone(tmp_path, "uas_ring.xml") as ringing:
        rc = await register(tmp_path, hub_port, ringing.port, password=PASSWORD, expect=200)
        assert rc == 0
        assert service.phones.contacts(me)[0].contact.endswith(f":{ringing.port}")  # the newest
        assert (await agent.post("/api/hotline/me/state", json={"state": "ready"})).is_success
        await until(lambda: channel(hub, "agents")[me]["state"] == "offered", 10, "ringing")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await until(lambda: agent_is("not_ready", RING_TIMEOUT_REASON), 20, "ring timeout")
        assert 8.0 <= loop.time() - started <= 12.0
        assert await ringing.finish() == 0, ringing.errors()  # it got the CANCEL (and 487'd)
        await until(queued, 5, "the call back in the queue")
    assert service.phones._ringing == {}


async def test_a_phone_that_unregisters_makes_its_ready_agent_not_ready(
    hub: HubState, api: Any
) -> None:
    """Hand-made REGISTERs (the client side's digest maths) bind, then unbind with Expires 0: the
    agent waiting for calls on that phone becomes 示忙 话机未注册."""
    service = hotline(hub)
    host, hub_port = service.stack.agent.local_address
    admin, agent = await api("admin"), await api("agent1")
    me = str(agent.user["id"])
    assert (await provision(admin, agent.user["id"])).status_code == 200
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]
        contact = f"<sip:{SIP_USER}@127.0.0.1:{port}>"
        uri = f"sip:{host}:{hub_port}"

        async def send(request: Any) -> Response:
            await loop.sock_sendto(sock, wire(request, port), (host, hub_port))
            async with asyncio.timeout(3.0):
                for _ in range(5):
                    answer_ = parse(await loop.sock_recv(sock, 65536))
                    if isinstance(answer_, Response) and answer_.status >= 200:
                        return answer_
            raise AssertionError("no final response")

        first = await send(reg_request(contact, user=SIP_USER, uri=uri, expires="300"))
        auth = digest_answer(first, user=SIP_USER, password=PASSWORD, uri=uri)
        ok = await send(reg_request(contact, user=SIP_USER, uri=uri, expires="300", cseq=2,
                                    auth=auth))  # fmt: skip
        assert ok.status == 200 and len(service.phones.contacts(me)) == 1
        assert (await agent.post("/api/hotline/me/state", json={"state": "signed_in"})).is_success
        assert (await agent.post("/api/hotline/me/device", json={"device": "phone"})).is_success
        assert (await agent.post("/api/hotline/me/state", json={"state": "ready"})).is_success
        auth = digest_answer(first, user=SIP_USER, password=PASSWORD, uri=uri, nc=2)
        gone = await send(reg_request(contact, user=SIP_USER, uri=uri, expires="0", cseq=3,
                                      auth=auth))  # fmt: skip
        assert gone.status == 200 and service.phones.contacts(me) == []
    await until(lambda: channel(hub, "agents")[me]["reason"] == UNREGISTERED, 5, "示忙")
    assert channel(hub, "agents")[me]["state"] == "not_ready"


def test_the_law_tables_re_code_like_decoding_and_encoding() -> None:
    codes = bytes(range(256))
    a2u = transcoder(G711Law.ALAW, G711Law.ULAW)
    assert a2u is not None and codes.translate(a2u) == G711Law.ULAW.encode(
        G711Law.ALAW.decode(codes)
    )
    assert transcoder(G711Law.ULAW, G711Law.ULAW) is None  # the same law passes through


async def test_a_register_storm_and_garbage_leave_the_registrar_answering(
    hub: HubState, api: Any, tmp_path: Path
) -> None:
    service = hotline(hub)
    host, hub_port = service.stack.agent.local_address
    admin, agent = await api("admin"), await api("agent1")
    assert (await provision(admin, agent.user["id"])).status_code == 200

    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)  # the hub answers on this same event loop
        port = sock.getsockname()[1]
        malformed = (f"REGISTER sip:{host} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
                     "branch=z9hG4bKstorm\r\nFrom: <sip:8001@h>;tag=1\r\nTo: <sip:8001@h>\r\n"
                     "Call-ID: s\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                     "Contact: <sip:8001@h>;expires=never\r\n\r\n").encode()  # fmt: skip
        await loop.sock_sendto(sock, malformed, (host, hub_port))
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 2.0)
        assert data.startswith(b"SIP/2.0 400"), data[:80]
        for i in range(300):  # garbage: nothing answers, nothing breaks
            junk = b"REGISTER " + bytes((i * 31 + k) % 256 for k in range(i % 200))
            await loop.sock_sendto(sock, junk, (host, hub_port))

    # 40 phones with a wrong password at 100/s: every one refused 403
    rc = await register(tmp_path, hub_port, free_udp_port(), password="wrong", expect=403,
                        calls=40)  # fmt: skip
    assert rc == 0
    # and the right one is still registered at once
    rc = await register(tmp_path, hub_port, free_udp_port(), password=PASSWORD, expect=200)
    assert rc == 0
    assert len(service.phones.contacts(str(agent.user["id"]))) == 1
    assert service.stack.agent.endpoint.stats.handler_errors == 0


async def test_a_restarted_hub_knows_where_the_phone_is_until_new_credentials(
    hub: HubState, api: Any, tmp_path: Path, fresh_dsn: str, shared_data_dir: Path
) -> None:
    """The registration is stored: a hub started afterwards on the same database (as after a
    restart) finds the phone at once, without waiting for it to register again; provisioning a
    new password forgets it there too."""
    service = hotline(hub)
    _, hub_port = service.stack.agent.local_address
    admin, agent = await api("admin"), await api("agent1")
    me = str(agent.user["id"])
    assert (await provision(admin, agent.user["id"])).status_code == 200
    phone_port = free_udp_port()
    assert await register(tmp_path, hub_port, phone_port, password=PASSWORD, expect=200) == 0
    contact = f"sip:{SIP_USER}@127.0.0.1:{phone_port}"
    assert [b.contact for b in service.phones.contacts(me)] == [contact]

    async def stored() -> list[str]:
        async with connect(hub.pool) as conn:
            rows = await conn.fetch("SELECT contact FROM hotline_phone_bindings")
        return [r["contact"] for r in rows]

    async with asyncio.timeout(10):
        while await stored() != [contact]:
            await asyncio.sleep(0.05)

    later = await build_state(
        settings_for(shared_data_dir, fresh_dsn, hotline_trunks=("127.0.0.0/8",))
    )
    try:
        restarted = hotline(later).phones.contacts(me)
        assert [b.contact for b in restarted] == [contact]
        left = restarted[0].expires_at - time.time()
        assert 100 <= left <= 120  # the expiry it was granted, not a fresh hour
    finally:
        await close_state(later)

    assert (await provision(admin, agent.user["id"], password="New#2026pw")).status_code == 200
    assert service.phones.contacts(me) == []
    assert await stored() == []
