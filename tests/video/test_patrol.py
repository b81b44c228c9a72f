"""Patrol rounds: every camera once within the period, page by page, prefetched, recorded as shown or
missed, resumable after a reload."""

from __future__ import annotations

import json

import pytest

from video.patrol import (
    Mark,
    PageEnded,
    PageStarted,
    PatrolError,
    PatrolRound,
    Prefetch,
    RoundEnded,
)

CAMERAS = list(range(1, 313))  # one source city's 312 cameras


def run_round(r: PatrolRound, *, down: frozenset[int] = frozenset()) -> list[object]:
    """Drive a round to its end the way a wall does: at each page start, every tile reports."""
    events: list[object] = []
    now = r.started
    while (deadline := r.next_deadline()) is not None:
        now = max(now, deadline)
        for e in r.advance(now):
            events.append(e)
            if isinstance(e, PageStarted):
                for cam in e.cameras:
                    r.seen(cam, cam not in down, now, "离线" if cam in down else "")
    return events


class TestPlan:
    def test_312_cameras_on_48_tiles_in_two_hours(self) -> None:
        r = PatrolRound(CAMERAS, tiles=48, period=7200, started=0)
        assert len(r.pages) == 7 and r.pages[-1] == tuple(range(289, 313))
        assert r.dwell == pytest.approx(7200 / 7)
        assert r.planned_end == pytest.approx(7200)

    def test_a_short_period_keeps_the_minimum_dwell_and_says_so(self) -> None:
        r = PatrolRound(CAMERAS, tiles=4, period=600, started=0, min_dwell=10)
        assert len(r.pages) == 78 and r.dwell == 10
        assert r.planned_end == 780  # longer than the period asked for

    @pytest.mark.parametrize(
        ("cams", "kw"),
        [
            ([], {}),
            ([1, 1], {}),
            ([1], {"tiles": 0}),
            ([1], {"tiles": 49}),
            ([1], {"period": 0}),
            ([1], {"min_visible": 20.0, "min_dwell": 10.0, "period": 5}),
        ],
    )
    def test_impossible_rounds_are_refused_in_chinese(self, cams: list[int], kw: dict) -> None:  # type: ignore[type-arg]
        args = {"tiles": 4, "period": 60.0, "started": 0.0, **kw}
        with pytest.raises(PatrolError) as e:
            PatrolRound(cams, **args)
        assert any("\u4e00" <= c <= "\u9fff" for c in str(e.value))


class TestRound:
    def test_every_camera_is_shown_once_and_recorded(self) -> None:
        r = PatrolRound(CAMERAS, tiles=48, period=7200, started=1000)
        events = run_round(r)
        started = [e for e in events if isinstance(e, PageStarted)]
        assert [e.index for e in started] == list(range(7))
        assert sorted(c for e in started for c in e.cameras) == CAMERAS  # each exactly once
        assert events[-1] == RoundEnded(shown=312, missed=0)
        assert all(rec.mark is Mark.SHOWN for rec in r.records.values())

    def test_each_page_is_prefetched_before_it_is_shown(self) -> None:
        r = PatrolRound(CAMERAS[:12], tiles=4, period=60, started=0, prefetch=3)
        times: dict[tuple[str, int], float] = {}
        now = 0.0
        while (d := r.next_deadline()) is not None:
            now = d
            for e in r.advance(now):
                if isinstance(e, Prefetch | PageStarted):
                    times[(type(e).__name__, e.index)] = now
        for k in range(3):
            assert times[("PageStarted", k)] == pytest.approx(20 * k)
            if k:
                assert times[("Prefetch", k)] == pytest.approx(20 * k - 3)

    def test_a_camera_down_during_its_page_is_missed_with_the_reason(self) -> None:
        r = PatrolRound(CAMERAS[:8], tiles=4, period=40, started=0)
        events = run_round(r, down=frozenset({3, 6}))
        ended = [e for e in events if isinstance(e, PageEnded)]
        assert ended[0].missed == (3,) and ended[1].missed == (6,)
        assert r.records[3].mark is Mark.MISSED and r.records[3].reason == "离线"
        assert events[-1] == RoundEnded(shown=6, missed=2)

    def test_a_camera_that_comes_back_during_its_page_counts_as_shown(self) -> None:
        r = PatrolRound([1, 2], tiles=2, period=20, started=0, min_visible=2)
        r.advance(0)
        r.seen(1, False, 0, "离线")
        r.seen(2, True, 0)
        r.seen(1, True, 15)  # back, and visible for the last 5 s of the page
        ev = r.advance(20)
        assert ev[0] == PageEnded(0, shown=(1, 2), missed=())
        assert r.records[1].visible_seconds == pytest.approx(5)

    def test_a_glimpse_shorter_than_min_visible_is_missed(self) -> None:
        r = PatrolRound([1], tiles=1, period=20, started=0, min_visible=2)
        r.advance(0)
        r.seen(1, False, 0, "离线")
        r.seen(1, True, 19)
        assert r.advance(20)[0] == PageEnded(0, shown=(), missed=(1,))

    def test_late_reports_for_an_ended_page_change_nothing(self) -> None:
        r = PatrolRound([1, 2, 3, 4], tiles=2, period=20, started=0)
        r.advance(0)
        r.advance(10)  # page 0 ended with nothing seen
        r.seen(1, True, 10.5)
        assert r.records[1].mark is Mark.MISSED

    def test_a_wall_that_slept_catches_up_page_by_page(self) -> None:
        r = PatrolRound(CAMERAS[:12], tiles=4, period=30, started=0)
        r.advance(0)
        events = r.advance(25)  # asleep through page 1
        assert [type(e).__name__ for e in events] == [
            "Prefetch", "PageEnded", "PageStarted", "Prefetch", "PageEnded", "PageStarted",
        ]  # fmt: skip
        assert r.page == 2
        assert r.progress(25)["missed"] == 8


class TestResume:
    def test_a_round_survives_a_reload_through_json(self) -> None:
        r = PatrolRound(CAMERAS[:12], tiles=4, period=30, started=0)
        r.advance(0)
        for cam in r.pages[0]:
            r.seen(cam, True, 0)
        r.advance(10)
        data = json.loads(json.dumps(r.snapshot()))
        back = PatrolRound.restore(data)
        assert back.page == 1 and back.dwell == r.dwell
        assert back.progress(12) == r.progress(12)
        assert [e for e in back.advance(30) if isinstance(e, RoundEnded)] == [
            RoundEnded(shown=4, missed=8)
        ]


def test_a_wall_that_stops_reporting_is_not_credited_beyond_the_gap() -> None:
    r = PatrolRound([1], tiles=1, period=60, started=0, min_visible=15)
    r.advance(0)
    r.seen(1, True, 0)  # then the window closes: no more reports
    assert r.advance(60)[0] == PageEnded(0, shown=(), missed=(1,))
    assert r.records[1].visible_seconds == pytest.approx(10)  # REPORT_GAP, not 60
