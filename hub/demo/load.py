"""Loading the demo city into a database.

``load_demo`` runs once per database: under an advisory lock and in one transaction it checks
``settings_kv['demo_loaded']``, loads the reference data, inserts the organisation (5 street grids,
462 unit grids, 10 departments, users for every role, components), generates the cases
(``hub.demo.history``) and writes them with ``COPY`` while the next chunk is generated, then sets
``demo_loaded``. A second call is a no-op.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time as _time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import orjson

from hub.cases.reference import ensure_reference_data
from hub.core import workflow as wf
from hub.core.passwords import hash_password
from hub.core.workcal import WorkCalendar
from hub.demo.components import insert_components
from hub.demo.geography import STREETS, GridCell, grid_lattice
from hub.demo.history import HistoryGenerator
from hub.demo.media import demo_photos
from hub.demo.organisation import (
    COORDINATING,
    DEMO_USERS,
    DEPARTMENTS,
    MAJOR_DEPARTMENT,
    MINOR_DEPARTMENT,
    ROLE_PASSWORDS,
    display_name,
)
from hub.demo.records import (
    ATTACHMENT_COLUMNS,
    DEFAULT_LIMIT,
    EVENT_COLUMNS,
    CategoryInfo,
    DemoChunk,
    DemoOrg,
)
from hub.demo.reports import HISTORY_DAYS
from storage.attachments import AttachmentStore, StoredBlob
from storage.cases import CASE_COLUMNS
from storage.db import advisory_lock, map_pg_errors
from storage.errors import StorageError

log = logging.getLogger("cityhub.storage.demo")

R = wf.Role

#: Advisory-lock key of the demo loader ("cityDEMO" in ASCII).
DEMO_LOCK_KEY: Final = 0x6369747944454D4F
DEMO_FLAG: Final = "demo_loaded"


@dataclasses.dataclass(frozen=True, slots=True)
class DemoSummary:
    """What ``load_demo`` inserted (all zero with ``loaded=False`` when the demo was already there)."""

    loaded: bool
    grids: int = 0
    departments: int = 0
    users: int = 0
    cases: int = 0
    components: int = 0
    events: int = 0
    attachments: int = 0
    seconds: float = 0.0


async def load_demo(
    pool: asyncpg.Pool,
    *,
    attachments: AttachmentStore,
    calendar: WorkCalendar,
    now: datetime,
    n_cases: int = 10_000,
    seed: int = 20261123,
    urgent_limit_hours: int = 2,
) -> DemoSummary:
    """Load the demo city once (see the module docstring); a no-op when it is already loaded.
    ``urgent_limit_hours``: the urgent time limit the case service applies (``urgent_limit``)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    started = _time.perf_counter()
    with map_pg_errors():
        async with advisory_lock(pool, DEMO_LOCK_KEY) as conn, conn.transaction():
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM settings_kv WHERE key = $1)", DEMO_FLAG
            ):
                log.info("demo city already loaded")
                return DemoSummary(loaded=False)
            hashes_task = asyncio.ensure_future(_hash_passwords())
            photos_task = asyncio.ensure_future(asyncio.to_thread(_store_photos, attachments))
            try:
                await ensure_reference_data(conn)
                await conn.execute("LOCK TABLE cases, case_events, attachments IN EXCLUSIVE MODE")
                departments = await _insert_departments(conn)
                categories = await _categories(conn, departments)
                cells = await _insert_grids(conn)
                users = await _insert_users(conn, await hashes_task, departments, cells, now)
                photos = await photos_task
            finally:
                for task in (hashes_task, photos_task):
                    if not task.done():
                        task.cancel()
            level2 = [(gid, c) for gid, c in cells if c.level == 2]
            supervisors: dict[str, list[str]] = {}
            for i, (street, _name, _w) in enumerate(STREETS):
                supervisors[street] = [f"sup{2 * i + 1:02d}", f"sup{2 * i + 2:02d}"]
            components = await insert_components(conn, cells, departments, seed)
            org = DemoOrg(level2, categories, departments, users, supervisors)
            counts = await _write_history(
                conn, org, calendar, photos, now, seed, n_cases, urgent_limit_hours
            )
            await conn.execute(
                "INSERT INTO settings_kv (key, value) VALUES ($1, $2::text::jsonb)",
                DEMO_FLAG,
                orjson.dumps(
                    {"at": now.astimezone(UTC).isoformat(), "cases": n_cases, "seed": seed}
                ).decode(),
            )
    summary = DemoSummary(
        loaded=True,
        grids=len(cells),
        departments=len(departments),
        users=len(users),
        cases=counts[0],
        components=components,
        events=counts[2],
        attachments=counts[1],
        seconds=round(_time.perf_counter() - started, 3),
    )
    log.info("demo city loaded: %s", summary)
    return summary


