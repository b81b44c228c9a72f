-- The posts' tasks (岗位评价, storage/evaluation_posts.py) as rows: one per event that is a post's
-- task, with the moment the task began and what later made it good or bad, kept in each event's
-- transaction, so that a period's figures are an index range scan of the period's tasks instead of
-- a search of each case's events per event (over 1,000,000 cases a month of the four posts took
-- ~15 s that way).
--
-- case_tasks: one row per task event --
--   kind 'report'   report / quick_report (监督员 上报): since = at; valid_at = when the report
--                   became valid: the case's registration, or at once for a quick report;
--   kind 'decide'   register / reject (坐席 受理; the registrations are 立案): since = the report;
--                   a registration's undone_at = the void (作废) that made it inaccurate;
--   kind 'dispatch' dispatch (派遣员 派遣): since = the last return before it (回退), else the
--                   registration; undone_at = the return that sent it back before the next dispatch;
--   kind 'check'    verify_pass / verify_fail (核查): since = the request_verify it answered;
--   kind 'confirm'  confirm_pass / confirm_fail (核实): since = the request_confirm it answered.
-- "Good as of the period's end" is then a range condition on the row (valid_at < end; undone_at
-- absent or at or after end), so a closed period's figures never move. repeated: the case has
-- more than one task of the kind (a re-dispatch, a second check or confirmation); only those rows
-- need grouping per user and case to count a case once, the others are one user's case each.
-- case_task_heads: the trigger's bookkeeping, one row per case: the rows a later event updates
--   (the report, the registration, the last dispatch / check / confirmation) and the moments a
--   later task is timed from (the report, the registration, the last return and requests).
--
-- The tables are written by their own AFTER INSERT trigger on case_events (0016's and 0017's
-- triggers are left as they are; this one reads neither's tables). Every statement of the trigger
-- reaches its row by primary key (the heads row names the rows): a bulk load in one transaction
-- (hub.demo) runs before any ANALYZE, and a plan chosen for empty tables must not turn into a
-- scan per event. cityhub_case_tasks_rebuild() derives both tables again from the whole log with
-- set-based SQL written apart from the trigger (the definitions the figures had before: the
-- request a check answered is the last one before it, and so on);
-- tests/storage/test_evaluation_tasks.py compares the two, and the migration fills the tables
-- with it.

-- No foreign key to cases: case_events already references it and is append-only, so a case with
-- tasks is never deleted; the key's check would lock the case's row for every task event (about
-- 40 % of the trigger's cost, measured over 1,000,000 cases).
CREATE TABLE case_tasks (
    case_id    bigint NOT NULL,
    version    integer NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('report', 'decide', 'dispatch', 'check', 'confirm')),
    action     text NOT NULL,
    actor_id   integer,
    at         timestamptz NOT NULL,
    since      timestamptz,   -- the moment the task began
    valid_at   timestamptz,   -- report: registered (a quick report: at)
    undone_at  timestamptz,   -- registration: voided; dispatch: returned before the next dispatch
    repeated   boolean NOT NULL DEFAULT false,  -- another task of this kind on the case
    PRIMARY KEY (case_id, version)
);
CREATE INDEX case_tasks_kind_at_idx ON case_tasks (kind, at);
-- the few rows that are grouped per user and case (a few per cent of dispatches and checks)
CREATE INDEX case_tasks_repeated_idx ON case_tasks (kind, at) WHERE repeated;

CREATE TABLE case_task_heads (
    case_id               bigint PRIMARY KEY,
    report_version        integer,
    reported_at           timestamptz,
    register_version      integer,
    registered_at         timestamptz,
    returned_at           timestamptz,   -- the latest return
    dispatch_version      integer,       -- the last dispatch
    check_version         integer,       -- the last verify_pass / verify_fail
    confirm_version       integer,       -- the last confirm_pass / confirm_fail
    verify_requested_at   timestamptz,   -- the last request_verify
    confirm_requested_at  timestamptz    -- the last request_confirm
);

CREATE FUNCTION cityhub_task_kind(action text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN action IN ('report', 'quick_report') THEN 'report'
                WHEN action IN ('register', 'reject') THEN 'decide'
                WHEN action = 'dispatch' THEN 'dispatch'
                WHEN action IN ('verify_pass', 'verify_fail') THEN 'check'
                WHEN action IN ('confirm_pass', 'confirm_fail') THEN 'confirm' END
$$;

CREATE FUNCTION cityhub_case_tasks_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h case_task_heads%ROWTYPE;
    had_row boolean;
    k text := cityhub_task_kind(NEW.action);
    prev integer;          -- the case's previous task of the kind
    began timestamptz;
BEGIN
    SELECT * INTO h FROM case_task_heads WHERE case_id = NEW.case_id;
    had_row := FOUND;
    IF NOT had_row THEN
        h.case_id := NEW.case_id;
    END IF;

    IF k = 'report' THEN
        began := NEW.at;
        h.report_version := coalesce(h.report_version, NEW.version);
        h.reported_at := coalesce(h.reported_at, NEW.at);
    ELSIF k = 'decide' THEN
        began := h.reported_at;
        IF NEW.action = 'register' THEN
            IF h.report_version IS NOT NULL THEN
                UPDATE case_tasks SET valid_at = coalesce(valid_at, NEW.at)
                 WHERE case_id = NEW.case_id AND version = h.report_version;
            END IF;
            h.register_version := coalesce(h.register_version, NEW.version);
            h.registered_at := coalesce(h.registered_at, NEW.at);
        END IF;
    ELSIF k = 'dispatch' THEN
        began := coalesce(h.returned_at, h.registered_at);
        prev := h.dispatch_version;
        h.dispatch_version := NEW.version;
    ELSIF k = 'check' THEN
        began := h.verify_requested_at;
        prev := h.check_version;
        h.check_version := NEW.version;
    ELSIF k = 'confirm' THEN
        began := h.confirm_requested_at;
        prev := h.confirm_version;
        h.confirm_version := NEW.version;
    ELSIF NEW.action = 'return' THEN
        IF h.dispatch_version IS NOT NULL THEN
            UPDATE case_tasks SET undone_at = least(undone_at, NEW.at)
             WHERE case_id = NEW.case_id AND version = h.dispatch_version;
        END IF;
        h.returned_at := greatest(h.returned_at, NEW.at);
    ELSIF NEW.action = 'void' THEN
        IF h.register_version IS NOT NULL THEN
            UPDATE case_tasks SET undone_at = least(undone_at, NEW.at)
             WHERE case_id = NEW.case_id AND version = h.register_version;
        END IF;
    ELSIF NEW.action = 'request_verify' THEN
        h.verify_requested_at := NEW.at;
    ELSIF NEW.action = 'request_confirm' THEN
        h.confirm_requested_at := NEW.at;
    END IF;

    IF k IS NOT NULL THEN
        IF prev IS NOT NULL THEN
            UPDATE case_tasks SET repeated = true WHERE case_id = NEW.case_id AND version = prev;
        END IF;
        INSERT INTO case_tasks (case_id, version, kind, action, actor_id, at, since, valid_at,
                                repeated)
        VALUES (NEW.case_id, NEW.version, k, NEW.action, NEW.actor_id, NEW.at, began,
                CASE WHEN NEW.action = 'quick_report' THEN NEW.at END, prev IS NOT NULL);
    END IF;

    IF had_row THEN
        UPDATE case_task_heads SET
            (report_version, reported_at, register_version, registered_at, returned_at,
             dispatch_version, check_version, confirm_version, verify_requested_at,
             confirm_requested_at)
          = (h.report_version, h.reported_at, h.register_version, h.registered_at, h.returned_at,
             h.dispatch_version, h.check_version, h.confirm_version, h.verify_requested_at,
             h.confirm_requested_at)
         WHERE case_id = NEW.case_id;
    ELSE
        INSERT INTO case_task_heads SELECT h.*;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER case_events_tasks AFTER INSERT ON case_events
    FOR EACH ROW
    WHEN (NEW.action IN ('report', 'quick_report', 'register', 'reject', 'dispatch', 'return',
                         'void', 'request_verify', 'verify_pass', 'verify_fail', 'request_confirm',
                         'confirm_pass', 'confirm_fail'))
    EXECUTE FUNCTION cityhub_case_tasks_apply();

-- The same tables from the whole log at once (the migration's fill, and the test's reference).
-- Written set-based and apart from the trigger on purpose: the two must agree. plpgsql, so that
-- each statement is planned when it runs (after the ANALYZE of the rows before it).
CREATE FUNCTION cityhub_case_tasks_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
TRUNCATE case_tasks, case_task_heads;
-- the per-case aggregates below are of every case at once
SET LOCAL work_mem = '256MB';

INSERT INTO case_tasks (case_id, version, kind, action, actor_id, at, since, valid_at, undone_at,
                        repeated)
WITH c AS (
    -- each case's report, registration and void (a case has at most one of each)
    SELECT e.case_id,
           min(e.at) FILTER (WHERE e.action IN ('report', 'quick_report')) AS reported_at,
           min(e.at) FILTER (WHERE e.action = 'register') AS registered_at,
           min(e.version) FILTER (WHERE e.action = 'register') AS register_version,
           min(e.at) FILTER (WHERE e.action = 'void') AS voided_at,
           min(e.version) FILTER (WHERE e.action = 'void') AS void_version
      FROM case_events e
     WHERE e.action IN ('report', 'quick_report', 'register', 'void')
     GROUP BY e.case_id
),
t AS (
    SELECT e.case_id, e.version, cityhub_task_kind(e.action) AS kind, e.action, e.actor_id, e.at,
           lead(e.version) OVER k AS next_version,
           count(*) OVER (PARTITION BY e.case_id, cityhub_task_kind(e.action)) > 1 AS repeated
      FROM case_events e
     WHERE cityhub_task_kind(e.action) IS NOT NULL
    WINDOW k AS (PARTITION BY e.case_id, cityhub_task_kind(e.action) ORDER BY e.version)
)
SELECT t.case_id, t.version, t.kind, t.action, t.actor_id, t.at,
       CASE t.kind
           WHEN 'report' THEN t.at
           WHEN 'decide' THEN c.reported_at
           WHEN 'dispatch' THEN coalesce((
                SELECT max(r.at) FROM case_events r
                 WHERE r.case_id = t.case_id AND r.version < t.version AND r.action = 'return'),
                c.registered_at)
           WHEN 'check' THEN (
                SELECT r.at FROM case_events r
                 WHERE r.case_id = t.case_id AND r.version < t.version
                   AND r.action = 'request_verify'
                 ORDER BY r.version DESC LIMIT 1)
           WHEN 'confirm' THEN (
                SELECT r.at FROM case_events r
                 WHERE r.case_id = t.case_id AND r.version < t.version
                   AND r.action = 'request_confirm'
                 ORDER BY r.version DESC LIMIT 1)
       END,
       CASE WHEN t.action = 'quick_report' THEN t.at
            WHEN t.kind = 'report' THEN c.registered_at END,
       CASE WHEN t.action = 'register' AND c.void_version > t.version THEN c.voided_at
            WHEN t.kind = 'dispatch' THEN (
                SELECT min(r.at) FROM case_events r
                 WHERE r.case_id = t.case_id AND r.version > t.version
                   AND (t.next_version IS NULL OR r.version < t.next_version)
                   AND r.action = 'return')
       END,
       t.repeated
  FROM t JOIN c ON c.case_id = t.case_id
 ORDER BY t.kind, t.at;  -- a kind's period is then a run of pages, not every page
IF EXISTS (SELECT 1 FROM case_tasks) THEN  -- analyzed empty, a table is planned as one page
    ANALYZE case_tasks;
END IF;

INSERT INTO case_task_heads (case_id, report_version, reported_at, register_version,
                             registered_at, returned_at, dispatch_version, check_version,
                             confirm_version, verify_requested_at, confirm_requested_at)
SELECT e.case_id,
       min(e.version) FILTER (WHERE e.action IN ('report', 'quick_report')),
       min(e.at) FILTER (WHERE e.action IN ('report', 'quick_report')),
       min(e.version) FILTER (WHERE e.action = 'register'),
       min(e.at) FILTER (WHERE e.action = 'register'),
       max(e.at) FILTER (WHERE e.action = 'return'),
       max(e.version) FILTER (WHERE e.action = 'dispatch'),
       max(e.version) FILTER (WHERE e.action IN ('verify_pass', 'verify_fail')),
       max(e.version) FILTER (WHERE e.action IN ('confirm_pass', 'confirm_fail')),
       (array_agg(e.at ORDER BY e.version DESC) FILTER (WHERE e.action = 'request_verify'))[1],
       (array_agg(e.at ORDER BY e.version DESC) FILTER (WHERE e.action = 'request_confirm'))[1]
  FROM case_events e
 WHERE e.action IN ('report', 'quick_report', 'register', 'reject', 'dispatch', 'return', 'void',
                    'request_verify', 'verify_pass', 'verify_fail', 'request_confirm',
                    'confirm_pass', 'confirm_fail')
 GROUP BY e.case_id;
IF EXISTS (SELECT 1 FROM case_task_heads) THEN  -- analyzed empty, a table is planned as one page
    ANALYZE case_task_heads;
END IF;
END
$$;

SELECT cityhub_case_tasks_rebuild();
