-- Countersign's SQLite schema, version 8: parked tool calls.
--
-- When the MCP gateway has held a tool call for `hold_for` and answered "approval pending", a
-- retry of the same call (the same requester, the same parking key: the action's digest, less
-- a run the gateway made up for the MCP session) attaches to the request
-- the call created instead of creating another, on any replica and after a restart. One row
-- per (requester, digest) names that request; parking the pair again replaces it, and a retry
-- that finishes with it removes it. Rows parked more than 7 days before a new park are
-- forgotten then. Parking is bookkeeping, not a decision: it records no audit entry.
-- Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE parked_calls (
    requester   TEXT    NOT NULL,
    digest      TEXT    NOT NULL,        -- lower-case hex of the parking key, no prefix
    request_id  TEXT    NOT NULL,
    parked_at   INTEGER NOT NULL,
    PRIMARY KEY (requester, digest)
);
CREATE INDEX parked_calls_by_time ON parked_calls (parked_at);
