#!/usr/bin/env python3
"""Benchmark of the 12319 hotline (issue 10): how many concurrent calls one hub process holds with
hold music playing while its RTP pacing stays within 20 ms ± 2 ms at p99 and no call fails, next to
``baresip`` (C, Debian package) answering the same sipp calls in the same run; the hub's CPU per
call bridged to a browser agent; the time from INVITE to the welcome prompt's first packet.

Run ``python bench/hotline.py`` (about 9 minutes) or ``python bench/hotline.py --quick`` (about
2 minutes: 50 and 100 calls, 4 bridged calls, 5 welcome calls). See ``docs/benchmarks.md``
("12319 hotline: bench/hotline.py") for the last results.

Theory of operation:

1. Setup, in a temporary directory: an embedded PostgreSQL (``pgserver``) with the demo city
   (``cityhub demo``: the admin account); the hotline prompts made once with espeak-ng into the
   hub's prompt cache (so the hub reads them at start and never speaks during a run); one hub
   process, ``cityhub serve --roles web,telephony`` with ``CITYHUB_HOTLINE_TRUNKS=127.0.0.0/8``, a
   queue of 10,000 and a two-hour maximum wait, so every call stays in the queue with music.
2. The receiver, a separate process: one UDP socket on 127.0.0.1 (plus the RTCP port above it,
   drained) that every sipp call names in its SDP, so all the hub's (or baresip's) streams arrive
   there. Each datagram is stamped by the kernel (``SO_TIMESTAMPNS``), demultiplexed by SSRC and,
   as the caller's voice, sent back to where it came from under another SSRC (so the hub receives
   50 packets per second per call, as from a real caller, and a media timeout never fires). Per
   stream, over a window, the gaps between arrivals give the pacing: the deviation of each gap from
   ``20 ms × sequence step``, pooled over all streams (p50, p99, max), the worst stream's p99, and
   loss and reordering from the sequence numbers.
3. Capacity: for N in ``--counts`` (50, 100, 200, 300, 400, capped by ``--max-calls``) sipp places
   N calls (``-l N -m N -r --rate``) that stay up for the ramp, the welcome prompt (its length, read
   from the prompts), a settling margin and the window, then BYE. The window starts when the
   hub's queue board shows all N calls waiting (past the welcome, hold music and announcements);
   the hub's CPU (utime + stime of ``/proc/PID/stat``) and the receiver's figures are taken over
   it. A step passes when sipp reports N successful calls and no failed one, the receiver saw N
   streams in the window and the p99 deviation is within ±2 ms. The series stops at the first
   step that misses; the largest N that passed is the figure.
4. baresip at each N right after the hub's step: one ``baresip`` process (config written in the
   temporary directory: ``sip_listen`` on loopback, ``call_max_calls`` above N, the account with
   ``answermode=auto``, modules ``g711``, ``aufile``, ``account``, ``menu`` only) auto-answers
   the same sipp scenario and plays a WAV of the hub's hold music (``aufile``) in G.711; its window
   starts when the receiver sees N streams; the same figures. If baresip misses at some N it is
   said, and the comparison is at the N it held.
5. Bridged calls: for M in ``--bridged`` (4, 8, 16) sipp places M calls; once they wait in the
   queue the hub's CPU is measured over a window (M calls with music); then M agents (accounts made
   through the admin API, each with an aiortc peer in this process standing in for the browser:
   sign in, ready, offered, answer with a WebRTC offer through the API) answer them, and over a
   second window of the same length the hub's CPU is measured again with the M calls bridged
   (caller RTP → agent, agent → caller RTP, the recording). (bridged − queued) / M is the CPU per
   bridged call. Each agent must have received audio during the window, else the step is marked.
6. Time to welcome: K calls one after the other from this process's own ``UserAgent`` (as
   ``cityhub call`` does): the time from just before ``invite()`` to the 200 and to the first RTP
   packet of the welcome prompt at its stream (p50, max); each call is hung up at once.

The load average (``/proc/loadavg``) is printed before and after, and "machine busy" is the share
of all cores busy (any process) during each window. Goals (issue 10): at least 200 concurrent calls
within 20 ± 2 ms at p99 with no call failed. Everything runs on loopback; every process started here
is stopped and the temporary directory removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import multiprocessing as mp
import os
import platform
import resource
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    cpu_jiffies,
    free_port,
    loadavg,
    proc_cpu,
    run_cleanly,
    scratch_dir,
)
from bench.common import log_stderr as log  # noqa: E402

HOST = "127.0.0.1"
PTIME_MS = 20.0
GOAL_CALLS = 200
GOAL_P99_MS = 2.0
SO_TIMESTAMPNS = 35  # Linux; socket has no constant for it
SO_RCVBUFFORCE = 33
ECHO_SSRC_XOR = 0x5A5A5A5A
ADMIN = ("admin", "Admin#2026")  # the demo city's admin (hub/demo/organisation.py)
AGENT_PASSWORD = "Agent#2026"


# ---------------------------------------------------------------------------------------------
# Child processes


@dataclass
class Child:
    """A child process in its own session (Ctrl-C reaches only this process, which stops it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(ValueError):
            CHILDREN.remove(self)

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


CHILDREN: list[Child] = []


def spawn(name: str, args: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> Child:
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    child = Child(name, proc, log_path)
    CHILDREN.append(child)
    return child


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) in seconds; NaN once it is gone."""
    cpu = proc_cpu(pid)
    return float("nan") if cpu is None else cpu


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else float("nan")


@dataclass
class Meter:
    """CPU of one process and the machine's busy share over a window."""

    pid: int
    cpu0: float = 0.0
    t0: float = 0.0
    busy0: tuple[int, int] = (0, 0)

    def start(self) -> None:
        self.cpu0, self.t0, self.busy0 = cpu_seconds(self.pid), time.monotonic(), cpu_jiffies()

    def stop(self) -> tuple[float, float, float]:
        """(CPU share of one core, wall seconds, machine busy share)."""
        cpu, wall = cpu_seconds(self.pid) - self.cpu0, time.monotonic() - self.t0
        return cpu / wall, wall, busy_share(self.busy0, cpu_jiffies())


# ---------------------------------------------------------------------------------------------
# The receiver (a separate process)


def receiver_main(conn: Connection, echo: bool, max_seconds: float) -> None:
    """One socket for every stream: kernel timestamps, SSRC demultiplexing, the caller's echo.

    Commands on ``conn``: ``("start",)`` records arrivals; ``("stop",)`` stops and answers the
    window's figures; ``("count",)`` answers how many SSRCs arrived in the last second;
    ``("quit",)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(200):
        port = 2 * secrets.randbelow(10000) + 36000  # even, RTCP on port + 1
        try:
            sock.bind((HOST, port))
        except OSError:
            continue
        try:
            sink.bind((HOST, port + 1))
            break
        except OSError:
            sock.close()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        stamps = "kernel (SO_TIMESTAMPNS)"
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        stamps = "kernel (SO_TIMESTAMPNS), default buffer"
    sock.setblocking(False)
    sink.setblocking(False)
    conn.send(sock.getsockname()[1])
    poller = select.epoll()
    poller.register(sock.fileno(), select.EPOLLIN)
    poller.register(sink.fileno(), select.EPOLLIN)
    poller.register(conn.fileno(), select.EPOLLIN)
    records: list[tuple[int, int, int]] = []
    recording = False
    recent: dict[int, float] = {}
    unpack_ts = struct.Struct("qq").unpack_from
    unpack_head = struct.Struct("!HHII").unpack_from
    pack_ssrc = struct.Struct("!I").pack
    cmsg_size = socket.CMSG_SPACE(16)
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        for fd, _ in poller.poll(0.2):
            if fd == conn.fileno():
                cmd = conn.recv()[0]
                if cmd == "start":
                    records, recording = [], True
                elif cmd == "stop":
                    recording = False
                    conn.send({**summarise(records), "stamps": stamps})
                    records = []
                elif cmd == "count":
                    now = time.monotonic()
                    conn.send(sum(1 for t in recent.values() if now - t < 1.0))
                elif cmd == "quit":
                    sock.close()
                    sink.close()
                    return
                continue
            if fd == sink.fileno():
                with contextlib.suppress(BlockingIOError):
                    for _ in range(1000):
                        sink.recv(2048)
                continue
            now = time.monotonic()
            for _ in range(5000):
                try:
                    data, anc, _flags, addr = sock.recvmsg(2048, cmsg_size)
                except BlockingIOError:
                    break
                if len(data) < 12 or data[1] & 0x7F >= 72:  # not RTP (RTCP types 200-204)
                    continue
                t_ns = 0
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = unpack_ts(value)
                        t_ns = sec * 1_000_000_000 + nsec
                if not t_ns:
                    t_ns = time.time_ns()
                _, seq, _, ssrc = unpack_head(data)
                recent[ssrc] = now
                if recording:
                    records.append((ssrc, seq, t_ns))
                if echo:
                    with contextlib.suppress(OSError):
                        sock.sendto(data[:8] + pack_ssrc(ssrc ^ ECHO_SSRC_XOR) + data[12:], addr)
            if len(recent) > 20000:
                cutoff = now - 5.0
                recent = {k: v for k, v in recent.items() if v > cutoff}
    sock.close()
    sink.close()


def summarise(records: list[tuple[int, int, int]]) -> dict[str, Any]:
    """Per-stream pacing over a window: gap deviations from 20 ms × sequence step, loss, reorder."""
    import numpy as np

    if not records:
        return {"streams": 0, "packets": 0}
    a = np.array(records, dtype=np.int64)
    devs = []
    worst = 0.0
    lost = reordered = streams = 0
    gaps_one = []
    for ssrc in np.unique(a[:, 0]):
        s = a[a[:, 0] == ssrc]
        if len(s) < 10:
            continue
        streams += 1
        step = np.diff(s[:, 1]) & 0xFFFF
        gap_ms = np.diff(s[:, 2]) / 1e6
        forward = (step >= 1) & (step < 1000)
        reordered += int((~forward).sum())
        lost += int((step[forward] - 1).sum())
        dev = np.abs(gap_ms[forward] - PTIME_MS * step[forward])
        if len(dev):
            devs.append(dev)
            worst = max(worst, float(np.percentile(dev, 99)))
        gaps_one.append(gap_ms[step == 1])
    if not devs:
        return {"streams": streams, "packets": len(a)}
    d = np.concatenate(devs)
    g = np.concatenate(gaps_one)
    return {
        "streams": streams,
        "packets": len(a),
        "lost": lost,
        "reordered": reordered,
        "p50": float(np.percentile(d, 50)),
        "p99": float(np.percentile(d, 99)),
        "max": float(d.max()),
        "worst_p99": worst,
        "gap_p1": float(np.percentile(g, 1)) if len(g) else float("nan"),
        "gap_p99": float(np.percentile(g, 99)) if len(g) else float("nan"),
    }


class Receiver:
    def __init__(self, echo: bool, max_seconds: float) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=receiver_main, args=(child, echo, max_seconds), daemon=True)
        self.proc.start()
        if not self.conn.poll(30):
            raise RuntimeError("the receiver process did not start")
        self.port: int = self.conn.recv()

    def ask(self, cmd: str, timeout: float = 30.0) -> Any:
        self.conn.send((cmd,))
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the receiver did not answer {cmd!r}")
        return self.conn.recv()

    def start(self) -> None:
        self.conn.send(("start",))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("quit",))
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# ---------------------------------------------------------------------------------------------
# sipp

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- A citizen calling the hotline: INVITE (SDP at the bench's receiver), hold for -d, BYE. -->
<scenario name="hotline caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:1390000[call_number]@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:1390000[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- [call_number] 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio {port} RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:1390000[call_number]@[local_ip]:[local_port]>;tag=[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:1390000[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:1390000[call_number]@[local_ip]:[local_port]>;tag=[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:1390000[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


@dataclass
class Sipp:
    child: Child
    cwd: Path
    started: float

    async def finish(self, within: float) -> dict[str, int]:
        """Wait for sipp to end (bounded); its successful and failed call counts."""
        deadline = time.monotonic() + within
        while self.child.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        self.child.stop(5)
        out = {"successful": 0, "failed": 0, "created": 0}
        with contextlib.suppress(OSError, IndexError, KeyError, ValueError):
            with (self.cwd / "stat.csv").open(newline="") as f:
                row = list(csv.DictReader(f, delimiter=";"))[-1]
            out = {
                "successful": int(row["SuccessfulCall(C)"]),
                "failed": int(row["FailedCall(C)"]),
                "created": int(row["TotalCallCreated"]),
            }
        return out

    def errors(self) -> str:
        text = "".join(p.read_text(errors="replace") for p in self.cwd.glob("*_errors.log"))
        return text[-600:]


def start_sipp(
    target: tuple[str, int], service: str, calls: int, rate: float, hold: float, rx_port: int,
    scratch: Path, label: str,
) -> Sipp:  # fmt: skip
    sipp = shutil.which("sipp") or "/usr/bin/sipp"
    cwd = scratch / f"sipp-{label}"
    cwd.mkdir()
    (cwd / "caller.xml").write_text(SCENARIO.replace("{port}", str(rx_port)))
    args = [
        sipp, f"{target[0]}:{target[1]}", "-sf", "caller.xml", "-s", service,
        "-i", HOST, "-p", str(free_port(socket.SOCK_DGRAM)),
        "-mp", str(free_port(socket.SOCK_DGRAM)), "-cp", str(free_port(socket.SOCK_DGRAM)),
        "-m", str(calls), "-l", str(calls), "-r", f"{rate:g}", "-rp", "1000",
        "-d", str(int(hold * 1000)), "-aa",
        "-timeout", str(int(hold + calls / rate + 60)), "-timeout_error",
        "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_err", "-nostdin",
    ]  # fmt: skip
    child = spawn(f"sipp {label}", args, cwd / "sipp.log", dict(os.environ), cwd)
    return Sipp(child, cwd, time.monotonic())


# ---------------------------------------------------------------------------------------------
# The hub, its database and API


def hub_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")}
    env["PYTHONPATH"] = str(ROOT)
    env["CITYHUB_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


async def prepare_database(scratch: Path, dsn: str) -> None:
    data = scratch / "demo"
    data.mkdir(mode=0o755)
    args = [sys.executable, "-m", "hub.cli", "demo", "--demo-cases", "20", "--data-dir", str(data)]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=hub_env({"CITYHUB_DATABASE_URL": dsn}),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 240)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"cityhub demo failed:\n{out.decode(errors='replace')[-1500:]}")


async def prepare_prompts(cache: Path) -> tuple[float, float, bytes]:
    """Make the hotline prompts in the hub's cache; (welcome seconds, the longest position
    announcement's seconds, the hold music A-law)."""
    from telephony.hotline.prompts import Prompts

    prompts = Prompts(cache)
    await prompts.prepare()
    announce = max(
        len(prompts.get("queue_position", position=p, wait_minutes=m))
        for p in (1, 2, 30) for m in (1, 30)
    )  # fmt: skip
    return len(prompts.get("welcome")) / 8000, announce / 8000, prompts.music()


@dataclass
class Hub:
    child: Child
    http: str
    sip: tuple[str, int]


async def start_hub(scratch: Path, dsn: str, max_calls: int, realtime: list[str]) -> Hub:
    import httpx

    port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
    data = scratch / "hub"
    env = hub_env({
        "CITYHUB_DATABASE_URL": dsn,
        "CITYHUB_WS_PORT": str(free_port()),
        "CITYHUB_SIP_HOST": HOST,
        "CITYHUB_SIP_PORT": str(sip_port),
        "CITYHUB_RTP_PORTS": f"30000-{30000 + 2 * max_calls + 400}",
        "CITYHUB_HOTLINE_TRUNKS": "127.0.0.0/8",
        "CITYHUB_HOTLINE_MAX_QUEUE": "10000",
        "CITYHUB_HOTLINE_MAX_WAIT": "7200",
        "CITYHUB_WEBRTC_NETWORKS": "127.0.0.0/8",
    })  # fmt: skip
    args = [
        sys.executable, "-m", "hub.cli", "serve", "--roles", "web,telephony",
        "--data-dir", str(data), "--port", str(port),
    ]  # fmt: skip
    child = spawn("hub", [*realtime, *args], scratch / "hub.log", env, ROOT)
    hub = Hub(child, f"http://{HOST}:{port}", (HOST, sip_port))
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {child.proc.returncode}:\n{child.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{hub.http}/healthz")).status_code == 200:
                    return hub
            await asyncio.sleep(0.3)
    raise RuntimeError(f"the hub was not ready in 90 s:\n{child.tail()}")


class Api:
    def __init__(self, client: Any, token: str, user: dict[str, Any]) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.user = user

    @classmethod
    async def login(cls, client: Any, username: str, password: str) -> Api:
        r = await client.post(
            "/api/auth/login", json={"username": username, "password": password, "token": True}
        )
        r.raise_for_status()
        return cls(client, r.json()["token"], r.json()["user"])

    async def get(self, url: str) -> Any:
        r = await self.client.get(url, headers=self.headers)
        r.raise_for_status()
        return r.json()

    async def post(self, url: str, body: dict[str, Any]) -> Any:
        r = await self.client.post(url, headers=self.headers, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"POST {url}: {r.status_code} {r.text[:300]}")
        return r.json()


async def waiting(admin: Api) -> list[dict[str, Any]]:
    board = await admin.get("/api/hotline/board")
    calls: list[dict[str, Any]] = board["calls"]
    return calls


async def wait_queued(admin: Api, n: int, until: float) -> int:
    """Poll the queue board until ``n`` calls wait (bounded by ``until``); how many waited."""
    got = 0
    while time.monotonic() < until:
        got = sum(1 for c in await waiting(admin) if c["state"] == "queued")
        if got >= n:
            return got
        await asyncio.sleep(0.5)
    return got


async def wait_drained(admin: Api, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not await waiting(admin):
            return
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# Capacity: the hub and baresip


@dataclass
class Step:
    who: str
    calls: int
    sipp: dict[str, int] = field(default_factory=dict)
    pacing: dict[str, Any] = field(default_factory=dict)
    cpu: float = float("nan")  # share of one core over the window
    wall: float = float("nan")
    busy: float = float("nan")
    load: str = ""
    note: str = ""

    @property
    def held(self) -> bool:
        """Every call answered and ended cleanly, and every stream arrived in the window."""
        return (
            self.sipp.get("failed", 1) == 0
            and self.sipp.get("successful", 0) == self.calls
            and self.pacing.get("streams", 0) == self.calls
        )

    @property
    def passed(self) -> bool:
        return self.held and self.pacing.get("p99", 99.0) <= GOAL_P99_MS


def chrt(args: argparse.Namespace) -> list[str]:
    """The prefix that runs a server (the hub, baresip) at SCHED_FIFO 10 with ``--realtime``."""
    exe = shutil.which("chrt")
    return [exe, "-f", "10"] if args.realtime and exe else []


def ramp(args: argparse.Namespace, calls: int) -> float:
    return float(calls / args.rate)


async def hub_step(
    args: argparse.Namespace, hub: Hub, admin: Api, rx: Receiver, calls: int, welcome: float,
    scratch: Path,
) -> Step:  # fmt: skip
    step = Step("cityhub", calls)
    # the welcome, the first position announcement, then music (and an announcement every 30 s)
    settle = welcome + args.announce_s + 4.0
    hold = ramp(args, calls) * 1.5 + settle + args.window + 4.0
    sipp = start_sipp(hub.sip, "12319", calls, args.rate, hold, rx.port, scratch, f"hub-{calls}")
    until = sipp.started + hold - args.window - args.announce_s - 2.0
    got = await wait_queued(admin, calls, until)
    if got < calls:
        step.note = f"only {got} of {calls} calls reached the queue in time"
    await asyncio.sleep(args.announce_s)  # the last call's first announcement
    meter = Meter(hub.child.proc.pid)
    rx.start()
    meter.start()
    await asyncio.sleep(args.window)
    step.cpu, step.wall, step.busy = meter.stop()
    step.pacing = rx.ask("stop", 60)
    step.load = loadavg()
    step.sipp = await sipp.finish(ramp(args, calls) + 30)
    if step.sipp.get("failed"):
        step.note += f" sipp: {sipp.errors()!r}"
    await wait_drained(admin, 30)
    return step


def baresip_config(conf: Path, wav: Path, port: int, max_calls: int) -> None:
    conf.mkdir()
    (conf / "config").write_text(
        "module_path /usr/lib/baresip/modules\n"
        f"sip_listen {HOST}:{port}\n"
        f"call_max_calls {max_calls + 100}\n"
        f"audio_source aufile,{wav}\naudio_player aufile,/dev/null\naudio_alert aufile,/dev/null\n"
        "rtp_ports 46000-49999\n"
        "module g711.so\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n"
    )
    (conf / "accounts").write_text(
        f"<sip:bench@{HOST}>;regint=0;answermode=auto;audio_codecs=PCMA,PCMU\n"
    )
    (conf / "contacts").write_text("")


async def baresip_step(
    args: argparse.Namespace, rx: Receiver, calls: int, wav: Path, scratch: Path
) -> Step:
    step = Step("baresip", calls)
    exe = shutil.which("baresip") or "/usr/bin/baresip"
    hold = ramp(args, calls) * 1.5 + 6.0 + args.window + 4.0
    child: Child | None = None
    for attempt in range(3):  # baresip also binds TCP/TLS next to the UDP port: may be taken
        conf = scratch / f"baresip-{calls}-{attempt}"
        sip_port = free_port(socket.SOCK_DGRAM)
        baresip_config(conf, wav, sip_port, calls)
        cmd = [
            *chrt(args),
            exe,
            "-4",
            "-f",
            str(conf),
            "-t",
            str(int(hold + ramp(args, calls) + 60)),
        ]
        child = spawn(f"baresip {calls}", cmd, conf / "log", dict(os.environ), conf)
        await asyncio.sleep(1.0)
        if child.proc.poll() is None:
            break
        step.note = f"baresip exited: {child.tail()!r}"
        child.stop(1)
    assert child is not None
    try:
        if child.proc.poll() is not None:
            return step
        step.note = ""
        sipp = start_sipp((HOST, sip_port), "bench", calls, args.rate, hold, rx.port, scratch,
                          f"baresip-{calls}")  # fmt: skip
        until = sipp.started + hold - args.window - 2.0
        got = 0
        while time.monotonic() < until:
            got = rx.ask("count")
            if got >= calls:
                break
            await asyncio.sleep(0.5)
        if got < calls:
            step.note = f"only {got} of {calls} streams arrived in time"
        await asyncio.sleep(1.0)
        meter = Meter(child.proc.pid)
        rx.start()
        meter.start()
        await asyncio.sleep(args.window)
        step.cpu, step.wall, step.busy = meter.stop()
        step.pacing = rx.ask("stop", 60)
        step.load = loadavg()
        step.sipp = await sipp.finish(ramp(args, calls) + 30)
        if step.sipp.get("failed"):
            step.note += f" sipp: {sipp.errors()!r}"
    finally:
        child.stop(10)
    return step


def music_wav(scratch: Path, music: bytes, seconds: float) -> Path:
    """The hub's hold music as the 8 kHz 16-bit WAV baresip's aufile source plays."""
    import numpy as np

    from telephony.g711 import G711Law

    pcm = np.asarray(G711Law.ALAW.decode(music), dtype="<i2")
    reps = int(seconds * 8000 / max(1, len(pcm))) + 1
    path = scratch / "music.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.tile(pcm, reps)[: int(seconds * 8000)].tobytes())
    return path


# ---------------------------------------------------------------------------------------------
# Bridged calls: aiortc agents in this process


class Agent:
    """An agent's browser: a microphone (a sine) out, the caller's audio in (frames counted)."""

    def __init__(self, api: Api) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.api = api
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(sine_track(), direction="sendrecv")
        self.frames = 0
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        async def read() -> None:
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                self.frames += 1

        self._reader = asyncio.get_running_loop().create_task(read())

    async def answer(self, deadline: float) -> str:
        """Ready; wait for the offer; answer it with a WebRTC offer. The call's id."""
        from aiortc import RTCSessionDescription

        await self.api.post("/api/hotline/me/state", {"state": "ready"})
        call = None
        while time.monotonic() < deadline:
            me = await self.api.get("/api/hotline/me")
            if me["state"] == "offered" and me["call"]:
                call = me["call"]
                break
            await asyncio.sleep(0.2)
        if call is None:
            raise RuntimeError("no call offered in time")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        answer = await self.api.post(f"/api/hotline/live/{call}/answer", {"sdp": sdp})
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        return str(call)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()


def sine_track() -> Any:
    """A 48 kHz mono microphone playing 1 kHz, paced in real time."""
    import fractions

    import av
    import numpy as np
    from aiortc import AudioStreamTrack

    class Sine(AudioStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.t0: float | None = None

        async def recv(self) -> av.AudioFrame:
            n = 960
            if self.t0 is None:
                self.t0 = time.monotonic()
            else:
                await asyncio.sleep(max(0.0, self.t0 + self.sent * 0.02 - time.monotonic()))
            t = (np.arange(n) + self.sent * n) / 48000
            pcm = (np.sin(2 * np.pi * 1000.0 * t) * 8000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts = self.sent * n
            frame.time_base = fractions.Fraction(1, 48000)
            self.sent += 1
            return frame

    return Sine()


@dataclass
class Bridged:
    calls: int
    queued_cpu: float = float("nan")
    bridged_cpu: float = float("nan")
    bench_cpu: float = float("nan")  # this process (the aiortc agents) while bridged
    busy: tuple[float, float] = (float("nan"), float("nan"))
    frames: list[int] = field(default_factory=list)
    sipp: dict[str, int] = field(default_factory=dict)
    load: str = ""
    note: str = ""

    @property
    def per_call(self) -> float:
        return (self.bridged_cpu - self.queued_cpu) / self.calls


async def bridged_step(
    args: argparse.Namespace, hub: Hub, admin: Api, rx: Receiver, calls: int, welcome: float,
    scratch: Path, agents: list[Api],
) -> Bridged:  # fmt: skip
    out = Bridged(calls)
    settle = welcome + args.announce_s + 4.0
    answer_budget = 12.0
    w = args.bridged_window
    hold = ramp(args, calls) * 1.5 + settle + w + answer_budget + w + 3.0
    sipp = start_sipp(
        hub.sip, "12319", calls, args.rate, hold, rx.port, scratch, f"bridged-{calls}"
    )
    for a in agents:
        await a.post("/api/hotline/me/state", {"state": "signed_in"})
    got = await wait_queued(admin, calls, sipp.started + hold - 2 * w - answer_budget - 3)
    if got < calls:
        out.note = f"only {got} of {calls} calls queued in time; "
    meter = Meter(hub.child.proc.pid)
    meter.start()
    await asyncio.sleep(w)
    out.queued_cpu, _, busy_q = meter.stop()
    browsers = [Agent(a) for a in agents]
    try:
        t0 = time.monotonic()
        answered = await asyncio.gather(
            *(b.answer(t0 + answer_budget - 1) for b in browsers), return_exceptions=True
        )
        failed = [r for r in answered if isinstance(r, BaseException)]
        if failed:
            out.note += f"{len(failed)} agents did not answer ({failed[0]!r}); "
        talking = 0
        while time.monotonic() < t0 + answer_budget:
            board = await admin.get("/api/hotline/board")
            mine = {str(a.user["id"]) for a in agents}
            talking = sum(
                1 for x in board["agents"] if x["agent"] in mine and x["state"] == "talking"
            )
            if talking >= calls:
                break
            await asyncio.sleep(0.3)
        await asyncio.sleep(max(1.0, t0 + answer_budget - time.monotonic()))
        if talking < calls:
            out.note += f"{talking} of {calls} agents talking; "
        before = [b.frames for b in browsers]
        own0 = time.process_time()
        meter.start()
        await asyncio.sleep(w)
        out.bridged_cpu, wall, busy_b = meter.stop()
        out.bench_cpu = (time.process_time() - own0) / wall
        out.frames = [b.frames - f for b, f in zip(browsers, before, strict=True)]
        out.busy = (busy_q, busy_b)
        out.load = loadavg()
        out.sipp = await sipp.finish(ramp(args, calls) + 30)
        if out.sipp.get("failed"):
            out.note += f"sipp: {sipp.errors()!r}"
    finally:
        for b in browsers:
            await b.close()
    for a in agents:
        with contextlib.suppress(Exception):
            await a.post("/api/hotline/me/state", {"state": "signed_out"})
    await wait_drained(admin, 20)
    return out


# ---------------------------------------------------------------------------------------------
# Time to the welcome prompt


async def welcome_latency(hub: Hub, count: int) -> list[tuple[float, float]]:
    """(INVITE → 200, INVITE → first RTP packet) in ms for ``count`` calls one after another.

    The media socket is a plain UDP socket with kernel receive stamps (``SO_TIMESTAMPNS``, the
    wall clock, as ``time.time_ns()`` before the INVITE): no jitter buffer in between."""
    from telephony.sdp import PCMA, PCMU, Direction, LocalMedia, SdpSession, build_offer
    from telephony.sip.agent import UserAgent

    out: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()
    ua = UserAgent(HOST, 0, user="13900009999")
    await ua.start()
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((HOST, 0))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            first: asyncio.Future[int] = loop.create_future()

            def readable(sock: socket.socket = sock, first: asyncio.Future[int] = first) -> None:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        data, anc, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
                        if first.done() or len(data) < 12 or data[1] & 0x7F >= 72:
                            continue
                        stamp = time.time_ns()
                        for level, kind, value in anc:
                            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                                sec, nsec = struct.unpack_from("qq", value)
                                stamp = sec * 1_000_000_000 + nsec
                        first.set_result(stamp)

            loop.add_reader(sock.fileno(), readable)
            try:
                port = sock.getsockname()[1]
                local = LocalMedia(HOST, port, Direction.SENDRECV, codecs=(PCMA, PCMU))
                _, offer = build_offer(SdpSession(secrets.randbelow(2**31), 1, HOST), local)
                t0 = time.time_ns()
                call = await ua.invite(f"sip:12319@{hub.sip[0]}:{hub.sip[1]}", offer)
                t_ok = time.time_ns()
                t_rtp = await asyncio.wait_for(first, 5.0)
                out.append(((t_ok - t0) / 1e6, (t_rtp - t0) / 1e6))
                await call.hangup()
            finally:
                loop.remove_reader(sock.fileno())
                sock.close()
            await asyncio.sleep(0.3)
    finally:
        ua.close()
        await ua.wait_closed()
    return out


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v: float, digits: int = 2) -> str:
    return "-" if v != v else f"{v:.{digits}f}"  # NaN


def step_row(s: Step) -> str:
    p = s.pacing
    sipp = f"{s.sipp.get('successful', 0)}/{s.sipp.get('failed', 0)}"
    loss = "-"
    if p.get("packets"):
        loss = f"{p.get('lost', 0)}/{p.get('reordered', 0)}"
    per_call = s.cpu / s.calls * 100 if s.calls else float("nan")
    return (
        f"| {s.who} | {s.calls} | {sipp} | {p.get('streams', 0)} | {p.get('packets', 0)} | {loss} | "
        f"{fmt(p.get('p50', float('nan')))} | {fmt(p.get('p99', float('nan')))} | "
        f"{fmt(p.get('max', float('nan')))} | {fmt(p.get('worst_p99', float('nan')))} | "
        f"{fmt(s.cpu * 100, 1)} % | {fmt(per_call, 3)} % | {fmt(s.busy * 100, 0)} % | {s.load} | "
        f"{'PASS' if s.passed else 'MISS'} |"
    )


def largest(steps: list[Step], who: str, *, pacing: bool = True) -> int:
    """The largest N of ``who``'s series before its first miss (``pacing``: also 20 ± 2 ms)."""
    best = 0
    for s in steps:
        if s.who == who:
            if not (s.passed if pacing else s.held):
                break
            best = s.calls
    return best


def report(
    args: argparse.Namespace, steps: list[Step], bridged: list[Bridged],
    welcome: list[tuple[float, float]], welcome_s: float, loads: list[str], stamps: str,
) -> str:  # fmt: skip
    import numpy as np

    lines = [
        f"12319 hotline, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores; "
        f"sipp at {args.rate:g} calls/s, {args.window:g} s windows, welcome prompt "
        f"{welcome_s:.1f} s, receive stamps {stamps}, caller echo {'on' if args.echo else 'off'}, "
        f"servers at {'SCHED_FIFO 10' if args.realtime else 'normal priority'}",
        f"load average before: {loads[0]}",
        "",
        "Capacity (deviation of each gap from 20 ms × sequence step, all streams pooled; "
        "sipp ok/failed; lost/reordered packets; CPU: share of one core over the window)",
        "",
        "| who | calls | sipp ok/failed | streams | packets | lost/reord | p50 ms | p99 ms | max ms "
        "| worst stream p99 | CPU | CPU per call | machine busy | load | 20±2 ms, no failure |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [step_row(s) for s in steps]
    notes = [f"- {s.who} x{s.calls}: {s.note.strip()}" for s in steps if s.note.strip()]
    lines += ["", *notes] if notes else []
    hub_best, bare_best = largest(steps, "cityhub"), largest(steps, "baresip")
    hub_held = largest(steps, "cityhub", pacing=False)
    bare_held = largest(steps, "baresip", pacing=False)
    bare_max = max((s.calls for s in steps if s.who == "baresip"), default=0)
    lines += [
        "",
        f"Largest N within 20 ± {GOAL_P99_MS:g} ms at p99 with no call failed: cityhub {hub_best}, "
        f"baresip {bare_best}",
        f"Largest N held (every call answered, every stream arriving, pacing aside): cityhub "
        f"{hub_held}, baresip {bare_held}"
        + (
            f" (baresip could not hold {bare_max}: compare at {bare_held})"
            if bare_held < bare_max
            else ""
        ),
    ]
    if bridged:
        lines += [
            "",
            "Bridged calls (hub CPU, share of one core, over the same window length: the M calls "
            "queued with music, then bridged to M aiortc agents)",
            "",
            "| calls M | queued CPU | bridged CPU | per bridged call | agent frames min/max "
            "| bench (agents) CPU | machine busy q/b | load | sipp ok/failed |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for b in bridged:
            frames = f"{min(b.frames)}/{max(b.frames)}" if b.frames else "-"
            lines.append(
                f"| {b.calls} | {fmt(b.queued_cpu * 100, 1)} % | {fmt(b.bridged_cpu * 100, 1)} % | "
                f"{fmt(b.per_call * 100, 2)} % | {frames} | {fmt(b.bench_cpu * 100, 0)} % | "
                f"{fmt(b.busy[0] * 100, 0)}/{fmt(b.busy[1] * 100, 0)} % | {b.load} | "
                f"{b.sipp.get('successful', 0)}/{b.sipp.get('failed', 0)} |"
            )
        lines += [f"- bridged x{b.calls}: {b.note.strip()}" for b in bridged if b.note.strip()]
    if welcome:
        ok = np.array([w[0] for w in welcome])
        rtp = np.array([w[1] for w in welcome])
        lines += [
            "",
            f"Time to welcome over {len(welcome)} calls (own UserAgent, one after another): "
            f"INVITE → 200 p50 {np.percentile(ok, 50):.1f} ms max {ok.max():.1f} ms; "
            f"INVITE → first RTP packet p50 {np.percentile(rtp, 50):.1f} ms max {rtp.max():.1f} ms",
        ]
    lines += [
        "",
        f"Goal: >= {GOAL_CALLS} concurrent calls with hold music within 20 ± {GOAL_P99_MS:g} ms "
        f"at p99, no call failed: {'PASS' if hub_best >= GOAL_CALLS else 'MISS'} "
        f"(cityhub held {hub_best})",
        f"load average after: {loads[-1]}",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main


async def run(args: argparse.Namespace, scratch: Path) -> int:
    import httpx

    from storage.db import EmbeddedPostgres

    loads = [loadavg()]
    log(f"load average {loads[0]}; {os.cpu_count()} cores")
    pg = EmbeddedPostgres(scratch / "pg")
    prompts_dir = scratch / "hub" / "prompts"
    prompts_dir.mkdir(parents=True)
    t0 = time.monotonic()
    dsn, (welcome_s, args.announce_s, music) = await asyncio.gather(
        asyncio.to_thread(pg.start), prepare_prompts(prompts_dir)
    )
    log(
        f"PostgreSQL and prompts ready in {time.monotonic() - t0:.1f} s (welcome {welcome_s:.1f} s)"
    )
    rx: Receiver | None = None
    try:
        await prepare_database(scratch, dsn)
        log("demo city loaded")
        hub = await start_hub(scratch, dsn, max(args.counts), chrt(args))
        log(f"hub pid {hub.child.proc.pid} at {hub.http}, SIP {hub.sip[1]}")
        longest = ramp(args, max(args.counts)) * 1.5 + args.window + 60
        wav = music_wav(scratch, music, longest)
        rx = Receiver(args.echo, 3600)
        stamps = "kernel (SO_TIMESTAMPNS)"
        steps: list[Step] = []
        bridged: list[Bridged] = []
        welcome: list[tuple[float, float]] = []
        async with httpx.AsyncClient(base_url=hub.http, timeout=20) as client:
            admin = await Api.login(client, *ADMIN)
            await asyncio.sleep(3.0)  # the hub reads its prompts from the cache
            log(f"time to welcome: {args.welcome_calls} calls")
            welcome = await welcome_latency(hub, args.welcome_calls)
            await wait_drained(admin, 20)
            hub_on, bare_on = True, not args.skip_baresip and shutil.which("baresip") is not None
            for n in args.counts:
                if hub_on:
                    log(f"cityhub, {n} calls (load {loadavg()}) ...")
                    steps.append(await hub_step(args, hub, admin, rx, n, welcome_s, scratch))
                    log(step_row(steps[-1]))
                    stamps = steps[-1].pacing.get("stamps", stamps)
                    hub_on = steps[-1].passed
                if bare_on:
                    log(f"baresip, {n} calls ...")
                    steps.append(await baresip_step(args, rx, n, wav, scratch))
                    log(step_row(steps[-1]))
                    bare_on = steps[-1].held  # baresip goes on while it holds the calls
                if not hub_on and not bare_on:
                    break
            if args.bridged:
                made = 0
                for m in args.bridged:
                    agents = []
                    for _ in range(m):
                        made += 1
                        name = f"bench{made:03d}"
                        await admin.post("/api/users", {
                            "username": name, "display_name": f"压测坐席{made}",
                            "password": AGENT_PASSWORD, "role": "agent",
                        })  # fmt: skip
                        agents.append(await Api.login(client, name, AGENT_PASSWORD))
                    log(f"bridged, {m} calls ...")
                    bridged.append(
                        await bridged_step(args, hub, admin, rx, m, welcome_s, scratch, agents)
                    )
                    b = bridged[-1]
                    log(f"  queued {b.queued_cpu:.3f} bridged {b.bridged_cpu:.3f} {b.note}")
        loads.append(loadavg())
        print(report(args, steps, bridged, welcome, welcome_s, loads, stamps), flush=True)
        if hub.child.proc.poll() is not None:
            log(f"the hub exited during the run:\n{hub.child.tail()}")
        return 0
    finally:
        if rx is not None:
            rx.close()
        for child in reversed(list(CHILDREN)):
            child.stop()
        await asyncio.to_thread(pg.stop)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def ints(v: str) -> list[int]:
        return [int(x) for x in v.split(",") if x]

    p.add_argument("--quick", action="store_true", help="50 and 100 calls, 4 bridged, 5 welcomes")
    p.add_argument(
        "--counts", type=ints, default=None, help="call counts (default 50,100,200,300,400)"
    )
    p.add_argument("--max-calls", type=int, default=None, help="no step above this many calls")
    p.add_argument("--rate", type=float, default=20.0, help="sipp calls per second (default 20)")
    p.add_argument("--window", type=float, default=None, help="measurement window (default 10 s)")
    p.add_argument(
        "--bridged", type=ints, default=None, help="bridged call counts (default 4,8,16)"
    )
    p.add_argument("--bridged-window", type=float, default=None, help="seconds (default 8)")
    p.add_argument("--welcome-calls", type=int, default=None, help="time-to-welcome calls (20)")
    p.add_argument("--skip-baresip", action="store_true")
    p.add_argument(
        "--realtime", action="store_true",
        help="run the hub and baresip at SCHED_FIFO 10 (chrt; needs root or CAP_SYS_NICE)",
    )  # fmt: skip
    p.add_argument(
        "--no-echo", dest="echo", action="store_false",
        help="the receiver does not send the caller's voice back",
    )  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None, help="parent of the temporary directory")
    args = p.parse_args(argv)
    args.counts = args.counts or ([50, 100] if args.quick else [50, 100, 200, 300, 400])
    if args.max_calls is not None:
        args.counts = [n for n in args.counts if n <= args.max_calls] or [args.max_calls]
    args.window = args.window or (5.0 if args.quick else 10.0)
    args.bridged = args.bridged if args.bridged is not None else ([4] if args.quick else [4, 8, 16])
    args.bridged_window = args.bridged_window or (5.0 if args.quick else 8.0)
    args.welcome_calls = args.welcome_calls or (5 if args.quick else 20)
    if not all(1 <= n <= 2000 for n in args.counts) or not 1 <= args.rate <= 200:
        p.error("call counts in 1..2000, --rate in 1..200")
    if not 1 <= args.window <= 120 or not all(1 <= m <= 64 for m in args.bridged):
        p.error("--window in 1..120 s, bridged counts in 1..64")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    # the agents' ICE on loopback only
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]
    scratch = scratch_dir("cityhub-hotline-", args.data_dir, shared=True)

    def stop_children() -> None:
        for child in reversed(list(CHILDREN)):
            child.stop(5)

    return run_cleanly(lambda: asyncio.run(run(args, scratch)), stop_children, scratch)


if __name__ == "__main__":
    sys.exit(main())
