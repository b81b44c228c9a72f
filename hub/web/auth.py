"""Authentication and authorisation at the HTTP edge.

Browsers sign in with a password and get a random session token in an HttpOnly cookie; the server
stores only its SHA-256. Writes made with a cookie must carry the session's CSRF token in the
``X-CSRF-Token`` header and, when the browser sends an Origin, come from an allowed origin. API
clients and phones use bearer tokens (``Authorization: Bearer``), which browsers never send on their
own, so they need no CSRF token. Every request is checked for a role (``require``); scope rules
(department, grids) are applied by the case service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import asyncpg
from starlette.requests import HTTPConnection

from hub.core import passwords
from hub.core.errors import Forbidden, TooManyRequests, Unauthenticated
from hub.core.workflow import Actor, Role, label
from hub.settings import Settings
from hub.web.throttle import (
    AttemptKey,
    LoginPolicy,
    Refusal,
    Scope,
    ThrottleStore,
    admit,
    throttle_address,
)
from hub.web.throttle_redis import create_throttle_store
from storage import users as user_store
from storage.catalog import Catalog
from storage.db import connect, map_pg_errors
from storage.users import UserRow

SESSION_COOKIE = "cityhub_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TOKEN_LEN = 200


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class SessionKind(StrEnum):
    """How a principal signed in."""

    COOKIE = "cookie"  # a browser: session cookie, CSRF token on writes
    BEARER = "bearer"  # a phone or an API client: ``Authorization: Bearer``
    TICKET = "ticket"  # a websocket opened with a one-time ticket (no session to re-check)


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user of a request."""

    user: UserRow
    kind: SessionKind
    csrf_token: str
    token_hash: bytes
    role: Role
    actor: Actor

    def public(self) -> dict[str, object]:
        return user_json(self.user)


def user_json(user: UserRow) -> dict[str, object]:
    role = Role(user.role)
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": role.value,
        "role_label": label(role),
        "department_id": user.department_id,
        "grid_ids": list(user.grid_ids),
        "active": user.active,
    }


def make_actor(user: UserRow, catalog: Catalog) -> Actor:
    role = Role(user.role)
    grids = catalog.expand_grids(user.grid_ids) if role is Role.SUPERVISOR else frozenset()
    return Actor(user_id=user.id, role=role, department_id=user.department_id, grid_ids=grids)


