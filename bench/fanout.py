#!/usr/bin/env python3
"""Benchmark of the live fan-out (``/ws``): deliveries per second and latency, next to a bare
``websockets`` broadcast server measured in the same run.

Run ``python bench/fanout.py`` (5-9 minutes on 2 cores) or ``python bench/fanout.py --quick``
(under 2 minutes). See ``docs/benchmarks.md`` ("Live fan-out") for what the figures mean and the last
results.

What it does:

1. Reference: a bare ``websockets`` asyncio server in its own process; its handler adds every
   connection on ``/ws`` to a set, and every text message that arrives on ``/pub`` is sent to the set
   with ``websockets.broadcast()`` (the same listener options as ``hub/ws.py``). The publisher (this
   process) sends envelope-shaped text frames of ``--frame-bytes`` bytes whose ``ts`` is the send
   time, at rising rates.
2. cityhub: one embedded PostgreSQL (``pgserver``) in a temporary directory, the demo city loaded once
   with ``python -m hub.cli demo --demo-cases 200``, then a real hub process
   (``python -m hub.cli serve`` with ``CITYHUB_DATABASE_URL`` and ``CITYHUB_WS_PORT``). The clients sign
   in as seat1 (a bearer token), connect to ``/ws`` and subscribe to ``cases``. This process commits
   real ESCALATE transitions (with a note) on the demo's open cases through ``CaseService.transition``
   at rising rates; each commit reaches every client as one ``case.updated`` envelope whose ``ts`` is
   the event's time (taken by the service just before its transaction), so the latency is commit +
   relay + fan-out + delivery.
3. With ``--processes 2``: a ``redis-server`` on a free port and two hub processes A and B sharing
   the database and Redis; A is started first and leads the relay, the clients are on B: the extra
   latency is the Redis hop (A publishes, B fans out).

Clients: ``--client-procs`` separate processes (``multiprocessing``), each holding its share of the
connections with a minimal asyncio websocket client (handshake, unmasked server frames, pong, close;
nothing else), so that receiving costs as little as possible. Each records, per text frame, its
receive time (``time.time()`` once per read) minus the frame's ``ts`` in a 0.1 ms histogram.

Per rate: deliveries/s = frames received by all clients / (last receive - first send); p50/p99 of the
latency; the CPU of the server process and of the client processes. A series stops rising once a
rate is saturated (p99 over 1 s or under 90 % of the frames delivered by the end of the drain).
The saturation point of a series is its highest deliveries/s with p99 < 50 ms and every frame
delivered.

Clients, server, PostgreSQL and this process share the machine's cores (2 in the reference setup):
the figures are a floor, and the *ratio* to the bare server measured in the same run is what to read.

Nothing is written outside the temporary directory; every process started here is stopped and the
directory removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import multiprocessing as mp
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import free_port, log, proc_cpu, run_cleanly, scratch_dir  # noqa: E402

#: Latency histogram: 0.1 ms bins up to 60 s (later frames land in the last bin).
BIN = 1e-4
NBINS = 600_000
#: Delivery targets per second; a series' rates are these divided by the number of clients.
DELIVERY_TARGETS = (10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 80_000, 100_000, 130_000)
QUICK_TARGETS = (10_000, 30_000, 60_000)
GOAL_P99_MS = 50.0
GOAL_RATIO = 0.7
#: Seconds to wait, before each series, for other processes to leave the machine (--quiet-wait).
QUIET_WAIT = [30.0]
#: A step during which other processes used more than this (% of one core) is measured again once.
DISTURBED = 25.0
#: Where to copy the hubs' and Redis's logs when they stop (--keep-logs).
KEEP_LOGS: list[Path | None] = [None]
SEAT_USER, SEAT_PASSWORD = "seat1", "Seat#2026"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def tree_cpu(roots: Sequence[int]) -> float:
    """CPU seconds of the processes descending from ``roots`` (this run's own processes: clients,
    servers, PostgreSQL), to tell them apart from whatever else runs on the machine."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        # utime + stime, and cutime + cstime: the CPU of its children that have exited (PostgreSQL's
        # short-lived workers and backends), which would otherwise look like someone else's.
        cpu[pid] = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    mine = set(r for r in roots if r in cpu)
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(mine)
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in mine:
                mine.add(c)
                todo.append(c)
    return sum(cpu[p] for p in mine)


