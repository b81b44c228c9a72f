"""The city's composite evaluation formula (migration 0013): one stored JSON object, or none (the
caller then uses its default). The object is checked by the caller before it is stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import map_pg_errors


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFormula:
    formula: dict[str, Any]
    updated_by: int | None
    updated_by_name: str | None
    updated_at: datetime


async def get_formula(conn: asyncpg.Connection) -> StoredFormula | None:
    with map_pg_errors():
        row = await conn.fetchrow(
            "SELECT f.formula, f.updated_by, u.display_name, f.updated_at"
            " FROM evaluation_formula f LEFT JOIN users u ON u.id = f.updated_by WHERE f.id = 1"
        )
    if row is None:
        return None
    return StoredFormula(
        formula=dict(row["formula"]),
        updated_by=row["updated_by"],
        updated_by_name=row["display_name"],
        updated_at=row["updated_at"],
    )


async def put_formula(
    conn: asyncpg.Connection, formula: Mapping[str, Any], updated_by: int | None
) -> StoredFormula:
    with map_pg_errors():
        await conn.execute(
            "INSERT INTO evaluation_formula (id, formula, updated_by, updated_at)"
            " VALUES (1, $1, $2, now())"
            " ON CONFLICT (id) DO UPDATE SET formula = EXCLUDED.formula,"
            " updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at",
            dict(formula),
            updated_by,
        )
    stored = await get_formula(conn)
    assert stored is not None
    return stored
