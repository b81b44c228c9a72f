-- The evaluation's per-case summary (migration 0016) gains what lets every family of figures be
-- counted in one pass over its rows, with no join (issue 11's goals: a month < 1 s, a year < 3 s).
--
-- Before, the departments', regions' and sources' figures were the city's member rows (one per
-- figure and case) joined to cases for the grid, category and source, then grouped: over 1,000,000
-- cases a month took 1.7-5.3 s and a year 17-43 s (docs/benchmarks.md); and the 应结案 cases still
-- open at their deadline were a hash join of the period's deadline spans with every non-quick case
-- (the year's largest single cost).
--
-- case_facts and case_spans both gain the case's keys, fixed at the report (hub.cases.service
-- writes source, category and grid once: no action changes them): source, category_id, grid_id.
-- case_spans also gains
--   is_quick   the case's (a quick case is in none of the standard figures),
--   ended_at   on a case's last deadline span, the close or void that ended the case,
--   closed_at  on the same span, the close,
-- so that "the deadline as of the end falls in the period and the case was still open at it" and
-- "not closed in the period" are conditions on the span alone. Only the deadline span in force when
-- the case ended is marked: a span that an earlier event replaced was replaced by an event after
-- its own deadline could matter (its until is at or after the period's end), so the case was open
-- at that deadline and not closed in the period (closed and voided are terminal).
--
-- The trigger (cityhub_case_facts_apply) and the set-based rebuild are replaced by versions that
-- fill the new columns; tests/storage/test_evaluation_facts.py still compares the two, and the
-- migration refills both tables with the rebuild.

ALTER TABLE case_facts
    ADD COLUMN source      text,
    ADD COLUMN category_id integer,
    ADD COLUMN grid_id     integer;

ALTER TABLE case_spans
    ADD COLUMN is_quick    boolean NOT NULL DEFAULT false,
    ADD COLUMN source      text,
    ADD COLUMN category_id integer,
    ADD COLUMN grid_id     integer,
    ADD COLUMN ended_at    timestamptz,
    ADD COLUMN closed_at   timestamptz;

-- 返工 and 延期 read the deadline spans an event of the period opened by those actions: few rows.
CREATE INDEX case_spans_moves_idx ON case_spans (at)
    WHERE kind = 'deadline' AND action IN ('rework', 'verify_fail', 'approve_extension');

CREATE OR REPLACE FUNCTION cityhub_case_facts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF NOT had_row THEN  -- a case inserted before this migration's trigger on cases
        f.case_id := NEW.case_id;
        f.is_quick := false;
        f.grid_id := NEW.grid_id;
    END IF;
    IF NEW.action = 'quick_report' THEN
        f.is_quick := true;
    END IF;

    IF is_setter THEN
        IF f.deadline_version IS NOT NULL THEN
            UPDATE case_spans SET until = NEW.at
             WHERE case_id = NEW.case_id AND version = f.deadline_version;
        END IF;
        f.deadline := CASE WHEN NEW.action = 'approve_extension' THEN f.requested_until
                           ELSE (NEW.data ->> 'deadline')::timestamptz END;
        f.deadline_version := NEW.version;
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id, deadline,
                                is_quick, source, category_id, grid_id)
        VALUES (NEW.case_id, NEW.version, 'deadline', NEW.action, NEW.at, NEW.department_id,
                f.deadline, f.is_quick, f.source, f.category_id, f.grid_id);
    ELSIF NEW.action IN ('close', 'void') AND f.deadline_version IS NOT NULL THEN
        UPDATE case_spans
           SET answered_at = coalesce(answered_at, NEW.at),
               ended_at = coalesce(ended_at, NEW.at),
               closed_at = CASE WHEN NEW.action = 'close' THEN NEW.at ELSE closed_at END
         WHERE case_id = NEW.case_id AND version = f.deadline_version;
    ELSIF NEW.action IN ('feedback', 'return', 'defer') AND f.deadline_version IS NOT NULL THEN
        UPDATE case_spans SET answered_at = NEW.at
         WHERE case_id = NEW.case_id AND version = f.deadline_version AND answered_at IS NULL;
    END IF;

    IF NEW.action IN ('report', 'quick_report') THEN
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
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id, deadline,
                                is_quick, source, category_id, grid_id)
        VALUES (NEW.case_id, NEW.version, 'feedback', NEW.action, NEW.at, NEW.department_id,
                f.deadline, f.is_quick, f.source, f.category_id, f.grid_id);
        f.feedback_version := NEW.version;
        f.last_feedback_at := NEW.at;
    ELSIF NEW.action = 'defer' THEN
        INSERT INTO case_spans (case_id, version, kind, action, at,
                                is_quick, source, category_id, grid_id)
        VALUES (NEW.case_id, NEW.version, 'deferral', NEW.action, NEW.at,
                f.is_quick, f.source, f.category_id, f.grid_id);
        f.deferral_version := NEW.version;
    ELSIF NEW.action = 'return' THEN
        INSERT INTO case_spans (case_id, version, kind, action, at, department_id,
                                is_quick, source, category_id, grid_id)
        VALUES (NEW.case_id, NEW.version, 'return', NEW.action, NEW.at,
                (SELECT p.department_id FROM case_events p  -- versions are consecutive
                  WHERE p.case_id = NEW.case_id AND p.version = NEW.version - 1),
                f.is_quick, f.source, f.category_id, f.grid_id);
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

