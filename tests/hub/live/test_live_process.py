"""A real ``cityhub serve`` process with its embedded PostgreSQL: a restart loses nothing, operators
add accounts from the shell, a database outage is reported (503) and recovered from."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, scratch_dir, start_hub
from tests.helpers import png_bytes

pytestmark = pytest.mark.slow


def login(base: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(
        f"{base}/api/auth/login", json={"username": username, "password": password, "token": True}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def a_point(base: str, h: dict[str, str]) -> tuple[float, float]:
    grid = httpx.get(f"{base}/api/grids", params={"level": 2}, headers=h).json()["items"][0]
    ring = httpx.get(f"{base}/api/grids/{grid['id']}", headers=h).json()["boundary"]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


def pg_ctl(data_dir: Path, *args: str) -> None:
    """Drive the embedded server's own pg_ctl (as the user pgserver runs it as, when root)."""
    import pgserver

    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    pgdata = data_dir / "pg"
    owner = pgdata.owner()
    subprocess.run(
        [str(binary), "-D", str(pgdata), *args],
        check=True,
        user=owner,
        capture_output=True,
        timeout=60,
    )


def test_restart_loses_nothing_and_cli_adds_users(scratch_root: Path) -> None:
    data = scratch_dir(scratch_root, "restart") / "data"
    hub = start_hub(data, demo_cases=300)
    try:
        h = login(hub.base_url, "seat1", "Seat#2026")
        lon, lat = a_point(hub.base_url, h)
        cats = httpx.get(f"{hub.base_url}/api/categories", headers=h).json()["items"]
        photo = httpx.post(
            f"{hub.base_url}/api/attachments",
            headers=h,
            files={"file": ("现场.png", png_bytes(), "image/png")},
        ).json()["items"][0]
        r = httpx.post(
            f"{hub.base_url}/api/cases",
            headers=h,
            json={
                "category_id": cats[0]["id"],
                "source": "video",
                "description": "重启前的案件",
                "lon": lon,
                "lat": lat,
                "attachment_ids": [photo["id"]],
            },
        )
        assert r.status_code == 201, r.text
        case = r.json()
        r = httpx.post(
            f"{hub.base_url}/api/cases/{case['id']}/actions",
            headers=h,
            json={"action": "register", "version": 1},
        )
        assert r.status_code == 200
        before = httpx.get(f"{hub.base_url}/api/cases/{case['id']}", headers=h).json()
        total_before = len(
            httpx.get(f"{hub.base_url}/api/cases", params={"limit": 200}, headers=h).json()["items"]
        )
    finally:
        hub.stop()
    # SIGTERM: uvicorn shuts down gracefully, then exits by the signal.
    assert hub.proc.returncode in (0, -15) and "Application shutdown complete" in hub.log(), (
        hub.log()
    )
    assert "Seat#2026" not in hub.log()

    # An operator adds an account from the shell; the password comes on standard input.
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "users",
            "add",
            "zhao.gang",
            "--role",
            "dispatcher",
            "--display-name",
            "赵刚",
            "--data-dir",
            str(data),
        ],
        input="Zhao#gang2026\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "Zhao#gang2026" not in r.stdout + r.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "users",
            "add",
            "x.y",
            "--role",
            "department",
            "--department",
            "no-such",
            "--data-dir",
            str(data),
        ],
        input="Whatever#2026\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert bad.returncode != 0 and "no-such" in bad.stderr and "Traceback" not in bad.stderr

    hub = start_hub(data, demo_cases=300)
    try:
        h = login(hub.base_url, "seat1", "Seat#2026")
        after = httpx.get(f"{hub.base_url}/api/cases/{case['id']}", headers=h).json()
        assert after == before
        total_after = len(
            httpx.get(f"{hub.base_url}/api/cases", params={"limit": 200}, headers=h).json()["items"]
        )
        assert total_after == total_before
        img = httpx.get(f"{hub.base_url}/api/attachments/{photo['id']}", headers=h)
        assert img.content == png_bytes()
        h2 = login(hub.base_url, "zhao.gang", "Zhao#gang2026")
        me = httpx.get(f"{hub.base_url}/api/auth/me", headers=h2).json()["user"]
        assert me["role"] == "dispatcher" and me["display_name"] == "赵刚"
    finally:
        hub.stop()


def test_database_outage_reported_and_recovered(scratch_root: Path) -> None:
    data = scratch_dir(scratch_root, "outage") / "data"
    hub = start_hub(data, demo_cases=100)
    try:
        h = login(hub.base_url, "seat1", "Seat#2026")
        assert httpx.get(f"{hub.base_url}/api/cases", headers=h).status_code == 200
        pg_ctl(data, "stop", "-m", "fast", "-w")
        health = httpx.get(f"{hub.base_url}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        r = httpx.get(f"{hub.base_url}/api/cases", headers=h, timeout=10)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
        pg_ctl(
            data,
            "start",
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {data / 'pg'}",
            "-l",
            str(data / "pg" / "log"),
        )
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            status = httpx.get(f"{hub.base_url}/api/cases", headers=h, timeout=10).status_code
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200
        assert httpx.get(f"{hub.base_url}/healthz").status_code == 200
        assert "Traceback" not in hub.log()
    finally:
        hub.stop()
