"""The clip library's audio: uploaded WAV, MP3, AAC or M4A files and Mandarin text-to-speech, turned
into what the speakers get (G.711 A-law, 8 kHz mono) and what browsers preview (16-bit WAV).

Theory of operation: ``prepare_clip`` is blocking (PyAV decodes and resamples) and runs in a worker
thread (``prepare_clip_async``). The container is chosen from the file's magic bytes, never probed
by FFmpeg: a probe would accept playlists and other formats that open further files or URLs. The
decoder stops as soon as the audio passes ``max_seconds``, so a small file that decodes to hours
costs no more than an honest one. The result is encoded once to A-law (``telephony.g711``), and the
preview is made from that A-law, so what an operator hears in the browser is what a speaker plays.

Both files go to the content-addressed store (``storage.attachments``). The store takes only media
it recognises, so the A-law is kept in a WAV container (format tag 6); ``read_pcma`` returns the
bare A-law payload the RTP player sends (8000 bytes a second, 160 per 20 ms packet).

``synthesize`` runs Debian's ``espeak-ng`` with its Mandarin voice (``-v cmn-latn-pinyin``: Debian's
espeak-ng 1.51 reads the tone digits of some dictionary entries in plain ``cmn`` as English words,
"您好" as "nin two hao three"; the pinyin variant does not), text on standard
input (so no text is ever read as an option), under a timeout, and decodes its WAV the same way.
Every refusal of content is a 422 with a zh-CN message (413 for too large a file); a missing
``espeak-ng`` is 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import shutil
import struct
import wave
from collections.abc import Iterator
from typing import Final

import av
import numpy as np
import numpy.typing as npt

from hub.core.errors import PayloadTooLarge, Unavailable, ValidationFailed
from storage.attachments import AttachmentStore, human_size
from storage.voice import Clip
from telephony import g711

log = logging.getLogger("cityhub.telephony.clips")

RATE: Final = 8000
TEXT_MAX: Final = 500
TTS_TIMEOUT: Final = 30.0
#: FFmpeg demuxer for each container we accept.
_DEMUXERS: Final = {"wav": "wav", "mp3": "mp3", "aac": "aac", "m4a": "mov"}

Pcm = npt.NDArray[np.int16]


class ClipRefused(ValidationFailed):
    """The audio is readable but not acceptable (no sound, too long, empty)."""

    code = "invalid_clip"


class ClipUnreadable(ValidationFailed):
    """Not audio we can read: an unknown format, or a file that does not decode. A 422 like the
    other refusals of content (the request itself is a well-formed upload)."""

    code = "unsupported_audio"


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedClip:
    pcma: bytes  # G.711 A-law, 8 kHz mono, no header
    duration_ms: int

    def pcma_file(self) -> bytes:
        """The A-law in a WAV container (format tag 6), as kept in the store."""
        return alaw_wav(self.pcma)

    def preview_wav(self) -> bytes:
        """16-bit 8 kHz mono WAV of the A-law as the speakers will play it."""
        return pcm_wav(g711.alaw_decode(self.pcma))


def container_of(head: bytes) -> str | None:
    """``wav``, ``mp3``, ``aac`` (ADTS) or ``m4a`` from the first bytes, or None."""
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS: sync, layer 00
        return "aac"
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer, bitrate = (head[1] >> 1) & 0b11, head[2] >> 4
        if layer != 0 and bitrate != 0b1111:
            return "mp3"
    if head[4:8] == b"ftyp":
        return "m4a"
    return None


def decode_audio(data: bytes, *, max_seconds: float) -> Pcm:
    """Decode to 8 kHz mono int16 samples (blocking). ``ClipUnreadable`` for what is not WAV, MP3,
    AAC or M4A audio or does not decode; ``ClipRefused`` for no audio, or more than
    ``max_seconds``."""
    if not data:
        raise ClipRefused("文件是空的，请重新选择", code="empty_file")
    kind = container_of(data[:16])
    if kind is None:
        raise ClipUnreadable("不支持的音频格式：请上传 WAV、MP3、AAC 或 M4A 文件")
    limit = int(max_seconds * RATE)
    chunks: list[Pcm] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=_DEMUXERS[kind]) as container:
            if not container.streams.audio:
                raise ClipRefused("文件中没有音频", code="no_audio")
            for out in _resampled(container):
                samples: Pcm = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                total += samples.size
                if total > limit:
                    raise ClipRefused(
                        f"音频过长：最长 {max_seconds:g} 秒",
                        code="clip_too_long",
                        details={"max_seconds": max_seconds},
                    )
                chunks.append(samples)
    except (ClipRefused, ClipUnreadable):
        raise
    except Exception as exc:  # any decoder failure is the file's fault: a 4xx
        log.info("clip does not decode as %s: %s", kind, type(exc).__name__)
        raise ClipUnreadable(
            "音频文件已损坏或无法解码，请换一个文件", details={"format": kind}
        ) from None
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if pcm.size == 0:
        raise ClipRefused("文件中没有可播放的声音", code="no_audio")
    if not np.any(pcm):
        raise ClipRefused("音频全是静音", code="silent_audio")
    return pcm


def _resampled(container: av.container.InputContainer) -> Iterator[av.AudioFrame]:
    """The first audio stream's frames, resampled to 8 kHz mono s16, as they decode."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    for frame in container.decode(audio=0):
        yield from resampler.resample(frame)
    yield from resampler.resample(None)


