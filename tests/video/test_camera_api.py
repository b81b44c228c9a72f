"""The camera registry over HTTP (``video.routes``), through the ``client`` fixture: roles enforced,
credentials never in a response or an audit row, grid, street and nearest speaker resolved from the
location, status from the ``cameras`` state channel, the video service told of every write, and
CSV import through the CLI's function and the CLI itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.demo import DEMO_USERS
from hub.demo.geography import grid_lattice
from hub.state import HubState
from storage.db import connect
from tests.conftest import Api
from video.cli import import_cameras

SECRET = "Cam-s3cret"


def inside_a_demo_grid(index: int = 0) -> tuple[float, float, str]:
    cell = [c for c in grid_lattice() if c.level == 2][index]
    return (cell.west + cell.east) / 2, (cell.south + cell.north) / 2, cell.code


def users_of(*roles: str) -> list[str]:
    """One demo user of each role."""
    return [next(n for n, (r, _pw) in DEMO_USERS.items() if r == role) for role in roles]


def assert_no_secret(r: httpx.Response) -> None:
    assert SECRET not in r.text
    assert "password" not in r.text and "username" not in r.text and "admin@" not in r.text


async def delete(api: Api, url: str) -> httpx.Response:
    return await api.client.delete(url, headers=api.headers)


async def audit_rows(h: HubState) -> list[tuple[str, str, str]]:
    async with connect(h.pool) as conn:
        rows = await conn.fetch(
            "SELECT action, target, detail::text FROM audit_log WHERE action LIKE 'camera%'"
            " ORDER BY id"
        )
    return [(r["action"], r["target"], r["detail"]) for r in rows]


class FakeVideo:
    def __init__(self) -> None:
        self.changes = 0

    def cameras_changed(self) -> None:
        self.changes += 1


async def test_cameras_roles_credentials_and_location(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    admin = await login("admin")
    viewer = await login("bigscreen")
    lon, lat, code = inside_a_demo_grid()
    video = FakeVideo()
    hub_state.services["video"] = video
    r = await admin.post(
        "/api/speakers",
        json={"name": "近喇叭", "uri": "sip:1@127.0.0.1", "location": {"lon": lon, "lat": lat}},
    )
    assert r.status_code == 201, r.text
    speaker_id = r.json()["id"]
    body = {
        "name": "东门路口",
        "url": f"rtsp://admin:{SECRET}@127.0.0.1:8554/cam01",
        "sub_url": "rtsp://127.0.0.1:8554/cam01-sub",
        "location": {"lon": lon + 0.0005, "lat": lat},
        "tags": ["路口", "夜间"],
    }
    r = await viewer.post("/api/cameras", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_forbidden"
    r = await admin.post("/api/cameras", json=body)
    assert r.status_code == 201, r.text
    assert_no_secret(r)
    cam = r.json()
    grid = next(g for g in hub_state.catalog.grids.values() if g.code == code)
    street = hub_state.catalog.grids[grid.parent_id or 0]
    assert cam["url"] == "rtsp://127.0.0.1:8554/cam01" and cam["has_credentials"]
    assert cam["sub_url"] == "rtsp://127.0.0.1:8554/cam01-sub"
    assert cam["grid"] == {"id": grid.id, "name": grid.name, "code": code}
    assert cam["street"] == {"id": street.id, "name": street.name}
    assert cam["speaker_id"] == speaker_id and cam["speaker_auto"]  # ~50 m away
    assert cam["tags"] == ["路口", "夜间"] and cam["active"] and not cam["pinned"]
    assert cam["status"] == {"state": "unknown", "reason": None, "message": None, "since": None}
    assert video.changes == 1
    cid = cam["id"]
    async with connect(hub_state.pool) as conn:
        row = await conn.fetchrow("SELECT main_url, username, password FROM cameras")
    assert tuple(row) == ("rtsp://127.0.0.1:8554/cam01", "admin", SECRET)
    # Refusals: same name 409; bad URL, unknown speaker, differing credentials 422; unknown
    # field 400; none of them echoes the secret.
    r = await admin.post("/api/cameras", json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "name_taken"
    r = await admin.post("/api/cameras", json={**body, "name": "x", "url": f"http://a:{SECRET}@h"})
    assert r.status_code == 422 and r.json()["error"]["details"] == {"field": "url"}
    assert_no_secret(r)
    r = await admin.post("/api/cameras", json={**body, "name": "y", "speaker_id": 999_999})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_speaker"
    r = await admin.post(
        "/api/cameras", json={**body, "name": "z", "sub_url": "rtsp://other:pw@127.0.0.1/s"}
    )
    assert r.status_code == 422 and r.json()["error"]["details"] == {"field": "sub_url"}
    r = await admin.post("/api/cameras", json={**body, "name": "w", "colour": "red"})
    assert r.status_code == 400
    # Outside the city, without a speaker: no grid, no street; explicit null: no speaker.
    r = await admin.post(
        "/api/cameras",
        json={
            "name": "远处",
            "url": "rtsp://127.0.0.1/far",
            "location": {"lon": 116.4, "lat": 39.9},
        },
    )
    assert r.status_code == 201, r.text
    far = r.json()
    assert far["grid"] is None and far["street"] is None and far["speaker_id"] is None
    assert not far["has_credentials"] and far["sub_url"] is None
    r = await admin.post(
        "/api/cameras",
        json={
            "name": "无喇叭",
            "url": "rtsp://127.0.0.1/n",
            "location": {"lon": lon, "lat": lat},
            "speaker_id": None,
        },
    )
    assert r.status_code == 201 and r.json()["speaker_id"] is None
    assert not r.json()["speaker_auto"] and r.json()["grid"]["code"] == code
    # Every reader sees the list and one camera, without credentials; other roles do not.
    for who in users_of("seat", "dispatcher", "viewer", "admin"):
        api = await login(who)
        r = await api.get("/api/cameras")
        assert r.status_code == 200, (who, r.text)
        assert_no_secret(r)
        assert [c["name"] for c in r.json()["items"]] == ["东门路口", "远处", "无喇叭"]
        r = await api.get(f"/api/cameras/{cid}")
        assert r.status_code == 200 and r.json() == cam
    for who in users_of("department", "supervisor", "agent"):
        api = await login(who)
        assert (await api.get("/api/cameras")).status_code == 403, who
        assert (await api.get(f"/api/cameras/{cid}")).status_code == 403, who
    r = await viewer.get("/api/cameras/999999")
    assert r.status_code == 404
    # PATCH: a URL without credentials keeps them; one with new ones replaces them; moving the
    # camera re-resolves its grid and automatic speaker.
    r = await viewer.patch(f"/api/cameras/{cid}", json={"pinned": True})
    assert r.status_code == 403
    r = await admin.patch(
        f"/api/cameras/{cid}", json={"url": "rtsp://127.0.0.1:8554/cam01b", "pinned": True}
    )
    assert r.status_code == 200, r.text
    assert_no_secret(r)
    assert r.json()["has_credentials"] and r.json()["pinned"]
    assert r.json()["url"] == "rtsp://127.0.0.1:8554/cam01b" and r.json()["tags"] == [
        "路口",
        "夜间",
    ]
    r = await admin.patch(
        f"/api/cameras/{cid}", json={"url": f"rtsp://ops:{SECRET}2@127.0.0.1:8554/cam01"}
    )
    assert r.status_code == 200 and SECRET not in r.text
    async with connect(hub_state.pool) as conn:
        row = await conn.fetchrow("SELECT username, password FROM cameras WHERE id = $1", cid)
    assert tuple(row) == ("ops", SECRET + "2")
    lon2, lat2, code2 = inside_a_demo_grid(30)
    r = await admin.patch(f"/api/cameras/{cid}", json={"location": {"lon": lon2, "lat": lat2}})
    assert r.status_code == 200
    assert r.json()["grid"]["code"] == code2 and r.json()["speaker_id"] is None
    r = await admin.patch(
        f"/api/cameras/{cid}", json={"speaker_id": speaker_id, "username": None, "sub_url": None}
    )
    assert r.status_code == 200 and r.json()["speaker_id"] == speaker_id
    assert not r.json()["speaker_auto"] and not r.json()["has_credentials"]
    assert r.json()["sub_url"] is None
    r = await admin.patch(f"/api/cameras/{cid}", json={"name": "远处"})
    assert r.status_code == 409
    r = await admin.patch(f"/api/cameras/{cid}", json={"password": "p"})
    assert r.status_code == 422 and r.json()["error"]["details"] == {"field": "username"}
    r = await admin.patch("/api/cameras/999999", json={"active": False})
    assert r.status_code == 404
    # DELETE.
    r = await delete(viewer, f"/api/cameras/{cid}")
    assert r.status_code == 403
    r = await delete(admin, f"/api/cameras/{cid}")
    assert r.status_code == 204
    r = await delete(admin, f"/api/cameras/{cid}")
    assert r.status_code == 404
    assert video.changes == 3 + 4 + 1  # three created, four patched, one deleted
    # Every write is audited, no audit row holds a credential.
    rows = await audit_rows(hub_state)
    assert {a for a, _t, _d in rows} == {"camera_create", "camera_update", "camera_delete"}
    assert all(SECRET not in d and "ops@" not in d and "admin@" not in d for _a, _t, d in rows)
    assert ("camera_delete", f"camera:{cid}") in {(a, t) for a, t, _d in rows}


async def test_status_comes_from_the_state_channel(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    video = hub_state.services.get("video")
    if video is not None:  # this test sets the channel itself: the real ingest must not race it
        video.manager.on_change = None
    admin = await login("admin")
    r = await admin.post("/api/cameras", json={"name": "a", "url": "rtsp://127.0.0.1/a"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert hub_state.fanout is not None
    since = "2026-12-01T08:00:00+00:00"
    value = {"id": cid, "state": "offline", "reason": "认证失败（401）", "since": since}
    hub_state.fanout.set_state("cameras", str(cid), value)
    r = await admin.get("/api/cameras")
    (item,) = r.json()["items"]
    assert item["status"] == {
        "state": "offline",
        "reason": "认证失败（401）",
        "message": None,
        "since": since,
    }
    hub_state.fanout.set_state("cameras", str(cid), {"state": "weird", "since": since})
    r = await admin.get(f"/api/cameras/{cid}")
    assert r.json()["status"] == {
        "state": "unknown",
        "reason": None,
        "message": None,
        "since": since,
    }


async def test_csv_import_through_the_cli_function(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    admin = await login("admin")
    lon, lat, code = inside_a_demo_grid(5)
    r = await admin.post(
        "/api/speakers",
        json={
            "name": "东门喇叭",
            "uri": "sip:1@127.0.0.1",
            "location": {"lon": 116.0, "lat": 39.0},
        },
    )
    speaker_id = r.json()["id"]
    csv_text = (
        "name,rtsp_url,lon,lat,sub_url,speaker,tags\n"
        f"cam01,rtsp://admin:{SECRET}@127.0.0.1:8554/cam01,{lon},{lat},"
        "rtsp://127.0.0.1:8554/cam01s,东门喇叭,路口|夜间\n"
        f"cam02,rtsp://127.0.0.1:8554/cam02,{lon},{lat},,,\n"
    )
    report = await import_cameras(hub_state.pool, csv_text.encode())
    assert (report.created, report.updated, report.errors) == (2, 0, ())
    r = await admin.patch(f"/api/cameras/{(await _ids(admin))['cam02']}", json={"pinned": True})
    assert r.status_code == 200
    # Idempotent on name: the same file again updates, creates nothing, keeps pinned.
    again = await import_cameras(hub_state.pool, csv_text.encode())
    assert (again.created, again.updated, again.errors) == (0, 2, ())
    r = await admin.get("/api/cameras")
    assert_no_secret(r)
    items = {c["name"]: c for c in r.json()["items"]}
    assert items["cam01"]["has_credentials"] and items["cam01"]["speaker_id"] == speaker_id
    assert items["cam01"]["grid"]["code"] == code and items["cam01"]["tags"] == ["路口", "夜间"]
    assert items["cam02"]["speaker_id"] is None and items["cam02"]["pinned"]
    # A bad row (here an unknown speaker, known only to the database) imports nothing.
    bad = csv_text + f"cam03,rtsp://127.0.0.1/3,{lon},{lat},,无此喇叭,\n"
    report = await import_cameras(hub_state.pool, bad.encode())
    assert [str(e) for e in report.errors] == ["第 4 行：speaker：喇叭不存在：无此喇叭"]
    assert "cam03" not in await _ids(admin)
    async with connect(hub_state.pool) as conn:
        details = await conn.fetch(
            "SELECT detail::text FROM audit_log WHERE action = 'cameras_import_cli'"
        )
    assert len(details) == 2 and all(SECRET not in d[0] for d in details)


async def _ids(api: Api) -> dict[str, int]:
    r = await api.get("/api/cameras")
    return {c["name"]: c["id"] for c in r.json()["items"]}


def test_the_cli_refuses_a_bad_file_before_touching_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub.cli import main

    path = tmp_path / "bad.csv"
    path.write_text(f"name,rtsp_url,lon,lat\n东门,http://u:{SECRET}@x,1,1\n", encoding="utf-8")
    assert main(["cameras", "import", str(path), "--data-dir", str(tmp_path / "d")]) == 1
    captured = capsys.readouterr()
    assert "第 2 行：url：" in captured.err and "未导入任何摄像头" in captured.err
    assert SECRET not in captured.err + captured.out
    assert not (tmp_path / "d" / "pg").exists()
    assert main(["cameras", "import", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


async def test_the_cli_imports_into_the_hubs_database(
    fresh_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cityhub cameras import FILE.csv`` end to end, against ``CITYHUB_DATABASE_URL``."""
    import asyncpg

    from hub.cli import main

    lon, lat, _code = inside_a_demo_grid()
    path = tmp_path / "cameras.csv"
    path.write_text(
        f"name,rtsp_url,lon,lat\ncam01,rtsp://u:{SECRET}@127.0.0.1/c1,{lon},{lat}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CITYHUB_DATABASE_URL", fresh_dsn)
    monkeypatch.setenv("CITYHUB_SECRET_KEY", "test-secret-key")
    argv = ["cameras", "import", str(path), "--data-dir", str(tmp_path / "d")]
    assert await asyncio.to_thread(main, argv) == 0
    assert await asyncio.to_thread(main, argv) == 0  # idempotent
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch("SELECT name, main_url, username, password, grid_id FROM cameras")
    finally:
        await conn.close()
    assert len(rows) == 1 and rows[0]["grid_id"] is not None
    assert tuple(rows[0])[:4] == ("cam01", "rtsp://127.0.0.1/c1", "u", SECRET)
