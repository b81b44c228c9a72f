"""Migration 0020: running cases whose clock started before migration 0011 (no ``clock_since``)
get the moment the deadline they run on was set, so that the alarm scheduler watches them.

The demo city is such data: its generator writes no countdown columns (tests/bench/test_evalgen.py
says so), and the template database loads it after every migration ran, so the migration's text is
applied here to it as an upgrade would apply it to an old deployment's cases."""

from __future__ import annotations

from hub.state import HubState
from storage import alarms as store
from storage.db import connect, load_migrations

RUNNING = "state IN ('dispatched', 'handling') AND deadline IS NOT NULL"


async def test_old_running_clocks_are_watched_after_the_upgrade(hub_state: HubState) -> None:
    (mig,) = [m for m in load_migrations() if m.version == 20]
    async with connect(hub_state.pool) as conn:
        before = {r["id"]: r["clock_since"] for r in await conn.fetch(
            "SELECT id, clock_since FROM cases")}  # fmt: skip
        running = {r["id"] for r in await conn.fetch(
            f"SELECT id FROM cases WHERE {RUNNING} AND paused_remaining_s IS NULL")}  # fmt: skip
        assert running, "the demo city has running cases"
        assert all(before[c] is None for c in running)
        assert await store.running_clocks(conn) == []  # nothing watched yet
        # When each one's deadline was set: its last deadline-setting event, from the log itself.
        expected = dict(
            await conn.fetch(
                "SELECT DISTINCT ON (case_id) case_id, at FROM case_events"
                " WHERE case_id = ANY($1::bigint[])"
                "   AND action IN ('dispatch', 'rework', 'verify_fail', 'resume',"
                "                  'approve_extension')"
                " ORDER BY case_id, version DESC",
                list(running),
            )
        )
        await conn.execute(mig.sql)
        after = {r["id"]: r["clock_since"] for r in await conn.fetch(
            "SELECT id, clock_since FROM cases")}  # fmt: skip
        watched = {c.case.id for c in await store.running_clocks(conn)}
    assert {c: after[c] for c in running} == expected
    assert {c: v for c, v in after.items() if c not in running} == {
        c: v for c, v in before.items() if c not in running
    }
    assert watched == running
