"""The database edge: the embedded PostgreSQL launcher, the asyncpg pool, numbered migrations.

Errors raised here are ``StorageError`` subclasses; asyncpg's SQLSTATE classes are mapped at this edge
(``map_pg_errors``) so callers never see driver exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from storage.errors import (
    InvalidData,
    RecordConflict,
    StorageError,
    StorageUnavailable,
)

log = logging.getLogger("cityhub.storage")

#: One advisory-lock key for migrations and demo loading ("cityhub" in ASCII, as an int).
MIGRATION_LOCK_KEY = 0x63697479687562


#: Exceptions that mean "the database is not reachable now" (answered 503, retried by clients).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin shutdown, cannot connect now
    asyncpg.InterfaceError,  # includes "connection is closed"
    asyncpg.TooManyConnectionsError,
)


#: The same without plain OSError, for the outermost HTTP edge (a disk error is not an outage).
DB_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    *(e for e in OUTAGE_ERRORS if e is not OSError),
    ConnectionError,
)


@contextlib.contextmanager
def map_pg_errors() -> Iterator[None]:
    """Translate driver errors to storage errors (one class per SQLSTATE family)."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise RecordConflict("记录已存在", details={"constraint": exc.constraint_name}) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise InvalidData("引用的记录不存在", details={"constraint": exc.constraint_name}) from exc
    except asyncpg.CheckViolationError as exc:
        raise InvalidData("数据不符合约束", details={"constraint": exc.constraint_name}) from exc
    except asyncpg.SerializationError as exc:
        raise RecordConflict("并发冲突，请重试") from exc
    except OUTAGE_ERRORS as exc:
        raise StorageUnavailable(
            "数据库暂时不可用", details={"reason": type(exc).__name__}
        ) from exc


# ---------------------------------------------------------------------------------------------
# Embedded PostgreSQL


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server run from the ``pgserver`` wheel, data kept under ``data_dir``."""

    data_dir: Path
    _server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; return its DSN. Blocking: call in a thread."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not os.environ.get("XDG_RUNTIME_DIR"):
            # pgserver keeps a lock file in the user's runtime dir (read when it is imported);
            # without one it warns and falls back to /tmp.
            run = self.data_dir.parent / "run"
            run.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(run.resolve())
        from pgserver import get_server  # type: ignore[attr-defined]

        self._server = get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()
            self._server = None


_embedded_lock = threading.Lock()


async def start_embedded(data_dir: Path) -> tuple[EmbeddedPostgres, str]:
    pg = EmbeddedPostgres(data_dir)

    def _start() -> str:
        with _embedded_lock:
            return pg.start()

    dsn = await asyncio.to_thread(_start)
    return pg, dsn


# ---------------------------------------------------------------------------------------------
# Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    import orjson

    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: b"\x01" + orjson.dumps(v),
        decoder=lambda b: orjson.loads(b[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Released connections are not reset: the hub holds no session state on pooled connections
    (advisory locks are released by their holders, LISTEN uses dedicated connections), and asyncpg's
    default reset (``RESET ALL`` and friends) costs a round trip per acquire."""


async def create_pool(dsn: str, *, min_size: int = 0, max_size: int = 16) -> asyncpg.Pool:
    with map_pg_errors():
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            command_timeout=30,
            server_settings={"application_name": "cityhub", "timezone": "UTC"},
            reset=_no_reset,
        )
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def connect(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """Acquire a connection; an outage while acquiring or using it becomes ``Unavailable``."""
    with map_pg_errors():
        async with pool.acquire() as conn:
            yield conn


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    with map_pg_errors():
        async with pool.acquire() as conn, conn.transaction():
            yield conn


# ---------------------------------------------------------------------------------------------
# Migrations

#: A migration may rewrite a large table (0016 derives the evaluation's summary from the whole case
#: log: minutes over millions of events); the pool's 30 s command timeout is for requests.
MIGRATION_TIMEOUT_S = 6 * 3600.0

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    out: list[Migration] = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in out]
    if len(set(versions)) != len(versions):
        raise StorageError("duplicate migration numbers", details=versions)
    return out


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations in order, one transaction each, under an advisory lock so that
    several hub processes starting together never race. Returns the names applied."""
    applied: list[str] = []
    with map_pg_errors():
        async with pool.acquire() as conn:
            # Another process may be migrating: wait for it as long as a migration may take.
            await conn.execute(
                "SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY, timeout=MIGRATION_TIMEOUT_S
            )
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {
                    r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
                }
                for mig in load_migrations():
                    if mig.version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(mig.sql, timeout=MIGRATION_TIMEOUT_S)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            mig.version,
                            mig.name,
                        )
                    log.info("applied migration %s", mig.name)
                    applied.append(mig.name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied


@contextlib.asynccontextmanager
async def advisory_lock(pool: asyncpg.Pool, key: int) -> AsyncIterator[asyncpg.Connection]:
    """Hold a session advisory lock for the duration of the block (e.g. loading the demo city)."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", key)
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
