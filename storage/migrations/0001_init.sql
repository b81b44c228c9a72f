-- cityhub schema, version 1: grids, departments, categories, users and sessions, cases with their
-- append-only event log, attachments, components, the working-time calendar, the audit log.
-- States and actions are stored as text and checked here against the enums in hub/workflow.py.

CREATE TABLE grids (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[0-9]{6,16}$'),
    name        text NOT NULL,
    level       smallint NOT NULL CHECK (level IN (1, 2)),
    parent_id   integer REFERENCES grids (id),
    -- WGS84 lon/lat ring, built-in polygon type: x = longitude, y = latitude.
    boundary    polygon NOT NULL,
    area_m2     double precision NOT NULL DEFAULT 0,
    CHECK ((level = 1) = (parent_id IS NULL))
);
CREATE INDEX grids_boundary_idx ON grids USING gist (boundary);
CREATE INDEX grids_parent_idx ON grids (parent_id);

CREATE TABLE departments (
    id               serial PRIMARY KEY,
    code             text NOT NULL UNIQUE,
    name             text NOT NULL,
    is_coordinating  boolean NOT NULL DEFAULT false,
    phone            text NOT NULL DEFAULT '',
    active           boolean NOT NULL DEFAULT true
);
-- At most one coordinating department (receives out-of-jurisdiction cases).
CREATE UNIQUE INDEX departments_one_coordinating ON departments (is_coordinating) WHERE is_coordinating;

CREATE TABLE categories (
    id                     serial PRIMARY KEY,
    code                   text NOT NULL UNIQUE,
    kind                   text NOT NULL CHECK (kind IN ('component', 'event')),
    major_code             text NOT NULL DEFAULT '',
    major_name             text NOT NULL,
    minor_code             text NOT NULL DEFAULT '',
    minor_name             text NOT NULL,
    time_limit_value       integer CHECK (time_limit_value > 0),
    time_limit_unit        text CHECK (time_limit_unit IN ('hours', 'days')),
    time_limit_text        text NOT NULL DEFAULT '',
    urgency                smallint NOT NULL DEFAULT 2 CHECK (urgency BETWEEN 1 AND 3),
    default_department_id  integer REFERENCES departments (id),
    source                 text NOT NULL DEFAULT '',
    active                 boolean NOT NULL DEFAULT true,
    CHECK ((time_limit_value IS NULL) = (time_limit_unit IS NULL))
);

CREATE TABLE users (
    id                   serial PRIMARY KEY,
    username             text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.-]{2,64}$'),
    display_name         text NOT NULL,
    password_hash        text NOT NULL,
    role                 text NOT NULL CHECK (role IN
                           ('admin', 'seat', 'dispatcher', 'department', 'supervisor', 'agent', 'viewer')),
    department_id        integer REFERENCES departments (id),
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'department') = (department_id IS NOT NULL))
);

-- Grids a field supervisor covers (a first-level grid covers all its second-level grids).
CREATE TABLE user_grids (
    user_id  integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    grid_id  integer NOT NULL REFERENCES grids (id),
    PRIMARY KEY (user_id, grid_id)
);

-- Sessions (browser cookies) and bearer tokens: only a SHA-256 of the secret is stored.
CREATE TABLE sessions (
    token_hash    bytea PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('cookie', 'bearer')),
    csrf_token    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    user_agent    text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

-- Working-time calendar exceptions: public holidays (is_workday = false) and make-up working days
-- on weekends (调休, is_workday = true). Ordinary weekdays and weekends are not listed.
CREATE TABLE calendar_days (
    day         date PRIMARY KEY,
    is_workday  boolean NOT NULL,
    note        text NOT NULL DEFAULT ''
);

