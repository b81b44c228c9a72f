"""Rendering a case for the API and the live picture, in one place: the case summary, its detail
with the timeline, an attachment, and the event envelope the relay publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from hub.cases.facts import case_facts
from hub.core import deadlines as dl
from hub.core import workflow as wf
from hub.core.deadlines import ALARM_LABELS, Countdown
from storage import cases as q
from storage.catalog import Catalog


def case_json(
    catalog: Catalog, case: q.CaseRow, now: datetime, countdown: Countdown | None = None
) -> dict[str, Any]:
    """A case as the API and the live picture show it (labels, names, whether it is overdue, and
    the countdown of its time limit: level 正常/黄灯/红灯, working seconds left, paused or not)."""
    cat = catalog.categories.get(case.category_id)
    grid = catalog.grids.get(case.grid_id) if case.grid_id is not None else None
    dep = catalog.departments.get(case.department_id) if case.department_id else None
    state = wf.CaseState(case.state)
    overdue = dl.is_overdue(case.state, case.deadline, case.paused_remaining_s, now)
    return {
        "id": case.id,
        "case_no": case.case_no,
        "source": case.source,
        "source_label": wf.label(wf.Source(case.source)),
        "state": case.state,
        "state_label": wf.label(state),
        "version": case.version,
        "category": None
        if cat is None
        else {
            "id": cat.id,
            "code": cat.code,
            "kind": cat.kind,
            "major_name": cat.major_name,
            "name": cat.minor_name,
        },
        "lon": case.lon,
        "lat": case.lat,
        "address": case.address,
        "grid": None if grid is None else {"id": grid.id, "code": grid.code, "name": grid.name},
        "component_id": case.component_id,
        "description": case.description,
        "department": None if dep is None else {"id": dep.id, "name": dep.name},
        "reporter": None
        if case.reporter_id is None
        else {"id": case.reporter_id, "display_name": case.reporter_name},
        "is_quick": case.is_quick,
        "urgency": case.urgency,
        "is_urgent": case.is_urgent,
        "deadline": case.deadline,
        "overdue": overdue,
        "countdown": None if countdown is None else countdown.json(),
        "pending_extension_until": case.pending_extension_until,
        "rework_count": case.rework_count,
        "extension_count": case.extension_count,
        "escalation_count": case.escalation_count,
        "reject_reason": case.reject_reason,
        "duplicate_of": case.duplicate_of,
        "reported_at": case.reported_at,
        "updated_at": case.updated_at,
        "closed_at": case.closed_at,
    }


def detail_json(
    catalog: Catalog,
    actor: wf.Actor,
    case: q.CaseRow,
    events: list[q.EventRow],
    attachments: list[q.AttachmentRow],
    now: datetime,
    countdown: Countdown | None = None,
) -> dict[str, Any]:
    """A case with its contact, photos, timeline and the actions ``actor`` may take now."""
    out = case_json(catalog, case, now, countdown)
    by_id = {a.id: attachment_json(a) for a in attachments}
    out["contact_name"] = case.contact_name
    out["contact_phone"] = case.contact_phone
    out["attachments"] = list(by_id.values())
    out["timeline"] = [
        {
            "seq": e.seq,
            "version": e.version,
            "action": e.action,
            "action_label": _action_label(e.action),
            "actor": None
            if e.actor_id is None
            else {"id": e.actor_id, "display_name": e.actor_name},
            "at": e.at,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "note": e.note,
            "data": e.data,
            "attachments": [by_id[i] for i in e.attachment_ids if i in by_id],
        }
        for e in events
    ]
    out["allowed_actions"] = [a.value for a in wf.allowed_actions(case_facts(case), actor)]
    return out


def attachment_json(a: q.AttachmentRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "sha256": a.sha256,
        "media_type": a.media_type,
        "size": a.size,
        "kind": a.kind,
        "original_name": a.original_name,
        "url": f"/api/attachments/{a.id}",
    }
    if a.camera_id is not None:
        out["camera_id"] = a.camera_id
    if a.captured_at is not None:
        out["captured_at"] = a.captured_at.isoformat()
    return out


def live_event_json(catalog: Catalog, r: asyncpg.Record, summary: dict[str, Any]) -> dict[str, Any]:
    """The case summary as of this event: its state, version and department after the move
    (the row may already be further along), and the event itself."""
    state = wf.CaseState(r["to_state"])
    dep_id = r["department_id"]
    dep = catalog.departments.get(dep_id) if dep_id is not None else None
    action_label = _action_label(r["action"])
    return {
        **summary,
        "version": r["version"],
        "state": state.value,
        "state_label": wf.label(state),
        "department": None if dep_id is None else {"id": dep_id, "name": dep.name if dep else ""},
        "event": {
            "seq": r["seq"],
            "action": r["action"],
            "action_label": action_label,
            "from_state": r["from_state"],
            "to_state": r["to_state"],
            "actor": None
            if r["actor_id"] is None
            else {"id": r["actor_id"], "display_name": r["actor_name"]},
            "at": r["at"],
            "note": r["note"],
            # an alarm says which share of which deadline it is (the boards key alarms by it)
            **({"data": r["alarm_data"]} if r.get("alarm_data") is not None else {}),
        },
    }


def _action_label(action: str) -> str:
    """A workflow action's label, or a system action's (an alarm: 黄灯预警, 红灯超期)."""
    try:
        return wf.label(wf.Action(action))
    except ValueError:
        return ALARM_LABELS.get(action, action)
