"""The warning API: play, stop, the log, a case's nearest speaker, live talk, and the schedules.

Handlers are thin: they check the body, call the process's ``VoiceService`` (through the
``get_service`` the subsystem hands in; a process without the telephony role answers 503), and
serialise. Every warning is audited (``audit_log``) with who issued it and to which speakers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.core.errors import Conflict, NotFound, ValidationFailed
from hub.core.workflow import Role
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, body_of, params_of
from hub.web.routes.common import BigId, Id, client_ip, hub
from storage import cases as case_store
from storage import users as user_store
from storage import voice as store
from storage.db import connect, map_pg_errors
from telephony.warnings.schedule import Recurrence, ScheduleError, parse_time
from telephony.warnings.service import VoiceService, warning_json

READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
ISSUERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER})
#: How far a case may be from its "nearest" speaker for the one-action warning.
NEAREST_MAX_METRES = 2000.0

Repeat = Annotated[int, msgspec.Meta(ge=1, le=10)]
IdList = Annotated[list[Id], msgspec.Meta(max_length=500)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^\d{2}:\d{2}$")]
Weekdays = Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=7)]], msgspec.Meta(max_length=7)]
Every = Annotated[int, msgspec.Meta(ge=1, le=1440)]


class PlayBody(msgspec.Struct, forbid_unknown_fields=True):
    clip_id: Id
    speaker_ids: IdList = []
    group_ids: IdList = []
    repeat: Repeat = 1
    case_id: BigId | None = None


class CaseWarningBody(msgspec.Struct, forbid_unknown_fields=True):
    clip_id: Id
    repeat: Repeat = 1


class TalkBody(msgspec.Struct, forbid_unknown_fields=True):
    sdp: Annotated[str, msgspec.Meta(min_length=10, max_length=64_000)]
    speaker_ids: IdList = []
    group_ids: IdList = []


class WarningRef(msgspec.Struct, forbid_unknown_fields=True):
    warning_id: BigId


class CaseRef(msgspec.Struct, forbid_unknown_fields=True):
    case_id: BigId


class TalkRef(msgspec.Struct, forbid_unknown_fields=True):
    talk_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,40}$")]


class ScheduleRef(msgspec.Struct, forbid_unknown_fields=True):
    schedule_id: Id


class LogQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    before: BigId | None = None


class ScheduleBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    clip_id: Id
    every_minutes: Every
    from_time: HHMM
    until_time: HHMM
    speaker_ids: IdList = []
    group_ids: IdList = []
    weekdays: Weekdays = msgspec.field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    repeat: Repeat = 1
    active: bool = True


class SchedulePatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    clip_id: Id | None = None
    every_minutes: Every | None = None
    from_time: HHMM | None = None
    until_time: HHMM | None = None
    speaker_ids: IdList | None = None
    group_ids: IdList | None = None
    weekdays: Weekdays | None = None
    repeat: Repeat | None = None
    active: bool | None = None


def schedule_json(sc: store.Schedule, tz: Any) -> dict[str, Any]:
    try:
        described = Recurrence(
            sc.every_minutes, sc.from_time, sc.until_time, frozenset(sc.weekdays), tz
        ).describe()
    except ScheduleError:
        described = ""
    return {
        "id": sc.id,
        "name": sc.name,
        "clip_id": sc.clip_id,
        "speaker_ids": list(sc.speaker_ids),
        "group_ids": list(sc.group_ids),
        "repeat": sc.repeat,
        "every_minutes": sc.every_minutes,
        "from_time": f"{sc.from_time:%H:%M}",
        "until_time": f"{sc.until_time:%H:%M}",
        "weekdays": list(sc.weekdays),
        "active": sc.active,
        "description": described,
        "last_fire_at": None if sc.last_fire_at is None else sc.last_fire_at.isoformat(),
    }


async def _audit(request: Request, p: Principal, action: str, target: str, detail: Any) -> None:
    async with connect(hub(request).pool) as conn:
        await user_store.audit(
            conn,
            user_id=p.user.id,
            action=action,
            target=target,
            detail=detail,
            ip=client_ip(request),
        )


def make_routes(get_service: Callable[[Request], VoiceService]) -> list[ApiRoute]:
    """The routes, bound to the subsystem's running service."""

    async def play(request: Request, p: Principal) -> Response:
        body = body_of(request, PlayBody)
        if body.case_id is not None:
            await hub(request).cases.get(p.actor, body.case_id)  # 404 unless visible
        w = await get_service(request).start_warning(
            user_id=p.user.id,
            clip_id=body.clip_id,
            speaker_ids=body.speaker_ids,
            group_ids=body.group_ids,
            repeat=body.repeat,
            case_id=body.case_id,
        )
        await _audit(request, p, "warning_play", f"warning:{w.id}", _detail(w))
        return JSONResponse(warning_json(w), status_code=202)

    async def play_for_case(request: Request, p: Principal) -> Response:
        case_id = params_of(request, CaseRef).case_id
        body = body_of(request, CaseWarningBody)
        h = hub(request)
        await h.cases.get(p.actor, case_id)  # 404 unless visible
        async with connect(h.pool) as conn:
            case = await case_store.get_case(conn, case_id)
            if case is None:
                raise NotFound("案件不存在")
            if case.lon is None or case.lat is None:
                raise Conflict("案件没有位置，无法选择最近的喇叭", code="no_location")
            found = await store.nearest_speaker(
                conn, case.lon, case.lat, max_distance_m=NEAREST_MAX_METRES
            )
        if found is None:
            raise Conflict(
                f"案件位置 {NEAREST_MAX_METRES:.0f} 米内没有启用的喇叭", code="no_speaker_near"
            )
        speaker, distance = found
        w = await get_service(request).start_warning(
            user_id=p.user.id,
            clip_id=body.clip_id,
            speaker_ids=[speaker.id],
            repeat=body.repeat,
            case_id=case_id,
        )
        await _audit(request, p, "warning_play", f"warning:{w.id}", _detail(w))
        out = warning_json(w)
        out["distance_m"] = round(distance)
        return JSONResponse(out, status_code=202)

    async def stop(request: Request, p: Principal) -> Response:
        wid = params_of(request, WarningRef).warning_id
        w = await get_service(request).stop_warning(wid, p.user.id)
        await _audit(request, p, "warning_stop", f"warning:{wid}", {"state": w.state})
        return JSONResponse(warning_json(w))

    async def list_log(request: Request, p: Principal) -> Response:
        q = params_of(request, LogQuery)
        async with connect(hub(request).pool) as conn:
            items = await store.list_warnings(conn, q.limit, q.before)
        return JSONResponse({"items": [warning_json(w) for w in items]})

    async def get_one(request: Request, p: Principal) -> Response:
        wid = params_of(request, WarningRef).warning_id
        async with connect(hub(request).pool) as conn:
            w = await store.get_warning(conn, wid)
        if w is None:
            raise NotFound("警示记录不存在")
        return JSONResponse(warning_json(w))

    async def case_warnings(request: Request, p: Principal) -> Response:
        case_id = params_of(request, CaseRef).case_id
        h = hub(request)
        await h.cases.get(p.actor, case_id)
        async with connect(h.pool) as conn:
            items = await store.warnings_for_case(conn, case_id)
        return JSONResponse({"items": [warning_json(w) for w in items]})

    async def talk(request: Request, p: Principal) -> Response:
        body = body_of(request, TalkBody)
        talk_id, w, answer = await get_service(request).start_talk(
            user_id=p.user.id,
            offer_sdp=body.sdp,
            speaker_ids=body.speaker_ids,
            group_ids=body.group_ids,
        )
        await _audit(request, p, "warning_talk", f"warning:{w.id}", _detail(w))
        return JSONResponse({"talk_id": talk_id, "warning_id": w.id, "sdp": answer})

    async def talk_stop(request: Request, p: Principal) -> Response:
        talk_id = params_of(request, TalkRef).talk_id
        wid = await get_service(request).stop_talk(talk_id)
        return JSONResponse({"talk_id": talk_id, "warning_id": wid})

    async def list_schedules(request: Request, p: Principal) -> Response:
        h = hub(request)
        async with connect(h.pool) as conn:
            items = await store.list_schedules(conn)
        tz = h.cases.calendar.tz
        return JSONResponse({"items": [schedule_json(s, tz) for s in items]})

    async def create_schedule(request: Request, p: Principal) -> Response:
        h = hub(request)
        b = body_of(request, ScheduleBody)
        fields = store.ScheduleFields(
            name=b.name.strip(),
            clip_id=b.clip_id,
            speaker_ids=tuple(sorted(set(b.speaker_ids))),
            group_ids=tuple(sorted(set(b.group_ids))),
            repeat=b.repeat,
            every_minutes=b.every_minutes,
            from_time=_time(b.from_time),
            until_time=_time(b.until_time),
            weekdays=tuple(sorted(set(b.weekdays))),
            active=b.active,
        )
        _check_schedule(fields, h.cases.calendar.tz)
        async with connect(h.pool) as conn:
            await _check_refs(conn, fields.clip_id, fields.speaker_ids, fields.group_ids)
            with map_pg_errors():
                sc = await store.insert_schedule(conn, fields, created_by=p.user.id)
        await _audit(request, p, "schedule_create", f"schedule:{sc.id}", {"name": sc.name})
        return JSONResponse(schedule_json(sc, h.cases.calendar.tz), status_code=201)

    async def update_schedule(request: Request, p: Principal) -> Response:
        h = hub(request)
        sid = params_of(request, ScheduleRef).schedule_id
        b = body_of(request, SchedulePatch)
        changes: dict[str, Any] = {}
        for name in SchedulePatch.__struct_fields__:
            value = getattr(b, name)
            if value is None:
                continue
            if name in ("from_time", "until_time"):
                value = _time(value)
            elif name in ("speaker_ids", "group_ids", "weekdays"):
                value = tuple(sorted(set(value)))
            elif name == "name":
                value = value.strip()
            changes[name] = value
        async with connect(h.pool) as conn:
            current = await store.get_schedule(conn, sid)
            if current is None:
                raise NotFound("定时任务不存在")
            merged = store.ScheduleFields(
                **{
                    f: changes.get(f, getattr(current, f))
                    for f in store.ScheduleFields.__dataclass_fields__
                }
            )
            _check_schedule(merged, h.cases.calendar.tz)
            await _check_refs(conn, merged.clip_id, merged.speaker_ids, merged.group_ids)
            with map_pg_errors():
                sc = await store.update_schedule(conn, sid, changes)
        if sc is None:
            raise NotFound("定时任务不存在")
        await _audit(request, p, "schedule_update", f"schedule:{sid}", {"changed": sorted(changes)})
        return JSONResponse(schedule_json(sc, h.cases.calendar.tz))

    async def delete_schedule(request: Request, p: Principal) -> Response:
        sid = params_of(request, ScheduleRef).schedule_id
        async with connect(hub(request).pool) as conn:
            if not await store.delete_schedule(conn, sid):
                raise NotFound("定时任务不存在")
        await _audit(request, p, "schedule_delete", f"schedule:{sid}", {})
        return Response(status_code=204)

    tag = "warnings"
    return [
        ApiRoute(
            "POST", "/api/warnings", play, "播放警示录音", ISSUERS, PlayBody,
            status=202, errors=(404, 409, 422), tag=tag,
        ),
        ApiRoute(
            "GET", "/api/warnings", list_log, "警示记录（新到旧）", READERS,
            params=LogQuery, tag=tag,
        ),
        ApiRoute(
            "GET", "/api/warnings/{warning_id:int}", get_one, "一条警示记录", READERS,
            params=WarningRef, tag=tag,
        ),
        ApiRoute(
            "POST", "/api/warnings/{warning_id:int}/stop", stop, "停止正在播放的警示", ISSUERS,
            params=WarningRef, errors=(409,), tag=tag,
        ),
        ApiRoute(
            "POST", "/api/cases/{case_id:int}/warning", play_for_case,
            "在案件最近的喇叭播放警示", ISSUERS, CaseWarningBody, params=CaseRef,
            status=202, errors=(409, 422), tag=tag,
        ),
        ApiRoute(
            "GET", "/api/cases/{case_id:int}/warnings", case_warnings, "案件的警示记录",
            READERS, params=CaseRef, tag=tag,
        ),
        ApiRoute(
            "POST", "/api/talk", talk, "实时喊话（WebRTC）", ISSUERS, TalkBody,
            errors=(404, 409, 422), tag=tag,
        ),
        ApiRoute(
            "POST", "/api/talk/{talk_id}/stop", talk_stop, "结束实时喊话", ISSUERS,
            params=TalkRef, tag=tag,
        ),
        ApiRoute(
            "GET", "/api/warning-schedules", list_schedules, "定时警示", READERS, tag=tag,
        ),
        ApiRoute(
            "POST", "/api/warning-schedules", create_schedule, "新建定时警示", ISSUERS,
            ScheduleBody, status=201, errors=(404, 422), tag=tag,
        ),
        ApiRoute(
            "PATCH", "/api/warning-schedules/{schedule_id:int}", update_schedule,
            "修改定时警示", ISSUERS, SchedulePatch, params=ScheduleRef, errors=(422,), tag=tag,
        ),
        ApiRoute(
            "DELETE", "/api/warning-schedules/{schedule_id:int}", delete_schedule,
            "删除定时警示", ISSUERS, params=ScheduleRef, status=204, tag=tag,
        ),
    ]  # fmt: skip


