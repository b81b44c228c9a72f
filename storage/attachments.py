"""Content-addressed storage for case evidence (photos, audio, video-wall snapshots and clips).

A blob lives at ``root/ab/cd/<sha256>``, named by the SHA-256 of its bytes, so storing the same content
twice keeps one file. The media type comes from magic bytes only (``sniff``); the client's file name is
kept solely as a display label (``safe_label``) and never reaches a path. Writes go to ``root/tmp`` first,
are fsynced, then renamed into place (``os.replace``), so readers only ever see whole files. Synchronous on
purpose: callers run it in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from storage.errors import DataTooLarge, InvalidData, RecordNotFound, UnsupportedData

#: Accepted media type -> kind family.
ACCEPTED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "image/jpeg": "photo",
        "image/png": "photo",
        "image/webp": "photo",
        "audio/mpeg": "audio",
        "audio/wav": "audio",
        "audio/ogg": "audio",
        "audio/amr": "audio",
        "audio/mp4": "audio",
        "video/mp4": "video",
    }
)
#: Kind a caller may ask for -> kind family the content must sniff as.
_KIND_FAMILY: Final[Mapping[str, str]] = MappingProxyType(
    {"photo": "photo", "snapshot": "photo", "audio": "audio", "video": "video", "clip": "video"}
)
#: An ISO media file's handler box of a video track (``hdlr``, version/flags, pre_defined, ``vide``).
_VIDEO_HANDLER: Final = re.compile(rb"hdlr[\x00-\xff]{8}vide")
_M4A_BRANDS: Final = frozenset({b"M4A ", b"isom", b"mp42"})
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_FILE_MODE: Final = 0o640
_DIR_MODE: Final = 0o750
# Bidi overrides/isolates and marks: they let "gpj.exe" display as "exe.jpg".
_BIDI: Final = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def human_size(n: int) -> str:
    """A byte count as people say it: ``20 MB``, ``1.5 MB``, ``256 KB``, ``300 字节`` (1 MB = 1024 KB)."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{round(n / size, 1):g} {unit}"
    return f"{n} 字节"


def _is_mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, no reserved version/layer/bitrate/sample rate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and rate != 0b11


def sniff(head: bytes) -> str | None:
    """Media type of a file from its first bytes (12 are enough), or None if not accepted."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"ID3") or _is_mpeg_frame(head):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"#!AMR\n"):
        return "audio/amr"
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return "audio/mp4"
    return None


def sniff_data(data: bytes) -> str | None:
    """Media type of a whole file: ``sniff`` of its head, and an MP4 with a video track (its
    ``hdlr`` box says ``vide``; the file's brand alone cannot tell M4A audio from MP4 video) is
    ``video/mp4``."""
    media_type = sniff(data[:64])
    if media_type == "audio/mp4" and _VIDEO_HANDLER.search(data) is not None:
        return "video/mp4"
    return media_type


def safe_label(name: str | None, max_len: int = 120) -> str:
    """The client's file name reduced to a display label; never use it to build a path."""
    if not name:
        return ""
    label = "".join(
        c for c in name if unicodedata.category(c) not in ("Cc", "Cs") and c not in _BIDI
    )
    label = unicodedata.normalize("NFC", label)
    label = re.split(r"[/\\]", label)[-1]
    while ".." in label:
        label = label.replace("..", ".")
    label = re.sub(r"^[\s.]+", "", label)
    return label[: max(max_len, 0)].rstrip()


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """``kind`` is the kind the caller asked for ("snapshot" stays so), else the sniffed family."""

    sha256: str
    media_type: str
    kind: str
    size: int


def _mkdir(path: Path) -> None:
    """Create one directory with mode 0o750 whatever the umask; fine if it exists (racing threads)."""
    try:
        path.mkdir(mode=_DIR_MODE)
    except FileExistsError:
        return
    path.chmod(_DIR_MODE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AttachmentStore:
    """Blobs under ``root``; at most ``max_bytes`` each."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.root = Path(root)
        self.max_bytes = max_bytes

    def put(self, data: bytes, *, kind: str | None = None) -> StoredBlob:
        """Validate and store ``data``; storing content that is already there rewrites nothing."""
        if not data:
            raise InvalidData("文件是空的，请重新选择", code="empty_file")
        if len(data) > self.max_bytes:
            raise DataTooLarge(
                f"文件过大：每个文件不能超过 {human_size(self.max_bytes)}",
                details={"size": len(data), "max_bytes": self.max_bytes},
            )
        media_type = sniff_data(data)
        if media_type is None:
            raise UnsupportedData(
                "不支持的文件类型：照片须为 JPEG、PNG 或 WebP 格式，录音须为 MP3、WAV、OGG、AMR 或 M4A 格式，"
                "视频须为 MP4 格式",
                details={"accepted": sorted(ACCEPTED)},
            )
        family = ACCEPTED[media_type]
        if kind is not None and _KIND_FAMILY.get(kind) != family:
            raise InvalidData(
                "文件内容与所选类别不符（如把录音当作照片上传）",
                code="kind_mismatch",
                details={"kind": kind, "media_type": media_type, "kinds": sorted(_KIND_FAMILY)},
            )
        sha = hashlib.sha256(data).hexdigest()
        final = self.path_for(sha)
        if not final.is_file():
            self._write(final, data)
        return StoredBlob(sha256=sha, media_type=media_type, kind=kind or family, size=len(data))

    def _write(self, final: Path, data: bytes) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for directory in (self.root, self.root / "tmp", final.parent.parent, final.parent):
            _mkdir(directory)
        fd, tmp_name = tempfile.mkstemp(
            dir=self.root / "tmp", prefix=final.name[:16], suffix=".part"
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), _FILE_MODE)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(final)  # identical content, so a racing writer's replace is harmless
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)

    def path_for(self, sha256: str) -> Path:
        """Where a blob lives; raises InvalidData unless ``sha256`` is 64 lowercase hex chars."""
        if not isinstance(sha256, str) or _SHA256_RE.fullmatch(sha256) is None:
            raise InvalidData("附件标识无效", code="invalid_sha256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def open(self, sha256: str) -> bytes:
        """The blob's bytes, or RecordNotFound."""
        try:
            return self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            raise RecordNotFound("附件不存在", details={"sha256": sha256}) from None

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()