def _bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@dataclasses.dataclass
class Authenticator:
    settings: Settings
    pool: asyncpg.Pool
    catalog_ref: list[Catalog]  # one-element holder so a catalog reload is seen at once
    #: The login throttle's records (``hub.web.throttle``); None: made from the settings (shared
    #: through Redis when ``redis_url`` is set). ``close()`` closes it.
    store: dataclasses.InitVar[ThrottleStore | None] = None
    #: Wall-clock time for the throttle: its records are compared across processes.
    clock: Callable[[], float] = time.time
    throttle: ThrottleStore = dataclasses.field(init=False)

    def __post_init__(self, store: ThrottleStore | None) -> None:
        self.throttle = store or create_throttle_store(
            self.settings.redis_url.reveal(), login_policy(self.settings)
        )

    async def close(self) -> None:
        await self.throttle.close()

    async def principal(self, conn: HTTPConnection, *, method: str = "GET") -> Principal:
        token = _bearer(conn)
        kind = SessionKind.BEARER
        if token is None:
            token = conn.cookies.get(SESSION_COOKIE)
            kind = SessionKind.COOKIE
        if not token or len(token) > MAX_TOKEN_LEN:
            raise Unauthenticated("请先登录")
        th = hash_token(token)
        now = datetime.now(UTC)
        async with connect(self.pool) as db:
            session = await user_store.get_session(db, th, now)
            if session is None or session.kind != kind:
                raise Unauthenticated("登录已过期，请重新登录", code="session_expired")
            ttl = timedelta(hours=self.settings.session_ttl_hours)
            if kind is SessionKind.COOKIE and session.expires_at - now < ttl / 2:
                # in use: renewed (at most every half TTL), within the sign-in's maximum age
                await user_store.renew_session(
                    db, th, now + ttl, timedelta(days=self.settings.session_max_days)
                )
        if kind is SessionKind.COOKIE and method not in SAFE_METHODS:
            self.check_origin(conn)
            sent = conn.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent, session.csrf_token):
                raise Forbidden("缺少或无效的 CSRF 令牌", code="csrf_failed")
        return Principal(
            user=session.user,
            kind=kind,
            csrf_token=session.csrf_token,
            token_hash=th,
            role=Role(session.user.role),
            actor=make_actor(session.user, self.catalog_ref[0]),
        )

    def check_origin(self, conn: HTTPConnection) -> None:
        """A browser's Origin must be this hub's own or an allowed one (missing: not a browser
        cross-site request, since browsers send Origin on cross-site writes and websockets)."""
        origin = conn.headers.get("origin")
        if origin is None:
            return
        host = conn.headers.get("host", "")
        own = {f"http://{host}", f"https://{host}"}
        if origin not in own and origin not in self.settings.allowed_origins:
            raise Forbidden("来源不被允许", code="bad_origin", details={"origin": origin[:100]})

    async def login(
        self, username: str, password: str, *, kind: str, client: str, user_agent: str
    ) -> tuple[UserRow, str, str, datetime]:
        """Check the password; create a session. Returns (user, token, csrf token, expiry)."""
        key = AttemptKey(account=username.lower(), address=throttle_address(client))
        ticket = await admit(self.throttle, key, self.clock())
        if isinstance(ticket, Refusal):
            raise too_many_attempts(ticket)
        # The attempt now counts as a failure until the password is found right.
        try:
            async with connect(self.pool) as db:
                found = await user_store.get_user_for_login(db, username)
            # argon2 is slow on purpose: verify off the event loop.
            if found is None:
                await asyncio.to_thread(passwords.verify_password, passwords.DUMMY_HASH, password)
                ok = False
            else:
                ok = found[0].active and await asyncio.to_thread(
                    passwords.verify_password, found[1], password
                )
        except Exception:  # not an answer (e.g. the database is down): neither failure nor success
            await self.throttle.cancel(ticket)
            raise
        async with connect(self.pool) as db:
            if not ok:
                await user_store.audit(
                    db,
                    user_id=found[0].id if found else None,
                    action="login_failed",
                    target=f"user:{username[:64]}",
                    ip=client,
                )
                raise Unauthenticated("用户名或密码错误", code="bad_credentials")
            assert found is not None
            user, stored = found
            await self.throttle.succeeded(ticket)
            now = datetime.now(UTC)
            ttl = (
                timedelta(hours=self.settings.session_ttl_hours)
                if kind == "cookie"
                else timedelta(days=self.settings.bearer_ttl_days)
            )
            token = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(24) if kind == "cookie" else ""
            with map_pg_errors():
                async with db.transaction():
                    if passwords.needs_rehash(stored):
                        await user_store.update_user(
                            db, user.id, password_hash=passwords.hash_password(password)
                        )
                    await user_store.insert_session(
                        db,
                        token_hash=hash_token(token),
                        user_id=user.id,
                        kind=kind,
                        csrf_token=csrf,
                        expires_at=now + ttl,
                        user_agent=user_agent,
                    )
                    await user_store.audit(
                        db, user_id=user.id, action="login", target=f"session:{kind}", ip=client
                    )
        return user, token, csrf, now + ttl

    async def logout(self, principal: Principal, client: str) -> None:
        async with connect(self.pool) as db, db.transaction():
            await user_store.delete_session(db, principal.token_hash)
            await user_store.audit(db, user_id=principal.user.id, action="logout", ip=client)


def login_policy(settings: Settings) -> LoginPolicy:
    return LoginPolicy(
        pair_free=settings.login_max_attempts, address_window=float(settings.login_window_seconds)
    )


def too_many_attempts(refusal: Refusal) -> TooManyRequests:
    """The 429 for a throttled login, with the wait in seconds or, past two minutes, minutes."""
    secs = refusal.retry_after
    wait = f"{secs} 秒" if secs < 120 else f"{-(-secs // 60)} 分钟"
    if refusal.scope is Scope.ADDRESS:
        message = f"此网络地址登录失败的账号过多，请 {wait}后再试"
    else:
        message = f"登录失败次数过多，请 {wait}后再试"
    return TooManyRequests(message, retry_after=secs)


def require(principal: Principal, roles: Collection[Role]) -> None:
    if principal.role not in roles:
        raise Forbidden(
            f"角色“{label(principal.role)}”无权访问",
            code="role_forbidden",
            details={"role": principal.role.value},
        )


ALL_ROLES: frozenset[Role] = frozenset(Role)
