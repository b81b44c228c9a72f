"""Bad input gets a clear 4xx JSON error and writes nothing; every endpoint needs the right user."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from hub.state import HubState
from hub.web.routes.cases import API
from tests.conftest import Api
from tests.helpers import category_id, png_bytes, point_for, upload_photo
from tests.hub.web.test_api_cases import counts, dept_user_for, report


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"code", "message", "details"} and err["message"]
    assert "Traceback" not in r.text
    if code is not None:
        assert err["code"] == code, err
    return dict(err)


async def valid_body(api: Api) -> dict[str, Any]:
    lon, lat, _ = await point_for(api)
    cat = await category_id(api)
    return {
        "category_id": cat["id"],
        "source": "video",
        "description": "视频巡查发现暴露垃圾",
        "address": "文昌街 12 号",
        "lon": lon,
        "lat": lat,
    }


class TestBadInputWritesNothing:
    async def test_malformed_and_mistyped_bodies(self, login: Any, hub_state: HubState) -> None:
        seat = await login("seat1")
        body = await valid_body(seat)
        before = await counts(hub_state)
        h = {**seat.headers, "content-type": "application/json"}
        c = seat.client
        assert_error(
            await c.post("/api/cases", headers=h, content=b'{"category_id": 1,'),
            400,
            "malformed_json",
        )
        assert_error(
            await c.post("/api/cases", headers=h, content=b"\xff\xfe\x00"), 400, "malformed_json"
        )
        assert_error(await c.post("/api/cases", headers=h, content=b"[]"), 400)
        assert_error(
            await seat.post("/api/cases", json={**body, "category_id": "1"}), 400, "invalid_field"
        )
        assert_error(
            await seat.post("/api/cases", json={**body, "lon": "103.8"}), 400, "invalid_field"
        )
        assert_error(
            await seat.post("/api/cases", json={**body, "is_admin": True}), 400, "unknown_field"
        )
        assert_error(
            await seat.post("/api/cases", json={**body, "category_id": 99999}),
            422,
            "unknown_category",
        )
        assert_error(await seat.post("/api/cases", json={**body, "category_id": -1}), 400)
        assert_error(
            await seat.post("/api/cases", json={**body, "source": "aliens"}), 400, "invalid_field"
        )
        assert_error(await seat.post("/api/cases", json={**body, "description": "x" * 5000}), 400)
        assert_error(
            await c.post(
                "/api/cases", headers={**seat.headers, "content-type": "text/plain"}, content=b"hi"
            ),
            415,
        )
        assert await counts(hub_state) == before

    async def test_oversize_bodies(self, login: Any, hub_state: HubState) -> None:
        seat = await login("seat1")
        before = await counts(hub_state)
        huge = b'{"description": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        h = {**seat.headers, "content-type": "application/json"}
        r = await seat.client.post("/api/cases", headers=h, content=huge)
        assert_error(r, 413)
        assert r.json()["error"]["message"] == "提交的内容过大：不能超过 256 KB"

        async def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
            for _ in range(64):
                yield b" " * 65536

        r = await seat.client.post("/api/cases", headers=h, content=chunks())
        assert_error(r, 413)
        assert r.json()["error"]["message"] == "提交的内容过大：不能超过 256 KB"
        big = png_bytes() + b"\x00" * (hub_state.settings.max_upload_bytes + 10)
        r = await seat.post("/api/attachments", files={"file": ("big.png", big, "image/png")})
        assert_error(r, 413)
        assert r.json()["error"]["message"] == "文件过大：每个文件不能超过 20 MB"
        assert await counts(hub_state) == before

    async def test_bad_coordinates(self, login: Any, hub_state: HubState) -> None:
        seat = await login("seat1")
        body = await valid_body(seat)
        before = await counts(hub_state)
        # Out of the documented range (openapi: minimum/maximum): refused like any bad field.
        assert_error(
            await seat.post("/api/cases", json={**body, "lon": 200.0}), 400, "invalid_field"
        )
        assert_error(await seat.post("/api/cases", json={**body, "lat": -91}), 400, "invalid_field")
        body_no_lat = {k: v for k, v in body.items() if k != "lat"}
        assert_error(await seat.post("/api/cases", json=body_no_lat), 422, "bad_coordinates")
        h = {**seat.headers, "content-type": "application/json"}
        cid = body["category_id"]
        raw = f'{{"category_id": {cid}, "source": "video", "lon": 1e999, "lat": 25.5}}'.encode()
        r = await seat.client.post("/api/cases", headers=h, content=raw)
        assert r.status_code in (400, 422)
        assert_error(r, r.status_code)
        # A valid point far from the city.
        assert_error(
            await seat.post("/api/cases", json={**body, "lon": 116.4, "lat": 39.9}),
            422,
            "outside_city",
        )
        err = assert_error(
            await seat.get("/api/grids/lookup", params={"lon": "abc", "lat": "1"}),
            400,
            "invalid_field",
        )
        assert err["details"]["field"] == "lon"
        assert_error(await seat.get("/api/grids/lookup", params={"lon": "1"}), 400, "invalid_field")
        assert_error(
            await seat.get("/api/grids/lookup", params={"lon": "0", "lat": "0"}),
            404,
            "outside_city",
        )
        assert await counts(hub_state) == before

    async def test_sql_metacharacters_are_data(self, login: Any) -> None:
        seat = await login("seat1")
        body = await valid_body(seat)
        nasty = "'); DROP TABLE cases; -- \\ % _ $1 占道经营"
        r = await seat.post("/api/cases", json={**body, "description": nasty})
        assert r.status_code == 201, r.text
        assert r.json()["description"] == nasty
        for q in ["'); DROP TABLE cases; --", "%", "_", "\\", "占道经营", "' OR 1=1 --"]:
            r = await seat.get("/api/cases", params={"q": q})
            assert r.status_code == 200, (q, r.text)
        r = await seat.get("/api/cases", params={"q": "占道经营"})
        assert any(c["description"] == nasty for c in r.json()["items"])
        assert_error(await seat.get("/api/cases", params={"state": "closed' OR '1'='1"}), 400)
        assert_error(await seat.get("/api/cases", params={"category_id": "1 OR 1=1"}), 400)
        # Shaped like a cursor (the documented pattern) but not one this hub issued.
        assert_error(
            await seat.get("/api/cases", params={"cursor": "not-a-cursor"}), 422, "bad_cursor"
        )
        assert_error(await seat.get("/api/cases", params={"cursor": "a/b"}), 400, "invalid_field")
        assert_error(await seat.get("/api/cases", params={"since": "yesterday"}), 400)
        assert_error(await seat.get("/api/cases", params={"limit": "100000"}), 400)

    async def test_attachment_names_and_types(self, login: Any, hub_state: HubState) -> None:
        seat = await login("seat1")
        for name in [
            "../../../etc/passwd.png",
            "..\\..\\windows\\x.png",
            "/abs/path.png",
            "a\x00b.png",
        ]:
            r = await seat.post(
                "/api/attachments", files={"file": (name, png_bytes(), "image/png")}
            )
            assert r.status_code == 201, r.text
            item = r.json()["items"][0]
            assert "/" not in item["original_name"] and "\\" not in item["original_name"]
            assert ".." not in item["original_name"] and "\x00" not in item["original_name"]
            assert re.fullmatch(r"[0-9a-f]{64}", item["sha256"])
        r = await seat.post(
            "/api/attachments",
            files={"file": ("x.png", b"<html><script>alert(1)</script>", "image/png")},
        )
        assert_error(r, 415)
        r = await seat.post("/api/attachments", files={"file": ("x.png", b"", "image/png")})
        assert_error(r, 422)
        r = await seat.client.post(
            "/api/attachments",
            content=b"raw",
            headers={**seat.headers, "content-type": "image/png"},
        )
        assert_error(r, 415)
        # Nothing outside the store was written.
        root = hub_state.settings.attachments_dir.resolve()
        for p in root.rglob("*"):
            assert p.resolve().is_relative_to(root)

    async def test_attachment_reuse_and_foreign_ids_refused(
        self, login: Any, hub_state: HubState
    ) -> None:
        seat, sup = await login("seat1"), await login("sup01")
        foreign = await upload_photo(seat)
        lon, lat, _ = await point_for(sup)
        cat = await category_id(sup)
        before = await counts(hub_state)
        r = await sup.post(
            "/api/cases",
            json={
                "category_id": cat["id"],
                "source": "supervisor",
                "lon": lon,
                "lat": lat,
                "attachment_ids": [foreign],
                "quick": True,
            },
        )
        assert_error(r, 422, "bad_attachments")
        assert await counts(hub_state) == before

    async def test_times_beyond_utc_are_refused_not_500(self, login: Any) -> None:
        sup, seat, disp = await login("sup01"), await login("seat1"), await login("dispatch1")
        cid = (await report(sup))["id"]
        await seat.act(cid, "register")
        dep_id = (await category_id(seat))["default_department_id"]
        await disp.act(cid, "dispatch", department_id=dep_id)
        dept = await dept_user_for(login, dep_id)
        await dept.act(cid, "accept")
        # A valid RFC 3339 time that has no UTC equivalent (past 9999-12-31T23:59:59Z).
        r = await dept.act(
            cid, "request_extension", note="协调", extension_until="9999-12-31T23:59:59-23:59"
        )
        assert_error(r, 422)
        assert (await dept.get(f"/api/cases/{cid}")).json()["pending_extension_until"] is None
        # As a filter bound it excludes nothing.
        r = await seat.get("/api/cases", params={"until": "9999-12-31T23:59:59-23:59", "limit": 1})
        assert r.status_code == 200 and len(r.json()["items"]) == 1

    async def test_unknown_paths_and_methods(self, login: Any) -> None:
        seat = await login("seat1")
        assert_error(await seat.get("/api/nope"), 404)
        assert_error(await seat.get("/api/cases/abc"), 404)
        assert_error(await seat.get("/api/cases/99999999"), 404)
        assert_error(await seat.client.delete("/api/cases", headers=seat.headers), 405)
        assert_error(await seat.get("/api/cases/99999999999999999999999"), 404)


class TestAuthentication:
    @pytest.mark.parametrize(
        "route", [r for r in API if r.roles is not None], ids=lambda r: f"{r.method} {r.path}"
    )
    async def test_every_endpoint_needs_sign_in(
        self, client: httpx.AsyncClient, route: Any
    ) -> None:
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        r = await client.request(route.method, path, json={})
        assert_error(r, 401)

    async def test_metrics_need_admin(self, client: httpx.AsyncClient, login: Any) -> None:
        assert_error(await client.get("/metrics"), 401)
        seat = await login("seat1")
        assert_error(await seat.get("/metrics"), 403)
        admin = await login("admin")
        r = await admin.get("/metrics")
        assert r.status_code == 200 and "cityhub_http_requests_total" in r.text

    async def test_wrong_password_and_rate_limit(self, client: httpx.AsyncClient) -> None:
        async def try_login(username: str, password: str) -> httpx.Response:
            body = {"username": username, "password": password}
            return await client.post("/api/auth/login", json=body)

        # An unknown user answers exactly like a wrong password (and is counted like one).
        assert_error(await try_login("nobody", "x1"), 401, "bad_credentials")
        for _ in range(5):
            assert_error(await try_login("seat2", "wrong-pass1"), 401, "bad_credentials")
        # The account is slowed at this address, the right password included ...
        r = await try_login("seat2", "Seat#2026")
        err = assert_error(r, 429, "too_many_requests")
        assert "秒" in err["message"] and int(r.headers["retry-after"]) == 1
        # ... but not the colleague next to them (details: tests/hub/web/test_login_throttle.py).
        assert (await try_login("seat3", "Seat#2026")).status_code == 200
        # The address is limited too, by the distinct accounts failing from it: after 30 of them
        # (nobody, seat2 and 28 more), guessing any other account's password from it is refused.
        for i in range(28):
            assert_error(await try_login(f"ghost{i}", "wrong-pass1"), 401, "bad_credentials")
        r = await try_login("seat1", "Seat#2026")
        err = assert_error(r, 429, "too_many_requests")
        assert "分钟" in err["message"] and int(r.headers["retry-after"]) > 500

    async def test_cookie_session_needs_csrf_and_same_origin(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await client.post(
            "/api/auth/login", json={"username": "seat1", "password": "Seat#2026"}
        )
        assert r.status_code == 200
        assert (
            "httponly" in r.headers["set-cookie"].lower()
            and "samesite=lax" in r.headers["set-cookie"].lower()
        )
        csrf = r.json()["csrf_token"]
        assert (await client.get("/api/auth/me")).status_code == 200  # reads need no token
        body = {"action": "register", "version": 1}
        assert_error(await client.post("/api/cases/1/actions", json=body), 403, "csrf_failed")
        assert_error(
            await client.post(
                "/api/cases/1/actions", json=body, headers={"x-csrf-token": "forged"}
            ),
            403,
            "csrf_failed",
        )
        r = await client.post(
            "/api/cases/1/actions",
            json=body,
            headers={"x-csrf-token": csrf, "origin": "http://evil.example"},
        )
        assert_error(r, 403, "bad_origin")
        r = await client.post(
            "/api/cases/1/actions",
            json=body,
            headers={"x-csrf-token": csrf, "origin": "http://testserver"},
        )
        assert r.status_code != 403, r.text
        r = await client.post("/api/auth/logout", headers={"x-csrf-token": csrf})
        assert r.status_code == 204
        assert_error(await client.get("/api/auth/me"), 401)

    async def test_bearer_token_logout(self, client: httpx.AsyncClient, login: Any) -> None:
        seat = await login("seat1")
        assert (await seat.post("/api/auth/logout")).status_code == 204
        assert_error(await seat.get("/api/cases"), 401, "session_expired")
        assert_error(
            await client.get("/api/cases", headers={"Authorization": "Bearer " + "x" * 500}), 401
        )

    async def test_roles(self, login: Any) -> None:
        viewer, agent = await login("bigscreen"), await login("agent1")
        body = await valid_body(viewer)
        assert_error(await viewer.post("/api/cases", json=body), 403, "role_forbidden")
        assert (await viewer.get("/api/cases")).status_code == 200
        assert_error(await agent.post("/api/cases", json=body), 403, "source_forbidden")
        r = await agent.post(
            "/api/cases", json={**body, "source": "hotline", "contact_phone": "138-0000-0000"}
        )
        assert r.status_code == 201, r.text
        assert_error(await agent.act(r.json()["id"], "register"), 403, "role_forbidden")
        assert_error(await agent.get("/api/users"), 403)


class TestUsersAdmin:
    async def test_admin_manages_accounts(self, login: Any, client: httpx.AsyncClient) -> None:
        admin = await login("admin")
        deps = (await admin.get("/api/departments")).json()["items"]
        new = {
            "username": "wang.li",
            "display_name": "王力",
            "password": "Pass#2026x",
            "role": "department",
            "department_id": deps[0]["id"],
        }
        r = await admin.post("/api/users", json=new)
        assert r.status_code == 201, r.text
        assert_error(await admin.post("/api/users", json=new), 409)
        assert_error(
            await admin.post(
                "/api/users", json={**new, "username": "w2", "password": "onlyletters"}
            ),
            422,
            "weak_password",
        )
        assert_error(  # shorter than the documented minLength
            await admin.post("/api/users", json={**new, "username": "w2", "password": "s1"}),
            400,
            "invalid_field",
        )
        assert_error(
            await admin.post("/api/users", json={**new, "username": "w3", "role": "god"}),
            400,
            "invalid_field",
        )
        assert_error(
            await admin.post("/api/users", json={**new, "username": "w4", "department_id": None}),
            422,
        )
        assert_error(await admin.post("/api/users", json={**new, "username": "../x"}), 400)
        r = await client.post(
            "/api/auth/login", json={"username": "wang.li", "password": "Pass#2026x", "token": True}
        )
        assert r.status_code == 200
        token = r.json()["token"]
        uid = r.json()["user"]["id"]
        r = await admin.patch(f"/api/users/{uid}", json={"active": False})
        assert r.status_code == 200 and r.json()["active"] is False
        # Disabling ends the user's sessions at once.
        assert_error(
            await client.get("/api/cases", headers={"Authorization": f"Bearer {token}"}), 401
        )
        assert_error(
            await admin.patch(f"/api/users/{admin.user['id']}", json={"active": False}), 403
        )
        users = (await admin.get("/api/users")).json()["items"]
        assert all("password" not in str(u.keys()) for u in users)
