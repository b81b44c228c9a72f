"""A hotline call's recording: one 16-bit 8 kHz stereo WAV per call, the caller on the left
channel and the agent on the right, written while the call runs.

Theory of operation: the event loop hands each side's 20 ms frames (int16 numpy arrays, as they
arrive) to ``caller()`` and ``agent()``; both only slice, interleave with numpy and put bytes on a
bounded queue, so the loop never waits for the disk. A writer thread takes them off the queue and
appends them to the file. If the disk stalls and the queue fills, frames are dropped (and counted
in ``dropped``) rather than growing memory or blocking the call.

Alignment: the file advances in 20 ms slots, driven by the caller's side. Each caller frame makes
one slot, paired with the agent's oldest pending audio (silence when the agent sent nothing for
that slot). The agent's side may run ahead by at most ``max_drift`` (100 ms by default): beyond
that — the caller's RTP stopped, e.g. silence suppression or a network gap — the agent's audio
makes slots on its own with silence on the caller's side, so neither side's audio is lost and
they never drift apart by more than that bound. Frames of any length are accepted; the slots are
cut from the samples.

Crash safety: a WAV header holds the RIFF and data sizes. The writer rewrites both about once a
second (``flush_interval``), after the data they cover has been written and flushed to the OS, so
a hub killed mid-call leaves a valid, playable file with everything up to the last second (a
reader that trusts the header sees the data it covers; the rest is tail bytes). ``close()`` writes
what is queued and the final sizes. The file is flushed to the operating system, not fsynced: a
killed process loses nothing, a power cut may lose the last seconds.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import struct
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

log = logging.getLogger("cityhub.telephony.hotline.recorder")

RATE: Final = 8000
CHANNELS: Final = 2
SAMPLE_BYTES: Final = 2
FRAME_SAMPLES: Final = 160  # 20 ms
HEADER_BYTES: Final = 44

Pcm = npt.NDArray[np.int16]

_STOP: Final = object()
_EMPTY: Final[Pcm] = np.zeros(0, np.int16)


def recording_relpath(call_id: int, arrived_at: datetime) -> str:
    """``YYYY/MM/DD/<call_id>.wav`` on the date of ``arrived_at`` as given (pass it in the
    city's time zone for folders by local day); what ``hotline_calls.recording`` stores."""
    return f"{arrived_at:%Y/%m/%d}/{int(call_id)}.wav"


def recording_path(root: Path, call_id: int, arrived_at: datetime) -> Path:
    """``root/YYYY/MM/DD/<call_id>.wav`` (see ``recording_relpath``)."""
    return root / recording_relpath(call_id, arrived_at)


def wav_header(data_bytes: int) -> bytes:
    """The 44-byte header of a PCM WAV (16-bit, 8 kHz, stereo) holding ``data_bytes``."""
    block = CHANNELS * SAMPLE_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, CHANNELS, RATE, RATE * block, block, 8 * SAMPLE_BYTES)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


