"""Pure reconnect and stall policies (no clock, no I/O: ``now`` and the random draw come in).

Theory of operation
-------------------
``Backoff`` is exponential backoff with *full jitter* (the delay before attempt ``n`` is drawn
uniformly from ``[0, min(cap, base * 2**n)]``), capped so a camera that returns is retried within
``cap`` seconds, and reset once a session has stayed up for ``stable`` seconds (a camera that drops
every few seconds keeps backing off; one that ran for an hour starts over at ``base``). Call
``connected(now)`` when a session opens and ``failed(now, draw)`` when it fails or ends: it returns
the delay before the next attempt.

``StallWatch`` detects "no packet for ``timeout`` seconds": ``seen(now)`` on every packet,
``deadline`` is when to look next, ``expired(now)`` says whether the session stalled. The asyncio
layer sleeps until ``deadline`` rather than arming a timer per packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    base: float = 0.5
    cap: float = 5.0
    stable: float = 30.0
    attempts: int = field(default=0, init=False)
    connected_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.stable < 0:
            raise ValueError("backoff stable period must not be negative")

    def ceiling(self) -> float:
        """The largest delay the next failure can draw."""
        return min(self.cap, self.base * 2.0 ** min(self.attempts, 62))

    def connected(self, now: float) -> None:
        self.connected_at = now

    def failed(self, now: float, draw: float) -> float:
        """The delay before the next attempt; ``draw`` is uniform in [0, 1)."""
        if not 0.0 <= draw <= 1.0:
            raise ValueError("draw must be in [0, 1]")
        if self.connected_at is not None and now - self.connected_at >= self.stable:
            self.attempts = 0
        self.connected_at = None
        delay = draw * self.ceiling()
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
        self.connected_at = None


@dataclass(slots=True)
class StallWatch:
    timeout: float
    last: float

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("stall timeout must be positive")

    def seen(self, now: float) -> None:
        self.last = now

    @property
    def deadline(self) -> float:
        return self.last + self.timeout

    def expired(self, now: float) -> bool:
        return now >= self.deadline
