"""Today's queue figures from call outcomes: offered, answered, abandoned, service level, ASA.

Theory of operation: every call the ACD ends becomes a ``CallRecord`` (``acd.CallEnded.record``):
when it arrived, when it entered the queue (None if it never did), when an agent answered it (None if
none did), when it ended, and its ``Outcome``. A call belongs to the day of its *arrival* in the city's
time zone. ``day_stats(records, day, tz)`` computes one day's ``DayStats`` from a batch (the call
records in PostgreSQL); ``Tally`` is the same figures kept incrementally in memory by the service
(``add`` each call as it ends), and gives the same results as the batch for the same calls.

The figures, as a call-center lead reads them (times are seconds; a *wait* is from queue entry to
the answer, or to the end for a call nobody answered):

- ``arrived``: every call that reached the hotline that day, in or out of service hours.
- ``offered``: calls that entered the queue to wait for an agent. Calls turned away before the queue
  (out of hours, queue full, hung up during the welcome prompt) are not offered.
- ``answered``: offered calls an agent answered (a call once answered stays answered, whatever
  followed: a transfer, a hang-up in the queue after a blind transfer).
- ``abandoned``: offered calls whose caller hung up while waiting, after at least ``SHORT_ABANDON``
  (5 s) in the queue. ``short_abandoned``: the same within 5 s — a wrong number, a caller who changed
  their mind — counted separately and left out of every rate below.
- ``ivr_abandoned``: callers who hung up during the welcome prompt (never offered).
- ``callbacks``: callers who pressed the callback key (in the queue or at the out-of-hours prompt).
- ``overflow``: callers turned away with the overflow message (queue full on arrival, or the maximum
  wait reached). ``out_of_hours``: calls outside service hours that did not ask for a callback.
  ``failed``: calls lost to a technical fault before an agent answered.
- ``answered_within``: answered calls that waited at most ``threshold`` (20 s).
- ``service_level``: ``answered_within ÷ answered``. ``service_level_abandoned``: ``answered_within ÷
  (answered + abandoned)``, the stricter variant that charges the queue for callers who gave up
  (short abandons excluded). Both None when the denominator is 0.
- ``average_speed_of_answer``: the mean wait of the answered calls (None if none).
- ``abandon_rate``: ``abandoned ÷ (offered − short_abandoned)`` (None if that is 0).
- ``longest_wait``: the longest wait of the day's offered calls, including the calls still waiting
  (``now − queued_at`` for each, passed in as ``waiting``); 0 when none.

No I/O and no clock: instants are float epoch seconds, ``now`` comes in.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

#: An abandon within this many seconds of queue entry is a *short* abandon.
SHORT_ABANDON = 5.0
#: The service level's threshold: answered within this many seconds.
THRESHOLD = 20.0


class Outcome(enum.Enum):
    """How a hotline call ended (the ``outcome`` column of ``hotline_calls``)."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    CALLBACK = "callback"
    OVERFLOW = "overflow"
    OUT_OF_HOURS = "out_of_hours"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class CallRecord:
    """One ended call, as the figures need it."""

    arrived: float
    queued_at: float | None
    answered_at: float | None
    ended: float
    outcome: Outcome

    def __post_init__(self) -> None:
        if self.ended < self.arrived:
            raise ValueError("a call cannot end before it arrived")
        if self.queued_at is not None and not self.arrived <= self.queued_at <= self.ended:
            raise ValueError("queue entry outside the call")
        if (self.outcome is Outcome.ANSWERED) != (self.answered_at is not None):
            raise ValueError("answered_at is set exactly for answered calls")
        if self.answered_at is not None and (
            self.queued_at is None or not self.queued_at <= self.answered_at <= self.ended
        ):
            raise ValueError("an answered call was queued before it was answered")

    @property
    def wait(self) -> float | None:
        """Seconds in the queue until answered (or until the end); None if never queued."""
        if self.queued_at is None:
            return None
        end = self.answered_at if self.answered_at is not None else self.ended
        return end - self.queued_at

    @property
    def short_abandon(self) -> bool:
        wait = self.wait
        return self.outcome is Outcome.ABANDONED and wait is not None and wait < SHORT_ABANDON


@dataclasses.dataclass(frozen=True, slots=True)
class DayStats:
    day: date
    threshold: float
    arrived: int
    offered: int
    answered: int
    answered_within: int
    abandoned: int
    short_abandoned: int
    ivr_abandoned: int
    callbacks: int
    overflow: int
    out_of_hours: int
    failed: int
    waiting: int
    service_level: float | None
    service_level_abandoned: float | None
    average_speed_of_answer: float | None
    abandon_rate: float | None
    longest_wait: float