def prepare_pcm(pcm: Pcm) -> PreparedClip:
    return PreparedClip(g711.alaw_encode(pcm), round(pcm.size * 1000 / RATE))


def prepare_clip(data: bytes, *, max_bytes: int, max_seconds: float) -> PreparedClip:
    """An uploaded file as a clip (blocking: run it in a thread)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"文件过大：不能超过 {human_size(max_bytes)}", details={"max_bytes": max_bytes}
        )
    return prepare_pcm(decode_audio(data, max_seconds=max_seconds))


async def prepare_clip_async(data: bytes, *, max_bytes: int, max_seconds: float) -> PreparedClip:
    return await asyncio.to_thread(prepare_clip, data, max_bytes=max_bytes, max_seconds=max_seconds)


# -- text to speech ---------------------------------------------------------------------------


def check_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise ClipRefused("请填写要合成的文字", code="empty_text", details={"field": "text"})
    if len(text) > TEXT_MAX:
        raise ClipRefused(
            f"文字过长：最多 {TEXT_MAX} 个字", code="text_too_long", details={"field": "text"}
        )
    return text


async def synthesize(
    text: str,
    *,
    max_seconds: float,
    time_limit: float = TTS_TIMEOUT,
    voice: str = "cmn-latn-pinyin",
    executable: str = "espeak-ng",
) -> PreparedClip:
    """Mandarin speech for ``text`` with espeak-ng, as a clip."""
    text = check_text(text)
    path = shutil.which(executable)
    if path is None:
        raise Unavailable("语音合成不可用：服务器未安装 espeak-ng", code="tts_unavailable")
    proc = await asyncio.create_subprocess_exec(
        path,
        "-v",
        voice,
        "--stdout",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), time_limit)
    except TimeoutError:
        raise Unavailable("语音合成超时，请缩短文字后重试", code="tts_timeout") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0 or not out:
        log.warning("espeak-ng exited %s: %s", proc.returncode, err[:200].decode(errors="replace"))
        raise Unavailable("语音合成失败", code="tts_failed")
    pcm = await asyncio.to_thread(decode_audio, out, max_seconds=max_seconds)
    return prepare_pcm(pcm)


# -- files -----------------------------------------------------------------------------------


def pcm_wav(pcm: Pcm) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2", copy=False).tobytes())
    return buf.getvalue()


def alaw_wav(alaw: bytes) -> bytes:
    """A WAVE file of A-law samples: fmt (tag 6, 18 bytes), fact, data."""
    fmt = struct.pack("<HHIIHHH", 6, 1, RATE, RATE, 1, 8, 0)
    fact = struct.pack("<I", len(alaw))
    pad = b"\x00" if len(alaw) % 2 else b""
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<I", 4)
        + fact
        + b"data"
        + struct.pack("<I", len(alaw))
        + alaw
        + pad
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def alaw_payload(wav: bytes) -> bytes:
    """The A-law samples of a file made by ``alaw_wav`` (ValueError for anything else)."""
    if not (wav.startswith(b"RIFF") and wav[8:12] == b"WAVE"):
        raise ValueError("not a WAVE file")
    pos = 12
    fmt_ok = False
    while pos + 8 <= len(wav):
        cid, size = wav[pos : pos + 4], struct.unpack_from("<I", wav, pos + 4)[0]
        start = pos + 8
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack_from("<HHI", wav, start)
            fmt_ok = (tag, channels, rate) == (6, 1, RATE)
        elif cid == b"data":
            if not fmt_ok:
                raise ValueError("not 8 kHz mono A-law")
            return wav[start : start + size]
        pos = start + size + (size % 2)
    raise ValueError("no data chunk")


def store_clip(store: AttachmentStore, clip: PreparedClip) -> tuple[str, str]:
    """Keep both files; returns (g711_sha256, preview_sha256). Blocking."""
    g711_blob = store.put(clip.pcma_file(), kind="audio")
    preview_blob = store.put(clip.preview_wav(), kind="audio")
    return g711_blob.sha256, preview_blob.sha256


def read_pcma(store: AttachmentStore, g711_sha256: str) -> bytes:
    """The bare A-law a clip's speakers get (``clips.g711_sha256``). Blocking."""
    return alaw_payload(store.open(g711_sha256))


async def load_alaw(store: AttachmentStore, clip: Clip) -> bytes:
    """The clip's bare A-law payload (8000 bytes a second), read in a thread."""
    return await asyncio.to_thread(read_pcma, store, clip.g711_sha256)
