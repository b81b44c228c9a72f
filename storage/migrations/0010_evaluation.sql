-- The evaluation indicators (storage/evaluation.py) read the case event log of one period.
--
-- A period's cases are found by two index range scans instead of a pass over the whole log:
-- the events that happened in the period (case_events_at_idx), and the events that set a deadline
-- (or asked for one) falling in the period (case_events_deadline_idx) -- a case due in the period
-- may have had no event in it. Each candidate's history before the period's end is then folded
-- once (see the plans below for how PostgreSQL reads it).
--
-- cityhub_event_deadline is declared IMMUTABLE although text -> timestamptz is only STABLE: the
-- service writes deadlines with datetime.isoformat() of aware instants, which always carry their
-- UTC offset, so the value never depends on the session's TimeZone or DateStyle.
--
-- Plans measured (EXPLAIN ANALYZE, PostgreSQL 16, a shared 2-core machine) on 3,514 cases and
-- 24,956 events: the demo city's 400 cases up to "now" and 3,114 generated through the workflow in
-- the week of 2019-04-08 (tests/storage/test_evaluation.py):
--   a demo week (64 events in it, 12 deadlines falling in it): with these indexes, Bitmap Index Scan
--     on case_events_at_idx + Index Scan on case_events_deadline_idx, 6.5 ms (8 ms per call);
--     without, two Seq Scans on case_events for the candidates, 20-22 ms (24 ms per call);
--   the generated week (18,388 of the events in it): the planner rightly reads the period's events
--     by Seq Scan either way and uses case_events_deadline_idx (1 ms against a 20 ms Seq Scan);
--     the per-case fold (GroupAggregate over the candidates' ~22,000 events) dominates: 70-100 ms.
-- An approved extension's deadline is read by Index Scan Backward on
-- case_events_case_id_version_key. At this size the candidates' histories are read by one Seq Scan
-- of case_events and a Hash Join (cheaper than 3,000 index probes here); over 1,000,000 cases
-- that choice is the benchmark slice's to check (bench/evaluation.py, issue 11).
-- The full published week (54,854 cases, about 400,000 events) took ~2.3 s per statement on that
-- machine under a load average of 6-16.
-- Over 1,000,000 cases and 7,056,055 events (bench/evaluation.py, docs/benchmarks.md) both indexes
-- still find a month's 147,632 candidates in ~250 ms; their histories are then read by a Seq Scan
-- of the whole log and a Hash Join (2.6 s), and the fold takes ~1 s: 6.8 s for a month, 40 s for
-- a year. The fold's cost per event, not the candidate search, is what misses the issue's goals.

CREATE FUNCTION cityhub_event_deadline(action text, data jsonb) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN action IN ('dispatch', 'rework', 'verify_fail', 'resume')
            THEN (data ->> 'deadline')::timestamptz
        WHEN action = 'request_extension' THEN (data ->> 'extension_until')::timestamptz
    END
$$;

CREATE INDEX case_events_at_idx ON case_events (at);
CREATE INDEX case_events_deadline_idx ON case_events (cityhub_event_deadline(action, data))
    WHERE action IN ('dispatch', 'rework', 'verify_fail', 'resume', 'request_extension');
