"""The evaluation indicators by source (来源分析) and of urgent cases (紧急案件), from the case event
log.

Theory of operation
-------------------
Both are the city's figures (``storage.evaluation._MEMBERS``, imported, not copied) split by a
property of the member case, one statement each, with drill-downs by the same text:

- by source: ``cases.source`` (set at the report, never changed: 监督员上报, 12319热线, 视频巡查,
  传感器, 公众上报); per source 受理 ``accepted``, 立案 ``registered``, 应结案 ``due``, 结案
  ``closed``, 按期结案 ``on_time`` and, apart, 快速处置上报 ``quick_reported`` / 快速处置结案
  ``quick_closed`` (quick cases are in none of the others, as in the city's figures). 占比 (share)
  = the source's 受理 / all 受理 of the period; 立案率 = 立案/受理; 结案率, 按期结案率 = 结案,
  按期结案 / 应结案 (less 缓办 in the deferred-subtracting variant).
- urgent: the cases urgent (紧急) *as of the period's end*: the last ``urgent`` mark (``data.urgent``
  of the report, a registration or a dispatch) before the end says so; a case marked later does
  not move a closed period. Figures: 受理, 立案, 派遣 ``dispatched``, 应结案, 结案, 按期结案, 缓办
  ``deferred``, and 平均处置时长: the mean, over the urgent cases closed in the period, of the time
  from the first dispatch to the last feedback (the department's work; elapsed time, in seconds).

The marks are not searched in the event log: migration 0017's trigger keeps one ``case_urgency``
row per marking event with the moment the next mark replaced it (``until``), so the mark in force
at the end is a range condition (``at < end`` and ``until`` absent or at or after ``end``) on the
few true marks of a partial index, hashed once and semi-joined to the city's members (the source
figures do not read it at all). The handling time reads the first dispatch and the last
feedback from ``case_facts`` (a case closed in the period had both before the end: close is
terminal), so no event is read at all.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidRequest
from storage.evaluation import _WORK_MEM, DrillQuery, _check_period, _rate, fetch_ids
from storage.evaluation_sql import FACT_BRANCHES, counts_text, members_text

#: Every source, in the order forms list them, with its label (as ``hub.core.workflow.Source``).
SOURCE_LABELS: dict[str, str] = {
    "supervisor": "监督员上报",
    "hotline": "12319热线",
    "video": "视频巡查",
    "sensor": "传感器",
    "public": "公众上报",
}


class SourceFigure(StrEnum):
    ACCEPTED = "accepted"  # 受理数
    REGISTERED = "registered"  # 立案数
    DUE = "due"  # 应结案数
    CLOSED = "closed"  # 结案数
    ON_TIME = "on_time"  # 按期结案数
    DEFERRED = "deferred"  # 缓办数
    QUICK_REPORTED = "quick_reported"  # 快速处置上报数
    QUICK_CLOSED = "quick_closed"  # 快速处置结案数


class UrgentFigure(StrEnum):
    ACCEPTED = "accepted"  # 受理数
    REGISTERED = "registered"  # 立案数
    DISPATCHED = "dispatched"  # 派遣数
    DUE = "due"  # 应结案数
    CLOSED = "closed"  # 结案数
    ON_TIME = "on_time"  # 按期结案数
    DEFERRED = "deferred"  # 缓办数


FIGURE_LABELS: dict[str, str] = {
    "accepted": "受理数",
    "registered": "立案数",
    "dispatched": "派遣数",
    "due": "应结案数",
    "closed": "结案数",
    "on_time": "按期结案数",
    "deferred": "缓办数",
    "quick_reported": "快速处置上报数",
    "quick_closed": "快速处置结案数",
}
RATE_LABELS: dict[str, str] = {
    "share": "占比",
    "register_rate": "立案率",
    "dispatch_rate": "派遣率",
    "close_rate": "结案率",
    "on_time_rate": "按期结案率",
}

#: Every source's figures of the period as rows (source, figure, n); $1 = start, $2 = end.
_SOURCE_COUNTS = counts_text(lambda dep: ("source",), only=[f.value for f in SourceFigure])

#: The cases urgent as of the end ($2): the mark in force then (migration 0017's spans) is true;
#: the true marks are few (a partial index), hashed once for a semi-join.
_URGENT_AT_END = (
    "case_id IN (SELECT u.case_id FROM case_urgency u"
    " WHERE u.urgent AND u.at < $2 AND (u.until IS NULL OR u.until >= $2))"
)
#: 平均处置时长: the urgent cases closed in the period (so every feedback and dispatch was before
#: the end: close is terminal), first dispatch to last feedback, summed in whole microseconds
#: (exact: timestamps are microseconds) with how many were timed.
_URGENT_WORK = f"""
    SELECT 'took_us', sum((extract(epoch FROM last_feedback_at - first_dispatch_at)
                           * 1000000)::bigint)
      FROM case_facts WHERE {FACT_BRANCHES["closed"][0]} AND {_URGENT_AT_END}
    UNION ALL
    SELECT 'timed', count(last_feedback_at - first_dispatch_at)
      FROM case_facts WHERE {FACT_BRANCHES["closed"][0]} AND {_URGENT_AT_END}"""
_URGENT_COUNTS = counts_text(
    lambda dep: (),
    only=[f.value for f in UrgentFigure],
    restrict=_URGENT_AT_END,
    extra_counted=_URGENT_WORK,
)


@functools.cache
def _source_drill_text(figure: str) -> str:
    return members_text([figure]) + "\nSELECT case_id FROM members WHERE source = $3"


@functools.cache
def _urgent_drill_text(figure: str) -> str:
    return members_text([figure]) + f"\nSELECT case_id FROM members WHERE {_URGENT_AT_END}"


@dataclasses.dataclass(frozen=True, slots=True)
class SourceRow:
    source: str
    label: str
    counts: dict[str, int]
    total_accepted: int  # every source's 受理 of the period (the share's denominator)
    subtract_deferred: bool

    def count(self, figure: SourceFigure | str) -> int:
        return self.counts[SourceFigure(figure).value]

    @property
    def share(self) -> Fraction | None:  # 占比
        return _rate(self.counts["accepted"], self.total_accepted)

    @property
    def base(self) -> int:
        due, deferred = self.counts["due"], self.counts["deferred"]
        return due - deferred if self.subtract_deferred else due

    def rates(self) -> dict[str, Fraction | None]:
        return {
            "share": self.share,
            "register_rate": _rate(self.counts["registered"], self.counts["accepted"]),
            "close_rate": _rate(self.counts["closed"], self.base),
            "on_time_rate": _rate(self.counts["on_time"], self.base),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class UrgentFigures:
    counts: dict[str, int]
    #: 平均处置时长 (seconds) over the urgent cases closed in the period; None without one.
    average_handling_s: float | None
    subtract_deferred: bool

    def count(self, figure: UrgentFigure | str) -> int:
        return self.counts[UrgentFigure(figure).value]

    @property
    def base(self) -> int:
        due, deferred = self.counts["due"], self.counts["deferred"]
        return due - deferred if self.subtract_deferred else due

    def rates(self) -> dict[str, Fraction | None]:
        c = self.counts
        return {
            "register_rate": _rate(c["registered"], c["accepted"]),
            "dispatch_rate": _rate(c["dispatched"], c["registered"]),
            "close_rate": _rate(c["closed"], self.base),
            "on_time_rate": _rate(c["on_time"], self.base),
        }


async def source_indicators(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    *,
    subtract_deferred: bool = False,
) -> list[SourceRow]:
    """One row per source (every source, in ``SOURCE_LABELS`` order) for ``[start, end)``."""
    _check_period(start, end)
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(_SOURCE_COUNTS, start, end)
    counts = {s: {f.value: 0 for f in SourceFigure} for s in SOURCE_LABELS}
    for r in rows:
        if r["k1"] in counts:
            counts[str(r["k1"])][str(r["indicator"])] = int(r["n"])
    total = sum(c["accepted"] for c in counts.values())
    return [
        SourceRow(s, label, counts[s], total, subtract_deferred)
        for s, label in SOURCE_LABELS.items()
    ]


async def urgent_indicators(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    *,
    subtract_deferred: bool = False,
) -> UrgentFigures:
    """The urgent cases' figures of ``[start, end)`` in one statement."""
    _check_period(start, end)
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            rows = await conn.fetch(_URGENT_COUNTS, start, end)
    got = {str(r["indicator"]): r["n"] for r in rows}
    counts = {f.value: int(got.get(f.value) or 0) for f in UrgentFigure}
    timed = int(got.get("timed") or 0)
    avg = int(got["took_us"]) / timed / 1_000_000 if timed else None
    return UrgentFigures(counts, avg, subtract_deferred)


