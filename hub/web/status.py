"""The HTTP edge's map from errors to status codes: the domain's (``hub.core.errors``) and the storage
layer's (``storage.errors``). Neither tree knows about HTTP; this is the one place that does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.core import errors as e
from storage import errors as se

#: An error either tree raises; both carry ``code``, ``message``, ``details`` and ``to_json()``.
AnyError = e.CityhubError | se.StorageError

STATUS: Mapping[type[Exception], int] = {
    e.CityhubError: 500,
    e.BadRequest: 400,
    e.ValidationFailed: 422,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.PayloadTooLarge: 413,
    e.UnsupportedMediaType: 415,
    e.TooManyRequests: 429,
    e.Unavailable: 503,
    se.StorageError: 500,
    se.InvalidRequest: 400,
    se.InvalidData: 422,
    se.RecordNotFound: 404,
    se.RecordConflict: 409,
    se.DataTooLarge: 413,
    se.UnsupportedData: 415,
    se.StorageUnavailable: 503,
}


def status_of(exc: BaseException) -> int:
    """The status for an error: that of its nearest class in the map (500 for anything else)."""
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def headers_of(exc: BaseException) -> dict[str, str]:
    retry: Any = getattr(exc, "retry_after", None)
    return {"Retry-After": str(retry)} if retry else {}
