"""The rows a demo history is made of: what it is generated against (``CategoryInfo``, ``DemoOrg``),
one case's history as it grows (``History``: the row columns folded from the workflow's outcomes,
its events and attachments), and the records written with ``COPY`` (``DemoChunk``; columns in the
tables' order, ``case_row``).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from hub.cases.facts import case_facts
from hub.core import workflow as wf
from hub.demo.geography import GridCell
from storage.cases import CASE_COLUMNS
from storage.search import document_terms

CaseState = wf.CaseState

#: The time limit of a category the catalog gives none (24 working hours).
DEFAULT_LIMIT: Final[tuple[int, str]] = (24, "hours")


@dataclasses.dataclass(frozen=True, slots=True)
class CategoryInfo:
    """A category as the history needs it: its limit and the code of the department it goes to."""

    id: int
    kind: str
    minor_name: str
    urgency: int
    limit: tuple[int, str]
    department_code: str


@dataclasses.dataclass(frozen=True, slots=True)
class DemoOrg:
    """The organisation the history is generated against (ids from the database)."""

    cells: Sequence[tuple[int, GridCell]]  # (grid id, cell), second level only
    categories: Sequence[CategoryInfo]
    departments: Mapping[str, int]  # code -> id
    users: Mapping[str, wf.Actor]  # username -> actor
    street_supervisors: Mapping[str, Sequence[str]]  # street code -> usernames


@dataclasses.dataclass(slots=True)
class DemoChunk:
    """Rows ready to COPY: ``cases`` and ``attachments`` of a run of cases, and the ``events`` (of
    these or earlier cases) that come next in global order."""

    cases: list[tuple[Any, ...]]
    attachments: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]


EVENT_COLUMNS: Final = (
    "case_id",
    "version",
    "action",
    "actor_id",
    "at",
    "from_state",
    "to_state",
    "note",
    "data",
    "attachment_ids",
)
ATTACHMENT_COLUMNS: Final = (
    "id",
    "sha256",
    "media_type",
    "size",
    "kind",
    "original_name",
    "case_id",
    "uploaded_by",
    "created_at",
)
ROW_DEFAULTS: Final[Mapping[str, Any]] = {
    "department_id": None,
    "deadline": None,
    "pending_extension_until": None,
    "reject_reason": None,
    "duplicate_of": None,
    "rework_count": 0,
    "extension_count": 0,
    "escalation_count": 0,
    "registered_at": None,
    "dispatched_at": None,
    "accepted_at": None,
    "handled_at": None,
    "verified_at": None,
    "closed_at": None,
    "is_urgent": False,
    "time_limit_s": None,
    "paused_remaining_s": None,
    "clock_since": None,
}


@dataclasses.dataclass(slots=True)
class History:
    """One case's history as it is played: the case row's columns (the fold of the outcomes'
    ``changes``), its version and last instant ``t``, and the event and attachment records so far."""

    case_id: int
    t: datetime
    target: CaseState | None
    row: dict[str, Any]
    events: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    attachments: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    version: int = 0
    #: The case's category (its time limit restarts the department's clock).
    category: CategoryInfo | None = None

    def facts(self) -> wf.CaseFacts:
        return case_facts({**self.row, "version": self.version})


#: Global order of events: (at, case_id, version).
event_key: Final = operator.itemgetter(4, 0, 1)


def case_row(case: dict[str, Any], h: History, reporter: wf.Actor) -> tuple[Any, ...]:
    """The case as a record for COPY, in the order of ``storage.cases.CASE_COLUMNS``."""
    row = h.row
    cat: CategoryInfo = case["category"]
    reason = row["reject_reason"]
    values: dict[str, Any] = {k: row[k] for k in ROW_DEFAULTS}
    values.update(
        id=case["id"],
        case_no=case["case_no"],
        source=case["source"],
        category_id=cat.id,
        state=row["state"].value,
        version=h.version,
        lon=case["lon"],
        lat=case["lat"],
        address=case["address"],
        grid_id=case["grid_id"],
        component_id=None,
        description=case["description"],
        reporter_id=reporter.user_id,
        contact_name=case["contact_name"],
        contact_phone=case["contact_phone"],
        is_quick=row["is_quick"],
        urgency=cat.urgency,
        reject_reason=None if reason is None else reason.value,
        reported_at=case["reported_at"],
        updated_at=h.t,
        search=document_terms(case["case_no"], case["description"], case["address"]),
    )
    return tuple(values[c] for c in CASE_COLUMNS)
