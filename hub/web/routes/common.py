"""Shared pieces of the ``/api`` endpoints: value types for declarations and the request helpers
handlers use. Sign-in, roles, parameters and bodies are checked by the route table's dispatcher
(``hub.web.http.build_routes``) before a handler runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from starlette.requests import Request

from hub.state import HubState
from hub.web.forwarded import client_address, trusted_networks

#: Text PostgreSQL can store: anything but NUL characters.
NO_NUL = r"^[^\x00]*$"
Str200 = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
Str4000 = Annotated[str, msgspec.Meta(max_length=4000, pattern=NO_NUL)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
BigId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
#: A time in a query string: RFC 3339; without an offset it is a local time of the city.
QueryTime = Annotated[
    datetime,
    msgspec.Meta(
        description="RFC 3339 时间；不带时区时按城市时区", extra_json_schema={"format": "date-time"}
    ),
]


def hub(request: Request) -> HubState:
    state: HubState = request.app.state.hub
    return state


def client_ip(request: Request) -> str:
    """The client's address, for the login throttle and audit rows: the direct peer, or when that
    is a trusted proxy (``CITYHUB_TRUSTED_PROXIES``) what it says in ``X-Forwarded-For``
    (``hub.web.forwarded``)."""
    peer = request.client.host if request.client else ""
    trusted = trusted_networks(hub(request).settings.trusted_proxies)
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)


def city_time(request: Request, value: datetime | None) -> datetime | None:
    """A query time in UTC: a time without an offset is the city's local time; a time beyond what
    the clock can hold in UTC is clamped (a filter bound that far out excludes nothing)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=hub(request).cases.calendar.tz)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.min if value.year < 2000 else datetime.max).replace(tzinfo=UTC)
