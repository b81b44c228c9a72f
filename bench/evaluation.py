#!/usr/bin/env python3
"""Benchmark of the evaluation indicators (issue 11): a month, a quarter and a year of every city
indicator, and a drill-down, over ``--cases`` cases (default 1,000,000) with their histories.

Run ``python bench/evaluation.py`` (1,000,000 cases: generation about 10-20 minutes on 2 cores,
once, then cached with ``--pgdata``) or ``python bench/evaluation.py --cases 50000`` for a small
run. ``docs/benchmarks.md`` ("Evaluation indicators") holds the last results.

What it does:

1. Data: an embedded PostgreSQL (``pgserver``) under ``--pgdata`` (kept, so a rerun with the same
   ``--cases`` reuses the database ``cityhub_eval_<cases>``; without ``--pgdata`` a temporary
   directory, removed at the end) or the server of ``CITYHUB_DATABASE_URL``. The hub state is
   built (migrations, reference data) and ``hub.demo.load_demo`` generates the cases: every
   history is driven through the real workflow machine (``hub.core.workflow``) with the actors a
   deployment has, deadlines on the working calendar from each category's time limit, and the rows
   are COPYd in the form the service writes them (case row = the fold of the outcomes' changes,
   one ``case_events`` row per move with the department and grid after it). Reports, registers
   and rejections, dispatches, returns and re-dispatches, extensions, deferrals, feedback,
   verification (some failing: rework), closes, voids, escalations and quick cases, over the
   demo's 240 days ending at ``NOW`` (2027-01-01 00:00 Beijing time), so the year 2026 holds them
   all. ``tests/bench/test_evalgen.py`` replays generated histories through ``CaseService`` and
   checks the rows and every figure against the generated ones.
2. Measure, ``--repeats`` times each, after one warm-up, each family of ``--groups`` (``city``
   ``city_indicators``, ``departments`` ``department_indicators`` by default; also ``regions``,
   ``sources``, ``urgent``, ``posts``) for December 2026, Q4 2026 and the year 2026;
   the drill-downs of the month as the page reads them (``fetch_page``: the first 200 ids and
   the list's length): the city's 应结案 (the largest list) and 按期结案, one source's 应结案, the
   busiest department's 应处置 and one street's 问题数; and, in the same run, the reference: ``SELECT action, count(*) FROM case_events GROUP BY
   action`` over the whole table (a bare scan and aggregate of every event). Each figure is
   printed with its p95 and its ratio to the reference's p95. ``--explain`` prints the plan of
   the year (EXPLAIN ANALYZE, BUFFERS).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.common import admin_fetchval, dsn_for, log, machine, pct, run_with_postgres  # noqa: E402
from hub.settings import Secret, Settings  # noqa: E402
from hub.state import HubState  # noqa: E402
from hub.web.app import build_state, close_state  # noqa: E402
from storage import evaluation as ev  # noqa: E402
from storage import evaluation_posts as posts  # noqa: E402
from storage import evaluation_regions as regions  # noqa: E402
from storage import evaluation_sources as sources  # noqa: E402
from storage import evaluation_units as units  # noqa: E402
from storage.errors import StorageError  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
#: The end of the generated history (the demo's 240 days end here): the data never depend on
#: the day of the run, so a cached database stays valid.
NOW = datetime(2027, 1, 1, tzinfo=TZ)
SEED = 20261202
GOALS_S = {"month": 1.0, "quarter": 3.0, "year": 3.0, "drill": 0.2}
REFERENCE_SQL = "SELECT action, count(*) FROM case_events GROUP BY action"
#: The case log and the tables its triggers keep (migrations 0016, 0017, 0021, 0022).
SUMMARY_TABLES = (
    "cases",
    "case_events",
    "case_facts",
    "case_spans",
    "case_urgency",
    "case_tasks",
    "case_task_heads",
)


async def generate(state: HubState, n: int) -> float:
    from hub.demo import load_demo

    t0 = time.perf_counter()
    await load_demo(
        state.pool,
        attachments=state.attachments,
        calendar=state.cases.calendar,
        now=NOW,
        n_cases=n,
        seed=SEED,
    )
    took = time.perf_counter() - t0
    # What autovacuum does soon after a bulk load (its thresholds are counts of rows changed):
    # statistics for the log and every table its triggers wrote, so that the first run is planned
    # as a deployment's would be.
    async with state.pool.acquire() as conn:
        for table in SUMMARY_TABLES:
            await conn.execute(f"VACUUM ANALYZE {table}", timeout=3600)
    return took


async def _posts(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[Any]:
    out: list[Any] = []
    for post in ("supervisor", "seat", "dispatcher", "agent"):
        out.extend(await posts.post_indicators(conn, start, end, post))
    return out


#: What ``--groups`` may name: every indicator family of the evaluation page, one statement each
#: (the posts: one per post, run one after the other).
GROUPS: dict[str, Callable[[asyncpg.Connection, datetime, datetime], Awaitable[Any]]] = {
    "city": ev.city_indicators,
    "departments": units.department_indicators,
    "regions": regions.region_indicators,
    "sources": sources.source_indicators,
    "urgent": sources.urgent_indicators,
    "posts": _posts,
}


def show(group: str, fig: Any) -> str:
    """A short view of a result, so that a run shows it computed something real."""
    if group == "city":
        return (
            f"受理 {fig.accepted:,} 立案 {fig.registered:,} 派遣 {fig.dispatched:,}"
            f" 应结案 {fig.due:,} 结案 {fig.closed:,} 按期 {fig.on_time:,}"
            f" 返工 {fig.reworked:,} 延期 {fig.extended:,} 缓办 {fig.deferred:,}"
            f" 快速 {fig.quick_reported:,}/{fig.quick_closed:,}"
        )
    if group == "departments":
        return f"{len(fig)} departments, 应处置 {sum(d.count('to_handle') for d in fig):,}"
    if group == "regions":
        return f"{len(fig)} streets, 结案 {sum(r.counts.get('closed', 0) for r in fig):,}"
    if group == "sources":
        return f"{len(fig)} sources, 受理 {fig[0].total_accepted:,}" if fig else "none"
    if group == "urgent":
        return f"urgent {sum(fig.counts.values()):,} rows"
    return f"{len(fig)} post rows"


async def timed(fn: Callable[[], Awaitable[Any]], repeats: int) -> tuple[list[float], Any]:
    result = await fn()  # warm-up (and the value shown)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return times, result


async def measure(state: HubState, args: argparse.Namespace) -> None:
    periods = {
        "month": ev.period_bounds("month", date(2026, 12, 1), TZ),
        "quarter": ev.period_bounds("quarter", date(2026, 12, 1), TZ),
        "year": ev.period_bounds("year", date(2026, 12, 1), TZ),
    }
    # A connection of its own: the hub pool's 30 s command timeout would end the slow runs.
    conn = await asyncpg.connect(args.dsn, command_timeout=None)
    try:
        if args.work_mem:
            await conn.execute(f"SET work_mem = '{args.work_mem}'")
        n_cases = await conn.fetchval("SELECT count(*) FROM cases")
        n_events = await conn.fetchval("SELECT count(*) FROM case_events")
        log(f"{n_cases:,} cases, {n_events:,} events ({n_events / n_cases:.2f} per case)")
        ref, _ = await timed(lambda: conn.fetch(REFERENCE_SQL), args.repeats)
        ref95 = pct(ref, 95)
        rows: list[tuple[str, float, float, str]] = [
            ("reference: COUNT(*) GROUP BY action, all events", ref95, float("nan"), "")
        ]
        log(f"reference p95 {ref95 * 1000:.0f} ms")
        for group in args.groups:
            for name, (start, end) in periods.items():
                if name in args.skip:
                    continue
                await conn.execute(f"SET statement_timeout = '{int(args.timeout)}s'")
                try:
                    times, fig = await timed(
                        functools.partial(GROUPS[group], conn, start, end), args.repeats
                    )
                except (StorageError, asyncpg.PostgresError):  # cancelled by the timeout
                    rows.append((f"{group}, {name}", args.timeout, GOALS_S[name],
                                 f"cancelled after {args.timeout:.0f} s"))  # fmt: skip
                    log(f"{group} {name}: cancelled after {args.timeout:.0f} s")
                    continue
                finally:
                    await conn.execute("SET statement_timeout = 0")
                shown = show(group, fig)
                p95 = pct(times, 95)
                rows.append((f"{group}, {name}", p95, GOALS_S[name], shown))
                log(f"{group} {name}: p95 {p95 * 1000:.0f} ms ({p95 / ref95:.2f} x reference);"
                    f" {shown}")  # fmt: skip
        start, end = periods["month"]
        dep = await conn.fetchval(
            "SELECT department_id FROM case_spans WHERE kind = 'deadline'"
            " AND department_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        )
        grid = await conn.fetchval("SELECT id FROM grids WHERE level = 1 ORDER BY code LIMIT 1")
        # what the page's click reads: the first page of the list and its length (fetch_page)
        drills: list[tuple[str, ev.DrillQuery]] = [
            ("city 应结案", ev.drill_query(ev.Indicator.DUE, start, end)),
            ("city 按期结案", ev.drill_query(ev.Indicator.ON_TIME, start, end)),
            ("source video 应结案", sources.source_drill_query("due", start, end, source="video")),
        ]
        if dep is not None:
            drills.append((f"department {dep} 应处置",
                           units.department_drill_query("to_handle", start, end,
                                                        department_id=dep)))  # fmt: skip
        if grid is not None:
            drills.append((f"street {grid} 问题数",
                           regions.region_drill_query("reported", start, end, grid_id=grid)))  # fmt: skip
        for label, query in drills:
            times, page = await timed(
                functools.partial(ev.fetch_page, conn, query, offset=0, limit=200), args.repeats
            )
            p95 = pct(times, 95)
            rows.append((f"drill-down {label}, month (page of 200)", p95, GOALS_S["drill"],
                         f"{page.total:,} cases"))  # fmt: skip
            log(f"drill {label}: p95 {p95 * 1000:.0f} ms, {page.total:,} cases")
        plan: list[str] = []
        if args.explain:
            start, end = periods[args.explain]
            async with conn.transaction():
                await conn.execute(ev._WORK_MEM)
                recs = await conn.fetch(
                    "EXPLAIN (ANALYZE, BUFFERS) " + ev._COUNTS, start, end, None
                )
            plan = [r[0] for r in recs]
    finally:
        await conn.close()
    print()
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.1f} at the end")
    print(f"data: {n_cases:,} cases, {n_events:,} events; repeats {args.repeats} (+1 warm-up)")
    print()
    print("| query | p95 | x reference | goal | result |")
    print("|---|---:|---:|---:|---|")
    for name, p95, goal, shown in rows:
        ratio = "1" if goal != goal else f"{p95 / ref95:.2f}"
        goal_s = (
            "" if goal != goal else f"< {goal * 1000:.0f} ms " + ("ok" if p95 < goal else "MISSED")
        )
        print(f"| {name} | {p95 * 1000:,.0f} ms | {ratio} | {goal_s} | {shown} |")
    if plan:
        print()
        print("\n".join(plan))


async def run(args: argparse.Namespace, base: str) -> int:
    dbname = f"cityhub_eval_{args.cases}"
    exists = await admin_fetchval(base, "SELECT 1 FROM pg_database WHERE datname = $1", dbname)
    if exists and args.fresh:
        await admin_fetchval(base, f"DROP DATABASE {dbname} WITH (FORCE)")
        exists = None
    if not exists:
        await admin_fetchval(base, f"CREATE DATABASE {dbname}")
    data_dir = Path(args.pgdata or tempfile.gettempdir()) / "bench-eval-data"
    settings = Settings(
        data_dir=data_dir, database_url=Secret(dsn_for(base, dbname)), secret_key=Secret("bench")
    )
    args.dsn = dsn_for(base, dbname)
    t0 = time.perf_counter()
    state = await build_state(settings, live=False)  # applies pending migrations
    log(f"hub state built (migrations applied) in {time.perf_counter() - t0:.1f} s")
    try:
        async with state.pool.acquire() as conn:
            have = await conn.fetchval("SELECT count(*) FROM cases")
        if have:
            log(f"reusing {dbname} ({have:,} cases)")
        else:
            log(f"generating {args.cases:,} cases through the workflow machine")
            took = await generate(state, args.cases)
            log(f"generated and written in {took:.0f} s")
        await measure(state, args)
    finally:
        await close_state(state)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--cases", type=int, default=1_000_000, help="cases (default 1,000,000)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per query (default 5)")
    p.add_argument("--pgdata", type=Path, help="keep the server (and the data) in this directory")
    p.add_argument("--fresh", action="store_true", help="regenerate even if cached")
    p.add_argument("--work-mem", default="", help="SET work_mem for the session (e.g. 256MB)")
    p.add_argument(
        "--skip", nargs="*", default=[], choices=("month", "quarter", "year"), help="periods"
    )
    p.add_argument(
        "--groups",
        nargs="*",
        default=["city", "departments"],
        choices=tuple(GROUPS),
        help="indicator families to time (default: city departments)",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds before one statement is cancelled"
    )
    p.add_argument("--explain", choices=("month", "quarter", "year"), help="print that plan")
    args = p.parse_args(argv)
    if args.cases < 1000:
        p.error("--cases must be at least 1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_with_postgres(
        "cityhub-bench-eval-",
        functools.partial(run, args),
        args.pgdata / "pg" if args.pgdata else None,
    )


if __name__ == "__main__":
    sys.exit(main())
