-- Time limits and alarms (issue 11): urgent cases, the paused countdown, fired alarms.
--
-- is_urgent: a case marked 紧急 at report (the reporter) or at register/dispatch (seat, dispatcher);
--   it runs on the urgent time limit (CITYHUB_URGENT_LIMIT) and is counted apart.
-- time_limit_s: the working seconds the department was given for the clock now running (the
--   category's limit from the last restart, plus any approved extension); the warning shares are
--   shares of it. NULL when no clock runs or for rows older than this migration (the share is then
--   taken from the category's limit).
-- paused_remaining_s: the working seconds left when the countdown paused (缓办, or an extension
--   request awaiting approval, per CITYHUB_DEADLINE_PAUSE); NULL while the countdown runs.
-- clock_since: when the running deadline was last set (a restart, a resumption, an extension's
--   decision); an alarm whose moment falls before it is not armed (it fired, or was passed, under
--   the deadline before), so moving a deadline never repeats a warning.
ALTER TABLE cases
    ADD COLUMN is_urgent boolean NOT NULL DEFAULT false,
    ADD COLUMN time_limit_s integer CHECK (time_limit_s > 0),
    ADD COLUMN paused_remaining_s integer,
    ADD COLUMN clock_since timestamptz;

-- One row per (case, threshold, deadline) ever fired: the unique key is the final guard that makes a
-- warning or an overdue alarm fire once however many hub processes run and however often they
-- restart (INSERT ... ON CONFLICT DO NOTHING in the transaction that appends the case event).
CREATE TABLE case_alarms (
    id             bigserial PRIMARY KEY,
    case_id        bigint NOT NULL REFERENCES cases (id),
    threshold      numeric(6, 4) NOT NULL CHECK (threshold > 0),
    deadline       timestamptz NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('warning', 'overdue')),
    due_at         timestamptz NOT NULL,
    fired_at       timestamptz NOT NULL,
    event_seq      bigint REFERENCES case_events (seq),
    department_id  integer REFERENCES departments (id),
    grid_id        integer REFERENCES grids (id),
    is_urgent      boolean NOT NULL DEFAULT false,
    UNIQUE (case_id, threshold, deadline)
);
CREATE INDEX case_alarms_fired_idx ON case_alarms (fired_at DESC, id DESC);

-- The alarm scheduler's scan: open cases whose department clock runs.
CREATE INDEX cases_deadline_running_idx ON cases (deadline)
    WHERE state IN ('dispatched', 'handling') AND deadline IS NOT NULL;
