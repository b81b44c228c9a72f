"""GET /api/alarms: the deadline alarms still open (黄灯预警, 红灯超期), newest first.

An alarm stays open while its case still runs on the deadline it fired for (the department holds
it and has not handed it back or fed back). Department staff see only their department's."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.core import workflow as wf
from hub.core.deadlines import ALARM_LABELS, OVERDUE_ACTION, WARNING_ACTION
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, params_of
from hub.web.routes.common import hub
from storage import alarms as store
from storage.db import connect

#: Who reads the alarms: the centres, the leaders' screens and the departments (their own).
ALARM_READERS = frozenset(
    {wf.Role.ADMIN, wf.Role.SEAT, wf.Role.DISPATCHER, wf.Role.VIEWER, wf.Role.DEPARTMENT}
)


class AlarmQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 200


def alarm_json(h: Any, a: store.AlarmRow) -> dict[str, Any]:
    dep = h.catalog.departments.get(a.department_id) if a.department_id else None
    action = OVERDUE_ACTION if a.kind == "overdue" else WARNING_ACTION
    return {
        "id": a.id,
        "case_id": a.case_id,
        "case_no": a.case_no,
        "kind": a.kind,
        "label": ALARM_LABELS[action],
        "share": a.threshold,
        "deadline": a.deadline,
        "due_at": a.due_at,
        "fired_at": a.fired_at,
        "department": None if dep is None else {"id": dep.id, "name": dep.name},
        "is_urgent": a.is_urgent,
        "state": a.state,
        "state_label": wf.label(wf.CaseState(a.state)),
    }


async def list_alarms(request: Request, p: Principal) -> Response:
    h = hub(request)
    args = params_of(request, AlarmQuery)
    department_id = None
    if p.actor.role is wf.Role.DEPARTMENT:
        department_id = p.actor.department_id or -1
    async with connect(h.pool) as conn:
        rows = await store.list_open_alarms(conn, department_id=department_id, limit=args.limit)
    return JSONResponse({"items": [alarm_json(h, a) for a in rows]})


ALARM_ROUTES: list[ApiRoute] = [
    ApiRoute(
        "GET",
        "/api/alarms",
        list_alarms,
        "未解除的时限预警与超期告警（最新在前；部门人员只看本部门）",
        ALARM_READERS,
        params=AlarmQuery,
        errors=(422,),
        tag="cases",
    ),
]
