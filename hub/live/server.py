"""``/ws``: the websocket sessions, served by the ``websockets`` library on their own listener.

Frames are written straight to each connection's transport, as ``websockets.broadcast`` does (an
envelope is encoded once by the relay and sent as the same bytes to every subscriber); the slow-consumer
policy (``hub.core.live.SendPolicy``) reads the transport's write buffer before each write. A connection
over its limit gets nothing more until its buffer drains, then a ``resync`` per channel; one that does
not drain within the timeout is closed with 4008. See docs/live.md for the protocol.

With ``CITYHUB_TLS_CERT``/``CITYHUB_TLS_KEY`` the listener speaks TLS (``wss://``) with the same
certificate as the HTTPS pages (``server_tls_context``): a page served over HTTPS may only open
``wss://`` websockets, and ``/api/live`` hands out the URL with the page's own scheme.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from hub.core import live
from hub.core.errors import CityhubError
from hub.live.fanout import Fanout
from hub.web.auth import SESSION_COOKIE, Authenticator, Principal, SessionKind, make_actor
from hub.web.status import status_of
from storage import live as live_store
from storage import users as user_store
from storage.catalog import Catalog
from storage.db import OUTAGE_ERRORS
from storage.errors import StorageError

log = logging.getLogger("cityhub.ws")

MAX_MESSAGE = 64 * 1024
MAX_BAD_MESSAGES = 20
MAX_CHANNELS = 64
CLOSE_SESSION_ENDED = 4001
CLOSE_TOO_SLOW = 4008
CLOSE_BAD_CLIENT = 4400


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side TLS context for the PEM certificate chain ``cert`` and its ``key`` (TLS 1.2
    and up, the ssl module's default ciphers)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


@dataclasses.dataclass
class Sub:
    offset: int
    replaying: bool = False
    pending: list[tuple[int, str | bytes]] = dataclasses.field(default_factory=list)


class Session:
    def __init__(
        self, conn: ServerConnection, principal: Principal, viewer: live.Viewer, hub: LiveServer
    ) -> None:
        self.conn = conn
        self.principal = principal
        self.viewer = viewer
        self.hub = hub
        self.subs: dict[str, Sub] = {}
        self.overflowed = False
        self.bad = 0
        self.sent = 0
        self.queued = 0
        #: Serialized websocket frames waiting for the end of this turn of the event loop.
        self.out: list[bytes] = []

    # -- delivery (called synchronously by the fan-out) -------------------------------------

    def deliver(
        self, channel: str, offset: int, frame: str | bytes, facts: live.CaseEventFacts | None
    ) -> None:
        sub = self.subs.get(channel)
        if sub is None:
            return
        if facts is not None and not live.may_receive(self.viewer, facts):
            return
        if sub.replaying:
            sub.pending.append((offset, frame))
            if len(sub.pending) > self.hub.policy.max_messages:
                self._overflow()
            return
        if offset <= sub.offset:
            return
        sub.offset = offset
        self.write(frame)

    def write(self, frame: str | bytes) -> None:
        """Queue one text message; it goes out with whatever else this session is sent in the same
        turn of the event loop, in one ``transport.write`` (``LiveServer.flush``)."""
        if self.overflowed:
            return
        conn = self.conn
        if conn.protocol.state is not State.OPEN:
            return
        wire = self.hub.wire(frame)
        if self.hub.policy.over(conn.transport.get_write_buffer_size() + self.queued, 0):
            self._overflow()
            return
        self.out.append(wire)
        self.queued += len(wire)
        self.sent += 1
        if len(self.out) == 1:
            self.hub.mark_dirty(self)

    def flush(self) -> None:
        out, self.out = self.out, []
        self.queued = 0
        conn = self.conn
        if not out or conn.protocol.state is not State.OPEN:
            return  # closing: what is left is dropped (the client resumes from its offset)
        try:
            conn.transport.write(out[0] if len(out) == 1 else b"".join(out))
        except Exception as exc:  # the peer went away mid-write: the handler will clean up
            log.debug("write failed: %r", exc)

    def _overflow(self) -> None:
        if self.overflowed:
            return
        self.overflowed = True
        log.info("session %s is too slow: pausing its updates", self.principal.user.username)
        asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        """Wait for the buffer to drain, then tell the client to resync each channel (or close)."""
        deadline = asyncio.get_running_loop().time() + self.hub.policy.drain_timeout
        transport = self.conn.transport
        while asyncio.get_running_loop().time() < deadline:
            if self.conn.protocol.state is not State.OPEN:
                return
            if transport.get_write_buffer_size() < self.hub.policy.max_bytes // 4:
                self.overflowed = False
                for channel, sub in self.subs.items():
                    head = self.hub.head(channel)
                    sub.offset = head
                    sub.replaying = False
                    sub.pending.clear()
                    self.write(
                        live.control(
                            "resync",
                            channel=channel,
                            reason="slow_consumer",
                            epoch=self.hub.epoch_for(channel),
                            offset=head,
                        )
                    )
                return
            await asyncio.sleep(0.1)
        await self.conn.close(CLOSE_TOO_SLOW, "too slow")

    # -- client messages -----------------------------------------------------------------

    async def handle(self, raw: str | bytes) -> None:
        try:
            if isinstance(raw, bytes):
                raise ValueError("text frames only")
            msg = orjson.loads(raw)
            if not isinstance(msg, dict):
                raise ValueError("a JSON object is expected")
            kind = msg.get("type")
            if kind == "subscribe":
                await self.subscribe(msg.get("channels"))
            elif kind == "unsubscribe":
                self.unsubscribe(msg.get("channels"))
            elif kind == "ping":
                self.write(
                    live.control(
                        "pong", id=msg.get("id") if isinstance(msg.get("id"), int | str) else None
                    )
                )
            else:
                raise ValueError(f"unknown message type: {str(kind)[:40]}")
        except (ValueError, orjson.JSONDecodeError) as exc:
            self.bad += 1
            self.write(
                live.control(
                    "error", code="bad_message", message=f"无法处理的消息: {str(exc)[:200]}"
                )
            )
            if self.bad > MAX_BAD_MESSAGES:
                await self.conn.close(CLOSE_BAD_CLIENT, "too many bad messages")

    async def subscribe(self, channels: Any) -> None:
        if not isinstance(channels, list) or not channels:
            raise ValueError("channels must be a non-empty list")
        if len(channels) + len(self.subs) > MAX_CHANNELS:
            raise ValueError(f"at most {MAX_CHANNELS} channels")
        for item in channels:
            if isinstance(item, str):
                item = {"channel": item}
            if not isinstance(item, dict) or not isinstance(item.get("channel"), str):
                raise ValueError("each channel is a name or {channel, epoch, offset}")
            name = live.ChannelName.parse(item["channel"], self.hub.fanout.state_channels)
            if name is None:
                self.write(
                    live.control(
                        "error",
                        code="unknown_channel",
                        message="没有这个频道",
                        channel=str(item["channel"])[:40],
                    )
                )
                continue
            if not live.may_subscribe(self.viewer, name, self.hub.fanout.state_channels):
                self.write(
                    live.control(
                        "error",
                        code="forbidden_channel",
                        message="无权订阅该频道",
                        channel=str(name),
                    )
                )
                continue
            offset = item.get("offset")
            epoch = item.get("epoch")
            if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool)):
                raise ValueError("offset must be an integer")
            if epoch is not None and not isinstance(epoch, str):
                raise ValueError("epoch must be a string")
            await self._subscribe_one(str(name), name.is_state, epoch, offset)

    async def _subscribe_one(
        self, channel: str, is_state: bool, epoch: str | None, offset: int | None
    ) -> None:
        fan = self.hub.fanout
        if channel in self.subs:
            self._remove(channel)
        if is_state:
            self.subs[channel] = Sub(offset=fan.state_offsets.get(channel, 0))
            fan.add(channel, self)
            self.write(fan.snapshot(channel))
            self.write(
                live.control(
                    "subscribed",
                    channel=channel,
                    epoch=fan.state_epoch,
                    offset=self.subs[channel].offset,
                    replayed=0,
                )
            )
            return
        head = fan.head(channel)
        plan = live.plan_resume(fan.epoch, head, epoch, offset)
        sub = Sub(offset=head)
        self.subs[channel] = sub
        fan.add(channel, self)
        replayed = 0
        if plan.kind is live.ResumeKind.REPLAY:
            sub.offset = plan.after
            sub.replaying = True
            try:
                frames = await fan.replay(channel, plan.after, plan.upto)
            finally:
                sub.replaying = False
            if self.subs.get(channel) is not sub:
                return
            if frames is None:
                plan = live.Resume(live.ResumeKind.NOT_RECOVERED, head, head)
                sub.offset = head
            else:
                for frame in frames:
                    self.write(frame)
                replayed = len(frames)
                sub.offset = plan.upto
            pending, sub.pending = sub.pending, []
            for off, pending_frame in pending:
                if off == sub.offset + 1:
                    sub.offset = off
                    self.write(pending_frame)
        if plan.kind is live.ResumeKind.NOT_RECOVERED:
            sub.pending.clear()
            self.write(
                live.control(
                    "resync",
                    channel=channel,
                    reason="not_recovered",
                    epoch=fan.epoch,
                    offset=sub.offset,
                )
            )
        self.write(
            live.control(
                "subscribed", channel=channel, epoch=fan.epoch, offset=sub.offset, replayed=replayed
            )
        )

    def unsubscribe(self, channels: Any) -> None:
        if not isinstance(channels, list):
            raise ValueError("channels must be a list")
        for ch in channels:
            if isinstance(ch, str) and ch in self.subs:
                self._remove(ch)

    def _remove(self, channel: str) -> None:
        self.subs.pop(channel, None)
        self.hub.fanout.remove(channel, self)

    def close(self) -> None:
        for channel in list(self.subs):
            self._remove(channel)


@dataclasses.dataclass
class LiveServer:
    auth: Authenticator
    fanout: Fanout
    catalog_ref: list[Catalog]
    host: str
    port: int
    heartbeat: float = 20.0
    allowed_origins: tuple[str, ...] = ()
    http_port: int = 8000
    #: TLS for ``wss://`` (None: plain ``ws://``).
    ssl_context: ssl.SSLContext | None = None
    policy: live.SendPolicy = dataclasses.field(default_factory=live.SendPolicy)
    sessions: set[Session] = dataclasses.field(default_factory=set)
    _server: Server | None = None
    _revalidator: asyncio.Task[None] | None = None
    _dirty: list[Session] = dataclasses.field(default_factory=list)
    _last_frame: str | bytes = b""
    _last_wire: bytes = b""

    def wire(self, frame: str | bytes) -> bytes:
        """The websocket frame carrying ``frame``, serialized once for all the sessions it goes
        to (they get it in a row): server frames are not masked and the listener negotiates no
        extension (``compression=None``), so the bytes are the same on every connection."""
        if frame is not self._last_frame:
            data = frame if isinstance(frame, bytes) else frame.encode()
            self._last_frame = frame
            self._last_wire = Frame(Opcode.TEXT, data).serialize(mask=False)
        return self._last_wire

    def mark_dirty(self, session: Session) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self.flush)
        self._dirty.append(session)

    def flush(self) -> None:
        """Send what the sessions were given during this turn of the event loop: one write (one
        system call) per connection, however many envelopes the relay's batch held."""
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            session.flush()

    @property
    def scheme(self) -> str:
        return "ws" if self.ssl_context is None else "wss"

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    def epoch_for(self, channel: str) -> str:
        return (
            self.fanout.state_epoch if channel in self.fanout.state_channels else self.fanout.epoch
        )

    def head(self, channel: str) -> int:
        if channel in self.fanout.state_channels:
            return self.fanout.state_offsets.get(channel, 0)
        return self.fanout.head(channel)

    async def start(self) -> None:
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            ssl=self.ssl_context,
            max_size=MAX_MESSAGE,
            max_queue=16,
            ping_interval=self.heartbeat,
            ping_timeout=self.heartbeat,
            close_timeout=2,
            compression=None,
            server_header=None,
            logger=logging.getLogger("cityhub.ws.protocol"),
        )
        self._revalidator = asyncio.get_running_loop().create_task(self._revalidate())

    async def close(self) -> None:
        if self._revalidator is not None:
            self._revalidator.cancel()
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    # -- handshake -----------------------------------------------------------------------

    def _allowed_origin(self, origin: str, host: str) -> bool:
        hostname = host.rsplit(":", 1)[0] if host and not host.endswith("]") else host
        own = {f"{scheme}://{hostname}:{self.http_port}" for scheme in ("http", "https")}
        if self.http_port in (80, 443):
            own |= {f"http://{hostname}", f"https://{hostname}"}
        return origin in own or origin in self.allowed_origins

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path != "/ws":
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        headers = request.headers
        try:
            principal = await self._authenticate(
                headers.get("Authorization"), headers.get("Cookie"), url.query, headers
            )
        except (CityhubError, StorageError) as exc:
            return conn.respond(HTTPStatus(status_of(exc)), exc.message + "\n")
        except OUTAGE_ERRORS:
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "database unavailable\n")
        conn.principal = principal  # type: ignore[attr-defined]
        return None

    async def _authenticate(
        self, authorization: str | None, cookie: str | None, query: str, headers: Any
    ) -> Principal:
        from hub.core.errors import Forbidden, Unauthenticated

        tickets = parse_qs(query).get("ticket")
        if tickets:
            return await self._ticket_principal(tickets[0])
        if authorization:
            scope = {"type": "http", "headers": [(b"authorization", authorization.encode())]}
        else:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(cookie or "")
            except CookieError:
                raise Unauthenticated("请先登录") from None
            morsel = jar.get(SESSION_COOKIE)
            if morsel is None:
                raise Unauthenticated("请先登录")
            # A browser always sends Origin on a websocket handshake: refuse other sites' pages.
            origin = headers.get("Origin")
            if origin is None or not self._allowed_origin(origin, headers.get("Host", "")):
                raise Forbidden("来源不被允许")
            scope = {
                "type": "http",
                "headers": [(b"cookie", f"{SESSION_COOKIE}={morsel.value}".encode())],
            }
        from starlette.requests import HTTPConnection

        return await self.auth.principal(HTTPConnection(scope), method="GET")

    async def _ticket_principal(self, ticket: str) -> Principal:
        from hub.core.errors import Unauthenticated

        if len(ticket) > 200:
            raise Unauthenticated("票据无效")
        async with self.auth.pool.acquire() as db:
            uid = await live_store.redeem_ticket(db, ticket, datetime.now(UTC))
            user = None if uid is None else await user_store.get_user(db, uid)
        if user is None or not user.active:
            raise Unauthenticated("票据无效或已使用")
        from hub.core.workflow import Role

        return Principal(
            user=user,
            kind=SessionKind.TICKET,
            csrf_token="",
            token_hash=b"",
            role=Role(user.role),
            actor=make_actor(user, self.catalog_ref[0]),
        )

    # -- the session ---------------------------------------------------------------------

    def viewer_for(self, principal: Principal) -> live.Viewer:
        catalog = self.catalog_ref[0]
        scope: set[int] = set(principal.actor.grid_ids)
        scope |= {g for g in principal.user.grid_ids if g in catalog.grids}
        for g in principal.actor.grid_ids:
            parent = catalog.grids[g].parent_id if g in catalog.grids else None
            if parent is not None:
                scope.add(parent)
        return live.Viewer(principal.actor, frozenset(scope))

    async def _handler(self, conn: ServerConnection) -> None:
        principal: Principal = conn.principal  # type: ignore[attr-defined]
        viewer = self.viewer_for(principal)
        session = Session(conn, principal, viewer, self)
        self.sessions.add(session)
        catalog = self.catalog_ref[0]
        first = [g.id for g in catalog.grids.values() if g.level == 1]
        try:
            session.write(
                live.control(
                    "hello",
                    user=principal.public(),
                    epoch=self.fanout.epoch,
                    heartbeat=self.heartbeat,
                    channels=live.default_channels(viewer, first),
                )
            )
            async for message in conn:
                await session.handle(message)
        except ConnectionClosed:
            pass
        finally:
            session.close()
            self.sessions.discard(session)

    async def _revalidate(self) -> None:
        """Every 30 s: end the sessions whose sign-in has ended (logout, expiry, disabled user)."""
        while True:
            await asyncio.sleep(30)
            for session in list(self.sessions):
                p = session.principal
                if p.kind is SessionKind.TICKET:
                    continue
                try:
                    async with self.auth.pool.acquire() as db:
                        alive = await user_store.get_session(db, p.token_hash, datetime.now(UTC))
                except OUTAGE_ERRORS:
                    break
                if alive is None:
                    await session.conn.close(CLOSE_SESSION_ENDED, "session ended")
