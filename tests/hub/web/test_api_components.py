"""The component registry: standard 16-digit ids, lookups, and reports located by a component."""

from __future__ import annotations

from typing import Any

from hub.core.codes import ComponentId, GridCode
from hub.core.errors import ValidationFailed
from tests.hub.web.test_api_input import assert_error


def test_component_id_parses_the_standard_layout() -> None:
    cid = ComponentId.parse("3205080101000001")  # 姑苏区 / 公用设施 / 上水井盖 / 000001
    assert (cid.county, cid.major, cid.minor, cid.serial) == ("320508", "01", "01", "000001")
    assert cid.class_code == "0101" and str(cid) == "3205080101000001"
    for bad in [
        "320508010100000",
        "32050801010000011",
        "320508010100000x",
        "３２０５０８０１０１０００００１",
        "",
    ]:
        try:
            ComponentId.parse(bad)
        except ValidationFailed as exc:
            assert exc.code == "bad_component_id"
        else:
            raise AssertionError(bad)
    g = GridCode.parse("530302001001001")
    assert (g.county, g.street, g.community, g.sequence) == ("530302", "001", "001", "001")
    assert GridCode.parse("530302001").is_street


async def test_components_listed_and_reported(login: Any) -> None:
    seat = await login("seat1")
    r = await seat.get("/api/components", params={"limit": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 5 and body["next_after"] == body["items"][-1]["id"]
    first = body["items"][0]
    assert first["id"].startswith("5303020101") and first["class_code"] == "0101"
    assert first["category"]["name"] == "上水井盖"
    nxt = (
        await seat.get("/api/components", params={"limit": 5, "after": body["next_after"]})
    ).json()["items"]
    assert nxt[0]["id"] > body["items"][-1]["id"]
    grid = (await seat.get(f"/api/components/{first['id']}")).json()["grid_id"]
    in_grid = (await seat.get("/api/components", params={"grid_id": grid, "limit": 500})).json()[
        "items"
    ]
    assert in_grid and all(c["grid_id"] == grid for c in in_grid)
    # A path that is not a component code (the documented pattern) names nothing: 404.
    assert_error(await seat.get("/api/components/530302010199999x"), 404, "not_found")
    assert_error(await seat.get("/api/components/5303020101999999"), 404)
    assert_error(
        await seat.get("/api/components", params={"after": "../../etc"}), 400, "invalid_field"
    )

    # A report naming a component is located by it (no coordinates needed).
    r = await seat.post(
        "/api/cases",
        json={
            "category_id": first["category"]["id"],
            "source": "public",
            "component_id": first["id"],
            "description": "井盖破损",
        },
    )
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["component_id"] == first["id"]
    assert (case["lon"], case["lat"]) == (first["lon"], first["lat"]) and case["grid"]["id"] == grid
    r = await seat.post(
        "/api/cases",
        json={
            "category_id": first["category"]["id"],
            "source": "public",
            "component_id": "5303020101999999",
            "address": "x",
        },
    )
    assert_error(r, 422, "unknown_component")