#: Roots of this run's process trees (this process; the embedded PostgreSQL's postmaster).
ROOT_PIDS: list[int] = [os.getpid()]


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores since boot."""
    try:
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


# ---------------------------------------------------------------------------------------------
# Client processes: a minimal websocket client (RFC 6455, client side) on plain asyncio


class Recorder:
    """What one client process saw since the last reset."""

    def __init__(self) -> None:
        self.reset()
        self.ts_cache: dict[bytes, float] = {}

    def reset(self) -> None:
        self.hist = [0] * NBINS
        self.n = 0
        self.bytes = 0
        self.first = 0.0
        self.last = 0.0
        self.control = 0
        self.resyncs = 0
        self.closed = 0
        self.close_codes: dict[int, int] = {}
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu0 = ru.ru_utime + ru.ru_stime

    def ts(self, raw: bytes) -> float:
        v = self.ts_cache.get(raw)
        if v is None:
            if len(self.ts_cache) > 100_000:
                self.ts_cache.clear()
            v = self.ts_cache[raw] = datetime.fromisoformat(raw.decode()).timestamp()
        return v

    def summary(self) -> dict[str, Any]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "n": self.n,
            "bytes": self.bytes,
            "first": self.first,
            "last": self.last,
            "control": self.control,
            "resyncs": self.resyncs,
            "closed": self.closed,
            "close_codes": self.close_codes,
            "cpu": ru.ru_utime + ru.ru_stime - self.cpu0,
            "hist": {i: c for i, c in enumerate(self.hist) if c},
        }


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame; the mask key is zero (legal, and the payload stays as is)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class RawClient(asyncio.Protocol):
    def __init__(
        self, rec: Recorder, request: bytes, ready_marker: bytes, first_message: bytes | None
    ) -> None:
        self.rec = rec
        self.request = request
        self.ready_marker = ready_marker
        self.first_message = first_message
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost before ready: {exc!r}"))

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        assert self.transport is not None
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self._fail("oversized handshake response")
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if not status.startswith(b"HTTP/1.1 101"):
                self._fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            del buf[: end + 4]
            self.upgraded = True
            if self.first_message is not None:
                assert self.transport is not None
                self.transport.write(_client_frame(0x1, self.first_message))
        self._frames(now)

    def _frames(self, now: float) -> None:
        buf = self.buf
        rec = self.rec
        n = len(buf)
        i = 0
        while n - i >= 2:
            b0 = buf[i]
            ln = buf[i + 1] & 0x7F
            h = 2
            if ln == 126:
                if n - i < 4:
                    break
                ln = (buf[i + 2] << 8) | buf[i + 3]
                h = 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln = int.from_bytes(buf[i + 2 : i + 10], "big")
                h = 10
            start = i + h
            end = start + ln
            if end > n:
                break
            op = b0 & 0x0F
            if op == 1 or op == 0:
                k = buf.find(b'"ts":"', start, end)
                if k >= 0:
                    k += 6
                    lat = now - rec.ts(bytes(buf[k : buf.find(b'"', k, end)]))
                    b = int(lat / BIN)
                    rec.hist[0 if b < 0 else (b if b < NBINS else NBINS - 1)] += 1
                    rec.n += 1
                    rec.bytes += ln
                    if not rec.first:
                        rec.first = now
                    rec.last = now
                else:
                    rec.control += 1
                    if buf.find(b'"resync"', start, end) >= 0:
                        rec.resyncs += 1
                    if not self.ready.done() and buf.find(self.ready_marker, start, end) >= 0:
                        self.ready.set_result(None)
            elif op == 9:  # ping: pong with the same payload
                assert self.transport is not None
                self.transport.write(_client_frame(0xA, bytes(buf[start:end])))
            elif op == 8:  # close: answer and go
                code = (buf[start] << 8 | buf[start + 1]) if ln >= 2 else 1005
                rec.closed += 1
                rec.close_codes[code] = rec.close_codes.get(code, 0) + 1
                assert self.transport is not None
                with contextlib.suppress(Exception):
                    self.transport.write(_client_frame(0x8, bytes(buf[start : start + 2])))
                self.transport.close()
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"closed by the server ({code})"))
            i = end
        if i:
            del buf[:i]


def client_process(pipe: Connection, index: int) -> None:
    """Entry point of a client process: obeys the commands of the controller on ``pipe``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller handles Ctrl-C and stops us
    raise_nofile(65536)
    asyncio.run(_client_main(pipe, index))


