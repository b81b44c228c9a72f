"""The 12319 hotline's records in PostgreSQL: calls, their events, the caller's history and the
disposition codes (tables in ``migrations/0008_hotline.sql``). The queue's side (callbacks, agent
states) is in ``storage.hotline_queue``, the desk phones and their registrations in
``storage.hotline_phones``.

Theory of operation: every function takes a connection (the caller picks the transaction) and
returns frozen dataclasses; nothing here imports the hub.

A call is written when it arrives (``create_call``), then stamped as it moves: ``mark_queued``,
``mark_answered`` (a transfer answers again: the first answer time stays, the agent becomes the
new one), ``finish_call`` with its outcome. Ending is idempotent: the first ``finish_call`` wins
and a second one returns the call as the first left it, so a BYE racing a CANCEL or a hub-side
timeout cannot rewrite how a call ended. A hub that restarts with calls still running ends them
``failed`` (``fail_running_calls``). What happened on the way (offered, ring timeout, held,
transferred, …) is appended to ``hotline_call_events``.

Caller numbers arrive in every form a trunk or a PBX sends ("+86 138-0013-8000",
"sip:13800138000@carrier;user=phone", "tel:+86-571-8888-8888"). ``normalize_number`` turns them
into one national form; a call stores both the number as given (``caller``) and that form
(``caller_norm``), and the caller's history is looked up by the normalised one. The migration's
SQL function ``hotline_norm_number`` is the same rule for the cases' ``contact_phone`` (typed by
people), so ``caller_history`` finds the open cases a repeat caller is calling about by an index,
and lists them first.

Recordings are paths relative to the recordings directory; ``delete_recordings_before`` forgets
the old ones and returns their paths for the caller to delete (retention).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from storage.db import map_pg_errors

OUTCOMES: Final = frozenset(
    {"answered", "abandoned", "callback", "overflow", "out_of_hours", "failed"}
)
EVENT_KINDS: Final = frozenset(
    {"queued", "offered", "ring_timeout", "declined", "answered", "held", "unheld",
     "transferred", "consult", "monitored", "whisper", "barge", "callback_requested", "overflow",
     "abandoned", "offer_cancelled", "ended"}
)  # fmt: skip
#: Case states that are no longer open (``hub.core.workflow.TERMINAL_STATES``; the migration's
#: ``cases_contact_open_idx`` has the same list in its predicate).
_CLOSED_CASE_STATES: Final = "('closed', 'rejected', 'voided')"

# -- numbers ---------------------------------------------------------------------------------

_NAME_ADDR = re.compile(r"<([^>]*)>")
_URI_SCHEME = re.compile(r"^(?:sips?|tel):", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s()./-]")
_DIGITS = re.compile(r"^\+?[0-9]+$")
_CHINA = re.compile(r"^(?:\+|00)86")
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_BARE_86_MOBILE = re.compile(r"^861[3-9][0-9]{9}$")


def normalize_number(raw: str) -> str:
    """A caller number in one national form, for matching: separators and any SIP or tel URI
    around it removed, China's country code (+86, 0086, or 86 before a mobile number) dropped and
    a landline given its trunk 0 back (+86 571 8888 8888 → 057188888888); another country's
    number in the international form (+…); '' when there is no number (anonymous). The same rule
    as the migration's ``hotline_norm_number``."""
    s = raw.strip()
    m = _NAME_ADDR.search(s)
    if m:
        s = m.group(1)
    if _URI_SCHEME.match(s):
        s = s.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    s = _SEPARATORS.sub("", s)
    if not _DIGITS.match(s):
        return ""
    if _CHINA.match(s):
        s = _CHINA.sub("", s, count=1)
        if not _MOBILE.match(s) and not s.startswith("0"):
            s = "0" + s
    elif _BARE_86_MOBILE.match(s):
        s = s[2:]
    elif s.startswith("00"):
        s = "+" + s[2:]
    return s


# -- dispositions ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Disposition:
    code: str
    label: str
    needs_case: bool
    active: bool
    sort: int


async def list_dispositions(
    conn: asyncpg.Connection, *, active_only: bool = True
) -> list[Disposition]:
    """The codes an agent chooses from at wrap-up, in display order."""
    where = "WHERE active" if active_only else ""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT code, label, needs_case, active, sort FROM hotline_dispositions {where}"
            " ORDER BY sort, code"
        )
    return [
        Disposition(r["code"], r["label"], r["needs_case"], r["active"], r["sort"]) for r in rows
    ]


