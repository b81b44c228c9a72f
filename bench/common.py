"""What the database benchmarks share: the log line with the load, the nearest-rank percentile, the
machine line, a DSN for another database of the same server, one admin statement, and running a
benchmark against an embedded PostgreSQL (or ``CITYHUB_DATABASE_URL``) that is stopped however the
run ends."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage.db import EmbeddedPostgres


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:4.1f}] {msg}", flush=True)


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
    return ordered[k]


def dsn_for(base: str, dbname: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


async def admin_fetchval(base: str, sql: str, *args: Any) -> Any:
    """One statement on its own connection to ``base`` (CREATE/DROP DATABASE, a lookup)."""
    conn = await asyncpg.connect(base)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def machine() -> str:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def run_with_postgres(
    prefix: str, run: Callable[[str], Coroutine[Any, Any, int]], pgdir: Path | None = None
) -> int:
    """``run(base_dsn)`` against ``CITYHUB_DATABASE_URL`` or an embedded server under ``pgdir``
    (default: a scratch directory removed at the end); SIGTERM and Ctrl-C stop it cleanly (130)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, scratch, True)
    (scratch / "run").mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(scratch / "run")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    embedded: EmbeddedPostgres | None = None
    rc = 1
    try:
        base = os.environ.get("CITYHUB_DATABASE_URL", "")
        if not base:
            logging.getLogger("pgserver").setLevel(logging.WARNING)
            where = pgdir or scratch / "pg"
            embedded = EmbeddedPostgres(where)
            base = embedded.start()
            log(f"embedded PostgreSQL under {where}")
        rc = asyncio.run(run(base))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        rc = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return rc
