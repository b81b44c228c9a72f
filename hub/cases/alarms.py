"""The alarm scheduler: fires deadline warnings (黄灯), overdue alarms (红灯) and the system's
escalation (督办) at their exact moments, once.

Every hub process runs one; only the one holding the PostgreSQL advisory lock ``ALARM_LOCK_KEY`` on
its own connection acts (``hub.live.leader``: another takes over within a second of it going away,
as for the relay). The leader keeps a working set in memory: for each running clock with an alarm
still to fire, the moment of the next one (a heap orders them). It sleeps until the earliest, until a
case event commits anywhere (the ``cityhub_events`` notification: a deadline may have changed), or
``poll`` seconds; then it runs a pass:

- it reads the cases touched by the events committed since its cursor (``storage.alarms
  .cases_changed_after``: the case log in (txid, seq) order from the xmin of the last pass's
  snapshot, so nothing committed late is missed) and only those cases' clocks, and replaces their
  entries (a case whose clock stopped leaves the set);
- every running clock is read instead at start, on becoming leader, after any failure of a pass
  (an outage), when the policy, the calendar or the catalog object changes, when more than
  ``INCREMENTAL_MAX`` cases were touched, and every ``FULL_READ_EVERY_S`` (10 minutes) as a safety
  net;
- the cases whose moment has come are read again and their due alarms fired in time order
  (``hub.core.deadlines.thresholds``; missed ones after a restart too).

The database is the final guard: ``storage.alarms.fire`` locks the case, checks its version and
deadline, and writes the alarm row (unique per case, share and deadline) and the case event in one
transaction, so two leaders (a split brain), a stale working set or a replayed pass still write one
alarm. A firing that finds the case moved is retried from a fresh read on the next pass. The relay
publishes the event to the case's channels like any other, so the boards receive it live and a
reconnecting client gets it on resume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from hub.cases.facts import case_facts
from hub.cases.service import CaseService
from hub.core import deadlines as dl
from hub.core import workflow as wf
from hub.live.leader import Leadership
from storage import alarms as store
from storage.cases import CaseRow

log = logging.getLogger("cityhub.alarms")

ALARM_LOCK_KEY = 0x63697479616C6D  # "cityalm"
ESCALATION_NOTE = "系统自动督办：已达处置时限的 {share:.0%}"
OVERDUE_ESCALATION_NOTE = "系统自动督办：已超过处置时限"
#: The system as an actor (its events carry no user): it may take the 督办 action.
SYSTEM_ACTOR = wf.Actor(user_id=0, role=wf.Role.ADMIN)


#: The safety net: the leader reads every running clock again at least this often (seconds), so
#: anything that changes a clock without a case event (a row edited by hand, a restored backup) is
#: picked up within ten minutes.
FULL_READ_EVERY_S = 600.0
#: A wake-up touching more cases than this reads every running clock instead of these cases.
INCREMENTAL_MAX = 5000


@dataclass
class Alarms:
    pool: asyncpg.Pool
    dsn: str
    cases: CaseService
    #: Longest sleep between passes (the injected clock of a test may jump; a wake-up follows).
    poll: float = 30.0
    #: After a wake-up, wait this long so that a burst of case events costs one pass.
    coalesce: float = 0.2
    #: Seconds between full reads (the safety net; see ``FULL_READ_EVERY_S``).
    full_every: float = FULL_READ_EVERY_S
    incremental_max: int = INCREMENTAL_MAX
    fired: int = 0
    #: The last pass: "full" or "incremental", and how many running clocks its reads returned
    #: (the touched cases and the due ones; the benchmark and the tests read these).
    last_read: str = ""
    last_rows: int = 0
    full_reads: int = 0
    leadership: Leadership = field(init=False)
    #: The working set: each watched case's next unfired alarm moment (cases with none left are
    #: not watched), and a heap of (moment, case) over it (an entry whose moment no longer matches
    #: ``_next`` is stale and skipped).
    _next: dict[int, datetime] = field(default_factory=dict)
    _heap: list[tuple[datetime, int]] = field(default_factory=list)
    #: Where the case log was read up to; None: read every running clock on the next pass.
    _cursor: store.EventsCursor | None = None
    _read_at: float = 0.0
    #: What the thresholds were computed with (a change of any reads everything again).
    _basis: tuple[object, ...] = ()
    #: Cases whose firing found them moved: read again on the next pass.
    _retry: set[int] = field(default_factory=set)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.leadership = Leadership(
            self.dsn, ALARM_LOCK_KEY, "alarms", log, listen="cityhub_events"
        )

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    def wake(self) -> None:
        """Look again now (a deadline changed, or a test moved the clock)."""
        self.leadership.wake.set()

    def forget(self) -> None:
        """Drop the working set: the next pass reads every running clock."""
        self._cursor = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set: contend for the lock, schedule while leader, retry on faults
        (``hub.live.leader``)."""
        await self.leadership.run(stop, lambda: self._lead(stop))

    async def _lead(self, stop: asyncio.Event) -> None:
        """One term as the scheduler: it starts from a full read (another process may have
        fired, or the cases moved, while this one did not lead)."""
        leading = self.leadership
        self.forget()
        log.info("alarms: leading")
        while not stop.is_set():
            leading.wake.clear()
            nxt = await self.check()
            timeout = self.poll
            if self._retry:
                timeout = min(timeout, 1.0)
            if nxt is not None:
                ahead = (nxt - self.cases.clock()).total_seconds()
                timeout = min(timeout, max(ahead, 0.0))
            await leading.wait(stop, timeout)
            if leading.wake.is_set() and self.coalesce > 0:
                await asyncio.sleep(self.coalesce)

    async def check(self) -> datetime | None:
        """One pass: bring the working set up to date (every running clock, or only the cases
        touched since the last pass), fire every due alarm not yet fired; returns the next moment
        one falls due. A failure drops the working set (the next pass reads everything)."""
        async with self._lock:
            try:
                return await self._pass()
            except BaseException:
                self.forget()
                raise

    async def _pass(self) -> datetime | None:
        svc = self.cases
        now = svc.clock()
        basis = (svc.policy, svc.calendar, svc.catalog)
        fresh: dict[int, store.RunningClock] = {}
        async with self.pool.acquire() as conn:
            changed = None
            stale = (
                self._cursor is None
                or len(basis) != len(self._basis)
                or any(a is not b for a, b in zip(basis, self._basis, strict=True))
                or asyncio.get_running_loop().time() - self._read_at >= self.full_every
            )
            if not stale and self._cursor is not None:
                changed = await store.cases_changed_after(conn, self._cursor, self.incremental_max)
            if changed is None:
                cursor = await store.events_cursor(conn)
                clocks = await store.running_clocks(conn)
                self._next.clear()
                self._heap.clear()
                self._retry.clear()
                self._read_at = asyncio.get_running_loop().time()
                self._basis = basis
                self.last_read, self.full_reads = "full", self.full_reads + 1
            else:
                cursor = changed.cursor
                touched = set(changed.case_ids) | self._retry
                self._retry.clear()
                clocks = await store.running_clocks(conn, sorted(touched)) if touched else []
                for case_id in touched:
                    self._next.pop(case_id, None)
                self.last_read = "incremental"
            for rc in clocks:
                fresh[rc.case.id] = rc
                self._watch(rc)
            self._cursor = cursor
            # The due cases are read again (their clocks may have moved since they were read);
            # those just read need not be.
            due = self._pop_due(now)
            again = [c for c in due if c not in fresh]
            reread = await store.running_clocks(conn, again) if again else []
            for rc in reread:
                fresh[rc.case.id] = rc
            self.last_rows = len(clocks) + len(reread)
        for case_id in due:
            running = fresh.get(case_id)
            if running is not None:
                await self._fire_due(running, now)
        return self._peek()

    def _pending(self, rc: store.RunningClock) -> list[dl.Threshold]:
        """The armed alarms of a running clock not yet fired, in time order."""
        svc = self.cases
        ts = dl.thresholds(svc.clock_of(rc.case), svc.calendar, svc.policy)
        return sorted(
            (t for t in ts if round(t.share, dl.SHARE_DIGITS) not in rc.fired),
            key=lambda t: t.due_at,
        )

    def _watch(self, rc: store.RunningClock, after: datetime | None = None) -> None:
        pending = [t for t in self._pending(rc) if after is None or t.due_at > after]
        if pending:
            self._set_next(rc.case.id, pending[0].due_at)
        else:
            self._next.pop(rc.case.id, None)

    def _set_next(self, case_id: int, at: datetime) -> None:
        self._next[case_id] = at
        heapq.heappush(self._heap, (at, case_id))
        if len(self._heap) > 2 * len(self._next) + 1024:  # stale entries: compact
            self._heap = [(t, c) for c, t in self._next.items()]
            heapq.heapify(self._heap)

    def _pop_due(self, now: datetime) -> list[int]:
        """The watched cases with an alarm due at ``now``, taken off the working set (those still
        running are put back when their alarms have fired)."""
        due: list[int] = []
        while self._heap and self._heap[0][0] <= now:
            at, case_id = heapq.heappop(self._heap)
            if self._next.get(case_id) == at:
                del self._next[case_id]
                due.append(case_id)
        return due

    def _peek(self) -> datetime | None:
        while self._heap and self._next.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def _fire_due(self, rc: store.RunningClock, now: datetime) -> None:
        """Fire a case's due alarms in time order, then watch its next one."""
        case = rc.case
        for t in self._pending(rc):
            if t.due_at > now:
                break
            written = await self._fire(case, t, now)
            if written is None:
                # The case moved meanwhile: its event brings it back, and so does the retry.
                self._retry.add(case.id)
                return
            case = dataclasses.replace(case, version=case.version + written)
        self._watch(rc, after=now)

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