# -- calls -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    id: int
    sip_call_id: str
    caller: str  # as the trunk gave it
    caller_norm: str  # normalize_number(caller)
    called: str
    trunk: str
    arrived_at: datetime
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    agent_id: int | None
    agent_name: str
    outcome: str | None  # None while the call runs
    disposition: str | None
    disposition_label: str | None
    consultation: bool
    case_id: int | None
    case_no: str | None
    case_state: str | None
    recording: str | None  # relative to the recordings directory
    note: str

    @property
    def wait(self) -> timedelta | None:
        """Time in the queue until answered, or until the call ended unanswered; None while it
        waits or when it never queued."""
        if self.queued_at is None:
            return None
        end = self.answered_at or self.ended_at
        return None if end is None else end - self.queued_at

    @property
    def talk(self) -> timedelta | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at


_CALL_COLS = (
    "h.id, h.sip_call_id, h.caller, h.caller_norm, h.called, h.trunk, h.arrived_at, h.queued_at,"
    " h.answered_at, h.ended_at, h.agent_id, coalesce(u.display_name, '') AS agent_name,"
    " h.outcome, h.disposition, d.label AS disposition_label, h.consultation, h.case_id,"
    " c.case_no, c.state AS case_state, h.recording, h.note"
)
_CALL_JOINS = (
    "LEFT JOIN users u ON u.id = h.agent_id"
    " LEFT JOIN hotline_dispositions d ON d.code = h.disposition"
    " LEFT JOIN cases c ON c.id = h.case_id"
)
_CALL_FROM = f"FROM hotline_calls h {_CALL_JOINS}"


def _call(rec: Mapping[str, Any]) -> Call:
    return Call(**{f.name: rec[f.name] for f in dataclasses.fields(Call)})


async def _update_call(
    conn: asyncpg.Connection, call_id: int, sets: str, *args: Any
) -> Call | None:
    """Run ``UPDATE hotline_calls SET {sets} WHERE id = $1`` (more arguments from $2), then read
    the call back with its joins, all in one statement. None when there is no such call."""
    with map_pg_errors():
        rec = await conn.fetchrow(
            f"WITH h AS (UPDATE hotline_calls SET {sets} WHERE id = $1 RETURNING *)"
            f" SELECT {_CALL_COLS} FROM h {_CALL_JOINS}",
            call_id,
            *args,
        )
    return None if rec is None else _call(rec)


async def create_call(
    conn: asyncpg.Connection,
    *,
    caller: str,
    called: str = "",
    trunk: str = "",
    sip_call_id: str = "",
    arrived_at: datetime | None = None,
) -> Call:
    """A call that just arrived (running: no outcome yet)."""
    with map_pg_errors():
        cid = await conn.fetchval(
            "INSERT INTO hotline_calls (sip_call_id, caller, caller_norm, called, trunk, arrived_at)"
            " VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now())) RETURNING id",
            sip_call_id,
            caller,
            normalize_number(caller),
            called,
            trunk,
            arrived_at,
        )
    call = await get_call(conn, int(cid))
    assert call is not None
    return call


async def get_call(conn: asyncpg.Connection, call_id: int) -> Call | None:
    with map_pg_errors():
        rec = await conn.fetchrow(f"SELECT {_CALL_COLS} {_CALL_FROM} WHERE h.id = $1", call_id)
    return None if rec is None else _call(rec)


async def mark_queued(
    conn: asyncpg.Connection, call_id: int, at: datetime | None = None
) -> Call | None:
    """The call entered the queue (the first time counts: a re-queue after a ring timeout keeps
    it)."""
    return await _update_call(
        conn, call_id, "queued_at = coalesce(queued_at, $2::timestamptz, now())", at
    )


async def mark_answered(
    conn: asyncpg.Connection, call_id: int, agent_id: int, at: datetime | None = None
) -> Call | None:
    """An agent answered. Answered again (a transfer): the first answer time stays and the call
    is the new agent's. A call that has ended is left as it is."""
    with map_pg_errors():
        await conn.execute(
            "UPDATE hotline_calls SET answered_at = coalesce(answered_at, $3::timestamptz, now()),"
            " agent_id = $2 WHERE id = $1 AND ended_at IS NULL",
            call_id,
            agent_id,
            at,
        )
    return await get_call(conn, call_id)


