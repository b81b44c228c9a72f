"""G.711 against the ITU-T reference: the standard's formulas, its known code points, and a scalar
transcription of the G.191 STL reference ``g711.c`` (written here, independent of the numpy tables)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from telephony import g711
from telephony.g711 import G711Law, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

Encode = Callable[[g711.Pcm], bytes]
Decode = Callable[[bytes], g711.Pcm]

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_BYTES = bytes(range(256))


# -- the G.191 STL reference (g711.c), transcribed sample by sample --------------------------------


def ref_alaw_compress(lin: int) -> int:
    ix = (~lin) >> 4 if lin < 0 else lin >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if lin >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def ref_alaw_expand(log: int) -> int:
    ix = (log ^ 0x0055) & 0x007F
    iexp = ix >> 4
    mant = ix & 0x000F
    if iexp > 0:
        mant = mant + 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant = mant << (iexp - 1)
    return mant if log > 127 else -mant


def ref_ulaw_compress(lin: int) -> int:
    absno = ((~lin) >> 2) + 33 if lin < 0 else (lin >> 2) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    log = (high_nibble << 4) | low_nibble
    if lin >= 0:
        log |= 0x0080
    return log


def ref_ulaw_expand(log: int) -> int:
    sign = -1 if log < 0x0080 else 1
    mantissa = ~log
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa = mantissa & 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


class TestKnownCodePoints:
    """Pairs computed by hand from G.711's tables (A.1/A.2 and B.1/B.2 of the Recommendation)."""

    @pytest.mark.parametrize(
        ("code", "value"),
        [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xEF, 132), (0x8F, 16764)],
    )
    def test_ulaw_decode(self, code: int, value: int) -> None:
        # μ-law (G.711 table 2): all bits inverted, segment s in bits 4-6, mantissa m in bits 0-3;
        # the decoder outputs ((2m + 33)·2^s - 33) in 14-bit units, ×4 for 16-bit PCM:
        # 0x80 → s=7, m=15: (63·128 - 33)·4 = 32124; 0xEF → s=1, m=0: (66 - 33)·4 = 132.
        s_, m = (~code >> 4) & 7, ~code & 0x0F
        magnitude = ((2 * m + 33) * (1 << s_) - 33) * 4
        assert value == (magnitude if code & 0x80 else -magnitude)
        assert int(ulaw_decode(bytes([code]))[0]) == value

    @pytest.mark.parametrize(
        ("code", "value"), [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256)]
    )
    def test_alaw_decode(self, code: int, value: int) -> None:
        # A-law, after XOR 0x55: segment s, mantissa m; s=0 → (2m+1)·8, s>0 → (2m+33)·2^(s+2)
        # (e.g. 0xAA ^ 0x55 = 0xFF: s=7, m=15 → 63·512 = 32256).
        ix = code ^ 0x55
        s, m = (ix >> 4) & 7, ix & 0x0F
        magnitude = (2 * m + 1) * 8 if s == 0 else (2 * m + 33) << (s + 2)
        assert int(alaw_decode(bytes([code]))[0]) == value
        assert value == (magnitude if code & 0x80 else -magnitude)

    @pytest.mark.parametrize(
        ("sample", "code"), [(0, 0xFF), (-1, 0x7F), (32767, 0x80), (-32768, 0x00)]
    )
    def test_ulaw_encode(self, sample: int, code: int) -> None:
        assert ulaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])

    @pytest.mark.parametrize(
        ("sample", "code"),
        [(0, 0xD5), (15, 0xD5), (-1, 0x55), (-16, 0x55), (32767, 0xAA), (-32768, 0x2A)],
    )
    def test_alaw_encode(self, sample: int, code: int) -> None:
        assert alaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])

    def test_silence_codes(self) -> None:
        assert G711Law.ULAW.encode(np.zeros(160, np.int16)) == bytes([g711.ULAW_SILENCE]) * 160
        assert G711Law.ALAW.encode(np.zeros(160, np.int16)) == bytes([g711.ALAW_SILENCE]) * 160


