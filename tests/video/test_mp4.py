"""MP4 without re-encoding (``video.mp4``): the simulator's own clip (``make_clip``: 720p H.264, 2 s
GOP, SPS/PPS before every IDR), demuxed with PyAV into the ``VideoPacket`` values the RTSP ingest
produces, goes through the fragmented muxer (what a live MSE viewer receives) and into a whole MP4
clip; both decode with PyAV to every frame at the right size, duration and order."""

from __future__ import annotations

import io
import itertools
from fractions import Fraction
from pathlib import Path

import av
import pytest

from video.ingest.source import StreamInfo, VideoPacket
from video.mp4 import TIMESCALE, FragmentedMp4, codec_string, mp4_clip, parameter_sets
from video.simulator.clips import make_clip
from video.webrtc import annexb_extradata

pytestmark = pytest.mark.timeout(120)

FPS = 25
SECONDS = 4.0
RTP = Fraction(1, 90_000)  # the clock an RTSP camera's packets arrive on


def clip_packets(tmp_path: Path) -> tuple[StreamInfo, list[VideoPacket]]:
    """The simulator clip's packets with the times an RTSP camera gives (a 90 kHz clock that does
    not start at 0); the raw H.264 file itself has no timestamps."""
    clip = make_clip(tmp_path, seconds=SECONDS, gop_seconds=2.0, text="MP4 TEST")
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        raw = [(bytes(p), p.is_keyframe) for p in c.demux(stream) if p.size]
    start = 987_654_321
    step = 90_000 // FPS
    packets = [
        VideoPacket(data, start + i * step, start + i * step, RTP, key, 0.0)
        for i, (data, key) in enumerate(raw)
    ]
    return StreamInfo("h264", 1280, 720, RTP, extradata), packets


def decode(data: bytes) -> tuple[list[av.VideoFrame], Fraction]:
    with av.open(io.BytesIO(data), "r") as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        assert stream.time_base is not None
        return frames, Fraction(stream.time_base)


def check_frames(frames: list[av.VideoFrame], tb: Fraction, count: int) -> None:
    assert len(frames) == count
    assert {(f.width, f.height) for f in frames} == {(1280, 720)}
    pts = [f.pts or 0 for f in frames]
    assert frames[0].pts == 0 and all(b > a for a, b in itertools.pairwise(pts))  # rebased, rising
    assert float(pts[-1] * tb) == pytest.approx((count - 1) / FPS, abs=0.002)


def test_fragmented_mp4_decodes_to_every_frame(tmp_path: Path) -> None:
    info, packets = clip_packets(tmp_path)
    mux = FragmentedMp4(info)
    init = mux.init_segment()
    assert init[4:8] == b"ftyp" and b"moov" in init and b"mvex" in init and b"moof" not in init
    fragments = [mux.add(p) for p in packets]
    assert all(f[4:8] == b"moof" and b"mdat" in f for f in fragments)  # one fragment per packet
    frames, tb = decode(init + b"".join(fragments))
    check_frames(frames, tb, len(packets))
    assert len(packets) == SECONDS * FPS


def test_a_viewer_joining_at_a_later_keyframe_starts_at_zero(tmp_path: Path) -> None:
    """A live viewer's stream starts at the cached GOP, wherever the camera's clock is."""
    info, packets = clip_packets(tmp_path)
    later = packets[2 * FPS :]
    assert later[0].keyframe
    mux = FragmentedMp4(info)
    frames, tb = decode(mux.init_segment() + b"".join(mux.add(p) for p in later))
    check_frames(frames, tb, len(later))


def test_missing_and_backwards_timestamps_are_filled_in(tmp_path: Path) -> None:
    """A raw stream gives no times, and a clip loop sends them backwards: the fragments' decode
    times still rise one frame at a time."""
    info, packets = clip_packets(tmp_path)
    untimed = [VideoPacket(p.data, None, None, p.time_base, p.keyframe, 0.0) for p in packets[:50]]
    looped = [
        VideoPacket(p.data, p.pts, None, p.time_base, p.keyframe, 0.0) for p in packets[:50]
    ]  # pts only, starting over at the clip's first time
    mux = FragmentedMp4(info)
    body = b"".join(mux.add(p) for p in [*untimed, *looped, *packets[:50]])
    frames, tb = decode(mux.init_segment() + body)
    check_frames(frames, tb, 150)
    assert [f.pts for f in frames[:3]] == [0, TIMESCALE // FPS, 2 * TIMESCALE // FPS]


def test_avcc_and_in_band_parameter_sets(tmp_path: Path) -> None:
    """The same stream described by an avcC record, or by nothing but its keyframe's in-band
    SPS/PPS, gives the same init segment and codec string."""
    info, packets = clip_packets(tmp_path)
    sps, pps = parameter_sets(info.extradata)
    assert sps and pps
    avcc = bytes([1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE1])
    avcc += len(sps[0]).to_bytes(2, "big") + sps[0] + b"\x01" + len(pps[0]).to_bytes(2, "big")
    avcc += pps[0]
    assert annexb_extradata(avcc).endswith(pps[0])  # a well-formed record, as webrtc reads it
    by_annexb = FragmentedMp4(info)
    by_avcc = FragmentedMp4(StreamInfo("h264", 1280, 720, RTP, avcc))
    in_band = FragmentedMp4(StreamInfo("h264", 1280, 720, RTP, b""), packets[0])
    assert by_annexb.init_segment() == by_avcc.init_segment() == in_band.init_segment()
    frames, tb = decode(in_band.init_segment() + b"".join(in_band.add(p) for p in packets))
    check_frames(frames, tb, len(packets))
    with pytest.raises(ValueError):
        FragmentedMp4(StreamInfo("h264", 1280, 720, RTP, b""))  # nothing to describe it


def test_codec_string_is_the_sps_profile_and_level(tmp_path: Path) -> None:
    info, _ = clip_packets(tmp_path)
    codec = FragmentedMp4(info).codec_string
    # the clip is x264 baseline (profile 66, constraint set 1 = constrained baseline), level 3.1
    assert codec == "avc1.42c01f"
    profile, flags, level = (int(codec[5 + i : 7 + i], 16) for i in (0, 2, 4))
    assert (profile, level) == (66, 31) and flags & 0x40
    assert codec_string(b"\x67\x64\x00\x28") == "avc1.640028"  # High 4.0, as cameras send


def test_clip_is_a_whole_seekable_mp4(tmp_path: Path) -> None:
    info, packets = clip_packets(tmp_path)
    data = mp4_clip(info, packets)
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")  # faststart
    frames, tb = decode(data)
    check_frames(frames, tb, len(packets))
    with av.open(io.BytesIO(data), "r") as c:
        assert c.duration is not None
        assert c.duration / 1_000_000 == pytest.approx(SECONDS, abs=0.01)
        stream = c.streams.video[0]
        assert stream.frames == len(packets)
        c.seek(int(3.0 / float(stream.time_base or 1)), stream=stream)  # seekable: the 2 s IDR
        frame = next(c.decode(stream))
        assert frame.pts is not None and float(frame.pts * (stream.time_base or 1)) == 2.0


def test_a_clip_must_start_at_a_keyframe(tmp_path: Path) -> None:
    info, packets = clip_packets(tmp_path)
    with pytest.raises(ValueError):
        mp4_clip(info, packets[1:])
    with pytest.raises(ValueError):
        mp4_clip(info, [])
    data = mp4_clip(info, packets[FPS * 2 : FPS * 3])  # one second from the second GOP
    frames, tb = decode(data)
    check_frames(frames, tb, FPS)
