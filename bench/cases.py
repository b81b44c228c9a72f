#!/usr/bin/env python3
"""Benchmark of the case service: transition throughput and case-list latency.

Run ``python bench/cases.py`` (about 3 minutes on 2 cores) or ``python bench/cases.py --quick``
(about 30 seconds). ``docs/benchmarks.md`` says what each figure means and holds the last results.

What it does, all in one process against one PostgreSQL server:

1. Starts an embedded PostgreSQL (``pgserver``) in a temporary directory, or uses the server of
   ``CITYHUB_DATABASE_URL``; either way it creates a scratch database, builds the hub state with
   ``hub.web.app.build_state`` and loads the demo city (``hub.demo.load_demo``: users, grids,
   departments, categories and 1,000 cases whose attributes and texts serve as templates).
2. Transitions: fresh ``registered`` cases are bulk-inserted (row + two events, one INSERT ... SELECT
   each), then the hub state is rebuilt with the live picture on (relay, fan-out, websockets; not
   with ``--no-live``). 1, 8 and 64 concurrent writers, each taking its own cases, call
   ``CaseService.transition`` for DISPATCH (new department, working-calendar deadline, indexed
   columns change) and then ESCALATE (with a note) on every case, for ``--seconds`` per level.
   Reference, measured right after at the same concurrency and pool size: a raw asyncpg loop
   inserting one row per statement (autocommit) into a scratch table shaped like ``case_events``
   (``LIKE case_events INCLUDING ALL``: same columns, defaults and indexes; no foreign keys or
   triggers).
3. Case list: the write-phase rows are truncated, ``--cases``/10 cases are generated with one
   INSERT ... SELECT FROM generate_series (every tenth row of the final time line; the schema's
   indexes stay in place, ``--drop-indexes`` drops and recreates them instead), VACUUM ANALYZE,
   and every filter combination is timed through ``CaseService.list_cases`` (the reference); then the
   other nine tenths are generated and the same combinations are timed again on the full table.
   When the slowest combination misses the goal its plan is printed (EXPLAIN ANALYZE, BUFFERS).

Nothing is written outside the temporary directory (``--data-dir`` chooses its parent); the
embedded server is stopped and the directory removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import inspect
import os
import platform
import random
import sys
import time
import unicodedata
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.common import (  # noqa: E402
    admin_fetchval,
    cpu_model,
    dsn_for,
    log,
    pct,
    run_cleanly,
    scratch_dir,
)
from hub.cases.service import CaseService  # noqa: E402
from hub.core import workflow as wf  # noqa: E402
from hub.core.errors import CityhubError, Conflict  # noqa: E402
from hub.settings import Secret, Settings  # noqa: E402
from hub.state import HubState  # noqa: E402
from hub.web.app import build_state, close_state  # noqa: E402
from hub.web.auth import make_actor  # noqa: E402
from storage import cases as q  # noqa: E402
from storage.db import EmbeddedPostgres, create_pool  # noqa: E402
from storage.search import document_terms, query_terms  # noqa: E402
from storage.users import list_users  # noqa: E402

LEVELS = (1, 8, 64)
WARMUP_QUERIES = 8
GOAL_TPS = 2000.0
GOAL_RATIO = 0.5
GOAL_P95_MS = 50.0
#: Upper bound on the transition rate we prepare cases for (a level stops early if it runs out).
MAX_RATE = 8000.0
#: A common and a rare word of the generated texts (query_terms turns them into bigram queries).
COMMON_WORD = "垃圾"
RARE_WORD = "冰箱"
#: Rare report texts, appended to about RARE_SHARE of the generated cases.
RARE_PHRASES = (
    "，路边有人丢弃旧冰箱和沙发",
    "，窨井内有小猫被困，需要救助",
    "，共享充电宝机柜被撬坏",
    "，人行道上散落大量玻璃碎片",
)
RARE_SHARE = 0.0001


# ---------------------------------------------------------------------------------------------
# CPU accounting (client: this process; server: the embedded postgres processes)


class CpuMeter:
    """CPU time of this process and of the embedded server's processes over an interval. A server
    process that exits during the interval (an autovacuum worker, a closed connection) takes its
    share with it, so the server figure is a lower bound."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    def _server(self) -> dict[int, float] | None:
        if self.server_pid is None:
            return None
        try:
            import psutil  # type: ignore[import-untyped]

            root = psutil.Process(self.server_pid)
            out = {}
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    out[p.pid] = t.user + t.system
            return out
        except Exception:
            return None

    def start(self) -> tuple[float, float, dict[int, float] | None]:
        return time.perf_counter(), time.process_time(), self._server()

    def stop(
        self, mark: tuple[float, float, dict[int, float] | None]
    ) -> tuple[float, float | None]:
        """(client CPU, server CPU) as a share of one core over the interval."""
        wall = time.perf_counter() - mark[0]
        client = (time.process_time() - mark[1]) / wall
        now, before = self._server(), mark[2]
        if now is None or before is None:
            return client, None
        used = sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())
        return client, max(0.0, used) / wall


# ---------------------------------------------------------------------------------------------
# Setup


@dataclasses.dataclass
class Ctx:
    args: argparse.Namespace
    state: HubState
    dsn: str
    cpu: CpuMeter
    dispatcher: wf.Actor
    seat: wf.Actor
    departments: list[wf.Actor]
    results: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def svc(self) -> CaseService:
        return self.state.cases

    @property
    def pool(self) -> asyncpg.Pool:
        return self.state.pool


async def load_demo_city(state: HubState, n_cases: int) -> None:
    """``hub.demo.load_demo`` (one transaction: a failure leaves nothing behind); if the
    generator trips over a workflow guard for one seed, try a few others before giving up."""
    from hub.demo import load_demo

    last: Exception | None = None
    for seed in (20261123, 1, 2, 3, 4, 5):
        try:
            await load_demo(
                state.pool,
                attachments=state.attachments,
                calendar=state.cases.calendar,
                now=datetime.now(UTC),
                n_cases=n_cases,
                seed=seed,
            )
        except CityhubError as exc:
            last = exc
            root: BaseException = exc
            while root.__context__ is not None and len(repr(root)) < 2000:
                root = root.__context__
            log(f"demo loader failed with seed {seed} ({type(root).__name__}: {root}); retrying")
            continue
        await state.reload_catalog()
        return
    raise RuntimeError("the demo city could not be loaded") from last


