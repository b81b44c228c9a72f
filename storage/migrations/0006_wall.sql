-- The video wall (issue 9): each seat's saved layouts, and patrol rounds (轮巡) with what every
-- camera of a round came to: shown (for how long) or missed (and why). A round's whole state is kept
-- as it changes (``state``, the pure core's snapshot), so a page reload or a hub restart resumes it.

CREATE TABLE wall_layouts (
    user_id     integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    tiles       smallint NOT NULL CHECK (tiles IN (1, 4, 9, 16, 25, 36, 48)),
    -- One entry per tile: a camera id, or null for an empty tile.
    cameras     integer[] NOT NULL DEFAULT '{}' CHECK (cardinality(cameras) <= 48),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, name)
);

CREATE TABLE patrol_rounds (
    id          bigserial PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users (id),
    tiles       smallint NOT NULL CHECK (tiles BETWEEN 1 AND 48),
    period_s    integer NOT NULL CHECK (period_s BETWEEN 60 AND 86400),
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    -- running, done (every page shown), stopped (by the seat)
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'stopped')),
    state       jsonb NOT NULL,
    CHECK ((status = 'running') = (ended_at IS NULL))
);
-- At most one running round per seat.
CREATE UNIQUE INDEX patrol_rounds_running_idx ON patrol_rounds (user_id) WHERE status = 'running';

-- Filled as pages end: the record of the round (no foreign key on camera_id, so the record stays
-- readable after a camera is removed; the name is kept).
CREATE TABLE patrol_marks (
    round_id         bigint NOT NULL REFERENCES patrol_rounds (id) ON DELETE CASCADE,
    camera_id        integer NOT NULL,
    camera_name      text NOT NULL DEFAULT '',
    page             smallint NOT NULL,
    mark             text NOT NULL CHECK (mark IN ('shown', 'missed')),
    visible_seconds  real NOT NULL DEFAULT 0,
    reason           text NOT NULL DEFAULT '',
    marked_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, camera_id)
);
CREATE INDEX patrol_marks_missed_idx ON patrol_marks (camera_id, round_id DESC) WHERE mark = 'missed';