def _figure(figure: str, allowed: type[StrEnum]) -> str:
    try:
        return str(allowed(figure).value)
    except ValueError:
        raise InvalidRequest(
            "未知的评价指标", code="unknown_indicator", details={"indicator": str(figure)}
        ) from None


def source_drill_query(
    figure: SourceFigure | str, start: datetime, end: datetime, *, source: str
) -> DrillQuery:
    """The statement of exactly the cases behind one source's figure."""
    _check_period(start, end)
    fig = _figure(figure, SourceFigure)
    if source not in SOURCE_LABELS:
        raise InvalidRequest("未知的案件来源", code="bad_source", details={"source": source})
    return DrillQuery(_source_drill_text(fig), (start, end, source))


async def source_drill_down(
    conn: asyncpg.Connection,
    figure: SourceFigure | str,
    start: datetime,
    end: datetime,
    *,
    source: str,
) -> list[int]:
    """The ids of exactly the cases behind one source's figure (ascending)."""
    return await fetch_ids(conn, source_drill_query(figure, start, end, source=source))


def urgent_drill_query(figure: UrgentFigure | str, start: datetime, end: datetime) -> DrillQuery:
    """The statement of exactly the urgent cases behind one urgent figure."""
    _check_period(start, end)
    return DrillQuery(_urgent_drill_text(_figure(figure, UrgentFigure)), (start, end))


async def urgent_drill_down(
    conn: asyncpg.Connection, figure: UrgentFigure | str, start: datetime, end: datetime
) -> list[int]:
    """The ids of exactly the urgent cases behind one urgent figure (ascending)."""
    return await fetch_ids(conn, urgent_drill_query(figure, start, end))
