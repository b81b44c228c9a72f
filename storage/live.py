"""SQL of the live picture: the relay's position and batches, the envelope log read back by every
process, kiosk tickets.

The relay's position is durable and monotonic: ``relay_cursor`` (the last relayed event, as
``[txid, seq]``) and ``relay_pos`` (the last global ``pos`` written) are stored in ``settings_kv`` in the
same transaction as the envelopes they account for. Retention deletes old ``live_log`` rows, so the
position must never be derived from the log alone: a relay that takes over after the log was emptied
would number from 1 again, and every process already past that would drop what follows.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

#: Columns of one published envelope row, in ``live_log`` order for COPY.
LOG_COLUMNS = (
    "channel",
    "offset",
    "pos",
    "frame",
    "department_id",
    "prev_department_id",
    "grid_id",
)

#: A row to log: (channel, offset, pos, frame, department, previous department, grid).
LogRecord = tuple[str, int, int, str, int | None, int | None, int | None]

#: One envelope read back: (pos, channel, offset, frame, department, previous department, grid).
LogItem = tuple[int, str, int, str, int | None, int | None, int | None]


@dataclass(frozen=True, slots=True)
class RelayPosition:
    cursor: tuple[str, int]
    pos: int
    heads: dict[str, int]


async def ensure_epoch(conn: asyncpg.Connection) -> str:
    """The installation's live epoch (offsets are comparable only within one epoch)."""
    epoch = await conn.fetchval("SELECT value #>> '{}' FROM settings_kv WHERE key = 'live_epoch'")
    if epoch is None:
        await conn.execute(
            "INSERT INTO settings_kv (key, value) VALUES ('live_epoch', to_jsonb($1::text))"
            " ON CONFLICT (key) DO NOTHING",
            secrets.token_urlsafe(6),
        )
        epoch = await conn.fetchval(
            "SELECT value #>> '{}' FROM settings_kv WHERE key = 'live_epoch'"
        )
    return str(epoch)


_POS_SQL = """
SELECT greatest(
    (SELECT (value #>> '{}')::bigint FROM settings_kv WHERE key = 'relay_pos'),
    (SELECT max(pos) FROM live_log),
    0)
"""


async def last_pos(conn: asyncpg.Connection) -> int:
    """The last global position written (the log's own maximum covers installations from before
    ``relay_pos`` was written)."""
    return int(await conn.fetchval(_POS_SQL))


async def channel_heads(conn: asyncpg.Connection) -> dict[str, int]:
    return {
        r["channel"]: r["head"] for r in await conn.fetch("SELECT channel, head FROM live_heads")
    }


async def load_relay_position(conn: asyncpg.Connection) -> RelayPosition:
    cursor = await conn.fetchval("SELECT value FROM settings_kv WHERE key = 'relay_cursor'")
    if cursor is None:
        # First start: history before now is not live news.
        row = await conn.fetchrow(
            "SELECT txid::text AS txid, seq FROM case_events ORDER BY txid DESC, seq DESC LIMIT 1"
        )
        at: tuple[str, int] = ("0", 0) if row is None else (row["txid"], row["seq"])
    else:
        at = (str(cursor[0]), int(cursor[1]))
    return RelayPosition(at, await last_pos(conn), await channel_heads(conn))


_EVENTS_SQL = """
SELECT e.seq, e.txid::text AS txid, e.case_id, e.version, e.action, e.actor_id, u.display_name AS actor_name,
       e.at, e.from_state, e.to_state, e.note, e.department_id, e.grid_id,
       p.department_id AS prev_department_id,
       CASE WHEN e.action IN ('deadline_warning', 'overdue') THEN e.data END AS alarm_data
FROM case_events e
LEFT JOIN case_events p ON p.case_id = e.case_id AND p.version = e.version - 1
LEFT JOIN users u ON u.id = e.actor_id
WHERE (e.txid, e.seq) > ($1::text::xid8, $2) AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.txid, e.seq
LIMIT $3
"""


async def committed_events_after(
    conn: asyncpg.Connection, cursor: tuple[str, int], limit: int
) -> list[asyncpg.Record]:
    """Events after ``cursor`` in (txid, seq) order, only from transactions older than the oldest
    one still running (so none can later appear behind the cursor)."""
    rows: list[asyncpg.Record] = await conn.fetch(_EVENTS_SQL, cursor[0], cursor[1], limit)
    return rows


async def write_relay_batch(
    conn: asyncpg.Connection,
    records: Sequence[LogRecord],
    heads: dict[str, int],
    cursor: tuple[str, int],
    pos: int,
) -> None:
    """The envelopes, the heads of the channels they touch, the cursor and the position, in one
    transaction."""
    async with conn.transaction():
        if records:
            await conn.copy_records_to_table("live_log", records=records, columns=LOG_COLUMNS)
            changed = list({r[0] for r in records})
            await conn.execute(
                "INSERT INTO live_heads (channel, head) SELECT * FROM unnest($1::text[], $2::bigint[])"
                " ON CONFLICT (channel) DO UPDATE SET head = excluded.head",
                changed,
                [heads[ch] for ch in changed],
            )
        await conn.execute(
            "INSERT INTO settings_kv (key, value) VALUES ('relay_cursor', $1), ('relay_pos', to_jsonb($2::bigint))"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [cursor[0], cursor[1]],
            pos,
        )


async def prune_log(conn: asyncpg.Connection, retention_hours: int) -> int:
    status = await conn.execute(
        "DELETE FROM live_log WHERE at < now() - make_interval(hours => $1)", retention_hours
    )
    return int(status.split()[-1])


async def log_after(conn: asyncpg.Connection, pos: int, limit: int) -> list[LogItem]:
    rows = await conn.fetch(
        'SELECT pos, channel, "offset", frame, department_id, prev_department_id, grid_id'
        " FROM live_log WHERE pos > $1 ORDER BY pos LIMIT $2",
        pos,
        limit,
    )
    return [tuple(r) for r in rows]


async def channel_frames(
    conn: asyncpg.Connection, channel: str, after: int, upto: int
) -> list[str]:
    """Frames of one channel with after < offset <= upto, in order (fewer when pruned)."""
    rows = await conn.fetch(
        'SELECT frame FROM live_log WHERE channel = $1 AND "offset" > $2'
        ' AND "offset" <= $3 ORDER BY "offset"',
        channel,
        after,
        upto,
    )
    return [r["frame"] for r in rows]


# -- kiosk tickets ---------------------------------------------------------------------------


def _ticket_hash(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


async def create_ticket(conn: asyncpg.Connection, user_id: int, expires_at: datetime) -> str:
    """A new single-use ticket for ``user_id`` (only its hash is stored); expired ones are dropped."""
    ticket = secrets.token_urlsafe(24)
    await conn.execute("DELETE FROM live_tickets WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO live_tickets (ticket_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        _ticket_hash(ticket),
        user_id,
        expires_at,
    )
    return ticket


async def redeem_ticket(conn: asyncpg.Connection, ticket: str, now: datetime) -> int | None:
    """The user id of a valid ticket, which is used up; None when unknown, used or expired."""
    uid = await conn.fetchval(
        "DELETE FROM live_tickets WHERE ticket_hash = $1 AND expires_at > $2 RETURNING user_id",
        _ticket_hash(ticket),
        now,
    )
    return None if uid is None else int(uid)
