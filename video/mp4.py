"""H.264 packets into MP4 without re-encoding: fragmented MP4 for a live MSE viewer, and a whole MP4
clip of cached packets.

Theory of operation
-------------------
``FragmentedMp4`` turns one camera's packets into what Media Source Extensions append: an init
segment (``ftyp`` + ``moov`` with the ``avcC`` and an empty sample table, ``mvex``/``trex``) and then
one fragment per packet (``moof`` + ``mdat``: ``mfhd``, ``tfhd`` with default-base-is-moof, a
``tfdt`` carrying the decode time and a one-sample ``trun``). Each packet's fragment is returned by
``add()`` at once, so MP4 adds no latency of its own.

The boxes are written here, not by PyAV's ``mp4`` muxer, because of what was measured (PyAV 18,
FFmpeg 8.1, 720p clip): with ``movflags=frag_every_frame+empty_moov+default_base_moof`` into a
Python file object FFmpeg writes a frame's fragment only when the *next* frame arrives (movenc
flushes a fragment when the following sample comes, to know its duration, and PyAV exposes no
``av_write_frame(NULL)`` to flush it) — one frame interval of extra latency, 40 ms at 25 fps and a
second for a 1 fps camera. Writing the boxes costs a few ``struct.pack`` calls and a start-code
``bytes.find`` per NAL unit (no per-byte Python loop): ~18 µs a 10 kB packet here against ~7 µs
through PyAV — both well under 0.1 % of a core at 25 fps, so the latency decides.
A fragment's sample duration is an estimate (the last interval seen, else 1/25 s): the next
fragment's ``tfdt`` states the true time, and a browser in MSE ``sequence`` mode lays the samples
back to back anyway.

Timestamps are rebased so the first packet decodes at 0 on a 90 kHz clock, made strictly
increasing (a clip loop or a reconnect never sends time backwards), and filled in where missing
(``pts`` from ``dts`` and the other way round; neither: one frame after the last). Samples are
length-prefixed (the Annex-B start codes replaced, in-band SPS/PPS kept as FFmpeg keeps them);
packets that are already length-prefixed pass as they are. The parameter sets for the ``avcC`` come
from the stream's extradata (Annex-B or avcC) or, for a camera that only sends them in band, from
the first keyframe; ``codec_string`` (``avc1.PPCCLL``, RFC 6381) is read from the SPS.

``mp4_clip()`` is the other use: a whole, seekable MP4 (``moov`` first: ``faststart``) of a list of
cached packets starting at a keyframe, muxed by PyAV's ``mp4`` muxer. Faststart moves the ``moov``
by re-reading the output by its file name, which a Python file object has not, so the clip is
written to a temporary file and read back. It blocks: call it in a worker thread.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from video.ingest.source import StreamInfo, VideoPacket

#: The track's clock (the usual one for video; every camera's times are rescaled to it).
TIMESCALE = 90_000
#: The frame interval assumed until two packets have shown the real one.
DEFAULT_FRAME = TIMESCALE // 25
#: A larger step between two packets is a discontinuity, not a frame interval.
MAX_STEP = TIMESCALE

_START3 = b"\x00\x00\x01"
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_KEY_FLAGS = 0x02000000  # sample_depends_on = 2 (an I picture), sync sample
_DELTA_FLAGS = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample
_MOOF_SIZE = 8 + 16 + 8 + 16 + 20 + 36  # moof: mfhd, traf (tfhd, tfdt v1, a one-sample trun)


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (3- or 4-byte start codes; trailing zero bytes of a
    unit, which belong to the next start code, are dropped)."""
    units: list[bytes] = []
    start = data.find(_START3)
    while start != -1:
        begin = start + 3
        nxt = data.find(_START3, begin)
        end = len(data) if nxt == -1 else nxt
        unit = data[begin:end].rstrip(b"\x00") if nxt != -1 else data[begin:end]
        if unit:
            units.append(unit)
        start = nxt
    return units


