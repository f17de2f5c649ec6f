-- Countersign's PostgreSQL schema, version 9: executions.
--
-- While the gateway carries out an approved action itself (an executor), the request's row
-- holds the execution's deadline: after it, no gateway can still be running the action (each
-- executor is stopped at its timeout), so a row found past it was interrupted (the gateway
-- died) and is closed as `unknown`, never run again. NULL when no execution runs. The body
-- keeps the execution itself; this column only lets the sweep find them with an index.
-- Milliseconds since the Unix epoch (UTC).
ALTER TABLE requests ADD COLUMN exec_deadline BIGINT;
CREATE INDEX requests_exec_due ON requests (exec_deadline, id) WHERE exec_deadline IS NOT NULL;
