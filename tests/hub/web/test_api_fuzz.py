"""No request produces a 500: random bodies, query strings and paths against every API route, signed
in as an admin (who passes every role check, so the input handling itself is exercised)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.web.routes.cases import API
from tests.conftest import Api

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        ["", "0", "-1", "'; DROP TABLE cases; --", "../../etc/passwd", "\x00", "占道经营", "1e999"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = [
    "action",
    "version",
    "note",
    "department_id",
    "extension_until",
    "reject_reason",
    "duplicate_of",
    "attachment_ids",
    "category_id",
    "source",
    "description",
    "address",
    "lon",
    "lat",
    "quick",
    "component_id",
    "contact_phone",
    "username",
    "password",
    "role",
    "grid_ids",
    "active",
    "token",
]
bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=8),
)
path_ids = st.one_of(
    st.integers(min_value=-5, max_value=2**64), st.sampled_from(["abc", "1.5", "%00", "..%2f"])
)
query = st.dictionaries(
    st.sampled_from(
        [
            "state",
            "category_id",
            "grid_id",
            "department_id",
            "source",
            "overdue",
            "since",
            "until",
            "q",
            "limit",
            "cursor",
            "level",
            "parent_id",
            "lon",
            "lat",
            "after",
        ]
    ),
    st.text(max_size=30),
    max_size=5,
)

_signed_in: dict[int, Api] = {}

ROUTES = [r for r in API if r.path != "/api/auth/logout"]


def _path(template: str, ident: Any) -> str:
    return re.sub(r"\{[^}]+\}", str(ident), template)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_random_requests_never_500(login: Any, data: st.DataObject) -> None:
    if id(login) not in _signed_in:  # one sign-in per fixture instance (argon2 is slow on purpose)
        _signed_in[id(login)] = await login("admin")
    admin = _signed_in[id(login)]
    route = data.draw(st.sampled_from(ROUTES))
    path = _path(route.path, data.draw(path_ids))
    params = data.draw(query)
    if route.method == "GET":
        r = await admin.get(path, params=params)
    else:
        body = data.draw(bodies)
        r = await admin.client.request(
            route.method, path, params=params, json=body, headers=admin.headers
        )
    assert r.status_code < 500, (route.method, path, params, r.text)
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"code", "message", "details"}


async def test_garbage_bytes_never_500(login: Any) -> None:
    admin = await login("admin")
    payloads = [
        b"",
        b"\x00" * 100,
        b"{" * 10000,
        b'{"a":' * 500 + b"1" + b"}" * 500,
        "占".encode() * 1000,
        b'{"category_id": 1e400}',
        b'{"version": 99999999999999999999999999}',
        b"null",
        b"true",
    ]
    h = {**admin.headers, "content-type": "application/json"}
    for route in ROUTES:
        if route.method == "GET":
            continue
        for p in payloads:
            r = await admin.client.request(route.method, _path(route.path, 1), content=p, headers=h)
            assert r.status_code < 500, (route.path, p[:40], r.text)
    r = await admin.client.post(
        "/api/attachments",
        headers={**admin.headers, "content-type": "multipart/form-data; boundary=x"},
        content=b'--x\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
    )
    assert 400 <= r.status_code < 500, r.text
