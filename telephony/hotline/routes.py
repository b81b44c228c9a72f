"""The 12319 hotline API: the agent console (state, answer, hold, transfer, hang up, wrap-up, call
to case), the supervisor's views (calls, recordings, monitoring, callbacks) and the queue board.

Handlers are thin: they find the process's ``HotlineService`` (``hub.services["hotline"]``; 503 in a
process without the telephony role), turn the signed-in user into the ACD's agent id (the user id
as text) and call it; the ACD's refusals are ``HotlineError``s with zh-CN messages (404 unknown
call, 409 wrong state). Records come from PostgreSQL (``storage.hotline``). A call is named by the
ACD's id (``h12``) while it runs and by its record id afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal, cast

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from hub.cases.service import NewCase
from hub.core import workflow as wf
from hub.core.errors import Forbidden, NotFound, Unavailable
from hub.core.workflow import Role
from hub.web.auth import Principal
from hub.web.http import ApiRoute, JSONResponse, body_of, params_of
from hub.web.routes.common import BigId, Id, client_ip, hub
from storage import hotline as store
from storage import hotline_phones as phone_store
from storage import hotline_queue as queue_store
from storage import users as user_store
from storage.db import connect
from storage.users import list_users
from telephony.hotline.acd import QUEUE
from telephony.hotline.commands import MonitorMode
from telephony.hotline.service import HotlineService

AGENTS = frozenset({Role.ADMIN, Role.AGENT})
#: Who watches the queue board (the big screen included).
BOARD = frozenset({Role.ADMIN, Role.AGENT, Role.SEAT, Role.DISPATCHER, Role.VIEWER})
SUPERVISORS = frozenset({Role.ADMIN})
Sdp = Annotated[str, msgspec.Meta(min_length=10, max_length=64_000)]
CallName = Annotated[str, msgspec.Meta(pattern=r"^h[0-9]{1,12}$")]


class CallRef(msgspec.Struct, forbid_unknown_fields=True):
    call: CallName


class RecordRef(msgspec.Struct, forbid_unknown_fields=True):
    call_id: BigId


class CallbackRef(msgspec.Struct, forbid_unknown_fields=True):
    callback_id: BigId


class StateBody(msgspec.Struct, forbid_unknown_fields=True):
    state: Literal["signed_in", "signed_out", "ready", "not_ready"]
    reason: Annotated[str, msgspec.Meta(max_length=40)] = "示忙"


class AnswerBody(msgspec.Struct, forbid_unknown_fields=True):
    sdp: Sdp


class MonitorBody(msgspec.Struct, forbid_unknown_fields=True):
    sdp: Sdp
    mode: Literal["listen", "whisper", "barge"] = "listen"


class HoldBody(msgspec.Struct, forbid_unknown_fields=True):
    on: bool


class TransferBody(msgspec.Struct, forbid_unknown_fields=True):
    #: an agent's user id, or "queue"
    to: Annotated[str, msgspec.Meta(pattern=r"^(queue|[0-9]{1,9})$")]
    attended: bool = False


class TransferEnd(msgspec.Struct, forbid_unknown_fields=True):
    action: Literal["complete", "cancel"]


class DispositionBody(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}$")]
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    consultation: bool | None = None


class CaseBody(msgspec.Struct, forbid_unknown_fields=True):
    category_id: Id
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    address: Annotated[str, msgspec.Meta(max_length=200)] = ""
    lon: float | None = None
    lat: float | None = None
    contact_name: Annotated[str, msgspec.Meta(max_length=50)] = ""


class LinkBody(msgspec.Struct, forbid_unknown_fields=True):
    case_id: BigId | None


class CallsQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    before: BigId | None = None
    agent_id: Id | None = None
    caller: Annotated[str, msgspec.Meta(max_length=40)] | None = None


def hotline(request: Request) -> HotlineService:
    service = hub(request).services.get("hotline")
    if service is None:
        raise Unavailable("本进程未运行 12319 热线（--roles 中没有 telephony）", code="no_hotline")
    return cast(HotlineService, service)


def me(p: Principal) -> str:
    return str(p.user.id)


def call_json(call: store.Call, *, full_number: bool) -> dict[str, Any]:
    from telephony.hotline.service import mask

    return {
        "id": call.id,
        "caller": call.caller if full_number else mask(call.caller),
        "arrived_at": call.arrived_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "wait_seconds": None if call.wait is None else round(call.wait.total_seconds(), 1),
        "talk_seconds": None if call.talk is None else round(call.talk.total_seconds(), 1),
        "agent_id": call.agent_id,
        "agent_name": call.agent_name,
        "outcome": call.outcome,
        "disposition": call.disposition,
        "disposition_label": call.disposition_label,
        "consultation": call.consultation,
        "case": None if call.case_id is None else {
            "id": call.case_id, "case_no": call.case_no, "state": call.case_state},
        "recording": f"/api/hotline/calls/{call.id}/recording" if call.recording else None,
        "note": call.note,
    }  # fmt: skip


# -- the agent -----------------------------------------------------------------------------------


async def my_state(request: Request, p: Principal) -> Response:
    service = hotline(request)
    agent = me(p)
    view = next((a for a in service.acd.agents_view() if a.agent == agent), None)
    out: dict[str, Any] = {"agent": agent, "state": "signed_out", "reason": "", "call": None,
                           "since": None, "wrapup_seconds": service.settings.hotline_wrapup}  # fmt: skip
    if view is not None:
        out.update(state=view.state.value, reason=view.reason, call=view.call,
                   since=service.agent_json(view)["since"])  # fmt: skip
    out.update(service.phones.json(agent))  # device (browser / phone) and the desk phone
    current = service.current(agent)
    if current is not None:
        out["current"] = await service.current_json(current)
    return JSONResponse(out)


async def set_state(request: Request, p: Principal) -> Response:
    service, agent = hotline(request), me(p)
    body = body_of(request, StateBody)
    acd = service.acd
    if body.state == "signed_in":
        service.agent_event(lambda now: acd.sign_in(agent, now))
    elif body.state == "signed_out":
        service.agent_event(lambda now: acd.sign_out(agent, now))
    elif body.state == "ready":
        service.agent_event(lambda now: acd.set_ready(agent, now))
    else:
        service.agent_event(lambda now: acd.set_not_ready(agent, body.reason or "示忙", now))
    return await my_state(request, p)


async def answer(request: Request, p: Principal) -> Response:
    call = params_of(request, CallRef).call
    body = body_of(request, AnswerBody)
    sdp = await hotline(request).answer(me(p), call, body.sdp)
    return JSONResponse({"call": call, "sdp": sdp})


async def decline(request: Request, p: Principal) -> Response:
    call, agent = params_of(request, CallRef).call, me(p)
    service = hotline(request)
    service.agent_event(lambda now: service.acd.decline(agent, call, now))
    return JSONResponse({"call": call})


async def hangup(request: Request, p: Principal) -> Response:
    call, agent = params_of(request, CallRef).call, me(p)
    service = hotline(request)
    service.agent_event(lambda now: service.acd.agent_hangup(agent, call, now))
    return JSONResponse({"call": call})


async def hold(request: Request, p: Principal) -> Response:
    call, agent = params_of(request, CallRef).call, me(p)
    on = body_of(request, HoldBody).on
    service = hotline(request)
    service.own(agent, call)
    acd = service.acd
    service.agent_event(lambda now: acd.hold(call, now) if on else acd.unhold(call, now))
    return JSONResponse({"call": call, "held": on})


async def transfer(request: Request, p: Principal) -> Response:
    call, agent = params_of(request, CallRef).call, me(p)
    body = body_of(request, TransferBody)
    service = hotline(request)
    acd = service.acd
    if body.to == agent:
        raise Forbidden("不能转接给自己", code="transfer_to_self")
    if body.attended and body.to == QUEUE:
        raise Forbidden("咨询转接需要指定坐席", code="attended_to_queue")
    if body.attended:
        service.agent_event(lambda now: acd.consult(call, agent, body.to, now))
    else:
        service.agent_event(lambda now: acd.transfer_blind(call, agent, body.to, now))
    return JSONResponse({"call": call, "to": body.to, "attended": body.attended})


async def transfer_end(request: Request, p: Principal) -> Response:
    call, agent = params_of(request, CallRef).call, me(p)
    action = body_of(request, TransferEnd).action
    service = hotline(request)
    acd = service.acd
    if action == "complete":
        service.agent_event(lambda now: acd.transfer_complete(call, agent, now))
    else:
        service.agent_event(lambda now: acd.transfer_cancel(call, agent, now))
    return JSONResponse({"call": call, "action": action})


async def _record(request: Request, call_id: int) -> store.Call:
    async with connect(hub(request).pool) as conn:
        call = await store.get_call(conn, call_id)
    if call is None:
        raise NotFound("通话记录不存在", code="no_call_record")
    return call


def _mine(call: store.Call, p: Principal) -> None:
    if p.user.role != Role.ADMIN.value and call.agent_id != p.user.id:
        raise Forbidden("只能处理自己接听的通话", code="not_your_call")


async def disposition(request: Request, p: Principal) -> Response:
    call_id = params_of(request, RecordRef).call_id
    body = body_of(request, DispositionBody)
    _mine(await _record(request, call_id), p)
    consultation = body.consultation if body.consultation is not None else (
        True if body.code == "consultation" else None)  # fmt: skip
    async with connect(hub(request).pool) as conn:
        call = await store.set_disposition(conn, call_id, body.code, consultation=consultation,
                                           note=body.note)  # fmt: skip
    assert call is not None
    return JSONResponse(call_json(call, full_number=True))


async def to_case(request: Request, p: Principal) -> Response:
    """A new case (source: hotline) from the call, with the caller's number."""
    h = hub(request)
    call_id = params_of(request, RecordRef).call_id
    body = body_of(request, CaseBody)
    call = await _record(request, call_id)
    _mine(call, p)
    if call.case_id is not None:
        raise Forbidden("该通话已关联案件", code="already_linked")
    case = await h.cases.create(
        p.actor,
        NewCase(
            category_id=body.category_id, source=wf.Source.HOTLINE.value,
            description=body.description, address=body.address, lon=body.lon, lat=body.lat,
            contact_name=body.contact_name, contact_phone=call.caller_norm or call.caller,
        ),
    )  # fmt: skip
    async with connect(h.pool) as conn:
        linked = await store.link_case(conn, call_id, int(case["id"]))
    assert linked is not None
    return JSONResponse(
        {"case": case, "call": call_json(linked, full_number=True)}, status_code=201
    )


