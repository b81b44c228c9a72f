"""HTTPS and WSS: ``cityhub tls selfsigned`` writes a CA and a server certificate signed by it; a real
``cityhub serve`` given that certificate answers over HTTPS only, marks its session cookie Secure,
tells pages to use ``wss://``, and its websocket listener speaks TLS with the same certificate (a
client trusting the CA alone connects, with a bearer token and with the Secure cookie)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from tests.conftest import ROOT, LiveHub, free_port, scratch_dir

HOSTS = "127.0.0.1,hub.city.test"


def selfsigned(out: Path, hosts: str = HOSTS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "tls", "selfsigned", "--out", str(out), "--host", hosts],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_selfsigned_writes_a_ca_and_a_server_certificate_it_signs(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    done = selfsigned(out)
    assert f"CITYHUB_TLS_CERT={out / 'server.crt'}" in done.stdout
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    chain = x509.load_pem_x509_certificates((out / "server.crt").read_bytes())
    server = chain[0]
    server.verify_directly_issued_by(ca)
    assert chain[1] == ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["hub.city.test"]
    for key in ("ca.key", "server.key"):
        assert (out / key).stat().st_mode & 0o077 == 0, key
    # A second run (a renewal) keeps the CA the seat PCs already trust and signs a new server cert.
    selfsigned(out, "127.0.0.1")
    assert x509.load_pem_x509_certificate((out / "ca.crt").read_bytes()) == ca
    renewed = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    assert renewed.serial_number != server.serial_number
    renewed.verify_directly_issued_by(ca)


def start_tls_hub(data_dir: Path, tls: Path, ca: ssl.SSLContext, timeout: float = 90.0) -> LiveHub:
    """``tests.conftest.start_hub`` waits on plain HTTP; this one waits on HTTPS."""
    port = free_port()
    log_path = data_dir.parent / f"hub-tls-{port}-{uuid.uuid4().hex[:6]}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")}
    env |= {
        "CITYHUB_WS_PORT": str(free_port()),
        "CITYHUB_SIP_PORT": "0",
        "CITYHUB_TLS_CERT": str(tls / "server.crt"),
        "CITYHUB_TLS_KEY": str(tls / "server.key"),
    }
    args = [sys.executable, "-m", "hub.cli", "serve", "--data-dir", str(data_dir)]
    args += ["--port", str(port), "--demo", "--demo-cases", "100"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    hub = LiveHub(f"https://127.0.0.1:{port}", proc, data_dir, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hub exited with {proc.returncode}:\n{hub.log()}")
        try:
            if httpx.get(f"{hub.base_url}/healthz", verify=ca, timeout=1).status_code == 200:
                return hub
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    hub.stop()
    raise RuntimeError(f"hub not ready in {timeout} s:\n{hub.log()}")


async def hello_over(url: str, ca: ssl.SSLContext, headers: dict[str, str]) -> dict[str, Any]:
    tls = ca if url.startswith("wss://") else None
    async with connect(url, ssl=tls, additional_headers=headers, open_timeout=10) as ws:
        first = orjson.loads(await ws.recv(decode=False))
        assert isinstance(first, dict)
        return first


@pytest.mark.slow
async def test_https_and_wss_with_the_generated_certificate(scratch_root: Path) -> None:
    root = scratch_dir(scratch_root, "tls")
    selfsigned(root / "tls")
    ca = ssl.create_default_context(cafile=str(root / "tls" / "ca.crt"))
    hub = start_tls_hub(root / "data", root / "tls", ca)
    try:
        base = hub.base_url
        async with httpx.AsyncClient(base_url=base, verify=ca, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
            # Nobody is served in the clear on the HTTPS port, and a client trusting nothing
            # extra refuses the certificate.
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{hub.port}/healthz", timeout=3)
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{base}/healthz", timeout=3)

            # A browser sign-in: the session cookie is Secure.
            origin = f"https://127.0.0.1:{hub.port}"
            r = await http.post(
                "/api/auth/login",
                json={"username": "seat1", "password": "Seat#2026"},
                headers={"Origin": origin},
            )
            assert r.status_code == 200, r.text
            set_cookie = r.headers["set-cookie"]
            assert "; Secure" in set_cookie and "HttpOnly" in set_cookie
            cookie = set_cookie.split(";", 1)[0]

            # Pages learn the websocket URL from /api/live: wss:// on the listener's port.
            r = await http.get("/api/live", headers={"Cookie": cookie})
            assert r.status_code == 200, r.text
            url = r.json()["url"]
            assert url.startswith("wss://127.0.0.1:") and url.endswith("/ws")
            # … and the pages' policy lets them connect there.
            csp = (await http.get("/login")).headers["content-security-policy"]
            assert url.removesuffix("/ws") in csp

            r = await http.post(
                "/api/auth/login",
                json={"username": "seat1", "password": "Seat#2026", "token": True},
            )
            assert r.status_code == 200, r.text
            bearer = {"Authorization": f"Bearer {r.json()['token']}"}

        hello = await hello_over(url, ca, bearer)
        assert hello["type"] == "hello" and hello["user"]["username"] == "seat1"
        hello = await hello_over(url, ca, {"Cookie": cookie, "Origin": origin})
        assert hello["type"] == "hello" and hello["user"]["username"] == "seat1"
        # The listener speaks TLS only, with the certificate the CA signed.
        with pytest.raises(InvalidHandshake):
            await hello_over(url.replace("wss://", "ws://"), ca, bearer)
        with pytest.raises(ssl.SSLCertVerificationError):
            await hello_over(url, ssl.create_default_context(), bearer)
        assert "on https://" in hub.log() and "live updates on wss://" in hub.log()
    finally:
        hub.stop()
