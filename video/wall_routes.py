"""The wall's API: each seat's named layouts, and patrol rounds (轮巡).

A round lives in PostgreSQL (``storage/wall.py``) as the pure core's snapshot (``video/patrol.py``)
and moves on whenever its seat asks or reports: every request loads it under a row lock, advances
it to now, applies the wall's visibility reports, stores the marks of the pages that ended and the
new state, and publishes the progress on the ``patrol`` state channel (key: the seat's user id). So
a round needs no background task, survives reloads and restarts, and two windows of one wall never
overwrite each other's reports. Pages that ended while nobody watched are recorded as missed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hub.core.errors import NotFound, ValidationFailed
from hub.core.workflow import Role
from hub.state import HubState
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, body_of, params_of
from hub.web.routes.common import BigId, Id, hub
from storage import wall
from storage.db import connect
from video.patrol import Mark, PageEnded, PatrolError, PatrolRound

READERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
PATROLLERS = frozenset({Role.ADMIN, Role.SEAT, Role.DISPATCHER})
LAYOUT_TILES = (1, 4, 9, 16, 25, 36, 48)

LayoutName = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[^/\x00]+$")]


class LayoutRef(msgspec.Struct, forbid_unknown_fields=True):
    name: LayoutName


class LayoutBody(msgspec.Struct, forbid_unknown_fields=True):
    tiles: Annotated[int, msgspec.Meta(ge=1, le=48)]
    cameras: Annotated[list[Id | None], msgspec.Meta(max_length=48)]


class RoundBody(msgspec.Struct, forbid_unknown_fields=True):
    tiles: Annotated[int, msgspec.Meta(ge=1, le=48)] = 16
    period_minutes: Annotated[int, msgspec.Meta(ge=1, le=480)] = 120


class RoundRef(msgspec.Struct, forbid_unknown_fields=True):
    round_id: BigId


class Report(msgspec.Struct, forbid_unknown_fields=True):
    camera_id: Id
    visible: bool
    reason: Annotated[str, msgspec.Meta(max_length=50)] = ""


class ReportBody(msgspec.Struct, forbid_unknown_fields=True):
    reports: Annotated[list[Report], msgspec.Meta(max_length=48)]


class MissedQuery(msgspec.Struct, forbid_unknown_fields=True):
    rounds: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def round_json(row: wall.Round, r: PatrolRound, now: float) -> dict[str, Any]:
    p = r.progress(now)
    page = r.page
    return {
        "id": row.id,
        "status": row.status if not r.ended else "done",
        "tiles": r.tiles,
        "period_seconds": r.period,
        "started_at": _iso(r.started),
        "planned_end": _iso(r.planned_end),
        "dwell_seconds": r.dwell,
        "page": page,
        "pages": p["pages"],
        "cameras": p["cameras"],
        "shown": p["shown"],
        "missed": p["missed"],
        "ended": r.ended,
        "cameras_now": [] if page < 0 or r.ended else list(r.pages[page]),
        "cameras_next": list(r.pages[page + 1]) if page + 1 < len(r.pages) else [],
        "page_ends_at": None if page < 0 or r.ended else _iso(r.page_start(page + 1)),
    }


def _publish(h: HubState, user_id: int, value: Any) -> None:
    if h.fanout is not None:
        h.fanout.set_state("patrol", str(user_id), value)


async def _step(
    h: HubState, p: Principal, reports: list[Report] | None = None, *, stop: bool = False
) -> dict[str, Any] | None:
    """Load the seat's running round under a lock, advance it to now, apply reports, store."""
    now = time.time()
    async with connect(h.pool) as conn, conn.transaction():
        row = await wall.running_round(conn, p.user.id, for_update=True)
        if row is None:
            return None
        r = PatrolRound.restore(dict(row.state))
        names = dict(await wall.patrol_cameras(conn))
        ended = [e for e in r.advance(now) if isinstance(e, PageEnded)]
        for rep in reports or ():
            r.seen(rep.camera_id, rep.visible, now, rep.reason)
        if stop and not r.ended:
            ended += [e for e in r.advance(now) if isinstance(e, PageEnded)]
        marks = []
        for e in ended:
            for cam in (*e.shown, *e.missed):
                rec = r.records[cam]
                mark = "shown" if rec.mark is Mark.SHOWN else "missed"
                marks.append(
                    (cam, names.get(cam, ""), e.index, mark, rec.visible_seconds, rec.reason)
                )
        status = "done" if r.ended else ("stopped" if stop else "running")
        await wall.save_round(conn, row.id, r.snapshot(), marks, status=status)
    out = round_json(row, r, now)
    out["status"] = status
    _publish(h, p.user.id, None if status != "running" else out)
    return out


async def start_round(request: Request, p: Principal) -> Response:
    h = hub(request)
    b = body_of(request, RoundBody)
    now = time.time()
    async with connect(h.pool) as conn:
        cams = [cid for cid, _ in await wall.patrol_cameras(conn)]
        try:
            r = PatrolRound(cams, tiles=b.tiles, period=b.period_minutes * 60.0, started=now)
        except PatrolError as exc:
            raise ValidationFailed(str(exc), code="bad_round") from None
        r.advance(now)
        row = await wall.start_round(conn, p.user.id, b.tiles, b.period_minutes * 60, r.snapshot())
    out = round_json(row, r, now)
    _publish(h, p.user.id, out)
    return JSONResponse(out, status_code=201)


