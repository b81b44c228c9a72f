-- Cases whose department clock started before migration 0011 have no clock_since, and the alarm
-- scheduler (storage/alarms.py running_clocks) skips them: on a deployment that upgraded, its
-- running cases would never raise 黄灯/红灯. Their clock started with the event that set the deadline
-- they run on: the open deadline span of migration 0016 (case_facts.deadline_version) says which.
-- Missed alarms then fire once, as after any restart (hub/cases/alarms.py); time_limit_s stays NULL,
-- so the shares are taken from the category's limit (migration 0011's rule for such rows).
UPDATE cases c
   SET clock_since = s.at
  FROM case_facts f
  JOIN case_spans s ON s.case_id = f.case_id AND s.version = f.deadline_version
 WHERE c.id = f.case_id
   AND c.clock_since IS NULL
   AND c.state IN ('dispatched', 'handling')
   AND c.deadline IS NOT NULL
   AND c.paused_remaining_s IS NULL;
