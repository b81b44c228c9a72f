"""Pre-encoded H.264 test clips for the camera simulator.

Theory of operation: the simulator serves clips without re-encoding, so each clip is encoded once,
here, with PyAV's libx264 and cached on disk under a name made of its parameters (and a format
version), so the second run costs a ``stat``. A clip is a raw Annex-B H.264 elementary stream (what
``multifilesrc ! h264parse`` loops on the server side): constant frame rate, one IDR every
``gop_seconds`` (scene-cut detection off, so the GOP is exact), no B-frames (so pts == dts order and
a viewer decodes as it receives), baseline-compatible ``ultrafast`` encoding with SPS/PPS repeated
before every IDR, and VUI timing so a parser knows the frame rate.

The picture is generated with numpy, not drawn pixel by pixel in Python loops: a block pattern and
a tint unique to the label, a bar sweeping left to right once per clip (so motion is visible and
a loop point is visible as a jump), a frame counter as a row of bits, a patch of noise (so the bit
rate is a camera's, ~1.5 Mbit/s, not a still picture's), and the label in a small built-in bitmap
font (no Pillow needed) drawn big in the top-left corner.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 2

# A 3x5 bitmap font: each glyph is five rows of three bits (MSB left).
_FONT: dict[str, tuple[int, int, int, int, int]] = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 2, 2),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), "A": (2, 5, 7, 5, 5), "B": (6, 5, 6, 5, 6),
    "C": (3, 4, 4, 4, 3), "D": (6, 5, 5, 5, 6), "E": (7, 4, 6, 4, 7), "F": (7, 4, 6, 4, 4),
    "G": (3, 4, 5, 5, 3), "H": (5, 5, 7, 5, 5), "I": (7, 2, 2, 2, 7), "J": (1, 1, 1, 5, 2),
    "K": (5, 5, 6, 5, 5), "L": (4, 4, 4, 4, 7), "M": (5, 7, 7, 5, 5), "N": (6, 5, 5, 5, 5),
    "O": (2, 5, 5, 5, 2), "P": (6, 5, 6, 4, 4), "Q": (2, 5, 5, 6, 3), "R": (6, 5, 6, 5, 5),
    "S": (3, 4, 2, 1, 6), "T": (7, 2, 2, 2, 2), "U": (5, 5, 5, 5, 7), "V": (5, 5, 5, 5, 2),
    "W": (5, 5, 7, 7, 5), "X": (5, 5, 2, 5, 5), "Y": (5, 5, 2, 2, 2), "Z": (7, 1, 2, 4, 7),
    " ": (0, 0, 0, 0, 0), "-": (0, 0, 7, 0, 0), ":": (0, 2, 0, 2, 0), "/": (1, 1, 2, 4, 4),
    ".": (0, 0, 0, 0, 2), "_": (0, 0, 0, 0, 7), "#": (5, 7, 5, 7, 5),
}  # fmt: skip

Plane = npt.NDArray[np.uint8]


def text_mask(text: str, scale: int) -> npt.NDArray[np.bool_]:
    """The label rendered as a boolean mask, ``scale`` pixels per font dot, one dot between glyphs."""
    glyphs = [_FONT.get(ch, _FONT["#"]) for ch in text.upper()] or [_FONT[" "]]
    dots = np.zeros((5, 4 * len(glyphs)), dtype=np.bool_)
    for i, rows in enumerate(glyphs):
        for y, bits in enumerate(rows):
            for x in range(3):
                dots[y, 4 * i + x] = bool(bits >> (2 - x) & 1)
    return np.kron(dots, np.ones((scale, scale), dtype=np.bool_))


def clip_path(
    cache_dir: Path,
    *,
    width: int,
    height: int,
    fps: int,
    gop_seconds: float,
    seconds: float,
    text: str | None,
) -> Path:
    """Where the clip with these parameters is cached (the name is a digest of them)."""
    key = f"{FORMAT_VERSION}|{width}x{height}|{fps}|{gop_seconds}|{seconds}|{text!r}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"clip-{width}x{height}-{fps}fps-{digest}.h264"


def default_cache_dir() -> Path:
    """``$CITYHUB_SIM_CACHE`` or ``$XDG_CACHE_HOME/cityhub/simulator`` (``~/.cache/...``)."""
    env = os.environ.get("CITYHUB_SIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cityhub" / "simulator"


def make_clip(
    path: Path | None = None,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    gop_seconds: float = 2.0,
    seconds: float = 10.0,
    text: str | None = None,
) -> Path:
    """Encode (once) and return a looping-friendly Annex-B H.264 clip.

    ``path`` is a cache directory (the file name is derived from the parameters) or ``None`` for
    the default cache directory. Returns the clip's path; an existing file is reused as is. The file
    appears atomically (written to a temporary name, then renamed), so concurrent callers are safe.
    """
    if width % 16 or height % 8:
        raise ValueError(f"width must be a multiple of 16 and height of 8, got {width}x{height}")
    gop = max(1, round(gop_seconds * fps))
    frames = max(1, round(seconds * fps))
    cache_dir = Path(path) if path is not None else default_cache_dir()
    target = clip_path(
        cache_dir,
        width=width,
        height=height,
        fps=fps,
        gop_seconds=gop_seconds,
        seconds=seconds,
        text=text,
    )
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".clip-", suffix=".h264")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _encode(tmp, width=width, height=height, fps=fps, gop=gop, frames=frames, text=text)
        tmp.chmod(0o644)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _background(width: int, height: int, text: str | None) -> Plane:
    """The static luma picture: a block pattern seeded by the label, and the label itself."""
    seed = int.from_bytes(hashlib.sha256((text or "").encode()).digest()[:4], "big")
    rng = np.random.default_rng(seed)
    cells = rng.integers(60, 140, size=(height // 80 + 1, width // 80 + 1), dtype=np.uint8)
    luma = np.kron(cells, np.ones((80, 80), dtype=np.uint8))[:height, :width].copy()
    if text:
        scale = max(4, height // 40)
        mask = text_mask(text, scale)[: height - 2 * scale, : width - 2 * scale]
        y, x = 2 * scale, 2 * scale
        box = luma[y - scale : y + mask.shape[0] + scale, x - scale : x + mask.shape[1] + scale]
        box[...] = 16
        luma[y : y + mask.shape[0], x : x + mask.shape[1]][mask] = 235
    return luma


def _encode(
    path: Path, *, width: int, height: int, fps: int, gop: int, frames: int, text: str | None
) -> None:
    background = _background(width, height, text)
    seed = int.from_bytes(hashlib.sha256((text or "").encode()).digest()[4:8], "big")
    rng = np.random.default_rng(seed)
    tint_u, tint_v = (int(t) for t in rng.integers(96, 160, size=2))
    chroma_u = np.full((height // 2, width // 2), tint_u, dtype=np.uint8)
    chroma_v = np.full((height // 2, width // 2), tint_v, dtype=np.uint8)
    # A patch of sensor-like noise (a new one every frame) gives the clip a camera's bit rate
    # (~1.5 Mbit/s at 720p) instead of the few hundred kbit/s of a still picture.
    noise_h, noise_w = height // 8, width // 8
    noise_y, noise_x = height - noise_h - height // 20, width - noise_w - width // 40
    bar = max(8, width // 40)
    bits_y = height - max(8, height // 40) * 2
    bit_w = max(8, width // 64)
    with av.open(str(path), mode="w", format="h264") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = 0
        stream.codec_context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1"
                ":force-cfr=1:vbv-maxrate=3000:vbv-bufsize=3000:bitrate=2000"
            ),
        }
        frame_yuv = np.empty((height * 3 // 2, width), dtype=np.uint8)
        for i in range(frames):
            luma = background.copy()
            x = (i * (width - bar)) // max(1, frames - 1)
            luma[:, x : x + bar] = 235
            for b in range(16):
                on = (i >> (15 - b)) & 1
                luma[bits_y : bits_y + bit_w, b * bit_w : (b + 1) * bit_w] = 235 if on else 16
            patch = luma[noise_y : noise_y + noise_h, noise_x : noise_x + noise_w]
            patch[...] = rng.integers(64, 192, size=patch.shape, dtype=np.uint8)
            frame_yuv[:height] = luma
            frame_yuv[height : height + height // 4] = chroma_u.reshape(height // 4, width)
            frame_yuv[height + height // 4 :] = chroma_v.reshape(height // 4, width)
            frame = av.VideoFrame.from_ndarray(frame_yuv, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
