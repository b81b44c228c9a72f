"""The ``cityhub`` command: serve, demo, migrate, users add."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hub import __version__
from hub.core.errors import CityhubError
from hub.settings import Settings, SettingsError
from storage.errors import StorageError

log = logging.getLogger("cityhub")


def _settings(args: argparse.Namespace) -> Settings:
    roles = getattr(args, "roles", None)
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        roles=tuple(r.strip() for r in roles.split(",") if r.strip()) if roles else None,
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pgserver logs every command line it runs at INFO; keep its warnings only.
    logging.getLogger("pgserver").setLevel(logging.WARNING)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hub import subsystem
    from hub.web.app import create_app

    settings = _settings(args)
    _setup_logging(settings.log_level)
    try:
        running = subsystem.select(subsystem.installed(), settings.roles)
    except subsystem.SubsystemError as exc:
        print(f"cityhub: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, demo=args.demo, demo_cases=args.demo_cases, subsystems=running)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=args.access_log,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        ws="none",
    )
    server = uvicorn.Server(config)
    log.info(
        "cityhub %s on http://%s:%s (data in %s; roles: %s)",
        __version__,
        settings.host,
        settings.port,
        settings.data_dir,
        ",".join(s.name for s in running),
    )
    server.run()
    return 0 if server.started else 1


async def _with_state(settings: Settings, demo: bool, demo_cases: int) -> None:
    from hub.web.app import build_state, close_state

    state = await build_state(settings, demo=demo, demo_cases=demo_cases, live=False)
    await close_state(state)


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _setup_logging(settings.log_level)
    asyncio.run(_with_state(settings, True, args.demo_cases))
    print("demo city loaded; accounts are listed in docs/demo.md")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _setup_logging(settings.log_level)
    asyncio.run(_with_state(settings, False, 0))
    print("database is up to date")
    return 0


async def _add_user(settings: Settings, args: argparse.Namespace, password: str) -> int:
    from hub.core import passwords
    from hub.web.app import build_state, close_state
    from hub.web.routes.users import check_user_shape
    from storage import users as user_store
    from storage.db import map_pg_errors

    state = await build_state(settings, live=False)
    try:
        department_id = None
        if args.department:
            wanted = args.department
            for d in state.catalog.departments.values():
                if wanted in (str(d.id), d.code, d.name):
                    department_id = d.id
            if department_id is None:
                raise CityhubError(f"unknown department: {wanted}")
        grid_ids: list[int] = []
        for code in args.grid or []:
            match = [g.id for g in state.catalog.grids.values() if code in (str(g.id), g.code)]
            if not match:
                raise CityhubError(f"unknown grid: {code}")
            grid_ids.extend(match)
        check_user_shape(state, args.role, department_id, grid_ids)
        hashed = await asyncio.to_thread(passwords.hash_password, password)
        async with state.pool.acquire() as conn:
            with map_pg_errors():
                async with conn.transaction():
                    uid = await user_store.insert_user(
                        conn,
                        username=args.name,
                        display_name=args.display_name or args.name,
                        password_hash=hashed,
                        role=args.role,
                        department_id=department_id,
                        grid_ids=grid_ids,
                    )
                    await user_store.audit(
                        conn,
                        user_id=None,
                        action="user_create_cli",
                        target=f"user:{uid}",
                        detail={"username": args.name, "role": args.role},
                    )
        print(f"user {args.name} created (id {uid}, role {args.role})")
        return 0
    finally:
        await close_state(state)


def cmd_users_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _setup_logging("WARNING")
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    return asyncio.run(_add_user(settings, args, password))


def cmd_watch(args: argparse.Namespace) -> int:
    from hub.live.watch import WatchError, main

    try:
        return main(args.url, args.user, args.channels, args.start)
    except WatchError as exc:
        print(f"cityhub watch: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cityhub", description="数字城管 supervision and command hub")
    p.add_argument("--version", action="version", version=f"cityhub {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data-dir", help="where data is kept (CITYHUB_DATA_DIR, default ./var)")

    s = sub.add_parser("serve", help="run the hub")
    common(s)
    s.add_argument("--host", help="listen address (CITYHUB_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="HTTP port (CITYHUB_PORT, default 8000)")
    s.add_argument("--demo", action="store_true", help="load the demo city (once) before serving")
    s.add_argument("--demo-cases", type=int, default=10_000, help=argparse.SUPPRESS)
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.add_argument(
        "--roles",
        help="subsystems this process runs, comma separated (CITYHUB_ROLES; default: all,"
        " e.g. web,telephony,video)",
    )
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="load the demo city into the database and exit")
    common(d)
    d.add_argument("--demo-cases", type=int, default=10_000)
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("migrate", help="apply database migrations and exit")
    common(m)
    m.set_defaults(func=cmd_migrate)

    w = sub.add_parser("watch", help="print live events of channels as JSON lines")
    w.add_argument(
        "channels", nargs="*", help="e.g. cases, dept:3, grid:12, alarms (default: all you may see)"
    )
    w.add_argument("--url", default="http://127.0.0.1:8000", help="the hub's HTTP address")
    w.add_argument(
        "--user", help="sign in as this user (password on standard input); or set CITYHUB_TOKEN"
    )
    w.add_argument(
        "--from",
        dest="start",
        metavar="EPOCH:OFFSET",
        help="resume after this offset (one channel)",
    )
    w.set_defaults(func=cmd_watch)

    u = sub.add_parser("users", help="manage accounts")
    usub = u.add_subparsers(dest="users_command", required=True)
    ua = usub.add_parser("add", help="add an account; the password is read from standard input")
    common(ua)
    ua.add_argument("name")
    ua.add_argument(
        "--role",
        required=True,
        choices=["admin", "seat", "dispatcher", "department", "supervisor", "agent", "viewer"],
    )
    ua.add_argument("--department", help="department id, code or name (role department)")
    ua.add_argument("--grid", action="append", help="grid id or code (role supervisor; repeatable)")
    ua.add_argument("--display-name")
    ua.set_defaults(func=cmd_users_add)

    from hub import subsystem

    for plug in subsystem.installed():
        for command in plug.cli_commands():
            sp = sub.add_parser(command.name, help=command.help)
            common(sp)
            command.configure(sp)
            sp.set_defaults(func=command.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
        return rc
    except SettingsError as exc:
        print(f"cityhub: bad settings: {exc.message}", file=sys.stderr)
        return 2
    except (CityhubError, StorageError) as exc:
        print(
            f"cityhub: {exc.message}" + (f" ({exc.details})" if exc.details else ""),
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
