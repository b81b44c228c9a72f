"""ITU-T G.711 μ-law and A-law, vectorised with numpy.

Theory of operation: the quantisation is the ITU-T reference one (the G.191 STL ``g711.c``
transcription of G.711): 16-bit linear PCM in, 8-bit codes out.

- A-law keeps 13 bits (the sample shifted right by 4, negatives one's-complemented first), finds the
  segment (0..7), keeps 4 mantissa bits, sets the sign bit for non-negative samples and inverts the
  even bits (XOR 0x55). Decoding yields the middle of the quantisation interval, e.g. 0xD5 → 8,
  0xAA → 32256.
- μ-law keeps 14 bits (shift by 2), adds the bias 33, clips at 0x1FFF, finds the segment, inverts
  all bits; the sign bit is set for non-negative samples. 0xFF → 0, 0x80 → 32124, 0x00 → -32124;
  0x7F (the "negative zero") also decodes to 0 and so re-encodes as 0xFF.

Decoding is one 256-entry table; encoding one 65536-entry table indexed by the samples' uint16 view.
Both are built once at import with vectorised formulas; there is no per-sample Python loop.

Payload types (RFC 3551): PCMU = 0 (μ-law), PCMA = 8 (A-law), 8000 Hz, one byte per sample.
"""

from __future__ import annotations

import enum
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_SILENCE",
    "SAMPLE_RATE",
    "ULAW_SILENCE",
    "G711Law",
    "Pcm",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

SAMPLE_RATE: Final = 8000
ULAW_SILENCE: Final = 0xFF
ALAW_SILENCE: Final = 0xD5

Pcm = npt.NDArray[np.int16]
"""Linear PCM: 16-bit signed samples, one channel."""

_Int32 = npt.NDArray[np.int32]


def _segment(magnitude: _Int32, first: int) -> _Int32:
    """Number of thresholds ``first << k`` (k = 0..6) that ``magnitude`` reaches: 0..7."""
    seg = np.zeros_like(magnitude)
    for k in range(7):  # seven thresholds, over the whole table at once
        seg += magnitude >= (first << k)
    return seg


def _all_int16() -> _Int32:
    """Every int16 value, ordered by its uint16 bit pattern (the encode tables' index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    lin = _all_int16()
    ix = np.where(lin < 0, (~lin) >> 4, lin >> 4)  # 12-bit magnitude, 0..2047
    exp = _segment(ix, 16)
    mant = np.where(exp > 0, (ix >> np.maximum(exp - 1, 0)) - 16, ix)
    code = (exp << 4) + mant
    code = np.where(lin >= 0, code | 0x80, code)
    return (code ^ 0x55).astype(np.uint8)


def _build_alaw_decode() -> Pcm:
    log = np.arange(256, dtype=np.int32)
    ix = (log ^ 0x55) & 0x7F
    exp = ix >> 4
    mant = ix & 0x0F
    mant = np.where(exp > 0, mant + 16, mant)
    mant = (mant << 4) + 0x08
    mant = np.where(exp > 1, mant << np.maximum(exp - 1, 0), mant)
    return np.where(log > 127, mant, -mant).astype(np.int16)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    lin = _all_int16()
    absno = np.where(lin < 0, ((~lin) >> 2) + 33, (lin >> 2) + 33)
    absno = np.minimum(absno, 0x1FFF)
    segno = _segment(absno, 64) + 1
    high = 0x08 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    code = (high << 4) | low
    code = np.where(lin >= 0, code | 0x80, code)
    return code.astype(np.uint8)


def _build_ulaw_decode() -> Pcm:
    log = np.arange(256, dtype=np.int32)
    sign = np.where(log < 0x80, -1, 1)
    inv = ~log
    exp = (inv >> 4) & 0x07
    mant = inv & 0x0F
    step: _Int32 = 4 << (exp + 1)
    magnitude: _Int32 = (0x80 << exp) + step * mant + step // 2 - 4 * 33
    return (sign * magnitude).astype(np.int16)


_ALAW_ENCODE: Final = _build_alaw_encode()
_ALAW_DECODE: Final = _build_alaw_decode()
_ULAW_ENCODE: Final = _build_ulaw_encode()
_ULAW_DECODE: Final = _build_ulaw_decode()
for _table in (_ALAW_ENCODE, _ALAW_DECODE, _ULAW_ENCODE, _ULAW_DECODE):
    _table.flags.writeable = False


def _as_pcm(pcm: Pcm | bytes | bytearray | memoryview) -> Pcm:
    if isinstance(pcm, bytes | bytearray | memoryview):
        if len(pcm) % 2:
            raise ValueError("16-bit PCM needs an even number of bytes")
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"PCM samples must be int16, not {arr.dtype}")
    return arr


def _encode(table: npt.NDArray[np.uint8], pcm: Pcm | bytes | bytearray | memoryview) -> bytes:
    samples = _as_pcm(pcm)
    return table[samples.view(np.uint16)].tobytes()


def _decode(table: Pcm, data: bytes | bytearray | memoryview) -> Pcm:
    return table[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(pcm: Pcm | bytes | bytearray | memoryview) -> bytes:
    """int16 samples (an array, or little-endian bytes) → μ-law bytes, one per sample."""
    return _encode(_ULAW_ENCODE, pcm)


def ulaw_decode(data: bytes | bytearray | memoryview) -> Pcm:
    """μ-law bytes → a new int16 array."""
    return _decode(_ULAW_DECODE, data)


def alaw_encode(pcm: Pcm | bytes | bytearray | memoryview) -> bytes:
    """int16 samples (an array, or little-endian bytes) → A-law bytes, one per sample."""
    return _encode(_ALAW_ENCODE, pcm)


def alaw_decode(data: bytes | bytearray | memoryview) -> Pcm:
    """A-law bytes → a new int16 array."""
    return _decode(_ALAW_DECODE, data)


class G711Law(enum.Enum):
    """The two laws with their static RTP payload type (RFC 3551 §6) and SDP encoding name."""

    ULAW = 0
    ALAW = 8

    @property
    def payload_type(self) -> int:
        return self.value

    @property
    def encoding_name(self) -> str:
        return "PCMU" if self is G711Law.ULAW else "PCMA"

    @property
    def silence(self) -> int:
        """The code of a zero sample (what a comfort-free silence packet is filled with)."""
        return ULAW_SILENCE if self is G711Law.ULAW else ALAW_SILENCE

    def encode(self, pcm: Pcm | bytes | bytearray | memoryview) -> bytes:
        return ulaw_encode(pcm) if self is G711Law.ULAW else alaw_encode(pcm)

    def decode(self, data: bytes | bytearray | memoryview) -> Pcm:
        return ulaw_decode(data) if self is G711Law.ULAW else alaw_decode(data)

    @classmethod
    def from_payload_type(cls, payload_type: int) -> G711Law:
        return cls(payload_type)
