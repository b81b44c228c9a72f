-- The 12319 hotline (issue 10): every call (who called, on which trunk, when it arrived, was
-- queued, answered and ended, by which agent, how it ended, the disposition chosen at wrap-up, the
-- recording, the case it became or was linked to), each call's events (queued, offered, ring
-- timeout, answered, held, transferred, …), the callbacks citizens asked for, every change of an
-- agent's state (for occupancy figures), and the disposition codes agents choose from.
--
-- Caller numbers are kept as given (caller) and normalised (caller_norm, by
-- storage.hotline.normalize_number): the caller's history is looked up by the normalised one.
-- hotline_norm_number below is the same rule in SQL, for the cases' contact_phone (typed by people,
-- in any format), so that a repeat caller's open cases are found by an index.

CREATE FUNCTION hotline_norm_number(raw text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    s text := btrim(raw);
BEGIN
    -- A name-addr ("Name" <sip:…>): the URI inside the angle brackets.
    IF s ~ '<[^>]*>' THEN
        s := substring(s FROM '<([^>]*)>');
    END IF;
    -- A URI: the user part of sip:/sips:, the number of tel:, parameters dropped.
    IF s ~* '^(sips?|tel):' THEN
        s := regexp_replace(s, '^[A-Za-z]+:', '');
        s := split_part(s, '@', 1);
        s := split_part(s, ';', 1);
    END IF;
    -- Visual separators.
    s := regexp_replace(s, '[[:space:]()./-]', '', 'g');
    IF s !~ '^\+?[0-9]+$' THEN
        RETURN '';  -- anonymous, unknown: no number to match
    END IF;
    IF s ~ '^(\+|00)86' THEN
        -- China's country code: the national form (a mobile as is, a landline with its trunk 0).
        s := regexp_replace(s, '^(\+|00)86', '');
        IF s !~ '^1[3-9][0-9]{9}$' AND s !~ '^0' THEN
            s := '0' || s;
        END IF;
    ELSIF s ~ '^861[3-9][0-9]{9}$' THEN
        s := substr(s, 3);  -- "86" before a mobile number, without the plus
    ELSIF s ~ '^00' THEN
        s := '+' || substr(s, 3);  -- another country: the international form
    END IF;
    RETURN s;
END
$$;

CREATE TABLE hotline_dispositions (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 50),
    -- A hint for the console: this disposition normally goes with a case.
    needs_case  boolean NOT NULL DEFAULT false,
    active      boolean NOT NULL DEFAULT true,
    sort        smallint NOT NULL DEFAULT 100
);
INSERT INTO hotline_dispositions (code, label, needs_case, sort) VALUES
    ('report',       '投诉举报',     true,  10),
    ('consultation', '咨询',         false, 20),
    ('help',         '求助',         true,  30),
    ('suggestion',   '建议',         false, 40),
    ('follow_up',    '重复来电/催办', false, 50),
    ('transferred',  '转办',         false, 60),
    ('silent',       '挂断无声',     false, 70),
    ('nuisance',     '无效来电/骚扰', false, 80);

CREATE TABLE hotline_calls (
    id            bigserial PRIMARY KEY,
    sip_call_id   text NOT NULL DEFAULT '' CHECK (length(sip_call_id) <= 500),
    caller        text NOT NULL DEFAULT '' CHECK (length(caller) <= 300),  -- as given
    caller_norm   text NOT NULL DEFAULT '' CHECK (length(caller_norm) <= 64),
    called        text NOT NULL DEFAULT '' CHECK (length(called) <= 300),
    trunk         text NOT NULL DEFAULT '' CHECK (length(trunk) <= 200),
    arrived_at    timestamptz NOT NULL DEFAULT now(),
    queued_at     timestamptz,
    answered_at   timestamptz,
    ended_at      timestamptz,
    agent_id      integer REFERENCES users (id),
    outcome       text CHECK (outcome IN
                    ('answered', 'abandoned', 'callback', 'overflow', 'out_of_hours', 'failed')),
    disposition   text REFERENCES hotline_dispositions (code),
    consultation  boolean NOT NULL DEFAULT false,
    case_id       bigint REFERENCES cases (id),
    -- Relative to the recordings directory (YYYY/MM/DD/<id>.wav); null: none, or deleted.
    recording     text CHECK (recording !~ '^/' AND recording !~ '(^|/)\.\.(/|$)'
                              AND length(recording) <= 300),
    note          text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    -- The outcome is set when, and only when, the call ends; answered calls have an answer time.
    CHECK ((outcome IS NULL) = (ended_at IS NULL)),
    CHECK (outcome IS DISTINCT FROM 'answered' OR answered_at IS NOT NULL)
);
CREATE INDEX hotline_calls_caller_idx ON hotline_calls (caller_norm, arrived_at DESC, id DESC);
CREATE INDEX hotline_calls_arrived_idx ON hotline_calls (arrived_at DESC, id DESC);
CREATE INDEX hotline_calls_agent_idx ON hotline_calls (agent_id, arrived_at DESC, id DESC)
    WHERE agent_id IS NOT NULL;
CREATE INDEX hotline_calls_running_idx ON hotline_calls (id) WHERE ended_at IS NULL;
CREATE INDEX hotline_calls_case_idx ON hotline_calls (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX hotline_calls_recording_idx ON hotline_calls (arrived_at) WHERE recording IS NOT NULL;

-- A repeat caller's open cases, by the normalised contact number.
CREATE INDEX cases_contact_open_idx ON cases (hotline_norm_number(contact_phone))
    WHERE contact_phone <> '' AND state NOT IN ('closed', 'rejected', 'voided');

CREATE TABLE hotline_call_events (
    id        bigserial PRIMARY KEY,
    call_id   bigint NOT NULL REFERENCES hotline_calls (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL CHECK (kind IN
                ('queued', 'offered', 'ring_timeout', 'declined', 'answered', 'held', 'unheld',
                 'transferred', 'consult', 'monitored', 'whisper', 'barge', 'callback_requested',
                 'overflow', 'abandoned', 'offer_cancelled', 'ended')),
    agent_id  integer REFERENCES users (id),
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX hotline_call_events_call_idx ON hotline_call_events (call_id, id);

CREATE TABLE hotline_callbacks (
    id            bigserial PRIMARY KEY,
    call_id       bigint REFERENCES hotline_calls (id) ON DELETE SET NULL,
    number        text NOT NULL CHECK (length(number) BETWEEN 1 AND 64),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,
    done_by       integer REFERENCES users (id),
    note          text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    CHECK (done_by IS NULL OR done_at IS NOT NULL)
);
CREATE INDEX hotline_callbacks_open_idx ON hotline_callbacks (requested_at, id)
    WHERE done_at IS NULL;

-- Every change of an agent's state: signed_out, not_ready (reason), ready, offered, talking,
-- wrap_up (the names of telephony.hotline.acd).
CREATE TABLE hotline_agent_states (
    id        bigserial PRIMARY KEY,
    agent_id  integer NOT NULL REFERENCES users (id),
    at        timestamptz NOT NULL DEFAULT now(),
    state     text NOT NULL CHECK (state ~ '^[a-z_]{1,32}$'),
    reason    text NOT NULL DEFAULT '' CHECK (length(reason) <= 100)
);
CREATE INDEX hotline_agent_states_agent_idx ON hotline_agent_states (agent_id, at DESC);
CREATE INDEX hotline_agent_states_at_idx ON hotline_agent_states (at);
