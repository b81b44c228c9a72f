"""The clock camera's machine-readable time code: the UTC millisecond of the day as a stripe of
black and white blocks in the picture's luma.

Theory of operation: the simulator's ``/clock`` (``rtsp_server.py``) writes, into the Y plane of
every raw frame before it is encoded, one horizontal stripe ``BLOCK`` pixels high at row ``TOP``:
``len(LAYOUT)`` blocks of ``BLOCK`` × ``BLOCK`` pixels from the left edge, each black (Y 16) or
white (Y 235). The blocks are a start sentinel (white, black), the 32 bits of the millisecond of
the day (0 … 86,399,999, most significant first), one even-parity bit over them and an end
sentinel (black, white). Blocks of 32 pixels on the 16-pixel macroblock grid survive H.264 at
any sensible bit rate: a decoder (``decode``) averages the central half of each block and
thresholds it at mid-grey, then checks both sentinels, the parity and the range, so a frame
without the stripe (or a broken one) reads as ``None`` rather than as a wrong time.

This module uses the standard library only: the simulator's server, which runs under Debian's
``/usr/bin/python3`` without numpy, imports it for ``stripe_row``; the benchmark and the tests use
``decode`` on decoded frames (PyAV's ``frame.planes[0]``: any buffer, with its line size).
"""

from __future__ import annotations

import time

#: Block size in pixels (two macroblocks each way) and the stripe's first row.
BLOCK = 32
TOP = 336
BITS = 32
DAY_MS = 86_400_000
BLACK, WHITE = 16, 235
START = (1, 0)
END = (0, 1)
#: Blocks in order: the start sentinel, the bits, the parity bit, the end sentinel.
BLOCKS = len(START) + BITS + 1 + len(END)


def ms_of_day(now: float | None = None) -> int:
    """The UTC millisecond of the day of ``now`` (seconds since the epoch; default: this instant).
    POSIX time has exactly 86,400 s a day, so this is the epoch milliseconds modulo a day."""
    return int((time.time() if now is None else now) * 1000) % DAY_MS


def _bits(ms: int) -> list[int]:
    data = [(ms >> (BITS - 1 - i)) & 1 for i in range(BITS)]
    return [*START, *data, sum(data) & 1, *END]


def stripe_row(ms: int, width: int) -> bytes:
    """One luma row of the stripe for ``ms`` (``width`` bytes; copy it into rows ``TOP`` …
    ``TOP + BLOCK - 1``). The part right of the blocks is black."""
    if not 0 <= ms < DAY_MS:
        raise ValueError(f"not a millisecond of the day: {ms}")
    if width < BLOCKS * BLOCK:
        raise ValueError(f"the stripe needs {BLOCKS * BLOCK} pixels, the picture has {width}")
    row = b"".join((bytes([WHITE]) if b else bytes([BLACK])) * BLOCK for b in _bits(ms))
    return row + bytes([BLACK]) * (width - len(row))


def decode(
    plane: bytes | bytearray | memoryview, stride: int, height: int | None = None
) -> int | None:
    """The millisecond of the day written in a luma plane (rows of ``stride`` bytes), or None when
    the stripe is not there or does not check (sentinels, parity, range)."""
    view = memoryview(plane).cast("B")
    if height is not None and height < TOP + BLOCK:
        return None
    if stride < BLOCKS * BLOCK or len(view) < (TOP + BLOCK) * stride:
        return None
    lo, hi = BLOCK // 4, BLOCK - BLOCK // 4  # the central half of each block, both ways
    rows = [view[(TOP + y) * stride : (TOP + y) * stride + BLOCKS * BLOCK] for y in range(lo, hi)]
    threshold = (BLACK + WHITE) // 2 * (hi - lo) * (hi - lo)
    bits = []
    for k in range(BLOCKS):
        x0, x1 = k * BLOCK + lo, k * BLOCK + hi
        bits.append(1 if sum(sum(row[x0:x1]) for row in rows) > threshold else 0)
    if tuple(bits[: len(START)]) != START or tuple(bits[-len(END) :]) != END:
        return None
    data = bits[len(START) : len(START) + BITS]
    if sum(data) & 1 != bits[len(START) + BITS]:
        return None
    ms = 0
    for b in data:
        ms = ms << 1 | b
    return ms if ms < DAY_MS else None


def age_ms(code: int, now: float | None = None) -> int:
    """How many milliseconds before ``now`` the time code ``code`` was written (negative when it is
    ahead), across midnight: the difference taken modulo a day into -12 h … +12 h."""
    d = (ms_of_day(now) - code) % DAY_MS
    return d - DAY_MS if d > DAY_MS // 2 else d
