"""Patrol rounds (轮巡): every camera shown once within a period, page by page, as plain arithmetic.

Theory of operation: a round takes the cameras in wall order (street, grid, name), cuts them into
pages of ``tiles`` cameras and gives each page the same dwell, ``period / pages`` (at least
``min_dwell``: with more pages than the period allows, the round simply takes longer and says so in
``planned_end``). Page *k* is on the wall from ``started + k·dwell``; its cameras are opened
``prefetch`` seconds ahead so the tiles have a picture when the page turns.

While a page is up the wall reports what each tile could show (``seen(camera, visible, now)``: a
thumbnail or live picture arrived, or the camera was offline). A camera counts as **shown** once it
has been visible for ``min_visible`` seconds of its page; when its page ends without that, it is
**missed**, with the reason last reported (offline, no picture). ``advance(now)`` turns pages and
returns what happened (``PageStarted``, ``Prefetch``, ``PageEnded`` with the cameras missed,
``RoundEnded``), and ``next_deadline()`` when to call it again.

The round's record (which cameras were shown, for how long, which could not be) is what the hub
stores; ``snapshot()``/``restore()`` carry the whole state through PostgreSQL, so a round survives a
page reload or a hub restart. A tile reported visible is credited until its next report, but never
more than ``REPORT_GAP`` seconds at a stretch (a wall that was closed earns nothing). No I/O and no clock: ``now`` comes in as seconds.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from typing import Any

#: Longest stretch credited as visible between two reports of a tile.
REPORT_GAP = 10.0


class PatrolError(ValueError):
    """A round that cannot be: the message is zh-CN, for the seat."""


class Mark(enum.Enum):
    PENDING = "pending"
    SHOWN = "shown"
    MISSED = "missed"


@dataclasses.dataclass(frozen=True, slots=True)
class PageStarted:
    index: int
    cameras: tuple[int, ...]
    ends_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Prefetch:
    index: int
    cameras: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PageEnded:
    index: int
    shown: tuple[int, ...]
    missed: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RoundEnded:
    shown: int
    missed: int


Event = PageStarted | Prefetch | PageEnded | RoundEnded


@dataclasses.dataclass(slots=True)
class CameraRecord:
    camera_id: int
    page: int
    mark: Mark = Mark.PENDING
    visible_seconds: float = 0.0
    reason: str = ""
    visible_since: float | None = None


class PatrolRound:
    def __init__(
        self,
        cameras: Sequence[int],
        *,
        tiles: int,
        period: float,
        started: float,
        min_dwell: float = 10.0,
        min_visible: float = 2.0,
        prefetch: float = 3.0,
    ) -> None:
        if not cameras:
            raise PatrolError("没有可轮巡的摄像头")
        if len(set(cameras)) != len(cameras):
            raise PatrolError("摄像头重复")
        if not 1 <= tiles <= 48:
            raise PatrolError("每页画面数须在 1 到 48 之间")
        if period <= 0 or min_dwell <= 0 or min_visible < 0 or prefetch < 0:
            raise PatrolError("轮巡周期和停留时间须为正数")
        self.tiles = tiles
        self.period = period
        self.started = started
        self.min_visible = min_visible
        self.prefetch = prefetch
        self.pages: list[tuple[int, ...]] = [
            tuple(cameras[i : i + tiles]) for i in range(0, len(cameras), tiles)
        ]
        self.dwell = max(min_dwell, period / len(self.pages))
        if min_visible > self.dwell:
            raise PatrolError("停留时间短于判定可见所需时间")
        self.records: dict[int, CameraRecord] = {
            cam: CameraRecord(cam, k) for k, page in enumerate(self.pages) for cam in page
        }
        self.page = -1  # none up yet
        self.prefetched = -1
        self.ended = False

    # -- the schedule ------------------------------------------------------------------------

    @property
    def planned_end(self) -> float:
        return self.started + self.dwell * len(self.pages)

    def page_start(self, index: int) -> float:
        return self.started + index * self.dwell

    def next_deadline(self) -> float | None:
        if self.ended:
            return None
        nxt = self.page + 1
        times = [self.page_start(nxt)] if nxt <= len(self.pages) else []
        if self.prefetched < nxt < len(self.pages):
            times.append(self.page_start(nxt) - self.prefetch)
        return min(times) if times else None

    # -- what the wall reports ---------------------------------------------------------------

    def seen(self, camera_id: int, visible: bool, now: float, reason: str = "") -> None:
        """A tile's report for a camera of the page up now (reports for other pages are ignored:
        a late report cannot mark a camera of a page that has ended)."""
        rec = self.records.get(camera_id)
        if rec is None or rec.page != self.page or self.ended:
            return
        if visible:
            if rec.visible_since is None:
                rec.visible_since = now
            self._account(rec, now)
        else:
            self._account(rec, now)
            rec.visible_since = None
            rec.reason = reason or "无画面"

    def _account(self, rec: CameraRecord, now: float) -> None:
        if rec.visible_since is not None:
            # a wall that stopped reporting (closed, asleep) is not credited beyond REPORT_GAP
            rec.visible_seconds += min(max(0.0, now - rec.visible_since), REPORT_GAP)
            rec.visible_since = now
        if rec.visible_seconds >= self.min_visible and rec.mark is Mark.PENDING:
            rec.mark = Mark.SHOWN

    # -- turning pages -----------------------------------------------------------------------

    def advance(self, now: float) -> list[Event]:
        out: list[Event] = []
        while not self.ended:
            nxt = self.page + 1
            if (
                self.prefetched < nxt < len(self.pages)
                and now >= self.page_start(nxt) - self.prefetch
            ):
                self.prefetched = nxt
                out.append(Prefetch(nxt, self.pages[nxt]))
                continue
            if now < self.page_start(nxt):
                break
            if self.page >= 0:
                out.append(self._end_page(self.page, self.page_start(nxt)))
            if nxt == len(self.pages):
                self.ended = True
                marks = [r.mark for r in self.records.values()]
                out.append(RoundEnded(marks.count(Mark.SHOWN), marks.count(Mark.MISSED)))
                break
            self.page = nxt
            out.append(PageStarted(nxt, self.pages[nxt], self.page_start(nxt + 1)))
        return out

    def _end_page(self, index: int, at: float) -> PageEnded:
        shown: list[int] = []
        missed: list[int] = []
        for cam in self.pages[index]:
            rec = self.records[cam]
            self._account(rec, at)
            rec.visible_since = None
            if rec.mark is Mark.PENDING:
                rec.mark = Mark.MISSED
                rec.reason = rec.reason or "无画面"
            (shown if rec.mark is Mark.SHOWN else missed).append(cam)
        return PageEnded(index, tuple(shown), tuple(missed))

    # -- progress and persistence ------------------------------------------------------------

    def progress(self, now: float) -> dict[str, Any]:
        marks = [r.mark for r in self.records.values()]
        return {
            "page": self.page,
            "pages": len(self.pages),
            "cameras": len(self.records),
            "shown": marks.count(Mark.SHOWN),
            "missed": marks.count(Mark.MISSED),
            "dwell_seconds": self.dwell,
            "page_ends_in": None
            if self.ended or self.page < 0
            else max(0.0, self.page_start(self.page + 1) - now),
            "ended": self.ended,
            "behind": max(0, math.floor((now - self.started) / self.dwell) - self.page - 1)
            if not self.ended
            else 0,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "pages": [list(p) for p in self.pages],
            "tiles": self.tiles,
            "period": self.period,
            "started": self.started,
            "dwell": self.dwell,
            "min_visible": self.min_visible,
            "prefetch": self.prefetch,
            "page": self.page,
            "prefetched": self.prefetched,
            "ended": self.ended,
            "records": [
                [r.camera_id, r.page, r.mark.value, r.visible_seconds, r.reason, r.visible_since]
                for r in self.records.values()
            ],
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> PatrolRound:
        """The round as ``snapshot`` left it (a tile visible then stays credited until its next
        report, at most ``REPORT_GAP`` seconds)."""
        cameras = [c for page in data["pages"] for c in page]
        r = cls(
            cameras,
            tiles=int(data["tiles"]),
            period=float(data["period"]),
            started=float(data["started"]),
            min_dwell=float(data["dwell"]),
            min_visible=float(data["min_visible"]),
            prefetch=float(data["prefetch"]),
        )
        r.dwell = float(data["dwell"])
        r.page, r.prefetched, r.ended = (
            int(data["page"]),
            int(data["prefetched"]),
            bool(data["ended"]),
        )
        for cam, page, mark, secs, reason, since in data["records"]:
            rec = r.records[int(cam)]
            rec.page, rec.mark, rec.visible_seconds, rec.reason = (
                int(page),
                Mark(mark),
                float(secs),
                str(reason),
            )
            rec.visible_since = None if since is None else float(since)
        return r
