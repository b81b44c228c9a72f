"""Attachment storage: sniffing real (tiny, generated) files, labels, and the on-disk store."""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import struct
import threading
import wave
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hub.web.status import status_of
from storage.attachments import (
    ACCEPTED,
    AttachmentStore,
    StoredBlob,
    human_size,
    safe_label,
    sniff,
    sniff_data,
)
from storage.errors import DataTooLarge, InvalidData, RecordNotFound, UnsupportedData

# --- tiny real files ---------------------------------------------------------------------------


def make_png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    idat = zlib.compress(b"\x00\xff\x00\x00")  # filter byte + one red pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def make_jpeg() -> bytes:
    """Baseline 1x1 greyscale JPEG: one Huffman code per table, a single all-zero block."""

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    dqt = segment(0xDB, b"\x00" + b"\x01" * 64)
    sof0 = segment(0xC0, struct.pack(">BHHB", 8, 1, 1, 1) + b"\x01\x11\x00")
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"  # one code of length 1 for symbol 0
    dht = segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)  # DC 0 then AC 0
    sos = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    scan = b"\x3f"  # DC diff category 0 ("0"), EOB ("0"), padded with ones
    return b"\xff\xd8" + dqt + sof0 + dht + sos + scan + b"\xff\xd9"


# Lossless 1x1 WebP (the image Modernizr uses to detect WebP support).
WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


def make_wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 80)
    return buf.getvalue()


def make_mp3_frame() -> bytes:
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 144 * 128000 // 44100 = 417 bytes.
    return b"\xff\xfb\x90\x00" + b"\x00" * 413


def make_mp3_id3() -> bytes:
    # ID3v2.3 tag with a TIT2 frame, then an audio frame.
    title = b"\x00test"
    frame = b"TIT2" + struct.pack(">I", len(title)) + b"\x00\x00" + title
    size = len(frame)  # < 128, so its syncsafe form is the same number
    return b"ID3\x03\x00\x00" + struct.pack(">I", size) + frame + make_mp3_frame()


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def make_ogg() -> bytes:
    """One beginning-of-stream Ogg page carrying an OpusHead packet, with a correct CRC."""
    packet = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    header = b"OggS" + struct.pack("<BBqIII", 0, 2, 0, 0x1234, 0, 0)
    page = header + bytes([1, len(packet)]) + packet
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def make_amr() -> bytes:
    return b"#!AMR\n" + (b"\x3c" + b"\x00" * 31) * 3  # three 12.2 kbit/s frames


def make_m4a(brand: bytes = b"M4A ") -> bytes:
    body = brand + struct.pack(">I", 0) + b"M4A isommp42"
    ftyp = struct.pack(">I", 8 + len(body)) + b"ftyp" + body
    return ftyp + struct.pack(">I", 8) + b"free" + struct.pack(">I", 16) + b"mdat" + b"\x00" * 8


