"""The speaker registry and clip library over HTTP (``telephony.warnings.registry_routes``), through
the ``client`` fixture: roles enforced, credentials never in a response, CSV import through the
CLI's function, clip upload and text to speech, every write audited."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hub.state import HubState
from storage.db import connect
from telephony.warnings.cli import import_speakers
from tests.conftest import Api
from tests.telephony.warnings.test_clips import encode, peak_hz

SECRET = "s3cret-Pa55"
NEED_TTS = os.environ.get("CI") == "true"


async def delete(api: Api, url: str) -> httpx.Response:
    return await api.client.delete(url, headers=api.headers)


def assert_no_secret(r: httpx.Response) -> None:
    assert SECRET not in r.text
    assert "password" not in r.text and "username" not in r.text


async def audit_actions(h: HubState) -> list[tuple[str, str, str]]:
    async with connect(h.pool) as conn:
        rows = await conn.fetch("SELECT action, target, detail::text FROM audit_log ORDER BY id")
    return [(r["action"], r["target"], r["detail"]) for r in rows]


async def test_speakers_roles_and_credentials(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    admin = await login("admin")
    viewer = await login("bigscreen")
    body = {
        "name": "东门1号",
        "uri": "sip:101@127.0.0.1:5070",
        "username": "spk101",
        "password": SECRET,
        "location": {"lon": 120.15, "lat": 30.25},
        "cameras": ["CAM-01", "CAM-02"],
        "auto_answer": "alert-info",
    }
    # A viewer may read but not register.
    r = await viewer.post("/api/speakers", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_forbidden"
    r = await admin.post("/api/speaker-groups", json={"name": "中山路", "description": "沿街"})
    assert r.status_code == 201, r.text
    group = r.json()
    r = await admin.post("/api/speakers", json={**body, "groups": [group["id"]]})
    assert r.status_code == 201, r.text
    assert_no_secret(r)
    created = r.json()
    assert created["uri"] == "sip:101@127.0.0.1:5070" and created["has_credentials"]
    assert created["location"] == {"lon": 120.15, "lat": 30.25}
    assert created["cameras"] == ["CAM-01", "CAM-02"] and created["groups"] == [group["id"]]
    assert set(created["status"]) == {"state", "since"}
    sid = created["id"]
    # Same name again: 409; a password inside the URI: 422 with the field named.
    r = await admin.post("/api/speakers", json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "name_taken"
    r = await admin.post(
        "/api/speakers", json={**body, "name": "x", "uri": f"sip:101:{SECRET}@127.0.0.1"}
    )
    assert r.status_code == 422 and r.json()["error"]["details"] == {"field": "uri"}
    assert_no_secret(r)
    r = await admin.post("/api/speakers", json={**body, "name": "y", "grid_id": 999_999})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_grid"
    r = await admin.post("/api/speakers", json={**body, "name": "z", "groups": [999_999]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_group"
    r = await admin.post("/api/speakers", json={**body, "name": "w", "colour": "red"})
    assert r.status_code == 400
    # Every reader sees the list, without credentials; department staff do not.
    for who in ("seat1", "bigscreen", "dispatch1"):
        api = await login(who)
        r = await api.get("/api/speakers")
        assert r.status_code == 200, (who, r.text)
        assert_no_secret(r)
        assert [s["name"] for s in r.json()["items"]] == ["东门1号"]
    for who in _users_of(hub_state, "department", "supervisor", "agent"):
        api = await login(who)
        r = await api.get("/api/speakers")
        assert r.status_code == 403, who
        r = await api.get("/api/clips")
        assert r.status_code == 403, who
    # PATCH: only what is given changes; null clears; clearing the username clears the password.
    r = await viewer.patch(f"/api/speakers/{sid}", json={"active": False})
    assert r.status_code == 403
    r = await admin.patch(f"/api/speakers/{sid}", json={"active": False, "location": None})
    assert r.status_code == 200, r.text
    assert_no_secret(r)
    patched = r.json()
    assert not patched["active"] and patched["location"] is None and patched["has_credentials"]
    assert patched["cameras"] == ["CAM-01", "CAM-02"] and patched["auto_answer"] == "alert-info"
    async with connect(hub_state.pool) as conn:
        row = await conn.fetchrow("SELECT username, password FROM speakers WHERE id = $1", sid)
    assert (row["username"], row["password"]) == ("spk101", SECRET)
    r = await admin.patch(f"/api/speakers/{sid}", json={"username": None, "groups": []})
    assert r.status_code == 200 and not r.json()["has_credentials"] and r.json()["groups"] == []
    async with connect(hub_state.pool) as conn:
        row = await conn.fetchrow("SELECT username, password FROM speakers WHERE id = $1", sid)
    assert (row["username"], row["password"]) == (None, None)
    r = await admin.patch(f"/api/speakers/{sid}", json={"password": "p"})
    assert r.status_code == 422 and r.json()["error"]["details"] == {"field": "username"}
    r = await admin.patch("/api/speakers/999999", json={"active": True})
    assert r.status_code == 404
    # DELETE.
    r = await delete(viewer, f"/api/speakers/{sid}")
    assert r.status_code == 403
    r = await delete(admin, f"/api/speakers/{sid}")
    assert r.status_code == 204
    r = await delete(admin, f"/api/speakers/{sid}")
    assert r.status_code == 404
    # Every write is audited, and no audit row holds the password.
    actions = await audit_actions(hub_state)
    names = [a for a, _t, _d in actions]
    for action in ("speaker_group_create", "speaker_create", "speaker_update", "speaker_delete"):
        assert action in names
    assert all(SECRET not in detail for _a, _t, detail in actions)


def _users_of(h: HubState, *roles: str) -> list[str]:
    from hub.demo import DEMO_USERS

    out = []
    for role in roles:
        out.append(next(name for name, (r, _pw) in DEMO_USERS.items() if r == role))
    return out


async def test_speaker_status_comes_from_the_state_channel(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    admin = await login("admin")
    # Inactive, so the warning service's own health checks leave its status alone.
    r = await admin.post(
        "/api/speakers", json={"name": "a", "uri": "sip:1@127.0.0.1", "active": False}
    )
    sid = r.json()["id"]
    assert r.json()["status"] == {"state": "unknown", "since": None}
    assert hub_state.fanout is not None
    since = "2026-12-01T08:00:00+00:00"
    hub_state.fanout.set_state("speakers", str(sid), {"id": sid, "state": "busy", "since": since})
    r = await admin.get("/api/speakers")
    (item,) = [s for s in r.json()["items"] if s["id"] == sid]
    assert item["status"] == {"state": "busy", "since": since}


async def test_groups(client: httpx.AsyncClient, login: Any, hub_state: HubState) -> None:
    admin = await login("admin")
    seat = await login(_users_of(hub_state, "seat")[0])
    ids = []
    for i in range(3):
        r = await admin.post("/api/speakers", json={"name": f"s{i}", "uri": f"sip:{i}@127.0.0.1"})
        ids.append(r.json()["id"])
    r = await seat.post("/api/speaker-groups", json={"name": "g"})
    assert r.status_code == 403
    r = await admin.post("/api/speaker-groups", json={"name": "g", "speaker_ids": ids[:2]})
    assert r.status_code == 201 and r.json()["speaker_ids"] == ids[:2]
    gid = r.json()["id"]
    r = await admin.post("/api/speaker-groups", json={"name": "g"})
    assert r.status_code == 409
    r = await admin.post("/api/speaker-groups", json={"name": "h", "speaker_ids": [999_999]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_speaker"
    r = await admin.patch(f"/api/speaker-groups/{gid}", json={"speaker_ids": [ids[2]]})
    assert r.status_code == 200 and r.json() == {
        "id": gid,
        "name": "g",
        "description": "",
        "speaker_ids": [ids[2]],
    }
    r = await seat.get("/api/speaker-groups")
    assert r.status_code == 200 and [g["id"] for g in r.json()["items"]] == [gid]
    r = await admin.patch("/api/speaker-groups/999999", json={"name": "x"})
    assert r.status_code == 404
    r = await delete(admin, f"/api/speaker-groups/{gid}")
    assert r.status_code == 204
    r = await delete(admin, f"/api/speaker-groups/{gid}")
    assert r.status_code == 404


async def test_csv_import_through_the_cli_function(
    client: httpx.AsyncClient, login: Any, hub_state: HubState, tmp_path: Path
) -> None:
    grid = next(iter(hub_state.catalog.grids.values()))
    csv_text = (
        "name,uri,username,password,lon,lat,grid,cameras,groups,auto_answer\n"
        f"东门,sip:101@127.0.0.1,u1,{SECRET},120.1,30.2,{grid.code},C1|C2,中山路|市场,call-info\n"
        "西门,sip:102@127.0.0.1,,,,,,,市场,none\n"
    )
    report = await import_speakers(hub_state.pool, csv_text.encode(), hub_state.catalog)
    assert (report.created, report.updated, report.groups_created, report.errors) == (2, 0, 2, ())
    # Idempotent on name: the same file again updates, creates nothing.
    again = await import_speakers(hub_state.pool, csv_text.encode(), hub_state.catalog)
    assert (again.created, again.updated, again.groups_created) == (0, 2, 0)
    admin = await login("admin")
    r = await admin.get("/api/speakers")
    assert_no_secret(r)
    items = {s["name"]: s for s in r.json()["items"]}
    assert items["东门"]["grid_id"] == grid.id and items["东门"]["has_credentials"]
    assert items["东门"]["cameras"] == ["C1", "C2"] and len(items["东门"]["groups"]) == 2
    assert items["西门"]["auto_answer"] == "none" and len(items["西门"]["groups"]) == 1
    # A file with a bad row imports nothing and says which row.
    bad = csv_text.replace("西门,sip:102", "北门,http:102") + "南门,sip:103@127.0.0.1\n"
    report = await import_speakers(hub_state.pool, bad.encode(), hub_state.catalog)
    assert [str(e)[:9] for e in report.errors] == ["第 3 行：uri"]
    r = await admin.get("/api/speakers")
    assert "南门" not in {s["name"] for s in r.json()["items"]}


def test_the_cli_refuses_a_bad_file_before_touching_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub.cli import main

    path = tmp_path / "bad.csv"
    path.write_text("name,uri\n东门,http://x\n", encoding="utf-8")
    assert main(["speakers", "import", str(path), "--data-dir", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "第 2 行：uri：" in err and "未导入任何喇叭" in err
    assert not (tmp_path / "d" / "pg").exists()
    assert main(["speakers", "import", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


async def test_the_cli_imports_into_the_hubs_database(
    fresh_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cityhub speakers import FILE.csv`` end to end, against the database of
    ``CITYHUB_DATABASE_URL`` (as ``cityhub migrate`` would reach it)."""
    import asyncpg

    from hub.cli import main

    path = tmp_path / "speakers.csv"
    path.write_text(
        f"name,uri,username,password,groups\n东门,sip:1@127.0.0.1,u,{SECRET},市场\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CITYHUB_DATABASE_URL", fresh_dsn)
    monkeypatch.setenv("CITYHUB_SECRET_KEY", "test-secret-key")
    argv = ["speakers", "import", str(path), "--data-dir", str(tmp_path / "d")]
    assert await asyncio.to_thread(main, argv) == 0
    assert await asyncio.to_thread(main, argv) == 0  # idempotent
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch("SELECT name, username, password FROM speakers")
        groups = await conn.fetchval("SELECT count(*) FROM speaker_group_members")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("东门", "u", SECRET)] and groups == 1


