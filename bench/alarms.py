#!/usr/bin/env python3
"""Benchmark of the deadline alarm scheduler (issue 11): one pass over ``--clocks`` running clocks
(default 20,000 open cases) when it reads every running clock (at start, on leading, the 10-minute
safety net) and when it reads only what one case event touched (every other pass), as a ratio.

Run ``python bench/alarms.py`` (about a minute) or ``python bench/alarms.py --clocks 100000``.
``docs/benchmarks.md`` holds the last results.

What it does:

1. Data: a temporary embedded PostgreSQL (``pgserver``; removed at the end) or a new database on
   the server of ``CITYHUB_DATABASE_URL`` (dropped at the end). The hub state is built without the
   live core (no relay, no leader: only this script passes). One case is reported, registered and
   dispatched through ``CaseService`` (a 4-working-hour category, Monday 2036-12-01 09:00 Beijing
   time); its row is copied ``--clocks - 1`` times in SQL, each deadline a second later than the
   last, so every clock runs with its 黄灯 and 红灯 still to come. Beside them: the demo city
   (``hub.demo.load_demo``: its users and ``--history`` cases through the workflow machine, none
   with a running clock) and ``--closed`` copies in state ``closed``.
2. Measure ``--repeats`` times each, after one warm-up, with the clock at 09:30 (nothing due):
   *full*: the working set dropped, one pass (``storage.alarms.running_clocks`` of every running
   clock, thresholds computed for each); *incremental*: one 督办 (``escalate``) on a random running
   case through ``CaseService.transition``, then one pass (not timed: the transition), which reads
   that case only; *idle*: a pass with no event since the last; and, to split the full pass, the
   storage read alone (the SQL and the rows decoded into ``CaseRow``; the rest of the full pass is
   the thresholds computed on the working calendar for every clock). Each pass's rows (what the storage
   calls returned) are checked. Printed: min, median and p95 per kind and the ratio of the medians.

Bounded: at most 200,000 clocks, 50 repeats, and ``--budget`` seconds of measuring (default 120;
the runs stop early past it and say so). The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from bench.common import admin_fetchval, dsn_for, log, machine, pct, run_with_postgres  # noqa: E402
from hub.cases.alarms import Alarms  # noqa: E402
from hub.cases.service import NewCase  # noqa: E402
from hub.core import workflow as wf  # noqa: E402
from hub.settings import Secret, Settings  # noqa: E402
from hub.state import HubState  # noqa: E402
from hub.web.app import build_state, close_state  # noqa: E402
from storage import alarms as alarm_store  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2036, 12, 1, 9, 0, tzinfo=TZ)  # a Monday, a plain working week
MAX_CLOCKS = 200_000
MAX_REPEATS = 50


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def populate(state: HubState, clock: Clock, clocks: int, closed: int) -> tuple[int, int]:
    """One running case through the service, copied in SQL; returns (admin id, template id)."""
    svc = state.cases
    async with state.pool.acquire() as conn:
        admin = int(await conn.fetchval("SELECT id FROM users WHERE username = 'admin'"))
        dep = int(await conn.fetchval("SELECT id FROM departments ORDER BY id LIMIT 1"))
    cat = next(
        c
        for c in svc.catalog.categories.values()
        if c.active and c.time_limit_unit == "hours" and c.time_limit_value == 4
    )
    actor = wf.Actor(admin, wf.Role.ADMIN)
    clock.now = START
    body = await svc.create(actor, NewCase(cat.id, "public", "时限基准案件", address="基准路1号"))
    ev = await svc.transition(actor, body["id"], body["version"], wf.Command(wf.Action.REGISTER))
    await svc.transition(
        actor, body["id"], ev.version, wf.Command(wf.Action.DISPATCH, department_id=dep)
    )
    template = int(body["id"])
    async with state.pool.acquire() as conn:
        cols = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'cases'"
                " AND is_generated = 'NEVER' AND column_name NOT IN ('id', 'case_no', 'deadline',"
                " 'state') ORDER BY ordinal_position"
            )
        ]
        quoted = ", ".join(f'"{c}"' for c in cols)
        copy_sql = (
            f"INSERT INTO cases (case_no, deadline, state, {quoted})"
            f" SELECT c.case_no || '-' || $3 || g, c.deadline + g * interval '1 second', $2,"
            f" {', '.join(f'c.{q}' for q in quoted.split(', '))}"
            " FROM cases c, generate_series(1, $4) g WHERE c.id = $1"
        )
        if clocks > 1:
            await conn.execute(copy_sql, template, "dispatched", "r", clocks - 1)
        if closed:
            await conn.execute(copy_sql, template, "closed", "x", closed)
        await conn.execute("VACUUM ANALYZE cases")
    return admin, template


async def measure(state: HubState, args: argparse.Namespace) -> None:
    svc = state.cases
    clock = Clock(START)
    svc.clock = clock
    t0 = time.perf_counter()
    admin, _ = await populate(state, clock, args.clocks, args.closed)
    log(
        f"{args.clocks:,} running clocks, {args.closed:,} closed cases in {time.perf_counter() - t0:.1f} s"
    )
    async with state.pool.acquire() as conn:
        ids = [
            int(r["id"])
            for r in await conn.fetch("SELECT id FROM cases WHERE state = 'dispatched'")
        ]
    clock.now = START + timedelta(minutes=30)
    alarms = Alarms(state.pool, state.dsn, svc)
    actor = wf.Actor(admin, wf.Role.ADMIN)
    rng = random.Random(20261202)
    times: dict[str, list[float]] = {
        "full": [],
        "full: the read alone": [],
        "incremental": [],
        "idle": [],
    }
    rows: dict[str, set[int]] = {k: set() for k in times}
    deadline = time.monotonic() + args.budget
    stopped_early = False

    async def one(kind: str) -> None:
        if kind == "full":
            alarms.forget()
        elif kind == "incremental":
            case_id = rng.choice(ids)
            detail = await svc.get(actor, case_id)
            await svc.transition(
                actor,
                case_id,
                detail["version"],
                wf.Command(wf.Action.ESCALATE, note="基准督办"),
            )
        elif kind.startswith("full:"):
            t = time.perf_counter()
            async with state.pool.acquire() as conn:
                n = len(await alarm_store.running_clocks(conn))
            times[kind].append(time.perf_counter() - t)
            rows[kind].add(n)
            return
        t = time.perf_counter()
        await alarms.check()
        took = time.perf_counter() - t
        assert alarms.last_read == ("full" if kind == "full" else "incremental"), alarms.last_read
        times[kind].append(took)
        rows[kind].add(alarms.last_rows)

    for kind in times:  # warm-up
        await one(kind)
    for k in times:
        times[k].clear()
        rows[k].clear()
    for _ in range(args.repeats):
        for kind in times:
            await one(kind)
        if time.monotonic() > deadline:
            stopped_early = True
            break
    assert alarms.fired == 0, "nothing is due at 09:30"
    load = os.getloadavg()
    print()
    print(f"machine: {machine()}; load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
    n = len(times["full"])
    print(
        f"data: {args.clocks:,} running clocks, {args.closed:,} closed cases; {n} timed passes"
        f" per kind (+1 warm-up){'; stopped at the budget' if stopped_early else ''}"
    )
    print()
    print("| pass | rows read | min | median | p95 |")
    print("|---|---:|---:|---:|---:|")
    for kind, ts in times.items():
        shown = "/".join(str(r) for r in sorted(rows[kind]))
        print(
            f"| {kind} | {shown} | {min(ts) * 1000:,.1f} ms | {statistics.median(ts) * 1000:,.1f} ms"
            f" | {pct(ts, 95) * 1000:,.1f} ms |"
        )
    full, inc = statistics.median(times["full"]), statistics.median(times["incremental"])
    print()
    print(f"full / incremental (medians): {full / inc:,.0f} x")


async def run(args: argparse.Namespace, base: str) -> int:
    dbname = "cityhub_bench_alarms_" + uuid.uuid4().hex[:8]
    await admin_fetchval(base, f"CREATE DATABASE {dbname}")
    try:
        data_dir = Path(tempfile.mkdtemp(prefix="cityhub-bench-alarms-data-"))
        atexit.register(shutil.rmtree, data_dir, True)
        settings = Settings(
            data_dir=data_dir, database_url=Secret(dsn_for(base, dbname)), secret_key=Secret("b")
        )
        t0 = time.perf_counter()
        state = await build_state(settings, live=False)
        try:
            # The demo city: its users and departments, and ``--history`` cases through the
            # workflow machine (none with a running clock: they predate ``clock_since``).
            from hub.demo import load_demo

            await load_demo(
                state.pool,
                attachments=state.attachments,
                calendar=state.cases.calendar,
                now=START - timedelta(days=1),
                n_cases=args.history,
            )
        finally:
            await close_state(state)
        state = await build_state(settings, live=False)  # with the demo's catalog
        log(f"hub state and demo city ({args.history:,} cases) in {time.perf_counter() - t0:.1f} s")
        try:
            await measure(state, args)
        finally:
            await close_state(state)
    finally:
        await admin_fetchval(base, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--clocks", type=int, default=20_000, help="running clocks (default 20,000)")
    p.add_argument("--closed", type=int, default=0, help="closed cases beside them (default 0)")
    p.add_argument(
        "--history", type=int, default=1000, help="demo cases of history (default 1,000)"
    )
    p.add_argument("--repeats", type=int, default=10, help="timed passes per kind (default 10)")
    p.add_argument("--budget", type=float, default=120.0, help="seconds of measuring at most")
    args = p.parse_args(argv)
    if not 1 <= args.clocks <= MAX_CLOCKS or not 0 <= args.closed <= MAX_CLOCKS * 5:
        p.error(f"--clocks must be 1..{MAX_CLOCKS:,}, --closed 0..{MAX_CLOCKS * 5:,}")
    if not 100 <= args.history <= MAX_CLOCKS:
        p.error(f"--history must be 100..{MAX_CLOCKS:,}")
    if not 1 <= args.repeats <= MAX_REPEATS:
        p.error(f"--repeats must be 1..{MAX_REPEATS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"start; machine {machine()}")
    return run_with_postgres("cityhub-bench-alarms-", functools.partial(run, args))


if __name__ == "__main__":
    sys.exit(main())
