"""The voice warning on a case's detail pane (realtime_ui/static/detail-warning.js) in Debian's
Chromium through Playwright, against the shared demo hub (its 22 simulated loudspeakers at grid
centres and three text-to-speech clips): a seat plays a clip at the speaker nearest to a case and
sees which speaker and how far, the outcome arriving live (播放中 from the warnings channel, then
已送达) and the warning in the case's list with who, what and when in the city's time; 停止 ends a
running one; a case with no speaker within 2 km gets the hub's own refusal; the big screen's viewer
sees the list and no control.

Cases are made over the API (a seat's bearer token) at a demo speaker's place, a few metres off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.ui.test_ui_detail import PANE, City, Session

pytestmark = pytest.mark.browser

CITY = ZoneInfo("Asia/Shanghai")
PLAY_MS = 60_000  # ring, a few seconds of RTP per repeat, BYE
SECTION = f'{PANE} [data-testid="case-warnings"]'


@pytest.fixture(scope="module")
def city(live_hub: Any) -> Iterator[City]:
    c = City(live_hub.base_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def session(browser: Any, live_hub: Any) -> Iterator[Any]:
    made: list[Session] = []

    def _open(username: str, **kw: Any) -> Session:
        s = Session(browser, live_hub.base_url, username, **kw)
        made.append(s)
        return s

    try:
        yield _open
    finally:
        for s in made:
            s.close()


def wait_items(city: City, path: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The demo's speakers or clips once the voice subsystem has made them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = city.user("seat1").get(path)["items"]
        if items:
            return list(items)
        time.sleep(0.5)
    raise AssertionError(f"{path} stayed empty")


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The hub's distance (storage/speakers.py nearest_speaker: equirectangular at the case)."""
    k = 111_320.0
    return math.hypot((lon2 - lon1) * k * math.cos(math.radians(lat1)), (lat2 - lat1) * k)