def make_mp4_video() -> bytes:
    """A real (tiny) MP4 with one H.264 video track, written by PyAV."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(3):
            img = np.full((64, 64, 3), 40 * i, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.txt", "hello")
    return buf.getvalue()


ACCEPTED_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "png": (make_png, "image/png"),
    "jpeg": (make_jpeg, "image/jpeg"),
    "webp": (lambda: WEBP, "image/webp"),
    "wav": (make_wav, "audio/wav"),
    "mp3-frame": (make_mp3_frame, "audio/mpeg"),
    "mp3-id3": (make_mp3_id3, "audio/mpeg"),
    "ogg": (make_ogg, "audio/ogg"),
    "amr": (make_amr, "audio/amr"),
    "m4a": (make_m4a, "audio/mp4"),
    "mp4-isom": (lambda: make_m4a(b"isom"), "audio/mp4"),
    "mp4-mp42": (lambda: make_m4a(b"mp42"), "audio/mp4"),
    "mp4-video": (make_mp4_video, "video/mp4"),
}

REJECTED_FILES: dict[str, bytes] = {
    "text": "举报：占道经营\n".encode(),
    "html": b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
    "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    "zip": make_zip(),
    "gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    "avi": b"RIFF\x04\x00\x00\x00AVI ",
    "adts-aac": b"\xff\xf1\x50\x80\x02\x1f\xfc",  # layer bits 00: not MPEG audio
    "mpeg-reserved-layer": b"\xff\xf9\x90\x00" + b"\x00" * 8,
    "quicktime": make_m4a(b"qt  "),
    "heic": make_m4a(b"heic"),
}


@pytest.fixture
def store(tmp_path: Path) -> AttachmentStore:
    return AttachmentStore(tmp_path / "attachments", max_bytes=64 * 1024)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- sniff -------------------------------------------------------------------------------------


class TestSniff:
    @pytest.mark.parametrize("name", ACCEPTED_FILES)
    def test_accepted_types(self, name: str) -> None:
        make, media_type = ACCEPTED_FILES[name]
        assert sniff_data(make()) == media_type
        assert media_type in ACCEPTED

    def test_the_head_alone_calls_an_mp4_video_audio(self) -> None:
        # The ftyp brand (isom) is the same for M4A and MP4: only the video handler tells them apart.
        assert sniff(make_mp4_video()[:64]) == "audio/mp4"

    def test_every_accepted_type_has_a_fixture(self) -> None:
        assert {media_type for _, media_type in ACCEPTED_FILES.values()} == set(ACCEPTED)
        assert set(ACCEPTED.values()) == {"photo", "audio", "video"}

    @pytest.mark.parametrize("name", REJECTED_FILES)
    def test_rejected_types(self, name: str) -> None:
        assert sniff(REJECTED_FILES[name]) is None
        assert sniff_data(REJECTED_FILES[name]) is None

    @pytest.mark.parametrize("head", [b"", b"\xff", b"\xff\xd8", b"RIFF", b"\xff\xfb"])
    def test_short_heads(self, head: bytes) -> None:
        assert sniff(head) is None


# --- safe_label --------------------------------------------------------------------------------


class TestSafeLabel:
    @pytest.mark.parametrize(
        ("name", "label"),
        [
            ("../../etc/passwd", "passwd"),
            ("C:\\evil\\x.jpg", "x.jpg"),
            ("a\x00b.jpg", "ab.jpg"),
            ("....jpg", "jpg"),
            ("照片.jpg", "照片.jpg"),
            ("e\u0301.jpg", "\u00e9.jpg"),  # NFC
            ("photo\u202egpj.exe", "photogpj.exe"),  # bidi override dropped
            ("a\r\nb\t.png", "ab.png"),
            ("  .hidden ", "hidden"),
            ("dir/..", ""),
            ("/", ""),
            ("", ""),
            (None, ""),
        ],
    )
    def test_labels(self, name: str | None, label: str) -> None:
        assert safe_label(name) == label

    def test_long_name_cut(self) -> None:
        assert safe_label("x" * 500 + ".jpg") == "x" * 120
        assert safe_label("照" * 500, max_len=10) == "照" * 10


# --- the store ---------------------------------------------------------------------------------


class TestPut:
    @pytest.mark.parametrize("name", ACCEPTED_FILES)
    def test_round_trip(self, store: AttachmentStore, name: str) -> None:
        make, media_type = ACCEPTED_FILES[name]
        data = make()
        blob = store.put(data)
        sha = hashlib.sha256(data).hexdigest()
        assert blob == StoredBlob(
            sha256=sha, media_type=media_type, kind=ACCEPTED[media_type], size=len(data)
        )
        path = store.path_for(sha)
        assert path == store.root / sha[:2] / sha[2:4] / sha
        assert store.exists(sha)
        assert store.open(sha) == data
        assert files_under(store.root) == [path]  # temp file gone

    def test_modes(self, store: AttachmentStore) -> None:
        blob = store.put(make_png())
        path = store.path_for(blob.sha256)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        for directory in (store.root, store.root / "tmp", path.parent, path.parent.parent):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o750

    def test_same_content_twice(self, store: AttachmentStore) -> None:
        first = store.put(make_wav())
        mtime = store.path_for(first.sha256).stat().st_mtime_ns
        second = store.put(make_wav())
        assert first == second
        assert len(files_under(store.root)) == 1
        assert store.path_for(first.sha256).stat().st_mtime_ns == mtime  # not rewritten

    def test_empty(self, store: AttachmentStore) -> None:
        with pytest.raises(InvalidData) as info:
            store.put(b"")
        assert (status_of(info.value), info.value.code) == (422, "empty_file")
        assert str(info.value) == "文件是空的，请重新选择"
        assert files_under(store.root) == []

    def test_oversize(self, store: AttachmentStore) -> None:
        data = make_png() + b"\x00" * store.max_bytes
        with pytest.raises(DataTooLarge) as info:
            store.put(data)
        assert status_of(info.value) == 413
        assert str(info.value) == f"文件过大：每个文件不能超过 {human_size(store.max_bytes)}"
        assert AttachmentStore(store.root, 20 * 1024 * 1024).max_bytes == 20971520
        with pytest.raises(DataTooLarge) as info:
            AttachmentStore(store.root, 20 * 1024 * 1024).put(b"\x00" * (20 * 1024 * 1024 + 1))
        assert str(info.value) == "文件过大：每个文件不能超过 20 MB"
        assert not store.root.exists()
        store.put(make_png())  # a file exactly within the limit is fine
        limit = AttachmentStore(store.root, max_bytes=len(make_png()))
        assert limit.put(make_png()).size == limit.max_bytes

    @pytest.mark.parametrize("name", REJECTED_FILES)
    def test_unsupported(self, store: AttachmentStore, name: str) -> None:
        with pytest.raises(UnsupportedData) as info:
            store.put(REJECTED_FILES[name])
        assert status_of(info.value) == 415
        assert info.value.details == {"accepted": sorted(ACCEPTED)}
        assert str(info.value).startswith("不支持的文件类型：照片须为 JPEG、PNG 或 WebP 格式")
        assert "unsupported" not in str(info.value)
        assert files_under(store.root) == []

    @pytest.mark.parametrize(
        ("make", "kind"),
        [
            (make_jpeg, "photo"),
            (make_jpeg, "snapshot"),
            (make_png, "snapshot"),
            (make_amr, "audio"),
        ],
    )
    def test_kind_agrees(
        self, store: AttachmentStore, make: Callable[[], bytes], kind: str
    ) -> None:
        assert store.put(make(), kind=kind).kind == kind

    @pytest.mark.parametrize(
        ("make", "kind"),
        [
            (make_wav, "photo"),
            (make_wav, "snapshot"),
            (make_png, "audio"),
            (make_png, "video"),
            (make_png, ""),
        ],
    )
    def test_kind_disagrees(
        self, store: AttachmentStore, make: Callable[[], bytes], kind: str
    ) -> None:
        with pytest.raises(InvalidData) as info:
            store.put(make(), kind=kind)
        assert (status_of(info.value), info.value.code) == (422, "kind_mismatch")
        assert files_under(store.root) == []

    def test_failed_write_leaves_nothing(
        self, store: AttachmentStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken_fsync(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("storage.attachments.os.fsync", broken_fsync)
        with pytest.raises(OSError):
            store.put(make_png())
        assert files_under(store.root) == []
        monkeypatch.undo()
        assert store.open(store.put(make_png()).sha256) == make_png()

    def test_concurrent_same_content(self, store: AttachmentStore) -> None:
        data = make_wav() + bytes(range(256)) * 100
        workers = 16
        barrier = threading.Barrier(workers)

        def put() -> StoredBlob:
            barrier.wait()
            return store.put(data)

        with ThreadPoolExecutor(workers) as pool:
            blobs = list(pool.map(lambda _: put(), range(workers)))
        assert len(set(blobs)) == 1
        path = store.path_for(blobs[0].sha256)
        assert files_under(store.root) == [path]
        assert path.read_bytes() == data


class TestPaths:
    @pytest.mark.parametrize(
        "bad",
        [
            "../etc/passwd",
            "A" * 64,
            "a" * 63,
            "a" * 65,
            "/abs",
            "/" + "a" * 63,
            "g" * 64,
            "a" * 64 + "\n",
            "../" + "a" * 61,
            "",
        ],
    )
    def test_path_for_rejects(self, store: AttachmentStore, bad: str) -> None:
        with pytest.raises(InvalidData) as info:
            store.path_for(bad)
        assert status_of(info.value) == 422
        with pytest.raises(InvalidData):
            store.open(bad)
        with pytest.raises(InvalidData):
            store.exists(bad)

    def test_path_inside_root(self, store: AttachmentStore) -> None:
        sha = hashlib.sha256(b"x").hexdigest()
        assert store.path_for(sha).relative_to(store.root).parts == (sha[:2], sha[2:4], sha)

    def test_missing(self, store: AttachmentStore) -> None:
        sha = "0" * 64
        assert not store.exists(sha)
        with pytest.raises(RecordNotFound) as info:
            store.open(sha)
        assert status_of(info.value) == 404


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (20 * 1024 * 1024, "20 MB"),
        (20971520 + 1, "20 MB"),
        (1536 * 1024, "1.5 MB"),
        (256 * 1024, "256 KB"),
        (1024, "1 KB"),
        (300, "300 字节"),
        (3 << 30, "3 GB"),
    ],
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text