async def finish_call(
    conn: asyncpg.Connection, call_id: int, outcome: str, ended_at: datetime | None = None
) -> Call | None:
    """End the call with ``outcome`` (one of ``OUTCOMES``). Idempotent: a call already ended keeps
    its first end and outcome, and is returned as it is. None when there is no such call.
    ``InvalidData`` for ``answered`` on a call nobody answered."""
    if outcome not in OUTCOMES:
        raise ValueError(f"not a call outcome: {outcome!r}")
    with map_pg_errors():
        await conn.execute(
            "UPDATE hotline_calls SET outcome = $2, ended_at = coalesce($3::timestamptz, now())"
            " WHERE id = $1 AND ended_at IS NULL",
            call_id,
            outcome,
            ended_at,
        )
    return await get_call(conn, call_id)


async def fail_running_calls(conn: asyncpg.Connection) -> int:
    """At start-up: calls left running by a hub that stopped end ``failed``. Only for a
    single-process installation (another process's running calls would be ended too)."""
    with map_pg_errors():
        status = await conn.execute(
            "UPDATE hotline_calls SET outcome = 'failed', ended_at = now() WHERE ended_at IS NULL"
        )
    return int(status.rsplit(" ", 1)[1])


async def set_disposition(
    conn: asyncpg.Connection,
    call_id: int,
    disposition: str | None,
    *,
    consultation: bool | None = None,
    note: str | None = None,
) -> Call | None:
    """The wrap-up: the disposition code (``InvalidData`` for an unknown one; None clears it), and
    when given, the consultation flag (咨询: no case needed) and the agent's note."""
    return await _update_call(
        conn,
        call_id,
        "disposition = $2, consultation = coalesce($3, consultation), note = coalesce($4, note)",
        disposition,
        consultation,
        note,
    )


async def link_case(conn: asyncpg.Connection, call_id: int, case_id: int | None) -> Call | None:
    """The case the call became or is about (``InvalidData`` for a case that does not exist;
    None unlinks)."""
    return await _update_call(conn, call_id, "case_id = $2", case_id)


async def set_recording(conn: asyncpg.Connection, call_id: int, path: str | None) -> Call | None:
    """The call's recording, relative to the recordings directory (``InvalidData`` for an
    absolute path or one that climbs out with ``..``)."""
    return await _update_call(conn, call_id, "recording = $2", path)


async def list_calls(
    conn: asyncpg.Connection,
    *,
    agent_id: int | None = None,
    caller: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[Call]:
    """Calls newest first, filtered: by agent, by caller (any form of the number), by outcome
    (``running`` for calls not ended), arrived in [since, until); at most ``limit`` with ids
    below ``before`` (keyset: pass the last id of a page for the next)."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if agent_id is not None:
        where.append(f"h.agent_id = {arg(agent_id)}")
    if caller is not None:
        where.append(f"h.caller_norm = {arg(normalize_number(caller))}")
    if outcome == "running":
        where.append("h.ended_at IS NULL")
    elif outcome is not None:
        where.append(f"h.outcome = {arg(outcome)}")
    if since is not None:
        where.append(f"h.arrived_at >= {arg(since)}")
    if until is not None:
        where.append(f"h.arrived_at < {arg(until)}")
    if before is not None:
        where.append(f"h.id < {arg(before)}")
    cond = ("WHERE " + " AND ".join(where)) if where else ""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_CALL_COLS} {_CALL_FROM} {cond} ORDER BY h.id DESC LIMIT {arg(limit)}", *args
        )
    return [_call(r) for r in rows]


# -- call events -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CallEvent:
    id: int
    call_id: int
    at: datetime
    kind: str
    agent_id: int | None
    detail: dict[str, Any]


_EVENT_COLS = "id, call_id, at, kind, agent_id, detail"


def _event(rec: Mapping[str, Any]) -> CallEvent:
    return CallEvent(
        rec["id"], rec["call_id"], rec["at"], rec["kind"], rec["agent_id"], dict(rec["detail"])
    )


async def add_call_event(
    conn: asyncpg.Connection,
    call_id: int,
    kind: str,
    *,
    agent_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> CallEvent:
    """Append what happened to a call (``kind`` one of ``EVENT_KINDS``; ``detail`` JSON, e.g. the
    transfer's target or the decline's SIP status)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"not a call event kind: {kind!r}")
    with map_pg_errors():
        rec = await conn.fetchrow(
            "INSERT INTO hotline_call_events (call_id, at, kind, agent_id, detail)"
            " VALUES ($1, coalesce($2::timestamptz, now()), $3, $4, $5)"
            f" RETURNING {_EVENT_COLS}",
            call_id,
            at,
            kind,
            agent_id,
            dict(detail or {}),
        )
    return _event(rec)


