"""The evaluation's SQL texts, shared by every family of figures (city, departments, regions,
sources, urgent cases): the conditions that make each figure's set of cases, and the two ways they
are read — a figure's *members* (its drill-down list) and its *counts* (one pass over the rows).

Theory of operation
-------------------
Every city figure of a period ``[start, end)`` ($1, $2) is a set of cases, written once as a
condition on one row of migration 0016's per-case summary (with 0021's keys):

- ``FACT_BRANCHES``: a condition on the case's ``case_facts`` row (受理, 立案, 派遣, the closed part
  of 应结案, 结案, 按期结案, 快速处置), with the column naming the department responsible for it;
- ``SPAN_BRANCHES``: a selection from one of two CTEs over ``case_spans``: ``dl``, the deadline
  span in force at the end whose deadline falls in the period (the rest of 应结案: still open at
  that deadline and not closed in the period; 缓办 among them: a deferral in force at the end), and
  ``mv``, the last 返工 / 延期 move of the period of each case.

``members_text()`` puts them together as ``members (indicator, case_id, department_id, source,
grid_id, category_id)``, which every drill-down filters; ``counts_text()`` counts the same
conditions without producing a row per member: one ``count(*) FILTER (...)`` per figure over the
facts rows of the period, and per figure over ``dl`` and ``mv``, grouped by the family's key
(nothing, the department, the grid, the source). A figure and its list are therefore the same
condition read two ways and cannot disagree; ``tests/storage/`` checks that each family's drill-down
has exactly its figure's count.

Every row carries the case's keys (source, category and grid are fixed at the report; the
department is the one each figure names), so no statement joins ``cases``: a month reads the
period's rows by index, a year one pass over each table (``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

CLOSED_IN = "closed_at >= $1 AND closed_at < $2"
REPORTED_IN = "reported_at >= $1 AND reported_at < $2"

#: The figures read from ``case_facts`` alone: indicator -> (condition, responsible department).
FACT_BRANCHES: dict[str, tuple[str, str]] = {
    "accepted": (f"{REPORTED_IN} AND NOT is_quick", "NULL::integer"),
    "registered": ("registered_at >= $1 AND registered_at < $2 AND NOT is_quick", "NULL::integer"),
    "dispatched": (
        "first_dispatch_at >= $1 AND first_dispatch_at < $2 AND NOT is_quick",
        "first_dispatch_dep",
    ),
    # 应结案: the cases closed in the period (the others are dl's)
    "due": (f"{CLOSED_IN} AND NOT is_quick", "close_dep"),
    "closed": (f"{CLOSED_IN} AND NOT is_quick", "close_dep"),
    "on_time": (f"{CLOSED_IN} AND NOT is_quick AND last_feedback_at <= deadline", "close_dep"),
    "quick_reported": (f"{REPORTED_IN} AND is_quick", "NULL::integer"),
    "quick_closed": (f"{CLOSED_IN} AND is_quick", "NULL::integer"),
}

#: The deadline span in force at the end ($2) whose deadline falls in the period, one per case at
#: most (a case's deadline spans follow each other). ``open_due``: of a standard case still open at
#: that deadline (migration 0021 marks the span in force when the case ended) and not closed in the
#: period; ``deferred``: a deferral (缓办) is in force at the end. Spans neither open nor
#: unanswered at their deadline are no figure's and are left out (most of a year's).
DL_CTE = """dl AS (
    SELECT d.*, p.case_id IS NOT NULL AS deferred
      FROM (SELECT s.case_id, s.department_id, s.source, s.grid_id, s.category_id, s.deadline,
                   s.answered_at,
                   (NOT s.is_quick AND (s.ended_at IS NULL OR s.ended_at >= s.deadline)
                    AND (s.closed_at >= $1 AND s.closed_at < $2) IS NOT TRUE) AS open_due
              FROM case_spans s
             WHERE s.kind = 'deadline' AND s.deadline >= $1 AND s.deadline < $2
               AND s.at < $2 AND (s.until IS NULL OR s.until >= $2)) d
      LEFT JOIN (SELECT DISTINCT case_id FROM case_spans
                  WHERE kind = 'deferral' AND at < $2 AND (until IS NULL OR until >= $2)) p
        ON p.case_id = d.case_id
     -- only what a figure reads: 应结案's open cases, 应处置's unanswered deadlines
     WHERE d.open_due OR d.answered_at IS NULL OR d.answered_at > d.deadline
)"""

#: Each standard case's last 返工 (rework, verify_fail) and last 延期 (approve_extension) of the
#: period: the department of the last one is the figure's (migration 0021's partial index).
MV_CTE = """mv AS (
    SELECT DISTINCT ON (s.case_id, s.action = 'approve_extension')
           CASE WHEN s.action = 'approve_extension' THEN 'extended' ELSE 'reworked' END
               AS indicator,
           s.case_id, s.department_id, s.source, s.grid_id, s.category_id
      FROM case_spans s
     WHERE s.kind = 'deadline' AND s.action IN ('rework', 'verify_fail', 'approve_extension')
       AND s.at >= $1 AND s.at < $2 AND NOT s.is_quick
     ORDER BY s.case_id, s.action = 'approve_extension', s.version DESC
)"""

#: The figures read from the spans: indicator -> (CTE, condition on its rows).
SPAN_BRANCHES: dict[str, tuple[str, str]] = {
    "due": ("dl", "open_due"),
    "deferred": ("dl", "open_due AND deferred"),
    "reworked": ("mv", "indicator = 'reworked'"),
    "extended": ("mv", "indicator = 'extended'"),
}

KEYS = "source, grid_id, category_id"
INDICATORS: tuple[str, ...] = tuple(dict.fromkeys([*FACT_BRANCHES, *SPAN_BRANCHES]))


def _pick(only: Iterable[str] | None) -> set[str]:
    return set(INDICATORS if only is None else only)


def members_text(only: Iterable[str] | None = None) -> str:
    """``WITH dl, mv, members (indicator, case_id, department_id, source, grid_id, category_id)``
    for the figures ``only`` (default: all), followed by a comma (the caller's CTEs or a SELECT
    after ``members`` must follow). Branches for figures not asked are left out."""
    keep = _pick(only)
    branches = [
        f"    SELECT '{ind}', case_id, {dep}, {KEYS} FROM case_facts WHERE {cond}"
        for ind, (cond, dep) in FACT_BRANCHES.items()
        if ind in keep
    ] + [
        f"    SELECT '{ind}', case_id, department_id, {KEYS} FROM {cte} WHERE {cond}"
        for ind, (cte, cond) in SPAN_BRANCHES.items()
        if ind in keep
    ]
    body = "\n    UNION ALL\n".join(branches)
    return (
        f"WITH {DL_CTE},\n{MV_CTE},\n"
        f"members (indicator, case_id, department_id, source, grid_id, category_id) AS (\n"
        f"{body}\n)"
    )


def counts_text(
    keys: Callable[[str], Sequence[str] | None],
    *,
    only: Iterable[str] | None = None,
    where: Callable[[str], str] = lambda dep: "true",
    restrict: str = "true",
    extra_ctes: str = "",
    extra_counted: str = "",
) -> str:
    """One statement counting the figures ``only`` (default: all) of the period, as rows ``(k1 ..
    kn, indicator, n)``: ``keys(dep)`` gives the key columns of a figure whose department column is
    ``dep`` (``department_id`` for the spans' figures), or None to leave the figure out; every
    figure must have the same number of keys. ``where(dep)`` is a further condition of a figure
    (the city's department filter), ``restrict`` one on every counted row's ``case_id`` (the urgent
    cases). ``extra_ctes`` (starting with a comma) and ``extra_counted`` (``UNION ALL`` branches of
    ``(k.., indicator, n)`` rows) let a family add figures of its own."""
    keep = _pick(only)
    groups: dict[tuple[str, ...], list[str]] = {}
    for ind, (_cond, dep) in FACT_BRANCHES.items():
        k = keys(dep)
        if ind in keep and k is not None:
            groups.setdefault(tuple(k), []).append(ind)
    span_key = keys("department_id")
    span_inds = [ind for ind in SPAN_BRANCHES if ind in keep and span_key is not None]
    width = len(span_key) if span_key is not None else len(next(iter(groups), ()))
    cols = [f"k{i + 1}" for i in range(width)]

    def select_keys(k: Sequence[str]) -> str:
        return "".join(f"{expr} AS {col}, " for expr, col in zip(k, cols, strict=True))

    group_by = ", ".join(str(i + 1) for i in range(width))
    group_clause = f" GROUP BY {group_by}" if width else ""
    ctes: list[str] = []
    counted: list[str] = []
    for gi, (k, inds) in enumerate(groups.items()):
        filters = ", ".join(
            f"count(*) FILTER (WHERE {FACT_BRANCHES[i][0]} AND {where(FACT_BRANCHES[i][1])}) AS {i}"
            for i in inds
        )
        conds = dict.fromkeys(FACT_BRANCHES[i][0] for i in inds)
        any_of = " OR ".join(f"({c})" for c in conds)
        ctes.append(
            f"fc{gi} AS (SELECT {select_keys(k)}{filters} FROM case_facts"
            f" WHERE ({any_of}) AND {restrict}{group_clause})"
        )
        values = ", ".join(f"('{i}', fc{gi}.{i})" for i in inds)
        counted.append(
            f"SELECT {''.join(f'fc{gi}.{c}, ' for c in cols)}v.indicator, v.n FROM fc{gi}"
            f" CROSS JOIN LATERAL (VALUES {values}) v (indicator, n)"
        )
    for cte in ("dl", "mv"):
        inds = [i for i in span_inds if SPAN_BRANCHES[i][0] == cte]
        if not inds or span_key is None:
            continue
        filters = ", ".join(
            f"count(*) FILTER (WHERE {SPAN_BRANCHES[i][1]} AND {where('department_id')}) AS {i}"
            for i in inds
        )
        ctes.append(
            f"{cte}c AS (SELECT {select_keys(span_key)}{filters} FROM {cte}"
            f" WHERE {restrict}{group_clause})"
        )
        values = ", ".join(f"('{i}', {cte}c.{i})" for i in inds)
        counted.append(
            f"SELECT {''.join(f'{cte}c.{c}, ' for c in cols)}v.indicator, v.n FROM {cte}c"
            f" CROSS JOIN LATERAL (VALUES {values}) v (indicator, n)"
        )
    if extra_counted:
        counted.append(extra_counted)
    key_list = "".join(f"{c}, " for c in cols)
    union = "\n    UNION ALL\n    ".join(counted)
    return (
        f"WITH {DL_CTE},\n{MV_CTE}{extra_ctes},\n" + ",\n".join(ctes) + ",\n"
        f"counted ({key_list}indicator, n) AS (\n    {union}\n)\n"
        f"SELECT {key_list}indicator, sum(n)::bigint AS n FROM counted"
        f" GROUP BY {key_list}indicator"
    )
