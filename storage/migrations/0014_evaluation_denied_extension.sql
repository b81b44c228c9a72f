-- With CITYHUB_DEADLINE_PAUSE=extension (issue 11, hub/core/deadlines.py) a pending extension
-- request freezes the department's clock and a denial restores the time that was left: the
-- deny_extension event then carries the new deadline in data.deadline. The evaluation reads
-- deadlines from the event log (storage/evaluation.py), so such an event sets the deadline too,
-- and a case whose restored deadline falls in a period must be found by the deadline index.
-- (Without pausing, a denial sets no deadline: data has none, and nothing changes.)

CREATE OR REPLACE FUNCTION cityhub_event_deadline(action text, data jsonb) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN action IN ('dispatch', 'rework', 'verify_fail', 'resume', 'deny_extension')
            THEN (data ->> 'deadline')::timestamptz
        WHEN action = 'request_extension' THEN (data ->> 'extension_until')::timestamptz
    END
$$;

DROP INDEX case_events_deadline_idx;
CREATE INDEX case_events_deadline_idx ON case_events (cityhub_event_deadline(action, data))
    WHERE action IN ('dispatch', 'rework', 'verify_fail', 'resume', 'request_extension',
                     'deny_extension');
