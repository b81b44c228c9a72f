"""The small interface every camera source implements (RTSP today, GB/T 28181 later).

Theory of operation: a ``Source`` is one session with one camera. ``open()`` connects and returns
the ``StreamInfo`` of its video stream (or raises ``SourceError`` with a ``Reason``); ``packets()``
yields compressed ``VideoPacket`` values (never decoded) until the source is closed (the iterator
ends) or fails (``SourceError``); ``close()`` releases everything (threads, sockets) and may be
called at any time, more than once. A source is used once: reconnecting means a new source, which
``CameraFeed`` asks its factory for.

Reasons are stable codes (for the API and the state channel) with a zh-CN message for people.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from hub.core.errors import CityhubError

CameraId = str  # the registry's id as text (str(camera.id))


class Reason(enum.Enum):
    """Why a camera is not online (``value`` is the API code)."""

    BAD_URL = "bad_url"
    REFUSED = "refused"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    NO_VIDEO = "no_video"
    STALLED = "stalled"
    UNREACHABLE = "unreachable"
    ENDED = "ended"
    ERROR = "error"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Reason.BAD_URL: "地址无效",
    Reason.REFUSED: "连接被拒绝",
    Reason.UNAUTHORIZED: "用户名或密码错误",
    Reason.NOT_FOUND: "视频路径不存在",
    Reason.TIMEOUT: "连接超时",
    Reason.NO_VIDEO: "没有视频流",
    Reason.STALLED: "视频流中断",
    Reason.UNREACHABLE: "无法连接",
    Reason.ENDED: "视频流已结束",
    Reason.ERROR: "视频流错误",
}


class VideoError(CityhubError):
    code = "video_error"


class SourceError(VideoError):
    """A source could not open or stopped; ``reason`` says why (``detail`` is for logs, in English,
    never with credentials)."""

    code = "source_error"

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason.message, details={"reason": reason.value, "detail": detail})
        self.reason = reason
        self.detail = detail

    def __repr__(self) -> str:
        return f"SourceError({self.reason.value}, {self.detail!r})"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The video stream of an open source. ``extradata`` is the codec's out-of-band configuration
    (for H.264 the SPS/PPS, Annex-B or avcC as the demuxer gives them), or ``b""``."""

    codec: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes = b""


@dataclass(frozen=True, slots=True)
class VideoPacket:
    """One compressed video packet (an access unit); ``arrived`` is the event loop's time."""

    data: bytes
    pts: int | None
    dts: int | None
    time_base: Fraction
    keyframe: bool
    arrived: float


class Source(Protocol):
    async def open(self) -> StreamInfo: ...

    def packets(self) -> AsyncIterator[VideoPacket]: ...

    async def close(self) -> None: ...


def redact(url: str) -> str:
    """``url`` without its password (``rtsp://user:***@host/path``): what logs and browsers see."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<无效地址>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` carrying ``username``/``password`` (percent-encoded) unless it has its own."""
    from urllib.parse import quote

    if not username:
        return url
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return url
    auth = quote(username, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    netloc = f"{auth}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
