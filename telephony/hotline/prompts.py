"""The hotline's Chinese prompts and its hold music, as the bare 8 kHz A-law payload the caller's
RTP stream sends (8000 bytes a second, 160 per 20 ms packet).

Theory of operation: the prompts are spoken offline by espeak-ng through the voice warnings' TTS
(``telephony.warnings.clips.synthesize``: text on standard input, under a timeout, decoded and
resampled to 8 kHz, A-law by ``telephony.g711``). The voice is ``cmn-latn-pinyin``: Debian's
espeak-ng 1.51 reads the tone digits of some dictionary entries in plain ``cmn`` as English words
("您好" comes out as "nin two hao three"), the pinyin variant does not. Digits are spelled out
before speaking: the hotline number digit by digit as said on the phone (12319 → 幺二三幺九), counts
as number words (2 → 两, 13 → 十三), keys as 一 … 九, 星号, 井号.

Each spoken piece is cached on disk under ``cache_dir`` as ``<sha256>.alaw``, the hash taken over a
format version, the voice and the exact text spoken; a piece whose text changes gets a new file,
and nothing is ever stale. ``prepare()`` (once, at start-up) makes the fixed prompts and the queue
announcements' pieces for counts up to ``max_count`` — espeak-ng only for pieces not cached, file
I/O in a worker thread — so no call waits for speech; ``get()`` then only joins cached bytes.
``render()`` makes a prompt on demand (e.g. a count beyond those prepared) and caches it too.

``get(name, position=…, wait_minutes=…)`` serves the names of ``telephony.hotline.commands.Prompt``:
``welcome``, ``out_of_hours`` (with the callback key), ``overflow``, ``callback_confirmed`` and
``queue_position``: "您前面还有N位" (N = position − 1; "您是下一位" at the head of the queue),
"预计等待约M分钟", "请继续等待" and the callback key, with short pauses between. Beyond
``max_count`` the counts say "超过二十位" / "超过二十分钟".

Hold music (``music()``) is generated, not recorded: a slow arpeggio over I–vi–IV–V–I–vi–ii–V in
C major, each note a sine with two soft harmonics under an attack/decay envelope that starts and
ends at zero, 20 s in all. Notes are rendered into a circular buffer (a tail that rings past the
end is added to the start), so the loop plays seamlessly: no click where it wraps.

Where espeak-ng is missing, ``prepare()`` still makes the music and then raises
``PromptsUnavailable``; ``get()`` raises it for any spoken prompt that is not cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Final

import numpy as np

from hub.core.errors import Unavailable
from telephony import g711
from telephony.errors import TelephonyError
from telephony.warnings import clips

log = logging.getLogger("cityhub.telephony.hotline.prompts")

RATE: Final = 8000
FRAME_BYTES: Final = 160  # 20 ms of A-law
VOICE: Final = "cmn-latn-pinyin"
CACHE_VERSION: Final = "1"
MAX_SPEECH_SECONDS: Final = 60.0
MUSIC_SECONDS: Final = 20.0
#: The pause between the pieces of a queue announcement.
PAUSE: Final = bytes([g711.ALAW_SILENCE]) * (RATE * 3 // 10)

#: Speaks ``text``; returns the A-law payload (8 kHz).
Synth = Callable[[str], Awaitable[bytes]]

PROMPT_NAMES: Final = frozenset(
    {"welcome", "out_of_hours", "overflow", "callback_confirmed", "queue_position"}
)


class PromptsUnavailable(TelephonyError):
    """Spoken prompts cannot be made (espeak-ng missing or failing); the hold music still works."""

    code = "prompts_unavailable"


# -- words -----------------------------------------------------------------------------------

_DIGITS: Final = "零一二三四五六七八九"
_PHONE_DIGITS: Final = "零幺二三四五六七八九"  # 1 as 幺 when numbers are read out on the phone


def say_phone_number(number: str) -> str:
    """A number read digit by digit as on the phone: ``12319`` → ``幺二三幺九``."""
    return "".join(_PHONE_DIGITS[int(ch)] if ch.isdigit() else ch for ch in number)


def say_key(key: str) -> str:
    """A telephone key: ``1`` → ``一``, ``*`` → ``星号``, ``#`` → ``井号``."""
    return "".join(
        _DIGITS[int(ch)] if ch.isdigit() else {"*": "星号", "#": "井号"}.get(ch, ch) for ch in key
    )


def count_words(n: int) -> str:
    """A count in words, as said before a measure word (位, 分钟): 2 → 两, 12 → 十二, 20 → 二十,
    22 → 二十二, 100 → 一百. For 0 ≤ n < 10000."""
    if not 0 <= n < 10000:
        raise ValueError(f"count out of range: {n}")
    if n == 2:
        return "两"
    if n < 10:
        return _DIGITS[n]
    out = ""
    zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        d = n // value % 10
        if d:
            if zero:
                out += "零"
            out += ("" if (unit == "十" and d == 1 and n < 20) else _DIGITS[d]) + unit
            zero = False
        elif out:
            zero = True
    if n % 10:
        if zero:
            out += "零"
        out += _DIGITS[n % 10]
    return out


