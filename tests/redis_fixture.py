"""A real Redis for the tests: Debian's ``redis-server`` (``scripts/system-deps.sh`` installs it) on
127.0.0.1 and a free port, no persistence, its own scratch directory. It can be killed and restarted
on the same port to test outages; the ``redis_server`` fixture checks at teardown that nothing it
started is still running.

Use it from a test module with ``from tests.redis_fixture import redis_server  # noqa: F401``."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisServer:
    """One ``redis-server`` process at a time, always on the same port and directory."""

    def __init__(self, *, password: str = "", port: int = 0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/system-deps.sh installs it)")
        self.binary = binary
        self.password = password
        self.port = port or _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cityhub-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._started: list[subprocess.Popen[bytes]] = []  # every process, for the final check

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    def start(self) -> None:
        """Start the server and wait until it answers PING (at most ``START_TIMEOUT`` s)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server is already running")
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._started.append(self.proc)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.answers():
                return
            time.sleep(0.02)
        self.kill()
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log[-2000:]}")

    def answers(self) -> bool:
        """Whether something on our port answers PING as this server would."""
        request = (_resp("AUTH", self.password) if self.password else b"") + _resp("PING")
        expected = (b"+OK\r\n" if self.password else b"") + b"+PONG\r\n"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(request)
                reply = b""
                while len(reply) < len(expected):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return reply == expected
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, and wait (SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything politely."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self.start()

    def running(self) -> list[int]:
        """Pids of processes started here that are still alive."""
        return [p.pid for p in self._started if p.poll() is None]

    def cleanup(self) -> None:
        self.stop()
        for proc in self._started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_running(*, password: str = "", start: bool = True) -> Iterator[RedisServer]:
    """A server (started unless ``start=False``); on exit, stopped and checked to be gone."""
    server = RedisServer(password=password)
    try:
        if start:
            server.start()
        yield server
    finally:
        server.cleanup()
        assert not server.running(), f"redis-server still running: {server.running()}"
        assert not server.answers(), f"something still answers on port {server.port}"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A running server for one test; at teardown, stopped, and checked to be gone."""
    with redis_running() as server:
        yield server
