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
    deadline            timestamptz    -- set by the last deadline-setting event (final once closed)
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

CREATE FUNCTION cityhub_case_facts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    is_setter boolean := cityhub_sets_deadline(NEW.action, NEW.data);
    dl timestamptz;
BEGIN
    IF is_setter THEN
        IF NEW.action = 'approve_extension' THEN
            SELECT (r.data ->> 'extension_until')::timestamptz INTO dl FROM case_events r
             WHERE r.case_id = NEW.case_id AND r.version < NEW.version
               AND r.action = 'request_extension'
             ORDER BY r.version DESC LIMIT 1;
        ELSE
            dl := (NEW.data ->> 'deadline')::timestamptz;
        END IF;
        UPDATE case_spans SET until = NEW.at
         WHERE case_id = NEW.case_id AND kind = 'deadline' AND until IS NULL;
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id, deadline)
        VALUES (NEW.case_id, NEW.version, 'deadline', NEW.action, NEW.at, NEW.department_id, dl);
    ELSIF NEW.action IN ('feedback', 'return', 'defer', 'close', 'void') THEN
        UPDATE case_spans SET answered_at = NEW.at
         WHERE case_id = NEW.case_id AND kind = 'deadline' AND until IS NULL
           AND answered_at IS NULL;
    END IF;

    IF NEW.action = 'feedback' THEN
        UPDATE case_spans SET until = NEW.at
         WHERE case_id = NEW.case_id AND kind = 'feedback' AND until IS NULL;
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id, deadline)
        SELECT NEW.case_id, NEW.version, 'feedback', NEW.action, NEW.at, NEW.department_id,
               (SELECT s.deadline FROM case_spans s
                 WHERE s.case_id = NEW.case_id AND s.kind = 'deadline'
                 ORDER BY s.version DESC LIMIT 1);
    ELSIF NEW.action = 'defer' THEN
        INSERT INTO case_spans (case_id, version, kind, action, at)
        VALUES (NEW.case_id, NEW.version, 'deferral', NEW.action, NEW.at);
    ELSIF NEW.action IN ('resume', 'void') THEN
        UPDATE case_spans SET until = NEW.at
         WHERE case_id = NEW.case_id AND kind = 'deferral' AND until IS NULL;
    ELSIF NEW.action = 'return' THEN
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id)
        SELECT NEW.case_id, NEW.version, 'return', NEW.action, NEW.at,
               (SELECT p.department_id FROM case_events p
                 WHERE p.case_id = NEW.case_id AND p.version < NEW.version
                 ORDER BY p.version DESC LIMIT 1);
    END IF;

    IF is_setter OR NEW.action IN ('report', 'quick_report', 'register', 'close', 'void', 'feedback')
    THEN
        INSERT INTO case_facts AS f
            (case_id, is_quick, reported_at, registered_at, first_dispatch_at,
             first_dispatch_dep, closed_at, close_dep, ended_at, last_feedback_at, deadline)
        VALUES (
            NEW.case_id,
            NEW.action = 'quick_report',
            CASE WHEN NEW.action IN ('report', 'quick_report') THEN NEW.at END,
            CASE WHEN NEW.action = 'register' THEN NEW.at END,
            CASE WHEN NEW.action = 'dispatch' THEN NEW.at END,
            CASE WHEN NEW.action = 'dispatch' THEN NEW.department_id END,
            CASE WHEN NEW.action = 'close' THEN NEW.at END,
            CASE WHEN NEW.action = 'close' THEN NEW.department_id END,
            CASE WHEN NEW.action IN ('close', 'void') THEN NEW.at END,
            CASE WHEN NEW.action = 'feedback' THEN NEW.at END,
            dl)
        ON CONFLICT (case_id) DO UPDATE SET
            is_quick = f.is_quick OR EXCLUDED.is_quick,
            reported_at = coalesce(f.reported_at, EXCLUDED.reported_at),
            registered_at = coalesce(f.registered_at, EXCLUDED.registered_at),
            first_dispatch_dep = CASE WHEN f.first_dispatch_at IS NULL
                                      THEN EXCLUDED.first_dispatch_dep
                                      ELSE f.first_dispatch_dep END,
            first_dispatch_at = coalesce(f.first_dispatch_at, EXCLUDED.first_dispatch_at),
            close_dep = CASE WHEN EXCLUDED.closed_at IS NOT NULL THEN EXCLUDED.close_dep
                             ELSE f.close_dep END,
            closed_at = coalesce(EXCLUDED.closed_at, f.closed_at),
            ended_at = coalesce(f.ended_at, EXCLUDED.ended_at),
            last_feedback_at = coalesce(EXCLUDED.last_feedback_at, f.last_feedback_at),
            deadline = CASE WHEN is_setter THEN EXCLUDED.deadline ELSE f.deadline END;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER case_events_facts AFTER INSERT ON case_events
    FOR EACH ROW EXECUTE FUNCTION cityhub_case_facts_apply();

-- The same tables from the whole log at once (the migration's fill, and the test's reference).
-- Written set-based and apart from the trigger on purpose: the two must agree.
CREATE FUNCTION cityhub_case_facts_rebuild() RETURNS void LANGUAGE sql AS $$
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

INSERT INTO case_facts (case_id, is_quick, reported_at, registered_at, first_dispatch_at,
                        first_dispatch_dep, closed_at, close_dep, ended_at, last_feedback_at,
                        deadline)
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
         ORDER BY d.version DESC LIMIT 1)
  FROM case_events e
 WHERE cityhub_sets_deadline(e.action, e.data)
    OR e.action IN ('report', 'quick_report', 'register', 'close', 'void', 'feedback')
 GROUP BY e.case_id;
$$;

SELECT cityhub_case_facts_rebuild();

-- The event-log deadline index of migrations 0010/0014 served only the evaluation's candidate
-- search, which now reads case_spans; dropping it spares every event insert its upkeep.
DROP INDEX case_events_deadline_idx;
DROP FUNCTION cityhub_event_deadline(text, jsonb);
