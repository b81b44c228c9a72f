"""The demo city (``hub/demo/``) and the reference data (``storage/reference.py``).

One embedded PostgreSQL and one demo load (2,000 cases, fixed ``now`` and seed) for the module; the
tests then read the database back. Every case history is replayed through the real workflow
machine (``hub.core.workflow.apply``) with the stored actor, so an illegal move, a wrong actor or a row
column that does not match its events fails here.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio

from hub.cases.facts import case_facts
from hub.cases.reference import ensure_reference_data
from hub.core import workflow as wf
from hub.core.passwords import verify_password
from hub.core.workcal import WorkCalendar, parse_work_hours
from hub.demo import DEMO_USERS, DemoSummary, demo_photos, grid_lattice, load_demo
from storage.attachments import AttachmentStore
from storage.db import create_pool, migrate
from storage.reference import load_calendar
from storage.search import query_terms

N_CASES = 2000
NOW = datetime(2026, 11, 23, 3, 30, tzinfo=UTC)  # 11:30 in Qujing, a Monday
SHANGHAI = ZoneInfo("Asia/Shanghai")
S = wf.CaseState
A = wf.Action

# --------------------------------------------------------------------------------------------------
# Fixtures (module-scoped, named so as not to clash with conftest.py)


@pytest.fixture(scope="module")
def demo_pg_uri() -> Iterator[str]:
    """Our own embedded PostgreSQL. Its data dir is outside pytest's temp root on purpose: pytest
    resets that root to mode 0700 whenever another pytest process starts, which locks out the
    unprivileged user pgserver runs PostgreSQL as when the tests run as root."""
    from pgserver import get_server  # type: ignore[attr-defined]

    root = Path(tempfile.mkdtemp(prefix="cityhub-demo-test-"))
    root.chmod(0o755)
    (root / "run").mkdir(mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(root / "run"))
    srv = get_server(root / "pg", cleanup_mode="stop")
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo_pool(demo_pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    admin = await asyncpg.connect(demo_pg_uri)
    try:
        await admin.execute("DROP DATABASE IF EXISTS demo_test WITH (FORCE)")
        await admin.execute("CREATE DATABASE demo_test")
    finally:
        await admin.close()
    parts = urlsplit(demo_pg_uri)
    pool = await create_pool(urlunsplit(parts._replace(path="/demo_test")), min_size=1, max_size=4)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> AttachmentStore:
    return AttachmentStore(tmp_path_factory.mktemp("attachments"), 20 << 20)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo_calendar(demo_pool: asyncpg.Pool) -> WorkCalendar:
    async with demo_pool.acquire() as conn:
        await ensure_reference_data(conn)
        exceptions = await load_calendar(conn)
    return WorkCalendar(SHANGHAI, parse_work_hours("08:30-12:00,14:30-18:00"), exceptions)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo(
    demo_pool: asyncpg.Pool, demo_store: AttachmentStore, demo_calendar: WorkCalendar
) -> DemoSummary:
    return await load_demo(
        demo_pool, attachments=demo_store, calendar=demo_calendar, now=NOW, n_cases=N_CASES
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db(demo_pool: asyncpg.Pool, demo: DemoSummary) -> dict[str, list[asyncpg.Record]]:
    """The demo as loaded, read back once."""
    async with demo_pool.acquire() as conn:
        return {
            "cases": await conn.fetch("SELECT * FROM cases ORDER BY id"),
            "events": await conn.fetch("SELECT * FROM case_events ORDER BY case_id, version"),
            "users": await conn.fetch("SELECT * FROM users ORDER BY id"),
            "user_grids": await conn.fetch("SELECT * FROM user_grids"),
            "grids": await conn.fetch("SELECT id, code, level, parent_id FROM grids"),
            "attachments": await conn.fetch("SELECT * FROM attachments ORDER BY id"),
            "categories": await conn.fetch("SELECT * FROM categories ORDER BY id"),
            "departments": await conn.fetch("SELECT * FROM departments ORDER BY id"),
        }


# --------------------------------------------------------------------------------------------------
# Grids (pure)


class TestGridLattice:
    def test_counts_and_codes(self) -> None:
        cells = grid_lattice()
        level1 = [c for c in cells if c.level == 1]
        level2 = [c for c in cells if c.level == 2]
        assert (len(level1), len(level2)) == (5, 462)
        codes = [c.code for c in cells]
        assert len(set(codes)) == len(codes)
        assert all(re.fullmatch(r"[0-9]{6,16}", code) for code in codes)
        assert all(c.code.startswith("530302") and len(c.code) == 9 for c in level1)
        for c in level2:
            assert len(c.code) == 15 and c.parent_code is not None
            assert c.code.startswith(c.parent_code)
        names = {c.name for c in level2}
        assert len(names) == 462 and "南宁街道第012网格" in names

    def test_cells_are_300m_squares_near_the_centre(self) -> None:
        level2 = [c for c in grid_lattice() if c.level == 2]
        for c in level2:
            assert 89_000 < c.area_m2 < 91_000
        lons = [(c.west + c.east) / 2 for c in level2]
        lats = [(c.south + c.north) / 2 for c in level2]
        assert abs(sum(lons) / len(lons) - 103.80) < 1e-9
        assert abs(sum(lats) / len(lats) - 25.50) < 1e-9

    def test_no_overlap_and_union_covers_each_street(self) -> None:
        cells = grid_lattice()
        level2 = [c for c in cells if c.level == 2]
        eps = 1e-12
        for i, a in enumerate(level2):
            for b in level2[i + 1 :]:
                overlap_x = min(a.east, b.east) - max(a.west, b.west)
                overlap_y = min(a.north, b.north) - max(a.south, b.south)
                assert overlap_x <= eps or overlap_y <= eps, (a.code, b.code)
        for street in (c for c in cells if c.level == 1):
            children = [c for c in level2 if c.parent_code == street.code]
            for c in children:  # inside the street's box ...
                assert street.west <= c.west < c.east <= street.east
                assert street.south <= c.south < c.north <= street.north
            # ... and, not overlapping, their areas add up to the box: they cover it.
            box = (street.east - street.west) * (street.north - street.south)
            total = sum((c.east - c.west) * (c.north - c.south) for c in children)
            assert total == pytest.approx(box, rel=1e-9)
        streets = sorted((c for c in cells if c.level == 1), key=lambda c: c.west)
        for left, right in itertools.pairwise(streets):
            assert left.east == right.west  # contiguous bands

    def test_boundary_text(self) -> None:
        cell = grid_lattice()[5]
        text = cell.boundary
        assert text.startswith("((") and text.endswith("))")
        points = re.findall(r"\(([-0-9.e]+),([-0-9.e]+)\)", text)
        assert [(float(x), float(y)) for x, y in points] == [
            (cell.west, cell.south),
            (cell.east, cell.south),
            (cell.east, cell.north),
            (cell.west, cell.north),
        ]


def test_demo_photos_are_pngs() -> None:
    photos = demo_photos()
    assert len(photos) == 8 and len(set(photos)) == 8
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) < 20_000 for p in photos)


# --------------------------------------------------------------------------------------------------
# Reference data


async def test_reference_data_is_idempotent(
    demo_pool: asyncpg.Pool, demo_calendar: WorkCalendar
) -> None:
    async with demo_pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM categories")
        days = await conn.fetchval("SELECT count(*) FROM calendar_days")
        await ensure_reference_data(conn)
        assert await conn.fetchval("SELECT count(*) FROM categories") == before == 49
        assert await conn.fetchval("SELECT count(*) FROM calendar_days") == days > 0
        cats = {r["code"]: r for r in await conn.fetch("SELECT * FROM categories")}
    assert cats["E0101"]["minor_name"] == "私搭乱建"
    assert (cats["E0101"]["time_limit_value"], cats["E0101"]["time_limit_unit"]) == (4, "hours")
    assert cats["E0106"]["time_limit_unit"] == "days"
    assert cats["E02N01"]["minor_name"] == "非法小广告" and cats["E02N01"]["minor_code"] == "N01"
    assert cats["C0101"]["minor_name"] == "上水井盖" and cats["C01N01"]["minor_name"] == "污水井盖"
    assert cats["E02N01"]["time_limit_value"] is None and cats["E02N01"]["time_limit_text"] == ""
    assert {r["urgency"] for r in cats.values() if r["major_name"] == "突发事件"} == {1}
    assert demo_calendar.exceptions  # holidays loaded from the seed


# --------------------------------------------------------------------------------------------------
# The loaded demo


async def test_summary(demo: DemoSummary, db: dict[str, list[asyncpg.Record]]) -> None:
    assert demo.loaded
    assert demo.cases == len(db["cases"]) >= N_CASES
    assert demo.events == len(db["events"])
    assert demo.attachments == len(db["attachments"])
    assert (demo.grids, demo.departments, demo.users) == (467, 10, len(DEMO_USERS))


async def test_users_per_role(db: dict[str, list[asyncpg.Record]]) -> None:
    users = {u["username"]: u for u in db["users"]}
    roles = collections.Counter(u["role"] for u in users.values())
    assert roles == {
        "admin": 1,
        "seat": 3,
        "dispatcher": 2,
        "department": 10,
        "supervisor": 10,
        "agent": 3,
        "viewer": 1,
    }
    assert set(users) == set(DEMO_USERS)
    assert all(users[n]["role"] == role for n, (role, _pw) in DEMO_USERS.items())
    dept_ids = {u["department_id"] for u in users.values() if u["role"] == "department"}
    assert dept_ids == {d["id"] for d in db["departments"]}
    assert sum(d["is_coordinating"] for d in db["departments"]) == 1
    level1 = {g["id"] for g in db["grids"] if g["level"] == 1}
    by_user = collections.defaultdict(list)
    for ug in db["user_grids"]:
        by_user[ug["user_id"]].append(ug["grid_id"])
    sup_ids = {u["id"] for u in users.values() if u["role"] == "supervisor"}
    assert set(by_user) == sup_ids
    assert all(len(g) == 1 and g[0] in level1 for g in by_user.values())
    assert sorted(collections.Counter(g[0] for g in by_user.values()).values()) == [2] * 5
    assert all(re.search(r"[\u4e00-\u9fff]", u["display_name"]) for u in users.values())
    # One hash per role, and it is the documented password's.
    for role in roles:
        hashes = {u["password_hash"] for u in users.values() if u["role"] == role}
        assert len(hashes) == 1
        name = next(n for n, (r, _pw) in DEMO_USERS.items() if r == role)
        assert verify_password(hashes.pop(), DEMO_USERS[name][1])


async def test_categories_have_default_departments(db: dict[str, list[asyncpg.Record]]) -> None:
    deps = {d["id"]: d["name"] for d in db["departments"]}
    by_name = {c["minor_name"]: deps.get(c["default_department_id"]) for c in db["categories"]}
    assert None not in by_name.values()
    assert by_name["占道经营/流动兜售"] == "城管执法局"
    assert by_name["非法小广告"] == "城管执法局"
    assert by_name["暴露垃圾"] == "环境卫生管理处"
    assert by_name["路灯"] == "市政设施管理处"


def _actors(db: dict[str, list[asyncpg.Record]]) -> dict[int, wf.Actor]:
    children: dict[int, set[int]] = collections.defaultdict(set)
    for g in db["grids"]:
        if g["parent_id"] is not None:
            children[g["parent_id"]].add(g["id"])
    grids: dict[int, set[int]] = collections.defaultdict(set)
    for ug in db["user_grids"]:
        grids[ug["user_id"]] |= children[ug["grid_id"]] or {ug["grid_id"]}
    return {
        u["id"]: wf.Actor(
            u["id"], wf.Role(u["role"]), u["department_id"], frozenset(grids[u["id"]])
        )
        for u in db["users"]
    }


def _command(e: asyncpg.Record) -> wf.Command:
    data: dict[str, Any] = e["data"]
    return wf.Command(
        action=wf.Action(e["action"]),
        note=e["note"],
        department_id=data.get("department_id"),
        deadline=datetime.fromisoformat(data["deadline"]) if "deadline" in data else None,
        extension_until=(
            datetime.fromisoformat(data["extension_until"]) if "extension_until" in data else None
        ),
        reject_reason=wf.RejectReason(data["reject_reason"]) if "reject_reason" in data else None,
        duplicate_of=data.get("duplicate_of"),
        attachment_ids=tuple(e["attachment_ids"]),
        urgent=data.get("urgent"),
    )


_FOLDED = (
    "state", "department_id", "deadline", "pending_extension_until", "reject_reason",
    "duplicate_of", "rework_count", "extension_count", "escalation_count", "registered_at",
    "dispatched_at", "accepted_at", "handled_at", "verified_at", "closed_at", "is_quick",
    "is_urgent",
)  # fmt: skip


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, wf.CaseState | wf.RejectReason) else value


async def test_every_history_replays_through_the_workflow(
    db: dict[str, list[asyncpg.Record]],
) -> None:
    """Replay each case's events with ``hub.core.workflow`` (create/apply, the stored actor and the
    command rebuilt from the event): every move is legal, the states chain, versions run 1..n, and
    the case row equals the fold of the outcomes."""
    actors = _actors(db)
    events = collections.defaultdict(list)
    for e in db["events"]:
        events[e["case_id"]].append(e)
    for case in db["cases"]:
        chain = events[case["id"]]
        assert [e["version"] for e in chain] == list(range(1, len(chain) + 1)), case["id"]
        assert chain[0]["from_state"] is None and chain[0]["at"] == case["reported_at"]
        assert chain[0]["actor_id"] == case["reporter_id"]
        row: dict[str, Any] = dict.fromkeys(_FOLDED)
        row.update(rework_count=0, extension_count=0, escalation_count=0, is_urgent=False)
        previous: datetime | None = None
        for e in chain:
            actor, cmd = actors[e["actor_id"]], _command(e)
            if e["version"] == 1:
                out = wf.create(actor, cmd, case["grid_id"], e["at"])
            else:
                assert e["from_state"] == row["state"]
                move = (wf.CaseState(e["from_state"]), cmd.action)
                assert e["to_state"] in (
                    wf.TRANSITIONS[move],
                    wf.NO_DEPARTMENT_TRANSITIONS.get(move),
                )
                facts = case_facts({**row, "version": e["version"] - 1, "grid_id": case["grid_id"]})
                out = wf.apply(facts, actor, cmd, e["at"])
            assert out.to_state.value == e["to_state"]
            assert dict(out.event_data) == e["data"]
            row.update({k: _plain(v) for k, v in out.changes.items()})
            assert previous is None or e["at"] > previous
            assert e["at"] <= NOW
            previous = e["at"]
        assert chain[-1]["to_state"] == case["state"]
        assert case["version"] == len(chain)
        assert case["updated_at"] == chain[-1]["at"]
        for key in _FOLDED:
            assert _plain(case[key]) == row[key], (case["id"], key)


async def test_mix_follows_the_domain_figures(db: dict[str, list[asyncpg.Record]]) -> None:
    cases = db["cases"]
    n = len(cases)
    sources = collections.Counter(c["source"] for c in cases)
    share = {s: sources[s] / n for s in ("supervisor", "video", "hotline", "sensor", "public")}
    assert 0.45 <= share["supervisor"] <= 0.60 and max(share, key=share.__getitem__) == "supervisor"
    assert 0.22 <= share["video"] <= 0.34
    assert 0.08 <= share["hotline"] <= 0.16
    assert 0.0 < share["sensor"] + share["public"] <= 0.12
    quick = [c for c in cases if c["is_quick"]]
    assert 0.16 <= len(quick) / n <= 0.24  # Chongqing: 36,557 of 181,983
    assert {c["source"] for c in quick} == {"supervisor"}
    rejected = [c for c in cases if c["state"] == "rejected"]
    assert 0.03 <= len(rejected) / n <= 0.09  # ~94 % registered
    assert {c["reject_reason"] for c in rejected} == {"invalid", "duplicate"}
    for c in rejected:
        if c["reject_reason"] == "duplicate":
            assert c["duplicate_of"] is not None and c["duplicate_of"] < c["id"]
    registered = n - len(rejected)
    closed = sum(c["state"] == "closed" for c in cases)
    assert 0.86 <= closed / registered <= 0.95  # Chongqing: 154,686 of 170,423
    assert 0.02 <= sum(c["rework_count"] > 0 for c in cases) / registered <= 0.09
    assert 0.01 <= sum(c["extension_count"] > 0 for c in cases) / registered <= 0.06
    assert sum(c["escalation_count"] > 0 for c in cases) > 0
    returned = {e["case_id"] for e in db["events"] if e["action"] == "return"}
    assert 0.01 <= len(returned) / registered <= 0.06
    cats = {c["id"]: c["minor_name"] for c in db["categories"]}
    video = collections.Counter(cats[c["category_id"]] for c in cases if c["source"] == "video")
    total = sum(video.values())
    assert 0.64 <= video["占道经营/流动兜售"] / total <= 0.80  # Qujing: 72 %
    assert 0.16 <= video["机动车侵占人行道"] / total <= 0.30  # Qujing: 23 %
    hotline = [c for c in cases if c["source"] == "hotline"]
    assert all(re.fullmatch(r"1[3-9]\d-\d{4}-\d{4}", c["contact_phone"]) for c in hotline)
    assert all(c["contact_name"] for c in hotline)


async def test_open_cases_in_every_state_and_some_overdue(
    db: dict[str, list[asyncpg.Record]],
) -> None:
    states = collections.Counter(c["state"] for c in db["cases"])
    for state in (
        "reported", "registered", "dispatched", "handling", "feedback", "verifying", "verified",
        "deferred", "returned", "quick_handling", "confirming",
    ):  # fmt: skip
        assert states[state] > 0, state
    overdue = [
        c
        for c in db["cases"]
        if c["state"] in ("dispatched", "handling") and c["deadline"] is not None
        if c["deadline"] < NOW
    ]
    assert overdue
    recent = [c for c in db["cases"] if c["reported_at"] > NOW - timedelta(days=3)]
    assert {c["state"] for c in recent} & {"reported", "handling", "dispatched"}
    oldest = min(c["reported_at"] for c in db["cases"])
    assert timedelta(days=200) < NOW - oldest <= timedelta(days=245)


def _by_case(db: dict[str, list[asyncpg.Record]]) -> dict[int, list[asyncpg.Record]]:
    events: dict[int, list[asyncpg.Record]] = collections.defaultdict(list)
    for e in db["events"]:
        events[e["case_id"]].append(e)
    return events


async def test_some_cases_are_urgent_and_run_on_the_urgent_limit(
    db: dict[str, list[asyncpg.Record]], demo_calendar: WorkCalendar
) -> None:
    """About 4 % of cases are 紧急, marked by the reporter, at registration or at dispatch, a few
    un-marked later; every clock an urgent case starts runs on the shorter urgent limit (2 working
    hours), in the event's deadline and the row's ``time_limit_s``, as ``CaseService`` sets them."""
    cal, events, n = demo_calendar, _by_case(db), len(db["cases"])
    cats = {c["id"]: c for c in db["categories"]}

    def limit(cat: asyncpg.Record, at: datetime) -> tuple[datetime, int]:
        value, unit = cat["time_limit_value"], cat["time_limit_unit"]
        if not value or unit not in ("hours", "days"):
            value, unit = 24, "hours"
        seconds = value * 3600 if unit == "hours" else int(value * cal.day_length.total_seconds())
        return cal.add(at, value, unit).astimezone(UTC), seconds

    marks: collections.Counter[str] = collections.Counter()
    unmarked = 0
    for case in db["cases"]:
        urgent, cat = False, cats[case["category_id"]]
        for e in events[case["id"]]:
            if "urgent" in e["data"]:
                assert e["action"] in ("report", "register", "dispatch"), e["action"]
                if e["data"]["urgent"]:
                    marks[e["action"]] += 1
                unmarked += urgent and not e["data"]["urgent"]
                urgent = e["data"]["urgent"]
            if e["action"] in ("dispatch", "rework", "verify_fail", "resume"):
                due, _ = limit(cat, e["at"])
                if urgent:
                    due = min(due, cal.add(e["at"], 2, "hours").astimezone(UTC))
                assert datetime.fromisoformat(e["data"]["deadline"]) == due, (case["id"], e)
        assert case["is_urgent"] is urgent
        assert case["clock_since"] is None and case["paused_remaining_s"] is None
        if case["time_limit_s"] is not None and case["extension_count"] == 0:
            seconds = limit(cat, case["reported_at"])[1]
            assert case["time_limit_s"] == (min(seconds, 7200) if urgent else seconds), case["id"]
    urgent_cases = [c for c in db["cases"] if c["is_urgent"]]
    assert 0.02 <= len(urgent_cases) / n <= 0.06, len(urgent_cases)
    assert not any(c["is_quick"] for c in urgent_cases)
    assert marks["report"] > max(marks["register"], marks["dispatch"]) > 0, marks
    assert min(marks["register"], marks["dispatch"]) > 0, marks
    assert unmarked > 0
    # The 突发事件 class is the urgent one most of the time.
    emergency = [c for c in db["cases"] if cats[c["category_id"]]["urgency"] == 1]
    assert sum(c["is_urgent"] for c in emergency) / len(emergency) > 0.3


async def test_some_reports_are_confirmed_on_site_before_registration(
    db: dict[str, list[asyncpg.Record]],
) -> None:
    """核实: a share of hotline, public and sensor reports goes from a seat to a supervisor of the
    case's street before the seat decides; most are true (then registered), some not (rejected);
    most answers come within the 30-minute allowance, some later."""
    events, users = _by_case(db), {u["id"]: u for u in db["users"]}
    confirmed: dict[str, int] = collections.Counter()
    answers: list[tuple[bool, timedelta]] = []
    for case in db["cases"]:
        chain = events[case["id"]]
        for i, e in enumerate(chain):
            if e["action"] != "request_confirm":
                continue
            assert users[e["actor_id"]]["role"] == "seat" and i == 1
            confirmed[case["source"]] += 1
            if i + 1 == len(chain):
                assert case["state"] == "confirming"
                continue
            answer = chain[i + 1]
            assert users[answer["actor_id"]]["role"] == "supervisor"
            assert answer["action"] in ("confirm_pass", "confirm_fail")
            passed = answer["action"] == "confirm_pass"
            assert answer["data"] == {"confirmed": passed}
            answers.append((passed, answer["at"] - e["at"]))
            if i + 2 < len(chain):
                decision = chain[i + 2]["action"]
                assert decision in (("register", "reject") if passed else ("reject",))
    assert set(confirmed) <= {"hotline", "public", "sensor"}
    sources = collections.Counter(c["source"] for c in db["cases"])
    share = (confirmed["hotline"] + confirmed["public"]) / (sources["hotline"] + sources["public"])
    assert 0.3 <= share <= 0.6, share
    failed = sum(not passed for passed, _ in answers)
    late = sum(took > timedelta(minutes=30) for _, took in answers)
    assert 0.08 <= failed / len(answers) <= 0.3, (failed, len(answers))
    assert 0.05 <= late / len(answers) <= 0.4, (late, len(answers))


async def test_case_numbers_counters_and_search(
    demo_pool: asyncpg.Pool, db: dict[str, list[asyncpg.Record]]
) -> None:
    per_day: dict[str, int] = collections.Counter()
    for c in db["cases"]:
        day = c["reported_at"].astimezone(SHANGHAI).strftime("%Y%m%d")
        assert c["case_no"].startswith(day + "-") and re.fullmatch(r"\d{8}-\d{5}", c["case_no"])
        per_day[day] = max(per_day[day], int(c["case_no"][9:]))
    async with demo_pool.acquire() as conn:
        counters = {
            r["day"].strftime("%Y%m%d"): r["last"]
            for r in await conn.fetch("SELECT * FROM case_counters")
        }
        assert counters == per_day
        sample = db["cases"][::97]
        for c in sample:
            words = re.findall(r"[\u4e00-\u9fff]{2,}", c["description"] + " " + c["address"])
            for q in (c["case_no"], c["case_no"][-5:], *words):
                tsq = query_terms(q)
                assert tsq is not None
                assert await conn.fetchval(
                    "SELECT search @@ $2::tsquery FROM cases WHERE id = $1", c["id"], tsq
                ), (c["id"], q)
        # Sequences continue after the demo's ids.
        for table in ("cases", "attachments", "case_events"):
            col = "seq" if table == "case_events" else "id"
            seq = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table, col)
            assert await conn.fetchval(f"SELECT last_value FROM {seq}") == await conn.fetchval(
                f"SELECT max({col}) FROM {table}"
            )
        # seq follows time.
        ats = [r["at"] for r in await conn.fetch("SELECT at FROM case_events ORDER BY seq")]
        assert ats == sorted(ats)


async def test_every_located_case_is_in_its_grid(
    demo_pool: asyncpg.Pool, db: dict[str, list[asyncpg.Record]]
) -> None:
    located = [c for c in db["cases"] if c["lon"] is not None]
    assert len(located) == len(db["cases"])
    async with demo_pool.acquire() as conn:
        stmt = await conn.prepare(
            "SELECT id FROM grids WHERE level = 2 AND boundary @> point($1, $2)"
        )
        for c in located:
            hits = [r["id"] for r in await stmt.fetch(c["lon"], c["lat"])]
            assert hits == [c["grid_id"]], c["id"]
    streets = ("南宁街道", "白石江街道", "建宁街道", "寥廓街道", "益宁街道")
    assert all(c["address"].startswith(streets) for c in located)


async def test_attachments_belong_to_their_events(
    db: dict[str, list[asyncpg.Record]], demo_store: AttachmentStore
) -> None:
    attachments = {a["id"]: a for a in db["attachments"]}
    used: set[int] = set()
    for e in db["events"]:
        for aid in e["attachment_ids"]:
            a = attachments[aid]
            assert (a["case_id"], a["uploaded_by"]) == (e["case_id"], e["actor_id"])
            assert a["created_at"] <= e["at"]
            used.add(aid)
    assert used == set(attachments)
    blobs = {(a["sha256"], a["media_type"], a["size"], a["kind"]) for a in attachments.values()}
    assert len(blobs) == 8
    for sha, media_type, size, kind in blobs:
        assert (media_type, kind) == ("image/png", "photo")
        data = demo_store.open(sha)
        assert len(data) == size and data.startswith(b"\x89PNG")
    for e in db["events"]:
        if e["action"] in ("feedback", "quick_report", "quick_complete"):
            assert e["attachment_ids"]


async def test_second_load_is_a_no_op(
    demo_pool: asyncpg.Pool,
    demo: DemoSummary,
    demo_store: AttachmentStore,
    demo_calendar: WorkCalendar,
    db: dict[str, list[asyncpg.Record]],
) -> None:
    again = await load_demo(
        demo_pool, attachments=demo_store, calendar=demo_calendar, now=NOW, n_cases=N_CASES
    )
    assert again == DemoSummary(loaded=False)
    async with demo_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM cases") == len(db["cases"])
        assert await conn.fetchval("SELECT count(*) FROM users") == len(db["users"])
        flag = await conn.fetchval("SELECT value FROM settings_kv WHERE key = 'demo_loaded'")
    assert flag["cases"] == N_CASES


def test_demo_users_table_in_docs() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "demo.md").read_text(encoding="utf-8")
    for username, (role, password) in DEMO_USERS.items():
        if re.fullmatch(r"[a-z]+\d+", username) and not username.endswith(("1", "01")):
            continue  # numbered accounts are listed as ranges
        assert f"`{username}`" in doc, username
        assert f"`{password}`" in doc, password
        assert role in doc
