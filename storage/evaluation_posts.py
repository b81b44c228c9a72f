"""The posts' evaluation indicators (岗位评价): field supervisors, seats, dispatchers and hotline
agents, per user, computed in SQL from the case event log and the hotline's calls.

Theory of operation
-------------------
Every figure is a set of items per user: cases (each once however many times the user acted on
it in the period), except the agents' 接听数, whose items are calls (``hotline_calls.id``). A
user counts for a post when their role is the post's (an admin acting in every role is nobody's
post). Every figure reads the user's own tasks of the period (``actor_id``, ``at`` in
``[start, end)``) and, for what happened to a case afterwards, what happened before ``end`` only
(a closed period never changes).

The tasks are rows of ``case_tasks`` (migration 0022), kept by a trigger on ``case_events`` in
each event's transaction: one per report, registration or rejection, dispatch, check and
confirmation, with the moment the task began (``since``: the report; the registration or the
return a dispatch followed; the request a check or confirmation answered) and when a later event
made it good or bad (``valid_at``: a report registered; ``undone_at``: a registration voided, a
dispatch returned before the next one), so "as of the end" is a range condition on the row.
``_TASK_FIGURES`` holds each figure's kind and the condition every one of the user's tasks of
that kind on the case must meet; the counts (one pass per post, a filtered count per figure,
grouped by user) and the drill-down (``post_drill_query``) are written from those strings, so a
figure and its list can never disagree. A case with one task of a kind is one row; the few with
more (``repeated``) are grouped per user and case first.

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
from storage.evaluation import _WORK_MEM, DrillQuery, _check_period, _rate, fetch_ids

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

#: The task figures: figure -> (the task kind in ``case_tasks``, the condition every one of the
#: user's tasks of that kind on a case in the period must meet for the case to count, the
#: allowance it reads as ``{allowed}``). The counts (``_counts_text``) and the drill-down
#: (``_drill_text``) are both written from these strings, so a figure and its list take the same
#: cases by construction. $2 is the period's end.
_ON_TIME = "at - since <= {allowed}"
_TASK_FIGURES: dict[PostFigure, tuple[str, str, str | None]] = {
    PostFigure.REPORTED: ("report", "true", None),
    # registered before the end, or a quick report (valid at once)
    PostFigure.VALID: ("report", "valid_at < $2", None),
    PostFigure.CONFIRMED: ("confirm", "true", None),
    PostFigure.CONFIRMED_ON_TIME: ("confirm", _ON_TIME, "confirm"),
    PostFigure.CHECKED: ("check", "true", None),
    PostFigure.CHECKED_ON_TIME: ("check", _ON_TIME, "check"),
    PostFigure.DECIDED: ("decide", "true", None),
    PostFigure.DECIDED_ON_TIME: ("decide", _ON_TIME, "accept"),
    PostFigure.REGISTERED: ("decide", "action = 'register'", None),
    PostFigure.REGISTERED_ON_TIME: ("decide", f"action = 'register' AND {_ON_TIME}", "register"),
    # not voided before the end
    PostFigure.REGISTERED_ACCURATE: (
        "decide",
        "action = 'register' AND (undone_at IS NULL OR undone_at >= $2)",
        None,
    ),
    PostFigure.DISPATCHED: ("dispatch", "true", None),
    PostFigure.DISPATCHED_ON_TIME: ("dispatch", _ON_TIME, "dispatch"),
    # not returned before the next dispatch and the end
    PostFigure.DISPATCHED_ACCURATE: ("dispatch", "undone_at IS NULL OR undone_at >= $2", None),
}
#: The agents' figures, from their calls: figure -> (the item, the condition on the call).
_CALL_FIGURES: dict[PostFigure, tuple[str, str]] = {
    PostFigure.ANSWERED: ("id", "true"),
    PostFigure.CASES_MADE: ("case_id", "case_id IS NOT NULL"),
}


def _allowance_names(post: str) -> list[str]:
    """The allowances the post's figures read, in the order of their parameters ($4, $5 ...)."""
    names = (_TASK_FIGURES[f][2] for f in POST_FIGURES[post] if f in _TASK_FIGURES)
    return list(dict.fromkeys(n for n in names if n is not None))


def _cond(fig: PostFigure, params: dict[str, int]) -> str:
    _kind, cond, allowance = _TASK_FIGURES[fig]
    allowed = f"${params[allowance]}::interval" if allowance else ""
    return "(" + cond.format(allowed=allowed) + ")"


def _tasks_text(kinds: list[str], user: str) -> str:
    """The tasks of ``kinds`` in the period ($1, $2), ``user`` a condition on ``actor_id``. Whose
    role is the post's is asked of ``users`` after the counting (the counts are grouped by user
    first: a join before it would be a probe per task)."""
    listed = ", ".join(f"'{k}'" for k in kinds)
    return f"""SELECT t.case_id, t.actor_id, t.kind, t.action, t.at, t.since, t.valid_at,
           t.undone_at, t.repeated
      FROM case_tasks t
     WHERE t.kind IN ({listed}) AND t.at >= $1 AND t.at < $2 AND {user}"""


def _calls_text(user: str) -> str:
    """The calls answered in the period and held by an agent (the last one, after transfers)."""
    return f"""SELECT h.id, h.agent_id AS actor_id, h.case_id
      FROM hotline_calls h JOIN users u ON u.id = h.agent_id AND u.role = 'agent'
     WHERE h.answered_at >= $1 AND h.answered_at < $2 AND {user}"""


