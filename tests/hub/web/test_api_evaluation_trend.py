"""The trend over a custom range (``/api/evaluation/trend?start=&end=``) against a real PostgreSQL
and the hand-counted week of ``test_api_evaluation`` (three cases reported Monday 2028-03-06): up
to 31 days one point per day, beyond that 7-day spans from the first day (a calendar week labelled
as one), at most 53; the points tile the range exactly and their counts add up to the range's."""

from __future__ import annotations

from datetime import date, datetime
from itertools import pairwise
from typing import Any

from tests.conftest import Api
from tests.hub.web.test_api_evaluation import Week, week

__all__ = ["week"]


async def trend(api: Any, **params: Any) -> dict[str, Any]:
    r = await api.get("/api/evaluation/trend", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def tiles(body: dict[str, Any]) -> None:
    """The points cover the asked range, each starting where the one before ended."""
    pts = body["points"]
    assert pts[0]["period"]["start"] == body["period"]["start"]
    assert pts[-1]["period"]["end"] == body["period"]["end"]
    for a, b in pairwise(pts):
        assert a["period"]["end"] == b["period"]["start"]


def local_day(iso: str) -> date:
    return datetime.fromisoformat(iso).date()


async def test_a_week_long_range_is_by_day(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    body = await trend(u["viewer"], start="2028-03-06", end="2028-03-13")
    assert body["bucket"] == "day" and body["period"]["kind"] is None
    tiles(body)
    assert [p["period"]["label"] for p in body["points"]] == [
        f"2028年3月{d}日" for d in range(6, 13)
    ]
    assert [p["period"]["kind"] for p in body["points"]] == ["day"] * 7
    # All three reported on Monday; on Monday the closed case and the urgent one due 11:10 are due.
    assert [p["counts"]["accepted"] for p in body["points"]] == [3, 0, 0, 0, 0, 0, 0]
    assert [p["counts"]["due"] for p in body["points"]] == [2, 0, 0, 0, 0, 0, 0]
    monday = body["points"][0]
    assert monday["rates"]["on_time_rate"]["text"] == "50.00%"
    r = await u["viewer"].get("/api/evaluation/city", params={"period": "day", "day": "2028-03-06"})
    city = r.json()
    assert monday["counts"] == city["counts"] and monday["score"]["total"] == city["score"]["total"]


async def test_a_longer_range_is_by_week(week: tuple[Week, dict[str, Api]]) -> None:
    _, u = week
    # 35 days from a Monday: five calendar weeks, labelled as weeks.
    body = await trend(u["viewer"], start="2028-02-28", end="2028-04-03")
    assert body["bucket"] == "week"
    tiles(body)
    assert [p["period"]["label"] for p in body["points"]] == [
        "2028年第9周 (2月28日–3月5日)",
        "2028年第10周 (3月6日–3月12日)",
        "2028年第11周 (3月13日–3月19日)",
        "2028年第12周 (3月20日–3月26日)",
        "2028年第13周 (3月27日–4月2日)",
    ]
    assert [p["counts"]["accepted"] for p in body["points"]] == [0, 3, 0, 0, 0]
    # 40 days from a Wednesday: 7-day spans from the first day, the last one of 5 days.
    body = await trend(u["viewer"], start="2028-03-01", end="2028-04-10")
    tiles(body)
    spans = [
        (local_day(p["period"]["start"]), local_day(p["period"]["end"])) for p in body["points"]
    ]
    assert [(b - a).days for a, b in spans] == [7, 7, 7, 7, 7, 5]
    assert body["points"][0]["period"]["label"] == "2028年3月1日–3月7日"
    assert body["points"][-1]["period"]["label"] == "2028年4月5日–4月9日"
    assert [p["counts"]["accepted"] for p in body["points"]] == [3, 0, 0, 0, 0, 0]
    # The longest range (370 days): 53 points, no more.
    body = await trend(u["viewer"], start="2027-03-01", end="2028-03-05")
    tiles(body)
    assert len(body["points"]) == 53 and body["bucket"] == "week"


async def test_a_departments_range_and_refusals(week: tuple[Week, dict[str, Api]]) -> None:
    w, u = week
    body = await trend(u["dept_b"], start="2028-03-06", end="2028-03-09")
    assert [p["counts"]["dispatched"] for p in body["points"]] == [1, 0, 0]
    assert [p["counts"]["accepted"] for p in body["points"]] == [0, 0, 0]  # the centre's
    for params, field in (
        ({"start": "2028-03-06", "end": "2028-03-13", "count": "3"}, "count"),
        ({"start": "2027-01-01", "end": "2028-03-01"}, "end"),
        ({"start": "2028-03-06"}, "end"),
    ):
        r = await u["viewer"].get("/api/evaluation/trend", params=params)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["details"]["field"] == field and err["code"] == "bad_period"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in err["message"]), err["message"]
    r = await u["dept_b"].get(
        "/api/evaluation/trend",
        params={"start": "2028-03-06", "end": "2028-03-09", "department_id": w.dep_a},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "other_department"