async def _hash_passwords() -> dict[str, str]:
    """One argon2 hash per distinct demo password (hashing is slow on purpose), in threads."""
    roles = list(ROLE_PASSWORDS)
    hashes = await asyncio.gather(
        *(asyncio.to_thread(hash_password, ROLE_PASSWORDS[role]) for role in roles)
    )
    return dict(zip(roles, hashes, strict=True))


def _store_photos(store: AttachmentStore) -> list[StoredBlob]:
    return [store.put(data, kind="photo") for data in demo_photos()]


async def _insert_departments(conn: asyncpg.Connection) -> dict[str, int]:
    codes = [d[0] for d in DEPARTMENTS]
    taken = await conn.fetch(
        "SELECT code FROM departments WHERE code = ANY($1::text[]) OR is_coordinating", codes
    )
    if taken:
        raise StorageError(
            "演示数据与现有部门冲突 (demo departments clash with existing ones)",
            details={"codes": sorted(r["code"] for r in taken)},
        )
    rows = await conn.fetch(
        "INSERT INTO departments (code, name, is_coordinating, phone)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[])"
        " RETURNING id, code",
        codes,
        [d[1] for d in DEPARTMENTS],
        [d[2] for d in DEPARTMENTS],
        [d[3] for d in DEPARTMENTS],
    )
    return {r["code"]: r["id"] for r in rows}


async def _categories(
    conn: asyncpg.Connection, departments: Mapping[str, int]
) -> list[CategoryInfo]:
    """Set missing default departments sensibly; return the active categories for the demo."""
    rows = await conn.fetch(
        "SELECT id, kind, major_name, minor_name, urgency, time_limit_value, time_limit_unit,"
        " default_department_id FROM categories WHERE active ORDER BY id"
    )
    code_of = {v: k for k, v in departments.items()}
    updates: list[tuple[int, int]] = []
    out: list[CategoryInfo] = []
    for r in rows:
        dep_id = r["default_department_id"]
        if dep_id is None:
            code = MINOR_DEPARTMENT.get(
                r["minor_name"], MAJOR_DEPARTMENT.get((r["kind"], r["major_name"]), COORDINATING)
            )
            dep_id = departments[code]
            updates.append((r["id"], dep_id))
        value, unit = r["time_limit_value"], r["time_limit_unit"]
        out.append(
            CategoryInfo(
                id=r["id"],
                kind=r["kind"],
                minor_name=r["minor_name"],
                urgency=r["urgency"],
                limit=(value, unit) if value and unit in ("hours", "days") else DEFAULT_LIMIT,
                department_code=code_of.get(dep_id, COORDINATING),
            )
        )
    if updates:
        await conn.execute(
            "UPDATE categories c SET default_department_id = u.dep"
            " FROM unnest($1::int[], $2::int[]) AS u(id, dep) WHERE c.id = u.id",
            [u[0] for u in updates],
            [u[1] for u in updates],
        )
    if not out:
        raise StorageError("没有可用的案件类别 (no active categories)")
    return out


