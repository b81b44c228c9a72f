"""The relay: committed case events -> numbered envelopes in ``live_log`` -> the bus.

One relay in the cluster is active at a time: it holds a session advisory lock on its own connection
(another process takes over within a second of it going away). It wakes on ``cityhub_events``
notifications (sent at commit by a trigger) or every ``poll`` seconds, and reads events in
(txid, seq) order *below the oldest transaction still running*: a transaction that took a lower seq
but commits later has a txid at or above that bound until it commits, so it is read on a later pass and
never skipped. For each event it renders the case summary once, routes it to its channels
(``hub.core.live.route``), numbers it per channel, and writes the envelopes, the channel heads and its cursor
in one transaction; only then are they published, so anything a client receives can be replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from hub.cases import render
from hub.cases.service import CaseService
from hub.core import live
from hub.live.leader import Leadership
from storage import cases as q
from storage import live as live_store

log = logging.getLogger("cityhub.relay")

RELAY_LOCK_KEY = 0x63697479726C79
BATCH = 2000

#: One published envelope: (pos, channel, offset, frame, department, previous department, grid);
#: the last three are the routing facts each process checks on delivery.
Item = tuple[int, str, int, str, int | None, int | None, int | None]
#: A published batch, in pos order.
Batch = list[Item]


@dataclass
class Relay:
    pool: asyncpg.Pool
    dsn: str
    cases: CaseService
    publish: Callable[[Batch], None]
    epoch: str = ""
    poll: float = 0.25
    #: After a wake-up, wait this long so that one pass relays the commits that follow closely.
    coalesce: float = 0.005
    #: How long envelopes are kept for resume.
    retention_hours: int = 72
    _pruned_at: float = -1e9
    _cursor: tuple[str, int] = ("0", 0)
    _pos: int = 0
    _heads: dict[str, int] | None = None
    leadership: Leadership = field(init=False)

    def __post_init__(self) -> None:
        self.leadership = Leadership(
            self.dsn, RELAY_LOCK_KEY, "relay", log, listen="cityhub_events"
        )

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set: try to become the relay, relay while leader, retry on faults
        (``hub.live.leader``)."""
        await self.leadership.run(stop, lambda: self._lead(stop))

    async def _lead(self, stop: asyncio.Event) -> None:
        """One term as the relay: relay what commits until ``stop`` or the lock's connection goes."""
        leading = self.leadership
        await self._load_position()
        log.info("relay: leading from cursor %s pos %d", self._cursor, self._pos)
        while not stop.is_set():
            leading.wake.clear()
            moved = await self.cycle()
            await self.prune()
            if moved >= BATCH:
                continue
            await leading.wait(stop, self.poll)
            if leading.wake.is_set() and self.coalesce > 0:
                # Let concurrent commits gather: one pass relays them together.
                await asyncio.sleep(self.coalesce)

    async def _load_position(self) -> None:
        async with self.pool.acquire() as conn:
            self.epoch = self.epoch or await live_store.ensure_epoch(conn)
            at = await live_store.load_relay_position(conn)
        self._cursor, self._pos, self._heads = at.cursor, at.pos, at.heads

    async def prune(self) -> int:
        """Drop envelopes older than the retention (at most once a minute). A client asking for
        older offsets is answered ``not_recovered`` and reloads over REST."""
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at < 60:
            return 0
        self._pruned_at = now
        async with self.pool.acquire() as conn:
            return await live_store.prune_log(conn, self.retention_hours)

    async def cycle(self) -> int:
        """Relay what has committed since the cursor; returns how many events were relayed."""
        assert self._heads is not None
        async with self.pool.acquire() as conn:
            rows = await live_store.committed_events_after(conn, self._cursor, BATCH)
            if not rows:
                return 0
            case_ids = list({r["case_id"] for r in rows})
            cases = {c.id: c for c in await q.get_cases(conn, case_ids)}
            batch: Batch = []
            heads = dict(self._heads)
            pos = self._pos
            summaries: dict[int, dict[str, Any]] = {}  # one case summary per case and pass
            for r in rows:
                case = cases.get(r["case_id"])
                if case is None:
                    continue
                summary = summaries.get(case.id)
                if summary is None:
                    summary = summaries[case.id] = orjson.loads(
                        orjson.dumps(self.cases.case_json(case))
                    )
                data_json = orjson.dumps(
                    render.live_event_json(self.cases.catalog, r, summary)
                ).decode()
                grid = (
                    self.cases.catalog.grids.get(r["grid_id"]) if r["grid_id"] is not None else None
                )
                facts = live.CaseEventFacts(
                    department_id=r["department_id"],
                    prev_department_id=r["prev_department_id"],
                    grid_id=r["grid_id"],
                    grid_parent_id=grid.parent_id if grid is not None else None,
                )
                ts = r["at"].isoformat().replace("+00:00", "Z")
                for channel in live.route(facts):
                    pos += 1
                    offset = heads.get(channel, 0) + 1
                    heads[channel] = offset
                    frame = live.envelope_raw(
                        channel, self.epoch, offset, "case.updated", ts, data_json
                    )
                    batch.append(
                        (
                            pos,
                            channel,
                            offset,
                            frame,
                            facts.department_id,
                            facts.prev_department_id,
                            facts.grid_id,
                        )
                    )
            last = rows[-1]
            cursor = (last["txid"], int(last["seq"]))
            await live_store.write_relay_batch(
                conn,
                [(it[1], it[2], it[0], it[3], it[4], it[5], it[6]) for it in batch],
                heads,
                cursor,
                pos,
            )
        self._cursor, self._pos, self._heads = cursor, pos, heads
        if batch:
            self.publish(batch)
        return len(rows)