async def actors(state: HubState) -> tuple[wf.Actor, wf.Actor, list[wf.Actor]]:
    async with state.pool.acquire() as conn:
        users = await list_users(conn)
    by_role: dict[str, list[wf.Actor]] = {}
    for u in users:
        by_role.setdefault(u.role, []).append(make_actor(u, state.catalog))
    return by_role["dispatcher"][0], by_role["seat"][0], by_role["department"]


async def make_templates(ctx: Ctx) -> int:
    """Copy the demo cases' texts and attributes into ``bench_tpl``: the generated cases pick a
    random template each, so categories, sources, grids and texts follow the demo's mix."""
    async with ctx.pool.acquire() as conn:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_tpl;"
            " CREATE TABLE bench_tpl AS SELECT (row_number() OVER (ORDER BY c.id))::int AS tid,"
            " c.source, c.category_id, c.lon, c.lat, c.address, c.grid_id, c.description,"
            " c.reporter_id, c.contact_name, c.contact_phone, c.is_quick, c.urgency,"
            " coalesce(k.default_department_id, 0) AS dep, ''::tsvector AS search"
            " FROM cases c JOIN categories k ON k.id = c.category_id;"
            " ALTER TABLE bench_tpl ADD PRIMARY KEY (tid)"
        )
        rows = await conn.fetch("SELECT tid, description, address FROM bench_tpl")
        await conn.execute(
            "UPDATE bench_tpl t SET search = u.s::tsvector"
            " FROM unnest($1::int[], $2::text[]) AS u(tid, s) WHERE t.tid = u.tid",
            [r["tid"] for r in rows],
            [document_terms(r["description"], r["address"]) for r in rows],
        )
        await conn.execute(
            "DROP TABLE IF EXISTS bench_rare;"
            " CREATE TABLE bench_rare (rid int PRIMARY KEY, phrase text NOT NULL, search tsvector)"
        )
        await conn.execute(
            "INSERT INTO bench_rare SELECT * FROM unnest($1::int[], $2::text[], $3::tsvector[])",
            list(range(1, len(RARE_PHRASES) + 1)),
            list(RARE_PHRASES),
            [document_terms(p) for p in RARE_PHRASES],
        )
        await conn.execute("ANALYZE bench_tpl; ANALYZE bench_rare")
    return len(rows)


# ---------------------------------------------------------------------------------------------
# 2. Transitions


async def prepare_write_cases(ctx: Ctx, n: int) -> list[int]:
    """``n`` fresh cases in state ``registered`` (version 2, with their report and register
    events), reported in the last hours; returns their ids."""
    now = datetime.now(UTC)
    seat_id = ctx.seat.user_id
    async with ctx.pool.acquire() as conn, conn.transaction():
        ids = await conn.fetch(
            "INSERT INTO cases (case_no, source, category_id, state, version, lon, lat, address,"
            " grid_id, description, reporter_id, contact_name, contact_phone, is_quick, urgency,"
            " reported_at, registered_at, updated_at, search)"
            " SELECT 'W' || $4 || '-' || g, t.source, t.category_id, 'registered', 2, t.lon, t.lat,"
            " t.address, t.grid_id, t.description, t.reporter_id, t.contact_name, t.contact_phone,"
            " false, t.urgency, $1::timestamptz - interval '3 hours' * x.r,"
            " $1::timestamptz - interval '2 hours' * x.r, $1::timestamptz,"
            " t.search"
            " FROM (SELECT g, random() AS r, 1 + floor(random() * $2)::int AS tid"
            "       FROM generate_series(1, $3) g) x JOIN bench_tpl t USING (tid)"
            " ORDER BY g RETURNING id",
            now,
            ctx.results["templates"],
            n,
            uuid.uuid4().hex[:8],
        )
        id_list = [r["id"] for r in ids]
        await conn.execute(
            "INSERT INTO case_events (case_id, version, action, actor_id, at, from_state, to_state)"
            " SELECT c.id, 1, 'report', c.reporter_id, c.reported_at, NULL, 'reported'"
            " FROM cases c WHERE c.id = ANY($1::bigint[])"
            " UNION ALL"
            " SELECT c.id, 2, 'register', $2, c.registered_at, 'reported', 'registered'"
            " FROM cases c WHERE c.id = ANY($1::bigint[])",
            id_list,
            seat_id,
        )
    async with ctx.pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE cases")
        await conn.execute("VACUUM ANALYZE case_events")
    return id_list


@dataclasses.dataclass
class RunStats:
    ok: int = 0
    conflicts: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    stopped_by: str = "time"
    client_cpu: float = 0.0
    server_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def cpu_us(self) -> str:
        """CPU time per operation, client (this process) + server (postgres), in microseconds:
        steadier than the rate when other work shares the machine."""
        if not self.ok:
            return "?"
        client = self.client_cpu * self.seconds / self.ok * 1e6
        server = (
            "?"
            if self.server_cpu is None
            else f"{self.server_cpu * self.seconds / self.ok * 1e6:.0f}"
        )
        return f"{client:.0f}+{server}"


async def timed_workers(
    ctx: Ctx,
    writers: int,
    seconds: float,
    step: Callable[[int], Awaitable[bool]],
) -> RunStats:
    """Run ``writers`` tasks calling ``step(writer)`` until time is up or a step returns False
    (out of work). ``step`` records its own outcome in the returned stats via the closure."""
    stats = RunStats()
    deadline = time.perf_counter() + seconds
    exhausted = False

    async def worker(w: int) -> None:
        nonlocal exhausted
        while time.perf_counter() < deadline and not exhausted:
            t0 = time.perf_counter()
            try:
                more = await step(w)
            except Conflict as exc:
                if exc.code == "version_conflict":
                    stats.conflicts += 1
                else:
                    stats.errors += 1
                    stats.first_error = stats.first_error or f"{exc.code}: {exc.message}"
                continue
            except (CityhubError, asyncpg.PostgresError, OSError, TimeoutError) as exc:
                stats.errors += 1
                stats.first_error = stats.first_error or f"{type(exc).__name__}: {exc}"
                continue
            if not more:
                exhausted = True
                return
            stats.ok += 1
            stats.latencies.append(time.perf_counter() - t0)

    mark = ctx.cpu.start()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(writers)))
    stats.seconds = time.perf_counter() - t0
    stats.client_cpu, stats.server_cpu = ctx.cpu.stop(mark)
    if exhausted:
        stats.stopped_by = "count"
    return stats