async def _insert_grids(conn: asyncpg.Connection) -> list[tuple[int, GridCell]]:
    cells = grid_lattice()
    taken = await conn.fetch(
        "SELECT code FROM grids WHERE code = ANY($1::text[]) LIMIT 5", [c.code for c in cells]
    )
    if taken:
        raise StorageError(
            "演示网格与现有网格编码冲突 (demo grid codes clash with existing grids)",
            details={"codes": [r["code"] for r in taken]},
        )
    ids: dict[str, int] = {}
    for level in (1, 2):
        chosen = [c for c in cells if c.level == level]
        rows = await conn.fetch(
            "INSERT INTO grids (code, name, level, parent_id, boundary, area_m2)"
            " SELECT u.code, u.name, $3::smallint, p.id, u.boundary::polygon, u.area"
            " FROM unnest($1::text[], $2::text[], $4::text[], $5::text[], $6::float8[])"
            "   AS u(code, name, parent, boundary, area)"
            " LEFT JOIN grids p ON p.code = u.parent"
            " RETURNING id, code",
            [c.code for c in chosen],
            [c.name for c in chosen],
            level,
            [c.parent_code for c in chosen],
            [c.boundary for c in chosen],
            [c.area_m2 for c in chosen],
        )
        ids.update((r["code"], r["id"]) for r in rows)
    return [(ids[c.code], c) for c in cells]


