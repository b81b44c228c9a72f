"""ASGI middleware of the web app: request metrics, and the security headers every response gets."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = getattr(scope.get("app"), "state", None)
                hub = getattr(state, "hub", None) if state is not None else None
                if hub is not None:
                    hub.metrics.observe_request(scope["method"], message["status"])
            await send(message)

        await self.app(scope, receive, _send)


class SecurityHeadersMiddleware:
    """Conservative headers on every response (pages are same-origin only, no framing)."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )
    CSP = (
        "default-src 'self'; img-src 'self' data: blob:{tiles}; media-src 'self' blob:;"
        " style-src 'self'; script-src 'self'; connect-src 'self'{ws}; frame-ancestors 'none';"
        " base-uri 'none'; form-action 'self'"
    )

    @classmethod
    def csp(cls, scope: Scope) -> bytes:
        """The policy, allowing the websocket listener (same host, its own port) for connections and
        the base map's tile server (``CITYHUB_MAP_TILES``) for images."""
        ws = ""
        state = getattr(scope.get("app"), "state", None)
        hub = getattr(state, "hub", None) if state is not None else None
        settings = getattr(hub, "settings", None)
        origin = getattr(settings, "map_tiles_origin", "")
        tiles = f" {origin}" if origin else ""
        live = getattr(hub, "live", None)
        if live is not None:
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if hostname and all(c.isalnum() or c in ".-[]:" for c in hostname):
                port = live.bound_port
                ws = f" ws://{hostname}:{port} wss://{hostname}:{port}"
        return cls.CSP.format(ws=ws, tiles=tiles).encode()

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k for k, _ in headers}
                for k, v in self.HEADERS:
                    if k not in names:
                        headers.append((k, v))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.csp(scope)))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, _send)