def _counts_text(post: str) -> str:
    """Every user's counts of ``post`` in one pass over the period's tasks, with a filtered count
    per figure: a case with one task of a kind is one row, counted where it is; only the cases
    with more than one (``repeated``: a re-dispatch, a second check) are grouped per user and case
    first. One row per user of the role: id, display_name, active and a column per figure.
    $1 = start, $2 = end, $3 = one user or NULL, $4 ... = ``_allowance_names(post)``."""
    figs = POST_FIGURES[post]
    user = "($3::integer IS NULL OR {col} = $3)"
    if post == "agent":
        cols = ",\n           ".join(
            f"count(DISTINCT {item}) FILTER (WHERE {cond}) AS {f.value}"
            for f, (item, cond) in _CALL_FIGURES.items()
        )
        counted = f"""h AS ({_calls_text(user.format(col="h.agent_id"))}),
counted AS (
    SELECT actor_id,
           {cols}
      FROM h GROUP BY actor_id
)"""
    else:
        params = {n: 4 + i for i, n in enumerate(_allowance_names(post))}
        kinds = list(dict.fromkeys(_TASK_FIGURES[f][0] for f in figs))
        one = ",\n           ".join(
            f"count(*) FILTER (WHERE kind = '{_TASK_FIGURES[f][0]}' AND {_cond(f, params)})"
            f" AS {f.value}"
            for f in figs
        )
        many = ",\n           ".join(f"bool_and({_cond(f, params)}) AS {f.value}" for f in figs)
        many_n = ",\n           ".join(
            f"count(*) FILTER (WHERE kind = '{_TASK_FIGURES[f][0]}' AND {f.value}) AS {f.value}"
            for f in figs
        )
        counted = f"""t AS NOT MATERIALIZED (
    {_tasks_text(kinds, user.format(col="t.actor_id"))}
),
many AS (
    SELECT actor_id, kind,
           {many}
      FROM t WHERE repeated GROUP BY actor_id, case_id, kind
),
counted AS (
    SELECT actor_id,
           {one}
      FROM t WHERE NOT repeated GROUP BY actor_id
    UNION ALL
    SELECT actor_id,
           {many_n}
      FROM many GROUP BY actor_id
)"""
    sums = ", ".join(f"coalesce(sum(c.{f.value}), 0)::bigint AS {f.value}" for f in figs)
    return f"""WITH {counted}
SELECT u.id, u.display_name, u.active, {sums}
  FROM users u LEFT JOIN counted c ON c.actor_id = u.id
 WHERE u.role = '{post}' AND {user.format(col="u.id")}
 GROUP BY u.id ORDER BY u.id
"""


def _drill_text(post: str, fig: PostFigure) -> str:
    """The ids behind one user's figure, each once, in the one column ``case_id`` (call ids for
    接听数), by the figure's own condition. $1 = start, $2 = end, $3 = the user, $4 = the
    figure's allowance (if it reads one)."""
    if post == "agent":
        item, cond = _CALL_FIGURES[fig]
        return f"""WITH h AS ({_calls_text("h.agent_id = $3")})
SELECT DISTINCT {item} AS case_id FROM h WHERE {cond}"""
    kind, _cond_text, allowance = _TASK_FIGURES[fig]
    cond = _cond(fig, {allowance: 4} if allowance else {})
    # the user's, if their role is the post's (an admin acting in every role is nobody's post)
    user = (
        f"t.actor_id = $3 AND EXISTS (SELECT 1 FROM users u WHERE u.id = $3 AND u.role = '{post}')"
    )
    return f"""WITH t AS NOT MATERIALIZED (
    {_tasks_text([kind], user)}
)
SELECT case_id FROM t WHERE NOT repeated AND {cond}
UNION ALL
SELECT case_id FROM t WHERE repeated GROUP BY case_id HAVING bool_and({cond})"""


_COUNTS: dict[str, str] = {post: _counts_text(post) for post in POSTS}
#: asyncpg prepares each statement once per connection, and from its sixth run PostgreSQL may
#: keep a generic plan, made without the period: over 1,000,000 cases the supervisors' quarter
#: went from 0.5 s to 4 s so. The counts are planned for their period every time, with
#: ``_WORK_MEM`` for the repeated tasks' grouping (both settings last to the end of the
#: statement's transaction only).
_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
_DRILLS: dict[tuple[str, PostFigure], str] = {
    (post, fig): _drill_text(post, fig) for post in POSTS for fig in POST_FIGURES[post]
}


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
    given = [getattr(allow, name) for name in _allowance_names(post)]
    with map_pg_errors():
        async with conn.transaction():
            await conn.execute(_WORK_MEM)
            await conn.execute(_CUSTOM_PLANS)
            rows = await conn.fetch(_COUNTS[post], start, end, user_id, *given)
    out = []
    for r in rows:
        counts = {f.value: int(r[f.value]) for f in POST_FIGURES[post]}
        if r["active"] or any(counts.values()):
            out.append(PostRow(post, int(r["id"]), str(r["display_name"]), counts))
    return out


def post_drill_query(
    post: Post,
    figure: PostFigure | str,
    start: datetime,
    end: datetime,
    *,
    user_id: int,
    allowances: PostAllowances | None = None,
) -> DrillQuery:
    """The statement of the ids behind one user's figure (one column ``case_id``: case ids, or
    call ids for ``answered``), by the figure's own condition."""
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
    allowance = _TASK_FIGURES[fig][2] if fig in _TASK_FIGURES else None
    given = (getattr(allow, allowance),) if allowance else ()
    return DrillQuery(_DRILLS[(post, fig)], (start, end, user_id, *given))


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
    return await fetch_ids(
        conn,
        post_drill_query(post, figure, start, end, user_id=user_id, allowances=allowances),
    )