# -- hold music ------------------------------------------------------------------------------

#: The arpeggio's chords (MIDI note numbers: root, third, fifth, octave), one bar each.
CHORDS: Final = (
    (72, 76, 79, 84),  # C
    (69, 72, 76, 81),  # Am
    (65, 69, 72, 77),  # F
    (67, 71, 74, 79),  # G
    (72, 76, 79, 84),  # C
    (69, 72, 76, 81),  # Am
    (62, 65, 69, 74),  # Dm
    (67, 71, 74, 79),  # G
)
#: Which chord tone each of a bar's eight notes plays.
PATTERN: Final = (0, 1, 2, 3, 2, 1, 2, 1)
HARMONICS: Final = ((1, 1.0), (2, 0.25), (3, 0.08))


def midi_hz(note: int) -> float:
    return float(440.0 * 2.0 ** ((note - 69) / 12))


def music_notes() -> list[float]:
    """The fundamentals the music plays (Hz), once each, low to high."""
    return sorted({midi_hz(n) for chord in CHORDS for n in chord})


def hold_music(seconds: float = MUSIC_SECONDS, *, peak: float = 0.3) -> bytes:
    """The hold music loop as A-law (a whole number of 20 ms frames; blocking, a few ms)."""
    total = int(seconds * RATE) // FRAME_BYTES * FRAME_BYTES
    notes = len(CHORDS) * len(PATTERN)
    step = total // notes
    ring = int(0.9 * RATE)  # each note rings on under the next ones, like a harp
    t = np.arange(ring) / RATE
    attack = int(0.012 * RATE)
    release = int(0.08 * RATE)
    env = np.exp(-t / 0.3)
    env[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    env[-release:] *= np.linspace(1.0, 0.0, release)
    buf = np.zeros(total + ring)
    for i in range(notes):
        chord = CHORDS[i // len(PATTERN)]
        f = midi_hz(chord[PATTERN[i % len(PATTERN)]])
        wave = sum(a * np.sin(2 * np.pi * k * f * t) for k, a in HARMONICS)
        start = i * step
        buf[start : start + ring] += env * wave
    buf[:ring] += buf[total:]  # the last notes' tails ring into the loop's start
    pcm = buf[:total]
    pcm *= peak * 32767 / np.max(np.abs(pcm))
    return g711.alaw_encode(np.round(pcm).astype(np.int16))


# -- prompts ---------------------------------------------------------------------------------


async def espeak_alaw(text: str, *, voice: str = VOICE, executable: str = "espeak-ng") -> bytes:
    """``text`` spoken by espeak-ng, as A-law; ``PromptsUnavailable`` when it cannot be."""
    try:
        clip = await clips.synthesize(
            text, max_seconds=MAX_SPEECH_SECONDS, voice=voice, executable=executable
        )
    except (Unavailable, clips.ClipRefused) as exc:
        raise PromptsUnavailable(
            f"语音提示无法生成：{exc.message}", details={"reason": exc.code}
        ) from exc
    return clip.pcma


def _frames(alaw: bytes) -> bytes:
    """Padded with silence to whole 20 ms frames."""
    return alaw + bytes([g711.ALAW_SILENCE]) * (-len(alaw) % FRAME_BYTES)


class Prompts:
    """The hotline's audio: ``await prepare()`` once, then ``get()`` and ``music()``."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        number: str = "12319",
        callback_key: str = "1",
        max_count: int = 20,
        voice: str = VOICE,
        executable: str = "espeak-ng",
        synth: Synth | None = None,
        concurrency: int = 4,
    ) -> None:
        self.cache_dir = cache_dir
        self.number = number
        self.callback_key = callback_key
        self.max_count = max_count
        self.voice = voice
        self.executable = executable
        self._synth = synth
        self._concurrency = concurrency
        self._pieces: dict[str, bytes] = {}  # text spoken → A-law
        self._music: bytes | None = None
        #: Pieces spoken by espeak-ng (not found in the cache) since this object was made.
        self.synthesized = 0

    # -- the texts ----------------------------------------------------------------------------

    def texts(
        self, name: str, *, position: int | None = None, wait_minutes: int | None = None
    ) -> list[str]:
        """The pieces spoken for a prompt, in order (the cache's keys)."""
        key = say_key(self.callback_key)
        if name == "welcome":
            return [
                f"您好，这里是{say_phone_number(self.number)}城市管理服务热线，通话可能被录音。"
                "正在为您转接话务员，请稍候。"
            ]
        if name == "out_of_hours":
            return [
                f"您好，这里是{say_phone_number(self.number)}城市管理服务热线。现在不是人工服务时间。"
                f"如需回电，请按{key}键，我们将在服务时间内给您回电。感谢您的来电。"
            ]
        if name == "overflow":
            return ["对不起，现在来电较多，话务员暂时无法接听，请您稍后再拨。感谢您的来电，再见。"]
        if name == "callback_confirmed":
            return ["已为您登记回电，话务员将尽快给您回电。感谢您的来电，再见。"]
        if name == "queue_position":
            return [
                self._position_text(max(1, position or 1) - 1),
                self._wait_text(max(1, wait_minutes or 1)),
                f"请继续等待。如需回电，请按{key}键。",
            ]
        raise ValueError(f"unknown prompt: {name!r}")

    def _position_text(self, ahead: int) -> str:
        if ahead == 0:
            return "您是下一位。"
        if ahead > self.max_count:
            return f"您前面还有超过{count_words(self.max_count)}位。"
        return f"您前面还有{count_words(ahead)}位。"

    def _wait_text(self, minutes: int) -> str:
        if minutes > self.max_count:
            return f"预计等待超过{count_words(self.max_count)}分钟。"
        return f"预计等待约{count_words(minutes)}分钟。"

    def _all_texts(self) -> list[str]:
        """Every piece ``get`` may need."""
        out: list[str] = []
        for name in ("welcome", "out_of_hours", "overflow", "callback_confirmed"):
            out += self.texts(name)
        out.append(self.texts("queue_position")[2])
        out += [self._position_text(n) for n in range(self.max_count + 2)]
        out += [self._wait_text(m) for m in range(1, self.max_count + 2)]
        return list(dict.fromkeys(out))

    # -- making them -------------------------------------------------------------------------

    def _path(self, text: str) -> Path:
        digest = hashlib.sha256(f"{CACHE_VERSION}\0{self.voice}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{digest}.alaw"

    async def prepare(self) -> None:
        """Make the music, then every prompt ``get`` serves (cached ones read from disk, the
        others spoken and cached). ``PromptsUnavailable`` if speech cannot be made; the music is
        ready either way."""
        if self._music is None:
            self._music = await asyncio.to_thread(hold_music)
        texts = [t for t in self._all_texts() if t not in self._pieces]
        cached = await asyncio.to_thread(self._read_cached, texts)
        self._pieces.update(cached)
        missing = [t for t in texts if t not in cached]
        if not missing:
            return
        log.info("speaking %d hotline prompt pieces with espeak-ng", len(missing))
        gate = asyncio.Semaphore(self._concurrency)

        async def one(text: str) -> None:
            async with gate:
                await self._make(text)

        results = await asyncio.gather(*(one(t) for t in missing), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            failed = next((e for e in errors if isinstance(e, PromptsUnavailable)), None)
            if failed is None:
                raise errors[0]
            log.warning("hotline prompts: %s (hold music still plays)", failed.message)
            raise failed

    async def render(
        self, name: str, *, position: int | None = None, wait_minutes: int | None = None
    ) -> bytes:
        """Like ``get``, making (and caching) whatever piece is missing."""
        for text in self.texts(name, position=position, wait_minutes=wait_minutes):
            if text not in self._pieces:
                got = await asyncio.to_thread(self._read_cached, [text])
                if got:
                    self._pieces.update(got)
                else:
                    await self._make(text)
        return self.get(name, position=position, wait_minutes=wait_minutes)

    async def _make(self, text: str) -> None:
        synth = self._synth or (
            lambda s: espeak_alaw(s, voice=self.voice, executable=self.executable)
        )
        audio = _frames(await synth(text))
        await asyncio.to_thread(self._write_cached, text, audio)
        self._pieces[text] = audio
        self.synthesized += 1

    def _read_cached(self, texts: Iterable[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for text in texts:
            try:
                data = self._path(text).read_bytes()
            except FileNotFoundError:
                continue
            if data and len(data) % FRAME_BYTES == 0:
                out[text] = data
        return out

    def _write_cached(self, text: str, audio: bytes) -> None:
        """Atomically (a temporary file renamed), so a crash never leaves half a prompt."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(audio)
            Path(tmp).replace(self._path(text))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- serving them ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every prompt ``get`` serves is in memory."""
        return all(t in self._pieces for t in self._all_texts())

    def get(
        self, name: str, *, position: int | None = None, wait_minutes: int | None = None
    ) -> bytes:
        """A prompt's A-law (whole 20 ms frames), from memory: no I/O. ``hold`` is the music.
        ``PromptsUnavailable`` for a spoken prompt not prepared; ``ValueError`` for an unknown
        name."""
        if name in ("hold", "music"):
            return self.music()
        pieces: list[bytes] = []
        for text in self.texts(name, position=position, wait_minutes=wait_minutes):
            audio = self._pieces.get(text)
            if audio is None:
                raise PromptsUnavailable(
                    "语音提示尚未生成（需要 espeak-ng）", details={"prompt": name}
                )
            if pieces:
                pieces.append(PAUSE)
            pieces.append(audio)
        return b"".join(pieces)

    def music(self) -> bytes:
        """The hold music loop (A-law, 20 s); made here if ``prepare`` has not run yet."""
        if self._music is None:
            self._music = hold_music()
        return self._music
