"""The hotline's prompts and hold music (``telephony.hotline.prompts``): spoken by the real
espeak-ng (installed by scripts/system-deps.sh) into plausible A-law, cached on disk so that a
second start speaks nothing, made on demand beyond what was prepared, refused clearly without
espeak-ng while the music still plays; the music loops without a click and plays its chords."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from telephony import g711
from telephony.hotline import prompts as p
from telephony.hotline.prompts import Prompts, PromptsUnavailable

RATE = 8000
FIXED = ("welcome", "out_of_hours", "overflow", "callback_confirmed")

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng missing (scripts/system-deps.sh)"
)


class Counting:
    """The real espeak-ng synthesis, counting what it is asked to speak."""

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def __call__(self, text: str) -> bytes:
        self.spoken.append(text)
        return await p.espeak_alaw(text)


def pcm(alaw: bytes) -> npt.NDArray[np.float64]:
    return g711.alaw_decode(alaw).astype(np.float64)


def test_words() -> None:
    assert p.say_phone_number("12319") == "幺二三幺九"
    assert p.say_key("1") == "一" and p.say_key("#") == "井号" and p.say_key("*") == "星号"
    words = {n: p.count_words(n) for n in (0, 1, 2, 9, 10, 11, 12, 20, 21, 22, 99, 100, 101, 110)}
    assert words == {
        0: "零",
        1: "一",
        2: "两",
        9: "九",
        10: "十",
        11: "十一",
        12: "十二",
        20: "二十",
        21: "二十一",
        22: "二十二",
        99: "九十九",
        100: "一百",
        101: "一百零一",
        110: "一百一十",
    }
    prompts = Prompts(Path("/nonexistent"))
    assert prompts.texts("welcome") == [
        "您好，这里是幺二三幺九城市管理服务热线，通话可能被录音。正在为您转接话务员，请稍候。"
    ]
    assert prompts.texts("queue_position", position=1, wait_minutes=1)[:2] == [
        "您是下一位。",
        "预计等待约一分钟。",
    ]
    assert prompts.texts("queue_position", position=3, wait_minutes=2)[:2] == [
        "您前面还有两位。",
        "预计等待约两分钟。",
    ]
    assert prompts.texts("queue_position", position=22, wait_minutes=21)[:2] == [
        "您前面还有超过二十位。",
        "预计等待超过二十分钟。",
    ]
    assert "请按一键" in prompts.texts("out_of_hours")[0]
    assert "请按井号键" in Prompts(Path("/x"), callback_key="#").texts("queue_position")[2]
    with pytest.raises(ValueError):
        prompts.texts("sing")


@needs_espeak
async def test_prompts_are_plausible_alaw_and_cached(tmp_path: Path) -> None:
    cache = tmp_path / "prompts"
    first = Counting()
    prompts = Prompts(cache, synth=first)
    t0 = time.perf_counter()
    await prompts.prepare()
    made_in = time.perf_counter() - t0
    assert prompts.ready and prompts.synthesized == len(first.spoken) == len(set(first.spoken))
    assert len(first.spoken) == 4 + 1 + 22 + 21  # fixed, "请继续等待…", positions, waits
    for name in FIXED:
        audio = prompts.get(name)
        (text,) = prompts.texts(name)
        assert len(audio) % 160 == 0
        seconds = len(audio) / RATE
        # Mandarin at espeak's rate: between 0.1 and 0.5 s a character.
        assert 0.1 * len(text) < seconds < 0.5 * len(text), (name, seconds, len(text))
        samples = pcm(audio)
        loud = np.abs(samples) > 500
        assert loud.mean() > 0.2, name  # speech, not silence
        spectrum = np.abs(np.fft.rfft(samples)) ** 2
        hz = np.fft.rfftfreq(samples.size, 1 / RATE)
        assert spectrum[(hz > 100) & (hz < 3400)].sum() > 0.9 * spectrum.sum()
    # The announcement: its pieces with pauses; another count is other audio.
    five = prompts.get("queue_position", position=5, wait_minutes=3)
    six = prompts.get("queue_position", position=6, wait_minutes=3)
    assert len(five) % 160 == 0 and 3.0 < len(five) / RATE < 20.0 and five != six
    # The position differs, the rest (wait and "请继续等待") is the same audio.
    shared = next(i for i in range(1, len(five)) if five[-i] != six[-i]) - 1
    assert shared > 2 * RATE and five[: len(five) - shared] != six[: len(six) - shared]
    assert prompts.get("queue_position", position=50, wait_minutes=50) == prompts.get(
        "queue_position", position=99, wait_minutes=30
    )
    assert sorted(f.suffix for f in cache.iterdir()) == [".alaw"] * len(first.spoken)

    # A second start (a new object on the same cache) speaks nothing and serves the same audio.
    second = Counting()
    again = Prompts(cache, synth=second)
    t0 = time.perf_counter()
    await again.prepare()
    read_in = time.perf_counter() - t0
    assert second.spoken == [] and again.synthesized == 0 and again.ready
    assert read_in < made_in / 5 and read_in < 1.0
    for name in FIXED:
        assert again.get(name) == prompts.get(name)
    assert again.get("queue_position", position=5, wait_minutes=3) == five

    # Another callback key: only the pieces that say it are spoken again.
    third = Counting()
    await Prompts(cache, callback_key="9", synth=third).prepare()
    assert len(third.spoken) == 2 and all("请按九键" in t for t in third.spoken)


@needs_espeak
async def test_render_on_demand(tmp_path: Path) -> None:
    counting = Counting()
    prompts = Prompts(tmp_path, max_count=30, synth=counting)
    with pytest.raises(PromptsUnavailable):
        prompts.get("queue_position", position=26, wait_minutes=25)  # not prepared
    audio = await prompts.render("queue_position", position=26, wait_minutes=25)
    assert counting.spoken == ["您前面还有二十五位。", "预计等待约二十五分钟。", counting.spoken[2]]
    assert prompts.get("queue_position", position=26, wait_minutes=25) == audio
    await prompts.render("queue_position", position=26, wait_minutes=25)
    assert len(counting.spoken) == 3  # now in memory
    # A new object finds it on disk.
    later = Prompts(tmp_path, max_count=30, synth=counting)
    assert await later.render("queue_position", position=26, wait_minutes=25) == audio
    assert len(counting.spoken) == 3


async def test_without_espeak_the_music_still_plays(tmp_path: Path) -> None:
    prompts = Prompts(tmp_path, executable="/nonexistent/espeak-ng")
    with pytest.raises(PromptsUnavailable) as refused:
        await prompts.prepare()
    assert "espeak-ng" in refused.value.message and refused.value.code == "prompts_unavailable"
    with pytest.raises(PromptsUnavailable):
        prompts.get("welcome")
    assert not prompts.ready
    music = prompts.music()
    assert len(music) == 20 * RATE and prompts.get("hold") == music
    assert not list(tmp_path.iterdir())  # nothing half-made was cached


def test_the_music_loops_seamlessly_in_its_chords() -> None:
    music = p.hold_music()
    assert len(music) == 20 * RATE and len(music) % 160 == 0
    x = pcm(music)
    peak = np.abs(x).max()
    assert 0.2 * 32767 < peak < 0.4 * 32767  # soft, never clipping
    steps = np.abs(np.diff(x))
    seam = abs(x[0] - x[-1])
    # Where the loop wraps, the step is an ordinary one: no click.
    assert seam <= np.median(steps), (seam, np.median(steps))
    # The same across the seam as anywhere: the 20 ms around it are as loud as their neighbours.
    around = np.concatenate((x[-80:], x[:80]))
    assert np.abs(np.diff(around)).max() <= steps.max()
    # Energy in the notes played (with their two harmonics), nowhere else.
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    hz = np.fft.rfftfreq(x.size, 1 / RATE)
    notes = p.music_notes()
    near = np.zeros(hz.size, bool)
    for f in notes:
        for k in (1, 2, 3):
            near |= np.abs(hz - k * f) < 8
    assert near.mean() < 0.15 and spectrum[near].sum() > 0.95 * spectrum.sum()
    # Each chord tone sounds: its fundamental stands far above the quiet between notes.
    floor = np.median(spectrum)
    for f in notes:
        assert spectrum[np.abs(hz - f) < 2].max() > 1000 * floor, f
    # The C major triad's tones, played in most bars, are among the loudest fundamentals.
    c_major = [p.midi_hz(n) for n in (72, 76, 79)]
    top = sorted(notes, key=lambda f: spectrum[np.abs(hz - f) < 2].max())[-6:]
    assert set(c_major) <= set(top)