def service_step(ctx: Ctx, case_ids: Iterator[int]) -> Callable[[int], Awaitable[bool]]:
    """Each call is one transition: a writer takes a fresh case and DISPATCHes it, then ESCALATEs
    it on its next call (the writer keeps the version it got back, like a UI would)."""
    deps = [d.id for d in ctx.state.catalog.departments.values() if d.active]
    pending: dict[int, tuple[int, int]] = {}  # writer -> (case id, version) awaiting ESCALATE
    rng = random.Random(7)
    actor = ctx.dispatcher

    async def step(w: int) -> bool:
        held = pending.pop(w, None)
        if held is not None:
            case_id, version = held
            await ctx.svc.transition(
                actor, case_id, version, wf.Command(wf.Action.ESCALATE, note="督办：请加快处置")
            )
            return True
        fresh = next(case_ids, None)
        if fresh is None:
            return False
        case_id = fresh
        event = await ctx.svc.transition(
            actor,
            case_id,
            2,
            wf.Command(wf.Action.DISPATCH, department_id=rng.choice(deps)),
        )
        pending[w] = (case_id, event.version)
        return True

    return step


def raw_step(ctx: Ctx, pool: asyncpg.Pool, level: int) -> Callable[[int], Awaitable[bool]]:
    counters = [0] * max(LEVELS)
    sql = (
        "INSERT INTO bench_raw_events (case_id, version, action, actor_id, at, from_state,"
        " to_state, note, data, attachment_ids) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " RETURNING seq"
    )
    actor_id = ctx.dispatcher.user_id

    async def step(w: int) -> bool:
        counters[w] += 1
        case_id = level * 1_000_000_000 + w * 10_000_000 + counters[w]
        async with pool.acquire() as conn:
            await conn.fetchval(
                sql,
                case_id,
                1,
                "escalate",
                actor_id,
                datetime.now(UTC),
                "dispatched",
                "dispatched",
                "督办：请加快处置",
                {},
                [],
            )
        return True

    return step


WARMUP_CASES = 300


def cases_per_level(args: argparse.Namespace) -> int:
    return max(200, int(args.seconds * MAX_RATE / 2))


def write_cases_needed(args: argparse.Namespace) -> int:
    return cases_per_level(args) * len(LEVELS) + WARMUP_CASES


async def bench_transitions(ctx: Ctx, ids: list[int]) -> None:
    args = ctx.args
    per_level = cases_per_level(args)
    warm = WARMUP_CASES
    async with ctx.pool.acquire() as conn:
        # The shape of case_events as migrated (columns, defaults, indexes, checks); LIKE copies
        # neither foreign keys nor triggers, and the table gets its own sequence.
        await conn.execute(
            "DROP TABLE IF EXISTS bench_raw_events;"
            " CREATE TABLE bench_raw_events (LIKE case_events INCLUDING ALL);"
            " CREATE SEQUENCE bench_raw_events_seq OWNED BY bench_raw_events.seq;"
            " ALTER TABLE bench_raw_events"
            "   ALTER COLUMN seq SET DEFAULT nextval('bench_raw_events_seq')"
        )
    # The reference gets its own pool of the same size and connection setup as the hub's.
    raw_pool = await create_pool(ctx.dsn, max_size=ctx.state.settings.db_pool_max)
    try:
        # Warm-up (not counted): prepared statements on every pooled connection, caches.
        it = iter(ids)
        warm_ids = iter([next(it) for _ in range(warm)])
        warm_stats = await timed_workers(ctx, 16, 1.0, service_step(ctx, warm_ids))
        await timed_workers(ctx, 16, 1.0, raw_step(ctx, raw_pool, 0))
        rows = []
        for level in LEVELS:
            level_ids = iter([next(it) for _ in range(per_level)])
            svc = await timed_workers(ctx, level, args.seconds, service_step(ctx, level_ids))
            raw = await timed_workers(ctx, level, args.seconds, raw_step(ctx, raw_pool, level))
            rows.append((level, svc, raw))
            log(
                f"writers={level:>2}: service {svc.rate:,.0f} transitions/s"
                f" (p50 {pct(svc.latencies, 50) * 1000:.1f} ms, p99"
                f" {pct(svc.latencies, 99) * 1000:.1f} ms, conflicts {svc.conflicts},"
                f" errors {svc.errors}{', ran out of cases' if svc.stopped_by == 'count' else ''})"
                f" | raw {raw.rate:,.0f} inserts/s"
                f" | ratio {svc.rate / raw.rate if raw.rate else float('nan'):.2f}"
                f" | CPU us/op {svc.cpu_us()} vs {raw.cpu_us()}"
            )
            if svc.first_error:
                log(f"  first service error: {svc.first_error}")
            if raw.first_error:
                log(f"  first raw error: {raw.first_error}")
        ctx.results["writes"] = rows
    finally:
        await raw_pool.close()
    async with ctx.pool.acquire() as conn:
        n_events = await conn.fetchval(
            "SELECT count(*) FROM case_events WHERE case_id = ANY($1::bigint[])"
            " AND action IN ('dispatch', 'escalate')",
            ids,
        )
    ok = sum(s.ok for _lvl, s, _r in ctx.results["writes"]) + warm_stats.ok
    ctx.results["events_check"] = (ok, n_events)


# ---------------------------------------------------------------------------------------------
# 4. Case list: data


