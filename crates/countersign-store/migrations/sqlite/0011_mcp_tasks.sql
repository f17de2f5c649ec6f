-- Countersign's SQLite schema, version 11: MCP tasks that outlive the gateway.
--
-- A tool call answered with a task (the MCP tasks extension) has a row here, keyed by its
-- request (the task id is the request id), so `tasks/get` and `tasks/cancel` answer the same
-- after a restart and on every replica. `status` and `result` are set once, when the task
-- ends (`completed`, `failed` or `cancelled`; the result is the JSON the client is given);
-- until then the task's state is its request's. `parked` is the key the call is parked under
-- (`sha256:…`), unparked when the task ends. `lease_until` is set by the gateway that carries
-- the approved call out (redeems and forwards it), so one does, on any replica; one that died
-- doing it loses the lease when it ends. Ended tasks are kept a day; others 30 days.
CREATE TABLE mcp_tasks (
    request_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    carrier TEXT NOT NULL,
    parked TEXT,
    created_at INTEGER NOT NULL,
    lease_until INTEGER,
    status TEXT,
    result TEXT,
    finished_at INTEGER
);
CREATE INDEX mcp_tasks_created ON mcp_tasks (created_at);
