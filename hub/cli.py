"""The ``cityhub`` command: serve, demo, migrate, users add, watch, tls selfsigned.

``serve`` speaks HTTPS (and the websocket listener WSS) when ``CITYHUB_TLS_CERT`` and
``CITYHUB_TLS_KEY`` name a PEM certificate chain and its key. ``tls selfsigned`` makes such a pair for
a city without its own CA: a small CA (kept in the output directory, reused by the next run, so
seat PCs trust it once) and a server certificate for the given names and addresses, signed by it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
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
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    server = uvicorn.Server(config)
    log.info(
        "cityhub %s on %s://%s:%s (data in %s; roles: %s)",
        __version__,
        "https" if settings.tls else "http",
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


# -- tls selfsigned --------------------------------------------------------------------------

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only (created 0600, never world-readable for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_selfsigned(
    out: Path, hosts: Sequence[str], *, days: int = 825, now: datetime | None = None
) -> tuple[Path, Path, Path]:
    """Write (or reuse) ``out/ca.crt`` + ``ca.key`` and write ``out/server.crt`` + ``server.key``
    for ``hosts`` (DNS names or IP addresses; the first is the subject's CN); returns (CA cert,
    server cert, server key). An existing CA in ``out`` signs the new server certificate, so seat
    PCs that trust it need nothing new when the server certificate is renewed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts:
        raise CityhubError("--host: at least one name or address")
    now = now or datetime.now(UTC)
    out.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = out / CA_CERT, out / CA_KEY
    pem = serialization.Encoding.PEM
    if ca_cert_path.is_file() and ca_key_path.is_file():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CityhubError(f"{ca_key_path}: not an EC key made by this command")
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cityhub"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"cityhub local CA {now:%Y-%m-%d}"),
            ]
        )
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(
            ca_key_path,
            ca_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        ca_cert_path.write_bytes(ca_cert.public_bytes(pem))
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key_path, server_cert_path = out / SERVER_KEY, out / SERVER_CERT
    _write_private(
        server_key_path,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    server_cert_path.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return ca_cert_path, server_cert_path, server_key_path


def cmd_tls_selfsigned(args: argparse.Namespace) -> int:
    hosts = [h.strip() for h in args.host.split(",") if h.strip()]
    ca, cert, key = make_selfsigned(Path(args.out), hosts, days=args.days)
    print(f"CA certificate (import it on the seat PCs): {ca}")
    print(f"server certificate for {', '.join(hosts)}: {cert}")
    print(f"CITYHUB_TLS_CERT={cert.resolve()}")
    print(f"CITYHUB_TLS_KEY={key.resolve()}")
    return 0


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

    t = sub.add_parser("tls", help="certificates for HTTPS/WSS")
    tsub = t.add_subparsers(dest="tls_command", required=True)
    ts = tsub.add_parser(
        "selfsigned",
        help="write a local CA and a server certificate signed by it (the CA is reused if present)",
    )
    ts.add_argument("--out", required=True, help="directory for ca.crt, ca.key, server.crt/.key")
    ts.add_argument(
        "--host",
        required=True,
        help="the names and addresses seat PCs use for the hub, comma separated"
        " (e.g. hub.city.local,10.1.2.3)",
    )
    ts.add_argument("--days", type=int, default=825, help="server certificate validity (825)")
    ts.set_defaults(func=cmd_tls_selfsigned)

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
