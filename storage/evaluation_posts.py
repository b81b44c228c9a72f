"""The posts' evaluation indicators (岗位评价): field supervisors, seats, dispatchers and hotline
agents, per user, computed in SQL from the case event log and the hotline's calls.

Theory of operation
-------------------
One SQL text (``_POST_MEMBERS``) yields ``(post, indicator, user_id, item_id)`` rows: the counts
are its ``COUNT(*)`` per user and indicator, a drill-down the same text filtered to one user and
figure. Items are cases (one row per case however many times the user acted on it in the period),
except the agents' 接听数, whose items are calls (``hotline_calls.id``). A user counts for a post
when their role is the post's (an admin acting in every role is nobody's post). Every figure reads
the user's own events of the period (``case_events.actor_id``, ``at`` in ``[start, end)``) and,
for what happened to a case afterwards, events before ``end`` only (a closed period never changes).

Field supervisors (监督员):
- 上报数 ``reported``: cases the user reported (``report`` or ``quick_report``) in the period;
- 有效上报数 ``valid``: of those, the ones registered (立案) before the end, and quick reports (a
  quick case skips registration: it is a problem found and fixed); rejected or still waiting ones
  are not valid;
- 核实数 ``confirmed``: cases the user confirmed on site before registration (``confirm_pass`` 属实
  / ``confirm_fail`` 不属实) in the period;
- 按时核实数 ``confirmed_on_time``: of those, the ones whose every answer by the user in the period
  came within ``confirm`` of the ``request_confirm`` it answered;
- 核查数 ``checked``: cases the user checked (``verify_pass`` / ``verify_fail``) in the period;
- 按时核查数 ``checked_on_time``: of those, the ones whose every check by the user in the period came
  within ``check`` of the ``request_verify`` it answered.
  A 核实 or 核查 task nobody answered is no one's (the request is sent to the grid, not to a
  person): it counts for nobody until a supervisor answers it.

Seats (坐席):
- 受理数 ``decided``: cases the user registered or rejected in the period; 按时受理数
  ``decided_on_time``: decided within ``accept`` of the report;
- 立案数 ``registered``: registered by the user in the period; 按时立案数 ``registered_on_time``:
  within ``register`` of the report; 准确立案数 ``registered_accurate``: not voided (作废) before the
  end.

Dispatchers (派遣员):
- 派遣数 ``dispatched``: cases the user dispatched in the period (a re-dispatch after a return
  included); 按时派遣数 ``dispatched_on_time``: every such dispatch within ``dispatch`` of the
  registration or of the return it followed; 准确派遣数 ``dispatched_accurate``: no dispatch of the
  case by the user in the period was returned (回退) by the department before the next dispatch
  and the end.

Hotline agents (热线坐席):
- 接听数 ``answered``: calls whose answer is in the period and that the user holds
  (``hotline_calls.agent_id``: a transferred call is the last agent's); items are call ids;
- 建案数 ``cases_made``: cases linked to those calls (``hotline_calls.case_id``).

Times are elapsed (wall-clock) time, not working hours: a seat's desk is staffed around the
clock. The allowances are ``PostAllowances`` (defaults: 受理 10 min, 立案 30 min, 派遣 30 min,
核查 60 min, 核实 30 min); a city puts its own in ``CITYHUB_POST_ALLOWANCES``
(``PostAllowances.parse``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Literal

import asyncpg

from storage.db import map_pg_errors
from storage.errors import InvalidRequest
from storage.evaluation import _check_period, _rate

Post = Literal["supervisor", "seat", "dispatcher", "agent"]
POSTS: tuple[Post, ...] = ("supervisor", "seat", "dispatcher", "agent")
POST_LABELS: dict[str, str] = {
    "supervisor": "监督员",
    "seat": "受理坐席",
    "dispatcher": "派遣员",
    "agent": "热线坐席",
}


#: ``PostAllowances.parse``: the longest text read, and the longest allowance (a week).
MAX_ALLOWANCES_TEXT = 500
MAX_ALLOWANCE_MINUTES = 7 * 24 * 60


@dataclasses.dataclass(frozen=True, slots=True)
class PostAllowances:
    """How long each post's task may take to count as on time (elapsed time)."""

    accept: timedelta = timedelta(minutes=10)  # 受理: report -> registered or rejected
    register: timedelta = timedelta(minutes=30)  # 立案: report -> registered
    dispatch: timedelta = timedelta(minutes=30)  # 派遣: registered / returned -> dispatched
    check: timedelta = timedelta(minutes=60)  # 核查: request_verify -> verify_pass / verify_fail
    confirm: timedelta = timedelta(minutes=30)  # 核实: request_confirm -> confirm_pass / _fail

    @classmethod
    def parse(cls, text: str) -> PostAllowances:
        """``accept=10,register=30,dispatch=30,check=60,confirm=30``: whole minutes per task,
        comma separated, in any order; a task not named keeps its default, an empty text is the
        defaults. Raises ``ValueError`` (naming the bad part) for an unknown task, a repeated one
        or a value that is not 1 to ``MAX_ALLOWANCE_MINUTES`` minutes."""
        if len(text) > MAX_ALLOWANCES_TEXT:
            raise ValueError(f"longer than {MAX_ALLOWANCES_TEXT} characters")
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, timedelta] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, eq, raw = (x.strip() for x in part.partition("="))
            if not eq or name not in names:
                raise ValueError(f"{part!r}: expected one of {', '.join(names)} as name=minutes")
            if name in values:
                raise ValueError(f"{name} given twice")
            if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ALLOWANCE_MINUTES:
                raise ValueError(
                    f"{name}={raw}: whole minutes from 1 to {MAX_ALLOWANCE_MINUTES} expected"
                )
            values[name] = timedelta(minutes=int(raw))
        return cls(**values)