def _avcc_units(extradata: bytes) -> list[bytes]:
    """The SPS and PPS of an avcC record (ISO 14496-15 §5.2.4.1)."""
    units: list[bytes] = []
    if len(extradata) < 7 or extradata[0] != 1:
        return units
    pos = 5
    for count_mask in (0x1F, 0xFF):
        if pos >= len(extradata):
            break
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            units.append(extradata[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return units


def _annexb(data: bytes) -> bool:
    return data.startswith(_START3) or data.startswith(b"\x00" + _START3)


def parameter_sets(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The SPS and PPS NAL units in ``data``: Annex-B extradata or an access unit, or an avcC."""
    units = nal_units(data) if _annexb(data) else _avcc_units(data)
    sps = [u for u in units if u[0] & 0x1F == 7 and len(u) >= 4]
    pps = [u for u in units if u[0] & 0x1F == 8]
    return sps, pps


def length_prefixed(data: bytes) -> bytes:
    """An access unit as MP4 samples carry it: each NAL unit after its 4-byte length."""
    if not _annexb(data):
        return data  # length-prefixed already (an MP4 or Matroska source)
    return b"".join(len(u).to_bytes(4, "big") + u for u in nal_units(data))


def codec_string(sps: bytes) -> str:
    """RFC 6381 ``avc1.PPCCLL`` of an SPS NAL unit (profile, constraint flags, level)."""
    return f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}"


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *parts)


def avcc_record(sps: Sequence[bytes], pps: Sequence[bytes]) -> bytes:
    """The ``AVCDecoderConfigurationRecord`` of these parameter sets (4-byte NAL lengths)."""
    first = sps[0]
    out = bytearray([1, first[1], first[2], first[3], 0xFF, 0xE0 | len(sps)])
    for unit in sps:
        out += len(unit).to_bytes(2, "big") + unit
    out.append(len(pps))
    for unit in pps:
        out += len(unit).to_bytes(2, "big") + unit
    return bytes(out)


def _init_segment(width: int, height: int, avcc: bytes) -> bytes:
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso6avc1mp41")
    mvhd = _full(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, 1000, 0), struct.pack(">IH", 0x10000, 0x100), bytes(10),
        _MATRIX, bytes(24), struct.pack(">I", 2),
    )  # fmt: skip
    tkhd = _full(
        b"tkhd", 0, 3,
        struct.pack(">IIIII", 0, 0, 1, 0, 0), bytes(8), struct.pack(">HHHH", 0, 0, 0, 0),
        _MATRIX, struct.pack(">II", width << 16, height << 16),
    )  # fmt: skip
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
    avc1 = _box(
        b"avc1",
        bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HH", width, height),
        struct.pack(">II", 0x480000, 0x480000), bytes(4), struct.pack(">H", 1), bytes(32),
        struct.pack(">Hh", 0x18, -1), _box(b"avcC", avcc),
    )  # fmt: skip
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full(b"stts", 0, 0, bytes(4)),
        _full(b"stsc", 0, 0, bytes(4)),
        _full(b"stsz", 0, 0, bytes(8)),
        _full(b"stco", 0, 0, bytes(4)),
    )
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    minf = _box(b"minf", _full(b"vmhd", 0, 1, bytes(8)), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    mvex = _box(b"mvex", _full(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
    return ftyp + _box(b"moov", mvhd, trak, mvex)


class _Clock:
    """Packet times on the 90 kHz clock, starting at 0, strictly increasing, none missing."""

    def __init__(self) -> None:
        self._origin: int | None = None  # subtracted from a packet's scaled dts
        self._last: int | None = None
        self.frame = DEFAULT_FRAME  # the last interval seen: the estimate of the next duration

    def times(self, packet: VideoPacket) -> tuple[int, int]:
        """``(dts, composition offset)`` of ``packet`` in ``TIMESCALE`` units."""
        raw_dts = packet.dts if packet.dts is not None else packet.pts
        raw_pts = packet.pts if packet.pts is not None else raw_dts
        expected = 0 if self._last is None else self._last + self.frame
        if raw_dts is None or raw_pts is None:
            self._last = expected
            return expected, 0
        scale = packet.time_base * TIMESCALE
        scaled = round(raw_dts * scale)
        offset = max(0, round(raw_pts * scale) - scaled)
        if self._origin is None:
            self._origin = scaled - expected
        dts = scaled - self._origin
        if self._last is not None:
            step = dts - self._last
            if 0 < step <= MAX_STEP:
                self.frame = step
            else:  # time went backwards or leapt (a clip loop, a reconnect): carry on from here
                dts = expected
                self._origin = scaled - dts
        self._last = dts
        return dts, offset


class FragmentedMp4:
    """One live MSE viewer's muxer: ``init_segment()``, then ``add(packet)`` per packet."""

    def __init__(self, info: StreamInfo, keyframe: VideoPacket | None = None) -> None:
        if info.codec != "h264":
            raise ValueError(f"only H.264 is muxed for MSE, not {info.codec}")
        sps, pps = parameter_sets(info.extradata) if info.extradata else ([], [])
        if (not sps or not pps) and keyframe is not None:
            sps, pps = parameter_sets(keyframe.data)
        if not sps or not pps:
            raise ValueError("no SPS/PPS in the stream's extradata or its first keyframe")
        self.info = info
        self.codec_string = codec_string(sps[0])
        self._init = _init_segment(info.width, info.height, avcc_record(sps, pps))
        self._clock = _Clock()
        self._sequence = 0
        self.fragments = 0

    def init_segment(self) -> bytes:
        """``ftyp`` + ``moov``: what MSE needs before the first fragment."""
        return self._init

    def add(self, packet: VideoPacket) -> bytes:
        """The fragment (``moof`` + ``mdat``) of one packet."""
        dts, offset = self._clock.times(packet)
        sample = length_prefixed(packet.data)
        self._sequence += 1
        flags = _KEY_FLAGS if packet.keyframe else _DELTA_FLAGS
        # one sample; data offset, duration, size, flags and (signed, version 1) composition offset
        trun = _full(
            b"trun", 1, 0xF01,
            struct.pack(">IiIIIi", 1, _MOOF_SIZE + 8, self._clock.frame, len(sample), flags, offset),
        )  # fmt: skip
        traf = _box(
            b"traf",
            _full(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),  # default-base-is-moof, track 1
            _full(b"tfdt", 1, 0, struct.pack(">Q", dts)),
            trun,
        )
        moof = _box(b"moof", _full(b"mfhd", 0, 0, struct.pack(">I", self._sequence)), traf)
        self.fragments += 1
        return moof + struct.pack(">I", 8 + len(sample)) + b"mdat" + sample


def mp4_clip(info: StreamInfo, packets: Sequence[VideoPacket]) -> bytes:
    """A whole MP4 (``moov`` first) of ``packets``, which must start with a keyframe; no
    re-encoding. Blocking (PyAV and a temporary file): call it in a worker thread."""
    if not packets or not packets[0].keyframe:
        raise ValueError("a clip starts with a keyframe")
    if info.codec != "h264":
        raise ValueError(f"only H.264 clips are written, not {info.codec}")
    extradata = info.extradata
    sps, pps = parameter_sets(extradata) if extradata else ([], [])
    if not sps or not pps:
        sps, pps = parameter_sets(packets[0].data)
        if not sps or not pps:
            raise ValueError("no SPS/PPS in the stream's extradata or the first keyframe")
        extradata = avcc_record(sps, pps)
    clock = _Clock()
    times = [clock.times(p) for p in packets]
    tb = Fraction(1, TIMESCALE)
    fd, name = tempfile.mkstemp(prefix="cityhub-clip-", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(name, "w", format="mp4", options={"movflags": "faststart"}) as out:
            stream = out.add_stream("h264")
            stream.width = info.width
            stream.height = info.height
            stream.time_base = tb
            stream.codec_context.extradata = extradata
            for i, (packet, (dts, offset)) in enumerate(zip(packets, times, strict=True)):
                nxt = times[i + 1][0] if i + 1 < len(times) else dts + clock.frame
                pkt = av.Packet(packet.data)
                pkt.stream = stream
                pkt.time_base = tb
                pkt.dts = dts
                pkt.pts = dts + offset
                pkt.duration = nxt - dts
                pkt.is_keyframe = packet.keyframe
                out.mux(pkt)
        return Path(name).read_bytes()
    finally:
        Path(name).unlink()