async def link(request: Request, p: Principal) -> Response:
    """Link the call to an existing case the agent may see (or unlink with null)."""
    h = hub(request)
    call_id = params_of(request, RecordRef).call_id
    case_id = body_of(request, LinkBody).case_id
    _mine(await _record(request, call_id), p)
    if case_id is not None:
        await h.cases.get(p.actor, case_id)  # 404 unless the agent may see it
    async with connect(h.pool) as conn:
        linked = await store.link_case(conn, call_id, case_id)
    assert linked is not None
    return JSONResponse(call_json(linked, full_number=True))


async def dispositions(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        items = await store.list_dispositions(conn)
    return JSONResponse({"items": [{"code": d.code, "label": d.label} for d in items]})


# -- records and the board -----------------------------------------------------------------------


async def calls(request: Request, p: Principal) -> Response:
    q = params_of(request, CallsQuery)
    agent_id = q.agent_id
    if p.user.role == Role.AGENT.value:
        agent_id = p.user.id  # an agent lists their own calls
    async with connect(hub(request).pool) as conn:
        rows = await store.list_calls(conn, agent_id=agent_id, caller=q.caller, before=q.before,
                                      limit=q.limit)  # fmt: skip
    return JSONResponse({"items": [call_json(c, full_number=True) for c in rows]})


async def recording(request: Request, p: Principal) -> Response:
    call = await _record(request, params_of(request, RecordRef).call_id)
    _mine(call, p)
    if not call.recording:
        raise NotFound("该通话没有录音", code="no_recording")
    root = hub(request).settings.data_dir / "recordings"
    path = (root / call.recording).resolve()
    if root.resolve() not in path.parents or not await asyncio.to_thread(path.is_file):
        raise NotFound("录音文件不存在", code="no_recording")
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "private"})