class PostFigure(StrEnum):
    REPORTED = "reported"  # 上报数
    VALID = "valid"  # 有效上报数
    CONFIRMED = "confirmed"  # 核实数
    CONFIRMED_ON_TIME = "confirmed_on_time"  # 按时核实数
    CHECKED = "checked"  # 核查数
    CHECKED_ON_TIME = "checked_on_time"  # 按时核查数
    DECIDED = "decided"  # 受理数
    DECIDED_ON_TIME = "decided_on_time"  # 按时受理数
    REGISTERED = "registered"  # 立案数
    REGISTERED_ON_TIME = "registered_on_time"  # 按时立案数
    REGISTERED_ACCURATE = "registered_accurate"  # 准确立案数
    DISPATCHED = "dispatched"  # 派遣数
    DISPATCHED_ON_TIME = "dispatched_on_time"  # 按时派遣数
    DISPATCHED_ACCURATE = "dispatched_accurate"  # 准确派遣数
    ANSWERED = "answered"  # 接听数 (calls)
    CASES_MADE = "cases_made"  # 建案数


POST_FIGURE_LABELS: dict[PostFigure, str] = {
    PostFigure.REPORTED: "上报数",
    PostFigure.VALID: "有效上报数",
    PostFigure.CONFIRMED: "核实数",
    PostFigure.CONFIRMED_ON_TIME: "按时核实数",
    PostFigure.CHECKED: "核查数",
    PostFigure.CHECKED_ON_TIME: "按时核查数",
    PostFigure.DECIDED: "受理数",
    PostFigure.DECIDED_ON_TIME: "按时受理数",
    PostFigure.REGISTERED: "立案数",
    PostFigure.REGISTERED_ON_TIME: "按时立案数",
    PostFigure.REGISTERED_ACCURATE: "准确立案数",
    PostFigure.DISPATCHED: "派遣数",
    PostFigure.DISPATCHED_ON_TIME: "按时派遣数",
    PostFigure.DISPATCHED_ACCURATE: "准确派遣数",
    PostFigure.ANSWERED: "接听数",
    PostFigure.CASES_MADE: "建案数",
}

