"""The case API end to end against a real PostgreSQL: the six-stage journey, scope rules,
concurrent dispatchers, illegal moves writing nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.state import HubState
from tests.conftest import Api
from tests.helpers import category_id, point_for, upload_photo


async def counts(state: HubState) -> tuple[int, int]:
    async with state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM cases) AS c, (SELECT count(*) FROM case_events) AS e"
        )
    assert row is not None
    return int(row["c"]), int(row["e"])


async def report(sup: Api, **extra: Any) -> dict[str, Any]:
    lon, lat, _ = await point_for(sup)
    cat = await category_id(sup)
    photo = await upload_photo(sup)
    body = {
        "category_id": cat["id"],
        "source": "supervisor",
        "description": "南宁北路人行道上有生活垃圾堆放",
        "address": "麒麟区南宁北路 88 号",
        "lon": lon,
        "lat": lat,
        "attachment_ids": [photo],
        **extra,
    }
    r = await sup.post("/api/cases", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def dept_user_for(login: Any, department_id: int) -> Api:
    from hub.demo import DEMO_USERS

    for name, (role, _pw) in DEMO_USERS.items():
        if role == "department":
            api = await login(name)
            if api.user["department_id"] == department_id:
                return api  # type: ignore[no-any-return]
    raise AssertionError(f"no demo user for department {department_id}")


async def test_six_stage_journey(login: Any) -> None:
    sup, seat, disp = await login("sup01"), await login("seat1"), await login("dispatch1")
    lon, lat, grid_id = await point_for(sup)
    case = await report(sup, lon=lon, lat=lat)
    cid = case["id"]
    assert case["state"] == "reported" and case["state_label"] == "待受理"
    # Located in the grid that contains the point (found by the database, not sent by the client).
    assert case["grid"] is not None and case["grid"]["id"] == grid_id
    assert case["source"] == "supervisor" and case["source_label"] == "监督员上报"
    assert len(case["attachments"]) == 1
    assert case["case_no"].count("-") == 1

    r = await seat.act(cid, "register")
    assert r.status_code == 200, r.text
    dep_id = (await category_id(seat))["default_department_id"]
    assert dep_id is not None
    r = await disp.act(cid, "dispatch", department_id=dep_id)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "dispatched" and body["deadline"] is not None
    assert body["department"]["id"] == dep_id

    dept = await dept_user_for(login, dep_id)
    assert (await dept.act(cid, "accept")).status_code == 200
    after = await upload_photo(dept, "after.png", seed=9)
    r = await dept.act(cid, "feedback", note="已清运完毕", attachment_ids=[after])
    assert r.status_code == 200, r.text
    assert (await seat.act(cid, "request_verify")).status_code == 200
    assert (await sup.act(cid, "verify_pass", note="现场已干净")).status_code == 200
    r = await seat.act(cid, "close")
    assert r.status_code == 200, r.text
    final = r.json()
    assert final["state"] == "closed" and final["closed_at"] is not None
    actions = [e["action"] for e in final["timeline"]]
    assert actions == [
        "report",
        "register",
        "dispatch",
        "accept",
        "feedback",
        "request_verify",
        "verify_pass",
        "close",
    ]
    assert [e["version"] for e in final["timeline"]] == list(range(1, 9))
    assert final["timeline"][2]["action_label"] == "派遣"
    assert final["timeline"][4]["attachments"][0]["id"] == after
    assert final["allowed_actions"] == []
    # The photo is downloadable by someone who may see the case, with its sniffed type.
    r = await seat.get(f"/api/attachments/{after}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")


async def quick_counts(state: HubState) -> tuple[int, int]:
    """(quick cases, other cases) in the database."""
    async with state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE is_quick) AS q, count(*) FILTER (WHERE NOT is_quick) AS n"
            " FROM cases"
        )
    assert row is not None
    return int(row["q"]), int(row["n"])


async def test_quick_handling_counted_separately(login: Any, hub_state: HubState) -> None:
    sup, seat = await login("sup01"), await login("seat1")
    quick_before, plain_before = await quick_counts(hub_state)
    case = await report(sup, quick=True)
    plain = await report(sup)
    # One more quick case and one more ordinary one: each counted on its own side.
    assert await quick_counts(hub_state) == (quick_before + 1, plain_before + 1)
    assert case["state"] == "quick_handling" and case["is_quick"] is True
    assert plain["state"] == "reported" and plain["is_quick"] is False
    # the supervisor fixes it on the spot (or adds more photos first)
    assert case["allowed_actions"] == ["quick_complete", "add_evidence"]
    after = await upload_photo(sup, "after.png", seed=3)
    r = await sup.act(case["id"], "quick_complete", attachment_ids=[after])
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "feedback" and r.json()["is_quick"] is True
    # It joins the normal verification path, still flagged, never registered nor dispatched.
    assert (await seat.act(case["id"], "request_verify")).status_code == 200
    assert (await sup.act(case["id"], "verify_pass", note="现场已干净")).status_code == 200
    r = await seat.act(case["id"], "close")
    assert r.status_code == 200, r.text
    final = r.json()
    assert final["state"] == "closed" and final["is_quick"] is True
    assert final["department"] is None
    assert [e["action"] for e in final["timeline"]] == [
        "quick_report",
        "quick_complete",
        "request_verify",
        "verify_pass",
        "close",
    ]
    listed = (await seat.get("/api/cases", params={"state": "closed", "limit": 200})).json()
    flags = {c["id"]: c["is_quick"] for c in listed["items"]}
    assert flags.get(case["id"]) is True
    assert await quick_counts(hub_state) == (quick_before + 1, plain_before + 1)


async def test_department_sees_only_its_cases(login: Any, hub_state: HubState) -> None:
    async with hub_state.pool.acquire() as conn:
        deps = [
            r["department_id"]
            for r in await conn.fetch(
                "SELECT department_id FROM cases WHERE department_id IS NOT NULL"
                " GROUP BY department_id ORDER BY count(*) DESC LIMIT 2"
            )
        ]
        other_case = await conn.fetchval(
            "SELECT id FROM cases WHERE department_id = $1 AND state = 'dispatched' LIMIT 1",
            deps[1],
        ) or await conn.fetchval("SELECT id FROM cases WHERE department_id = $1 LIMIT 1", deps[1])
    mine = await dept_user_for(login, deps[0])
    # The list holds only their department's cases, over several pages.
    seen = 0
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        r = await mine.get("/api/cases", params=params)
        assert r.status_code == 200
        items = r.json()["items"]
        assert all(c["department"]["id"] == deps[0] for c in items)
        seen += len(items)
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen > 0
    # Another department's case: not visible, not listable by filter, not changeable.
    assert (await mine.get(f"/api/cases/{other_case}")).status_code == 404
    r = await mine.get("/api/cases", params={"department_id": deps[1]})
    assert r.json()["items"] == []
    r = await mine.post(f"/api/cases/{other_case}/actions", json={"action": "accept", "version": 1})
    assert r.status_code == 404
    async with hub_state.pool.acquire() as conn:
        events = await conn.fetchval(
            "SELECT count(*) FROM case_events WHERE case_id = $1 AND actor_id = $2",
            other_case,
            mine.user["id"],
        )
    assert events == 0


async def test_supervisor_limited_to_own_grids(login: Any) -> None:
    sup1 = await login("sup01")
    others = [await login(f"sup{n:02d}") for n in range(2, 11)]
    other = next(o for o in others if set(o.user["grid_ids"]) != set(sup1.user["grid_ids"]))
    lon, lat, _ = await point_for(sup1)
    cat = await category_id(other)
    photo = await upload_photo(other)
    r = await other.post(
        "/api/cases",
        json={
            "category_id": cat["id"],
            "source": "supervisor",
            "lon": lon,
            "lat": lat,
            "description": "越界上报",
            "attachment_ids": [photo],
        },
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "out_of_grid"
    # The case list of a supervisor holds only cases in their grids.
    r = await sup1.get("/api/cases", params={"limit": 200})
    items = r.json()["items"]
    grid_codes = {c["grid"]["id"] for c in items if c["grid"]}
    r2 = await sup1.get("/api/grids", params={"level": 2})
    allowed = {g["id"] for g in r2.json()["items"] if g["parent_id"] in sup1.user["grid_ids"]}
    assert items and grid_codes  # the demo city has cases in their grids: the check is not vacuous
    assert grid_codes <= allowed
    assert all(c["grid"] is not None for c in items)


async def test_two_dispatchers_at_once_one_wins(login: Any, hub_state: HubState) -> None:
    sup, seat = await login("sup01"), await login("seat1")
    d1, d2 = await login("dispatch1"), await login("dispatch2")
    case = await report(sup)
    r = await seat.act(case["id"], "register")
    version = r.json()["version"]
    deps = (await d1.get("/api/departments")).json()["items"]
    results = await asyncio.gather(
        d1.act(case["id"], "dispatch", version=version, department_id=deps[0]["id"]),
        d2.act(case["id"], "dispatch", version=version, department_id=deps[1]["id"]),
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.json()["error"]["code"] == "version_conflict"
    async with hub_state.pool.acquire() as conn:
        n = await conn.fetchval(
            "SELECT count(*) FROM case_events WHERE case_id = $1 AND action = 'dispatch'",
            case["id"],
        )
    assert n == 1


async def test_many_concurrent_writers_lose_no_update(login: Any, hub_state: HubState) -> None:
    """Eight escalations race on one case: every accepted one is recorded, no version repeats."""
    sup, seat = await login("sup01"), await login("seat1")
    case = await report(sup)
    await seat.act(case["id"], "register")

    async def escalate(i: int) -> int:
        for _ in range(20):
            r = await seat.act(case["id"], "escalate", note=f"督办 {i}")
            if r.status_code == 200:
                return 1
            assert r.status_code == 409
        return 0

    won = sum(await asyncio.gather(*(escalate(i) for i in range(8))))
    detail = (await seat.get(f"/api/cases/{case['id']}")).json()
    assert detail["escalation_count"] == won == 8
    assert [e["version"] for e in detail["timeline"]] == list(range(1, detail["version"] + 1))


async def test_illegal_move_is_refused_and_writes_nothing(login: Any, hub_state: HubState) -> None:
    sup, seat, disp = await login("sup01"), await login("seat1"), await login("dispatch1")
    case = await report(sup)
    before = await counts(hub_state)
    r = await seat.act(case["id"], "close")
    assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"
    assert "待受理" in r.json()["error"]["message"]
    r = await disp.act(case["id"], "register")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_forbidden"
    r = await seat.act(case["id"], "reject", reject_reason="duplicate")
    assert r.status_code == 422
    r = await seat.act(case["id"], "register", version=7)
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_conflict"
    assert await counts(hub_state) == before
    detail = (await seat.get(f"/api/cases/{case['id']}")).json()
    assert detail["version"] == 1 and detail["state"] == "reported"


async def test_reject_as_duplicate_links_original(login: Any, hub_state: HubState) -> None:
    sup, seat = await login("sup01"), await login("seat1")
    first = await report(sup)
    second = await report(sup)
    # The original must be another case that exists: a missing one, or the case itself, is
    # refused before anything is written (the case can still be registered or rejected).
    before = await counts(hub_state)
    for original in (10**12, second["id"]):
        r = await seat.act(
            second["id"],
            "reject",
            reject_reason="duplicate",
            duplicate_of=original,
            note="同一地点重复上报",
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "unknown_case"
        assert r.json()["error"]["details"] == {"duplicate_of": original}
    assert await counts(hub_state) == before
    detail = (await seat.get(f"/api/cases/{second['id']}")).json()
    assert (detail["state"], detail["version"], detail["duplicate_of"]) == ("reported", 1, None)
    r = await seat.act(
        second["id"],
        "reject",
        reject_reason="duplicate",
        duplicate_of=first["id"],
        note="同一地点重复上报",
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "rejected" and r.json()["duplicate_of"] == first["id"]
    assert r.json()["reject_reason"] == "duplicate"
    r = await seat.act(
        second["id"], "reject", reject_reason="duplicate", duplicate_of=first["id"], note="x"
    )
    assert r.status_code == 409  # already rejected: illegal now
    assert r.json()["error"]["code"] == "illegal_transition"


async def test_return_extension_rework_paths(login: Any) -> None:
    sup, seat, disp = await login("sup01"), await login("seat1"), await login("dispatch1")
    case = await report(sup)
    cid = case["id"]
    await seat.act(cid, "register")
    dep_id = (await category_id(seat))["default_department_id"]
    await disp.act(cid, "dispatch", department_id=dep_id)
    dept = await dept_user_for(login, dep_id)
    r = await dept.act(cid, "return", note="不属于本部门职责")
    # Out of the department's sight: an explicit answer, not a case.
    assert r.status_code == 200, r.text
    assert r.json() == {
        "visible": False,
        "id": cid,
        "version": r.json()["version"],
        "state": "returned",
        "state_label": "已回退",
        "message": "已退回指挥中心",
    }
    # After the return the department no longer sees it.
    assert (await dept.get(f"/api/cases/{cid}")).status_code == 404
    await disp.act(cid, "dispatch", department_id=dep_id)
    await dept.act(cid, "accept")
    deadline = (await dept.get(f"/api/cases/{cid}")).json()["deadline"]
    r = await dept.act(
        cid, "request_extension", note="需要协调施工", extension_until="2099-01-01T10:00:00+08:00"
    )
    assert r.status_code == 200, r.text
    r = await disp.act(cid, "approve_extension")
    assert r.status_code == 200 and r.json()["extension_count"] == 1
    assert r.json()["deadline"] != deadline
    photo = await upload_photo(dept, seed=5)
    await dept.act(cid, "feedback", attachment_ids=[photo])
    await seat.act(cid, "request_verify")
    r = await sup.act(cid, "verify_fail", note="仍有垃圾")
    assert (
        r.status_code == 200 and r.json()["state"] == "handling" and r.json()["rework_count"] == 1
    )
    # Rework restarts the clock from the category's time limit: the approved 2099 extension is gone.
    restarted = datetime.fromisoformat(r.json()["deadline"])
    assert datetime.now(UTC) < restarted < datetime(2099, 1, 1, tzinfo=UTC)


async def test_audit_and_actor_recorded(login: Any, hub_state: HubState) -> None:
    sup = await login("sup01")
    case = await report(sup)
    async with hub_state.pool.acquire() as conn:
        actor = await conn.fetchval(
            "SELECT actor_id FROM case_events WHERE case_id = $1", case["id"]
        )
        uploads = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'upload' AND user_id = $1",
            sup.user["id"],
        )
    assert actor == sup.user["id"] and uploads >= 1


async def test_events_are_append_only(hub_state: HubState) -> None:
    async with hub_state.pool.acquire() as conn:
        try:
            await conn.execute("UPDATE case_events SET note = 'x' WHERE seq = 1")
        except asyncpg.InsufficientPrivilegeError:
            pass
        else:
            raise AssertionError("case_events accepted an UPDATE")


async def test_supervisor_confirms_a_report_before_registration(
    login: Any, hub_state: HubState
) -> None:
    """核实: the seat sends a public report to the grid's supervisor, who answers on site through
    the API (属实 with a photo, 不属实 with a note); the seat then registers or rejects it; the
    answers are the supervisor's 核实数 / 按时核实数, timed with CITYHUB_POST_ALLOWANCES."""
    import dataclasses
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    sup, seat = await login("sup01"), await login("seat1")
    lon, lat, grid_id = await point_for(sup)
    cat = await category_id(seat)
    base = datetime(2028, 3, 6, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday, no demo case
    now = [base]
    real_clock, real_settings = hub_state.cases.clock, hub_state.settings
    hub_state.cases.clock = lambda: now[0]

    async def public(**where: Any) -> dict[str, Any]:
        body = {"category_id": cat["id"], "source": "public", "description": "市民反映井盖缺失"}
        r = await seat.post("/api/cases", json={**body, **where})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def at(minutes: int) -> None:
        now[0] = base + timedelta(minutes=minutes)

    try:
        k1 = await public(lon=lon, lat=lat, address="麒麟区南宁北路 90 号")
        k2 = await public(lon=lon, lat=lat)
        assert k1["grid"]["id"] == grid_id and "request_confirm" in k1["allowed_actions"]
        at(5)
        r = await seat.act(k1["id"], "request_confirm")
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["state_label"]) == ("confirming", "核实中")
        assert r.json()["allowed_actions"] == ["escalate", "void", "add_evidence"]
        r = await seat.act(k1["id"], "register")  # the seat waits for the answer
        assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"
        at(10)
        assert (await seat.act(k2["id"], "request_confirm")).status_code == 200
        # The supervisor's 待核实 and the list agree.
        queues = (await sup.get("/api/queues")).json()
        (mine,) = [q for q in queues["items"] if q["name"] == "to_confirm"]
        assert mine["label"] == "待核实" and mine["states"] == ["confirming"]
        listed = (await sup.get("/api/cases", params={"state": "confirming"})).json()["items"]
        assert {k1["id"], k2["id"]} <= {c["id"] for c in listed}
        assert mine["count"] == len(listed)
        case = (await sup.get(f"/api/cases/{k1['id']}")).json()
        assert case["allowed_actions"] == ["confirm_pass", "confirm_fail", "add_evidence"]

        at(50)  # k1: 不属实 after 45 min (late at the default 30 min); the note is required
        r = await sup.act(k1["id"], "confirm_fail")
        assert r.status_code == 422 and r.json()["error"]["code"] == "note_required"
        assert "核实不属实" in r.json()["error"]["message"]
        r = await sup.act(k1["id"], "confirm_fail", note="现场井盖完好，未发现问题")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "reported"
        at(20)  # k2: 属实 with a site photo after 10 min
        photo = await upload_photo(sup, "site.png", seed=3)
        r = await sup.act(k2["id"], "confirm_pass", attachment_ids=[photo])
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["state"] == "reported"
        last = done["timeline"][-1]
        assert (last["action"], last["action_label"]) == ("confirm_pass", "核实属实")
        assert last["data"] == {"confirmed": True} and last["attachments"][0]["id"] == photo
        at(55)
        assert (await seat.act(k2["id"], "register")).status_code == 200
        r = await seat.act(k1["id"], "reject", note="核实不属实", reject_reason="invalid")
        assert r.status_code == 200 and r.json()["state"] == "rejected"

        # A report with no location has no grid: nobody to send it to.
        k3 = await public(address="麒麟区某小区门口")
        assert k3["grid"] is None and "request_confirm" not in k3["allowed_actions"]
        r = await seat.act(k3["id"], "request_confirm")
        assert r.status_code == 409 and r.json()["error"]["code"] == "no_grid"

        async def own_row() -> dict[str, Any]:
            r = await sup.get(
                "/api/evaluation/posts", params={"post": "supervisor", "day": "2028-03-08"}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            labels = {c["key"]: c["label"] for c in body["columns"]}
            assert labels["confirm_on_time_rate"] == "按时核实率"
            assert labels["confirmed"] == "核实数" and labels["confirmed_on_time"] == "按时核实数"
            (row,) = body["rows"]
            return dict(row)

        async def drill(figure: str) -> list[int]:
            r = await sup.get(
                "/api/evaluation/cases",
                params={
                    "table": "posts",
                    "post": "supervisor",
                    "key": sup.user["id"],
                    "figure": figure,
                    "day": "2028-03-08",
                },
            )
            assert r.status_code == 200, r.text
            return sorted(c["id"] for c in r.json()["cases"])

        row = await own_row()
        assert (row["counts"]["confirmed"], row["counts"]["confirmed_on_time"]) == (2, 1)
        assert row["rates"]["confirm_on_time_rate"]["value"] == 0.5
        assert await drill("confirmed_on_time") == [k2["id"]]
        # The city allows an hour: both answers are on time.
        hub_state.settings = dataclasses.replace(real_settings, post_allowances="confirm=60")
        row = await own_row()
        assert row["counts"]["confirmed_on_time"] == 2
        assert await drill("confirmed_on_time") == sorted([k1["id"], k2["id"]])
    finally:
        hub_state.cases.clock = real_clock
        hub_state.settings = real_settings