GEN_SQL = """
INSERT INTO cases (case_no, source, category_id, state, version, lon, lat, address, grid_id,
    description, reporter_id, contact_name, contact_phone, department_id, is_quick, urgency,
    deadline, rework_count, escalation_count, reported_at, registered_at, dispatched_at,
    accepted_at, handled_at, verified_at, closed_at, updated_at, search)
SELECT case_no, source, category_id, state, version, lon, lat, address, grid_id,
    description, reporter_id, contact_name, contact_phone, department_id, is_quick, urgency,
    deadline, rework_count, escalation_count, reported_at, registered_at, dispatched_at,
    accepted_at, handled_at, verified_at, closed_at,
    least($1::timestamptz, greatest(reported_at, registered_at, dispatched_at, handled_at, closed_at)),
    search
FROM (
  SELECT s.*,
    CASE WHEN has_dep THEN (CASE WHEN rd < 0.9 AND dep > 0 THEN dep
                                 ELSE ($5::int[])[1 + floor(rx * array_length($5::int[], 1))::int]
                            END) END AS department_id,
    CASE WHEN has_dep THEN reported_at + interval '1 hour' * (0.3 + 3 * rx) END AS dispatched_at,
    CASE WHEN has_dep THEN reported_at + interval '1 hour' * (4.3 + 3 * rx + 160 * rd) END
      AS deadline,
    CASE WHEN state IN ('handling', 'deferred', 'feedback', 'verifying', 'verified', 'closed')
              AND NOT is_quick
         THEN reported_at + interval '1 hour' * (1 + 4 * rx) END AS accepted_at,
    CASE WHEN state IN ('feedback', 'verifying', 'verified', 'closed')
         THEN reported_at + interval '1 hour' * (2 + 40 * rd) END AS handled_at,
    CASE WHEN state IN ('verified', 'closed')
         THEN reported_at + interval '1 hour' * (6 + 40 * rd) END AS verified_at,
    CASE WHEN state IN ('closed', 'rejected', 'voided')
         THEN reported_at + interval '1 hour' * (8 + 48 * rd) END AS closed_at,
    CASE WHEN state NOT IN ('reported', 'quick_handling', 'rejected') AND NOT is_quick
         THEN reported_at + interval '1 minute' * (5 + 40 * rx) END AS registered_at,
    CASE state WHEN 'reported' THEN 1 WHEN 'quick_handling' THEN 1 WHEN 'registered' THEN 2
               WHEN 'rejected' THEN 2 WHEN 'dispatched' THEN 3 WHEN 'returned' THEN 4
               WHEN 'handling' THEN 4 WHEN 'deferred' THEN 5 WHEN 'feedback' THEN 5
               WHEN 'verifying' THEN 6 WHEN 'verified' THEN 7 ELSE 8 END
      + (rr < 0.05)::int * 2 AS version,
    (rr < 0.03)::int AS rework_count,
    (rx < 0.04)::int AS escalation_count
  FROM (
    SELECT y.g, y.reported_at, y.state, y.rd, y.rx, y.rr,
      t.source, t.category_id, t.lon, t.lat, t.address, t.grid_id, t.reporter_id,
      t.contact_name, t.contact_phone, t.is_quick, t.urgency, t.dep,
      to_char(y.reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || '-'
        || lpad((y.g % $6)::text, $7, '0') AS case_no,
      t.description || coalesce(b.phrase, '') AS description,
      y.state IN ('dispatched', 'handling', 'deferred', 'feedback', 'verifying', 'verified',
                  'closed') AND NOT t.is_quick AS has_dep,
      t.search || coalesce(b.search, ''::tsvector) || array_to_tsvector(ARRAY[
        to_char(y.reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD'),
        lpad((y.g % $6)::text, $7, '0')]) AS search
    FROM (
      SELECT g, reported_at, tid, rd, rx, rr, rare,
        CASE
          WHEN age < 2 THEN (CASE
            WHEN rs < 0.08 THEN 'reported' WHEN rs < 0.12 THEN 'quick_handling'
            WHEN rs < 0.22 THEN 'registered' WHEN rs < 0.38 THEN 'dispatched'
            WHEN rs < 0.60 THEN 'handling' WHEN rs < 0.63 THEN 'deferred'
            WHEN rs < 0.72 THEN 'feedback' WHEN rs < 0.77 THEN 'verifying'
            WHEN rs < 0.82 THEN 'verified' WHEN rs < 0.84 THEN 'returned'
            WHEN rs < 0.89 THEN 'rejected' WHEN rs < 0.90 THEN 'voided' ELSE 'closed' END)
          WHEN age < 30 THEN (CASE
            WHEN rs < 0.004 THEN 'reported' WHEN rs < 0.01 THEN 'registered'
            WHEN rs < 0.03 THEN 'dispatched' WHEN rs < 0.10 THEN 'handling'
            WHEN rs < 0.12 THEN 'deferred' WHEN rs < 0.15 THEN 'feedback'
            WHEN rs < 0.17 THEN 'verifying' WHEN rs < 0.19 THEN 'verified'
            WHEN rs < 0.195 THEN 'returned' WHEN rs < 0.25 THEN 'rejected'
            WHEN rs < 0.26 THEN 'voided' ELSE 'closed' END)
          ELSE (CASE
            WHEN rs < 0.003 THEN 'dispatched' WHEN rs < 0.012 THEN 'handling'
            WHEN rs < 0.02 THEN 'deferred' WHEN rs < 0.025 THEN 'feedback'
            WHEN rs < 0.03 THEN 'verified' WHEN rs < 0.09 THEN 'rejected'
            WHEN rs < 0.10 THEN 'voided' ELSE 'closed' END)
        END AS state
      FROM (
        SELECT g, reported_at, extract(epoch FROM $1::timestamptz - reported_at) / 86400 AS age,
          1 + floor(random() * $3)::int AS tid,
          random() AS rs, random() AS rd, random() AS rx, random() AS rr,
          CASE WHEN random() < $8 THEN 1 + floor(random() * $9)::int END AS rare
        FROM (
          SELECT g, $2::timestamptz + ($1::timestamptz - $2::timestamptz) * ((g - 1 + random()) / $4::float8)
            AS reported_at
          FROM generate_series($10::bigint, $11::bigint) g
          WHERE (g % 10 = 0) = $12
        ) r
      ) x
    ) y
    JOIN bench_tpl t ON t.tid = y.tid
    LEFT JOIN bench_rare b ON b.rid = y.rare
  ) s
) z
"""


