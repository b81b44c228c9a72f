"""Reference data every installation needs: the category catalog and the working-time calendar.

``ensure_reference_data`` loads the packaged seed files (``storage/seed/categories.csv`` and
``storage/seed/calendar_cn.csv``) into empty tables. It is idempotent and safe to run on every start,
also from several hub processes at once: a transaction-scoped advisory lock serialises the check and
the load, and a table that already has rows (loaded earlier, or edited by the city) is left alone.

Category codes: kind letter (``C`` component, ``E`` event) + major code + minor code, e.g. ``E0101``.
Where the catalog gives no verified minor code, a stable one is generated per (kind, major) in file
order: ``N01``, ``N02`` ... (``E02N01`` is the first unverified minor class of event major 02).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import date
from importlib import resources

import asyncpg

from hub.core.workcal import load_exceptions_csv, parse_time_limit
from storage.db import map_pg_errors

log = logging.getLogger("cityhub.storage.reference")

#: Advisory-lock key serialising reference loading ("cityref" in ASCII).
REFERENCE_LOCK_KEY = 0x63697479726566
CATEGORIES_RESOURCE = "seed/categories.csv"
CALENDAR_RESOURCE = "seed/calendar_cn.csv"
MAX_SEED_CHARS = 1_000_000
_CATEGORY_HEADER = [
    "kind",
    "major_code",
    "major_name",
    "minor_code",
    "minor_name",
    "time_limit",
    "source",
]
_KIND_LETTER = {"component": "C", "event": "E"}
#: Major classes whose cases are urgent (urgency tier 1); every other class is tier 2.
URGENT_MAJORS = frozenset({"突发事件"})


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


def _read_seed(name: str) -> str:
    text = resources.files("storage").joinpath(name).read_text(encoding="utf-8")
    if len(text) > MAX_SEED_CHARS:
        raise ValueError(f"{name}: longer than {MAX_SEED_CHARS} characters")
    return text


def parse_categories_csv(text: str) -> list[CategorySeed]:
    """Parse the seed catalog; raises ValueError (with the line number) on a malformed row."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != _CATEGORY_HEADER:
        raise ValueError(f"line 1: expected header {','.join(_CATEGORY_HEADER)!r}, got {header!r}")
    generated: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    out: list[CategorySeed] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(_CATEGORY_HEADER):
            raise ValueError(
                f"line {line}: expected {len(_CATEGORY_HEADER)} columns, got {len(row)}"
            )
        kind, major_code, major_name, minor_code, minor_name, limit_text, source = (
            c.strip() for c in row
        )
        if kind not in _KIND_LETTER:
            raise ValueError(f"line {line}: kind must be component or event, got {kind!r}")
        if not major_name or not minor_name:
            raise ValueError(f"line {line}: major_name and minor_name are required")
        if not minor_code:
            n = generated.get((kind, major_code), 0) + 1
            generated[(kind, major_code)] = n
            minor_code = f"N{n:02d}"
        code = _KIND_LETTER[kind] + major_code + minor_code
        if code in seen:
            raise ValueError(f"line {line}: duplicate category code {code}")
        seen.add(code)
        limit = parse_time_limit(limit_text) if limit_text else None
        out.append(
            CategorySeed(
                code=code,
                kind=kind,
                major_code=major_code,
                major_name=major_name,
                minor_code=minor_code,
                minor_name=minor_name,
                time_limit_value=limit[0] if limit else None,
                time_limit_unit=limit[1] if limit else None,
                time_limit_text=limit_text,
                urgency=1 if major_name in URGENT_MAJORS else 2,
                source=source,
            )
        )
    return out


def parse_calendar_csv(text: str) -> list[tuple[date, bool, str]]:
    """``day,is_workday,note`` rows (validated by ``hub.core.workcal.load_exceptions_csv``), with notes."""
    flags = load_exceptions_csv(text)
    notes: dict[date, str] = {}
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    next(reader, None)
    for row in reader:
        if len(row) == 3 and row[0].strip():
            notes[date.fromisoformat(row[0].strip())] = row[2].strip()
    return [(day, flag, notes.get(day, "")) for day, flag in sorted(flags.items())]


async def ensure_reference_data(conn: asyncpg.Connection) -> None:
    """Load the seed categories into an empty ``categories`` table and the seed calendar into an
    empty ``calendar_days`` table. Idempotent; runs in (a savepoint of) the caller's transaction."""
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", REFERENCE_LOCK_KEY)
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM categories)"):
                cats = parse_categories_csv(_read_seed(CATEGORIES_RESOURCE))
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
                    text = _read_seed(CALENDAR_RESOURCE)
                except FileNotFoundError:
                    log.warning(
                        "no %s packaged: working calendar has no holidays", CALENDAR_RESOURCE
                    )
                    return
                days = parse_calendar_csv(text)
                await conn.executemany(
                    "INSERT INTO calendar_days (day, is_workday, note) VALUES ($1, $2, $3)", days
                )
                log.info("loaded %d calendar exception days", len(days))


async def load_calendar(conn: asyncpg.Connection) -> dict[date, bool]:
    """The working-calendar exceptions: day -> is_workday (holidays False, 调休 days True)."""
    with map_pg_errors():
        rows = await conn.fetch("SELECT day, is_workday FROM calendar_days ORDER BY day")
    return {r["day"]: r["is_workday"] for r in rows}
