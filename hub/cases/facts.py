"""A stored case as the workflow machine sees it: the one place a case record becomes
``CaseFacts`` (the service reading a row, the demo city building its history)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hub.core import workflow as wf
from storage.cases import CaseRow

#: The ``cases`` columns the machine reads: ``CaseFacts``' fields are named after them.
FACT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(wf.CaseFacts))


def case_facts(record: CaseRow | Mapping[str, Any]) -> wf.CaseFacts:
    """The facts of a case: a row read from storage, or a mapping of column values (a case the
    demo city is building). Every column in ``FACT_COLUMNS`` must be present."""
    if isinstance(record, Mapping):
        values = {name: record[name] for name in FACT_COLUMNS}
    else:
        values = {name: getattr(record, name) for name in FACT_COLUMNS}
    values["state"] = wf.CaseState(values["state"])
    return wf.CaseFacts(**values)