async def _insert_users(
    conn: asyncpg.Connection,
    hashes: Mapping[str, str],
    departments: Mapping[str, int],
    cells: Sequence[tuple[int, GridCell]],
    now: datetime,
) -> dict[str, wf.Actor]:
    """Insert the demo accounts (an existing account of the same name and role is kept as it is,
    password included); return the actors, supervisors with their second-level grids."""
    dep_ids = [departments[d[0]] for d in DEPARTMENTS]
    names, displays, roles, deps, pw = [], [], [], [], []
    for index, (username, (role, _password)) in enumerate(DEMO_USERS.items()):
        names.append(username)
        displays.append(display_name(username, index))
        roles.append(role)
        deps.append(dep_ids[int(username[4:]) - 1] if role == "department" else None)
        pw.append(hashes[role])
    await conn.execute(
        "INSERT INTO users (username, display_name, password_hash, role, department_id, created_at)"
        " SELECT u.*, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) AS u"
        " ON CONFLICT (username) DO NOTHING",
        names,
        displays,
        pw,
        roles,
        deps,
        now - timedelta(days=HISTORY_DAYS + 10),
    )
    rows = await conn.fetch(
        "SELECT id, username, role, department_id FROM users WHERE username = ANY($1::text[])",
        names,
    )
    found = {r["username"]: r for r in rows}
    for username, role, dep in zip(names, roles, deps, strict=True):
        rec = found[username]
        if rec["role"] != role or rec["department_id"] != dep:
            raise StorageError(
                "演示账号与现有账号冲突 (a demo username exists with another role)",
                details={"username": username, "role": rec["role"]},
            )
    street_grid = {c.street: gid for gid, c in cells if c.level == 1}
    street_cells: dict[str, frozenset[int]] = {}
    for gid, c in cells:
        if c.level == 2:
            street_cells[c.street] = street_cells.get(c.street, frozenset()) | {gid}
    actors: dict[str, wf.Actor] = {}
    pairs: list[tuple[int, int]] = []
    for username, role, dep in zip(names, roles, deps, strict=True):
        uid = found[username]["id"]
        grid_ids: frozenset[int] = frozenset()
        if role == "supervisor":
            street = STREETS[(int(username[3:]) - 1) // 2][0]
            grid_ids = street_cells[street]
            pairs.append((uid, street_grid[street]))
        actors[username] = wf.Actor(uid, R(role), dep, grid_ids)
    await conn.execute(
        "INSERT INTO user_grids (user_id, grid_id) SELECT * FROM unnest($1::int[], $2::int[])"
        " ON CONFLICT DO NOTHING",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return actors


async def _write_history(
    conn: asyncpg.Connection,
    org: DemoOrg,
    calendar: WorkCalendar,
    photos: Sequence[StoredBlob],
    now: datetime,
    seed: int,
    n_cases: int,
    urgent_limit_hours: int,
) -> tuple[int, int, int]:
    """Generate the cases and COPY them chunk by chunk: a writer task copies one chunk while the
    generator (yielding to the loop every few cases) makes the next, so that PostgreSQL's work
    (constraint checks, index updates) overlaps Python's. Returns (cases, attachments, events)."""
    first_case = await _next_id(conn, "cases", "id")
    first_attachment = await _next_id(conn, "attachments", "id")
    counters = {
        r["day"]: r["last"]
        for r in await conn.fetch(
            "SELECT day, last FROM case_counters WHERE day >= $1",
            now.astimezone(calendar.tz).date() - timedelta(days=HISTORY_DAYS + 1),
        )
    }
    gen = HistoryGenerator(
        org,
        calendar,
        photos,
        now,
        seed,
        first_case_id=first_case,
        first_attachment_id=first_attachment,
        counters=counters,
        urgent_limit_hours=urgent_limit_hours,
    )
    # A connection without storage.db's jsonb codec takes JSON text.
    json_text = not isinstance(await conn.fetchval("SELECT '{}'::jsonb"), dict)
    # tsvector has no binary COPY format in asyncpg: stage the case rows with the text, then cast.
    await conn.execute(
        "CREATE TEMP TABLE demo_cases_stage ON COMMIT DROP AS SELECT * FROM cases WITH NO DATA;"
        " ALTER TABLE demo_cases_stage ALTER COLUMN search TYPE text"
    )
    queue: asyncio.Queue[DemoChunk | None] = asyncio.Queue()
    counts = [0, 0, 0]

    grids: dict[int, int | None] = {}
    deps: dict[int, int | None] = {}

    async def writer() -> None:
        select = ", ".join("search::tsvector" if c == "search" else c for c in CASE_COLUMNS)
        insert = (
            f"INSERT INTO cases ({', '.join(CASE_COLUMNS)}) SELECT {select}"
            " FROM demo_cases_stage ORDER BY id"
        )
        while (chunk := await queue.get()) is not None:
            if chunk.cases:
                await conn.copy_records_to_table(
                    "demo_cases_stage", records=chunk.cases, columns=CASE_COLUMNS
                )
                await conn.execute(insert)
                await conn.execute("TRUNCATE demo_cases_stage")
            if chunk.attachments:
                await conn.copy_records_to_table(
                    "attachments", records=chunk.attachments, columns=ATTACHMENT_COLUMNS
                )
            events = _routed(chunk, grids, deps)
            if json_text:
                events = [(*e[:8], orjson.dumps(e[8]).decode(), *e[9:]) for e in events]
            if events:
                await conn.copy_records_to_table(
                    "case_events", records=events, columns=(*EVENT_COLUMNS, *_ROUTING)
                )
            counts[0] += len(chunk.cases)
            counts[1] += len(chunk.attachments)
            counts[2] += len(chunk.events)

    task = asyncio.ensure_future(writer())
    try:
        for item in gen.stream(n_cases):
            if task.done():
                break  # the writer failed: its error is raised below
            if item is None:
                await asyncio.sleep(0)
            else:
                queue.put_nowait(item)
        queue.put_nowait(None)
        await task
    finally:
        if not task.done():
            task.cancel()
    for table in ("cases", "attachments"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 1),"
            f" max(id) IS NOT NULL) FROM {table}"
        )
    await conn.execute(
        "INSERT INTO case_counters (day, last) SELECT * FROM unnest($1::date[], $2::int[])"
        " ON CONFLICT (day) DO UPDATE SET last = greatest(case_counters.last, EXCLUDED.last)",
        list(gen.counters),
        list(gen.counters.values()),
    )
    return counts[0], counts[1], counts[2]


_ROUTING: Final = ("department_id", "grid_id")


def _routed(
    chunk: DemoChunk, grids: dict[int, int | None], deps: dict[int, int | None]
) -> list[tuple[Any, ...]]:
    """The events with the case's department and grid after each move, as
    ``storage.cases.transition`` writes them (only DISPATCH and RETURN change the department).
    A case's events may come in later chunks than its row: ``grids`` and ``deps`` carry over."""
    grid_at = CASE_COLUMNS.index("grid_id")
    grids.update((c[0], c[grid_at]) for c in chunk.cases)
    out = []
    for e in chunk.events:
        if e[2] == "dispatch":
            deps[e[0]] = e[8]["department_id"]
        elif e[2] == "return":
            deps[e[0]] = None
        out.append((*e, deps.get(e[0]), grids[e[0]]))
    return out


async def _next_id(conn: asyncpg.Connection, table: str, column: str) -> int:
    """The first free id: past both the table's max and its sequence's last value."""
    seq = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table, column)
    last = await conn.fetchval(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq}")
    top = await conn.fetchval(f"SELECT coalesce(max({column}), 0) FROM {table}")
    return int(max(last, top)) + 1
