-- The live picture: a commit-safe relay order for case events, and the log of published envelopes.
--
-- case_events.txid is the writing transaction's id. The relay reads events ordered by (txid, seq)
-- and only below pg_snapshot_xmin(pg_current_snapshot()) — the oldest transaction still running —
-- so no event can appear later behind the relay's cursor, however the transactions interleave.
-- department_id and grid_id are the case's after the move, for routing to channels.

ALTER TABLE case_events
    ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN department_id integer,
    ADD COLUMN grid_id integer;
CREATE INDEX case_events_relay_idx ON case_events (txid, seq);

-- One row per (channel, offset): the exact envelope sent to clients, kept for resume.
CREATE TABLE live_log (
    channel   text NOT NULL,
    "offset"  bigint NOT NULL,
    pos       bigint NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    frame     text NOT NULL,
    -- Routing facts, checked again on every delivery.
    department_id       integer,
    prev_department_id  integer,
    grid_id             integer,
    PRIMARY KEY (channel, "offset")
);
CREATE INDEX live_log_pos_idx ON live_log (pos);
CREATE INDEX live_log_at_idx ON live_log (at);

-- Wake the relay when events commit (one notification per statement; PostgreSQL folds duplicates
-- within a transaction and delivers them at commit).
CREATE FUNCTION case_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cityhub_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER case_events_notify AFTER INSERT ON case_events
    FOR EACH STATEMENT EXECUTE FUNCTION case_events_notify();

-- Tell every process the last pos the relay has written: one that has not received it through the
-- bus shortly after reads it back from live_log (a message the bus lost is never waited for).
CREATE FUNCTION live_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cityhub_live', (SELECT max(pos) FROM new_rows)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER live_log_notify AFTER INSERT ON live_log
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION live_log_notify();

-- Single-use tickets for kiosks and big screens (hash only).
CREATE TABLE live_tickets (
    ticket_hash  bytea PRIMARY KEY,
    user_id      integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL
);

-- The relay's position: the head offset of every channel, and (in settings_kv) its cursor
-- ('relay_cursor': [txid, seq]) and the last pos written ('relay_pos').
CREATE TABLE live_heads (
    channel  text PRIMARY KEY,
    head     bigint NOT NULL
);