#: Each post's figures, in column order, and its rates: name -> (label, numerator, denominator).
POST_FIGURES: dict[str, tuple[PostFigure, ...]] = {
    "supervisor": (
        PostFigure.REPORTED,
        PostFigure.VALID,
        PostFigure.CONFIRMED,
        PostFigure.CONFIRMED_ON_TIME,
        PostFigure.CHECKED,
        PostFigure.CHECKED_ON_TIME,
    ),
    "seat": (
        PostFigure.DECIDED,
        PostFigure.DECIDED_ON_TIME,
        PostFigure.REGISTERED,
        PostFigure.REGISTERED_ON_TIME,
        PostFigure.REGISTERED_ACCURATE,
    ),
    "dispatcher": (
        PostFigure.DISPATCHED,
        PostFigure.DISPATCHED_ON_TIME,
        PostFigure.DISPATCHED_ACCURATE,
    ),
    "agent": (PostFigure.ANSWERED, PostFigure.CASES_MADE),
}
POST_RATES: dict[str, dict[str, tuple[str, PostFigure, PostFigure]]] = {
    "supervisor": {
        "valid_rate": ("有效上报率", PostFigure.VALID, PostFigure.REPORTED),
        "confirm_on_time_rate": (
            "按时核实率",
            PostFigure.CONFIRMED_ON_TIME,
            PostFigure.CONFIRMED,
        ),
        "check_on_time_rate": ("按时核查率", PostFigure.CHECKED_ON_TIME, PostFigure.CHECKED),
    },
    "seat": {
        "accept_on_time_rate": ("按时受理率", PostFigure.DECIDED_ON_TIME, PostFigure.DECIDED),
        "register_on_time_rate": (
            "按时立案率",
            PostFigure.REGISTERED_ON_TIME,
            PostFigure.REGISTERED,
        ),
        "register_accuracy": ("准确立案率", PostFigure.REGISTERED_ACCURATE, PostFigure.REGISTERED),
    },
    "dispatcher": {
        "dispatch_on_time_rate": (
            "按时派遣率",
            PostFigure.DISPATCHED_ON_TIME,
            PostFigure.DISPATCHED,
        ),
        "dispatch_accuracy": ("准确派遣率", PostFigure.DISPATCHED_ACCURATE, PostFigure.DISPATCHED),
    },
    "agent": {"case_rate": ("建案率", PostFigure.CASES_MADE, PostFigure.ANSWERED)},
}

