"""Shared fixtures: a real PostgreSQL (the embedded pgserver one, or ``CITYHUB_TEST_DATABASE_URL``),
a template database holding the schema, the reference data and a small demo city, one fresh copy of
it per test, the ASGI app wired to it, and a real ``cityhub serve`` process for browser tests."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from hub.settings import Secret, Settings
from hub.state import HubState
from hub.web.app import build_state, close_state, create_app
from tests.redis_fixture import redis_server  # noqa: F401  (a fixture for the cluster tests)

TEMPLATE_DB = "cityhub_template"
TEMPLATE_CASES = 400
ROOT = Path(__file__).resolve().parent.parent


def dsn_for(base: str, dbname: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def scratch_root() -> Iterator[Path]:
    """A directory for PostgreSQL data dirs, outside pytest's own temp root: pytest resets that
    root to mode 0700 whenever another pytest process starts, which locks out the unprivileged
    user that pgserver runs PostgreSQL as when we are root."""
    root = Path(tempfile.mkdtemp(prefix="cityhub-tests-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def scratch_dir(root: Path, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=name + "-", dir=root))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def pg_base(scratch_root: Path) -> Iterator[str]:
    """DSN of a PostgreSQL server we may create databases on."""
    external = os.environ.get("CITYHUB_TEST_DATABASE_URL")
    if external:
        yield external
        return
    os.environ.setdefault("XDG_RUNTIME_DIR", str(scratch_dir(scratch_root, "run")))
    from pgserver import get_server  # type: ignore[attr-defined]

    srv = get_server(scratch_dir(scratch_root, "pg"), cleanup_mode="stop")
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for all in-process hubs: attachments are content-addressed, so the demo's
    photos stored while building the template are there for every copy of it."""
    return tmp_path_factory.mktemp("data")


async def _admin_exec(base: str, sql: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_db(pg_base: str, shared_data_dir: Path) -> str:
    """A database with migrations, reference data and a small demo city, used as a template."""
    from hub.demo import load_demo

    await _admin_exec(pg_base, f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
    await _admin_exec(pg_base, f"CREATE DATABASE {TEMPLATE_DB}")
    state = await build_state(
        test_settings(shared_data_dir, dsn_for(pg_base, TEMPLATE_DB)), live=False
    )
    try:
        await load_demo(
            state.pool,
            attachments=state.attachments,
            calendar=state.cases.calendar,
            now=datetime.now(UTC),
            n_cases=TEMPLATE_CASES,
        )
    finally:
        await close_state(state)
    return TEMPLATE_DB


def test_settings(data_dir: Path, dsn: str, **kw: Any) -> Settings:
    """Settings of an in-process hub: the websocket listener on any free port."""
    return Settings(
        data_dir=data_dir,
        database_url=Secret(dsn),
        secret_key=Secret("test-secret-key"),
        **{"ws_port": 0, "sip_port": 0, "webrtc_networks": ("127.0.0.0/8",), **kw},
    )


@pytest.fixture
async def fresh_dsn(pg_base: str, template_db: str) -> AsyncIterator[str]:
    name = "t_" + uuid.uuid4().hex[:12]
    await _admin_exec(pg_base, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    try:
        yield dsn_for(pg_base, name)
    finally:
        await _admin_exec(pg_base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def hub_state(fresh_dsn: str, shared_data_dir: Path) -> AsyncIterator[HubState]:
    state = await build_state(test_settings(shared_data_dir, fresh_dsn))
    try:
        yield state
    finally:
        await close_state(state)


@pytest.fixture
async def client(hub_state: HubState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub_state.settings)
    app.state.hub = hub_state
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class Api:
    """A signed-in API client (bearer token), with helpers that fail loudly on surprises."""

    def __init__(self, client: httpx.AsyncClient, token: str, user: dict[str, Any]) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.user = user

    def _headers(self, kw: dict[str, Any]) -> dict[str, str]:
        """The bearer token with the request's own headers (``headers=``) on top."""
        return {**self.headers, **kw.pop("headers", {})}

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self._headers(kw), **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self._headers(kw), **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.patch(url, headers=self._headers(kw), **kw)

    async def act(self, case_id: int, action: str, **fields: Any) -> httpx.Response:
        if "version" not in fields:
            r = await self.get(f"/api/cases/{case_id}")
            assert r.status_code == 200, r.text
            fields["version"] = r.json()["version"]
        return await self.post(f"/api/cases/{case_id}/actions", json={"action": action, **fields})


@pytest.fixture
def login(client: httpx.AsyncClient) -> Any:
    async def _login(username: str, password: str | None = None) -> Api:
        from hub.demo import DEMO_USERS

        pw = password if password is not None else DEMO_USERS[username][1]
        r = await client.post(
            "/api/auth/login", json={"username": username, "password": pw, "token": True}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return Api(client, body["token"], body["user"])

    return _login


# -- a real hub process --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class LiveHub:
    base_url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_hub(
    data_dir: Path,
    *,
    demo: bool = True,
    demo_cases: int = 2000,
    port: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> LiveHub:
    port = port or free_port()
    log_path = data_dir.parent / f"hub-{port}-{uuid.uuid4().hex[:6]}.log"
    args = [
        sys.executable,
        "-m",
        "hub.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    if demo:
        args += ["--demo", "--demo-cases", str(demo_cases)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")}
    full_env["CITYHUB_WS_PORT"] = str(free_port())
    full_env["CITYHUB_SIP_PORT"] = "0"
    full_env["CITYHUB_WEBRTC_NETWORKS"] = "127.0.0.0/8"  # live talk stays on loopback
    full_env.update(env or {})
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    hub = LiveHub(f"http://127.0.0.1:{port}", proc, data_dir, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hub exited with {proc.returncode}:\n{hub.log()}")
        try:
            if httpx.get(f"{hub.base_url}/healthz", timeout=1).status_code == 200:
                return hub
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    hub.stop()
    raise RuntimeError(f"hub not ready in {timeout} s:\n{hub.log()}")


@pytest.fixture(scope="session")
def live_hub(scratch_root: Path) -> Iterator[LiveHub]:
    hub = start_hub(scratch_dir(scratch_root, "live") / "data")
    try:
        yield hub
    finally:
        hub.stop()