async def generate_cases(ctx: Ctx, n_total: int, reference_part: bool) -> float:
    """Insert the reference tenth (g % 10 == 0) or the other nine tenths of ``n_total`` cases spread
    over the last 12 months, oldest first (ids grow with time as in production)."""
    now = ctx.results["now"]
    start = now - timedelta(days=365)
    deps = [d.id for d in ctx.state.catalog.departments.values() if d.active]
    modulus = 10 ** max(5, len(str(2 * n_total // 365 + 1)))
    width = len(str(modulus)) - 1
    sql = GEN_SQL
    t0 = time.perf_counter()
    async with ctx.pool.acquire() as conn:
        await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
        try:
            await conn.execute(
                sql,
                now,
                start,
                ctx.results["templates"],
                float(n_total),
                deps,
                modulus,
                width,
                RARE_SHARE,
                len(RARE_PHRASES),
                1,
                n_total,
                reference_part,
                timeout=3600,
            )
        finally:
            await conn.execute("RESET work_mem; RESET maintenance_work_mem")
    return time.perf_counter() - t0


NONUNIQUE_INDEXES = (
    "cases_recent_idx",
    "cases_state_idx",
    "cases_department_idx",
    "cases_grid_idx",
    "cases_category_idx",
    "cases_source_idx",
    "cases_open_deadline_idx",
    "cases_search_idx",
)


async def drop_indexes(conn: asyncpg.Connection) -> dict[str, str]:
    defs = {
        r["indexname"]: r["indexdef"]
        for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'cases'"
            " AND indexname = ANY($1::text[])",
            list(NONUNIQUE_INDEXES),
        )
    }
    for name in defs:
        await conn.execute(f"DROP INDEX {name}")
    return defs


async def create_indexes(conn: asyncpg.Connection, defs: dict[str, str]) -> None:
    await conn.execute(
        "SET maintenance_work_mem = '512MB'; SET max_parallel_maintenance_workers = 2"
    )
    try:
        for name in NONUNIQUE_INDEXES:
            if name in defs:
                await conn.execute(defs[name], timeout=3600)
    finally:
        await conn.execute("RESET maintenance_work_mem; RESET max_parallel_maintenance_workers")


async def load_list_data(ctx: Ctx, reference_part: bool) -> dict[str, float]:
    n = ctx.args.cases
    timings: dict[str, float] = {}
    async with ctx.pool.acquire() as conn:
        defs: dict[str, str] = {}
        if not reference_part and ctx.args.drop_indexes:
            t0 = time.perf_counter()
            defs = await drop_indexes(conn)
            timings["drop indexes"] = time.perf_counter() - t0
    timings["insert"] = await generate_cases(ctx, n, reference_part)
    async with ctx.pool.acquire() as conn:
        if defs:
            t0 = time.perf_counter()
            await create_indexes(conn, defs)
            timings["create indexes"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) cases", timeout=3600)
        timings["vacuum analyze"] = time.perf_counter() - t0
    return timings


# ---------------------------------------------------------------------------------------------
# 4. Case list: queries


@dataclasses.dataclass
class Combo:
    name: str
    actor: str  # "seat" | "department"
    make: Callable[[random.Random], q.CaseFilter]
    pages: bool = False


@dataclasses.dataclass
class ComboResult:
    combo: Combo
    latencies: list[float]
    #: (seconds, filter, actor) of the slowest query, for EXPLAIN
    slowest: tuple[float, q.CaseFilter, wf.Actor] | None
    errors: int = 0
    rows: int = 0


def combos(ctx: Ctx) -> list[Combo]:
    cat = ctx.state.catalog
    streets = [g.id for g in cat.grids.values() if g.level == 1]
    deps = [d.id for d in cat.departments.values() if d.active]
    now = ctx.results["now"]
    states = (
        "reported",
        "registered",
        "dispatched",
        "returned",
        "handling",
        "deferred",
        "feedback",
        "verifying",
        "verified",
        "closed",
    )
    common = query_terms(COMMON_WORD)
    rare = query_terms(RARE_WORD)
    limit = 51  # what the API asks for: a page of 50 and one more to know there is a next page

    def window(r: random.Random) -> tuple[datetime, datetime]:
        days = r.choice((1, 7, 30))
        since = now - timedelta(days=r.uniform(days, 365))
        return since, since + timedelta(days=days)

    def source_time(r: random.Random) -> q.CaseFilter:
        since, until = window(r)
        return q.CaseFilter(source=r.choice(("supervisor", "video", "hotline", "sensor", "public")),
                            since=since, until=until, limit=limit)  # fmt: skip

    def grid(r: random.Random) -> q.CaseFilter:
        ids = tuple(sorted(cat.expand_grids([r.choice(streets)]))) or (-1,)
        return q.CaseFilter(grid_ids=ids, limit=limit)

    def page_filter(r: random.Random) -> q.CaseFilter:
        if r.random() < 0.5:
            return q.CaseFilter(limit=limit)
        return q.CaseFilter(states=(r.choice(("handling", "closed", "dispatched")),), limit=limit)

    out = []
    for actor in ("seat", "department"):
        out += [
            Combo("no filter", actor, lambda r: q.CaseFilter(limit=limit)),
            Combo("state", actor, lambda r: q.CaseFilter(states=(r.choice(states),), limit=limit)),
        ]
        if actor == "seat":
            out.append(
                Combo(
                    "state+department",
                    actor,
                    lambda r: q.CaseFilter(
                        states=("dispatched", "handling"), department_id=r.choice(deps), limit=limit
                    ),
                )
            )
        out += [
            Combo("grid (street)", actor, grid),
            Combo("overdue", actor, lambda r: q.CaseFilter(overdue=True, limit=limit)),
            Combo("source+time range", actor, source_time),
            Combo(
                f"text common '{COMMON_WORD}'",
                actor,
                lambda r: q.CaseFilter(text_query=common, limit=limit),
            ),
            Combo(
                f"text rare '{RARE_WORD}'",
                actor,
                lambda r: q.CaseFilter(text_query=rare, limit=limit),
            ),
            Combo("pages 2-5 (keyset)", actor, page_filter, pages=True),
        ]
    return out


async def run_combo(ctx: Ctx, combo: Combo, queries: int, max_seconds: float) -> ComboResult:
    rng = random.Random(zlib.crc32(f"{combo.actor}/{combo.name}".encode()))
    res = ComboResult(combo, [], None)

    async def timed(actor: wf.Actor, f: q.CaseFilter) -> list[q.CaseRow] | None:
        t0 = time.perf_counter()
        try:
            page = await ctx.svc.list_cases(actor, f)
        except (CityhubError, asyncpg.PostgresError, TimeoutError):
            res.errors += 1
            return None
        dt = time.perf_counter() - t0
        res.latencies.append(dt)
        res.rows += len(page)
        if res.slowest is None or dt > res.slowest[0]:
            res.slowest = (dt, f, actor)
        return page

    def pick_actor() -> wf.Actor:
        return ctx.seat if combo.actor == "seat" else rng.choice(ctx.departments)

    # Warm-up, untimed: the statement gets prepared (and PostgreSQL's plan cache settles on a
    # custom or generic plan after five executions) as in a hub that has been running a while.
    # The pool hands out the most recently used connection, so one connection sees them all.
    for _ in range(WARMUP_QUERIES):
        with contextlib.suppress(CityhubError, asyncpg.PostgresError, TimeoutError):
            await ctx.svc.list_cases(pick_actor(), combo.make(rng))
    deadline = time.perf_counter() + max_seconds
    while len(res.latencies) < queries and time.perf_counter() < deadline:
        actor, f = pick_actor(), combo.make(rng)
        if not combo.pages:
            await timed(actor, f)
            continue
        # Page 1 untimed, then follow the cursor (as the API builds it) to pages 2..5, timed.
        page: list[q.CaseRow] | None = await ctx.svc.list_cases(actor, f)
        for _ in range(4):
            if page is None or len(page) < f.limit:
                break
            last = page[f.limit - 2]
            f = dataclasses.replace(f, after=(last.reported_at, last.id))
            page = await timed(actor, f)
    return res


async def bench_list(ctx: Ctx, label: str) -> list[ComboResult]:
    args = ctx.args
    out = []
    for combo in combos(ctx):
        res = await run_combo(ctx, combo, args.queries, args.combo_seconds)
        out.append(res)
        if res.latencies:
            log(
                f"{label}: {combo.actor:<10} {pad(combo.name, 22)} n={len(res.latencies):>4}"
                f" p50 {pct(res.latencies, 50) * 1000:7.2f} ms"
                f"  p95 {pct(res.latencies, 95) * 1000:7.2f} ms"
                f"  max {max(res.latencies) * 1000:7.2f} ms"
                f"  rows/query {res.rows / len(res.latencies):.0f}"
            )
    # Which plans PostgreSQL's plan cache settled on, over every pooled connection (prepared
    # statements live per connection; the relay and fan-out share the pool).
    conns: list[Any] = []
    n_stmt = n_generic = 0
    try:
        for _ in range(ctx.pool.get_size()):
            conns.append(await asyncio.wait_for(ctx.pool.acquire(), 1.0))
    except TimeoutError:
        pass
    try:
        for conn in conns:
            rows = await conn.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE 'SELECT c.id, c.case_no%FROM cases c%ORDER BY%'"
            )
            n_stmt += len(rows)
            n_generic += sum(1 for r in rows if r["generic_plans"] > r["custom_plans"])
    finally:
        for conn in conns:
            await ctx.pool.release(conn)
    ctx.results[f"plans {label}"] = (n_stmt, n_generic)
    return out


class _ExplainConn:
    """Stands in for a connection in ``storage.cases.list_cases``: captures the SQL and arguments
    the real function builds, so the plan shown is the one of the exact statement."""

    def __init__(self) -> None:
        self.sql = ""
        self.args: tuple[Any, ...] = ()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.sql, self.args = sql, args
        return []


async def explain(ctx: Ctx, f: q.CaseFilter, actor: wf.Actor) -> list[str]:
    cap = _ExplainConn()
    await q.list_cases(cap, f, ctx.svc.scope_for(actor), ctx.svc.clock())
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + cap.sql, *cap.args)
    return [r[0] for r in rows]