class TestReferenceImplementation:
    """Every input, numpy tables against the scalar transcription of g711.c."""

    def test_alaw_encode_every_sample(self) -> None:
        expected = bytes(ref_alaw_compress(int(x)) for x in ALL_INT16)
        assert alaw_encode(ALL_INT16) == expected

    def test_ulaw_encode_every_sample(self) -> None:
        expected = bytes(ref_ulaw_compress(int(x)) for x in ALL_INT16)
        assert ulaw_encode(ALL_INT16) == expected

    def test_decode_every_byte(self) -> None:
        assert alaw_decode(ALL_BYTES).tolist() == [ref_alaw_expand(b) for b in ALL_BYTES]
        assert ulaw_decode(ALL_BYTES).tolist() == [ref_ulaw_expand(b) for b in ALL_BYTES]


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)],
    ids=["ulaw", "alaw"],
)
class TestQuantisation:
    def test_decode_encode_within_the_step(self, encode: Encode, decode: Decode) -> None:
        x = ALL_INT16.astype(np.int32)
        codes = np.frombuffer(encode(ALL_INT16), dtype=np.uint8).astype(np.int32)
        y = decode(encode(ALL_INT16)).astype(np.int32)
        # Each code's inputs form one interval [lo, hi]; its output lies in it (or at hi + 1 for the
        # μ-law zeros), so |y - x| never exceeds the interval's width: the quantisation step.
        lo = np.full(256, 1 << 20)
        hi = np.full(256, -(1 << 20))
        np.minimum.at(lo, codes, x)
        np.maximum.at(hi, codes, x)
        for c in np.unique(codes):
            members = x[codes == c]
            assert members.max() - members.min() + 1 == members.size  # contiguous
        width = (hi - lo + 1)[codes]
        assert np.all(lo[codes] <= y) and np.all(y <= hi[codes] + 1)
        assert np.all(np.abs(y - x) <= width)
        # The output is the interval's midpoint (within 2: the μ-law zeros), except for μ-law's two
        # end codes, whose intervals run on into the clipped inputs beyond ±32124.
        inner = ~np.isin(codes, [0x80, 0x00]) if encode is ulaw_encode else np.ones_like(x, bool)
        mid = (lo + hi + 1)[codes] / 2
        assert np.all(np.abs(y - mid)[inner] <= 2)

    def test_encode_decode_every_byte(self, encode: Encode, decode: Decode) -> None:
        again = encode(decode(ALL_BYTES))
        if encode is ulaw_encode:
            # 0x7F is μ-law's negative zero: it decodes to 0, which encodes as 0xFF.
            assert again[0x7F] == 0xFF
            assert again[:0x7F] + again[0x80:] == ALL_BYTES[:0x7F] + ALL_BYTES[0x80:]
        else:
            assert again == ALL_BYTES

    def test_monotonic(self, encode: Encode, decode: Decode) -> None:
        y = decode(encode(ALL_INT16)).astype(np.int32)
        assert np.all(np.diff(y) >= 0)


class TestInterface:
    def test_bytes_input_is_little_endian_pcm(self) -> None:
        pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
        assert ulaw_encode(pcm.astype("<i2").tobytes()) == ulaw_encode(pcm)
        assert alaw_encode(memoryview(pcm.astype("<i2").tobytes())) == alaw_encode(pcm)

    def test_odd_byte_count_and_wrong_dtype_refused(self) -> None:
        with pytest.raises(ValueError):
            ulaw_encode(b"\x00")
        with pytest.raises(TypeError):
            alaw_encode(np.zeros(4, dtype=np.float32))

    def test_decode_dtype_and_length(self) -> None:
        out = ulaw_decode(b"\xff" * 160)
        assert out.dtype == np.int16 and out.shape == (160,)

    def test_laws(self) -> None:
        assert G711Law.from_payload_type(0) is G711Law.ULAW
        assert G711Law.ALAW.payload_type == 8 and G711Law.ALAW.encoding_name == "PCMA"
        tone = (8000 * np.sin(np.arange(160) * 2 * np.pi * 440 / 8000)).astype(np.int16)
        for law in G711Law:
            back = law.decode(law.encode(tone)).astype(np.int32)
            assert np.max(np.abs(back - tone)) <= 256