-- The case's keys are written with the case row, so that the first event finds its facts row
-- (a lookup of the case from the events' trigger would be planned once per session, at the first
-- event of a bulk load, for a table then nearly empty: a scan per case after that).
CREATE FUNCTION cityhub_case_facts_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO case_facts (case_id, source, category_id, grid_id)
    VALUES (NEW.id, NEW.source, NEW.category_id, NEW.grid_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER cases_facts_keys AFTER INSERT ON cases
    FOR EACH ROW EXECUTE FUNCTION cityhub_case_facts_keys();

-- The same tables from the whole log at once (the migration's fill, and the test's reference),
-- set-based and written apart from the trigger on purpose: the two must agree. The keys come from
-- the case row (the trigger takes the grid from the report event: the same, as no action moves a
-- case), is_quick from the log (a quick_report).
CREATE OR REPLACE FUNCTION cityhub_case_facts_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
TRUNCATE case_spans, case_facts;

CREATE TEMPORARY TABLE rebuild_keys ON COMMIT DROP AS
SELECT c.id AS case_id, c.source, c.category_id, c.grid_id,
       EXISTS (SELECT 1 FROM case_events q
                WHERE q.case_id = c.id AND q.action = 'quick_report') AS is_quick
  FROM cases c;
ALTER TABLE rebuild_keys ADD PRIMARY KEY (case_id);
IF EXISTS (SELECT 1 FROM rebuild_keys) THEN
    ANALYZE rebuild_keys;
END IF;

INSERT INTO case_spans (case_id, version, kind, action, at, until, department_id, deadline,
                        answered_at, ended_at, closed_at, is_quick, source, category_id, grid_id)
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
         ORDER BY a.version LIMIT 1),
       CASE WHEN s.next_version IS NULL THEN (
                SELECT min(a.at) FROM case_events a
                 WHERE a.case_id = s.case_id AND a.version > s.version
                   AND a.action IN ('close', 'void')) END,
       CASE WHEN s.next_version IS NULL THEN (
                SELECT max(a.at) FROM case_events a
                 WHERE a.case_id = s.case_id AND a.version > s.version
                   AND a.action = 'close') END,
       k.is_quick, k.source, k.category_id, k.grid_id
  FROM (SELECT e.case_id, e.version, e.action, e.at, e.department_id, e.data,
               lead(e.at) OVER w AS until, lead(e.version) OVER w AS next_version
          FROM case_events e
         WHERE cityhub_sets_deadline(e.action, e.data)
        WINDOW w AS (PARTITION BY e.case_id ORDER BY e.version)) s
  JOIN rebuild_keys k ON k.case_id = s.case_id;
