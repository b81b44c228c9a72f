-- The urgent marks (紧急) of each case as spans, for the urgent figures (storage/evaluation_sources.py).
--
-- A case is urgent "as of a period's end" when the last event before the end that carried
-- data.urgent (the report, a registration or a dispatch: hub.core.workflow.URGENT_MARKING) said
-- true. Before this migration the figures searched every member's events for that mark, which over
-- a year reads the whole log. case_urgency keeps one row per marking event, with the moment the next
-- mark replaced it (until: NULL while it is the last), so "as of the end" is a range condition on a
-- row, as for migration 0016's case_spans: at < end AND (until IS NULL OR until >= end). A mark set
-- at or after the end is not read at all, and the one it replaced is still in force at the end, so
-- a closed period's figures do not move. The partial index holds only the true marks (urgent cases
-- are few); the urgent figures read it and nothing else to know which cases are urgent.
--
-- The table is written by its own AFTER INSERT trigger on case_events (0016's
-- cityhub_case_facts_apply is left as it is); cityhub_case_urgency_rebuild() derives it again from
-- the whole log set-based, written apart from the trigger; tests/storage/test_evaluation_sources.py
-- compares the two, and the migration fills the table with it.

CREATE TABLE case_urgency (
    case_id  bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    version  integer NOT NULL,
    at       timestamptz NOT NULL,
    urgent   boolean NOT NULL,
    until    timestamptz,   -- the next mark's moment; NULL while this one is the last
    PRIMARY KEY (case_id, version)
);
CREATE INDEX case_urgency_urgent_idx ON case_urgency (at) INCLUDE (case_id, until) WHERE urgent;

CREATE FUNCTION cityhub_case_urgency_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'urgent' THEN
        UPDATE case_urgency SET until = NEW.at WHERE case_id = NEW.case_id AND until IS NULL;
        INSERT INTO case_urgency (case_id, version, at, urgent)
        VALUES (NEW.case_id, NEW.version, NEW.at, coalesce((NEW.data ->> 'urgent')::boolean, false));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER case_events_urgency AFTER INSERT ON case_events
    FOR EACH ROW WHEN (NEW.data ? 'urgent') EXECUTE FUNCTION cityhub_case_urgency_apply();

-- The same table from the whole log at once (the migration's fill, and the test's reference).
CREATE FUNCTION cityhub_case_urgency_rebuild() RETURNS void LANGUAGE sql AS $$
TRUNCATE case_urgency;

INSERT INTO case_urgency (case_id, version, at, urgent, until)
SELECT e.case_id, e.version, e.at, coalesce((e.data ->> 'urgent')::boolean, false),
       lead(e.at) OVER (PARTITION BY e.case_id ORDER BY e.version)
  FROM case_events e
 WHERE e.data ? 'urgent';
$$;

SELECT cityhub_case_urgency_rebuild();
