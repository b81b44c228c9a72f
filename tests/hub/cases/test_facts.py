"""``hub.cases.facts.case_facts``: the one place a stored case becomes workflow facts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.cases.facts import FACT_COLUMNS, case_facts
from hub.core.workflow import CaseFacts, CaseState
from storage.cases import CASE_FIELDS, CaseRow

AT = datetime(2025, 3, 14, 1, 30, tzinfo=UTC)
DEADLINE = datetime(2025, 3, 17, 10, 0, tzinfo=UTC)
ASKED = datetime(2025, 3, 20, 10, 0, tzinfo=UTC)

#: A case in handling with every fact the machine reads set to a distinct value.
COLUMNS: dict[str, Any] = {
    "id": 42,
    "case_no": "20250314-00042",
    "source": "supervisor",
    "category_id": 3,
    "state": "handling",
    "version": 6,
    "lon": 103.79,
    "lat": 25.49,
    "address": "麒麟区南宁北路 88 号",
    "grid_id": 101,
    "component_id": None,
    "description": "人行道上有生活垃圾堆放",
    "reporter_id": 5,
    "contact_name": "",
    "contact_phone": "",
    "department_id": 7,
    "is_quick": True,
    "urgency": 2,
    "deadline": DEADLINE,
    "pending_extension_until": ASKED,
    "reject_reason": None,
    "duplicate_of": None,
    "rework_count": 2,
    "extension_count": 1,
    "escalation_count": 3,
    "reported_at": AT,
    "registered_at": AT,
    "dispatched_at": AT,
    "accepted_at": AT,
    "handled_at": None,
    "verified_at": None,
    "closed_at": None,
    "updated_at": AT,
}
EXPECTED = CaseFacts(
    state=CaseState.HANDLING,
    version=6,
    department_id=7,
    grid_id=101,
    deadline=DEADLINE,
    is_quick=True,
    rework_count=2,
    extension_count=1,
    escalation_count=3,
    pending_extension_until=ASKED,
)


def test_from_a_stored_row() -> None:
    facts = case_facts(CaseRow(**COLUMNS))
    assert facts == EXPECTED
    assert facts.state is CaseState.HANDLING  # the enum, not the stored text


def test_from_a_mapping_of_columns() -> None:
    # The demo city builds cases as column mappings (the state already an enum, extra columns).
    facts = case_facts({**COLUMNS, "state": CaseState.HANDLING, "search": "x"})
    assert facts == EXPECTED


def test_every_fact_is_read() -> None:
    # Change each fact column alone: the facts must change with it (no field left at a default).
    for name in FACT_COLUMNS:
        if name == "state":
            changed: Any = "feedback"
        elif isinstance(COLUMNS[name], bool):
            changed = not COLUMNS[name]
        elif isinstance(COLUMNS[name], datetime):
            changed = COLUMNS[name].replace(year=2026)
        else:
            changed = COLUMNS[name] + 1
        facts = case_facts({**COLUMNS, name: changed})
        assert facts != EXPECTED, name


def test_a_missing_column_is_an_error() -> None:
    with pytest.raises(KeyError):
        case_facts({k: v for k, v in COLUMNS.items() if k != "pending_extension_until"})


def test_fact_columns_are_case_columns() -> None:
    assert set(FACT_COLUMNS) <= set(CASE_FIELDS)
    assert set(FACT_COLUMNS) == {f.name for f in dataclasses.fields(CaseFacts)}
    assert set(FACT_COLUMNS) == {
        "state",
        "version",
        "department_id",
        "grid_id",
        "deadline",
        "is_quick",
        "rework_count",
        "extension_count",
        "escalation_count",
        "pending_extension_until",
    }
