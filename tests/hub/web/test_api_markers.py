"""GET /api/cases/markers against a real PostgreSQL: every open case a user may see in one answer,
the marker fields and no personal data, the case list's scope (department, supervisor), the countdown
level the case summary gives, and the refusals (401, 403, 400 in Chinese)."""

from __future__ import annotations

from typing import Any

import httpx

from hub.core import workflow as wf
from hub.state import HubState
from tests.conftest import Api

OPEN = sorted(s.value for s in wf.OPEN_STATES)
MARKER_KEYS = {
    "id",
    "case_no",
    "version",
    "lon",
    "lat",
    "state",
    "category_id",
    "department_id",
    "level",
    "urgent",
    "overdue",
    "reported_at",
}
PERSONAL = ("contact_phone", "contact_name", "reporter", "description", "address")


async def listed(api: Api) -> dict[int, dict[str, Any]]:
    """Every open case the user's case list shows, paging GET /api/cases."""
    out: dict[int, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"state": OPEN, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        r = await api.get("/api/cases", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        out.update({c["id"]: c for c in body["items"]})
        cursor = body["next_cursor"]
        if not cursor:
            return out


async def markers(api: Api, **params: Any) -> dict[str, Any]:
    r = await api.get("/api/cases/markers", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _level(summary: dict[str, Any]) -> str | None:
    cd = summary["countdown"]
    if cd is None:
        return None
    return "paused" if cd["paused"] else str(cd["level"])


async def test_every_open_case_in_one_answer_without_personal_data(
    login: Any, hub_state: HubState
) -> None:
    viewer = await login("bigscreen")
    body = await markers(viewer)
    want = await listed(viewer)
    items = body["items"]
    assert len(items) > 50  # the demo city has open cases
    assert {m["id"] for m in items} == set(want)
    assert body["truncated"] is False
    for m in items:
        assert set(m) == MARKER_KEYS
        c = want[m["id"]]
        assert (m["case_no"], m["state"], m["version"]) == (c["case_no"], c["state"], c["version"])
        # Six decimals (about 0.1 m) are enough for a marker.
        assert abs(m["lon"] - c["lon"]) < 1e-6 and abs(m["lat"] - c["lat"]) < 1e-6
        assert m["category_id"] == c["category"]["id"]
        assert body["categories"][str(m["category_id"])] == c["category"]["name"]
        dep = c["department"]
        assert m["department_id"] == (dep["id"] if dep else None)
        if dep:
            assert body["departments"][str(dep["id"])] == dep["name"]
        assert m["urgent"] == c["is_urgent"] and m["overdue"] == c["overdue"]
        assert m["level"] == _level(c), (m, c["countdown"])
    levels = {m["level"] for m in items}
    assert {"normal", "overdue"} <= levels  # the sample has running and overdue clocks
    text = str(body)
    for key in PERSONAL:
        assert f"'{key}'" not in text
    async with hub_state.pool.acquire() as conn:
        phones = await conn.fetchval(
            "SELECT array_agg(contact_phone) FROM cases"
            " WHERE state = ANY($1::text[]) AND contact_phone <> ''",
            OPEN,
        )
    assert phones and not any(p in text for p in phones)  # hotline cases carry a phone


async def test_department_and_supervisor_see_their_scope(login: Any) -> None:
    viewer = await login("bigscreen")
    everything = {m["id"] for m in (await markers(viewer))["items"]}
    dept = await login("dept01")
    mine = await markers(dept)
    assert mine["items"], "dept01 has open cases in the demo city"
    assert {m["department_id"] for m in mine["items"]} == {dept.user["department_id"]}
    assert {m["id"] for m in mine["items"]} == set(await listed(dept))
    assert set(mine["departments"]) == {str(dept.user["department_id"])}
    assert {m["id"] for m in mine["items"]} < everything

    sup = await login("sup01")
    theirs = await markers(sup)
    assert {m["id"] for m in theirs["items"]} == set(await listed(sup))
    assert {m["id"] for m in theirs["items"]} < everything


async def test_limit_truncates_newest_first(login: Any) -> None:
    viewer = await login("bigscreen")
    full = (await markers(viewer))["items"]
    some = await markers(viewer, limit=5)
    assert some["truncated"] is True
    assert [m["id"] for m in some["items"]] == [m["id"] for m in full[:5]]


async def test_refusals(client: httpx.AsyncClient, login: Any) -> None:
    r = await client.get("/api/cases/markers")
    assert r.status_code == 401
    assert r.json()["error"]["message"]
    agent = await login("agent1")
    r = await agent.get("/api/cases/markers")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "role_forbidden"
    viewer = await login("bigscreen")
    for bad in ({"limit": 0}, {"limit": "很多"}, {"limit": 10**9}):
        r = await viewer.get("/api/cases/markers", params=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid_field"
        msg = r.json()["error"]["message"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in msg), msg
