"""Reference data at start-up: the packaged seed files (``storage``), parsed here (pure: text in,
rows out), written into empty tables (``storage.reference``).

Category codes: kind letter (``C`` component, ``E`` event) + major code + minor code, e.g. ``E0101``.
Where the catalog gives no verified minor code, a stable one is generated per (kind, major) in file
order: ``N01``, ``N02`` ... (``E02N01`` is the first unverified minor class of event major 02).
"""

from __future__ import annotations

import csv
import io
from datetime import date

import asyncpg

from hub.core.workcal import load_exceptions_csv, parse_time_limit
from storage import reference as store
from storage.reference import CategorySeed

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
    """Load the seed catalog and calendar into empty tables (idempotent; see storage.reference)."""
    await store.ensure_reference_data(
        conn,
        categories=lambda: parse_categories_csv(store.read_seed(store.CATEGORIES_RESOURCE)),
        calendar=lambda: parse_calendar_csv(store.read_seed(store.CALENDAR_RESOURCE)),
    )
