"""The roles a route declares are the roles enforced, and the roles ``/openapi.json`` shows.

Every route of the table is called by nobody and by a signed-in demo user of every role: a role
outside the declaration gets 403 ``role_forbidden`` (nobody gets 401) before any handler runs, a role
inside it never gets 401/403 (a dummy id or an empty body may still get 404/400/415). The list of
routes is the table itself, so a new route is walked without editing this file.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from hub.core.workflow import Role
from hub.demo import DEMO_USERS
from hub.subsystem import installed
from hub.web.http import ApiRoute, openapi
from tests.conftest import Api

#: The API of a hub running every installed subsystem (what the ``client`` fixture serves).
API = [route for sub in installed() for route in sub.routes()]
#: One demo account per role (the first of each in DEMO_USERS).
ROLE_USERS: dict[Role, str] = {}
for _name, (_role, _password) in DEMO_USERS.items():
    ROLE_USERS.setdefault(Role(_role), _name)


def concrete_path(route: ApiRoute) -> str:
    """The route's path with a dummy value for each parameter."""
    return re.sub(r"\{(\w+)(?::int)?\}", lambda m: "1", route.path)


async def call(
    client: httpx.AsyncClient, route: ApiRoute, headers: dict[str, str]
) -> httpx.Response:
    kw: dict[str, Any] = {"headers": headers}
    if route.body is not None:
        kw["json"] = {}
    return await client.request(route.method, concrete_path(route), **kw)


def openapi_op(doc: dict[str, Any], route: ApiRoute) -> dict[str, Any]:
    path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
    op: dict[str, Any] = doc["paths"][path][route.method.lower()]
    return op


def test_every_role_has_a_demo_account() -> None:
    assert set(ROLE_USERS) == set(Role)


async def test_every_route_enforces_exactly_its_declared_roles(
    client: httpx.AsyncClient, login: Any
) -> None:
    signed_in: dict[Role, Api] = {role: await login(name) for role, name in ROLE_USERS.items()}
    # Logout ends the caller's session: walk it last.
    routes = sorted(API, key=lambda r: r.path == "/api/auth/logout")
    assert len({(r.method, r.path) for r in routes}) == len(routes)
    wrong: list[str] = []
    refused = allowed_calls = 0
    for route in routes:
        label = f"{route.method} {route.path}"
        r = await call(client, route, {})
        if route.roles is None:
            if r.status_code in (401, 403):
                wrong.append(f"{label} unsigned: {r.status_code} {r.text[:120]}")
        elif r.status_code != 401:
            wrong.append(f"{label} unsigned: {r.status_code}, expected 401")
        for role, api in signed_in.items():
            r = await call(client, route, api.headers)
            if route.roles is not None and role not in route.roles:
                refused += 1
                code = r.json().get("error", {}).get("code") if r.status_code == 403 else None
                if code != "role_forbidden":
                    wrong.append(f"{label} as {role}: {r.status_code} {r.text[:120]}, expected 403")
            else:
                allowed_calls += 1
                if r.status_code in (401, 403):
                    wrong.append(f"{label} as {role}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)
    # The walk saw both outcomes (the table has admin-only routes and routes for everyone).
    assert refused > 0 and allowed_calls > 0


async def test_openapi_roles_are_the_declared_roles(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    served = r.json()
    for doc in (served, openapi(API, "test")):
        for route in API:
            op = openapi_op(doc, route)
            if route.roles is None:
                assert "x-roles" not in op and op["security"] == [], route.path
            else:
                assert op["x-roles"] == sorted(role.value for role in route.roles), route.path
                assert {"bearer": []} in op["security"], route.path
                assert {"401", "403"} <= set(op["responses"]), route.path