async def call_events(conn: asyncpg.Connection, call_id: int) -> list[CallEvent]:
    """A call's events in the order they were written."""
    with map_pg_errors():
        rows = await conn.fetch(
            f"SELECT {_EVENT_COLS} FROM hotline_call_events WHERE call_id = $1 ORDER BY id",
            call_id,
        )
    return [_event(r) for r in rows]


# -- the caller's history --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CaseRef:
    """A case as the agent's console lists it next to a call."""

    id: int
    case_no: str
    state: str
    category: str
    address: str
    description: str  # the first 200 characters
    reported_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class CallerHistory:
    """What the console shows while a caller talks: the open cases the caller may be calling
    about (reported with this number, or linked to the caller's earlier calls), newest first, and
    then the caller's calls, newest first, each with its linked case."""

    number: str  # normalised
    open_cases: tuple[CaseRef, ...]
    calls: tuple[Call, ...]


#: The open cases of a (normalised) number: reported with it, or linked to its calls; $2 = limit.
#: Two indexed lookups joined by UNION (an OR would make PostgreSQL normalise every case's phone).
CALLER_OPEN_CASES: Final = (
    "WITH ids AS ("
    "  SELECT id FROM cases WHERE contact_phone <> ''"
    f"  AND state NOT IN {_CLOSED_CASE_STATES} AND hotline_norm_number(contact_phone) = $1"
    "  UNION SELECT case_id FROM hotline_calls WHERE caller_norm = $1 AND case_id IS NOT NULL)"
    " SELECT c.id, c.case_no, c.state, cat.minor_name AS category, c.address,"
    " left(c.description, 200) AS description, c.reported_at"
    " FROM ids JOIN cases c ON c.id = ids.id JOIN categories cat ON cat.id = c.category_id"
    f" WHERE c.state NOT IN {_CLOSED_CASE_STATES}"
    " ORDER BY c.reported_at DESC, c.id DESC LIMIT $2"
)


async def caller_history(
    conn: asyncpg.Connection,
    number: str,
    *,
    limit: int = 20,
    exclude_call: int | None = None,
) -> CallerHistory:
    """The caller's open cases and last ``limit`` calls (``exclude_call``: the one in progress).
    A number that normalises to nothing (anonymous) has no history."""
    norm = normalize_number(number)
    if not norm:
        return CallerHistory(norm, (), ())
    with map_pg_errors():
        cases = await conn.fetch(CALLER_OPEN_CASES, norm, limit)
        calls = await conn.fetch(
            f"SELECT {_CALL_COLS} {_CALL_FROM}"
            " WHERE h.caller_norm = $1 AND h.id IS DISTINCT FROM $3::bigint"
            " ORDER BY h.arrived_at DESC, h.id DESC LIMIT $2",
            norm,
            limit,
            exclude_call,
        )
    return CallerHistory(
        norm,
        tuple(CaseRef(**{f.name: r[f.name] for f in dataclasses.fields(CaseRef)}) for r in cases),
        tuple(_call(r) for r in calls),
    )


# -- statistics and retention ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CallTimes:
    """One call's times and outcome, what the day's figures are computed from."""

    id: int
    arrived_at: datetime
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    agent_id: int | None


async def day_outcomes(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[CallTimes]:
    """Every call that arrived in [start, end), running ones included (outcome None), oldest
    first; the caller picks the day's bounds in the city's time zone."""
    with map_pg_errors():
        rows = await conn.fetch(
            "SELECT id, arrived_at, queued_at, answered_at, ended_at, outcome, agent_id"
            " FROM hotline_calls WHERE arrived_at >= $1 AND arrived_at < $2"
            " ORDER BY arrived_at, id",
            start,
            end,
        )
    return [CallTimes(**{f.name: r[f.name] for f in dataclasses.fields(CallTimes)}) for r in rows]


async def delete_recordings_before(
    conn: asyncpg.Connection, cutoff: datetime, *, limit: int = 1000
) -> list[str]:
    """Retention: forget the recordings of calls that arrived before ``cutoff`` (at most ``limit``
    at a time, oldest first) and return their paths, relative to the recordings directory, for
    the caller to delete. Calls whose recording is forgotten keep their record."""
    with map_pg_errors():
        rows = await conn.fetch(
            "WITH old AS (SELECT id, recording FROM hotline_calls"
            "  WHERE recording IS NOT NULL AND arrived_at < $1 ORDER BY arrived_at LIMIT $2"
            "  FOR UPDATE)"
            " UPDATE hotline_calls h SET recording = NULL FROM old WHERE h.id = old.id"
            " RETURNING old.recording",
            cutoff,
            limit,
        )
    return [r[0] for r in rows]