async def _upload(api: Api, data: bytes, **fields: str) -> httpx.Response:
    return await api.client.post(
        "/api/clips",
        headers=api.headers,
        files={"file": ("warn.mp3", data, "audio/mpeg")},
        data=fields,
    )


async def test_clip_upload_preview_and_delete(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    seat = await login(_users_of(hub_state, "seat")[0])
    viewer = await login("bigscreen")
    mp3 = encode("mp3", 2.0)
    r = await _upload(viewer, mp3, name="占道经营")
    assert r.status_code == 403
    r = await _upload(seat, mp3, name="占道经营", category="市容")
    assert r.status_code == 201, r.text
    clip = r.json()
    assert clip["name"] == "占道经营" and clip["category"] == "市容" and clip["source"] == "upload"
    assert 1990 <= clip["duration_ms"] <= 2100 and clip["text"] is None
    assert clip["created_by"]["id"] == seat.user["id"] and clip["created_by"]["name"]
    assert clip["preview_url"] == f"/api/clips/{clip['id']}/audio"
    r = await viewer.get(clip["preview_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.headers["x-content-type-options"] == "nosniff"
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert abs(peak_hz(pcm[4000:12000]) - 440.0) <= 2.0
    r = await viewer.get("/api/clips")
    assert [c["id"] for c in r.json()["items"]] == [clip["id"]]
    # Refusals: garbage (422), no name (400), no file (400), not multipart (415), too long (422).
    r = await _upload(seat, b"this is not audio", name="x")
    assert r.status_code == 422 and "不支持" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "unsupported_audio"
    r = await _upload(seat, mp3)
    assert r.status_code == 400
    r = await seat.client.post("/api/clips", headers=seat.headers, data={"name": "x"})
    assert r.status_code in (400, 415)
    r = await seat.post("/api/clips", json={"name": "x"})
    assert r.status_code == 415
    # A long WAV (5 MB, past Starlette's in-memory part size) is fine.
    big = encode("wav", 30.0)
    assert len(big) > 5_000_000
    r = await _upload(seat, big, name="长录音")
    assert r.status_code == 201 and 29_990 <= r.json()["duration_ms"] <= 30_010
    original = hub_state.settings
    try:
        hub_state.settings = _with(hub_state, clip_max_seconds=1.0)
        r = await _upload(seat, mp3, name="太长")
        assert r.status_code == 422 and r.json()["error"]["code"] == "clip_too_long"
        hub_state.settings = _with(hub_state, max_upload_bytes=1_000_000)
        r = await _upload(seat, big, name="太大")
        assert r.status_code == 413
    finally:
        hub_state.settings = original
    r = await delete(
        seat, f"/api/clips/{(await viewer.get('/api/clips')).json()['items'][0]['id']}"
    )
    assert r.status_code == 204
    # Delete: the library no longer lists it; the audio is gone from the API.
    r = await delete(viewer, f"/api/clips/{clip['id']}")
    assert r.status_code == 403
    r = await delete(seat, f"/api/clips/{clip['id']}")
    assert r.status_code == 204
    assert (await viewer.get("/api/clips")).json()["items"] == []
    assert (await viewer.get(clip["preview_url"])).status_code == 404
    assert (await delete(seat, f"/api/clips/{clip['id']}")).status_code == 404
    names = [a for a, _t, _d in await audit_actions(hub_state)]
    assert "clip_create" in names and "clip_delete" in names


def _with(h: HubState, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(h.settings, **changes)


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not NEED_TTS, reason="espeak-ng is not installed"
)
async def test_text_to_speech_clip(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    dispatcher = await login("dispatch1")
    viewer = await login("bigscreen")
    body = {"name": "请勿占道", "category": "市容", "text": "请勿占道经营，谢谢配合。"}
    r = await viewer.post("/api/clips/tts", json=body)
    assert r.status_code == 403
    r = await dispatcher.post("/api/clips/tts", json=body)
    assert r.status_code == 201, r.text
    clip = r.json()
    assert clip["source"] == "tts" and clip["text"] == body["text"]
    assert 1000 < clip["duration_ms"] < 10_000
    r = await viewer.get(clip["preview_url"])
    assert r.status_code == 200 and r.content.startswith(b"RIFF")
    r = await dispatcher.post("/api/clips/tts", json={**body, "text": "字" * 501})
    assert r.status_code == 400  # beyond the declared length
    r = await dispatcher.post("/api/clips/tts", json={**body, "text": "   "})
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_text"


async def test_a_password_stored_inside_a_uri_still_never_reaches_a_browser(
    client: httpx.AsyncClient, login: Any, hub_state: HubState
) -> None:
    """The API refuses such URIs; one written some other way (an older import, by hand) is shown
    without its password all the same."""
    from storage import voice

    async with connect(hub_state.pool) as conn:
        await voice.insert_speaker(
            conn,
            voice.SpeakerFields(name="旧", uri=f"sip:101:{SECRET}@127.0.0.1?X=1", active=False),
        )
    r = await (await login("bigscreen")).get("/api/speakers")
    assert_no_secret(r)
    assert [s["uri"] for s in r.json()["items"]] == ["sip:101@127.0.0.1"]
