"""Pure packet buffering: the GOP cache and the per-subscriber queue policy.

Theory of operation
-------------------
``GopCache`` keeps the packets since the last keyframe, so that a new viewer starts decoding at
once instead of waiting up to a GOP for the next keyframe. A keyframe starts a new cache; packets
before the first keyframe are not kept (nothing could decode them). If a GOP grows past
``max_packets`` or ``max_bytes`` (a camera with a huge or missing keyframe interval) the cache is
dropped until the next keyframe: new viewers then wait for it, memory stays bounded.

``PacketHistory`` keeps the last few seconds as whole GOPs (kept only where clips are wanted): a
snapshot's "last N seconds" clip is copied from it without re-encoding. It holds the GOPs whose
span reaches back ``seconds`` from the newest packet, at most ``max_bytes`` (the oldest GOP goes
first; the newest is always kept), and ``since(seconds, now)`` starts at the latest keyframe at or
before ``now - seconds``, so a clip always begins on a keyframe and is at least that long when the
history has it.

``PacketQueue`` is one subscriber's bounded queue. The slow-consumer policy: when a packet would
exceed ``maxsize``, the whole backlog is dropped (counted in ``dropped``) and the queue waits for
the next keyframe, so a slow viewer skips ahead to the newest pictures and never decodes a stream
with holes; it never grows a backlog. ``prime(gop)`` loads the cached GOP first (it may exceed
``maxsize``: it is bounded by the cache's own limits). A queue primed with an empty GOP also waits
for a keyframe.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from video.ingest.source import VideoPacket


class GopCache:
    def __init__(self, *, max_packets: int = 600, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self._packets: list[VideoPacket] = []
        self._bytes = 0
        self._valid = False  # a keyframe opened the current GOP and the limits hold

    def add(self, packet: VideoPacket) -> None:
        if packet.keyframe:
            self._packets = [packet]
            self._bytes = len(packet.data)
            self._valid = True
            return
        if not self._valid:
            return
        self._packets.append(packet)
        self._bytes += len(packet.data)
        if len(self._packets) > self.max_packets or self._bytes > self.max_bytes:
            self.clear()

    def clear(self) -> None:
        self._packets = []
        self._bytes = 0
        self._valid = False

    def packets(self) -> tuple[VideoPacket, ...]:
        """The cached GOP, keyframe first, or ``()``."""
        return tuple(self._packets)

    @property
    def keyframe(self) -> VideoPacket | None:
        return self._packets[0] if self._packets else None

    def __len__(self) -> int:
        return len(self._packets)


class PacketHistory:
    def __init__(self, seconds: float, *, max_bytes: int = 8 * 1024 * 1024) -> None:
        if seconds <= 0:
            raise ValueError("a packet history keeps a positive number of seconds")
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._gops: deque[list[VideoPacket]] = deque()
        self._bytes = 0

    def add(self, packet: VideoPacket) -> None:
        if packet.keyframe:
            self._gops.append([packet])
        elif self._gops:
            self._gops[-1].append(packet)
        else:
            return  # nothing before the first keyframe could be decoded
        self._bytes += len(packet.data)
        horizon = packet.arrived - self.seconds
        gops = self._gops
        # the second-oldest GOP already starts at or before the horizon: the oldest is not needed
        while len(gops) > 1 and (gops[1][0].arrived <= horizon or self._bytes > self.max_bytes):
            self._bytes -= sum(len(p.data) for p in gops.popleft())

    def since(self, seconds: float, now: float) -> tuple[VideoPacket, ...]:
        """The packets from the latest keyframe at or before ``now - seconds`` (or the oldest
        one kept) to the newest; ``()`` before the first keyframe."""
        start = 0
        horizon = now - seconds
        for i, gop in enumerate(self._gops):
            if gop[0].arrived <= horizon:
                start = i
        out: list[VideoPacket] = []
        for i in range(start, len(self._gops)):
            out.extend(self._gops[i])
        return tuple(out)

    def clear(self) -> None:
        self._gops.clear()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


class PacketQueue:
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a packet queue holds at least one packet")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[VideoPacket] = deque()
        self._need_keyframe = True

    def prime(self, gop: Iterable[VideoPacket]) -> None:
        self._items.extend(gop)
        self._need_keyframe = not self._items

    def push(self, packet: VideoPacket) -> bool:
        """Queue ``packet``; False when it was dropped (waiting for a keyframe)."""
        if self._need_keyframe:
            if not packet.keyframe:
                self.dropped += 1
                return False
            self._need_keyframe = False
        elif len(self._items) >= self.maxsize:
            self.dropped += len(self._items)
            self._items.clear()
            if not packet.keyframe:
                self._need_keyframe = True
                self.dropped += 1
                return False
        self._items.append(packet)
        return True

    def pop(self) -> VideoPacket | None:
        return self._items.popleft() if self._items else None

    def restart(self) -> None:
        """The source reconnected: what is queued still plays, the new session's packets wait for
        its first keyframe."""
        self._need_keyframe = True

    def __len__(self) -> int:
        return len(self._items)
