-- The evaluation's per-case summary (issue 11's speed goals): what the indicators need of each
-- case's history, kept in the transaction that appends each event, so that a period's figures read
-- one or two narrow rows per case instead of folding every event of every candidate.
--
-- Before this migration storage/evaluation.py folded the candidates' whole histories out of
-- case_events: over 1,000,000 cases and 7,056,055 events a month took 4.3-6.8 s and a year 30-40 s
-- (5-6 us per event read), against goals of 1 s and 3 s (docs/benchmarks.md).
--
-- case_facts: one row per case, for the facts that never change once they happened (the report,
--   the registration, the first dispatch, the close -- closed is terminal -- the end by close or
--   void) and the two a closed case's 按期 is judged by (its last feedback, its final deadline).
-- case_spans: one row per event that opens a span of a case's history, with the moment the span
--   ended (until: NULL while it lasts), so that "as of the period's end" is a range condition on a
--   row instead of a search for the last event before the end:
--   - 'deadline': an event that set the department's deadline (dispatch, rework, verify_fail,
--     resume, approve_extension -- whose deadline is the extension_until of the request it
--     approved -- and a deny_extension that restored a paused clock), until the next one;
--     answered_at is the first feedback, return, defer, close or void after it (before the next
--     deadline), which is what 应处置 asks of the department;
--   - 'feedback': a feedback, until the next feedback, with the deadline in force when it was given;
--   - 'deferral': a defer (缓办), until the resume or void that ended it;
--   - 'return': a return (回退), with the department that held the case before it.
--
-- Both tables are written by the AFTER INSERT trigger on case_events (case_events is append-only,
-- so nothing else can change them). cityhub_case_facts_rebuild() derives them again from the whole
-- log with set-based SQL written apart from the trigger; the test suite compares the two
-- (tests/storage/test_evaluation_facts.py), and the migration fills the tables with it.

CREATE TABLE case_facts (
    case_id             bigint PRIMARY KEY REFERENCES cases (id) ON DELETE CASCADE,
    is_quick            boolean NOT NULL DEFAULT false,
    reported_at         timestamptz,   -- report or quick_report
    registered_at       timestamptz,
    first_dispatch_at   timestamptz,
    first_dispatch_dep  integer,
    closed_at           timestamptz,
    close_dep           integer,
    ended_at            timestamptz,   -- the first close or void
    last_feedback_at    timestamptz,
    deadline            timestamptz,   -- set by the last deadline-setting event (final once closed)
    -- the trigger's bookkeeping: the spans now open (so that closing one is a primary-key update)
    -- and the last extension requested (what an approval grants)
    deadline_version    integer,
    feedback_version    integer,
    deferral_version    integer,
    requested_until     timestamptz
);
CREATE INDEX case_facts_reported_idx ON case_facts (reported_at);
CREATE INDEX case_facts_registered_idx ON case_facts (registered_at);
CREATE INDEX case_facts_dispatched_idx ON case_facts (first_dispatch_at);
CREATE INDEX case_facts_closed_idx ON case_facts (closed_at);

CREATE TABLE case_spans (
    case_id        bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    version        integer NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('deadline', 'feedback', 'deferral', 'return')),
    action         text NOT NULL,
    at             timestamptz NOT NULL,
    until          timestamptz,
    department_id  integer,
    deadline       timestamptz,
    answered_at    timestamptz,
    PRIMARY KEY (case_id, version)
);
CREATE INDEX case_spans_kind_at_idx ON case_spans (kind, at);
CREATE INDEX case_spans_deadline_idx ON case_spans (deadline) WHERE kind = 'deadline';