def case_at(city: City, lon: float | None, lat: float | None) -> dict[str, Any]:
    city.seq += 1
    r = city.user("seat2").http.post(
        "/api/cases",
        json={
            "category_id": city.category()["id"],
            "source": "video" if lon is not None else "hotline",
            "description": f"视频巡查发现占道经营（喊话测试 {city.seq}）",
            "address": f"麒麟区南宁北路 {300 + city.seq} 号",
            "lon": lon,
            "lat": lat,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def case_near_speaker(city: City, n: int = 0) -> tuple[dict[str, Any], dict[str, Any], float]:
    """A new case about 60 m north-east of the n-th located demo speaker, which must be nearest."""
    speakers = [s for s in wait_items(city, "/api/speakers") if s["location"] and s["active"]]
    sp = speakers[n % len(speakers)]
    lon, lat = sp["location"]["lon"] + 0.0004, sp["location"]["lat"] + 0.0003
    nearest = min(
        speakers,
        key=lambda s: (metres(lon, lat, s["location"]["lon"], s["location"]["lat"]), s["id"]),
    )
    assert nearest["id"] == sp["id"], "the demo speakers stand further apart than this"
    return (
        case_at(city, lon, lat),
        sp,
        metres(lon, lat, sp["location"]["lon"], sp["location"]["lat"]),
    )


def city_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(CITY).strftime("%Y-%m-%d %H:%M:%S")


def seen_outcomes(page: Any) -> list[str]:
    return list(page.evaluate("window.__outcomes"))


WATCH_OUTCOMES = """() => {
  window.__outcomes = [];
  const note = () => {
    for (const el of document.querySelectorAll('[data-testid="cw-target"]')) {
      const o = el.dataset.outcome;
      if (window.__outcomes[window.__outcomes.length - 1] !== o) window.__outcomes.push(o);
    }
  };
  new MutationObserver(note).observe(document.body,
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-outcome"] });
}"""


# -- tests -------------------------------------------------------------------------------------


def test_seat_plays_at_nearest_speaker_and_viewer_sees_the_log(session: Any, city: City) -> None:
    clips = wait_items(city, "/api/clips")
    case, speaker, distance = case_near_speaker(city, 3)
    s = session("seat1")
    page = s.page
    s.open_case(case["id"])
    section = page.locator(SECTION)
    section.locator('[data-testid="cw-empty"]').wait_for()
    assert "本案件暂无喊话记录" in section.inner_text()

    # Every clip of the library is offered; repeats 1 to 3.
    options = page.locator('[data-testid="cw-clip"] option')
    assert options.count() == len(clips)
    clip = clips[-1]
    page.select_option('[data-testid="cw-clip"]', str(clip["id"]))
    repeats = page.locator('[data-testid="cw-repeat"] option').evaluate_all(
        "os => os.map(o => o.value)"
    )
    assert repeats == ["1", "2", "3"]
    page.evaluate(WATCH_OUTCOMES)
    page.click('[data-testid="cw-play"]')

    result = page.locator(f'{SECTION} [data-testid="cw-result"]')
    result.wait_for()
    assert result.locator('[data-testid="cw-speaker"]').inner_text() == speaker["name"]
    shown = result.locator('[data-testid="cw-distance"]').inner_text()
    assert shown.endswith(" 米"), shown
    assert abs(int(shown[:-2]) - distance) <= 1, (shown, distance)
    assert result.get_attribute("data-state") == "running"
    assert result.locator('[data-testid="cw-stop"]').is_visible()

    # The outcome moves on live, to 已送达, and the running warning ends.
    target = result.locator(
        f'[data-testid="cw-target"][data-speaker-id="{speaker["id"]}"][data-outcome="delivered"]'
    )
    target.wait_for(timeout=PLAY_MS)
    assert "已送达" in target.inner_text()
    page.wait_for_selector(
        f'{SECTION} [data-testid="cw-result"][data-state="done"]', timeout=PLAY_MS
    )
    assert result.locator('[data-testid="cw-stop"]').count() == 0
    outcomes = seen_outcomes(page)
    assert "playing" in outcomes, outcomes  # only the warnings channel says 播放中
    assert outcomes[-1] == "delivered", outcomes
    order = ["pending", "playing", "delivered"]
    assert [order.index(o) for o in outcomes] == sorted(order.index(o) for o in outcomes), outcomes

    # The case's list, as the hub has it: who, which clip, when (city time), the outcome.
    (w,) = city.user("seat2").get(f"/api/cases/{case['id']}/warnings")["items"]
    assert w["state"] == "done" and w["clip"]["id"] == clip["id"]
    item = page.locator(f'{SECTION} [data-testid="cw-item"][data-id="{w["id"]}"]')
    item.wait_for()
    page.wait_for_selector(f'{SECTION} [data-testid="cw-item"][data-state="done"]')
    assert item.locator('[data-testid="cw-item-clip"]').inner_text() == clip["name"]
    assert item.locator('[data-testid="cw-item-who"]').inner_text() == w["started_by"]["name"]
    assert item.locator('[data-testid="cw-item-time"]').inner_text() == city_time(w["started_at"])
    t = item.locator('[data-testid="cw-item-target"]')
    assert t.count() == 1 and t.get_attribute("data-outcome") == "delivered"
    assert speaker["name"] in t.inner_text() and "已送达" in t.inner_text()
    assert page.locator(f'{SECTION} [data-testid="cw-empty"]').count() == 0
    assert s.errors == []

    # The big screen's viewer: the same list, and nothing that plays or stops.
    v = session("bigscreen")
    v.open_case(case["id"])
    vitem = v.page.locator(f'{SECTION} [data-testid="cw-item"][data-id="{w["id"]}"]')
    vitem.wait_for()
    assert vitem.get_attribute("data-state") == "done"
    assert "已送达" in vitem.inner_text()
    for testid in ("cw-control", "cw-clip", "cw-play", "cw-stop", "cw-result"):
        assert v.page.locator(f'{PANE} [data-testid="{testid}"]').count() == 0, testid
    assert "在最近的喇叭播放" not in v.detail_text()
    assert v.errors == []


def test_stop_ends_a_running_warning(session: Any, city: City) -> None:
    clips = wait_items(city, "/api/clips")
    longest = max(clips, key=lambda c: c["duration_ms"])
    case, speaker, _distance = case_near_speaker(city, 7)
    s = session("dispatch1")
    page = s.page
    s.open_case(case["id"])
    page.locator(f'{SECTION} [data-testid="cw-empty"]').wait_for()
    page.select_option('[data-testid="cw-clip"]', str(longest["id"]))
    page.select_option('[data-testid="cw-repeat"]', "3")
    page.click('[data-testid="cw-play"]')
    result = page.locator(f'{SECTION} [data-testid="cw-result"]')
    result.locator('[data-testid="cw-target"][data-outcome="playing"]').wait_for(timeout=PLAY_MS)
    # Playing: the button says so rather than starting a second one.
    assert page.locator('[data-testid="cw-play"]').is_disabled()
    result.locator('[data-testid="cw-stop"]').click()
    page.wait_for_selector(
        f'{SECTION} [data-testid="cw-result"][data-state="stopped"]', timeout=PLAY_MS
    )
    assert result.locator('[data-testid="cw-stop"]').count() == 0
    assert "已停止" in result.inner_text()
    stopped = result.locator(f'[data-testid="cw-target"][data-speaker-id="{speaker["id"]}"]')
    assert stopped.get_attribute("data-outcome") == "stopped"
    (w,) = city.user("seat2").get(f"/api/cases/{case['id']}/warnings")["items"]
    assert w["state"] == "stopped" and w["repeat"] == 3
    item = page.locator(f'{SECTION} [data-testid="cw-item"][data-id="{w["id"]}"]')
    page.wait_for_selector(
        f'{SECTION} [data-testid="cw-item"][data-id="{w["id"]}"][data-state="stopped"]'
    )
    assert "（3 次）" in item.locator('[data-testid="cw-item-clip"]').inner_text()
    assert page.locator('[data-testid="cw-play"]').is_enabled()
    assert s.errors == []


def test_no_speaker_within_2_km_is_said(session: Any, city: City) -> None:
    """The demo city has a speaker within 2 km of every place, so the admin switches off those
    around one (and back on afterwards); a case without a location gets no control at all."""
    speakers = [s for s in wait_items(city, "/api/speakers") if s["location"] and s["active"]]
    wait_items(city, "/api/clips")
    here = speakers[11]["location"]
    around = [
        s["id"]
        for s in speakers
        if metres(here["lon"], here["lat"], s["location"]["lon"], s["location"]["lat"]) <= 2100
    ]
    admin = city.user("admin")
    case = case_at(city, here["lon"], here["lat"])
    unplaced = case_at(city, None, None)
    try:
        for sid in around:
            r = admin.http.patch(f"/api/speakers/{sid}", json={"active": False})
            assert r.status_code == 200, r.text
        s = session("seat1")
        page = s.page
        s.open_case(case["id"])
        page.locator(f'{SECTION} [data-testid="cw-empty"]').wait_for()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=cw-play]') && "
            "!document.querySelector('[data-testid=cw-play]').disabled"
        )
        page.click('[data-testid="cw-play"]')
        err = page.locator(f'{SECTION} [data-testid="cw-error"]')
        err.wait_for()
        assert err.inner_text() == "案件位置 2000 米内没有启用的喇叭"
        assert page.locator(f'{SECTION} [data-testid="cw-result"]').count() == 0
        assert page.locator(f'{SECTION} [data-testid="cw-empty"]').count() == 1
        # The refused request is the only console error (Chromium logs the 409).
        assert all("409" in e for e in s.errors), s.errors
    finally:
        for sid in around:
            admin.http.patch(f"/api/speakers/{sid}", json={"active": True})

    s.open_case(unplaced["id"])
    page.wait_for_selector(f'{SECTION} [data-testid="cw-no-location"]')
    assert page.locator(f'{PANE} [data-testid="cw-control"]').count() == 0


