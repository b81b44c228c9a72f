"""What the benchmarks share: the log lines (with the load, or plain on stderr), the nearest-rank
percentile, the machine line and the CPU model, a DSN for another database of the same server, one
admin statement, a few ``/proc`` readings (a process's CPU, all cores' jiffies, the load average), a
free loopback port, the scratch directory, a run that stops cleanly on Ctrl-C or SIGTERM, and
running a benchmark against an embedded PostgreSQL (or ``CITYHUB_DATABASE_URL``) that is stopped
however the run ends.

Only the standard library is imported at module level (asyncpg and ``storage.db`` where they are
used), so the benchmarks' client processes that import their module stay light."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import math
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from storage.db import EmbeddedPostgres

HOST = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:4.1f}] {msg}", flush=True)


def log_stderr(msg: str) -> None:
    """The progress line without the load, on stderr (stdout holds the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for an empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
    return ordered[k]


def dsn_for(base: str, dbname: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


async def admin_fetchval(base: str, sql: str, *args: Any) -> Any:
    """One statement on its own connection to ``base`` (CREATE/DROP DATABASE, a lookup)."""
    import asyncpg

    conn = await asyncpg.connect(base)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def cpu_model(default: str) -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()`` or ``default``)."""
    cpu = platform.processor() or default
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def machine() -> str:
    return f"{os.cpu_count()} CPUs ({cpu_model('?')}), Python {platform.python_version()}"


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (utime + stime, all threads) of one process, from /proc (None when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages from /proc/loadavg ("n/a" elsewhere)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 free at the time of asking (TCP, or UDP with ``socket.SOCK_DGRAM``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def scratch_dir(prefix: str, parent: Path | None = None, *, shared: bool = False) -> Path:
    """A new temporary directory (under ``parent``, made if missing) that is removed at exit, with
    ``XDG_RUNTIME_DIR`` pointed inside it: pgserver keeps its lock file and sockets there. The exit
    handler is registered before pgserver registers its own (which touches that lock file), so it
    runs after it: nothing is left behind. ``shared``: readable by all, for pgserver running
    PostgreSQL as an unprivileged user when we are root."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    atexit.register(shutil.rmtree, scratch, True)
    if shared:
        scratch.chmod(0o755)
    (scratch / "run").mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(scratch / "run")
    return scratch


def run_cleanly(
    body: Callable[[], int],
    cleanup: Callable[[], None],
    scratch: Path,
    interrupted: str = "interrupted; cleaning up",
) -> int:
    """``body()``'s exit code; SIGTERM ends it like Ctrl-C (130, ``interrupted`` on stderr). Then,
    with both signals ignored, ``cleanup()`` and ``scratch`` removed, however the run ended."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rc = 1
    try:
        rc = body()
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr, flush=True)
        rc = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return rc


def run_with_postgres(
    prefix: str, run: Callable[[str], Coroutine[Any, Any, int]], pgdir: Path | None = None
) -> int:
    """``run(base_dsn)`` against ``CITYHUB_DATABASE_URL`` or an embedded server under ``pgdir``
    (default: a scratch directory removed at the end); SIGTERM and Ctrl-C stop it cleanly (130)."""
    from storage.db import EmbeddedPostgres

    scratch = scratch_dir(prefix)
    embedded: list[EmbeddedPostgres] = []

    def body() -> int:
        base = os.environ.get("CITYHUB_DATABASE_URL", "")
        if not base:
            logging.getLogger("pgserver").setLevel(logging.WARNING)
            where = pgdir or scratch / "pg"
            embedded.append(EmbeddedPostgres(where))
            base = embedded[0].start()
            log(f"embedded PostgreSQL under {where}")
        return asyncio.run(run(base))

    def cleanup() -> None:
        for pg in embedded:
            pg.stop()

    return run_cleanly(body, cleanup, scratch, "interrupted")
