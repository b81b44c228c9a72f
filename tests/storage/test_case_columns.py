"""The case column list (``storage.cases.CASE_COLUMNS``) is the ``cases`` table as migrated."""

from __future__ import annotations

import dataclasses

import asyncpg

from storage.cases import CASE_COLUMNS, CASE_FIELDS, MUTABLE_FIELDS, CaseRow


async def test_the_list_is_the_migrated_table(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'cases'"
            " ORDER BY ordinal_position"
        )
    finally:
        await conn.close()
    table = [r["column_name"] for r in rows]
    assert sorted(table) == sorted(CASE_COLUMNS)
    assert len(set(CASE_COLUMNS)) == len(CASE_COLUMNS)


def test_a_case_row_has_one_field_per_column() -> None:
    assert [f.name for f in dataclasses.fields(CaseRow)] == [*CASE_FIELDS, "reporter_name"]
    assert (*CASE_FIELDS, "search") == CASE_COLUMNS
    assert set(CASE_FIELDS) >= MUTABLE_FIELDS