def day_of(instant: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(instant, tz).date()


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def day_stats(
    records: Iterable[CallRecord],
    day: date,
    tz: ZoneInfo,
    *,
    threshold: float = THRESHOLD,
    now: float | None = None,
    waiting: Iterable[float] = (),
) -> DayStats:
    """One day's figures from the calls that ended (``records``; other days' are skipped) and the
    queue entry times of the calls still waiting (``waiting``, with ``now``)."""
    today = [r for r in records if day_of(r.arrived, tz) == day]
    offered = [r for r in today if r.queued_at is not None]
    answered = [r for r in offered if r.outcome is Outcome.ANSWERED]
    abandoned_all = [r for r in offered if r.outcome is Outcome.ABANDONED]
    short = [r for r in abandoned_all if r.short_abandon]
    abandoned = len(abandoned_all) - len(short)
    answer_waits = [r.wait for r in answered if r.wait is not None]
    within = sum(1 for w in answer_waits if w <= threshold)
    still = [q for q in waiting if day_of(q, tz) == day]
    if still and now is None:
        raise ValueError("calls still waiting need now")
    waits = [r.wait for r in offered if r.wait is not None]
    waits += [max(0.0, now - q) for q in still] if now is not None else []
    count = {o: sum(1 for r in today if r.outcome is o) for o in Outcome}
    return DayStats(
        day=day,
        threshold=threshold,
        arrived=len(today),
        offered=len(offered),
        answered=len(answered),
        answered_within=within,
        abandoned=abandoned,
        short_abandoned=len(short),
        ivr_abandoned=sum(
            1 for r in today if r.outcome is Outcome.ABANDONED and r.queued_at is None
        ),
        callbacks=count[Outcome.CALLBACK],
        overflow=count[Outcome.OVERFLOW],
        out_of_hours=count[Outcome.OUT_OF_HOURS],
        failed=count[Outcome.FAILED],
        waiting=len(still),
        service_level=_ratio(within, len(answered)),
        service_level_abandoned=_ratio(within, len(answered) + abandoned),
        average_speed_of_answer=_ratio(sum(answer_waits), len(answer_waits)),
        abandon_rate=_ratio(abandoned, len(offered) - len(short)),
        longest_wait=max(waits, default=0.0),
    )


class Tally:
    """The same figures for one day, kept as calls end (the service's in-memory board)."""

    def __init__(self, day: date, tz: ZoneInfo, *, threshold: float = THRESHOLD) -> None:
        self.day = day
        self.tz = tz
        self.threshold = threshold
        self.arrived = self.offered = self.answered = self.answered_within = 0
        self.abandoned = self.short_abandoned = self.ivr_abandoned = 0
        self.by_outcome: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.answer_wait_total = 0.0
        self.longest = 0.0

    def add(self, record: CallRecord) -> bool:
        """Count one ended call; False (and nothing counted) if it arrived on another day."""
        if day_of(record.arrived, self.tz) != self.day:
            return False
        self.arrived += 1
        self.by_outcome[record.outcome] += 1
        wait = record.wait
        if wait is None:
            if record.outcome is Outcome.ABANDONED:
                self.ivr_abandoned += 1
            return True
        self.offered += 1
        self.longest = max(self.longest, wait)
        if record.outcome is Outcome.ANSWERED:
            self.answered += 1
            self.answer_wait_total += wait
            if wait <= self.threshold:
                self.answered_within += 1
        elif record.outcome is Outcome.ABANDONED:
            if wait < SHORT_ABANDON:
                self.short_abandoned += 1
            else:
                self.abandoned += 1
        return True

    def stats(self, now: float | None = None, waiting: Iterable[float] = ()) -> DayStats:
        """The figures so far, with the calls still waiting (their queue entry times) at ``now``."""
        still = [q for q in waiting if day_of(q, self.tz) == self.day]
        if still and now is None:
            raise ValueError("calls still waiting need now")
        longest = self.longest
        if now is not None:
            longest = max([longest, *(max(0.0, now - q) for q in still)])
        return DayStats(
            day=self.day,
            threshold=self.threshold,
            arrived=self.arrived,
            offered=self.offered,
            answered=self.answered,
            answered_within=self.answered_within,
            abandoned=self.abandoned,
            short_abandoned=self.short_abandoned,
            ivr_abandoned=self.ivr_abandoned,
            callbacks=self.by_outcome[Outcome.CALLBACK],
            overflow=self.by_outcome[Outcome.OVERFLOW],
            out_of_hours=self.by_outcome[Outcome.OUT_OF_HOURS],
            failed=self.by_outcome[Outcome.FAILED],
            waiting=len(still),
            service_level=_ratio(self.answered_within, self.answered),
            service_level_abandoned=_ratio(self.answered_within, self.answered + self.abandoned),
            average_speed_of_answer=_ratio(self.answer_wait_total, self.answered),
            abandon_rate=_ratio(self.abandoned, self.offered - self.short_abandoned),
            longest_wait=longest,
        )
