-- Countersign's SQLite schema, version 7: the changes to each person's second factors
-- (a TOTP app enrolled, a passkey added, all factors reset by an operator), written in the same
-- transaction as the change and its `mfa.enrolled` / `mfa.reset` audit entry, so the console
-- can tell the person on every page for a while after (a banner that nobody holding the
-- session can dismiss).
-- Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE factor_changes (
    principal  TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    change     TEXT    NOT NULL,         -- totp_enrolled | passkey_added | reset
    proof      TEXT    NOT NULL,         -- first_factor | totp | passkey | operator
    actor      TEXT    NOT NULL
);
CREATE INDEX factor_changes_by_principal ON factor_changes (principal, at);
