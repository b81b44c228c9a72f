-- Where the agents' desk phones are registered (issue 10): the registrar's bindings
-- (telephony/sip/registrar.py), kept so that a restarted hub reaches a phone at once instead of
-- waiting up to an hour for it to register again. The telephony process writes a user's whole set
-- after every REGISTER that changed it (storage.hotline.save_bindings) and reads the live ones at
-- start. A new password or SIP user (set_phone) drops the bindings: the phone must register again
-- with it; deleting the account drops them by cascade.

CREATE TABLE hotline_phone_bindings (
    user_id      integer NOT NULL REFERENCES hotline_phones (user_id) ON DELETE CASCADE,
    contact      text NOT NULL CHECK (length(contact) BETWEEN 1 AND 512),
    expires_at   timestamptz NOT NULL,
    call_id      text NOT NULL CHECK (length(call_id) <= 256),
    cseq         bigint NOT NULL CHECK (cseq >= 0),
    source_host  text NOT NULL DEFAULT '' CHECK (length(source_host) <= 64),
    source_port  integer NOT NULL DEFAULT 0 CHECK (source_port BETWEEN 0 AND 65535),
    q            text CHECK (length(q) <= 16),
    PRIMARY KEY (user_id, contact)
);
