-- Desk phones and softphones of hotline agents (issue 10): the hub is their SIP registrar. One
-- phone account per agent (user); the SIP user a phone registers as is unique. Only the digest
-- HA1 = MD5(sip_user:realm:password) is kept, never the password (the realm is
-- CITYHUB_HOTLINE_REALM: changing it means provisioning the phones again). Where a phone is
-- registered is not kept here: bindings live in the telephony process's memory and lapse.

CREATE TABLE hotline_phones (
    user_id     integer PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sip_user    text NOT NULL UNIQUE CHECK (sip_user ~ '^[A-Za-z0-9_.-]{2,32}$'),
    ha1         text NOT NULL CHECK (ha1 ~ '^[0-9a-f]{32}$'),
    realm       text NOT NULL CHECK (length(realm) BETWEEN 1 AND 64),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
