-- Countersign's PostgreSQL schema, version 6: one person, one identity; revocable console sessions.
--
-- Principal ids have one canonical form: plain ASCII, lower-cased as a whole
-- (`PrincipalId::parse`). Ids stored before in another case are rewritten to it, so lookups by
-- principal (keys, factors, a requester's requests) find them; request bodies are read through
-- the same parse and need no rewrite. Ids are ASCII (they always were), so `lower` here is the
-- canonical fold. Where one person was enrolled for TOTP under two spellings, the canonical
-- row is kept (or, with none, the first spelling). A TOTP seed sealed under a spelling that
-- changed no longer opens: the gateway refuses that person's codes until their factor is reset.
UPDATE api_keys SET principal = lower(principal) WHERE principal <> lower(principal);
UPDATE webauthn_credentials SET principal = lower(principal) WHERE principal <> lower(principal);
-- Ceremonies live five minutes; one begun under an old spelling is simply begun again.
DELETE FROM webauthn_ceremonies WHERE principal <> lower(principal);
UPDATE requests SET requester = lower(requester) WHERE requester <> lower(requester);
UPDATE runs SET updated_by = lower(updated_by) WHERE updated_by <> lower(updated_by);
DELETE FROM totp
WHERE principal <> lower(principal)
  AND EXISTS (
      SELECT 1 FROM totp AS other
      WHERE lower(other.principal) = lower(totp.principal)
        AND (other.principal = lower(other.principal) OR other.principal < totp.principal)
  );
UPDATE totp SET principal = lower(principal) WHERE principal <> lower(principal);

-- Console sessions, so that signing out (and revoking a person's keys) ends them on every
-- replica. Keyed by the hex SHA-256 of the random id the session cookie carries; the id itself
-- is never stored. Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE console_sessions (
    id_hash     TEXT    PRIMARY KEY,
    principal   TEXT    NOT NULL,
    via         TEXT    NOT NULL,            -- key | oidc
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX console_sessions_by_principal ON console_sessions (principal);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
