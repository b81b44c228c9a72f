"""Clip audio (``telephony.warnings.clips``): real WAV, MP3, AAC and M4A files made here with PyAV's
encoders are decoded to 8 kHz mono, keep their length and their 440 Hz tone (FFT peak) through
G.711 A-law, and every bad input gets a clear 4xx error; espeak-ng speaks Mandarin text."""

from __future__ import annotations

import io
import os
import shutil
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from hub.core.errors import PayloadTooLarge, Unavailable
from hub.web.status import status_of
from storage.attachments import AttachmentStore
from telephony import g711
from telephony.warnings import clips
from telephony.warnings.clips import ClipRefused, ClipUnreadable

#: (PyAV muxer, codec) per container we accept.
FORMATS = {
    "wav": ("wav", "pcm_s16le"),
    "mp3": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),
    "aac": ("adts", "aac"),
}
NEED_TTS = os.environ.get("CI") == "true"


def encode(
    kind: str,
    seconds: float,
    *,
    rate: int = 44100,
    freq: float = 440.0,
    layout: str = "stereo",
    amplitude: float = 0.5,
) -> bytes:
    """A real file of ``kind`` holding a sine tone, encoded by PyAV (FFmpeg's encoders)."""
    muxer, codec = FORMATS[kind]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=muxer) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)  # type: ignore[call-overload]
        ctx = stream.codec_context
        fmt = ctx.format.name
        channels = 2 if layout == "stereo" else 1
        n = int(seconds * rate)
        t = np.arange(n) / rate
        wave_ = amplitude * np.sin(2 * np.pi * freq * t)
        frame_size = ctx.frame_size or 1024
        pts = 0
        for start in range(0, n, frame_size):
            chunk = wave_[start : start + frame_size]
            if fmt.startswith("s16"):
                samples = (chunk * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                samples = (chunk * 2147483647).astype(np.int32)
            else:
                samples = chunk.astype(np.float32)
            if fmt.endswith("p"):  # planar: one row per channel
                array = np.tile(samples, (channels, 1))
            else:  # packed: channels interleaved in one row
                array = np.repeat(samples, channels).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(array, format=fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += chunk.size
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def peak_hz(pcm: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_a_tone_survives_decoding_resampling_and_alaw(kind: str) -> None:
    data = encode(kind, 2.0)
    assert clips.container_of(data[:16]) == kind
    clip = clips.prepare_clip(data, max_bytes=10_000_000, max_seconds=10)
    # Codec priming and padding (AAC, MP3) add a few tens of milliseconds at most.
    assert 1990 <= clip.duration_ms <= 2100, clip.duration_ms
    assert abs(len(clip.pcma) - clip.duration_ms * 8) < 8  # 8000 A-law bytes a second
    pcm = g711.alaw_decode(clip.pcma)
    middle = pcm[4000:12000]  # one second away from the edges
    assert abs(peak_hz(middle) - 440.0) <= 2.0
    # Loud enough, and not clipped: stereo was mixed to mono, not summed past full scale.
    rms = float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
    assert 0.2 * 32767 < rms < 0.5 * 32767


def test_a_mono_8khz_wav_is_taken_as_it_is() -> None:
    data = encode("wav", 1.0, rate=8000, layout="mono", freq=1000.0)
    clip = clips.prepare_clip(data, max_bytes=10_000_000, max_seconds=10)
    assert clip.duration_ms == 1000
    assert abs(peak_hz(g711.alaw_decode(clip.pcma)) - 1000.0) <= 2.0


def test_the_stored_files_are_what_speakers_and_browsers_get(tmp_path: Path) -> None:
    clip = clips.prepare_clip(encode("mp3", 1.0), max_bytes=10_000_000, max_seconds=10)
    store = AttachmentStore(tmp_path / "att", 10_000_000)
    g711_sha, preview_sha = clips.store_clip(store, clip)
    assert clips.read_pcma(store, g711_sha) == clip.pcma
    # The A-law file is a WAVE file FFmpeg itself reads as 8 kHz mono A-law.
    with av.open(str(store.path_for(g711_sha))) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("pcm_alaw", 8000, 1)
    with wave.open(io.BytesIO(store.open(preview_sha))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.array_equal(frames, g711.alaw_decode(clip.pcma))
    with pytest.raises(ValueError):
        clips.alaw_payload(store.open(preview_sha))  # PCM, not A-law


def test_a_clip_longer_than_the_limit_is_refused_early() -> None:
    data = encode("wav", 3.0, rate=8000, layout="mono")
    with pytest.raises(ClipRefused) as info:
        clips.prepare_clip(data, max_bytes=10_000_000, max_seconds=2)
    assert info.value.code == "clip_too_long" and "最长 2 秒" in info.value.message
    assert status_of(info.value) == 422


def test_too_large_a_file_is_413() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        clips.prepare_clip(encode("wav", 1.0), max_bytes=1000, max_seconds=10)
    assert status_of(info.value) == 413 and "文件过大" in info.value.message


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        (b"", ClipRefused, "空的"),
        (b"hello, this is not audio at all", ClipUnreadable, "不支持的音频格式"),
        (b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1/x.mp3\n", ClipUnreadable, "不支持"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), ClipUnreadable, "不支持"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200), ClipUnreadable, "无法解码"),
        (b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(2000), ClipUnreadable, "无法解码"),
        (b"\x00\x00\x00\x18ftypM4A " + bytes(64), ClipUnreadable, "无法解码"),
    ],
)
def test_garbage_gets_a_clear_error(data: bytes, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        clips.prepare_clip(data, max_bytes=10_000_000, max_seconds=10)
    assert fragment in str(info.value)
    assert 400 <= status_of(info.value) < 500


def test_a_truncated_file_still_decodes_what_it_has_or_is_refused() -> None:
    data = encode("mp3", 2.0)
    try:
        clip = clips.prepare_clip(data[: len(data) // 2], max_bytes=10_000_000, max_seconds=10)
    except (ClipRefused, ClipUnreadable):
        return
    assert 500 < clip.duration_ms < 1500


def test_silence_is_refused() -> None:
    data = encode("wav", 1.0, amplitude=0.0)
    with pytest.raises(ClipRefused) as info:
        clips.prepare_clip(data, max_bytes=10_000_000, max_seconds=10)
    assert info.value.code == "silent_audio"


def test_a_video_only_file_has_no_audio() -> None:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 64, 64
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(ClipRefused) as info:
        clips.prepare_clip(buf.getvalue(), max_bytes=10_000_000, max_seconds=10)
    assert info.value.code == "no_audio" and "没有音频" in info.value.message


async def test_prepare_runs_in_a_thread() -> None:
    clip = await clips.prepare_clip_async(encode("aac", 1.0), max_bytes=10**7, max_seconds=10)
    assert 990 <= clip.duration_ms <= 1100


def test_text_limits() -> None:
    assert clips.check_text("  请勿\n占道  ") == "请勿 占道"
    for bad in ("", "   ", "字" * (clips.TEXT_MAX + 1)):
        with pytest.raises(ClipRefused):
            clips.check_text(bad)


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not NEED_TTS, reason="espeak-ng is not installed"
)
async def test_mandarin_text_to_speech() -> None:
    clip = await clips.synthesize("请勿占道经营，谢谢配合。", max_seconds=60)
    assert 1000 < clip.duration_ms < 10_000
    pcm = g711.alaw_decode(clip.pcma)
    assert float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 300  # speech, not silence
    # Text that looks like an option is spoken, not obeyed (it goes in on standard input).
    dash = await clips.synthesize("--version", max_seconds=60)
    assert dash.duration_ms > 300
    with pytest.raises(ClipRefused):
        await clips.synthesize("字" * 600, max_seconds=60)


async def test_text_to_speech_over_the_duration_limit_is_refused() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    with pytest.raises(ClipRefused) as info:
        await clips.synthesize("请勿占道经营，谢谢配合。" * 5, max_seconds=1)
    assert info.value.code == "clip_too_long"


async def test_a_missing_engine_is_503() -> None:
    with pytest.raises(Unavailable) as info:
        await clips.synthesize("你好", max_seconds=10, executable="no-such-espeak")
    assert status_of(info.value) == 503
