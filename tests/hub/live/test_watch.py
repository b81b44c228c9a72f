"""``cityhub watch`` against a real hub process: prints each event as a JSON line and resumes from
a given offset."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from tests.conftest import ROOT, LiveHub

pytestmark = pytest.mark.slow


def _token(hub: LiveHub) -> str:
    r = httpx.post(
        f"{hub.base_url}/api/auth/login",
        json={"username": "seat1", "password": "Seat#2026", "token": True},
    )
    return str(r.json()["token"])


def _escalate(hub: LiveHub, token: str, n: int) -> int:
    h = {"Authorization": f"Bearer {token}"}
    case = httpx.get(
        f"{hub.base_url}/api/cases", params={"state": "registered", "limit": 1}, headers=h
    ).json()["items"][0]
    for i in range(n):
        v = httpx.get(f"{hub.base_url}/api/cases/{case['id']}", headers=h).json()["version"]
        r = httpx.post(
            f"{hub.base_url}/api/cases/{case['id']}/actions",
            headers=h,
            json={"action": "escalate", "version": v, "note": f"watch {i}"},
        )
        assert r.status_code == 200, r.text
    return int(case["id"])


def _read_lines(
    proc: subprocess.Popen[str], n: int, timeout: float = 20
) -> list[dict[str, object]]:
    assert proc.stdout is not None
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            out.append(orjson.loads(line))
    return out


def test_watch_prints_events_and_resumes(live_hub: LiveHub) -> None:
    token = _token(live_hub)
    args = [
        sys.executable,
        "-m",
        "hub.cli",
        "watch",
        "--url",
        live_hub.base_url,
        "--user",
        "seat1",
        "cases",
    ]
    with subprocess.Popen(
        args,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None
        proc.stdin.write("Seat#2026\n")
        proc.stdin.close()
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # control messages go to standard error
            if '"type":"subscribed"' in proc.stderr.readline():
                break
        cid = _escalate(live_hub, token, 3)
        lines = _read_lines(proc, 3)
        assert [e["channel"] for e in lines] == ["cases"] * 3
        assert all(e["data"]["id"] == cid for e in lines)  # type: ignore[index]
        offsets = [int(e["offset"]) for e in lines]  # type: ignore[call-overload]
        assert offsets == list(range(offsets[0], offsets[0] + 3))
        epoch = str(lines[0]["epoch"])
        proc.terminate()
    # Resume from the first of those: the other two come back, in order.
    env_args = [
        sys.executable,
        "-m",
        "hub.cli",
        "watch",
        "--url",
        live_hub.base_url,
        "--from",
        f"{epoch}:{offsets[0]}",
        "cases",
    ]
    with subprocess.Popen(
        env_args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CITYHUB_TOKEN": token},
    ) as proc:
        again = _read_lines(proc, 2)
        proc.terminate()
    assert [int(e["offset"]) for e in again] == offsets[1:]  # type: ignore[call-overload]
    bad = subprocess.run(
        [sys.executable, "-m", "hub.cli", "watch", "--url", live_hub.base_url, "--user", "seat1"],
        cwd=ROOT,
        input="wrong-password\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1 and "login failed" in bad.stderr and "Traceback" not in bad.stderr
