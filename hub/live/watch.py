"""``cityhub watch``: sign in, subscribe to channels, print their events as JSON lines.

For operators and scripts: ``cityhub watch --url http://127.0.0.1:8000 --user seat1 cases dept:3``
reads the password from standard input (or uses ``CITYHUB_TOKEN``), prints every envelope on its own
line (control messages such as ``resync`` go to standard error), reconnects with backoff and resumes
from the last offset it printed. ``--from EPOCH:OFFSET`` starts after a given offset (one channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import random
import sys
from typing import Any, TextIO

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus


class WatchError(Exception):
    pass


def login(base: str, user: str, password: str) -> str:
    r = httpx.post(
        f"{base}/api/auth/login",
        json={"username": user, "password": password, "token": True},
        timeout=10,
    )
    if r.status_code != 200:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        raise WatchError(f"login failed ({r.status_code}): {message}")
    return str(r.json()["token"])


def live_info(base: str, token: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/api/live", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if r.status_code != 200:
        raise WatchError(f"GET /api/live failed ({r.status_code}): {r.text[:200]}")
    info: dict[str, Any] = r.json()
    return info


async def watch(
    base: str,
    token: str,
    channels: list[str],
    *,
    start: dict[str, tuple[str, int]] | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    max_events: int | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Print events until ``max_events`` were printed or ``stop`` is set; returns the count."""
    positions: dict[str, tuple[str, int]] = dict(start or {})
    printed = 0
    delay = 0.5
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            info = await asyncio.to_thread(live_info, base, token)
            chans = channels or list(info["channels"])
            async with connect(
                info["url"],
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=10,
            ) as ws:
                items = []
                for ch in chans:
                    item: dict[str, Any] = {"channel": ch}
                    if ch in positions:
                        item.update(epoch=positions[ch][0], offset=positions[ch][1])
                    items.append(item)
                await ws.send(orjson.dumps({"type": "subscribe", "channels": items}).decode())
                delay = 0.5
                async for raw in ws:
                    msg = orjson.loads(raw)
                    if "offset" in msg and "channel" in msg and "data" in msg and "type" in msg:
                        positions[msg["channel"]] = (msg["epoch"], msg["offset"])
                        out.write(raw if isinstance(raw, str) else raw.decode())
                        out.write("\n")
                        out.flush()
                        printed += 1
                        if max_events is not None and printed >= max_events:
                            return printed
                    else:
                        if msg.get("type") in ("subscribed", "resync"):
                            positions[msg["channel"]] = (msg["epoch"], msg["offset"])
                        if msg.get("type") != "hello":
                            err.write(orjson.dumps(msg).decode() + "\n")
                            err.flush()
                    if stop.is_set():
                        return printed
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise WatchError(f"refused: HTTP {exc.response.status_code}") from None
            err.write(f"# connection refused ({exc.response.status_code}); retrying\n")
        except (OSError, ConnectionClosed, InvalidHandshake, httpx.HTTPError, TimeoutError) as exc:
            err.write(f"# disconnected ({type(exc).__name__}); reconnecting\n")
        err.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=random.uniform(0, delay))
        delay = min(delay * 2, 15.0)
    return printed


def parse_from(value: str | None, channels: list[str]) -> dict[str, tuple[str, int]]:
    if not value:
        return {}
    epoch, _, offset = value.rpartition(":")
    if not epoch or not offset.isdigit() or len(channels) != 1:
        raise WatchError("--from takes EPOCH:OFFSET and exactly one channel")
    return {channels[0]: (epoch, int(offset))}


def main(base: str, user: str | None, channels: list[str], start: str | None) -> int:
    token = os.environ.get("CITYHUB_TOKEN", "")
    if not token:
        if not user:
            raise WatchError(
                "give --user (the password is read from standard input) or set CITYHUB_TOKEN"
            )
        password = (
            getpass.getpass("password: ")
            if sys.stdin.isatty()
            else sys.stdin.readline().rstrip("\r\n")
        )
        token = login(base.rstrip("/"), user, password)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(base.rstrip("/"), token, channels, start=parse_from(start, channels)))
    return 0
