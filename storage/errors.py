"""Errors of the storage layer, one root; the hub maps them to HTTP at its edge
(``hub/web/status.py``), so storage knows nothing of HTTP or of the hub.

Tree::

    StorageError                    something the storage layer cannot do (a bug or a broken install)
    ├── InvalidRequest              a malformed argument from the caller (a bad cursor, a bad file id)
    │   └── InvalidData             well-formed, but the data breaks a rule (a constraint, an empty file)
    ├── RecordNotFound
    ├── RecordConflict              a unique key taken, a serialization failure
    ├── DataTooLarge
    ├── UnsupportedData             a file type that is not accepted
    └── StorageUnavailable          the database cannot be reached now

asyncpg's SQLSTATE classes are translated into these at the edge (``storage.db.map_pg_errors``).
Errors carry data (``code``, ``details``), not only text; messages are user-facing, Chinese first.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StorageError(Exception):
    code: ClassVar[str] = "storage_error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidRequest(StorageError):
    code = "bad_request"


class InvalidData(InvalidRequest):
    code = "validation_failed"


class RecordNotFound(StorageError):
    code = "not_found"


class RecordConflict(StorageError):
    code = "conflict"


class DataTooLarge(StorageError):
    code = "payload_too_large"


class UnsupportedData(StorageError):
    code = "unsupported_media_type"


class StorageUnavailable(StorageError):
    code = "unavailable"
