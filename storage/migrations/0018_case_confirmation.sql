-- 核实 (confirmation before registration): a reported case the seat sends to the grid's field
-- supervisor waits in the new state 'confirming' (核实中) until the supervisor answers
-- (confirm_pass 属实 / confirm_fail 不属实) and it is back in 'reported'. The actions need no
-- change here (case_events.action is not constrained); the cases' state CHECK gains the state.
ALTER TABLE cases DROP CONSTRAINT cases_state_check;
ALTER TABLE cases ADD CONSTRAINT cases_state_check CHECK (state IN
    ('reported', 'confirming', 'quick_handling', 'registered', 'dispatched', 'returned',
     'handling', 'deferred', 'feedback', 'verifying', 'verified', 'closed', 'rejected', 'voided'));