def test_warning_played_elsewhere_shows_live_and_its_end(session: Any, city: City) -> None:
    """A warning another seat plays for this case (from the speaker console, POST /api/warnings
    with case_id) joins the open pane's list live, its outcome changes in place, and the final
    state is there as soon as the hub has it (read when it leaves the channel, not by a reload
    of the page or the list's slow poll)."""
    clips = wait_items(city, "/api/clips")
    case, speaker, _distance = case_near_speaker(city, 15)
    s = session("seat1")
    page = s.page
    s.open_case(case["id"])
    page.locator(f'{SECTION} [data-testid="cw-empty"]').wait_for()
    page.evaluate("window.__sameDocument = true")
    seat2 = city.user("seat2")
    r = seat2.http.post(
        "/api/warnings",
        json={"clip_id": clips[0]["id"], "speaker_ids": [speaker["id"]], "case_id": case["id"]},
    )
    assert r.status_code == 202, r.text
    wid = r.json()["id"]
    item = page.locator(f'{SECTION} [data-testid="cw-item"][data-id="{wid}"]')
    item.wait_for(timeout=PLAY_MS)
    assert (
        item.locator('[data-testid="cw-item-who"]').inner_text() == r.json()["started_by"]["name"]
    )
    item.locator('[data-testid="cw-item-target"][data-outcome="playing"]').wait_for(timeout=PLAY_MS)
    assert item.get_attribute("data-state") == "running"
    # No control of this page plays it: nothing to stop here, the list shows it.
    assert page.locator(f'{SECTION} [data-testid="cw-result"]').count() == 0

    deadline = time.monotonic() + PLAY_MS / 1000
    while seat2.get(f"/api/warnings/{wid}")["state"] == "running":
        assert time.monotonic() < deadline, "the warning did not end"
        time.sleep(0.2)
    page.wait_for_selector(
        f'{SECTION} [data-testid="cw-item"][data-id="{wid}"][data-state="done"]', timeout=3000
    )
    assert item.locator('[data-testid="cw-item-target"]').get_attribute("data-outcome") == (
        "delivered"
    )
    assert page.evaluate("window.__sameDocument") is True
    assert s.errors == []