def _detail(w: store.Warning) -> dict[str, Any]:
    return {
        "kind": w.kind,
        "clip_id": w.clip_id,
        "case_id": w.case_id,
        "speakers": [t.speaker_id for t in w.targets],
    }


def _time(text: str) -> time:
    try:
        return parse_time(text)
    except ScheduleError as exc:
        raise ValidationFailed(str(exc), code="bad_time") from None


def _check_schedule(f: store.ScheduleFields, tz: Any) -> None:
    if not f.speaker_ids and not f.group_ids:
        raise ValidationFailed("请至少选择一个喇叭或分组", code="no_speakers")
    try:
        Recurrence(f.every_minutes, f.from_time, f.until_time, frozenset(f.weekdays), tz)
    except ScheduleError as exc:
        raise ValidationFailed(str(exc), code="bad_schedule") from None


async def _check_refs(
    conn: Any, clip_id: int, speaker_ids: tuple[int, ...], group_ids: tuple[int, ...]
) -> None:
    if await store.get_clip(conn, clip_id) is None:
        raise NotFound("录音不存在或已删除")
    found = {s.id for s in await store.get_speakers(conn, list(speaker_ids))}
    missing = sorted(set(speaker_ids) - found)
    if missing:
        raise NotFound(f"喇叭不存在：{', '.join(map(str, missing))}")
    for gid in group_ids:
        if await store.get_group(conn, gid) is None:
            raise NotFound(f"喇叭分组 {gid} 不存在")