async def _client_main(pipe: Connection, index: int) -> None:
    loop = asyncio.get_running_loop()
    rec = Recorder()
    clients: list[RawClient] = []
    tasks: set[asyncio.Task[None]] = set()
    done = loop.create_future()
    parent = os.getppid()

    async def connect(
        host: str,
        port: int,
        path: str,
        headers: list[tuple[str, str]],
        n: int,
        ready_marker: bytes,
        first_message: bytes | None,
        concurrency: int,
    ) -> None:
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {WS_KEY}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in headers]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        sem = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        t0 = time.monotonic()

        async def one() -> None:
            async with sem:
                try:
                    _, proto = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: RawClient(rec, request, ready_marker, first_message), host, port
                        ),
                        20,
                    )
                    clients.append(proto)
                    await asyncio.wait_for(proto.ready, 30)
                except Exception as exc:  # reported to the controller
                    errors.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one() for _ in range(n)))
        pipe.send(("connected", n - len(errors), len(errors), errors[:3], time.monotonic() - t0))

    def on_command() -> None:
        try:
            cmd = pipe.recv()
        except (EOFError, OSError):
            if not done.done():
                done.set_result(None)
            return
        kind = cmd[0]
        if kind == "connect":
            task = loop.create_task(connect(*cmd[1:]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif kind == "reset":
            rec.reset()
            pipe.send(("ok",))
        elif kind == "count":
            pipe.send(("count", rec.n, rec.closed, rec.last))
        elif kind == "stats":
            pipe.send(("stats", rec.summary()))
        elif kind == "quit" and not done.done():
            done.set_result(None)

    loop.add_reader(pipe.fileno(), on_command)

    async def watch_parent() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 (polling: nothing to wait on)
            await asyncio.sleep(1)
        if not done.done():
            done.set_result(None)

    watcher = loop.create_task(watch_parent())
    try:
        await done
    finally:
        watcher.cancel()
        loop.remove_reader(pipe.fileno())
        for c in clients:
            if c.transport is not None:
                c.transport.abort()


class ClientPool:
    """The controller's handle on the client processes."""

    def __init__(self, procs: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(procs):
            ours, theirs = ctx.Pipe()
            p = ctx.Process(
                target=client_process, args=(theirs, i), daemon=True, name=f"fanout-clients-{i}"
            )
            p.start()
            theirs.close()
            self.pipes.append(ours)
            self.procs.append(p)
        PROCS.append(self)

    async def _ask(self, pipe: Connection, msg: tuple[Any, ...], within: float) -> Any:
        pipe.send(msg)
        return await arecv(pipe, within)

    async def ask_all(self, msg: tuple[Any, ...], within: float = 30) -> list[Any]:
        return list(await asyncio.gather(*(self._ask(p, msg, within) for p in self.pipes)))

    async def connect(
        self,
        host: str,
        port: int,
        path: str,
        headers: list[tuple[str, str]],
        n: int,
        ready_marker: bytes,
        first_message: bytes | None,
    ) -> tuple[int, int, list[str], float]:
        shares = [
            n // len(self.pipes) + (1 if i < n % len(self.pipes) else 0)
            for i in range(len(self.pipes))
        ]
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send(
                ("connect", host, port, path, headers, share, ready_marker, first_message, 100)
            )
        replies = [await arecv(p, 60 + n / 50) for p in self.pipes]
        ok = sum(r[1] for r in replies)
        failed = sum(r[2] for r in replies)
        errors = [e for r in replies for e in r[3]]
        return ok, failed, errors, max(r[4] for r in replies)

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) or 0.0 for p in self.procs if p.pid)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(("quit",))
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.close()
        with contextlib.suppress(ValueError):
            PROCS.remove(self)


async def arecv(pipe: Connection, within: float) -> Any:
    """``pipe.recv()`` without blocking the event loop (nor leaving a thread behind)."""
    if not pipe.poll():
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(pipe.fileno(), ready)
        try:
            await asyncio.wait_for(fut, within)
        finally:
            loop.remove_reader(pipe.fileno())
    return pipe.recv()


# ---------------------------------------------------------------------------------------------
# The reference: a bare websockets broadcast server


def reference_process(port: int, ready: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile(65536)
    asyncio.run(_reference_main(port, ready))


async def _reference_main(port: int, ready: Any) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    subscribers: set[ServerConnection] = set()

    async def handler(conn: ServerConnection) -> None:
        assert conn.request is not None
        if conn.request.path == "/pub":
            with contextlib.suppress(ConnectionClosed):
                async for message in conn:
                    broadcast(subscribers, message)
            return
        subscribers.add(conn)
        try:
            await conn.send('{"type":"hello"}')
            async for _ in conn:
                pass
        except ConnectionClosed:
            pass
        finally:
            subscribers.discard(conn)

    async with serve(
        handler,
        "127.0.0.1",
        port,
        max_size=64 * 1024,
        max_queue=16,
        ping_interval=20,
        ping_timeout=20,
        compression=None,
        server_header=None,
    ):
        ready.set()
        parent = os.getppid()
        while os.getppid() == parent:  # noqa: ASYNC110 (polling: nothing to wait on)
            await asyncio.sleep(1)


class ReferenceServer:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.port = free_port()
        ready = ctx.Event()
        self.proc = ctx.Process(
            target=reference_process, args=(self.port, ready), daemon=True, name="fanout-ref"
        )
        self.proc.start()
        PROCS.append(self)
        if not ready.wait(30):
            raise RuntimeError("the reference server did not start")

    @property
    def pid(self) -> int:
        return int(self.proc.pid or 0)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        with contextlib.suppress(ValueError):
            PROCS.remove(self)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def reference_frame_maker(size: int) -> Callable[[int], str]:
    """Envelope-shaped frames of about ``size`` UTF-8 bytes (Chinese text, like a case's)."""
    head = '{"channel":"cases","epoch":"bench0","offset":%d,"type":"case.updated","ts":"%s","data":{"note":"'
    tail = '"}}'
    sample = head % (1, now_iso()) + tail
    room = max(0, size - len(sample.encode()))
    pad = ("城管案件督办，" * (room // 21 + 1))[: room // 3] + "x" * (room % 3)

    def make(i: int) -> str:
        return head % (i, now_iso()) + pad + tail

    return make


# ---------------------------------------------------------------------------------------------
# Hubs, PostgreSQL and Redis


@dataclasses.dataclass
class Service:
    """A child process (hub or redis) in its own session: Ctrl-C reaches only the controller,
    which stops it in order."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            t0 = time.monotonic()
            # SIGINT: both uvicorn and redis shut down gracefully on it, and uvicorn re-raises it
            # afterwards as KeyboardInterrupt (SIGTERM it re-raises as a fatal signal).
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within 20 s of SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
            if time.monotonic() - t0 > 5:
                log(f"{self.name} took {time.monotonic() - t0:.1f} s to stop")
        if KEEP_LOGS[0] is not None:
            with contextlib.suppress(OSError):
                shutil.copy(self.log_path, KEEP_LOGS[0] / self.log_path.name)
        with contextlib.suppress(ValueError):
            PROCS.remove(self)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def spawn(name: str, args: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> Service:
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    svc = Service(name, proc, log_path)
    PROCS.append(svc)
    return svc


def hub_env(hub_root: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")}
    env["PYTHONPATH"] = str(hub_root)
    env["CITYHUB_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


@dataclasses.dataclass
class Hub:
    svc: Service
    http: str
    ws_port: int


async def start_hub(
    name: str,
    scratch: Path,
    hub_root: Path,
    env: dict[str, str],
    *,
    leader: bool | None,
    within: float = 90,
) -> Hub:
    import httpx

    port, ws_port = free_port(), free_port()
    data = scratch / name
    data.mkdir(mode=0o755, exist_ok=True)
    args = [sys.executable, "-m", "hub.cli", "serve", "--data-dir", str(data), "--port", str(port)]
    svc = spawn(
        name,
        args,
        scratch / f"{name}.log",
        hub_env(hub_root, {**env, "CITYHUB_WS_PORT": str(ws_port)}),
        hub_root,
    )
    hub = Hub(svc, f"http://127.0.0.1:{port}", ws_port)
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if svc.proc.poll() is not None:
                raise RuntimeError(f"hub {name} exited with {svc.proc.returncode}:\n{svc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                r = await http.get(f"{hub.http}/healthz")
                if r.status_code == 200:
                    body = r.json()
                    relay = body.get("checks", {}).get("relay")
                    if leader is None or (relay == "leader") == leader:
                        return hub
            await asyncio.sleep(0.2)
    raise RuntimeError(f"hub {name} not ready in {within:.0f} s:\n{svc.tail()}")


async def login(hub: Hub) -> str:
    import httpx

    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            f"{hub.http}/api/auth/login",
            json={"username": SEAT_USER, "password": SEAT_PASSWORD, "token": True},
        )
        r.raise_for_status()
        return str(r.json()["token"])


async def start_redis(scratch: Path) -> tuple[Service, str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    d = scratch / "redis"
    d.mkdir()
    svc = spawn(
        "redis",
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(d),
            "--daemonize",
            "no",
        ],
        scratch / "redis.log",
        dict(os.environ),
        d,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"PING\r\n")
            line = await asyncio.wait_for(r.readline(), 2)
            w.close()
            if line.startswith(b"+PONG"):
                return svc, f"redis://127.0.0.1:{port}/0"
        await asyncio.sleep(0.1)
    raise RuntimeError(f"redis did not start:\n{svc.tail()}")


class Writer:
    """Commits ESCALATE transitions (with a note) on the demo's open cases through the case
    service, each case by one writer at a time."""

    def __init__(self, state: Any, actor: Any, cases: list[tuple[int, int]]) -> None:
        self.state = state
        self.actor = actor
        self.free = list(cases)
        self.committed = 0
        self.failed = 0
        self.starved = 0
        self.inflight: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, dsn: str, scratch: Path) -> Writer:
        from hub.core import workflow as wf
        from hub.settings import Secret, Settings
        from hub.web.app import build_state
        from hub.web.auth import make_actor
        from storage.users import list_users

        data = scratch / "writer"
        data.mkdir(mode=0o755, exist_ok=True)
        settings = Settings(
            data_dir=data,
            database_url=Secret(dsn),
            secret_key=Secret("bench-fanout"),
            log_level="WARNING",
            db_pool_max=24,
        )
        state = await build_state(settings, live=False)
        async with state.pool.acquire() as conn:
            users = await list_users(conn)
            rows = await conn.fetch(
                "SELECT id, version FROM cases WHERE state = ANY($1::text[]) ORDER BY id",
                [s.value for s in wf.OPEN_STATES],
            )
        seat = next(u for u in users if u.username == SEAT_USER)
        return cls(state, make_actor(seat, state.catalog), [(r["id"], r["version"]) for r in rows])

    async def close(self) -> None:
        from hub.web.app import close_state

        if self.inflight:
            await asyncio.wait(self.inflight, timeout=10)
        await close_state(self.state)

    async def _one(self, case_id: int, version: int, i: int) -> None:
        from hub.core import workflow as wf
        from hub.core.errors import Conflict

        try:
            await self.state.cases.transition(
                self.actor,
                case_id,
                version,
                wf.Command(action=wf.Action.ESCALATE, note=f"压测督办 #{i}，请尽快处置"),
            )
            self.committed += 1
            version += 1
        except Conflict:
            self.failed += 1
            async with self.state.pool.acquire() as conn:
                version = int(
                    await conn.fetchval("SELECT version FROM cases WHERE id = $1", case_id)
                )
        except Exception:
            self.failed += 1
        self.free.append((case_id, version))

    def launch(self, i: int) -> bool:
        if not self.free:
            self.starved += 1
            return False
        case_id, version = self.free.pop(0)
        task = asyncio.get_running_loop().create_task(self._one(case_id, version, i))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        return True


# ---------------------------------------------------------------------------------------------
# Steps and series


@dataclasses.dataclass
class Step:
    series: str
    clients: int
    rate: float
    sent: int = 0
    send_rate: float = 0.0
    received: int = 0
    expected: int = 0
    deliveries: float = 0.0
    p50: float = math.nan
    p99: float = math.nan
    pmax: float = math.nan
    frame_bytes: float = 0.0
    server_cpu: float = math.nan
    client_cpu: float = math.nan
    machine: float = math.nan
    others: float = math.nan
    resyncs: int = 0
    closed: int = 0
    note: str = ""

    @property
    def us_per_delivery(self) -> float:
        """Server CPU per delivered frame (robust to other load: CPU time, not wall time)."""
        if not self.received or math.isnan(self.server_cpu) or not self.deliveries:
            return math.nan
        return self.server_cpu / 100 * 1e6 / self.deliveries

    @property
    def complete(self) -> bool:
        return self.expected > 0 and self.received >= self.expected

    @property
    def ok(self) -> bool:
        return self.complete and self.p99 < GOAL_P99_MS

    @property
    def saturated(self) -> bool:
        return self.p99 > 1000 or self.received < 0.9 * self.expected or self.closed > 0


@dataclasses.dataclass
class Series:
    name: str
    clients: int
    steps: list[Step] = dataclasses.field(default_factory=list)
    connect_s: float = 0.0
    connected: int = 0
    note: str = ""

    def best(self) -> Step | None:
        ok = [s for s in self.steps if s.ok]
        return max(ok, key=lambda s: s.deliveries) if ok else None

    def keeps_up(self) -> Step | None:
        """The highest rate whose frames all arrived at (nearly) the offered pace, whatever the latency."""
        ok = [
            s
            for s in self.steps
            if s.complete and s.deliveries >= 0.95 * s.send_rate * self.clients
        ]
        return max(ok, key=lambda s: s.deliveries) if ok else None

    def peak(self) -> Step | None:
        return max(self.steps, key=lambda s: s.deliveries) if self.steps else None


class Budget:
    """The run's time, shared out among the series still to come (each gets its part plus what
    the earlier ones left)."""

    def __init__(self, minutes: float, series: int) -> None:
        self.end = time.monotonic() + minutes * 60
        self.left = series

    def next_deadline(self) -> float:
        share = max(0.0, self.end - time.monotonic()) / max(1, self.left)
        self.left -= 1
        return time.monotonic() + share


def percentile(hist: dict[int, int], total: int, p: float) -> float:
    """Nearest-rank percentile in ms from a merged histogram (upper edge of the bin)."""
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return (b + 1) * BIN * 1000
    return math.nan


Publisher = Callable[[float, float], Awaitable[tuple[int, float]]]


async def run_step(
    pool: ClientPool,
    series: Series,
    rate: float,
    seconds: float,
    publish: Publisher,
    server_pid: int,
) -> Step:
    step = Step(series.name, series.clients, rate)
    await pool.ask_all(("reset",))
    cpu0, ccpu0, m0, own0 = proc_cpu(server_pid), pool.cpu(), machine_busy(), tree_cpu(ROOT_PIDS)
    t0 = time.monotonic()
    sent, first_send = await publish(rate, seconds)
    step.sent = sent
    step.send_rate = sent / seconds
    step.expected = sent * series.clients
    # Drain: until every frame has arrived, or nothing moved for 2 s, or 20 s.
    last_total, last_move, end = -1, time.monotonic(), time.monotonic() + 20
    while time.monotonic() < end:
        counts = await pool.ask_all(("count",))
        total = sum(c[1] for c in counts)
        if total >= step.expected:
            break
        if total != last_total:
            last_total, last_move = total, time.monotonic()
        elif time.monotonic() - last_move > 2:
            break
        await asyncio.sleep(0.1)
    wall = time.monotonic() - t0
    cpu1, ccpu1, m1, own1 = proc_cpu(server_pid), pool.cpu(), machine_busy(), tree_cpu(ROOT_PIDS)
    stats = [r[1] for r in await pool.ask_all(("stats",))]
    hist: dict[int, int] = {}
    for s in stats:
        for b, c in s["hist"].items():
            hist[b] = hist.get(b, 0) + c
    step.received = sum(s["n"] for s in stats)
    last = max((s["last"] for s in stats), default=0.0)
    if step.received and last > first_send:
        step.deliveries = step.received / (last - first_send)
    step.p50 = percentile(hist, step.received, 50)
    step.p99 = percentile(hist, step.received, 99)
    step.pmax = percentile(hist, step.received, 100)
    step.frame_bytes = sum(s["bytes"] for s in stats) / step.received if step.received else 0.0
    if cpu0 is not None and cpu1 is not None:
        step.server_cpu = 100 * (cpu1 - cpu0) / wall
    step.client_cpu = 100 * (ccpu1 - ccpu0) / wall
    if m0 and m1 and m1[1] > m0[1]:
        step.machine = 100 * (m1[0] - m0[0]) / (m1[1] - m0[1])
        cores = os.cpu_count() or 1
        # Others: the machine's busy time not spent by this run's processes (in % of one core).
        step.others = max(0.0, step.machine * cores - 100 * (own1 - own0) / wall)
    step.resyncs = sum(s["resyncs"] for s in stats)
    step.closed = sum(s["closed"] for s in stats)
    return step


async def wait_quiet(max_wait: float, quiet: bool = False) -> None:
    """Wait (at most ``max_wait`` s) until processes outside this run use under 15 % of a core."""
    if max_wait <= 0:
        return
    cores = os.cpu_count() or 1
    t_end = time.monotonic() + max_wait
    calm = 0
    first = True
    while time.monotonic() < t_end:
        m0, own0, t0 = machine_busy(), tree_cpu(ROOT_PIDS), time.monotonic()
        await asyncio.sleep(0.5)
        m1, own1 = machine_busy(), tree_cpu(ROOT_PIDS)
        if not m0 or not m1 or m1[1] <= m0[1]:
            return
        others = 100 * cores * (m1[0] - m0[0]) / (m1[1] - m0[1]) - 100 * (own1 - own0) / (
            time.monotonic() - t0
        )
        calm = calm + 1 if others < 15 else 0
        if calm >= 2:
            return
        if first and not quiet:
            log(
                f"other processes use {others:.0f}% of a core; waiting up to {max_wait:.0f} s for quiet"
            )
            first = False
    if not quiet:
        log("the machine did not get quiet; measuring anyway (see the 'other' column)")


async def run_series(
    pool: ClientPool,
    series: Series,
    rates: Sequence[float],
    seconds: float,
    publish: Publisher,
    server_pid: int,
    deadline: float,
) -> None:
    await wait_quiet(QUIET_WAIT[0])
    # A short unrecorded warm-up at the first rate.
    await run_step(pool, series, rates[0], min(1.0, seconds), publish, server_pid)
    for rate in rates:
        if time.monotonic() > deadline:
            series.note = "stopped early (time budget)"
            log(f"{series.name}: time budget reached, skipping the higher rates")
            break
        await wait_quiet(QUIET_WAIT[0] / 3, quiet=True)
        step = await run_step(pool, series, rate, seconds, publish, server_pid)
        if (
            step.others > DISTURBED
            and not step.ok
            and QUIET_WAIT[0] > 0
            and time.monotonic() < deadline
        ):
            # Other processes took the CPU during this step: measure it once more after a pause.
            log(f"  disturbed ({format_step(step)}); measuring again")
            await asyncio.sleep(2 if step.saturated else 0.5)
            await wait_quiet(QUIET_WAIT[0] / 3, quiet=True)
            again = await run_step(pool, series, rate, seconds, publish, server_pid)
            if again.others < step.others:
                step = again
            else:
                log(
                    f"  the second measurement was disturbed too (others {fmt(again.others, 0)}%); keeping the first"
                )
        series.steps.append(step)
        log(format_step(step))
        if step.saturated:
            log(f"{series.name}: saturated at {rate:g}/s; not going higher")
            break
        await asyncio.sleep(0.5)


def cluster_clients(args: argparse.Namespace) -> list[int]:
    return list(args.clients) if args.cluster_all else list(args.clients[:1])


def rates_for(args: argparse.Namespace, clients: int) -> list[float]:
    if args.rates:
        return list(args.rates)
    targets = QUICK_TARGETS if args.quick else DELIVERY_TARGETS
    return [round(t / clients, 2) for t in targets]


def paced(send_one: Callable[[int], Awaitable[bool]]) -> Publisher:
    """A publisher that calls ``send_one(i)`` at ``rate`` per second for ``seconds``."""

    async def publish(rate: float, seconds: float) -> tuple[int, float]:
        total = max(1, int(rate * seconds))
        sent = 0
        t0 = time.monotonic()
        first = time.time()
        i = 0
        while i < total:
            due = min(total, int((time.monotonic() - t0) * rate) + 1)
            while i < due:
                if await send_one(i):
                    sent += 1
                i += 1
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return sent, first

    return publish


# ---------------------------------------------------------------------------------------------
# Phases


async def phase_reference(args: argparse.Namespace, results: list[Series], budget: Budget) -> None:
    from websockets.asyncio.client import connect

    ref = ReferenceServer()
    make = reference_frame_maker(args.frame_bytes)
    try:
        for n in args.clients:
            deadline = budget.next_deadline()
            series = Series("bare websockets", n)
            results.append(series)
            pool = ClientPool(args.client_procs)
            try:
                ok, failed, errors, secs = await pool.connect(
                    "127.0.0.1", ref.port, "/ws", [], n, b'"hello"', None
                )
                series.connected, series.connect_s = ok, secs
                log(
                    f"reference: {ok} clients connected in {secs:.1f} s"
                    + (f", {failed} failed: {errors}" if failed else "")
                )
                if ok < n:
                    series.note = f"only {ok}/{n} connected"
                    series.clients = ok
                    if not ok:
                        continue
                async with connect(
                    f"ws://127.0.0.1:{ref.port}/pub", compression=None, max_queue=None
                ) as pub:

                    async def send_one(i: int) -> bool:
                        await pub.send(make(i))
                        return True

                    await run_series(
                        pool,
                        series,
                        rates_for(args, n),
                        args.seconds,
                        paced(send_one),
                        ref.pid,
                        deadline,
                    )
            finally:
                pool.stop()
    finally:
        ref.stop()


async def phase_hub(
    args: argparse.Namespace,
    results: list[Series],
    budget: Budget,
    scratch: Path,
    dsn: str,
    writer: Writer,
    *,
    cluster: bool,
) -> None:
    env = {"CITYHUB_DATABASE_URL": dsn, "CITYHUB_DB_POOL_MAX": "16"}
    started: list[Service] = []
    try:
        if cluster:
            redis, redis_url = await start_redis(scratch)
            started.append(redis)
            env["CITYHUB_REDIS_URL"] = redis_url
            a = await start_hub("hub-a", scratch, args.hub_root, env, leader=True)
            started.append(a.svc)
            b = await start_hub("hub-b", scratch, args.hub_root, env, leader=False)
            started.append(b.svc)
            target, server, label = b, b, "cityhub 2 procs (A relay, B clients)"
            log(f"cluster: redis at {redis_url}, hub A (relay leader) and hub B (clients) ready")
        else:
            a = await start_hub("hub", scratch, args.hub_root, env, leader=True)
            started.append(a.svc)
            target, server, label = a, a, "cityhub 1 proc"
            log("hub ready (relay leader)")
        token = await login(target)
        subscribe = b'{"type":"subscribe","channels":["cases"]}'
        for n in cluster_clients(args) if cluster else args.clients:
            deadline = budget.next_deadline()
            series = Series(label, n)
            results.append(series)
            pool = ClientPool(args.client_procs)
            try:
                ok, failed, errors, secs = await pool.connect(
                    "127.0.0.1",
                    target.ws_port,
                    "/ws",
                    [("Authorization", f"Bearer {token}")],
                    n,
                    b'"subscribed"',
                    subscribe,
                )
                series.connected, series.connect_s = ok, secs
                log(
                    f"{label}: {ok} clients connected and subscribed in {secs:.1f} s"
                    + (f", {failed} failed: {errors}" if failed else "")
                )
                if ok < n:
                    series.note = f"only {ok}/{n} connected"
                    series.clients = ok
                    if not ok:
                        continue

                async def send_one(i: int) -> bool:
                    return writer.launch(i)

                async def publish(rate: float, seconds: float) -> tuple[int, float]:
                    c0, s0 = writer.committed, writer.starved
                    _, first = await paced(send_one)(rate, seconds)
                    if writer.inflight:
                        await asyncio.wait(set(writer.inflight), timeout=10)
                    if writer.starved > s0:
                        log(
                            f"  writer could not keep up: {writer.starved - s0} commits skipped (all cases busy)"
                        )
                    return writer.committed - c0, first

                rates = rates_for(args, n)
                if cluster:
                    single = next(
                        (s for s in results if s.name == "cityhub 1 proc" and s.clients == n), None
                    )
                    if single is not None and single.steps:
                        rates = [r for r in rates if r <= single.steps[-1].rate] or rates[:1]
                await run_series(
                    pool, series, rates, args.seconds, publish, server.svc.proc.pid, deadline
                )
            finally:
                pool.stop()
    finally:
        for svc in reversed(started):
            svc.stop()


async def prepare_database(scratch: Path, hub_root: Path, dsn: str, cases: int) -> None:
    data = scratch / "demo"
    data.mkdir(mode=0o755)
    env = hub_env(hub_root, {"CITYHUB_DATABASE_URL": dsn})
    args = [
        sys.executable,
        "-m",
        "hub.cli",
        "demo",
        "--demo-cases",
        str(cases),
        "--data-dir",
        str(data),
    ]
    for attempt in range(3):
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=hub_root,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 180)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode == 0:
            log(f"demo city loaded ({cases} cases) in {time.monotonic() - t0:.1f} s")
            return
        log(f"demo load failed (attempt {attempt + 1}):\n{out.decode(errors='replace')[-1500:]}")
    raise RuntimeError("the demo city could not be loaded")


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v: float, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def format_step(s: Step) -> str:
    return (
        f"{s.series} x{s.clients}: rate {s.rate:g}/s sent {s.sent} -> {s.received}/{s.expected} frames, "
        f"{s.deliveries:,.0f} deliveries/s, p50 {fmt(s.p50)} ms p99 {fmt(s.p99)} ms, "
        f"server cpu {fmt(s.server_cpu, 0)}% ({fmt(s.us_per_delivery)} us/delivery), clients cpu {fmt(s.client_cpu, 0)}%, machine {fmt(s.machine, 0)}%, "
        f"others {fmt(s.others, 0)}%"
        + (f", {s.resyncs} resyncs" if s.resyncs else "")
        + (f", {s.closed} closed" if s.closed else "")
    )


def report(args: argparse.Namespace, results: list[Series], started: float) -> str:
    lines: list[str] = []
    w = lines.append
    w("")
    w(
        f"Live fan-out, {datetime.now().strftime('%Y-%m-%d %H:%M')}, {platform.python_implementation()} "
        f"{platform.python_version()}, websockets {ws_version()}, {os.cpu_count()} cores, "
        f"{args.client_procs} client processes, {args.seconds:g} s per rate"
    )
    w(
        f"NOTE: clients ({args.client_procs} processes), server, PostgreSQL and the writer share the "
        f"{os.cpu_count()} cores: figures are a floor; compare with the bare server of the same run."
    )
    w("")
    head = (
        f"{'series':<38} {'clients':>7} {'rate/s':>8} {'sent/s':>8} {'deliv/s':>9} {'got %':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'srv cpu':>7} {'us/del':>6} {'cli cpu':>7} {'mach':>5} {'other':>6} {'bytes':>6}"
    )
    w(head)
    w("-" * len(head))
    for ser in results:
        for s in ser.steps:
            got = 100 * s.received / s.expected if s.expected else math.nan
            flags = (
                ("" if s.ok else " *")
                + (f" resync {s.resyncs}" if s.resyncs else "")
                + (f" closed {s.closed}" if s.closed else "")
            )
            w(
                f"{ser.name:<38} {ser.clients:>7} {s.rate:>8g} {s.send_rate:>8.1f} {s.deliveries:>9,.0f} {fmt(got):>6} "
                f"{fmt(s.p50):>8} {fmt(s.p99):>8} {fmt(s.server_cpu, 0):>6}% {fmt(s.us_per_delivery):>6} {fmt(s.client_cpu, 0):>6}% "
                f"{fmt(s.machine, 0):>4}% {fmt(s.others, 0):>5}% {s.frame_bytes:>6.0f}{flags}"
            )
        if not ser.steps:
            w(f"{ser.name:<38} {ser.clients:>7}  (no steps: {ser.note or 'failed'})")
    w(
        "(* = p99 >= 50 ms or frames missing; srv cpu: the websocket server process and cli cpu: the client"
    )
    w(
        " processes, 100% = one core; us/del: server CPU microseconds per delivered frame; mach: the whole"
    )
    w(" machine, 100% = all cores busy; other: CPU used by")
    w(" processes outside this run, 100% = one core: above ~10% the step was disturbed)")
    w("")
    w(
        "Saturation: sustained = highest deliveries/s with p99 < 50 ms and every frame delivered; keeps up ="
    )
    w("highest deliveries/s still at >= 95 % of the offered pace (any latency); peak = max seen:")
    for ser in results:
        b, k, p = ser.best(), ser.keeps_up(), ser.peak()
        w(
            f"  {ser.name:<38} x{ser.clients:<5} connect {ser.connect_s:4.1f} s  "
            + (
                f"sustained {b.deliveries:>7,.0f}/s at {b.rate:g}/s (p99 {fmt(b.p99)})"
                if b
                else f"{'sustained: none':<41}"
            )
            + (
                f"  keeps up {k.deliveries:>7,.0f}/s (p50 {fmt(k.p50)}, p99 {fmt(k.p99)} ms)"
                if k
                else "  keeps up: none"
            )
            + (f"  peak {p.deliveries:,.0f}/s" if p else "")
            + (f"  [{ser.note}]" if ser.note else "")
        )
    w("")
    for n in args.clients:
        ref = next((s for s in results if s.name == "bare websockets" and s.clients == n), None)
        hub = next((s for s in results if s.name == "cityhub 1 proc" and s.clients == n), None)
        if ref and hub:
            rb, hb = ref.best(), hub.best()
            if rb and hb:
                ratio = hb.deliveries / rb.deliveries
                verdict = "meets" if ratio >= GOAL_RATIO else "misses"
                w(
                    f"cityhub/bare sustained deliveries/s at {n} clients: {ratio:.2f} ({verdict} the goal >= {GOAL_RATIO})"
                )
            rp, hp = ref.peak(), hub.peak()
            if rp and hp and rp.deliveries:
                w(
                    f"cityhub/bare peak deliveries/s at {n} clients: {hp.deliveries / rp.deliveries:.2f}"
                )
    for ser in results:
        if ser.name == "cityhub 1 proc" and ser.clients >= 5000:
            k = ser.keeps_up()
            if not ser.steps:
                verdict = "not measured"
            elif (
                ser.connected >= ser.clients
                and k is not None
                and all(s.closed == 0 for s in ser.steps)
            ):
                verdict = "held"
            else:
                verdict = "NOT held"
            w(
                f"{ser.clients} clients on one hub process: {verdict} ({ser.connected} connected and subscribed in "
                f"{ser.connect_s:.1f} s"
                + (
                    f"; keeps up with {k.deliveries:,.0f} deliveries/s, p50 {fmt(k.p50)} ms, "
                    f"p99 {fmt(k.p99)} ms"
                    if k
                    else ""
                )
                + f"; {sum(s.closed for s in ser.steps)} closed, {sum(s.resyncs for s in ser.steps)} resyncs)"
            )
    for ser in results:
        if ser.name.startswith("cityhub 2 procs"):
            single = next(
                (s for s in results if s.name == "cityhub 1 proc" and s.clients == ser.clients),
                None,
            )
            if not single:
                continue
            pairs = []
            for s in ser.steps:
                o = next((x for x in single.steps if x.rate == s.rate), None)
                if o and s.complete and o.complete:
                    pairs.append(
                        f"{s.rate:g}/s: {s.p50 - o.p50:+.1f} ms (p50 {o.p50:.1f} -> {s.p50:.1f})"
                    )
            if pairs:
                w(
                    f"added p50 with 2 processes + Redis at {ser.clients} clients: "
                    + "; ".join(pairs)
                )
    w(f"whole run: {(time.monotonic() - started) / 60:.1f} min")
    return "\n".join(lines)


def ws_version() -> str:
    try:
        import websockets

        return str(websockets.__version__)  # type: ignore[attr-defined]
    except Exception:
        return "?"


# ---------------------------------------------------------------------------------------------
# Main

#: Everything started here that must be stopped (hubs, redis, client and reference processes).
PROCS: list[Any] = []


def stop_all() -> None:
    for p in reversed(list(PROCS)):
        with contextlib.suppress(Exception):
            p.stop()


async def run(args: argparse.Namespace, scratch: Path) -> int:
    started = time.monotonic()
    budget = Budget(
        args.budget,
        (0 if args.skip_reference else len(args.clients))
        + (
            0
            if args.skip_hub
            else len(args.clients) + (len(cluster_clients(args)) if args.processes >= 2 else 0)
        ),
    )
    results: list[Series] = []
    log(
        f"clients {args.clients}, {args.client_procs} client processes, {args.seconds:g} s per rate, "
        f"processes {args.processes}; open-file limit {raise_nofile(65536)}"
    )
    log(
        "NOTE: clients, server and PostgreSQL share this machine's "
        f"{os.cpu_count()} cores (figures are a floor; the ratio to the bare server is what to read)"
    )
    if not args.skip_reference:
        await phase_reference(args, results, budget)
    if not args.skip_hub:
        import logging

        from storage.db import EmbeddedPostgres

        logging.getLogger("pgserver").setLevel(logging.WARNING)
        pg = EmbeddedPostgres(scratch / "pg")
        PROCS.append(pg)
        t0 = time.monotonic()
        dsn = await asyncio.to_thread(pg.start)
        with contextlib.suppress(Exception):
            ROOT_PIDS.append(int(pg._server.get_pid()))
        log(f"embedded PostgreSQL started in {time.monotonic() - t0:.1f} s")
        await prepare_database(scratch, args.hub_root, dsn, args.demo_cases)
        writer = await Writer.open(dsn, scratch)
        log(f"writer ready: {len(writer.free)} open cases to escalate")
        try:
            await phase_hub(args, results, budget, scratch, dsn, writer, cluster=False)
            if args.processes >= 2:
                await phase_hub(args, results, budget, scratch, dsn, writer, cluster=True)
        finally:
            await writer.close()
    text = report(args, results, started)
    print(text, flush=True)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )

    def ints(text: str) -> list[int]:
        return [int(x.replace("_", "")) for x in text.split(",") if x]

    def floats(text: str) -> list[float]:
        return [float(x) for x in text.split(",") if x]

    p.add_argument(
        "--clients", type=ints, default=None, help="client counts (default 1000,5000; --quick 1000)"
    )
    p.add_argument(
        "--rates",
        type=floats,
        default=None,
        help="frames (reference) or commits (cityhub) per second, the same for every client count "
        "(default: deliveries of "
        + ",".join(f"{t // 1000}k" for t in DELIVERY_TARGETS)
        + " per second divided by the client count)",
    )
    p.add_argument(
        "--seconds", type=float, default=None, help="seconds per rate (default 5; --quick 2)"
    )
    p.add_argument(
        "--processes",
        type=int,
        choices=(1, 2),
        default=2,
        help="2 (default): also two hub processes sharing PostgreSQL and Redis",
    )
    p.add_argument("--quick", action="store_true", help="1,000 clients, three rates, 2 s each")
    p.add_argument("--client-procs", type=int, default=2, help="client processes (default 2)")
    p.add_argument(
        "--frame-bytes",
        type=int,
        default=1260,
        help="size of the reference frames (default 1260, what the hub's case envelopes measure)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each series, wait at most this many seconds for other processes to go "
        "quiet, and a third of it before each rate (default 30; --quick 6; 0: do not wait)",
    )
    p.add_argument("--demo-cases", type=int, default=200)
    p.add_argument(
        "--cluster-all", action="store_true", help="run the 2-process phase for every client count"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="minutes for all the series, shared out among them (default 8.5; --quick 1.3)",
    )
    p.add_argument("--skip-reference", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-hub", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--hub-root",
        type=Path,
        default=ROOT,
        help="the cityhub tree to run the hubs from (default: this one)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="parent of the temporary directory")
    p.add_argument(
        "--keep-logs", type=Path, default=None, help="copy the hubs' logs into this directory"
    )
    p.add_argument(
        "--output", type=Path, default=None, help="also write the final table to this file"
    )
    args = p.parse_args(argv)
    args.clients = args.clients or ([1000] if args.quick else [1000, 5000])
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.budget = args.budget or (1.3 if args.quick else 8.5)
    args.hub_root = args.hub_root.resolve()
    if args.quiet_wait is None:
        args.quiet_wait = 6.0 if args.quick else 30.0
    QUIET_WAIT[0] = args.quiet_wait
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        KEEP_LOGS[0] = args.keep_logs.resolve()
    if args.client_procs < 1:
        p.error("--client-procs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile(65536)
    scratch = scratch_dir("cityhub-fanout-", args.data_dir, shared=True)
    return run_cleanly(lambda: asyncio.run(run(args, scratch)), stop_all, scratch)


if __name__ == "__main__":
    sys.exit(main())
