"""Errors of the cityhub domain, one root. They know nothing of HTTP: the web edge maps each class to
a status (``hub/web/status.py``), as it maps the storage layer's own errors (``storage/errors.py``).

Tree (with the status the web edge answers)::

    CityhubError                    (500 at the HTTP edge, never shown: unknown errors become 500 JSON)
    ├── BadRequest                  400  malformed or invalid input
    │   └── ValidationFailed        422  well-formed but wrong values (unknown category, bad coordinates)
    ├── Unauthenticated             401  no or expired session / token
    ├── Forbidden                   403  signed in, but the role or scope does not allow it
    ├── NotFound                    404
    ├── Conflict                    409  the case changed under you (version), duplicate key
    │   └── IllegalTransition       409  the workflow refuses this action in this state
    ├── PayloadTooLarge             413
    ├── UnsupportedMediaType        415
    ├── TooManyRequests             429  login rate limit
    └── Unavailable                 503  database down

Errors carry data (``code``, ``details``), not only text. Messages are user-facing and in Chinese first
with an English hint where it helps an API client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CityhubError(Exception):
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(CityhubError):
    code = "bad_request"


class ValidationFailed(BadRequest):
    code = "validation_failed"


class Unauthenticated(CityhubError):
    code = "unauthenticated"


class Forbidden(CityhubError):
    code = "forbidden"


class NotFound(CityhubError):
    code = "not_found"


class Conflict(CityhubError):
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class PayloadTooLarge(CityhubError):
    code = "payload_too_large"


class UnsupportedMediaType(CityhubError):
    code = "unsupported_media_type"


class TooManyRequests(CityhubError):
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class Unavailable(CityhubError):
    code = "unavailable"
