"""The hotline's records (``storage.hotline``) on a real PostgreSQL: a call from arrival to its end
(ending twice keeps the first), the wrap-up, the caller's history with the open cases first, the
figures' input, restart and retention, callbacks, agent states, and the number normalisation in
Python and in SQL agreeing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from storage import hotline, hotline_phones, hotline_queue
from storage.db import create_pool
from storage.errors import InvalidData

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MOBILE = "19900001111"  # no demo case has it (checked below)


@pytest.fixture
async def conn(fresh_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    # Through the hub's pool: its connections carry the jsonb codec (event details are dicts).
    pool = await create_pool(fresh_dsn, max_size=1)
    try:
        async with pool.acquire() as c:
            yield c
    finally:
        await pool.close()


async def _agents(conn: asyncpg.Connection) -> list[int]:
    return [r[0] for r in await conn.fetch("SELECT id FROM users WHERE role = 'agent' ORDER BY id")]


NUMBERS = [
    ("13800138000", "13800138000"),
    (" 138 0013 8000 ", "13800138000"),
    ("138-0013-8000", "13800138000"),
    ("+86 138 0013 8000", "13800138000"),
    ("+8613800138000", "13800138000"),
    ("008613800138000", "13800138000"),
    ("8613800138000", "13800138000"),
    ("sip:13800138000@10.0.0.1", "13800138000"),
    ("sip:+8613800138000@carrier.example;user=phone", "13800138000"),
    ('"张三" <sip:+86-138-0013-8000@10.0.0.1:5060>;tag=abc', "13800138000"),
    ("SIPS:13800138000@host", "13800138000"),
    ("tel:+86-571-8888-8888", "057188888888"),
    ("tel:+86-10-6512-3456;phone-context=+86", "01065123456"),
    ("0571-88888888", "057188888888"),
    ("(0571) 8888 8888", "057188888888"),
    ("+86 (0)571 8888 8888", "057188888888"),
    ("88886666", "88886666"),  # a local number
    ("86123456", "86123456"),  # a local number that starts with 86 stays
    ("12319", "12319"),
    ("+852 2345 6789", "+85223456789"),
    ("00852 2345 6789", "+85223456789"),
    ("anonymous", ""),
    ("sip:anonymous@anonymous.invalid", ""),
    ("", ""),
    ("138*0013", ""),
]


@pytest.mark.parametrize(("raw", "norm"), NUMBERS)
def test_normalize_number(raw: str, norm: str) -> None:
    assert hotline.normalize_number(raw) == norm


async def test_the_sql_normalisation_is_the_python_one(conn: asyncpg.Connection) -> None:
    raws = [raw for raw, _ in NUMBERS]
    got = await conn.fetch(
        "SELECT r, hotline_norm_number(r) AS n FROM unnest($1::text[]) AS r", raws
    )
    assert {r["r"]: r["n"] for r in got} == {raw: hotline.normalize_number(raw) for raw in raws}


async def test_dispositions_are_seeded_in_order(conn: asyncpg.Connection) -> None:
    found = await hotline.list_dispositions(conn)
    codes = [d.code for d in found]
    assert codes[:2] == ["report", "consultation"] and len(codes) == 8
    labels = {d.code: d.label for d in found}
    assert labels["report"] == "投诉举报" and labels["consultation"] == "咨询"
    assert {"求助", "建议", "转办", "挂断无声"} <= set(labels.values())
    assert all(c.isascii() for c in codes)
    assert [d.code for d in found if d.needs_case] == ["report", "help"]
    await conn.execute("UPDATE hotline_dispositions SET active = false WHERE code = 'help'")
    assert "help" not in [d.code for d in await hotline.list_dispositions(conn)]
    assert "help" in [d.code for d in await hotline.list_dispositions(conn, active_only=False)]


async def test_a_call_from_arrival_to_its_end(conn: asyncpg.Connection) -> None:
    agent, other = (await _agents(conn))[:2]
    call = await hotline.create_call(
        conn,
        caller="sip:+8613800138000@10.0.0.1",
        called="12319",
        trunk="carrier-a",
        sip_call_id="abc@10.0.0.1",
        arrived_at=T0,
    )
    assert call.caller == "sip:+8613800138000@10.0.0.1" and call.caller_norm == "13800138000"
    assert call.outcome is None and call.ended_at is None and call.agent_id is None
    assert call.arrived_at == T0 and call.wait is None and not call.consultation
    queued = await hotline.mark_queued(conn, call.id, T0 + timedelta(seconds=8))
    assert queued is not None and queued.queued_at == T0 + timedelta(seconds=8)
    # A re-queue (ring timeout) keeps the first queue entry.
    again = await hotline.mark_queued(conn, call.id, T0 + timedelta(seconds=40))
    assert again is not None and again.queued_at == T0 + timedelta(seconds=8)
    assert [c.id for c in await hotline.list_calls(conn, outcome="running")] == [call.id]

    answered = await hotline.mark_answered(conn, call.id, agent, T0 + timedelta(seconds=20))
    assert answered is not None and answered.agent_id == agent and answered.agent_name
    assert answered.wait == timedelta(seconds=12)
    # A transfer answers again: the first answer time stays, the call is the new agent's.
    moved = await hotline.mark_answered(conn, call.id, other, T0 + timedelta(seconds=90))
    assert moved is not None and moved.agent_id == other
    assert moved.answered_at == T0 + timedelta(seconds=20)

    for kind, who, detail in [
        ("queued", None, {}),
        ("offered", agent, {}),
        ("answered", agent, {}),
        ("transferred", agent, {"to_agent": other, "mode": "blind"}),
    ]:
        await hotline.add_call_event(conn, call.id, kind, agent_id=who, detail=detail)
    events = await hotline.call_events(conn, call.id)
    assert [e.kind for e in events] == ["queued", "offered", "answered", "transferred"]
    assert events[3].detail == {"to_agent": other, "mode": "blind"}
    assert events[1].agent_id == agent

    ended = await hotline.finish_call(conn, call.id, "answered", T0 + timedelta(seconds=200))
    assert ended is not None and ended.outcome == "answered"
    assert ended.ended_at == T0 + timedelta(seconds=200)
    assert ended.talk == timedelta(seconds=180) and ended.wait == timedelta(seconds=12)
    # Ending twice keeps the first end; a late answer does not move the call either.
    twice = await hotline.finish_call(conn, call.id, "failed", T0 + timedelta(seconds=300))
    assert twice == ended
    late = await hotline.mark_answered(conn, call.id, agent, T0 + timedelta(seconds=400))
    assert late == ended
    assert await hotline.list_calls(conn, outcome="running") == []

    # Wrap-up.
    case_id = await conn.fetchval("SELECT min(id) FROM cases")
    done = await hotline.set_disposition(conn, call.id, "report", note="路灯不亮")
    assert done is not None and done.disposition == "report"
    assert done.disposition_label == "投诉举报" and done.note == "路灯不亮"
    linked = await hotline.link_case(conn, call.id, case_id)
    assert linked is not None and linked.case_id == case_id and linked.case_no
    assert linked.case_state and linked.note == "路灯不亮"
    consult = await hotline.set_disposition(conn, call.id, "consultation", consultation=True)
    assert consult is not None and consult.consultation and consult.note == "路灯不亮"
    rec = await hotline.set_recording(conn, call.id, "2026/03/02/1.wav")
    assert rec is not None and rec.recording == "2026/03/02/1.wav"
    assert await hotline.get_call(conn, call.id) == rec
    assert await hotline.get_call(conn, 999_999) is None
    assert await hotline.finish_call(conn, 999_999, "failed") is None
    assert await hotline.link_case(conn, 999_999, case_id) is None


async def test_refusals(conn: asyncpg.Connection) -> None:
    call = await hotline.create_call(conn, caller="13800138000")
    with pytest.raises(InvalidData):  # nobody answered it
        await hotline.finish_call(conn, call.id, "answered")
    with pytest.raises(ValueError):
        await hotline.finish_call(conn, call.id, "hung_up")
    with pytest.raises(ValueError):
        await hotline.add_call_event(conn, call.id, "exploded")
    with pytest.raises(InvalidData):
        await hotline.set_disposition(conn, call.id, "no_such_code")
    with pytest.raises(InvalidData):
        await hotline.link_case(conn, call.id, 999_999_999)
    for bad in ("/etc/passwd", "../x.wav", "2026/../../x.wav"):
        with pytest.raises(InvalidData):
            await hotline.set_recording(conn, call.id, bad)
    with pytest.raises(InvalidData):  # an unknown agent
        await hotline.mark_answered(conn, call.id, 999_999)
    with pytest.raises(InvalidData):
        await hotline_queue.create_callback(conn, "anonymous")
    stored = await hotline.get_call(conn, call.id)
    assert stored is not None and stored.outcome is None and stored.recording is None


async def test_list_calls_filters_and_pages(conn: asyncpg.Connection) -> None:
    a, b = (await _agents(conn))[:2]
    ids: list[int] = []
    for i in range(7):
        c = await hotline.create_call(
            conn, caller=f"+86 139 0000 000{i % 3}", arrived_at=T0 + timedelta(minutes=i)
        )
        ids.append(c.id)
        if i % 2 == 0:
            await hotline.mark_answered(conn, c.id, a if i < 4 else b, c.arrived_at)
            await hotline.finish_call(conn, c.id, "answered", c.arrived_at + timedelta(minutes=1))
        elif i != 5:
            await hotline.finish_call(conn, c.id, "abandoned", c.arrived_at)
    newest_first = ids[::-1]
    assert [c.id for c in await hotline.list_calls(conn)] == newest_first
    assert [c.id for c in await hotline.list_calls(conn, agent_id=a)] == [ids[2], ids[0]]
    assert [c.id for c in await hotline.list_calls(conn, agent_id=b)] == [ids[6], ids[4]]
    assert [c.id for c in await hotline.list_calls(conn, outcome="abandoned")] == [ids[3], ids[1]]
    assert [c.id for c in await hotline.list_calls(conn, outcome="running")] == [ids[5]]
    # Any form of the number finds the same calls.
    by_caller = await hotline.list_calls(conn, caller="sip:13900000001@trunk")
    assert [c.id for c in by_caller] == [ids[4], ids[1]]
    window = await hotline.list_calls(
        conn, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5)
    )
    assert [c.id for c in window] == [ids[4], ids[3], ids[2]]
    page1 = await hotline.list_calls(conn, limit=3)
    page2 = await hotline.list_calls(conn, limit=3, before=page1[-1].id)
    page3 = await hotline.list_calls(conn, limit=3, before=page2[-1].id)
    assert [c.id for c in page1 + page2 + page3] == newest_first


async def test_caller_history_shows_open_cases_first(conn: asyncpg.Connection) -> None:
    assert not await conn.fetchval(
        "SELECT count(*) FROM cases WHERE hotline_norm_number(contact_phone) = $1", MOBILE
    )
    open_ids = [
        r[0]
        for r in await conn.fetch(
            "SELECT id FROM cases WHERE state IN ('dispatched', 'handling', 'registered')"
            " ORDER BY id LIMIT 3"
        )
    ]
    closed_id = await conn.fetchval("SELECT min(id) FROM cases WHERE state = 'closed'")
    assert len(open_ids) == 3 and closed_id is not None
    reported, linked_only, unrelated = open_ids
    # The citizen gave the number in another form when the case was reported.
    await conn.execute(
        "UPDATE cases SET contact_phone = '199-0000-1111', reported_at = $2 WHERE id = $1",
        reported,
        T0 - timedelta(days=3),
    )
    await conn.execute(
        "UPDATE cases SET contact_phone = '+86 19900001111', reported_at = $2 WHERE id = $1",
        closed_id,
        T0 - timedelta(days=1),
    )
    await conn.execute(
        "UPDATE cases SET reported_at = $2 WHERE id = $1", linked_only, T0 - timedelta(days=2)
    )
    first = await hotline.create_call(conn, caller="+86" + MOBILE, arrived_at=T0)
    await hotline.link_case(conn, first.id, closed_id)
    second = await hotline.create_call(
        conn, caller=f"sip:{MOBILE}@trunk", arrived_at=T0 + timedelta(hours=1)
    )
    await hotline.link_case(conn, second.id, linked_only)
    await hotline.create_call(conn, caller="13800138000", arrived_at=T0 + timedelta(hours=2))
    now = await hotline.create_call(conn, caller=MOBILE, arrived_at=T0 + timedelta(hours=3))

    history = await hotline.caller_history(conn, f"tel:+86-{MOBILE}", exclude_call=now.id)
    assert history.number == MOBILE
    # Open cases: the one reported with this number and the one an earlier call was linked to,
    # newest first; neither the closed case nor someone else's.
    assert [c.id for c in history.open_cases] == [linked_only, reported]
    assert unrelated not in [c.id for c in history.open_cases]
    assert all(c.case_no and c.state and c.category for c in history.open_cases)
    # Then the calls, newest first (the one in progress left out), each with its case.
    assert [c.id for c in history.calls] == [second.id, first.id]
    assert history.calls[0].case_id == linked_only and history.calls[0].case_state in {
        "dispatched",
        "handling",
        "registered",
    }
    assert history.calls[1].case_id == closed_id and history.calls[1].case_state == "closed"
    assert history.calls[1].case_no
    everything = await hotline.caller_history(conn, MOBILE)
    assert [c.id for c in everything.calls] == [now.id, second.id, first.id]
    limited = await hotline.caller_history(conn, MOBILE, limit=1)
    assert len(limited.calls) == 1 and len(limited.open_cases) == 1
    # Closing the reported case takes it off the list.
    await conn.execute("UPDATE cases SET state = 'closed' WHERE id = $1", reported)
    assert [c.id for c in (await hotline.caller_history(conn, MOBILE)).open_cases] == [linked_only]
    assert await hotline.caller_history(conn, "anonymous") == hotline.CallerHistory("", (), ())


async def test_day_outcomes_restart_and_retention(conn: asyncpg.Connection) -> None:
    agent = (await _agents(conn))[0]
    yesterday = await hotline.create_call(conn, caller="1", arrived_at=T0 - timedelta(days=1))
    await hotline.finish_call(conn, yesterday.id, "abandoned", yesterday.arrived_at)
    await hotline.set_recording(conn, yesterday.id, "2026/03/01/old.wav")
    a = await hotline.create_call(conn, caller="2", arrived_at=T0)
    await hotline.mark_queued(conn, a.id, T0 + timedelta(seconds=5))
    await hotline.mark_answered(conn, a.id, agent, T0 + timedelta(seconds=15))
    await hotline.finish_call(conn, a.id, "answered", T0 + timedelta(seconds=95))
    await hotline.set_recording(conn, a.id, "2026/03/02/a.wav")
    b = await hotline.create_call(conn, caller="3", arrived_at=T0 + timedelta(hours=1))
    await hotline.mark_queued(conn, b.id, T0 + timedelta(hours=1))

    day = await hotline.day_outcomes(conn, T0 - timedelta(hours=9), T0 + timedelta(hours=15))
    assert [(t.id, t.outcome) for t in day] == [(a.id, "answered"), (b.id, None)]
    assert day[0].answered_at == T0 + timedelta(seconds=15) and day[0].agent_id == agent
    assert day[0].queued_at == T0 + timedelta(seconds=5)

    # A hub restart: the running call ends failed, the others stay as they were.
    assert await hotline.fail_running_calls(conn) == 1
    assert await hotline.fail_running_calls(conn) == 0
    failed = await hotline.get_call(conn, b.id)
    assert failed is not None and failed.outcome == "failed" and failed.ended_at is not None
    kept = await hotline.get_call(conn, a.id)
    assert kept is not None and kept.outcome == "answered"

    # Retention: recordings of calls before the cutoff, oldest first, each returned once.
    assert await hotline.delete_recordings_before(conn, T0) == ["2026/03/01/old.wav"]
    assert await hotline.delete_recordings_before(conn, T0) == []
    gone = await hotline.get_call(conn, yesterday.id)
    assert gone is not None and gone.recording is None and gone.outcome == "abandoned"
    assert await hotline.delete_recordings_before(conn, T0 + timedelta(days=1), limit=5) == [
        "2026/03/02/a.wav"
    ]


async def test_callbacks(conn: asyncpg.Connection) -> None:
    agent = (await _agents(conn))[0]
    call = await hotline.create_call(conn, caller="sip:+8613800138000@trunk")
    await hotline.finish_call(conn, call.id, "callback")
    first = await hotline_queue.create_callback(
        conn, call.caller, call_id=call.id, requested_at=T0, note="按1回拨"
    )
    assert first.number == "13800138000" and first.done_at is None and first.call_id == call.id
    second = await hotline_queue.create_callback(
        conn, "0571-88888888", requested_at=T0 - timedelta(1)
    )
    assert [c.id for c in await hotline_queue.open_callbacks(conn)] == [second.id, first.id]
    done = await hotline_queue.mark_callback_done(conn, first.id, done_by=agent, note="已回复")
    assert done is not None and done.done_by == agent and done.done_at is not None
    assert done.note == "已回复"
    assert await hotline_queue.mark_callback_done(conn, first.id, done_by=agent) is None
    assert [c.id for c in await hotline_queue.open_callbacks(conn)] == [second.id]


async def test_agent_state_log(conn: asyncpg.Connection) -> None:
    a, b = (await _agents(conn))[:2]
    await hotline_queue.log_agent_state(conn, a, "ready", at=T0 - timedelta(hours=1))
    await hotline_queue.log_agent_state(
        conn, a, "not_ready", "lunch", at=T0 - timedelta(minutes=30)
    )
    await hotline_queue.log_agent_state(conn, b, "ready", at=T0 - timedelta(minutes=10))
    talking = await hotline_queue.log_agent_state(conn, a, "talking", at=T0 + timedelta(minutes=5))
    assert talking.state == "talking" and talking.agent_id == a and talking.reason == ""
    await hotline_queue.log_agent_state(conn, b, "signed_out", at=T0 + timedelta(hours=2))
    got = await hotline_queue.agent_states(conn, since=T0, until=T0 + timedelta(hours=1))
    # The state each agent starts the period in, then the changes within it.
    assert [(s.agent_id, s.state, s.reason) for s in got] == [
        (a, "not_ready", "lunch"),
        (b, "ready", ""),
        (a, "talking", ""),
    ]
    only_a = await hotline_queue.agent_states(
        conn, since=T0, until=T0 + timedelta(hours=1), agent_id=a
    )
    assert [s.state for s in only_a] == ["not_ready", "talking"]
    with pytest.raises(InvalidData):
        await hotline_queue.log_agent_state(conn, a, "Not Ready!")


async def test_the_open_cases_lookup_uses_the_contact_index(conn: asyncpg.Connection) -> None:
    # A hotline with years of cases must not normalise every case's phone for each call.
    plan = await conn.fetch("EXPLAIN " + hotline.CALLER_OPEN_CASES, MOBILE, 20)
    text = "\n".join(r[0] for r in plan)
    assert "cases_contact_open_idx" in text and "hotline_calls_caller_idx" in text, text


async def test_every_event_kind_is_accepted_by_the_table(conn: asyncpg.Connection) -> None:
    """The Python list and the table's CHECK agree: every kind the service may write is stored
    (a withdrawn offer, ``offer_cancelled``, was once refused by the CHECK)."""
    call = await hotline.create_call(conn, caller="13800138000", arrived_at=T0)
    for kind in sorted(hotline.EVENT_KINDS):
        await hotline.add_call_event(conn, call.id, kind, detail={"k": kind})
    kinds = [e.kind for e in await hotline.call_events(conn, call.id)]
    assert sorted(kinds) == sorted(hotline.EVENT_KINDS) and "offer_cancelled" in kinds


async def test_phone_bindings_are_kept_replaced_lapsed_and_dropped_with_the_account(
    conn: asyncpg.Connection,
) -> None:
    a, b = (await _agents(conn))[:2]
    await hotline_phones.set_phone(conn, a, "8001", "0" * 32)
    await hotline_phones.set_phone(conn, b, "8002", "1" * 32)
    now = T0.timestamp()
    desk = hotline_phones.StoredBinding(
        "sip:8001@10.0.0.5:5060", now + 600, "c1", 7, "10.0.0.5", 5060
    )
    soft = hotline_phones.StoredBinding("sip:8001@10.0.0.9:5062", now + 30, "c2", 2, q="0.5")
    await hotline_phones.save_bindings(conn, "8001", [desk, soft])
    other = hotline_phones.StoredBinding("sip:8002@h", now + 60, "c", 1)
    await hotline_phones.save_bindings(conn, "8002", [other])
    await hotline_phones.save_bindings(conn, "nobody", [desk])  # no account: nothing stored
    assert await hotline_phones.load_bindings(conn, now) == {
        "8001": [desk, soft],
        "8002": [other],
    }
    # 40 s later the softphone's binding has lapsed: not loaded, and deleted
    assert await hotline_phones.load_bindings(conn, now + 40) == {
        "8001": [desk],
        "8002": [other],
    }
    assert await conn.fetchval("SELECT count(*) FROM hotline_phone_bindings") == 2
    await hotline_phones.save_bindings(conn, "8001", [])  # unregistered
    await hotline_phones.set_phone(conn, b, "8002", "2" * 32)  # a new password: register again
    assert await hotline_phones.load_bindings(conn, now) == {}
    await hotline_phones.save_bindings(conn, "8002", [other])
    await hotline_phones.delete_phone(conn, b)
    assert await conn.fetchval("SELECT count(*) FROM hotline_phone_bindings") == 0
