"""A small test client for /ws: connects, subscribes, and collects envelopes per channel, checking
that offsets never repeat or skip."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect


class LiveClient:
    def __init__(
        self, url: str, token: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn: ClientConnection | None = None
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.control: list[dict[str, Any]] = []
        self.offsets: dict[str, int] = {}
        self.epoch = ""
        self.problems: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def open(self) -> dict[str, Any]:
        self.conn = await connect(
            self.url, additional_headers=self.headers, max_size=2**22, open_timeout=10
        )
        hello = orjson.loads(await self.conn.recv())
        assert hello["type"] == "hello", hello
        self.epoch = hello["epoch"]
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return dict(hello)

    async def _read(self) -> None:
        assert self.conn is not None
        with contextlib.suppress(Exception):
            async for raw in self.conn:
                msg = orjson.loads(raw)
                if "ts" in msg and "channel" in msg and "offset" in msg and "data" in msg:
                    ch = msg["channel"]
                    last = self.offsets.get(ch)
                    if last is not None and msg["offset"] != last + 1:
                        self.problems.append(f"{ch}: offset {msg['offset']} after {last}")
                    self.offsets[ch] = msg["offset"]
                    self.events.setdefault(ch, []).append(msg)
                else:
                    self.control.append(msg)
                    if msg.get("type") in ("subscribed", "resync", "snapshot") and "offset" in msg:
                        self.offsets[msg["channel"]] = msg["offset"]
                self._changed.set()

    async def send(self, msg: Any) -> None:
        assert self.conn is not None
        await self.conn.send(msg if isinstance(msg, str | bytes) else orjson.dumps(msg).decode())

    async def subscribe(self, *channels: str, resume: bool = False) -> None:
        items = []
        for ch in channels:
            item: dict[str, Any] = {"channel": ch}
            if resume and ch in self.offsets:
                item.update(epoch=self.epoch, offset=self.offsets[ch])
            items.append(item)
        n = sum(1 for c in self.control if c.get("type") == "subscribed")
        await self.send({"type": "subscribe", "channels": items})
        await self.wait(
            lambda: (
                sum(1 for c in self.control if c.get("type") == "subscribed") >= n + len(channels)
            )
        )

    async def wait(self, cond: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                self._changed.clear()
                await self._changed.wait()

    async def closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the connection; its close code."""
        assert self.conn is not None and self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout=timeout)
        return self.conn.close_code

    def count(self, channel: str) -> int:
        return len(self.events.get(channel, []))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, timeout=5)


async def until(cond: Any, what: str, timeout: float = 10.0) -> None:
    """Wait until ``cond()`` holds; fail with ``what`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(what) from None
