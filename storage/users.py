"""Users, sessions and the audit log."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from storage.db import map_pg_errors


@dataclasses.dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    display_name: str
    role: str
    department_id: int | None
    active: bool
    grid_ids: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SessionRow:
    user: UserRow
    kind: str
    csrf_token: str
    expires_at: datetime


_USER_COLS = (
    "u.id, u.username, u.display_name, u.role, u.department_id, u.active,"
    " coalesce(array(SELECT grid_id FROM user_grids g WHERE g.user_id = u.id ORDER BY grid_id),"
    " '{}') AS grid_ids"
)


def _user(rec: Mapping[str, Any]) -> UserRow:
    return UserRow(
        id=rec["id"],
        username=rec["username"],
        display_name=rec["display_name"],
        role=rec["role"],
        department_id=rec["department_id"],
        active=rec["active"],
        grid_ids=tuple(rec["grid_ids"]),
    )


async def get_user_for_login(conn: asyncpg.Connection, username: str) -> tuple[UserRow, str] | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_USER_COLS}, u.password_hash FROM users u WHERE u.username = $1", username
        )
    return None if rec is None else (_user(rec), rec["password_hash"])


async def get_user(conn: asyncpg.Connection, user_id: int) -> UserRow | None:
    with map_pg_errors():
        rec = await conn.fetchrow(f"SELECT {_USER_COLS} FROM users u WHERE u.id = $1", user_id)
    return None if rec is None else _user(rec)


async def list_users(conn: asyncpg.Connection) -> list[UserRow]:
    with map_pg_errors():
        rows = await conn.fetch(f"SELECT {_USER_COLS} FROM users u ORDER BY u.id")
    return [_user(r) for r in rows]


async def insert_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    display_name: str,
    password_hash: str,
    role: str,
    department_id: int | None,
    grid_ids: Sequence[int] = (),
) -> int:
    with map_pg_errors():
        uid = await conn.fetchval(
            "INSERT INTO users (username, display_name, password_hash, role, department_id)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            username,
            display_name,
            password_hash,
            role,
            department_id,
        )
        if grid_ids:
            await conn.executemany(
                "INSERT INTO user_grids (user_id, grid_id) VALUES ($1, $2)",
                [(uid, g) for g in grid_ids],
            )
    return int(uid)


async def update_user(
    conn: asyncpg.Connection,
    user_id: int,
    *,
    display_name: str | None = None,
    password_hash: str | None = None,
    active: bool | None = None,
    grid_ids: Sequence[int] | None = None,
) -> bool:
    sets: list[str] = []
    args: list[Any] = [user_id]
    if display_name is not None:
        args.append(display_name)
        sets.append(f"display_name = ${len(args)}")
    if password_hash is not None:
        args.append(password_hash)
        sets.append(f"password_hash = ${len(args)}, password_changed_at = now()")
    if active is not None:
        args.append(active)
        sets.append(f"active = ${len(args)}")
    with map_pg_errors():
        if sets:
            status = await conn.execute(f"UPDATE users SET {', '.join(sets)} WHERE id = $1", *args)
            if status.endswith(" 0"):
                return False
        elif not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id):
            return False
        if grid_ids is not None:
            await conn.execute("DELETE FROM user_grids WHERE user_id = $1", user_id)
            await conn.executemany(
                "INSERT INTO user_grids (user_id, grid_id) VALUES ($1, $2)",
                [(user_id, g) for g in grid_ids],
            )
        if password_hash is not None or active is False:
            # A changed password or a disabled account ends every session.
            await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
    return True


async def insert_session(
    conn: asyncpg.Connection,
    *,
    token_hash: bytes,
    user_id: int,
    kind: str,
    csrf_token: str,
    expires_at: datetime,
    user_agent: str,
) -> None:
    with map_pg_errors():
        await conn.execute(
            "INSERT INTO sessions (token_hash, user_id, kind, csrf_token, expires_at, user_agent)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            token_hash,
            user_id,
            kind,
            csrf_token,
            expires_at,
            user_agent[:200],
        )


async def get_session(
    conn: asyncpg.Connection, token_hash: bytes, now: datetime
) -> SessionRow | None:
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"SELECT {_USER_COLS}, s.kind, s.csrf_token, s.expires_at FROM sessions s"
            " JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active",
            token_hash,
            now,
        )
    if rec is None:
        return None
    return SessionRow(_user(rec), rec["kind"], rec["csrf_token"], rec["expires_at"])


async def renew_session(
    conn: asyncpg.Connection, token_hash: bytes, expires_at: datetime, max_age: timedelta
) -> datetime | None:
    """Move a session's expiry to ``expires_at``, but never past ``max_age`` after it was made;
    the new expiry, or None when that would not move it later (or the session is gone)."""
    with map_pg_errors():
        value = await conn.fetchval(
            "UPDATE sessions SET expires_at = least($2, created_at + $3)"
            " WHERE token_hash = $1 AND expires_at < least($2, created_at + $3)"
            " RETURNING expires_at",
            token_hash,
            expires_at,
            max_age,
        )
    return value if isinstance(value, datetime) else None


async def delete_session(conn: asyncpg.Connection, token_hash: bytes) -> None:
    with map_pg_errors():
        await conn.execute("DELETE FROM sessions WHERE token_hash = $1", token_hash)


async def purge_expired_sessions(conn: asyncpg.Connection, now: datetime) -> int:
    with map_pg_errors():
        status = await conn.execute("DELETE FROM sessions WHERE expires_at <= $1", now)
    return int(status.split()[-1])


async def audit(
    conn: asyncpg.Connection,
    *,
    user_id: int | None,
    action: str,
    target: str = "",
    detail: Mapping[str, Any] | None = None,
    ip: str = "",
) -> None:
    with map_pg_errors():
        await conn.execute(
            "INSERT INTO audit_log (user_id, action, target, detail, ip) VALUES ($1, $2, $3, $4, $5)",
            user_id,
            action,
            target,
            dict(detail or {}),
            ip,
        )
