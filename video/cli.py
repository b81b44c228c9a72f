"""``cityhub cameras import FILE.csv``: register or update cameras from a CSV file.

Theory of operation: the file is parsed and every row checked first
(``video.cameras.parse_cameras_csv``); if any row is wrong, every error is printed (``第 N 行：…``)
and nothing is written, so a file is either imported whole or not at all. Then, in one
transaction, the speakers the file names are looked up by name (an unknown one is a row error
too), each row is located (its unit grid from the point, and the nearest speaker within 200 m when
the speaker cell is empty) and upserted by name (importing the same file twice changes nothing; a
camera's ``pinned`` and ``active`` are kept), and one audit row records the import. The hub's
database is reached as ``cityhub migrate`` reaches it (``Settings.from_env``). Credentials inside
the URLs are stored apart from them, and never printed.
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
from storage import cameras as store
from storage import users as user_store
from storage.db import map_pg_errors
from storage.speakers import list_speakers
from video.cameras import CSV_COLUMNS, CSV_MAX_BYTES, RowError, parse_cameras_csv


@dataclasses.dataclass(frozen=True, slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: tuple[RowError, ...] = ()


async def import_cameras(pool: asyncpg.Pool, data: bytes) -> ImportReport:
    """Check every row, then import them all in one transaction (or nothing, with the errors)."""
    created = updated = 0
    with map_pg_errors():
        async with pool.acquire() as conn, conn.transaction():
            speakers = {s.name: s.id for s in await list_speakers(conn)}
            parsed = parse_cameras_csv(data, speaker_of=speakers.get)
            if parsed.errors:
                return ImportReport(errors=parsed.errors)
            for row in parsed.rows:
                _cam, is_new = await store.upsert_camera(conn, await store.locate(conn, row.fields))
                created += is_new
                updated += not is_new
            await user_store.audit(
                conn,
                user_id=None,
                action="cameras_import_cli",
                target="cameras",
                detail={"created": created, "updated": updated},
            )
    return ImportReport(created, updated)


async def _run_import(settings: Settings, data: bytes) -> ImportReport:
    from hub.web.app import build_state, close_state

    state = await build_state(settings, live=False)
    try:
        return await import_cameras(state.pool, data)
    finally:
        await close_state(state)


def run(args: argparse.Namespace) -> int:
    if args.cameras_command != "import":
        print(f"cityhub cameras: unknown command {args.cameras_command}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    path = Path(args.file)
    try:
        with path.open("rb") as f:
            data = f.read(CSV_MAX_BYTES + 1)
    except OSError as exc:
        print(f"cityhub cameras import: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    # Every check but the speakers' first, so a broken file never waits for the database.
    early = parse_cameras_csv(data, speaker_of=lambda _name: 0).errors
    settings = Settings.from_env(data_dir=Path(args.data_dir) if args.data_dir else None)
    report = ImportReport(errors=early) if early else asyncio.run(_run_import(settings, data))
    for err in report.errors:
        print(str(err), file=sys.stderr)
    if report.errors:
        print(f"{len(report.errors)} 处错误，未导入任何摄像头", file=sys.stderr)
        return 1
    print(f"导入完成：新增 {report.created} 个摄像头，更新 {report.updated} 个")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cameras_command", required=True)
    imp = sub.add_parser(
        "import",
        help="register or update cameras from a CSV file (by name; all rows or none)",
        description="columns: " + ", ".join(CSV_COLUMNS) + " (tags separated by |; speaker by name,"
        " empty: the nearest within 200 m)",
    )
    imp.add_argument("file", help="a UTF-8 CSV file with a header row")
    imp.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="where data is kept (CITYHUB_DATA_DIR)"
    )


CAMERAS_CLI = CliCommand(
    name="cameras",
    help="manage the video wall's cameras (import from CSV)",
    configure=configure,
    run=run,
)