async def board(request: Request, p: Principal) -> Response:
    service = hotline(request)
    out = service.board()
    out["agents"] = [service.agent_json(a) for a in service.acd.agents_view()]
    async with connect(hub(request).pool) as conn:
        users = await list_users(conn)
    # the console and the big screen name agents (the channels carry only their user ids)
    out["agent_names"] = {str(u.id): u.display_name or u.username for u in users
                          if u.role in (Role.AGENT.value, Role.ADMIN.value)}  # fmt: skip
    return JSONResponse(out)


async def monitor(request: Request, p: Principal) -> Response:
    call = params_of(request, CallRef).call
    body = body_of(request, MonitorBody)
    MonitorMode(body.mode)
    sdp = await hotline(request).answer(f"s{p.user.id}", call, body.sdp, monitor=body.mode)
    return JSONResponse({"call": call, "sdp": sdp, "mode": body.mode})


async def callbacks(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        items = await queue_store.open_callbacks(conn)
    return JSONResponse({"items": [
        {"id": cb.id, "number": cb.number, "requested_at": cb.requested_at.isoformat(),
         "call_id": cb.call_id} for cb in items]})  # fmt: skip


async def callback_done(request: Request, p: Principal) -> Response:
    cid = params_of(request, CallbackRef).callback_id
    async with connect(hub(request).pool) as conn:
        done = await queue_store.mark_callback_done(conn, cid, done_by=p.user.id)
    if done is None:
        raise NotFound("回拨记录不存在", code="no_callback")
    return JSONResponse(
        {"id": done.id, "done_at": done.done_at.isoformat() if done.done_at else None}
    )


TAG = "hotline"
ROUTES: list[ApiRoute] = [
    ApiRoute("GET", "/api/hotline/me", my_state, "坐席状态与当前通话", AGENTS, tag=TAG),
    ApiRoute("POST", "/api/hotline/me/state", set_state, "签入/签出/示闲/示忙", AGENTS, StateBody,
             errors=(409,), tag=TAG),
    ApiRoute("POST", "/api/hotline/live/{call}/answer", answer, "在浏览器中接听（WebRTC）", AGENTS,
             AnswerBody, params=CallRef, errors=(404, 409, 422), tag=TAG),
    ApiRoute("POST", "/api/hotline/live/{call}/decline", decline, "拒接", AGENTS, params=CallRef,
             errors=(404, 409), tag=TAG),
    ApiRoute("POST", "/api/hotline/live/{call}/hangup", hangup, "挂断", AGENTS, params=CallRef,
             errors=(404, 409), tag=TAG),
    ApiRoute("POST", "/api/hotline/live/{call}/hold", hold, "保持/恢复", AGENTS, HoldBody,
             params=CallRef, errors=(404, 409), tag=TAG),
    ApiRoute("POST", "/api/hotline/live/{call}/transfer", transfer, "转接（盲转或咨询转）", AGENTS,
             TransferBody, params=CallRef, errors=(403, 404, 409), tag=TAG),
    ApiRoute("POST", "/api/hotline/live/{call}/transfer/end", transfer_end, "完成或取消咨询转接",
             AGENTS, TransferEnd, params=CallRef, errors=(404, 409), tag=TAG),
    ApiRoute("POST", "/api/hotline/live/{call}/monitor", monitor, "监听/耳语/强插", SUPERVISORS,
             MonitorBody, params=CallRef, errors=(404, 409, 422), tag=TAG),
    ApiRoute("GET", "/api/hotline/board", board, "排队看板", BOARD, tag=TAG),
    ApiRoute("GET", "/api/hotline/dispositions", dispositions, "话后小结代码", AGENTS, tag=TAG),
    ApiRoute("GET", "/api/hotline/calls", calls, "通话记录", AGENTS, params=CallsQuery, tag=TAG),
    ApiRoute("POST", "/api/hotline/calls/{call_id:int}/disposition", disposition, "话后小结",
             AGENTS, DispositionBody, params=RecordRef, errors=(403, 404, 422), tag=TAG),
    ApiRoute("POST", "/api/hotline/calls/{call_id:int}/case", to_case, "来电立案", AGENTS,
             CaseBody, params=RecordRef, status=201, errors=(403, 404, 422), tag=TAG),
    ApiRoute("POST", "/api/hotline/calls/{call_id:int}/link", link, "关联已有案件", AGENTS,
             LinkBody, params=RecordRef, errors=(403, 404), tag=TAG),
    ApiRoute("GET", "/api/hotline/calls/{call_id:int}/recording", recording, "通话录音（WAV）",
             AGENTS, params=RecordRef, errors=(403, 404), produces=("audio/wav",), tag=TAG),
    ApiRoute("GET", "/api/hotline/callbacks", callbacks, "待回拨", AGENTS, tag=TAG),
    ApiRoute("POST", "/api/hotline/callbacks/{callback_id:int}/done", callback_done, "已回拨",
             AGENTS, params=CallbackRef, errors=(404,), tag=TAG),
]  # fmt: skip


# -- desk phones (telephony/hotline/phone.py) ----------------------------------------------------

SipUser = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{2,32}$")]


class UserRef(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id


class PhoneBody(msgspec.Struct, forbid_unknown_fields=True):
    sip_user: SipUser
    #: the phone's SIP password: only its digest HA1 is kept
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=64)]