#: $1 = start, $2 = end, $3..$7 = the allowances (accept, register, dispatch, check, confirm),
#: $8 = the post (which is also the role whose events are read: the other roles' are not looked at).
_POST_MEMBERS = """
WITH kinds (action, kind) AS (
    VALUES ('report', 'report'), ('quick_report', 'report'), ('register', 'decide'),
           ('reject', 'decide'), ('register', 'register'), ('dispatch', 'dispatch'),
           ('verify_pass', 'check'), ('verify_fail', 'check'),
           ('confirm_pass', 'confirm'), ('confirm_fail', 'confirm')
),
p_ev AS (
    -- the user's events of the period; what came before or after them is read from the per-case
    -- summary of migration 0016 (case_facts, case_spans) where it holds it, else by the case's
    -- own events (the request a check or a confirmation answered)
    SELECT e.case_id, e.version, e.action, e.at, e.actor_id, u.role, k.kind,
           CASE WHEN k.kind IN ('decide', 'register') THEN f.reported_at
                WHEN k.kind = 'dispatch' THEN coalesce((
                    SELECT max(r.at) FROM case_spans r
                     WHERE r.case_id = e.case_id AND r.kind = 'return' AND r.version < e.version),
                    f.registered_at)
                WHEN k.kind = 'check' THEN (
                    SELECT r.at FROM case_events r
                     WHERE r.case_id = e.case_id AND r.version < e.version
                       AND r.action = 'request_verify'
                     ORDER BY r.version DESC LIMIT 1)
                WHEN k.kind = 'confirm' THEN (
                    SELECT r.at FROM case_events r
                     WHERE r.case_id = e.case_id AND r.version < e.version
                       AND r.action = 'request_confirm'
                     ORDER BY r.version DESC LIMIT 1)
           END AS since,
           CASE k.kind WHEN 'decide' THEN $3::interval WHEN 'register' THEN $4::interval
                       WHEN 'dispatch' THEN $5::interval WHEN 'check' THEN $6::interval
                       WHEN 'confirm' THEN $7::interval
           END AS allowed,
           CASE WHEN k.kind = 'report' THEN e.action = 'quick_report'
                                            OR coalesce(f.registered_at < $2, false)
                -- voided before the end: ended, and not by a close (closed is terminal)
                WHEN k.kind = 'register' THEN NOT (f.ended_at < $2 AND f.closed_at IS NULL)
                                              IS TRUE
                WHEN k.kind = 'dispatch' THEN NOT EXISTS (
                    SELECT 1 FROM case_spans r
                     WHERE r.case_id = e.case_id AND r.kind = 'return'
                       AND r.version > e.version AND r.at < $2
                       AND NOT EXISTS (
                            SELECT 1 FROM case_spans n
                             WHERE n.case_id = e.case_id AND n.kind = 'deadline'
                               AND n.action = 'dispatch'
                               AND n.version > e.version AND n.version < r.version))
           END AS good
      FROM case_events e
      JOIN kinds k ON k.action = e.action
      JOIN users u ON u.id = e.actor_id AND u.role = $8
      JOIN case_facts f ON f.case_id = e.case_id
     WHERE e.at >= $1 AND e.at < $2
),
p_case AS (
    SELECT role, kind, actor_id, case_id,
           bool_and(at - since <= allowed) AS in_time, bool_and(good) AS good
      FROM p_ev GROUP BY role, kind, actor_id, case_id
),
post_members (post, indicator, user_id, item_id) AS (
    SELECT 'supervisor', 'reported', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'report'
    UNION ALL
    SELECT 'supervisor', 'valid', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'report' AND good
    UNION ALL
    SELECT 'supervisor', 'confirmed', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'confirm'
    UNION ALL
    SELECT 'supervisor', 'confirmed_on_time', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'confirm' AND in_time
    UNION ALL
    SELECT 'supervisor', 'checked', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'check'
    UNION ALL
    SELECT 'supervisor', 'checked_on_time', actor_id, case_id FROM p_case
     WHERE role = 'supervisor' AND kind = 'check' AND in_time
    UNION ALL
    SELECT 'seat', 'decided', actor_id, case_id FROM p_case WHERE role = 'seat' AND kind = 'decide'
    UNION ALL
    SELECT 'seat', 'decided_on_time', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'decide' AND in_time
    UNION ALL
    SELECT 'seat', 'registered', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'register'
    UNION ALL
    SELECT 'seat', 'registered_on_time', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'register' AND in_time
    UNION ALL
    SELECT 'seat', 'registered_accurate', actor_id, case_id FROM p_case
     WHERE role = 'seat' AND kind = 'register' AND good
    UNION ALL
    SELECT 'dispatcher', 'dispatched', actor_id, case_id FROM p_case
     WHERE role = 'dispatcher' AND kind = 'dispatch'
    UNION ALL
    SELECT 'dispatcher', 'dispatched_on_time', actor_id, case_id FROM p_case
     WHERE role = 'dispatcher' AND kind = 'dispatch' AND in_time
    UNION ALL
    SELECT 'dispatcher', 'dispatched_accurate', actor_id, case_id FROM p_case
     WHERE role = 'dispatcher' AND kind = 'dispatch' AND good
    UNION ALL
    SELECT 'agent', 'answered', h.agent_id, h.id FROM hotline_calls h
      JOIN users u ON u.id = h.agent_id AND u.role = 'agent'
     WHERE $8::text = 'agent' AND h.answered_at >= $1 AND h.answered_at < $2
    UNION ALL
    SELECT DISTINCT 'agent', 'cases_made', h.agent_id, h.case_id FROM hotline_calls h
      JOIN users u ON u.id = h.agent_id AND u.role = 'agent'
     WHERE h.answered_at >= $1 AND h.answered_at < $2 AND h.case_id IS NOT NULL
)
"""
_POST_COUNTS = (
    _POST_MEMBERS
    + "SELECT u.id, u.display_name, u.active, m.indicator, count(m.item_id) AS n"
    + " FROM users u LEFT JOIN post_members m ON m.user_id = u.id AND m.post = $8"
    + " WHERE u.role = $8 AND ($9::integer IS NULL OR u.id = $9)"
    + " GROUP BY u.id, u.display_name, u.active, m.indicator ORDER BY u.id"
)
_POST_DRILL = (
    _POST_MEMBERS
    + "SELECT item_id FROM post_members WHERE post = $8 AND user_id = $9 AND indicator = $10"
    + " ORDER BY item_id"
)


