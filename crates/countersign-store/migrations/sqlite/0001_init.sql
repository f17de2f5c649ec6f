-- Countersign's SQLite schema, version 1. Times are milliseconds since the Unix epoch (UTC).

-- One row per request. `body` is the JSON of countersign_core::Request and is the source of
-- truth; the other columns are copies of its fields, kept for indexed queries.
CREATE TABLE requests (
    id          TEXT    PRIMARY KEY NOT NULL,
    state       TEXT    NOT NULL,
    run         TEXT,
    requester   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    held        INTEGER NOT NULL CHECK (held IN (0, 1)),
    -- 1 while the request is pending, not held, and its review pauses its run.
    pauses_run  INTEGER NOT NULL CHECK (pauses_run IN (0, 1)),
    body        TEXT    NOT NULL
);
CREATE INDEX requests_by_created ON requests (created_at, id);
CREATE INDEX requests_by_state ON requests (state, created_at, id);
CREATE INDEX requests_by_requester ON requests (requester, created_at, id);
CREATE INDEX requests_by_run ON requests (run, state, created_at, id) WHERE run IS NOT NULL;
CREATE INDEX requests_due ON requests (expires_at, id) WHERE state = 'pending';
CREATE INDEX requests_pausing ON requests (run) WHERE pauses_run = 1;

-- Runs that a person (or policy) has paused, resumed or stopped. A run with no row is active.
CREATE TABLE runs (
    id          TEXT    PRIMARY KEY NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('active', 'paused', 'stopped')),
    updated_by  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- The audit log: `bytes` are exactly the canonical JSON that `leaf` hashes
-- (SHA-256(0x00 || bytes)); `chain` = SHA-256(previous chain || leaf).
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 0),
    bytes  BLOB    NOT NULL,
    leaf   BLOB    NOT NULL,
    chain  BLOB    NOT NULL
);
-- Append-only by construction: the application never updates or deletes an entry. These
-- triggers stop a bug from doing so; they do not stop someone with the file, which is what
-- `countersign audit verify` is for.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- API keys, by the hex SHA-256 of the key. The key itself is never stored.
CREATE TABLE api_keys (
    key_hash    TEXT    PRIMARY KEY NOT NULL,
    principal   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- TOTP enrolments. `last_step` is the last time step a code was accepted for.
CREATE TABLE totp (
    principal    TEXT    PRIMARY KEY NOT NULL,
    secret       BLOB    NOT NULL,
    last_step    INTEGER,
    enrolled_at  INTEGER NOT NULL
);