class DeviceBody(msgspec.Struct, forbid_unknown_fields=True):
    device: Literal["browser", "phone"]


def _phones(request: Request) -> HotlineService | None:
    """The hotline service if this process runs it (phone accounts are kept in PostgreSQL either
    way; registrations only live where the telephony role runs)."""
    service = hub(request).services.get("hotline")
    return None if service is None else cast(HotlineService, service)


def phone_json(phone: phone_store.Phone, service: HotlineService | None) -> dict[str, Any]:
    contacts = None if service is None else service.phones.bindings_json(phone.sip_user)
    return {
        "user_id": phone.user_id, "username": phone.username, "display_name": phone.display_name,
        "sip_user": phone.sip_user, "realm": phone.realm, "updated_at": phone.updated_at.isoformat(),
        "registered": None if contacts is None else bool(contacts), "contacts": contacts,
    }  # fmt: skip


async def list_phone_accounts(request: Request, p: Principal) -> Response:
    async with connect(hub(request).pool) as conn:
        phones = await phone_store.list_phones(conn)
    service = _phones(request)
    return JSONResponse({"items": [phone_json(ph, service) for ph in phones]})


async def set_phone_account(request: Request, p: Principal) -> Response:
    """Provision (or re-provision) an agent's desk phone: SIP user and password. The password is
    turned into HA1 = MD5(sip_user:realm:password) here and never stored or shown."""
    from telephony.sip.registrar import ha1

    h = hub(request)
    uid = params_of(request, UserRef).user_id
    body = body_of(request, PhoneBody)
    realm = h.settings.hotline_realm
    async with connect(h.pool) as conn:
        user = await user_store.get_user(conn, uid)
        if user is None:
            raise NotFound("用户不存在")
        if user.role not in (Role.AGENT.value, Role.ADMIN.value):
            raise Forbidden("只能为坐席配置话机", code="not_an_agent")
        async with conn.transaction():
            phone = await phone_store.set_phone(conn, uid, body.sip_user,
                                                ha1(body.sip_user, realm, body.password), realm=realm)  # fmt: skip
            await user_store.audit(conn, user_id=p.user.id, action="hotline_phone_set",
                                   target=f"user:{uid}", detail={"sip_user": body.sip_user},
                                   ip=client_ip(request))  # fmt: skip
    service = _phones(request)
    if service is not None:
        service.phones.account_changed(str(uid), phone)
    return JSONResponse(phone_json(phone, service))


