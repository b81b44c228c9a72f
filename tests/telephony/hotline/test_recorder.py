"""The call recorder (``telephony.hotline.recorder``): a caller tone on the left and an agent tone
on the right, found again by FFT in the WAV read back with ``wave``; the length; alignment when a
side is missing; a file read while the call runs, and after the process is killed; a stalled disk
drops (and counts) rather than blocking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from telephony.hotline.recorder import (
    FRAME_SAMPLES,
    RATE,
    CallRecorder,
    recording_path,
    recording_relpath,
)

ROOT = Path(__file__).resolve().parents[3]


def tone(freq: float, seconds: float, amplitude: int = 8000) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def frames(pcm: npt.NDArray[np.int16], size: int = FRAME_SAMPLES) -> list[npt.NDArray[np.int16]]:
    return [pcm[i : i + size] for i in range(0, pcm.size, size)]


def read_wav(path: Path) -> tuple[wave._wave_params, npt.NDArray[np.int16]]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = np.frombuffer(w.readframes(params.nframes), "<i2").astype(np.int16)
    return params, data.reshape(-1, 2)


def peak_hz(samples: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / RATE)[int(np.argmax(spectrum))])


def band_energy(samples: npt.NDArray[np.int16], freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(samples.size, 1 / RATE)
    return float(spectrum[np.abs(hz - freq) < 20].sum() / spectrum.sum())


def test_recording_path(tmp_path: Path) -> None:
    at = datetime(2026, 3, 2, 23, 59, tzinfo=UTC)
    assert recording_relpath(42, at) == "2026/03/02/42.wav"
    assert recording_path(tmp_path, 42, at) == tmp_path / "2026" / "03" / "02" / "42.wav"


def test_caller_left_agent_right(tmp_path: Path) -> None:
    path = recording_path(tmp_path, 7, datetime(2026, 3, 2, tzinfo=UTC))
    rec = CallRecorder(path)
    caller, agent = frames(tone(440, 3.0)), frames(tone(1000, 3.0))
    for i, (c, a) in enumerate(zip(caller, agent, strict=True)):
        # The agent's frame comes first on odd slots, second on even ones (both jitter).
        if i % 2:
            rec.agent(a)
            rec.caller(c)
        else:
            rec.caller(c)
            rec.agent(a)
    rec.close()
    assert rec.dropped == 0 and rec.error is None
    params, data = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 8000)
    # 3 s, and the agent's last frame (it came after the caller's last one) in one more slot.
    assert params.nframes == 3 * RATE + FRAME_SAMPLES == data.shape[0]
    assert rec.seconds == pytest.approx(3.02)
    assert path.stat().st_size == 44 + params.nframes * 4
    left, right = data[:, 0], data[:, 1]
    assert abs(peak_hz(left) - 440) < 5 and abs(peak_hz(right) - 1000) < 5
    # Each channel holds its side only.
    assert band_energy(left, 440) > 0.95 and band_energy(left, 1000) < 0.01
    assert band_energy(right, 1000) > 0.95 and band_energy(right, 440) < 0.01
    # Sample-exact: the caller's audio drives the slots; the agent's, arriving after the caller's
    # first frame, is paired one slot later all through (no drift, nothing lost).
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    assert np.array_equal(left, np.concatenate((tone(440, 3.0), silence)))
    assert np.array_equal(right, np.concatenate((silence, tone(1000, 3.0))))


def test_a_missing_side_is_silence_and_drift_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "drift.wav"
    rec = CallRecorder(path, max_drift=0.1)
    # 1 s of both, then the caller's RTP stops for 1 s (the agent talks on), then 1 s of the
    # caller alone (the agent muted).
    for c, a in zip(frames(tone(440, 1.0)), frames(tone(1000, 1.0)), strict=True):
        rec.caller(c)
        rec.agent(a)
    for a in frames(tone(1000, 1.0)):
        rec.agent(a)
    for c in frames(tone(440, 1.0)):
        rec.caller(c)
    rec.close()
    _, data = read_wav(path)
    # The caller's side: its first second, silence while its RTP stopped, its last second.
    # The agent's side: a slot late (its first frame came after the caller's), then all of its
    # two seconds in order, then silence. While the caller was silent the agent ran ahead by
    # 100 ms (5 slots) at most: those ride along with the caller's first frames when it returns.
    agent_alone = 50 - 5 + 1
    assert data.shape[0] == (50 + agent_alone + 50) * FRAME_SAMPLES
    assert np.array_equal(
        data[:, 0],
        np.concatenate(
            (tone(440, 1.0), np.zeros(agent_alone * FRAME_SAMPLES, np.int16), tone(440, 1.0))
        ),
    )
    expected_right = np.zeros(data.shape[0], np.int16)
    expected_right[FRAME_SAMPLES : FRAME_SAMPLES + 2 * RATE] = np.tile(tone(1000, 1.0), 2)
    assert np.array_equal(data[:, 1], expected_right)


def test_frames_of_any_length(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    rec = CallRecorder(path)
    caller, agent = tone(440, 1.0), tone(1000, 1.0)
    for i in range(0, RATE, 240):  # the caller in 30 ms pieces, the agent in 10 ms ones
        rec.caller(caller[i : i + 240])
        for j in range(i, min(i + 240, RATE), 80):
            rec.agent(agent[j : j + 80])
    rec.caller(tone(440, 0.01))  # half a frame more
    rec.close()
    _, data = read_wav(path)
    n = data.shape[0]
    assert n % FRAME_SAMPLES == 0 and RATE + 80 <= n <= RATE + 3 * FRAME_SAMPLES
    assert np.array_equal(data[:RATE, 0], caller)  # the caller's side is exact
    assert np.array_equal(data[RATE : RATE + 80, 0], tone(440, 0.01))
    assert abs(peak_hz(data[:, 0]) - 440) < 5 and abs(peak_hz(data[:, 1]) - 1000) < 5
    # All of the agent's audio is there, in order; where a caller slot found only part of an
    # agent frame, the rest of the slot is silence (the tone's own zeros are left out to compare).
    right = data[:, 1]
    assert np.array_equal(right[right != 0], agent[agent != 0])
    with pytest.raises(TypeError):
        other = CallRecorder(tmp_path / "f.wav")
        try:
            other.caller(np.zeros(160, np.float32))
        finally:
            other.close()


def test_readable_while_the_call_runs(tmp_path: Path) -> None:
    path = tmp_path / "open.wav"
    rec = CallRecorder(path)
    caller, agent = frames(tone(440, 3.0)), frames(tone(1000, 3.0))
    start = time.monotonic()
    seen = 0
    try:
        for i, (c, a) in enumerate(zip(caller, agent, strict=True)):
            rec.caller(c)
            rec.agent(a)
            time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))  # real time
            if i == 75:  # 1.5 s into the call, the file as a player would see it now
                params, data = read_wav(path)
                seen = params.nframes
                assert params.nchannels == 2 and seen == data.shape[0]
                assert abs(peak_hz(data[:, 0]) - 440) < 5
                assert abs(peak_hz(data[:, 1]) - 1000) < 5
    finally:
        rec.close()
    assert 0.9 * RATE <= seen <= 1.55 * RATE
    params, _ = read_wav(path)
    assert params.nframes == 3 * RATE + FRAME_SAMPLES  # the agent's last frame came last


_KILLED = """
import sys, time
import numpy as np
from pathlib import Path
from telephony.hotline.recorder import CallRecorder
rec = CallRecorder(Path(sys.argv[1]))
t = np.arange(160 * 1000) / 8000
c = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
a = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
start = time.monotonic()
for i in range(1000):
    rec.caller(c[i * 160:(i + 1) * 160])
    rec.agent(a[i * 160:(i + 1) * 160])
    if i == 100:
        print("running", flush=True)
    time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
