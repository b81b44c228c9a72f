"""The hub's own SIP socket (the telephony subsystem's user agent, as ``cityhub serve`` starts it)
with sipp and raw datagrams as the caller: OPTIONS answered, an INVITE to a number the hub does not
serve rejected cleanly with no call left behind, malformed and oversized datagrams answered 400 or
dropped — and the hub keeps serving warnings afterwards."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from hub.state import HubState
from telephony.warnings.service import VoiceService
from tests.telephony.test_sip_endpoint import SIPP_DIR, run_sipp
from tests.telephony.test_sip_sipp import free_udp_port, stats

pytestmark = pytest.mark.timeout(90)


def voice(hub: HubState) -> VoiceService:
    service = hub.services["voice"]
    assert isinstance(service, VoiceService)
    return service


async def sipp_calls(scenario: str, target: str, cwd: Path, calls: int = 5) -> dict[str, str]:
    rc = await run_sipp(
        "-sf", str(SIPP_DIR / scenario), target,
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port(pair=True)),
        "-m", str(calls), "-r", "20", "-timeout", "30s", "-trace_stat", "-stf", "stat.csv",
        cwd=cwd,
    )  # fmt: skip
    assert rc == 0
    return stats(cwd)


def exchange(data: bytes, addr: tuple[str, int], timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, addr)
        try:
            return s.recv(65536)
        except TimeoutError:
            return None


async def test_sipp_options_and_unknown_numbers_against_the_hub(
    hub_state: HubState, tmp_path: Path
) -> None:
    agent = voice(hub_state).agent
    host, port = agent.local_address
    target = f"{host}:{port}"
    (tmp_path / "o").mkdir()
    st = await sipp_calls("options.xml", target, tmp_path / "o")
    assert st["SuccessfulCall(C)"] == "5" and st["FailedCall(C)"] == "0"
    (tmp_path / "u").mkdir()
    st = await sipp_calls("uac_unknown.xml", target, tmp_path / "u")
    assert st["SuccessfulCall(C)"] == "5" and st["FailedCall(C)"] == "0"
    await asyncio.sleep(0.2)
    assert agent.calls == {}  # nothing left behind
    assert agent.stats["calls_failed"] == 5


async def test_malformed_and_oversized_datagrams_leave_the_hub_serving(
    hub_state: HubState, client: Any, tmp_path: Path
) -> None:
    agent = voice(hub_state).agent
    addr = agent.local_address
    loop = asyncio.get_running_loop()
    broken = (
        b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: one INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    answer = await loop.run_in_executor(None, exchange, broken, addr)
    assert answer is not None and answer.startswith(b"SIP/2.0 400 ")
    for junk in (b"\x00\xff" * 100, b"hello", b"\r\n\r\n", b"INVITE " + b"a" * 60_000):
        await loop.run_in_executor(None, exchange, junk, addr, 0.2)
    assert agent.stats["parse_errors"] >= 4
    # still serving: OPTIONS by sipp, and the hub's HTTP side
    (tmp_path / "o").mkdir()
    st = await sipp_calls("options.xml", f"{addr[0]}:{addr[1]}", tmp_path / "o", calls=2)
    assert st["SuccessfulCall(C)"] == "2"
    assert (await client.get("/healthz")).json()["status"] in ("ok", "degraded")
