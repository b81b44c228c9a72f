-- The video wall (issue 9): the camera registry. A camera has a main and an optional sub stream
-- (RTSP), stored WITHOUT credentials: the username and password are separate columns, used by the
-- hub's ingest and never sent to browsers. The grid is resolved from the location (the unit grid
-- whose boundary contains the point); the speaker is the one the seat may warn through from the
-- camera's tile: chosen explicitly, or (speaker_auto) the nearest active one within 200 m.

CREATE TABLE cameras (
    id            serial PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    -- No user:password@ in a stored URL: credentials live in username and password only.
    main_url      text NOT NULL CHECK (main_url ~* '^rtsps?://[^@]+$' AND length(main_url) <= 1000),
    sub_url       text CHECK (sub_url ~* '^rtsps?://[^@]+$' AND length(sub_url) <= 1000),
    username      text CHECK (length(username) BETWEEN 1 AND 200),
    password      text CHECK (length(password) BETWEEN 1 AND 200),
    lon           double precision CHECK (lon BETWEEN -180 AND 180),
    lat           double precision CHECK (lat BETWEEN -90 AND 90),
    grid_id       integer REFERENCES grids (id),
    speaker_id    integer REFERENCES speakers (id) ON DELETE SET NULL,
    -- true: speaker_id is the nearest speaker, chosen again when the location changes.
    speaker_auto  boolean NOT NULL DEFAULT true,
    tags          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 16),
    -- A pinned camera's stream stays open even when nobody watches it.
    pinned        boolean NOT NULL DEFAULT false,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((lon IS NULL) = (lat IS NULL)),
    CHECK (grid_id IS NULL OR lon IS NOT NULL),
    CHECK (password IS NULL OR username IS NOT NULL)
);
CREATE INDEX cameras_grid_idx ON cameras (grid_id);
CREATE INDEX cameras_speaker_idx ON cameras (speaker_id) WHERE speaker_id IS NOT NULL;
CREATE INDEX cameras_tags_idx ON cameras USING gin (tags);
