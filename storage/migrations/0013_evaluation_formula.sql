-- The city's composite evaluation formula (综合评价公式) as data: one row, the JSON object
-- hub.core.scoring.parse_formula reads (checked there before it is stored). No row: the documented
-- default (hub.core.scoring.DEFAULT_FORMULA).
CREATE TABLE evaluation_formula (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    formula jsonb NOT NULL CHECK (jsonb_typeof(formula) = 'object'),
    updated_by integer REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);