async def current_round(request: Request, p: Principal) -> Response:
    out = await _step(hub(request), p)
    if out is None:
        raise NotFound("当前没有进行中的轮巡")
    return JSONResponse(out)


async def report(request: Request, p: Principal) -> Response:
    rid = params_of(request, RoundRef).round_id
    b = body_of(request, ReportBody)
    out = await _step(hub(request), p, b.reports)
    if out is None or out["id"] != rid:
        raise NotFound("该轮巡不存在或已结束")
    return JSONResponse(out)


async def stop_round(request: Request, p: Principal) -> Response:
    rid = params_of(request, RoundRef).round_id
    h = hub(request)
    async with connect(h.pool) as conn:
        row = await wall.running_round(conn, p.user.id)
    if row is None or row.id != rid:
        raise NotFound("该轮巡不存在或已结束")
    out = await _step(h, p, stop=True)
    assert out is not None
    return JSONResponse(out)


async def get_round(request: Request, p: Principal) -> Response:
    rid = params_of(request, RoundRef).round_id
    async with connect(hub(request).pool) as conn:
        row = await wall.get_round(conn, rid)
        if row is None or (row.user_id != p.user.id and p.role is not Role.ADMIN):
            raise NotFound("该轮巡不存在")
        marks = await wall.round_marks(conn, rid)
    r = PatrolRound.restore(dict(row.state))
    out = round_json(row, r, time.time())
    out["status"] = row.status
    out["marks"] = [
        {
            "camera_id": m["camera_id"],
            "camera_name": m["camera_name"],
            "page": m["page"],
            "mark": m["mark"],
            "visible_seconds": round(float(m["visible_seconds"]), 1),
            "reason": m["reason"],
        }
        for m in marks
    ]
    return JSONResponse(out)


async def missed(request: Request, p: Principal) -> Response:
    q = params_of(request, MissedQuery)
    async with connect(hub(request).pool) as conn:
        items = await wall.missed_cameras(conn, q.rounds)
    return JSONResponse(
        {
            "items": [
                {
                    "camera_id": m.camera_id,
                    "camera_name": m.camera_name,
                    "times": m.times,
                    "last_round": m.last_round,
                    "last_reason": m.last_reason,
                    "last_at": m.last_at.isoformat(),
                }
                for m in items
            ]
        }
    )


async def list_layouts(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        items = await wall.list_layouts(conn, p.user.id)
    return JSONResponse({"items": [_layout_json(x) for x in items]})


async def put_layout(request: Request, p: Principal) -> Response:
    name = params_of(request, LayoutRef).name.strip()
    b = body_of(request, LayoutBody)
    if b.tiles not in LAYOUT_TILES:
        raise ValidationFailed("画面数须为 1、4、9、16、25、36 或 48", code="bad_layout")
    if len(b.cameras) > b.tiles:
        raise ValidationFailed("摄像头多于画面数", code="bad_layout")
    async with connect(hub(request).pool) as conn:
        x = await wall.put_layout(conn, p.user.id, name, b.tiles, b.cameras)
    return JSONResponse(_layout_json(x))


async def delete_layout(request: Request, p: Principal) -> Response:
    name = params_of(request, LayoutRef).name.strip()
    async with connect(hub(request).pool) as conn:
        if not await wall.delete_layout(conn, p.user.id, name):
            raise NotFound("布局不存在")
    return Response(status_code=204)


def _layout_json(x: wall.Layout) -> dict[str, Any]:
    return {
        "name": x.name,
        "tiles": x.tiles,
        "cameras": list(x.cameras),
        "updated_at": x.updated_at.isoformat(),
    }


TAG = "wall"
ROUTES: list[ApiRoute] = [
    ApiRoute("GET", "/api/wall/layouts", list_layouts, "我的视频墙布局", READERS, tag=TAG),
    ApiRoute(
        "PUT", "/api/wall/layouts/{name}", put_layout, "保存视频墙布局", READERS, LayoutBody,
        params=LayoutRef, errors=(422,), tag=TAG,
    ),
    ApiRoute(
        "DELETE", "/api/wall/layouts/{name}", delete_layout, "删除视频墙布局", READERS,
        params=LayoutRef, status=204, errors=(404,), tag=TAG,
    ),
    ApiRoute(
        "POST", "/api/patrol/rounds", start_round, "开始轮巡", PATROLLERS, RoundBody,
        status=201, errors=(422,), tag=TAG,
    ),
    ApiRoute(
        "GET", "/api/patrol/rounds/current", current_round, "当前轮巡（推进到此刻）", PATROLLERS,
        errors=(404,), tag=TAG,
    ),
    ApiRoute(
        "GET", "/api/patrol/rounds/{round_id:int}", get_round, "一次轮巡及其记录", PATROLLERS,
        params=RoundRef, tag=TAG,
    ),
    ApiRoute(
        "POST", "/api/patrol/rounds/{round_id:int}/report", report, "上报画面可见情况",
        PATROLLERS, ReportBody, params=RoundRef, tag=TAG,
    ),
    ApiRoute(
        "POST", "/api/patrol/rounds/{round_id:int}/stop", stop_round, "结束轮巡", PATROLLERS,
        params=RoundRef, tag=TAG,
    ),
    ApiRoute(
        "GET", "/api/patrol/missed", missed, "近期轮巡漏巡的摄像头", READERS, params=MissedQuery,
        tag=TAG,
    ),
]  # fmt: skip
