-- Voice warnings (issue 8): the street loudspeakers and their groups, the clip library, every
-- warning played (who, which clip or live talk, outcome per speaker) and the schedules that play
-- clips on their own. Speaker credentials (username, password) are stored here for the SIP digest
-- and are never sent to browsers. The audio lives in the content-addressed store: clips keep the
-- SHA-256 of the G.711 A-law file the speakers get and of the WAV preview browsers play.

CREATE TABLE speakers (
    id           serial PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    uri          text NOT NULL CHECK (uri ~* '^sips?:' AND length(uri) <= 400),
    username     text CHECK (length(username) <= 200),
    password     text CHECK (length(password) <= 200),
    lon          double precision CHECK (lon BETWEEN -180 AND 180),
    lat          double precision CHECK (lat BETWEEN -90 AND 90),
    grid_id      integer REFERENCES grids (id),
    camera_codes text[] NOT NULL DEFAULT '{}',
    auto_answer  text NOT NULL DEFAULT 'call-info'
                   CHECK (auto_answer IN ('call-info', 'alert-info', 'none')),
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- A location is a point or nothing; a password needs a username.
    CHECK ((lon IS NULL) = (lat IS NULL)),
    CHECK (password IS NULL OR username IS NOT NULL)
);
CREATE INDEX speakers_grid_idx ON speakers (grid_id);

CREATE TABLE speaker_groups (
    id           serial PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    description  text NOT NULL DEFAULT ''
);

CREATE TABLE speaker_group_members (
    group_id    integer NOT NULL REFERENCES speaker_groups (id) ON DELETE CASCADE,
    speaker_id  integer NOT NULL REFERENCES speakers (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, speaker_id)
);
CREATE INDEX speaker_group_members_speaker_idx ON speaker_group_members (speaker_id);

CREATE TABLE clips (
    id              serial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    category        text NOT NULL DEFAULT '' CHECK (length(category) <= 50),
    duration_ms     integer NOT NULL CHECK (duration_ms > 0),
    -- A-law (PCMA) 8 kHz mono in a WAV container (format 6), and a 16-bit 8 kHz WAV preview.
    g711_sha256     text NOT NULL CHECK (g711_sha256 ~ '^[0-9a-f]{64}$'),
    preview_sha256  text NOT NULL CHECK (preview_sha256 ~ '^[0-9a-f]{64}$'),
    source          text NOT NULL CHECK (source IN ('upload', 'tts')),
    text            text CHECK (length(text) <= 2000),
    created_by      integer REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Deleted clips stay for the warnings that played them; the library no longer lists them.
    deleted_at      timestamptz,
    CHECK ((source = 'tts') = (text IS NOT NULL))
);
CREATE INDEX clips_library_idx ON clips (category, name) WHERE deleted_at IS NULL;

CREATE TABLE warning_schedules (
    id             serial PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    clip_id        integer NOT NULL REFERENCES clips (id),
    speaker_ids    integer[] NOT NULL DEFAULT '{}',
    group_ids      integer[] NOT NULL DEFAULT '{}',
    repeat         smallint NOT NULL DEFAULT 1 CHECK (repeat BETWEEN 1 AND 10),
    every_minutes  integer NOT NULL CHECK (every_minutes BETWEEN 1 AND 1440),
    -- Local times of the city's time zone; a slot fires at from_time + k * every_minutes <= until_time.
    from_time      time NOT NULL,
    until_time     time NOT NULL,
    weekdays       smallint[] NOT NULL DEFAULT '{1,2,3,4,5,6,7}'
                     CHECK (cardinality(weekdays) > 0 AND weekdays <@ '{1,2,3,4,5,6,7}'::smallint[]),
    active         boolean NOT NULL DEFAULT true,
    created_by     integer REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The last slot claimed (claim_schedule_fire): two hub processes never both fire one slot.
    last_fire_at   timestamptz,
    CHECK (from_time <= until_time),
    CHECK (cardinality(speaker_ids) + cardinality(group_ids) > 0)
);

CREATE TABLE warnings (
    id           bigserial PRIMARY KEY,
    started_by   integer REFERENCES users (id),  -- null: fired by a schedule
    clip_id      integer REFERENCES clips (id),  -- null: live talk
    kind         text NOT NULL CHECK (kind IN ('clip', 'live')),
    repeat       smallint NOT NULL DEFAULT 1 CHECK (repeat BETWEEN 1 AND 10),
    case_id      bigint REFERENCES cases (id),
    schedule_id  integer REFERENCES warning_schedules (id) ON DELETE SET NULL,
    state        text NOT NULL DEFAULT 'running'
                   CHECK (state IN ('running', 'done', 'stopped', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    stopped_by   integer REFERENCES users (id),
    CHECK ((kind = 'clip') = (clip_id IS NOT NULL)),
    CHECK ((state = 'running') = (ended_at IS NULL))
);
CREATE INDEX warnings_case_idx ON warnings (case_id, id DESC) WHERE case_id IS NOT NULL;
CREATE INDEX warnings_running_idx ON warnings (id) WHERE state = 'running';

-- One row per speaker called. The speaker's name is kept as it was, so the log still reads after
-- the speaker is renamed or removed (speaker_id then names no row: no foreign key on purpose).
CREATE TABLE warning_targets (
    warning_id    bigint NOT NULL REFERENCES warnings (id) ON DELETE CASCADE,
    speaker_id    integer NOT NULL,
    speaker_name  text NOT NULL DEFAULT '',
    outcome       text NOT NULL DEFAULT 'pending'
                    CHECK (outcome IN ('pending', 'playing', 'delivered', 'busy', 'rejected',
                                       'no_answer', 'unreachable', 'stopped', 'failed')),
    status        integer CHECK (status BETWEEN 100 AND 699),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    started_at    timestamptz,
    ended_at      timestamptz,
    packets       integer NOT NULL DEFAULT 0 CHECK (packets >= 0),
    PRIMARY KEY (warning_id, speaker_id)
);
CREATE INDEX warning_targets_speaker_idx ON warning_targets (speaker_id, warning_id DESC);
