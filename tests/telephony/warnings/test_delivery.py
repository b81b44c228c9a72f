"""A warning's per-speaker delivery: outcomes, bounded retries, stop, and the warning's own state."""

from __future__ import annotations

import pytest

from telephony.warnings.delivery import (
    DONE,
    FAILED,
    RUNNING,
    STOPPED,
    Delivery,
    DeliveryError,
    Event,
    Outcome,
)


def delivered(d: Delivery, sid: int, now: float) -> None:
    d.apply(sid, Event.CALL, now)
    d.apply(sid, Event.ANSWERED, now + 0.1)
    d.apply(sid, Event.PLAYED, now + 5, packets=250)


class TestHappyPath:
    def test_every_speaker_delivered_is_done(self) -> None:
        d = Delivery([1, 2, 3], retries=2, retry_delay=5)
        for sid in (1, 2, 3):
            delivered(d, sid, 0.0)
        assert d.finished and d.state == DONE
        assert all(t.packets == 250 and t.attempts == 1 for t in d.targets.values())

    def test_running_until_the_last_target_is_final(self) -> None:
        d = Delivery([1, 2], retries=0, retry_delay=5)
        delivered(d, 1, 0.0)
        assert d.state == RUNNING
        d.apply(2, Event.CALL, 0.0)
        d.apply(2, Event.FAILED, 1.0, failure=Outcome.BUSY, status=486)
        assert d.state == DONE  # one speaker got it
        assert d.targets[2].outcome is Outcome.BUSY and d.targets[2].status == 486


class TestRetries:
    def test_a_busy_speaker_is_retried_at_most_retries_times(self) -> None:
        d = Delivery([7], retries=2, retry_delay=5)
        now = 0.0
        for attempt in range(1, 4):
            d.apply(7, Event.CALL, now)
            t = d.apply(7, Event.FAILED, now + 1, failure=Outcome.BUSY, status=486)
            assert t.attempts == attempt
            if attempt < 3:
                assert t.retry_at == now + 6 and not d.finished
                assert d.due_retries(now + 5.9) == []
                assert d.due_retries(now + 6) == [7]
                assert d.next_deadline() == now + 6
                now += 6
                d.apply(7, Event.RETRY, now)
            else:
                assert t.retry_at is None and t.final
        assert d.state == FAILED
        assert d.targets[7].attempts == 3

    def test_no_retries_means_one_attempt(self) -> None:
        d = Delivery([1], retries=0, retry_delay=5)
        d.apply(1, Event.CALL, 0)
        d.apply(1, Event.FAILED, 20, failure=Outcome.NO_ANSWER)
        assert d.finished and d.state == FAILED and d.next_deadline() is None

    def test_a_retry_before_it_is_due_is_refused(self) -> None:
        d = Delivery([1], retries=1, retry_delay=5)
        d.apply(1, Event.CALL, 0)
        d.apply(1, Event.FAILED, 1, failure=Outcome.UNREACHABLE)
        with pytest.raises(DeliveryError):
            d.apply(1, Event.RETRY, 3)
        assert d.targets[1].outcome is Outcome.UNREACHABLE


class TestStop:
    def test_stop_ends_playing_and_waiting_targets_not_finished_ones(self) -> None:
        d = Delivery([1, 2, 3, 4], retries=1, retry_delay=5)
        delivered(d, 1, 0)
        d.apply(2, Event.CALL, 0)
        d.apply(2, Event.ANSWERED, 0.2)
        d.apply(3, Event.CALL, 0)
        d.apply(3, Event.FAILED, 1, failure=Outcome.BUSY, status=486)  # waiting to retry
        stopped = d.stop(2.0)
        assert {t.speaker_id for t in stopped} == {2, 3, 4}
        assert d.targets[1].outcome is Outcome.DELIVERED
        assert all(d.targets[s].outcome is Outcome.STOPPED for s in (2, 3, 4))
        assert d.due_retries(100) == [] and d.next_deadline() is None
        assert d.state == DONE  # speaker 1 had the whole clip

    def test_stopped_before_any_delivery(self) -> None:
        d = Delivery([1], retries=0, retry_delay=0)
        d.apply(1, Event.CALL, 0)
        d.stop(1)
        assert d.state == STOPPED

    def test_a_late_report_after_stop_is_refused_and_changes_nothing(self) -> None:
        d = Delivery([1], retries=0, retry_delay=0)
        d.apply(1, Event.CALL, 0)
        d.apply(1, Event.ANSWERED, 0)
        d.stop(1)
        with pytest.raises(DeliveryError):
            d.apply(1, Event.PLAYED, 2, packets=100)
        assert d.targets[1].outcome is Outcome.STOPPED and d.targets[1].packets == 0


class TestRefusals:
    def test_answered_without_a_call(self) -> None:
        d = Delivery([1], retries=0, retry_delay=0)
        with pytest.raises(DeliveryError):
            d.apply(1, Event.ANSWERED, 0)
        assert d.targets[1].outcome is Outcome.PENDING

    def test_failed_needs_a_failure_outcome(self) -> None:
        d = Delivery([1], retries=0, retry_delay=0)
        d.apply(1, Event.CALL, 0)
        with pytest.raises(DeliveryError):
            d.apply(1, Event.FAILED, 1, failure=Outcome.DELIVERED)

    def test_unknown_speaker_and_empty_warning(self) -> None:
        with pytest.raises(DeliveryError):
            Delivery([], retries=0, retry_delay=0)
        with pytest.raises(DeliveryError):
            Delivery([1], retries=0, retry_delay=0).apply(9, Event.CALL, 0)