async def match_counts(ctx: Ctx) -> dict[str, int]:
    out = {}
    async with ctx.pool.acquire() as conn:
        for word in (COMMON_WORD, RARE_WORD):
            out[word] = await conn.fetchval(
                "SELECT count(*) FROM cases WHERE search @@ $1::tsquery", query_terms(word)
            )
        out["overdue"] = await conn.fetchval(
            "SELECT count(*) FROM cases WHERE state IN ('dispatched', 'handling')"
            " AND deadline < now()"
        )
        out["total"] = await conn.fetchval("SELECT count(*) FROM cases")
        out["size_mb"] = await conn.fetchval("SELECT pg_total_relation_size('cases') / 1048576")
    return out


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, str]:
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu_model(""),
        "memory": mem,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def plan_summary(lines: list[str], limit: int = 24) -> list[str]:
    """The plan nodes (with their filters and the top node's buffers) and the timings."""
    keep: list[str] = []
    for i, line in enumerate(lines):
        text = line.strip()
        if (
            i == 0
            or "->" in line
            or text.startswith(("Planning Time", "Execution Time", "Filter", "Index Cond"))
            or text.startswith(("Recheck Cond", "Rows Removed", "Sort Method"))
            or (text.startswith("Buffers") and len(keep) < 3)
        ):
            keep.append(line[:160])
    if len(keep) > limit:
        keep = [*keep[: limit - 2], "  ...", *keep[-2:]]
    return keep


def pad(text: str, width: int) -> str:
    """Left-justify for a terminal: CJK characters take two columns."""
    cols = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - cols)


def fmt_ms(s: float) -> str:
    return f"{s * 1000:.1f}"


