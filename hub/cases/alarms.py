"""The alarm scheduler: fires deadline warnings (黄灯), overdue alarms (红灯) and the system's
escalation (督办) at their exact moments, once.

Every hub process runs one; only the one holding the PostgreSQL advisory lock ``ALARM_LOCK_KEY`` on
its own connection acts (another takes over within a second of it going away, as the relay does).
The leader reads the running clocks, fires what is due (``hub.core.deadlines.due``; missed ones
after a restart too), then sleeps until the next moment any clock reaches a share, or until a case
event commits anywhere (the relay's ``cityhub_events`` notification: a deadline may have changed),
or ``poll`` seconds. The database is the final guard: ``storage.alarms.fire`` writes the alarm row
(unique per case, share and deadline) and the case event in one transaction, so two leaders (a
split brain) or a replayed pass still write one alarm. The relay publishes the event to the case's
channels like any other, so the boards receive it live and a reconnecting client gets it on resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from hub.cases.facts import case_facts
from hub.cases.service import CaseService
from hub.core import deadlines as dl
from hub.core import workflow as wf
from storage import alarms as store
from storage.cases import CaseRow
from storage.db import OUTAGE_ERRORS

log = logging.getLogger("cityhub.alarms")

ALARM_LOCK_KEY = 0x63697479616C6D  # "cityalm"
ESCALATION_NOTE = "系统自动督办：已达处置时限的 {share:.0%}"
OVERDUE_ESCALATION_NOTE = "系统自动督办：已超过处置时限"
#: The system as an actor (its events carry no user): it may take the 督办 action.
SYSTEM_ACTOR = wf.Actor(user_id=0, role=wf.Role.ADMIN)


@dataclass
class Alarms:
    pool: asyncpg.Pool
    dsn: str
    cases: CaseService
    #: Longest sleep between passes (the injected clock of a test may jump; a wake-up follows).
    poll: float = 30.0
    #: After a wake-up, wait this long so that a burst of case events costs one pass.
    coalesce: float = 0.2
    is_leader: bool = False
    fired: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """Look again now (a deadline changed, or a test moved the clock)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self._lead(stop)
                backoff = 0.5
            except OUTAGE_ERRORS as exc:
                log.warning("alarms: database unavailable (%s); retrying", type(exc).__name__)
            except Exception:
                log.exception("alarms failed; retrying")
            self.is_leader = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 5.0)

    async def _lead(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        try:
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", ALARM_LOCK_KEY):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
            if stop.is_set():
                return
            await conn.add_listener("cityhub_events", lambda *_: self._wake.set())
            self.is_leader = True
            log.info("alarms: leading")
            while not stop.is_set():
                self._wake.clear()
                nxt = await self.check()
                timeout = self.poll
                if nxt is not None:
                    ahead = (nxt - self.cases.clock()).total_seconds()
                    timeout = min(self.poll, max(ahead, 0.0))
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait(
                        {waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
                    stopper.cancel()
                if conn.is_closed():
                    raise ConnectionError("alarms connection lost")
                if self._wake.is_set() and self.coalesce > 0:
                    await asyncio.sleep(self.coalesce)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    async def check(self) -> datetime | None:
        """One pass: fire every due alarm not yet fired; returns the next moment one falls due."""
        svc = self.cases
        now = svc.clock()
        async with self.pool.acquire() as conn:
            clocks = await store.running_clocks(conn)
        nxt: datetime | None = None
        for rc in clocks:
            clock = svc.clock_of(rc.case)
            case = rc.case
            for t in dl.due(clock, svc.calendar, svc.policy, now):
                if round(t.share, dl.SHARE_DIGITS) in rc.fired:
                    continue
                written = await self._fire(case, t, now)
                if written is None:
                    break  # the case moved meanwhile: its notification brings another pass
                case = dataclasses.replace(case, version=case.version + written)
            later = dl.next_moment(clock, svc.calendar, svc.policy, now)
            if later is not None and (nxt is None or later < nxt):
                nxt = later
        return nxt

    async def _fire(self, case: CaseRow, t: dl.Threshold, now: datetime) -> int | None:
        """Fire one alarm; returns how many events were written, or None when nothing was."""
        countdown = self.cases.countdown(case, now)
        escalation: tuple[str, int] | None = None
        if t.escalate:
            note = (
                OVERDUE_ESCALATION_NOTE if t.share == 1.0 else ESCALATION_NOTE.format(share=t.share)
            )
            # The existing 督办 action, judged by the machine for the system actor.
            outcome = wf.apply(
                case_facts(case), SYSTEM_ACTOR, wf.Command(wf.Action.ESCALATE, note=note), now
            )
            escalation = (note, int(outcome.changes["escalation_count"]))
        async with self.pool.acquire() as conn:
            seqs = await store.fire(
                conn,
                case_id=case.id,
                version=case.version,
                deadline=t.deadline,
                threshold=t.share,
                kind=t.kind,
                action=t.action,
                due_at=t.due_at,
                now=now,
                data={
                    "share": t.share,
                    "kind": t.kind,
                    "label": dl.ALARM_LABELS[t.action],
                    "deadline": t.deadline.astimezone(UTC).isoformat(),
                    "due_at": t.due_at.astimezone(UTC).isoformat(),
                    "remaining_s": None if countdown is None else countdown.remaining_s,
                    "urgent": case.is_urgent,
                },
                escalation=escalation,
            )
        if seqs is None:
            return None
        self.fired += 1
        log.info("alarm %s: case %s at share %s", t.kind, case.case_no, t.share)
        return len(seqs)