-- Statistics for the lookups below: the spans were written in this transaction, and without them a
-- probe per feedback or per case may be planned as a scan of the whole table.
IF EXISTS (SELECT 1 FROM case_spans) THEN  -- analyzed empty, a table is planned as one page
    ANALYZE case_spans;
END IF;

INSERT INTO case_spans (case_id, version, kind, action, at, until, department_id, deadline,
                        is_quick, source, category_id, grid_id)
SELECT f.case_id, f.version, 'feedback', f.action, f.at,
       lead(f.at) OVER (PARTITION BY f.case_id ORDER BY f.version), f.department_id,
       (SELECT d.deadline FROM case_spans d
         WHERE d.case_id = f.case_id AND d.kind = 'deadline' AND d.version < f.version
         ORDER BY d.version DESC LIMIT 1),
       k.is_quick, k.source, k.category_id, k.grid_id
  FROM case_events f
  JOIN rebuild_keys k ON k.case_id = f.case_id
 WHERE f.action = 'feedback';

INSERT INTO case_spans (case_id, version, kind, action, at, until,
                        is_quick, source, category_id, grid_id)
SELECT e.case_id, e.version, 'deferral', e.action, e.at,
       (SELECT r.at FROM case_events r
         WHERE r.case_id = e.case_id AND r.version > e.version AND r.action IN ('resume', 'void')
         ORDER BY r.version LIMIT 1),
       k.is_quick, k.source, k.category_id, k.grid_id
  FROM case_events e
  JOIN rebuild_keys k ON k.case_id = e.case_id
 WHERE e.action = 'defer';

INSERT INTO case_spans (case_id, version, kind, action, at, department_id,
                        is_quick, source, category_id, grid_id)
SELECT e.case_id, e.version, 'return', e.action, e.at,
       (SELECT p.department_id FROM case_events p
         WHERE p.case_id = e.case_id AND p.version < e.version
         ORDER BY p.version DESC LIMIT 1),
       k.is_quick, k.source, k.category_id, k.grid_id
  FROM case_events e
  JOIN rebuild_keys k ON k.case_id = e.case_id
 WHERE e.action = 'return';
IF EXISTS (SELECT 1 FROM case_spans) THEN  -- analyzed empty, a table is planned as one page
    ANALYZE case_spans;
END IF;

INSERT INTO case_facts (case_id, is_quick, reported_at, registered_at, first_dispatch_at,
                        first_dispatch_dep, closed_at, close_dep, ended_at, last_feedback_at,
                        deadline, deadline_version, feedback_version, deferral_version,
                        requested_until, source, category_id, grid_id)
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
         ORDER BY r.version DESC LIMIT 1),
       min(k.source), min(k.category_id), min(k.grid_id)
  FROM case_events e
  JOIN rebuild_keys k ON k.case_id = e.case_id
 WHERE cityhub_sets_deadline(e.action, e.data)
    OR e.action IN ('report', 'quick_report', 'register', 'request_extension', 'feedback',
                    'return', 'defer', 'close', 'void')
 GROUP BY e.case_id;
-- a case without an event of those (none the service writes) still has its keys' row
INSERT INTO case_facts (case_id, source, category_id, grid_id)
SELECT k.case_id, k.source, k.category_id, k.grid_id FROM rebuild_keys k
 WHERE NOT EXISTS (SELECT 1 FROM case_facts f WHERE f.case_id = k.case_id);
DROP TABLE rebuild_keys;
END
$$;

SELECT cityhub_case_facts_rebuild();
-- Fresh statistics for a database that has cases, and none for an empty one: a table analyzed
-- empty is planned as one page, and the trigger's lookups, planned once per session at the first
-- event of a bulk load (hub.demo writes the whole history in one transaction), would then scan
-- the table for every event (a never-analyzed table is assumed to be at least ten pages, and its
-- primary-key lookups stay index scans).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM case_facts) THEN
        ANALYZE case_facts;
        ANALYZE case_spans;
    END IF;
END
$$;
