-- Countersign's SQLite schema, version 5: WebAuthn passkeys (the console's second factor) and
-- the server-side state of their ceremonies. A ceremony row is used once: finishing it sets
-- `used` in the same statement that checks its principal, kind, binding and expiry. An
-- authentication ceremony is bound to one request, one digest and one decision.
-- Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE webauthn_credentials (
    credential_id TEXT    PRIMARY KEY,   -- base64url of the authenticator's credential id
    principal     TEXT    NOT NULL,
    passkey       TEXT    NOT NULL,      -- webauthn-rs `Passkey` as JSON (public key, counter)
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX webauthn_credentials_by_principal ON webauthn_credentials (principal);

CREATE TABLE webauthn_ceremonies (
    id          TEXT    PRIMARY KEY,
    principal   TEXT    NOT NULL,
    kind        TEXT    NOT NULL,        -- register | authenticate
    request_id  TEXT,
    digest      TEXT,
    decision    TEXT,
    state       TEXT    NOT NULL,        -- webauthn-rs ceremony state as JSON
    expires_at  INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0
);
