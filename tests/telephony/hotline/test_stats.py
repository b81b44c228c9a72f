"""The queue board's day figures: a hand-computed day (offered, answered, abandoned with the short
abandons apart, both service levels, ASA, abandon rate, longest wait, the day in the city's zone),
and the in-memory Tally giving the same figures as the batch for any calls."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.hotline.stats import CallRecord, DayStats, Outcome, Tally, day_stats

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 2)
NINE = datetime(2026, 12, 2, 9, 0, tzinfo=SHANGHAI).timestamp()
OC = Outcome


def rec(
    at: float,
    outcome: Outcome,
    *,
    wait: float | None = None,
    answer: float | None = None,
    talk: float = 60.0,
) -> CallRecord:
    """A call arriving at ``at``, queued 8 s later (after the welcome) unless ``wait`` is None;
    answered ``answer`` s after that and talked ``talk`` s, or ended after waiting ``wait`` s."""
    queued = None if wait is None else at + 8
    answered = None if answer is None or queued is None else queued + answer
    if answered is not None:
        ended = answered + talk
    else:
        ended = queued + (wait or 0.0) if queued is not None else at + 8
    return CallRecord(at, queued, answered, ended, outcome)


#: One hand-counted day, and its neighbours.
CALLS = [
    rec(NINE + 0, OC.ANSWERED, wait=10, answer=10),  # within 20 s
    rec(NINE + 100, OC.ANSWERED, wait=30, answer=30),  # too slow
    rec(NINE + 200, OC.ANSWERED, wait=20, answer=20),  # exactly 20 s: within
    rec(NINE + 300, OC.ABANDONED, wait=60),
    rec(NINE + 400, OC.ABANDONED, wait=3),  # a short abandon
    rec(NINE + 500, OC.CALLBACK, wait=40),  # pressed the key in the queue
    rec(NINE + 600, OC.OVERFLOW),  # queue full on arrival
    rec(NINE + 700, OC.OVERFLOW, wait=600),  # the maximum wait
    rec(NINE + 800, OC.OUT_OF_HOURS),
    rec(NINE + 900, OC.CALLBACK),  # at the out-of-hours prompt
    rec(NINE + 1000, OC.ABANDONED),  # hung up during the welcome
    rec(NINE + 1100, OC.FAILED, wait=5),
    # 00:00:05 local is 16:00:05 UTC the day before: still today in Shanghai
    rec(datetime(2026, 12, 2, 0, 0, 5, tzinfo=SHANGHAI).timestamp(), OC.ANSWERED, wait=5, answer=5),
    # the evening before and the next morning: other days
    rec(
        datetime(2026, 12, 1, 23, 59, 0, tzinfo=SHANGHAI).timestamp(), OC.ANSWERED, wait=5, answer=5
    ),
    rec(datetime(2026, 12, 3, 0, 0, 0, tzinfo=SHANGHAI).timestamp(), OC.ABANDONED, wait=900),
]


class TestHandCountedDay:
    def test_the_counts(self) -> None:
        s = day_stats(CALLS, DAY, SHANGHAI)
        assert (s.arrived, s.offered, s.answered, s.answered_within) == (13, 9, 4, 3)
        assert (s.abandoned, s.short_abandoned, s.ivr_abandoned) == (1, 1, 1)
        assert (s.callbacks, s.overflow, s.out_of_hours, s.failed) == (2, 2, 1, 1)

    def test_the_rates(self) -> None:
        s = day_stats(CALLS, DAY, SHANGHAI)
        assert s.service_level == 3 / 4  # answered within 20 s ÷ answered
        assert s.service_level_abandoned == 3 / 5  # ÷ (answered + abandoned, short ones left out)
        assert s.average_speed_of_answer == (10 + 30 + 20 + 5) / 4
        assert s.abandon_rate == 1 / 8  # abandoned ÷ (offered − short abandons)
        assert s.longest_wait == 600

    def test_calls_still_waiting_count_in_the_longest_wait(self) -> None:
        now = NINE + 5000
        s = day_stats(CALLS, DAY, SHANGHAI, now=now, waiting=[now - 700, now - 10])
        assert (s.longest_wait, s.waiting) == (700, 2)
        with pytest.raises(ValueError):
            day_stats(CALLS, DAY, SHANGHAI, waiting=[now])

    def test_another_threshold(self) -> None:
        assert day_stats(CALLS, DAY, SHANGHAI, threshold=10).answered_within == 2

    def test_the_day_is_the_citys(self) -> None:
        # In UTC, 00:00:05 Shanghai (answered) falls on December 1st and 00:00 on the 3rd
        # (abandoned) on the 2nd
        s = day_stats(CALLS, DAY, ZoneInfo("UTC"))
        assert (s.arrived, s.answered, s.abandoned) == (13, 3, 2)

    def test_an_empty_day_has_no_rates(self) -> None:
        s = day_stats([], DAY, SHANGHAI)
        assert s.offered == 0 and s.longest_wait == 0.0
        rates = (s.service_level, s.service_level_abandoned, s.average_speed_of_answer)
        assert rates == (None, None, None) and s.abandon_rate is None

    def test_the_tally_agrees_with_the_batch(self) -> None:
        tally = Tally(DAY, SHANGHAI)
        added = [tally.add(r) for r in CALLS]
        assert added.count(False) == 2  # the other days' calls
        now = NINE + 5000
        assert tally.stats(now, [now - 700]) == day_stats(
            CALLS, DAY, SHANGHAI, now=now, waiting=[now - 700]
        )


class TestRecords:
    @pytest.mark.parametrize(
        "args",
        [
            (10.0, None, None, 5.0, OC.ABANDONED),  # ends before it arrived
            (0.0, None, 5.0, 10.0, OC.ANSWERED),  # answered, never queued
            (0.0, 2.0, None, 10.0, OC.ANSWERED),  # answered without an answer time
            (0.0, 2.0, 3.0, 10.0, OC.ABANDONED),  # an answer time on an abandon
            (0.0, 20.0, None, 10.0, OC.ABANDONED),  # queued after the end
        ],
    )
    def test_impossible_records_are_refused(self, args: tuple) -> None:  # type: ignore[type-arg]
        with pytest.raises(ValueError):
            CallRecord(*args)


START = datetime(2026, 12, 2, tzinfo=SHANGHAI).timestamp()


@st.composite
def records(draw: st.DrawFn) -> CallRecord:
    arrived = START + draw(st.integers(-86400, 2 * 86400))
    outcome = draw(st.sampled_from(Outcome))
    queued: float | None = None
    if outcome is OC.ANSWERED or draw(st.booleans()):
        queued = arrived + draw(st.integers(0, 30))
    answered = queued + draw(st.integers(0, 120)) if outcome is OC.ANSWERED and queued else None
    ended = max(arrived, queued or arrived, answered or arrived) + draw(st.integers(0, 900))
    return CallRecord(arrived, queued, answered, float(ended), outcome)


class TestTallyMatchesBatch:
    @settings(max_examples=300, database=None, deadline=None)
    @given(
        calls=st.lists(records(), max_size=60),
        waiting=st.lists(st.integers(0, 86400), max_size=5),
        threshold=st.sampled_from([10.0, 20.0, 30.0]),
    )
    def test_same_figures(
        self, calls: list[CallRecord], waiting: list[int], threshold: float
    ) -> None:
        now = START + 86400 + 60
        queued_at = [START + w for w in waiting]
        tally = Tally(DAY, SHANGHAI, threshold=threshold)
        for r in calls:
            tally.add(r)
        batch = day_stats(calls, DAY, SHANGHAI, threshold=threshold, now=now, waiting=queued_at)
        assert tally.stats(now, queued_at) == batch
        check_definitions(batch, [r for r in calls if _today(r)], threshold)


def _today(r: CallRecord) -> bool:
    return datetime.fromtimestamp(r.arrived, SHANGHAI).date() == DAY


def check_definitions(s: DayStats, today: list[CallRecord], threshold: float) -> None:
    """The figures add up the way the docstring defines them."""
    assert s.arrived == len(today)
    never_queued = [r for r in today if r.queued_at is None]
    assert s.offered + len(never_queued) == s.arrived
    assert s.answered + s.abandoned + s.short_abandoned + s.ivr_abandoned <= s.arrived
    assert s.answered_within <= s.answered
    for rate in (s.service_level, s.service_level_abandoned, s.abandon_rate):
        assert rate is None or 0 <= rate <= 1
    if s.service_level is not None and s.service_level_abandoned is not None:
        assert s.service_level_abandoned <= s.service_level
