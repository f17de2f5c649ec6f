-- Countersign's PostgreSQL schema, version 1. Times are milliseconds since the Unix epoch (UTC).
-- The same tables as the SQLite schema, plus `audit_head`, the row every writing transaction
-- locks first: it serialises appends to the audit log across connections and replicas.

-- One row per request. `body` is the JSON of countersign_core::Request, kept as text so it
-- reads back byte for byte; the other columns are copies of its fields, kept for indexed
-- queries.
CREATE TABLE requests (
    id          TEXT    PRIMARY KEY,
    state       TEXT    NOT NULL,
    run         TEXT,
    requester   TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT,
    held        BOOLEAN NOT NULL,
    -- true while the request is pending, not held, and its review pauses its run.
    pauses_run  BOOLEAN NOT NULL,
    body        TEXT    NOT NULL
);
CREATE INDEX requests_by_created ON requests (created_at, id);
CREATE INDEX requests_by_state ON requests (state, created_at, id);
CREATE INDEX requests_by_requester ON requests (requester, created_at, id);
CREATE INDEX requests_by_run ON requests (run, state, created_at, id) WHERE run IS NOT NULL;
CREATE INDEX requests_due ON requests (expires_at, id) WHERE state = 'pending';
CREATE INDEX requests_pausing ON requests (run) WHERE pauses_run;

-- Runs that a person (or policy) has paused, resumed or stopped. A run with no row is active.
CREATE TABLE runs (
    id          TEXT    PRIMARY KEY,
    state       TEXT    NOT NULL CHECK (state IN ('active', 'paused', 'stopped')),
    updated_by  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- The audit log: `bytes` are exactly the canonical JSON that `leaf` hashes
-- (SHA-256(0x00 || bytes)); `chain` = SHA-256(previous chain || leaf).
CREATE TABLE audit (
    seq    BIGINT  PRIMARY KEY CHECK (seq >= 0),
    bytes  BYTEA   NOT NULL,
    leaf   BYTEA   NOT NULL,
    chain  BYTEA   NOT NULL
);

-- Where the next audit entry goes. Exactly one row.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq  BIGINT  NOT NULL,
    chain     BYTEA   NOT NULL
);
INSERT INTO audit_head (id, next_seq, chain) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Append-only by construction: the application never updates or deletes an entry. The trigger
-- stops a bug from doing so; it does not stop a database owner, which is what
-- `countersign audit verify` is for.
CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

-- API keys, by the hex SHA-256 of the key. The key itself is never stored.
CREATE TABLE api_keys (
    key_hash    TEXT    PRIMARY KEY,
    principal   TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- TOTP enrolments. `last_step` is the last time step a code was accepted for.
CREATE TABLE totp (
    principal    TEXT    PRIMARY KEY,
    secret       BYTEA   NOT NULL,
    last_step    BIGINT,
    enrolled_at  BIGINT  NOT NULL
);