async def delete_phone_account(request: Request, p: Principal) -> Response:
    h = hub(request)
    uid = params_of(request, UserRef).user_id
    async with connect(h.pool) as conn, conn.transaction():
        phone = await phone_store.delete_phone(conn, uid)
        if phone is None:
            raise NotFound("该用户没有话机", code="no_phone")
        await user_store.audit(conn, user_id=p.user.id, action="hotline_phone_delete",
                               target=f"user:{uid}", detail={"sip_user": phone.sip_user},
                               ip=client_ip(request))  # fmt: skip
    service = _phones(request)
    if service is not None:
        service.phones.account_changed(str(uid), None)
    return JSONResponse({"user_id": uid, "sip_user": phone.sip_user, "deleted": True})


async def set_device(request: Request, p: Principal) -> Response:
    """Take calls in the browser (WebRTC) or on the desk phone provisioned for the agent."""
    service, agent = hotline(request), me(p)
    device = body_of(request, DeviceBody).device
    if device == "phone" and service.phones.account_of(agent) is None:
        raise NotFound("尚未为您配置话机，请联系管理员", code="no_phone")
    service.phones.set_device(agent, device)
    return await my_state(request, p)


ROUTES += [
    ApiRoute("POST", "/api/hotline/me/device", set_device, "接听设备（浏览器/话机）", AGENTS,
             DeviceBody, errors=(404,), tag=TAG),
    ApiRoute("GET", "/api/hotline/phones", list_phone_accounts, "坐席话机与注册状态", SUPERVISORS,
             tag=TAG),
    ApiRoute("PUT", "/api/hotline/phones/{user_id:int}", set_phone_account, "配置坐席话机",
             SUPERVISORS, PhoneBody, params=UserRef, errors=(403, 404, 409, 422), tag=TAG),
    ApiRoute("DELETE", "/api/hotline/phones/{user_id:int}", delete_phone_account, "删除坐席话机",
             SUPERVISORS, params=UserRef, errors=(404,), tag=TAG),
]  # fmt: skip