CREATE TABLE components (
    id                        text PRIMARY KEY CHECK (id ~ '^[0-9]{16}$'),
    category_id               integer NOT NULL REFERENCES categories (id),
    name                      text NOT NULL,
    owner_department_id       integer REFERENCES departments (id),
    maintainer_department_id  integer REFERENCES departments (id),
    grid_id                   integer REFERENCES grids (id),
    state                     text NOT NULL DEFAULT 'normal'
                                CHECK (state IN ('normal', 'damaged', 'lost', 'removed')),
    lon                       double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    lat                       double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    data_source               text NOT NULL DEFAULT '',
    installed_on              date,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX components_grid_idx ON components (grid_id);

CREATE TABLE cases (
    id                       bigserial PRIMARY KEY,
    case_no                  text NOT NULL UNIQUE,
    source                   text NOT NULL CHECK (source IN
                               ('supervisor', 'hotline', 'video', 'sensor', 'public')),
    category_id              integer NOT NULL REFERENCES categories (id),
    state                    text NOT NULL CHECK (state IN
                               ('reported', 'quick_handling', 'registered', 'dispatched', 'returned',
                                'handling', 'deferred', 'feedback', 'verifying', 'verified',
                                'closed', 'rejected', 'voided')),
    version                  integer NOT NULL DEFAULT 1,
    lon                      double precision CHECK (lon BETWEEN -180 AND 180),
    lat                      double precision CHECK (lat BETWEEN -90 AND 90),
    address                  text NOT NULL DEFAULT '',
    grid_id                  integer REFERENCES grids (id),
    component_id             text REFERENCES components (id),
    description              text NOT NULL DEFAULT '',
    reporter_id              integer REFERENCES users (id),
    -- For hotline and public reports: who called, how to reach them (shown only to staff).
    contact_name             text NOT NULL DEFAULT '',
    contact_phone            text NOT NULL DEFAULT '',
    department_id            integer REFERENCES departments (id),
    is_quick                 boolean NOT NULL DEFAULT false,
    urgency                  smallint NOT NULL DEFAULT 2,
    deadline                 timestamptz,
    pending_extension_until  timestamptz,
    reject_reason            text CHECK (reject_reason IN ('invalid', 'duplicate')),
    duplicate_of             bigint REFERENCES cases (id),
    rework_count             integer NOT NULL DEFAULT 0,
    extension_count          integer NOT NULL DEFAULT 0,
    escalation_count         integer NOT NULL DEFAULT 0,
    reported_at              timestamptz NOT NULL DEFAULT now(),
    registered_at            timestamptz,
    dispatched_at            timestamptz,
    accepted_at              timestamptz,
    handled_at               timestamptz,
    verified_at              timestamptz,
    closed_at                timestamptz,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    -- Character bigrams of the searchable text (Chinese has no spaces; see storage/search.py).
    search                   tsvector NOT NULL DEFAULT ''::tsvector
);
-- Keyset pagination is on (reported_at DESC, id DESC); every filter index ends in the same keys.
CREATE INDEX cases_recent_idx ON cases (reported_at DESC, id DESC);
CREATE INDEX cases_state_idx ON cases (state, reported_at DESC, id DESC);
CREATE INDEX cases_department_idx ON cases (department_id, reported_at DESC, id DESC);
CREATE INDEX cases_grid_idx ON cases (grid_id, reported_at DESC, id DESC);
CREATE INDEX cases_category_idx ON cases (category_id, reported_at DESC, id DESC);
CREATE INDEX cases_source_idx ON cases (source, reported_at DESC, id DESC);
CREATE INDEX cases_open_deadline_idx ON cases (deadline)
    WHERE state IN ('dispatched', 'handling');
CREATE INDEX cases_search_idx ON cases USING gin (search);

-- The case history: append-only. seq orders all events; (case_id, version) orders one case's.
CREATE TABLE case_events (
    seq          bigserial PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES cases (id),
    version      integer NOT NULL,
    action       text NOT NULL,
    actor_id     integer REFERENCES users (id),
    at           timestamptz NOT NULL DEFAULT now(),
    from_state   text,
    to_state     text NOT NULL,
    note         text NOT NULL DEFAULT '',
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    attachment_ids bigint[] NOT NULL DEFAULT '{}',
    UNIQUE (case_id, version)
);

CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_events is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER case_events_no_update BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_events_append_only();

-- Attachments: the bytes live on disk under their SHA-256 (content-addressed); rows describe uses.
CREATE TABLE attachments (
    id             bigserial PRIMARY KEY,
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    media_type     text NOT NULL,
    size           integer NOT NULL CHECK (size > 0),
    kind           text NOT NULL CHECK (kind IN ('photo', 'audio', 'snapshot', 'document')),
    original_name  text NOT NULL DEFAULT '',
    case_id        bigint REFERENCES cases (id),
    uploaded_by    integer REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_case_idx ON attachments (case_id);

-- Every write, with who did it.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    user_id   integer REFERENCES users (id),
    action    text NOT NULL,
    target    text NOT NULL DEFAULT '',
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip        text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);

-- Case numbers: one counter per day, e.g. 20261123-00042.
CREATE TABLE case_counters (
    day   date PRIMARY KEY,
    last  integer NOT NULL
);

CREATE TABLE settings_kv (
    key    text PRIMARY KEY,
    value  jsonb NOT NULL
);