"""


def test_a_killed_process_leaves_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(path)], cwd=ROOT, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    with proc.stdout:
        try:
            assert proc.stdout.readline().strip() == b"running"  # 2 s into the call
            time.sleep(1.5)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    params, data = read_wav(path)
    # Everything up to the last second: at least 2.5 s - 1 s (header rewrites) of the ~3.5 s.
    assert 2.0 * RATE <= params.nframes <= 3.6 * RATE
    assert abs(peak_hz(data[:, 0]) - 440) < 5 and abs(peak_hz(data[:, 1]) - 1000) < 5
    assert np.array_equal(data[:, 0], tone(440, 10.0)[: params.nframes])


def test_a_stalled_disk_drops_frames_and_never_blocks(tmp_path: Path) -> None:
    # The writer blocks opening a FIFO nobody reads: the disk "stalls" from the first frame.
    path = tmp_path / "stalled.wav"
    os.mkfifo(path)
    rec = CallRecorder(path, queue_seconds=0.2)  # room for 10 slots
    start = time.monotonic()
    for c, a in zip(frames(tone(440, 2.0)), frames(tone(1000, 2.0)), strict=True):
        rec.caller(c)
        rec.agent(a)
    assert time.monotonic() - start < 0.5  # 100 slots handed over without waiting for the disk
    assert rec.slots == 100 and rec.dropped == 90
    # Unstall: a reader drains the FIFO; the writer opens it, writes, and then finds it cannot
    # seek to rewrite the header (the error is kept, the recorder still closes).
    got = bytearray()

    def drain() -> None:
        with path.open("rb") as fifo:
            while chunk := fifo.read(65536):
                got.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    rec.close(timeout=5)
    reader.join(5)
    assert not reader.is_alive()
    assert got.startswith(b"RIFF") and len(got) > 44
    assert rec.error is not None