def report(ctx: Ctx) -> None:
    r = ctx.results
    m = r["machine"]
    print()
    print("=" * 100)
    print(
        f"cityhub case benchmark  {r['started']:%Y-%m-%d %H:%M} UTC  |  {m['cpus']} CPUs, "
        f"{m['memory']}, Python {m['python']}, {r['pg_version']}"
    )
    live = "on" if r.get("live") else "off"
    print(
        f"hub pool {ctx.state.settings.db_pool_max} connections; live picture (relay) {live};"
        f" {ctx.args.seconds:g} s per level; list table {r.get('list_total', 0):,} cases"
    )
    if "load_start" in r:
        a, b = r["load_start"], os.getloadavg()
        print(
            f"load average (1/5/15 min) at start {a[0]:.1f}/{a[1]:.1f}/{a[2]:.1f},"
            f" at end {b[0]:.1f}/{b[1]:.1f}/{b[2]:.1f} (other work on the machine skews the figures)"
        )
    print("=" * 100)
    if "writes" in r:
        print("\nTransitions through CaseService.transition (DISPATCH then ESCALATE per case)")
        print(
            f"{'writers':>7} | {'transitions/s':>13} | {'p50 ms':>7} | {'p99 ms':>7} |"
            f" {'conflicts':>9} | {'errors':>6} | {'raw inserts/s':>13} | {'ratio':>5} |"
            f" {'CPU us/transition':>17} | {'CPU us/insert':>13}"
        )
        best = None
        for level, svc, raw in r["writes"]:
            ratio = svc.rate / raw.rate if raw.rate else 0.0
            print(
                f"{level:>7} | {svc.rate:>13,.0f} | {fmt_ms(pct(svc.latencies, 50)):>7} |"
                f" {fmt_ms(pct(svc.latencies, 99)):>7} | {svc.conflicts:>9} | {svc.errors:>6} |"
                f" {raw.rate:>13,.0f} | {ratio:>5.2f} | {svc.cpu_us():>17} | {raw.cpu_us():>13}"
            )
            if best is None or svc.rate > best[1].rate:
                best = (level, svc, raw)
        assert best is not None
        level, svc, raw = best
        ratio = svc.rate / raw.rate if raw.rate else 0.0
        ok = svc.rate >= GOAL_TPS and ratio >= GOAL_RATIO
        print(
            f"best level: {level} writers, {svc.rate:,.0f} transitions/s, ratio {ratio:.2f}"
            f"  -> goal (>= {GOAL_TPS:,.0f}/s and ratio >= {GOAL_RATIO}): "
            f"{'MET' if ok else 'MISSED'}"
        )
        done, stored = r["events_check"]
        print(
            f"check: {done:,} transitions reported (warm-up included),"
            f" {stored:,} dispatch/escalate events stored"
        )
    if "list" in r:
        full, ref = r["list"], r.get("list_ref", [])
        ref_by = {(c.combo.actor, c.combo.name): c for c in ref}
        n_ref = r.get("list_ref_total", 0)
        print(
            f"\nCase list through CaseService.list_cases, {r['list_total']:,} cases"
            f" (reference: the same queries on {n_ref:,} cases)"
        )
        print(
            f"{'actor':<10} {'combination':<22} | {'n':>4} | {'p50 ms':>7} | {'p95 ms':>7} |"
            f" {'max ms':>7} | {'ref p95':>7} | {'x ref':>5} | goal p95 < {GOAL_P95_MS:g} ms"
        )
        every: list[float] = []
        every_ref: list[float] = []
        for c in full:
            if not c.latencies:
                continue
            every += c.latencies
            rc = ref_by.get((c.combo.actor, c.combo.name))
            rp95 = pct(rc.latencies, 95) if rc and rc.latencies else float("nan")
            if rc:
                every_ref += rc.latencies
            p95 = pct(c.latencies, 95)
            print(
                f"{c.combo.actor:<10} {pad(c.combo.name, 22)} | {len(c.latencies):>4} |"
                f" {fmt_ms(pct(c.latencies, 50)):>7} | {fmt_ms(p95):>7} |"
                f" {fmt_ms(max(c.latencies)):>7} | {fmt_ms(rp95):>7} | {p95 / rp95:>5.1f} |"
                f" {'ok' if p95 * 1000 < GOAL_P95_MS else 'MISSED'}"
                + (f" ({c.errors} errors)" if c.errors else "")
            )
        if every:
            p95 = pct(every, 95)
            rp95 = pct(every_ref, 95) if every_ref else float("nan")
            print(
                f"{'overall':<33} | {len(every):>4} | {fmt_ms(pct(every, 50)):>7} |"
                f" {fmt_ms(p95):>7} | {fmt_ms(max(every)):>7} | {fmt_ms(rp95):>7} |"
                f" {p95 / rp95:>5.1f} | {'ok' if p95 * 1000 < GOAL_P95_MS else 'MISSED'}"
            )
        mc = r.get("match_counts", {})
        if mc:
            print(
                f"data: '{COMMON_WORD}' matches {mc[COMMON_WORD]:,} cases, '{RARE_WORD}'"
                f" {mc[RARE_WORD]:,}, overdue {mc['overdue']:,}; table+indexes"
                f" {mc['size_mb']:,} MB"
            )
        for key in [k for k in r if k.startswith("plans ")]:
            n_stmt, n_generic = r[key]
            print(
                f"plan cache ({key[6:]} cases): {n_stmt} prepared list statements (all pooled"
                f" connections), {n_generic} of them running a generic plan"
            )
        for name, secs in r.get("load_timings", {}).items():
            print(f"load: {name}: {secs:.1f} s")
        if r.get("explain"):
            name, lines = r["explain"]
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the slowest query of '{name}' (summary):")
            for line in plan_summary(lines):
                print("  " + line)
    print()


# ---------------------------------------------------------------------------------------------
# Main