CREATE FUNCTION cityhub_sets_deadline(action text, data jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT action IN ('dispatch', 'rework', 'verify_fail', 'resume', 'approve_extension')
        OR (action = 'deny_extension' AND data ->> 'deadline' IS NOT NULL)
$$;

-- Every statement below reaches its row by primary key (the facts row read first says which spans
-- are open): a bulk load in one transaction (hub.demo) runs before any ANALYZE, and a plan chosen
-- for empty tables must not turn into a scan of the spans per event.
CREATE FUNCTION cityhub_case_facts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f case_facts%ROWTYPE;
    had_row boolean;
    is_setter boolean := cityhub_sets_deadline(NEW.action, NEW.data);
BEGIN
    IF NOT (is_setter OR NEW.action IN ('report', 'quick_report', 'register', 'request_extension',
                                        'feedback', 'return', 'defer', 'close', 'void')) THEN
        RETURN NULL;
    END IF;
    SELECT * INTO f FROM case_facts WHERE case_id = NEW.case_id;
    had_row := FOUND;
    IF NOT had_row THEN
        f.case_id := NEW.case_id;
        f.is_quick := false;
    END IF;

    IF is_setter THEN
        IF f.deadline_version IS NOT NULL THEN
            UPDATE case_spans SET until = NEW.at
             WHERE case_id = NEW.case_id AND version = f.deadline_version;
        END IF;
        f.deadline := CASE WHEN NEW.action = 'approve_extension' THEN f.requested_until
                           ELSE (NEW.data ->> 'deadline')::timestamptz END;
        f.deadline_version := NEW.version;
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id, deadline)
        VALUES (NEW.case_id, NEW.version, 'deadline', NEW.action, NEW.at, NEW.department_id,
                f.deadline);
    ELSIF NEW.action IN ('feedback', 'return', 'defer', 'close', 'void')
          AND f.deadline_version IS NOT NULL THEN
        UPDATE case_spans SET answered_at = NEW.at
         WHERE case_id = NEW.case_id AND version = f.deadline_version AND answered_at IS NULL;
    END IF;

    IF NEW.action IN ('report', 'quick_report') THEN
        f.is_quick := f.is_quick OR NEW.action = 'quick_report';
        f.reported_at := coalesce(f.reported_at, NEW.at);
    ELSIF NEW.action = 'register' THEN
        f.registered_at := coalesce(f.registered_at, NEW.at);
    ELSIF NEW.action = 'dispatch' AND f.first_dispatch_at IS NULL THEN
        f.first_dispatch_at := NEW.at;
        f.first_dispatch_dep := NEW.department_id;
    ELSIF NEW.action = 'request_extension' THEN
        f.requested_until := (NEW.data ->> 'extension_until')::timestamptz;
    ELSIF NEW.action = 'feedback' THEN
        IF f.feedback_version IS NOT NULL THEN
            UPDATE case_spans SET until = NEW.at
             WHERE case_id = NEW.case_id AND version = f.feedback_version;
        END IF;
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id, deadline)
        VALUES (NEW.case_id, NEW.version, 'feedback', NEW.action, NEW.at, NEW.department_id,
                f.deadline);
        f.feedback_version := NEW.version;
        f.last_feedback_at := NEW.at;
    ELSIF NEW.action = 'defer' THEN
        INSERT INTO case_spans (case_id, version, kind, action, at)
        VALUES (NEW.case_id, NEW.version, 'deferral', NEW.action, NEW.at);
        f.deferral_version := NEW.version;
    ELSIF NEW.action = 'return' THEN
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id)
        VALUES (NEW.case_id, NEW.version, 'return', NEW.action, NEW.at,
                (SELECT p.department_id FROM case_events p  -- versions are consecutive
                  WHERE p.case_id = NEW.case_id AND p.version = NEW.version - 1));
    ELSIF NEW.action = 'close' THEN
        f.closed_at := NEW.at;
        f.close_dep := NEW.department_id;
        f.ended_at := coalesce(f.ended_at, NEW.at);
    ELSIF NEW.action = 'void' THEN
        f.ended_at := coalesce(f.ended_at, NEW.at);
    END IF;
    IF NEW.action IN ('resume', 'void') AND f.deferral_version IS NOT NULL THEN
        UPDATE case_spans SET until = NEW.at
         WHERE case_id = NEW.case_id AND version = f.deferral_version;
        f.deferral_version := NULL;
    END IF;

    IF had_row THEN
        UPDATE case_facts SET
            (is_quick, reported_at, registered_at, first_dispatch_at, first_dispatch_dep,
             closed_at, close_dep, ended_at, last_feedback_at, deadline, deadline_version,
             feedback_version, deferral_version, requested_until)
          = (f.is_quick, f.reported_at, f.registered_at, f.first_dispatch_at,
             f.first_dispatch_dep, f.closed_at, f.close_dep, f.ended_at, f.last_feedback_at,
             f.deadline, f.deadline_version, f.feedback_version, f.deferral_version,
             f.requested_until)
         WHERE case_id = NEW.case_id;
    ELSE
        INSERT INTO case_facts SELECT f.*;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER case_events_facts AFTER INSERT ON case_events
    FOR EACH ROW EXECUTE FUNCTION cityhub_case_facts_apply();

-- The same tables from the whole log at once (the migration's fill, and the test's reference).
-- Written set-based and apart from the trigger on purpose: the two must agree.
-- plpgsql, not sql: a sql function plans all its statements before running the first, so the
-- lookups would be planned for the empty tables and ANALYZE could not help them.
CREATE FUNCTION cityhub_case_facts_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
TRUNCATE case_spans, case_facts;

INSERT INTO case_spans (case_id, version, kind, action, at, until, department_id, deadline,
                        answered_at)