class CallRecorder:
    """Record one call to ``path`` (its directories are made). Call ``caller()``/``agent()`` from
    one thread (the event loop); ``close()`` (or ``await aclose()``) at hang-up."""

    def __init__(
        self,
        path: Path,
        *,
        max_drift: float = 0.1,
        queue_seconds: float = 10.0,
        flush_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self._max_drift = max(FRAME_SAMPLES, int(max_drift * RATE))
        self._queue: queue.Queue[tuple[int, bytes] | object] = queue.Queue(
            maxsize=max(1, int(queue_seconds * RATE / FRAME_SAMPLES))
        )
        self._caller: Pcm = _EMPTY
        self._agent: Pcm = _EMPTY
        self._closed = False
        self._gap = 0  # slots dropped since the last one queued
        #: Slots (20 ms) made, and of those dropped because the writer fell behind (written as
        #: silence once it catches up, so the file keeps the call's length).
        self.slots = 0
        self.dropped = 0
        #: Bytes of audio in the file (the writer's count), and the last write error.
        self.written = 0
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=f"recorder-{path.name}", daemon=True)
        self._thread.start()

    # -- the loop's side --------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        """Duration made so far (dropped slots included)."""
        return self.slots * FRAME_SAMPLES / RATE

    def caller(self, pcm: Pcm) -> None:
        """The caller's audio (int16, 8 kHz): each full 20 ms makes a slot."""
        if self._closed:
            return
        buf = np.concatenate((self._caller, _mono(pcm)))
        full = buf.size - buf.size % FRAME_SAMPLES
        if full:
            n = full // FRAME_SAMPLES
            agent = self._take_agent(full)
            self._emit(buf[:full], agent, n)
        self._caller = buf[full:]

    def agent(self, pcm: Pcm) -> None:
        """The agent's audio (int16, 8 kHz), paired with the caller's next slots; beyond the
        drift bound it makes slots of its own (caller silent)."""
        if self._closed:
            return
        self._agent = np.concatenate((self._agent, _mono(pcm)))
        excess = self._agent.size - self._max_drift
        if excess > 0:
            n = -(-excess // FRAME_SAMPLES)  # whole slots, rounding up
            agent = self._take_agent(n * FRAME_SAMPLES)
            caller = np.zeros(n * FRAME_SAMPLES, np.int16)
            # Whatever partial caller frame is pending starts the first of these slots.
            part = self._caller[: caller.size]
            caller[: part.size] = part
            self._caller = self._caller[part.size :]
            self._emit(caller, agent, n)

    def _take_agent(self, samples: int) -> Pcm:
        out = np.zeros(samples, np.int16)
        have = min(samples, self._agent.size)
        out[:have] = self._agent[:have]
        self._agent = self._agent[have:]
        return out

    def _emit(self, caller: Pcm, agent: Pcm, slots: int) -> None:
        stereo = np.empty((caller.size, CHANNELS), "<i2")
        stereo[:, 0] = caller
        stereo[:, 1] = agent
        self.slots += slots
        try:
            self._queue.put_nowait((self._gap, stereo.tobytes()))
        except queue.Full:
            if not self.dropped:
                log.warning("recorder %s: the disk is behind, dropping audio", self.path)
            self.dropped += slots
            self._gap += slots
        else:
            self._gap = 0

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (a partial last frame too) and the final header, then return;
        blocks up to ``timeout`` s, so from the event loop use ``aclose``."""
        if not self._closed:
            size = max(self._caller.size, self._agent.size)
            if size:
                size += -size % FRAME_SAMPLES
                caller = np.zeros(size, np.int16)
                caller[: self._caller.size] = self._caller
                self._caller = _EMPTY
                self._emit(caller, self._take_agent(size), size // FRAME_SAMPLES)
            self._closed = True
            if self._thread.is_alive():
                try:
                    if self._gap:  # the silence for slots dropped at the end
                        self._queue.put((self._gap, b""), timeout=timeout)
                    self._queue.put(_STOP, timeout=timeout)
                except queue.Full:
                    log.error(
                        "recorder %s: the writer is stuck; the file ends at its last header",
                        self.path,
                    )
        self._thread.join(timeout)

    async def aclose(self) -> None:
        """``close()`` in a worker thread."""
        await asyncio.to_thread(self.close)

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("wb") as f:
                f.write(wav_header(0))
                f.flush()
                self._write_loop(f)
        except OSError as exc:
            # The loop's frames now fill the queue and are dropped (counted) until close.
            self.error = exc
            log.error("recorder %s: %s", self.path, exc)

    def _write_loop(self, f: BinaryIO) -> None:
        stamped = 0
        last = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if isinstance(item, tuple):
                gap, data = item
                if gap:  # slots dropped while the disk stalled: silence keeps the time line
                    f.write(bytes(gap * FRAME_SAMPLES * CHANNELS * SAMPLE_BYTES))
                f.write(data)
                self.written += gap * FRAME_SAMPLES * CHANNELS * SAMPLE_BYTES + len(data)
            now = time.monotonic()
            if self.written != stamped and now - last >= self.flush_interval:
                self._stamp(f)
                stamped, last = self.written, now
        self._stamp(f)

    def _stamp(self, f: BinaryIO) -> None:
        """Data first, then the sizes that cover it."""
        f.flush()
        f.seek(0)
        f.write(wav_header(self.written))
        f.seek(HEADER_BYTES + self.written)
        f.flush()


def _mono(pcm: Pcm) -> Pcm:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"PCM samples must be int16, not {arr.dtype}")
    return arr.reshape(-1)