@dataclasses.dataclass(frozen=True, slots=True)
class PostRow:
    """One user's figures for a period in one post."""

    post: str
    user_id: int
    name: str
    counts: dict[str, int]

    def count(self, figure: PostFigure | str) -> int:
        return self.counts[PostFigure(figure).value]

    def rates(self) -> dict[str, Fraction | None]:
        return {
            name: _rate(self.counts[num.value], self.counts[den.value])
            for name, (_label, num, den) in POST_RATES[self.post].items()
        }


def _check_post(post: str) -> None:
    if post not in POSTS:
        raise InvalidRequest(
            "岗位须为 supervisor、seat、dispatcher 或 agent",
            code="bad_post",
            details={"post": str(post)},
        )


def _args(start: datetime, end: datetime, allow: PostAllowances) -> tuple[object, ...]:
    return (start, end, allow.accept, allow.register, allow.dispatch, allow.check, allow.confirm)


async def post_indicators(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    post: Post,
    *,
    allowances: PostAllowances | None = None,
    user_id: int | None = None,
) -> list[PostRow]:
    """Every user's row of ``post`` for ``[start, end)`` in one statement (users of that role, by
    id; inactive ones only with a figure); ``user_id`` keeps that user's row only."""
    _check_period(start, end)
    _check_post(post)
    allow = allowances or PostAllowances()
    with map_pg_errors():
        rows = await conn.fetch(_POST_COUNTS, *_args(start, end, allow), post, user_id)
    names: dict[int, tuple[str, bool]] = {}
    counts: dict[int, dict[str, int]] = {}
    for r in rows:
        uid = int(r["id"])
        names[uid] = (str(r["display_name"]), bool(r["active"]))
        c = counts.setdefault(uid, {f.value: 0 for f in POST_FIGURES[post]})
        if r["indicator"] is not None:
            c[str(r["indicator"])] = int(r["n"])
    return [
        PostRow(post, uid, names[uid][0], c)
        for uid, c in counts.items()
        if names[uid][1] or any(c.values())
    ]


async def post_drill_down(
    conn: asyncpg.Connection,
    post: Post,
    figure: PostFigure | str,
    start: datetime,
    end: datetime,
    *,
    user_id: int,
    allowances: PostAllowances | None = None,
) -> list[int]:
    """The ids behind one user's figure (ascending): case ids, or call ids for ``answered``."""
    _check_period(start, end)
    _check_post(post)
    try:
        fig = PostFigure(figure)
    except ValueError:
        fig = None
    if fig is None or fig not in POST_FIGURES[post]:
        raise InvalidRequest(
            "未知的评价指标", code="unknown_indicator", details={"indicator": str(figure)}
        )
    allow = allowances or PostAllowances()
    with map_pg_errors():
        rows = await conn.fetch(_POST_DRILL, *_args(start, end, allow), post, user_id, fig.value)
    return [int(r["item_id"]) for r in rows]