SELECT s.case_id, s.version, 'deadline', s.action, s.at, s.until, s.department_id,
       CASE WHEN s.action = 'approve_extension' THEN (
                SELECT (r.data ->> 'extension_until')::timestamptz FROM case_events r
                 WHERE r.case_id = s.case_id AND r.version < s.version
                   AND r.action = 'request_extension'
                 ORDER BY r.version DESC LIMIT 1)
            ELSE (s.data ->> 'deadline')::timestamptz END,
       (SELECT a.at FROM case_events a
         WHERE a.case_id = s.case_id AND a.version > s.version
           AND (s.next_version IS NULL OR a.version < s.next_version)
           AND a.action IN ('feedback', 'return', 'defer', 'close', 'void')
         ORDER BY a.version LIMIT 1)
  FROM (SELECT e.case_id, e.version, e.action, e.at, e.department_id, e.data,
               lead(e.at) OVER w AS until, lead(e.version) OVER w AS next_version
          FROM case_events e
         WHERE cityhub_sets_deadline(e.action, e.data)
        WINDOW w AS (PARTITION BY e.case_id ORDER BY e.version)) s;
-- Statistics for the lookups below: the spans were written in this transaction, and without them a
-- probe per feedback or per case may be planned as a scan of the whole table.
ANALYZE case_spans;

INSERT INTO case_spans (case_id, version, kind, action, at, until, department_id, deadline)
SELECT f.case_id, f.version, 'feedback', f.action, f.at,
       lead(f.at) OVER (PARTITION BY f.case_id ORDER BY f.version), f.department_id,
       (SELECT d.deadline FROM case_spans d
         WHERE d.case_id = f.case_id AND d.kind = 'deadline' AND d.version < f.version
         ORDER BY d.version DESC LIMIT 1)
  FROM case_events f
 WHERE f.action = 'feedback';

INSERT INTO case_spans (case_id, version, kind, action, at, until)
SELECT e.case_id, e.version, 'deferral', e.action, e.at,
       (SELECT r.at FROM case_events r
         WHERE r.case_id = e.case_id AND r.version > e.version AND r.action IN ('resume', 'void')
         ORDER BY r.version LIMIT 1)
  FROM case_events e
 WHERE e.action = 'defer';

INSERT INTO case_spans (case_id, version, kind, action, at, department_id)
SELECT e.case_id, e.version, 'return', e.action, e.at,
       (SELECT p.department_id FROM case_events p
         WHERE p.case_id = e.case_id AND p.version < e.version
         ORDER BY p.version DESC LIMIT 1)
  FROM case_events e
 WHERE e.action = 'return';
ANALYZE case_spans;

INSERT INTO case_facts (case_id, is_quick, reported_at, registered_at, first_dispatch_at,
                        first_dispatch_dep, closed_at, close_dep, ended_at, last_feedback_at,
                        deadline, deadline_version, feedback_version, deferral_version,
                        requested_until)
SELECT e.case_id,
       bool_or(e.action = 'quick_report'),
       min(e.at) FILTER (WHERE e.action IN ('report', 'quick_report')),
       min(e.at) FILTER (WHERE e.action = 'register'),
       min(e.at) FILTER (WHERE e.action = 'dispatch'),
       (min(ARRAY[e.version, e.department_id]) FILTER (WHERE e.action = 'dispatch'))[2],
       max(e.at) FILTER (WHERE e.action = 'close'),
       (max(ARRAY[e.version, e.department_id]) FILTER (WHERE e.action = 'close'))[2],
       min(e.at) FILTER (WHERE e.action IN ('close', 'void')),
       max(e.at) FILTER (WHERE e.action = 'feedback'),
       (SELECT d.deadline FROM case_spans d
         WHERE d.case_id = e.case_id AND d.kind = 'deadline'
         ORDER BY d.version DESC LIMIT 1),
       max(e.version) FILTER (WHERE cityhub_sets_deadline(e.action, e.data)),
       max(e.version) FILTER (WHERE e.action = 'feedback'),
       (SELECT p.version FROM case_spans p
         WHERE p.case_id = e.case_id AND p.kind = 'deferral' AND p.until IS NULL),
       (SELECT (r.data ->> 'extension_until')::timestamptz FROM case_events r
         WHERE r.case_id = e.case_id AND r.action = 'request_extension'
         ORDER BY r.version DESC LIMIT 1)
  FROM case_events e
 WHERE cityhub_sets_deadline(e.action, e.data)
    OR e.action IN ('report', 'quick_report', 'register', 'request_extension', 'feedback',
                    'return', 'defer', 'close', 'void')
 GROUP BY e.case_id;
END
$$;

SELECT cityhub_case_facts_rebuild();

-- The event-log deadline index of migrations 0010/0014 served only the evaluation's candidate
-- search, which now reads case_spans; dropping it spares every event insert its upkeep.
DROP INDEX case_events_deadline_idx;
DROP FUNCTION cityhub_event_deadline(text, jsonb);
