"""Reference data every installation needs: the category catalog and the working-time calendar.

The seed files are packaged here (``storage/seed/categories.csv`` and ``storage/seed/calendar_cn.csv``,
read with ``read_seed``); their meaning is parsed by the caller (``hub.core.reference``), and
``ensure_reference_data`` writes the parsed rows into empty tables. It is idempotent and safe to run on
every start, also from several hub processes at once: a transaction-scoped advisory lock serialises the
check and the load, and a table that already has rows (loaded earlier, or edited by the city) is left
alone. The parsers are called only when a table is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources

import asyncpg

from storage.db import map_pg_errors

log = logging.getLogger("cityhub.storage.reference")

#: Advisory-lock key serialising reference loading ("cityref" in ASCII).
REFERENCE_LOCK_KEY = 0x63697479726566
CATEGORIES_RESOURCE = "seed/categories.csv"
CALENDAR_RESOURCE = "seed/calendar_cn.csv"
MAX_SEED_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class CategorySeed:
    """One row of ``categories``, as loaded from the seed catalog."""

    code: str
    kind: str
    major_code: str
    major_name: str
    minor_code: str
    minor_name: str
    time_limit_value: int | None
    time_limit_unit: str | None
    time_limit_text: str
    urgency: int
    source: str


def read_seed(name: str) -> str:
    """A packaged seed file's text (FileNotFoundError when it is not packaged)."""
    text = resources.files("storage").joinpath(name).read_text(encoding="utf-8")
    if len(text) > MAX_SEED_CHARS:
        raise ValueError(f"{name}: longer than {MAX_SEED_CHARS} characters")
    return text


#: One calendar exception: (day, is_workday, note).
CalendarDay = tuple[date, bool, str]


async def ensure_reference_data(
    conn: asyncpg.Connection,
    categories: Callable[[], Sequence[CategorySeed]],
    calendar: Callable[[], Sequence[CalendarDay]],
) -> None:
    """Load ``categories()`` into an empty ``categories`` table and ``calendar()`` into an empty
    ``calendar_days`` table. Idempotent; runs in (a savepoint of) the caller's transaction.
    ``calendar`` may raise FileNotFoundError: the calendar then has no holidays."""
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", REFERENCE_LOCK_KEY)
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM categories)"):
                cats = categories()
                await conn.executemany(
                    "INSERT INTO categories (code, kind, major_code, major_name, minor_code,"
                    " minor_name, time_limit_value, time_limit_unit, time_limit_text, urgency, source)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    [
                        (
                            c.code,
                            c.kind,
                            c.major_code,
                            c.major_name,
                            c.minor_code,
                            c.minor_name,
                            c.time_limit_value,
                            c.time_limit_unit,
                            c.time_limit_text,
                            c.urgency,
                            c.source,
                        )
                        for c in cats
                    ],
                )
                log.info("loaded %d categories from the seed catalog", len(cats))
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM calendar_days)"):
                try:
                    days = calendar()
                except FileNotFoundError:
                    log.warning("no calendar packaged: working calendar has no holidays")
                    return
                await conn.executemany(
                    "INSERT INTO calendar_days (day, is_workday, note) VALUES ($1, $2, $3)", days
                )
                log.info("loaded %d calendar exception days", len(days))


async def load_calendar(conn: asyncpg.Connection) -> dict[date, bool]:
    """The working-calendar exceptions: day -> is_workday (holidays False, 调休 days True)."""
    with map_pg_errors():
        rows = await conn.fetch("SELECT day, is_workday FROM calendar_days ORDER BY day")
    return {r["day"]: r["is_workday"] for r in rows}
