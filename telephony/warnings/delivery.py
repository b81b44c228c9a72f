"""One warning's delivery to its speakers: per-speaker outcomes, retries, stop, as a state table.

Theory of operation: a warning goes to one or more speakers at once. Each target moves through

    pending ─call─▶ calling ─answered─▶ playing ─played─▶ delivered
                       │                    │
                       └──failed(outcome)───┴──▶ busy | rejected | no_answer | unreachable | failed
                                                   │ attempts ≤ retries: back to pending at retry_at
    any non-final ──stop──▶ stopped

``TRANSITIONS`` is the whole table; ``Delivery.apply`` refuses any other move and leaves the target
as it was. A failure is retried after ``retry_delay`` while the target has had at most ``retries``
repeat attempts (486 busy, 603 rejected, no answer and unreachable alike: the issue asks for a
bounded retry of each), then it is final. The warning as a whole is ``running`` until every target
is final; then ``done`` if any speaker got the whole clip, ``stopped`` if an operator stopped it, and
``failed`` if none did.

No I/O: the asyncio player (``player.py``) makes the calls and reports what happened, with ``now``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable


class Outcome(enum.Enum):
    PENDING = "pending"
    CALLING = "calling"
    PLAYING = "playing"
    DELIVERED = "delivered"
    BUSY = "busy"
    REJECTED = "rejected"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    STOPPED = "stopped"


class Event(enum.Enum):
    CALL = "call"
    ANSWERED = "answered"
    PLAYED = "played"
    FAILED = "failed"
    RETRY = "retry"
    STOP = "stop"


FAILURES = frozenset(
    {Outcome.BUSY, Outcome.REJECTED, Outcome.NO_ANSWER, Outcome.UNREACHABLE, Outcome.FAILED}
)
ACTIVE = frozenset({Outcome.PENDING, Outcome.CALLING, Outcome.PLAYING})

#: (state, event) → next state; a FAILED event's next state is the failure it names.
TRANSITIONS: dict[tuple[Outcome, Event], Outcome | None] = {
    (Outcome.PENDING, Event.CALL): Outcome.CALLING,
    (Outcome.CALLING, Event.ANSWERED): Outcome.PLAYING,
    (Outcome.CALLING, Event.FAILED): None,
    (Outcome.PLAYING, Event.PLAYED): Outcome.DELIVERED,
    (Outcome.PLAYING, Event.FAILED): None,
    **{(f, Event.RETRY): Outcome.PENDING for f in FAILURES},
    **{(a, Event.STOP): Outcome.STOPPED for a in ACTIVE},
    **{(f, Event.STOP): Outcome.STOPPED for f in FAILURES},
}

#: What the warning as a whole is.
RUNNING, DONE, STOPPED, FAILED = "running", "done", "stopped", "failed"


class DeliveryError(ValueError):
    pass


@dataclasses.dataclass(slots=True)
class Target:
    speaker_id: int
    outcome: Outcome = Outcome.PENDING
    status: int | None = None  # the SIP status of the last failure
    attempts: int = 0
    packets: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    #: When a failed target is tried again (None: not waiting to retry).
    retry_at: float | None = None

    @property
    def final(self) -> bool:
        return self.outcome not in ACTIVE and self.retry_at is None


class Delivery:
    def __init__(self, speaker_ids: Iterable[int], *, retries: int, retry_delay: float) -> None:
        if retries < 0 or retry_delay < 0:
            raise DeliveryError("retries and retry_delay must not be negative")
        self.targets: dict[int, Target] = {sid: Target(sid) for sid in speaker_ids}
        if not self.targets:
            raise DeliveryError("a warning needs at least one speaker")
        self.retries = retries
        self.retry_delay = retry_delay
        self.stopped = False

    def apply(
        self,
        speaker_id: int,
        event: Event,
        now: float,
        *,
        failure: Outcome | None = None,
        status: int | None = None,
        packets: int | None = None,
    ) -> Target:
        """Move one target; DeliveryError for a move the table does not allow."""
        t = self.targets.get(speaker_id)
        if t is None:
            raise DeliveryError(f"speaker {speaker_id} is not a target")
        key = (t.outcome, event)
        if key not in TRANSITIONS:
            raise DeliveryError(f"speaker {speaker_id}: {event.value} while {t.outcome.value}")
        nxt = TRANSITIONS[key]
        if event is Event.FAILED:
            if failure not in FAILURES:
                raise DeliveryError(f"not a failure: {failure}")
            nxt = failure
        if event is Event.RETRY and (self.stopped or t.retry_at is None or now < t.retry_at):
            raise DeliveryError(f"speaker {speaker_id}: no retry due")
        assert nxt is not None
        t.outcome = nxt
        if packets is not None:
            t.packets = packets
        if event is Event.CALL:
            t.attempts += 1
            t.status = None
            if t.started_at is None:
                t.started_at = now
        elif event is Event.FAILED:
            t.status = status
            t.retry_at = now + self.retry_delay if t.attempts <= self.retries else None
            if t.retry_at is None:
                t.ended_at = now
        elif event is Event.RETRY:
            t.retry_at = None
        elif event in (Event.PLAYED, Event.STOP):
            t.retry_at = None
            t.ended_at = now
        return t

    def stop(self, now: float) -> list[Target]:
        """An operator stopped the warning: every target not yet final becomes stopped."""
        self.stopped = True
        out = []
        for t in self.targets.values():
            if not t.final:
                out.append(self.apply(t.speaker_id, Event.STOP, now))
        return out

    def due_retries(self, now: float) -> list[int]:
        if self.stopped:
            return []
        return [
            t.speaker_id
            for t in self.targets.values()
            if t.retry_at is not None and t.retry_at <= now
        ]

    def next_deadline(self) -> float | None:
        times = [t.retry_at for t in self.targets.values() if t.retry_at is not None]
        return None if self.stopped or not times else min(times)

    @property
    def finished(self) -> bool:
        return all(t.final for t in self.targets.values())

    @property
    def state(self) -> str:
        if not self.finished:
            return RUNNING
        if any(t.outcome is Outcome.DELIVERED for t in self.targets.values()):
            return DONE
        return STOPPED if self.stopped else FAILED
