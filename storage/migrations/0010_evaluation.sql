-- The evaluation indicators (storage/evaluation.py) read the case event log of one period.
--
-- A period's cases are found by two index range scans instead of a pass over the whole log:
-- the events that happened in the period (case_events_at_idx), and the events that set a deadline
-- (or asked for one) falling in the period (case_events_deadline_idx) -- a case due in the period
-- may have had no event in it. Each candidate's history before the period's end is then read by
-- the (case_id, version) unique index.
--
-- cityhub_event_deadline is declared IMMUTABLE although text -> timestamptz is only STABLE: the
-- service writes deadlines with datetime.isoformat() of aware instants, which always carry their
-- UTC offset, so the value never depends on the session's TimeZone or DateStyle.
--
-- Plans measured on 3,000 generated cases (about 25,000 events) and one week:
--   without these indexes: Seq Scan on case_events (twice: the period's events and the deadlines),
--     Hash Join with cases, ~9 ms;
--   with them: Bitmap Index Scan on case_events_at_idx + Bitmap Index Scan on
--     case_events_deadline_idx -> HashAggregate (candidates) -> Nested Loop with Index Scan using
--     case_events_case_id_version_key, ~3 ms; the cost grows with the period's cases, not the log.

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
