"""The case service: the asyncio adapter around the workflow machine and the case queries.

Each call reads what it needs, asks the pure machine (``hub.core.workflow``) for the outcome, and writes it
in one statement or one transaction; events are handed to the listeners (the live bus) only after
commit. Visibility: department staff see only their department's cases and field supervisors only
their grids' cases; a case outside someone's scope is answered as if it did not exist (404).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.cases import render
from hub.cases.facts import case_facts
from hub.core import deadlines as dl
from hub.core import workflow as wf
from hub.core.codes import ComponentId
from hub.core.errors import Conflict, NotFound, ValidationFailed
from hub.core.workcal import WorkCalendar
from storage import alarms as alarm_store
from storage import cases as q
from storage.catalog import Catalog, get_component, grid_at
from storage.db import connect, map_pg_errors
from storage.search import document_terms

#: What the actor is told when an action takes the case out of their sight (``act``).
GONE_MESSAGES: dict[wf.Action, str] = {wf.Action.RETURN: "已退回指挥中心"}
GONE_MESSAGE = "案件已移出您的办理范围"


@dataclasses.dataclass(frozen=True, slots=True)
class CaseEvent:
    """A committed case change, as published to live listeners."""

    seq: int
    case_id: int
    version: int
    action: str
    from_state: str | None
    to_state: str
    department_id: int | None
    grid_id: int | None
    at: datetime
    actor_id: int


Listener = Callable[[CaseEvent], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class NewCase:
    category_id: int
    source: str
    description: str
    address: str = ""
    lon: float | None = None
    lat: float | None = None
    contact_name: str = ""
    contact_phone: str = ""
    component_id: str | None = None
    quick: bool = False
    attachment_ids: tuple[int, ...] = ()
    #: 紧急: the reporter marks the case urgent (it then runs on the urgent time limit).
    urgent: bool = False


def check_coordinates(lon: float | None, lat: float | None) -> None:
    if (lon is None) != (lat is None):
        raise ValidationFailed("经度和纬度须同时提供", code="bad_coordinates")
    if lon is None or lat is None:
        return
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ValidationFailed("坐标必须是有限数值", code="bad_coordinates")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValidationFailed(
            "坐标超出范围（经度 −180–180，纬度 −90–90）",
            code="bad_coordinates",
            details={"lon": lon, "lat": lat},
        )


#: Reads of a case that keeps moving before 补充证据 gives up with the version conflict.
EVIDENCE_ATTEMPTS = 4


class CaseService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog_ref: list[Catalog],
        calendar: WorkCalendar,
        *,
        default_time_limit_hours: int = 24,
        urgent_time_limit_hours: int = 2,
        policy: dl.Policy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pool = pool
        self._catalog_ref = catalog_ref
        self.calendar = calendar
        self.default_time_limit_hours = default_time_limit_hours
        self.urgent_time_limit_hours = urgent_time_limit_hours
        self.policy = policy or dl.Policy()
        self.clock = clock
        self.listeners: list[Listener] = []

    @property
    def catalog(self) -> Catalog:
        return self._catalog_ref[0]

    # -- scope ---------------------------------------------------------------------------

    def scope_for(self, actor: wf.Actor) -> q.Scope:
        if actor.role is wf.Role.DEPARTMENT:
            return q.Scope(department_id=actor.department_id if actor.department_id else -1)
        if actor.role is wf.Role.SUPERVISOR:
            return q.Scope(grid_ids=tuple(sorted(actor.grid_ids)))
        return q.Scope()

    def can_see(self, actor: wf.Actor, case: q.CaseRow) -> bool:
        scope = self.scope_for(actor)
        if scope.department_id is not None and case.department_id != scope.department_id:
            return False
        return not (scope.grid_ids is not None and case.grid_id not in scope.grid_ids)

    # -- deadlines -----------------------------------------------------------------------

    def deadline_for(self, category_id: int, start: datetime, urgent: bool = False) -> datetime:
        """The deadline of a clock started at ``start``: the category's time limit (or the default)
        on the working-time calendar; an urgent case gets the urgent limit when it is shorter."""
        cat = self.catalog.categories.get(category_id)
        if cat is not None and cat.time_limit_value and cat.time_limit_unit in ("hours", "days"):
            if cat.time_limit_unit == "hours":
                due = self.calendar.add(start, cat.time_limit_value, "hours")
            else:
                due = self.calendar.add(start, cat.time_limit_value, "days")
        else:
            due = self.calendar.add(start, self.default_time_limit_hours, "hours")
        if urgent:
            due = min(due, self.calendar.add(start, self.urgent_time_limit_hours, "hours"))
        return due.astimezone(UTC)

    def time_limit_s(self, category_id: int, urgent: bool = False) -> int:
        """The working seconds a department is given for a case of this category."""
        cat = self.catalog.categories.get(category_id)
        if cat is not None and cat.time_limit_value and cat.time_limit_unit in ("hours", "days"):
            if cat.time_limit_unit == "hours":
                limit = cat.time_limit_value * 3600
            else:
                limit = int(cat.time_limit_value * self.calendar.day_length.total_seconds())
        else:
            limit = self.default_time_limit_hours * 3600
        if urgent:
            limit = min(limit, self.urgent_time_limit_hours * 3600)
        return limit

    def clock_of(self, case: q.CaseRow) -> dl.Clock:
        """The case's deadline facts (older rows without a kept limit get the category's)."""
        limit = case.time_limit_s or self.time_limit_s(case.category_id, case.is_urgent)
        return dl.Clock(
            wf.CaseState(case.state),
            case.deadline,
            limit,
            case.paused_remaining_s,
            case.clock_since,
            case.pending_extension_until,
        )

    def countdown(self, case: q.CaseRow, now: datetime) -> dl.Countdown | None:
        return dl.countdown(self.clock_of(case), self.calendar, self.policy, now)

    # -- reads ---------------------------------------------------------------------------

    async def list_cases(self, actor: wf.Actor, f: q.CaseFilter) -> list[q.CaseRow]:
        async with connect(self.pool) as conn:
            return await q.list_cases(conn, f, self.scope_for(actor), self.clock())

    async def get(self, actor: wf.Actor, case_id: int) -> dict[str, Any]:
        async with connect(self.pool) as conn:
            case = await q.get_case(conn, case_id)
            if case is None or not self.can_see(actor, case):
                raise NotFound("案件不存在", details={"case_id": case_id})
            events = await q.list_events(conn, case_id)
            attachments = await q.list_attachments(conn, case_id)
        return self.detail_json(actor, case, events, attachments)

    # -- writes --------------------------------------------------------------------------

    async def create(self, actor: wf.Actor, new: NewCase) -> dict[str, Any]:
        now = self.clock()
        action = wf.Action.QUICK_REPORT if new.quick else wf.Action.REPORT
        cat = self.catalog.categories.get(new.category_id)
        if cat is None or not cat.active:
            raise ValidationFailed(
                "案件类别不存在", code="unknown_category", details={"category_id": new.category_id}
            )
        try:
            source = wf.Source(new.source)
        except ValueError:
            raise ValidationFailed(
                "来源无效", code="bad_source", details={"source": new.source}
            ) from None
        wf.check_source(actor.role, source)
        check_coordinates(new.lon, new.lat)
        if new.component_id is not None:
            ComponentId.parse(new.component_id)
            async with connect(self.pool) as conn:
                component = await get_component(conn, new.component_id)
            if component is None:
                raise ValidationFailed(
                    "部件不存在",
                    code="unknown_component",
                    details={"component_id": new.component_id},
                )
            if new.lon is None:  # a report on a registered component is located by it
                new = dataclasses.replace(new, lon=component.lon, lat=component.lat)
        if source in wf.LOCATED_SOURCES and new.lon is None:
            raise ValidationFailed("该来源的案件须提供位置坐标", code="location_required")
        if new.lon is None and not new.address.strip():
            raise ValidationFailed("须提供位置坐标或地址", code="location_required")
        async with connect(self.pool) as conn:
            grid_id = None
            if new.lon is not None and new.lat is not None:
                grid_id = await grid_at(conn, new.lon, new.lat)
                if grid_id is None:
                    raise ValidationFailed(
                        "位置不在本市网格范围内",
                        code="outside_city",
                        details={"lon": new.lon, "lat": new.lat},
                    )
            outcome = wf.create(
                actor,
                wf.Command(
                    action=action, attachment_ids=new.attachment_ids, urgent=new.urgent or None
                ),
                grid_id,
                now,
            )
            with map_pg_errors():
                async with conn.transaction():
                    day = now.astimezone(self.calendar.tz).date()
                    case_no = await q.next_case_no(conn, day)
                    values: dict[str, Any] = {
                        "case_no": case_no,
                        "source": source.value,
                        "category_id": cat.id,
                        "state": outcome.to_state.value,
                        "lon": new.lon,
                        "lat": new.lat,
                        "address": new.address,
                        "grid_id": grid_id,
                        "component_id": new.component_id,
                        "description": new.description,
                        "reporter_id": actor.user_id,
                        "contact_name": new.contact_name,
                        "contact_phone": new.contact_phone,
                        "is_quick": new.quick,
                        "is_urgent": bool(outcome.changes.get("is_urgent", False)),
                        "urgency": cat.urgency,
                        "reported_at": now,
                        "updated_at": now,
                    }
                    search = document_terms(case_no, new.description, new.address)
                    case_id = await q.insert_case(conn, values, search)
                    await self._claim(conn, new.attachment_ids, case_id, actor.user_id)
                    seq = await q.insert_event(
                        conn,
                        case_id=case_id,
                        version=1,
                        action=action.value,
                        actor_id=actor.user_id,
                        at=now,
                        from_state=None,
                        to_state=outcome.to_state.value,
                        note="",
                        data=outcome.event_data,
                        attachment_ids=new.attachment_ids,
                        grid_id=grid_id,
                    )
        await self._publish(
            CaseEvent(
                seq,
                case_id,
                1,
                action.value,
                None,
                outcome.to_state.value,
                None,
                grid_id,
                now,
                actor.user_id,
            )
        )
        return await self.get(actor, case_id)

    async def act(
        self, actor: wf.Actor, case_id: int, expected_version: int, cmd: wf.Command
    ) -> dict[str, Any]:
        """Apply ``cmd`` and answer the case detail, or, when the move took the case out of the
        actor's scope (a department returning it), ``{"visible": False, "id", "version", "state",
        "state_label", "message"}``: not a case, and a sentence for the page to show."""
        event = await self.transition(actor, case_id, expected_version, cmd)
        try:
            return await self.get(actor, case_id)
        except NotFound:
            return {
                "visible": False,
                "id": case_id,
                "version": event.version,
                "state": event.to_state,
                "state_label": wf.label(wf.CaseState(event.to_state)),
                "message": GONE_MESSAGES.get(cmd.action, GONE_MESSAGE),
            }

    async def transition(
        self, actor: wf.Actor, case_id: int, expected_version: int, cmd: wf.Command
    ) -> CaseEvent:
        """Apply one workflow command; returns the committed event. Raises NotFound, Conflict
        (``version_conflict`` when the case moved since ``expected_version``), IllegalTransition,
        Forbidden or ValidationFailed, writing nothing."""
        now = self.clock()
        async with connect(self.pool) as conn:
            case = await q.get_case(conn, case_id)
            if case is None or not self.can_see(actor, case):
                raise NotFound("案件不存在", details={"case_id": case_id})
            if case.version != expected_version:
                # Alarms and the system's escalation move the version but nothing a person sees
                # on the form: acting on the version before them is no conflict.
                if (
                    case.version < expected_version
                    or not await alarm_store.only_system_events_since(
                        conn, case_id, expected_version
                    )
                ):
                    raise Conflict(
                        "案件已被他人更新，请刷新后重试",
                        code="version_conflict",
                        details={"expected": expected_version, "current": case.version},
                    )
                expected_version = case.version
            cmd = self._with_deadline(cmd, case, now)
            outcome = wf.apply(case_facts(case), actor, cmd, now)
            outcome = self._with_clock(outcome, case, cmd, now)
            # References are checked once the move itself is known to be legal.
            if cmd.action is wf.Action.DISPATCH:
                dep = self.catalog.departments.get(cmd.department_id or -1)
                if dep is None or not dep.active:
                    raise ValidationFailed(
                        "部门不存在",
                        code="unknown_department",
                        details={"department_id": cmd.department_id},
                    )
            if cmd.reject_reason is wf.RejectReason.DUPLICATE and (
                cmd.duplicate_of == case_id or not await q.case_exists(conn, cmd.duplicate_of or -1)
            ):
                raise ValidationFailed(
                    "关联的原案件不存在",
                    code="unknown_case",
                    details={"duplicate_of": cmd.duplicate_of},
                )
            args: dict[str, Any] = {
                "case_id": case_id,
                "expected_version": expected_version,
                "changes": outcome.changes,
                "action": cmd.action.value,
                "actor_id": actor.user_id,
                "at": now,
                "from_state": case.state,
                "note": cmd.note,
                "data": outcome.event_data,
                "attachment_ids": cmd.attachment_ids,
            }
            if cmd.attachment_ids:
                with map_pg_errors():
                    async with conn.transaction():
                        await self._claim(conn, cmd.attachment_ids, case_id, actor.user_id)
                        seq = await q.transition(conn, **args)
                        if seq is None:
                            raise self._moved(expected_version)
            else:
                seq = await q.transition(conn, **args)
                if seq is None:
                    raise self._moved(expected_version)
        department_id = outcome.changes.get("department_id", case.department_id)
        event = CaseEvent(
            seq,
            case_id,
            expected_version + 1,
            cmd.action.value,
            case.state,
            outcome.to_state.value,
            department_id,
            case.grid_id,
            now,
            actor.user_id,
        )
        await self._publish(event)
        return event

    async def add_evidence(
        self, actor: wf.Actor, case_id: int, attachment_ids: tuple[int, ...], note: str = ""
    ) -> CaseEvent:
        """补充证据: put stored attachments (a camera snapshot, a call recording) on an open case,
        whatever version it is at (the move keeps the state; a case that moves meanwhile is read
        again, a few times). Raises like ``transition``."""
        cmd = wf.Command(wf.Action.ADD_EVIDENCE, note=note, attachment_ids=attachment_ids)
        for attempt in range(EVIDENCE_ATTEMPTS):
            async with connect(self.pool) as conn:
                case = await q.get_case(conn, case_id)
            if case is None or not self.can_see(actor, case):
                raise NotFound("案件不存在", details={"case_id": case_id})
            try:
                return await self.transition(actor, case_id, case.version, cmd)
            except Conflict as exc:
                if exc.code != "version_conflict" or attempt == EVIDENCE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _moved(expected: int) -> Conflict:
        return Conflict(
            "案件已被他人更新，请刷新后重试",
            code="version_conflict",
            details={"expected": expected},
        )

    def _with_deadline(self, cmd: wf.Command, case: q.CaseRow, now: datetime) -> wf.Command:
        """The actions in ``wf.DEADLINE_RESTART`` get a new deadline: the category's time limit
        from now, on the working-time calendar (a resumption restores the working time left at
        the deferral when the countdown pauses, see ``hub.core.deadlines``)."""
        if cmd.action in wf.DEADLINE_RESTART:
            if cmd.action is wf.Action.RESUME:
                restored = dl.resume_deadline(self.clock_of(case), self.calendar, self.policy, now)
                if restored is not None:
                    return dataclasses.replace(cmd, deadline=restored.astimezone(UTC))
            urgent = case.is_urgent if cmd.urgent is None else cmd.urgent
            return dataclasses.replace(
                cmd, deadline=self.deadline_for(case.category_id, now, urgent)
            )
        return cmd

    def _with_clock(
        self, outcome: wf.Outcome, case: q.CaseRow, cmd: wf.Command, now: datetime
    ) -> wf.Outcome:
        """Merge the countdown's columns (limit, paused time, since when) into the outcome; a
        denied extension that restores a paused countdown records its deadline in the event."""
        urgent = bool(outcome.changes.get("is_urgent", case.is_urgent))
        extra = dl.clock_changes(
            cmd.action,
            self.clock_of(case),
            self.calendar,
            self.policy,
            now,
            new_deadline=outcome.changes.get("deadline"),
            restart_limit_s=self.time_limit_s(case.category_id, urgent),
        )
        if not extra:
            return outcome
        data = dict(outcome.event_data)
        if "deadline" in extra:
            extra["deadline"] = extra["deadline"].astimezone(UTC)
            data["deadline"] = extra["deadline"].isoformat()
        return dataclasses.replace(outcome, changes={**outcome.changes, **extra}, event_data=data)

    async def _claim(
        self, conn: asyncpg.Connection, ids: tuple[int, ...], case_id: int, user_id: int
    ) -> None:
        if not ids:
            return
        if len(set(ids)) != len(ids):
            raise ValidationFailed("附件重复", code="bad_attachments")
        n = await q.claim_attachments(conn, ids, case_id, user_id)
        if n != len(ids):
            raise ValidationFailed(
                "附件不存在、已被使用或不是您上传的",
                code="bad_attachments",
                details={"attachment_ids": list(ids)},
            )

    async def _publish(self, event: CaseEvent) -> None:
        for listener in list(self.listeners):
            try:
                await listener(event)
            except Exception:  # a listener's fault never undoes a committed change
                logging.getLogger("cityhub.service").exception("case listener failed")

    # -- JSON (hub/cases/render.py) --------------------------------------------------------

    def case_json(self, case: q.CaseRow, now: datetime | None = None) -> dict[str, Any]:
        at = now or self.clock()
        return render.case_json(self.catalog, case, at, self.countdown(case, at))

    def detail_json(
        self,
        actor: wf.Actor,
        case: q.CaseRow,
        events: list[q.EventRow],
        attachments: list[q.AttachmentRow],
    ) -> dict[str, Any]:
        now = self.clock()
        return render.detail_json(
            self.catalog, actor, case, events, attachments, now, self.countdown(case, now)
        )
