"""Speaker health from OPTIONS answers and our own calls: what the wall shows, and since when."""

from __future__ import annotations

import pytest

from telephony.warnings.health import HealthTable, SpeakerState


def states(changes: list) -> list[tuple[int, SpeakerState, float | None]]:  # type: ignore[type-arg]
    return [(c.speaker_id, c.state, c.since) for c in changes]


class TestOptions:
    def test_new_speakers_start_unknown_and_any_answer_is_online(self) -> None:
        h = HealthTable()
        added, gone = h.track([1, 2])
        assert [(s.speaker_id, s.state) for s in added] == [
            (1, SpeakerState.UNKNOWN),
            (2, SpeakerState.UNKNOWN),
        ]
        assert gone == []
        assert states(h.checked(1, 200, 100.0)) == [(1, SpeakerState.ONLINE, 100.0)]
        # a 405 or 404 still proves a device answers there
        assert states(h.checked(2, 405, 100.0)) == [(2, SpeakerState.ONLINE, 100.0)]

    def test_the_same_answer_again_is_no_change_and_keeps_since(self) -> None:
        h = HealthTable()
        h.checked(1, 200, 100.0)
        assert h.checked(1, 200, 130.0) == []
        assert h.status(1).since == 100.0

    def test_one_miss_does_not_flap_two_do(self) -> None:
        h = HealthTable(misses_offline=2)
        h.checked(1, 200, 100.0)
        assert h.checked(1, None, 130.0) == []
        assert states(h.checked(1, None, 160.0)) == [(1, SpeakerState.OFFLINE, 160.0)]
        assert states(h.checked(1, 200, 190.0)) == [(1, SpeakerState.ONLINE, 190.0)]

    def test_never_answered_is_offline_at_the_first_miss(self) -> None:
        h = HealthTable()
        h.track([3])
        assert states(h.checked(3, None, 100.0)) == [(3, SpeakerState.OFFLINE, 100.0)]

    def test_486_means_busy(self) -> None:
        h = HealthTable()
        assert states(h.checked(1, 486, 10.0)) == [(1, SpeakerState.BUSY, 10.0)]

    def test_forgotten_speakers_are_reported_gone(self) -> None:
        h = HealthTable()
        h.track([1, 2])
        _, gone = h.track([2])
        assert gone == [1]
        assert [s.speaker_id for s in h.statuses()] == [2]


class TestOurCalls:
    def test_busy_while_we_call_then_back_to_online(self) -> None:
        h = HealthTable()
        h.checked(1, 200, 100.0)
        assert states(h.call_started(1, 110.0)) == [(1, SpeakerState.BUSY, 110.0)]
        assert h.checked(1, 200, 115.0) == []  # OPTIONS during the call: still busy
        assert states(h.call_ended(1, 120.0, answered=True)) == [(1, SpeakerState.ONLINE, 120.0)]

    def test_two_overlapping_calls_stay_busy_until_both_end(self) -> None:
        h = HealthTable()
        h.call_started(1, 1.0)
        assert h.call_started(1, 2.0) == []
        assert h.call_ended(1, 3.0, answered=True) == []
        assert states(h.call_ended(1, 4.0, answered=True)) == [(1, SpeakerState.ONLINE, 4.0)]

    def test_an_unanswered_call_leaves_what_the_checks_said(self) -> None:
        h = HealthTable()
        h.checked(1, None, 1.0)
        h.call_started(1, 2.0)
        assert states(h.call_ended(1, 30.0, answered=False)) == [(1, SpeakerState.OFFLINE, 30.0)]


def test_json_for_the_channel() -> None:
    h = HealthTable()
    h.checked(5, 200, 0.0)
    j = h.status(5).to_json()
    assert j == {
        "id": 5,
        "state": "online",
        "label": "在线",
        "since": "1970-01-01T00:00:00+00:00",
        "sip_status": 200,
    }


def test_misses_offline_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HealthTable(misses_offline=0)