async def run(
    args: argparse.Namespace, base_dsn: str, scratch: Path, server_pid: int | None
) -> int:
    dbname = "cityhub_bench_" + uuid.uuid4().hex[:8]
    await admin_fetchval(base_dsn, f"CREATE DATABASE {dbname}")
    dsn = dsn_for(base_dsn, dbname)
    state: HubState | None = None
    try:
        extra: dict[str, Any] = {"db_pool_max": args.pool} if args.pool else {}
        if "ws_port" in {f.name for f in dataclasses.fields(Settings)}:
            extra["ws_port"] = 0  # the live websocket listener (if any) on a free port
        settings = Settings(
            data_dir=scratch / "data", database_url=Secret(dsn), secret_key=Secret("bench"), **extra
        )
        has_live = "live" in inspect.signature(build_state).parameters

        async def build(live: bool) -> HubState:
            return await (build_state(settings, live=live) if has_live else build_state(settings))

        t0 = time.perf_counter()
        state = await build(False)
        await load_demo_city(state, args.demo_cases)
        log(f"hub state built, demo city loaded ({args.demo_cases:,} cases) in "
            f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        dispatcher, seat, departments = await actors(state)
        ctx = Ctx(args, state, dsn, CpuMeter(server_pid), dispatcher, seat, departments)
        ctx.results["started"] = datetime.now(UTC)
        ctx.results["machine"] = machine()
        ctx.results["load_start"] = os.getloadavg()
        async with state.pool.acquire() as conn:
            ctx.results["pg_version"] = " ".join(
                (await conn.fetchval("SELECT version()")).split()[:2]
            )
        ctx.results["templates"] = await make_templates(ctx)
        write_ids: list[int] = []
        if not args.skip_writes:
            t0 = time.perf_counter()
            write_ids = await prepare_write_cases(ctx, write_cases_needed(args))
            log(
                f"transitions: prepared {len(write_ids):,} registered cases (+2 events each) in"
                f" {time.perf_counter() - t0:.1f} s"
            )
        ctx.results["live"] = has_live and not args.no_live
        if ctx.results["live"]:
            # Now the hub as it runs: with the live picture (relay, fan-out, websockets). Its relay
            # starts at the head of case_events, as on a database with history: the events bulk-
            # written above are not live news; every transition measured below is relayed.
            await close_state(state)
            state = None
            state = ctx.state = await build(True)
            log("hub state rebuilt with the live picture on")
        try:
            if not args.skip_writes:
                await bench_transitions(ctx, write_ids)
            if not args.skip_list:
                async with state.pool.acquire() as conn:
                    await conn.execute("TRUNCATE cases, case_events, attachments CASCADE")
                ctx.results["now"] = datetime.now(UTC)
                log(f"list: generating {args.cases // 10:,} cases (reference tenth)")
                t_ref = await load_list_data(ctx, reference_part=True)
                log(f"list: reference data ready {t_ref}")
                ctx.results["list_ref_total"] = (await match_counts(ctx))["total"]
                ctx.results["list_ref"] = await bench_list(ctx, f"{args.cases // 10:,}")
                log(f"list: generating the other {args.cases - args.cases // 10:,} cases")
                timings = await load_list_data(ctx, reference_part=False)
                ctx.results["load_timings"] = timings
                log(f"list: data ready {timings}")
                mc = await match_counts(ctx)
                ctx.results["match_counts"] = mc
                ctx.results["list_total"] = mc["total"]
                ctx.results["list"] = await bench_list(ctx, f"{args.cases:,}")
                worst = max(
                    (c for c in ctx.results["list"] if c.latencies),
                    key=lambda c: pct(c.latencies, 95),
                )
                if pct(worst.latencies, 95) * 1000 >= GOAL_P95_MS or args.explain:
                    assert worst.slowest is not None
                    _dt, f, actor = worst.slowest
                    ctx.results["explain"] = (
                        f"{worst.combo.actor}: {worst.combo.name}",
                        await explain(ctx, f, actor),
                    )
        finally:
            report(ctx)
    finally:
        if state is not None:
            await close_state(state)
        with contextlib.suppress(Exception):
            await admin_fetchval(base_dsn, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small run (about a minute)")
    p.add_argument("--cases", type=int, help="cases in the list-query table (default 1,000,000)")
    p.add_argument("--seconds", type=float, help="seconds per writer level (default 10)")
    p.add_argument("--queries", type=int, help="timed queries per list combination (default 200)")
    p.add_argument(
        "--combo-seconds", type=float, help="time bound per list combination (default 20)"
    )
    p.add_argument("--demo-cases", type=int, help="demo city cases (templates; default 1000)")
    p.add_argument("--pool", type=int, default=0, help="hub pool size (default: Settings')")
    p.add_argument("--data-dir", type=Path, help="parent of the temporary directory")
    p.add_argument(
        "--drop-indexes",
        action="store_true",
        help="drop the non-unique indexes of cases around the bulk insert and recreate them after"
        " (about 10%% faster here, so not the default: indexes kept in place grow as in production)",
    )
    p.add_argument(
        "--no-live",
        action="store_true",
        help="build the hub state without the live picture (relay, fan-out, websockets)",
    )
    p.add_argument("--skip-writes", action="store_true", help="skip the transition benchmark")
    p.add_argument("--skip-list", action="store_true", help="skip the case-list benchmark")
    p.add_argument("--explain", action="store_true", help="always print the slowest plan")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "cases": 50_000 if quick else 1_000_000,
        "seconds": 2.0 if quick else 10.0,
        "queries": 40 if quick else 200,
        "combo_seconds": 5.0 if quick else 20.0,
        "demo_cases": 500 if quick else 1000,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.cases < 1000:
        p.error("--cases must be at least 1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = scratch_dir("cityhub-bench-", args.data_dir)
    embedded: list[EmbeddedPostgres] = []

    def body() -> int:
        external = os.environ.get("CITYHUB_DATABASE_URL", "")
        server_pid = None
        if external:
            base = external
            log("using the server of CITYHUB_DATABASE_URL (a scratch database is created)")
        else:
            import logging

            logging.getLogger("pgserver").setLevel(logging.WARNING)
            embedded.append(EmbeddedPostgres(scratch / "pg"))
            t0 = time.perf_counter()
            base = embedded[0].start()
            server = embedded[0]._server
            server_pid = server.get_pid() if server else None
            log(f"embedded PostgreSQL started in {time.perf_counter() - t0:.1f} s under {scratch}")
        return asyncio.run(run(args, base, scratch, server_pid))

    def cleanup() -> None:
        for pg in embedded:
            pg.stop()

    return run_cleanly(body, cleanup, scratch)


if __name__ == "__main__":
    sys.exit(main())
