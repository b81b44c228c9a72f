"""Demo photos: eight small real PNG images (a ground colour, a horizon, diagonal stripes and a
frame), made with ``zlib`` and ``struct`` alone. The loader stores them once; reports, feedback
and verifications attach them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Final


def _png(width: int, height: int, rows: Iterator[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


_PHOTO_THEMES: Final = (
    ((128, 128, 120), (180, 60, 40)),  # asphalt, red
    ((96, 140, 72), (60, 96, 48)),  # green belt
    ((150, 170, 190), (70, 90, 120)),  # sky, building
    ((190, 180, 160), (120, 100, 80)),  # pavement
    ((60, 60, 70), (230, 200, 60)),  # night, lamp
    ((200, 200, 200), (40, 120, 200)),  # wall, poster
    ((110, 90, 70), (160, 140, 110)),  # soil, debris
    ((80, 110, 140), (200, 220, 230)),  # water
)


def demo_photos(width: int = 160, height: int = 120) -> list[bytes]:
    """Eight small PNG images: a ground colour with a horizon, diagonal stripes and a frame."""
    photos: list[bytes] = []
    for k, (ground, accent) in enumerate(_PHOTO_THEMES):
        sky = bytes(min(255, c + 60) for c in ground)
        g, a = bytes(ground), bytes(accent)
        horizon = height * (3 + k % 3) // 8

        def rows(
            g: bytes = g, a: bytes = a, sky: bytes = sky, horizon: int = horizon
        ) -> Iterator[bytes]:
            for y in range(height):
                if y < 3 or y >= height - 3:
                    yield a * width
                    continue
                base = sky if y < horizon else g
                line = bytearray(base * width)
                for x in range(width):
                    if x < 3 or x >= width - 3 or (y >= horizon and (x + y) // 12 % 4 == 0):
                        line[3 * x : 3 * x + 3] = a
                yield bytes(line)

        photos.append(_png(width, height, rows()))
    return photos
