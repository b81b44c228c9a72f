"""``cityhub speakers import FILE.csv``: register or update speakers from a CSV file.

Theory of operation: the file is parsed and every row checked first
(``telephony.warnings.speakers.parse_speakers_csv``); if any row is wrong, every error is printed
(``第 N 行：…``) and nothing is written, so a file is either imported whole or not at all. Then, in
one transaction, each row is upserted by name (importing the same file twice changes nothing), the
groups a row names are created when missing and become the speaker's groups (a file without a
``groups`` column leaves memberships alone), and one audit row records the import. The hub's
database is reached as ``cityhub migrate`` reaches it (``Settings.from_env``: the embedded
PostgreSQL under the data dir, or ``CITYHUB_DATABASE_URL``). Passwords are stored, never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

import asyncpg

from hub.settings import Settings
from hub.subsystem import CliCommand
from storage import users as user_store
from storage import voice
from storage.catalog import Catalog
from storage.db import map_pg_errors
from telephony.warnings.speakers import CSV_COLUMNS, CSV_MAX_BYTES, RowError, parse_speakers_csv


@dataclasses.dataclass(frozen=True, slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    groups_created: int = 0
    errors: tuple[RowError, ...] = ()


def grid_lookup(catalog: Catalog) -> dict[str, int]:
    """Grid codes and ids (as text) to grid ids."""
    out: dict[str, int] = {}
    for g in catalog.grids.values():
        out[g.code] = g.id
        out[str(g.id)] = g.id
    return out


async def import_speakers(pool: asyncpg.Pool, data: bytes, catalog: Catalog) -> ImportReport:
    """Check every row, then import them all in one transaction (or nothing, with the errors)."""
    grids = grid_lookup(catalog)
    parsed = parse_speakers_csv(data, grid_of=grids.get)
    if parsed.errors:
        return ImportReport(errors=parsed.errors)
    created = updated = groups_created = 0
    with map_pg_errors():
        async with pool.acquire() as conn, conn.transaction():
            group_ids: dict[str, int] = {g.name: g.id for g in await voice.list_groups(conn)}
            for row in parsed.rows:
                speaker, is_new = await voice.upsert_speaker(conn, row.fields)
                created += is_new
                updated += not is_new
                if row.groups is None:
                    continue
                for name in row.groups:
                    if name not in group_ids:
                        group = await voice.insert_group(conn, name=name)
                        group_ids[name] = group.id
                        groups_created += 1
                await voice.set_speaker_groups(conn, speaker.id, [group_ids[n] for n in row.groups])
            await user_store.audit(
                conn,
                user_id=None,
                action="speakers_import_cli",
                target="speakers",
                detail={"created": created, "updated": updated, "groups_created": groups_created},
            )
    return ImportReport(created, updated, groups_created)


async def _run_import(settings: Settings, data: bytes) -> ImportReport:
    from hub.web.app import build_state, close_state

    state = await build_state(settings, live=False)
    try:
        return await import_speakers(state.pool, data, state.catalog)
    finally:
        await close_state(state)


def run(args: argparse.Namespace) -> int:
    if args.speakers_command != "import":
        print(f"cityhub speakers: unknown command {args.speakers_command}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    path = Path(args.file)
    try:
        with path.open("rb") as f:
            data = f.read(CSV_MAX_BYTES + 1)
    except OSError as exc:
        print(f"cityhub speakers import: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    # Every check but the grids' first, so a broken file never waits for the database.
    early = parse_speakers_csv(data, grid_of=lambda _code: 0).errors
    settings = Settings.from_env(data_dir=Path(args.data_dir) if args.data_dir else None)
    report = ImportReport(errors=early) if early else asyncio.run(_run_import(settings, data))
    for err in report.errors:
        print(str(err), file=sys.stderr)
    if report.errors:
        print(f"{len(report.errors)} 处错误，未导入任何喇叭", file=sys.stderr)
        return 1
    print(
        f"导入完成：新增 {report.created} 个喇叭，更新 {report.updated} 个，"
        f"新建分组 {report.groups_created} 个"
    )
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="speakers_command", required=True)
    imp = sub.add_parser(
        "import",
        help="register or update speakers from a CSV file (by name; all rows or none)",
        description="columns: " + ", ".join(CSV_COLUMNS) + " (cameras and groups separated by |)",
    )
    imp.add_argument("file", help="a UTF-8 CSV file with a header row")
    imp.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="where data is kept (CITYHUB_DATA_DIR)"
    )


SPEAKERS_CLI = CliCommand(
    name="speakers",
    help="manage the voice-warning speakers (import from CSV)",
    configure=configure,
    run=run,
)
