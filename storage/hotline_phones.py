"""The hotline agents' desk phones in PostgreSQL: the SIP accounts (``migrations/0009``) and where
each phone is registered (``migrations/0015``), so a restarted hub knows its phones again.

Theory of operation: as in ``storage.hotline``, every function takes a connection (the caller picks
the transaction) and returns frozen dataclasses; nothing here imports the hub.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from storage.db import map_pg_errors

# -- desk phones (migration 0009) ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Phone:
    """An agent's desk phone or softphone account: the SIP user it registers as and the digest
    HA1 (``MD5(sip_user:realm:password)``; the password itself is never stored)."""

    user_id: int
    sip_user: str
    ha1: str = dataclasses.field(repr=False)
    realm: str
    updated_at: datetime
    username: str = ""
    display_name: str = ""


_PHONE_COLS = (
    "p.user_id, p.sip_user, p.ha1, p.realm, p.updated_at, u.username, u.display_name"
    " FROM hotline_phones p JOIN users u ON u.id = p.user_id"
)


def _phone(rec: Mapping[str, Any]) -> Phone:
    return Phone(**{f.name: rec[f.name] for f in dataclasses.fields(Phone)})


async def set_phone(
    conn: asyncpg.Connection, user_id: int, sip_user: str, ha1: str, *, realm: str = "cityhub"
) -> Phone:
    """Create or replace the user's phone account (one per user; ``RecordConflict`` when another
    user's phone already has ``sip_user``)."""
    with map_pg_errors():
        await conn.execute(
            "INSERT INTO hotline_phones (user_id, sip_user, ha1, realm) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id) DO UPDATE SET sip_user = EXCLUDED.sip_user,"
            " ha1 = EXCLUDED.ha1, realm = EXCLUDED.realm, updated_at = now()",
            user_id,
            sip_user,
            ha1,
            realm,
        )
        # new credentials: the phone registers again (as the registrar forgets it in memory)
        await conn.execute("DELETE FROM hotline_phone_bindings WHERE user_id = $1", user_id)
        rec = await conn.fetchrow(f"SELECT {_PHONE_COLS} WHERE p.user_id = $1", user_id)
    assert rec is not None
    return _phone(rec)


async def get_phone_by_sip_user(conn: asyncpg.Connection, sip_user: str) -> Phone | None:
    with map_pg_errors():
        rec = await conn.fetchrow(f"SELECT {_PHONE_COLS} WHERE p.sip_user = $1", sip_user)
    return None if rec is None else _phone(rec)


async def delete_phone(conn: asyncpg.Connection, user_id: int) -> Phone | None:
    """Remove the user's phone account; the account as it was, or None when there was none."""
    with map_pg_errors():
        rec = await conn.fetchrow(f"SELECT {_PHONE_COLS} WHERE p.user_id = $1", user_id)
        if rec is not None:
            await conn.execute("DELETE FROM hotline_phones WHERE user_id = $1", user_id)
    return None if rec is None else _phone(rec)


async def list_phones(conn: asyncpg.Connection) -> list[Phone]:
    with map_pg_errors():
        rows = await conn.fetch(f"SELECT {_PHONE_COLS} ORDER BY p.sip_user")
    return [_phone(r) for r in rows]


# -- where the phones are registered (migration 0015) -----------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class StoredBinding:
    """One registered contact of a phone (the registrar's ``Binding``, as stored)."""

    contact: str
    expires_at: float  # epoch seconds
    call_id: str
    cseq: int
    source_host: str = ""
    source_port: int = 0
    q: str | None = None


async def save_bindings(
    conn: asyncpg.Connection, sip_user: str, bindings: Sequence[StoredBinding]
) -> None:
    """Replace the stored contacts of the phone ``sip_user`` with ``bindings`` (none: it is
    unregistered). A SIP user without an account is ignored (its account was just deleted)."""
    with map_pg_errors():
        async with conn.transaction():
            uid = await conn.fetchval(
                "SELECT user_id FROM hotline_phones WHERE sip_user = $1", sip_user
            )
            if uid is None:
                return
            await conn.execute("DELETE FROM hotline_phone_bindings WHERE user_id = $1", uid)
            await conn.executemany(
                "INSERT INTO hotline_phone_bindings (user_id, contact, expires_at, call_id, cseq,"
                " source_host, source_port, q) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (user_id, contact) DO NOTHING",
                [
                    (uid, b.contact, datetime.fromtimestamp(b.expires_at, UTC), b.call_id,
                     b.cseq, b.source_host, b.source_port, b.q)
                    for b in bindings
                ],
            )  # fmt: skip


async def load_bindings(conn: asyncpg.Connection, now: float) -> dict[str, list[StoredBinding]]:
    """The contacts still live at ``now`` (epoch seconds), by SIP user; lapsed ones are deleted."""
    at = datetime.fromtimestamp(now, UTC)
    with map_pg_errors():
        await conn.execute("DELETE FROM hotline_phone_bindings WHERE expires_at <= $1", at)
        rows = await conn.fetch(
            "SELECT p.sip_user, b.contact, b.expires_at, b.call_id, b.cseq, b.source_host,"
            " b.source_port, b.q FROM hotline_phone_bindings b"
            " JOIN hotline_phones p ON p.user_id = b.user_id ORDER BY p.sip_user, b.contact"
        )
    out: dict[str, list[StoredBinding]] = {}
    for r in rows:
        out.setdefault(r["sip_user"], []).append(
            StoredBinding(
                r["contact"],
                r["expires_at"].timestamp(),
                r["call_id"],
                int(r["cseq"]),
                r["source_host"],
                int(r["source_port"]),
                r["q"],
            )
        )
    return out
