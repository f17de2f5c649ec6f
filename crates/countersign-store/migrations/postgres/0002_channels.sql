-- Countersign's PostgreSQL schema, version 2: what the channels (Slack, later Teams) need to
-- be durable and shared by every gateway replica. Times are milliseconds since the Unix epoch
-- (UTC).

-- Requests whose channel messages need work (post, update, remind). A row is written in the
-- same transaction as the request change that needs it, so no change is ever left unposted.
-- `due_at` is when the work is due, or, while a replica holds the row, when its lease ends.
-- `generation` counts the changes marked; a replica finishing stale work sees it differ.
CREATE TABLE notify_queue (
    request_id  TEXT    PRIMARY KEY REFERENCES requests (id),
    due_at      BIGINT  NOT NULL,
    generation  BIGINT  NOT NULL
);
CREATE INDEX notify_queue_due ON notify_queue (due_at);

-- Where a request was posted in each channel target, so any replica updates the same message.
-- `rendered` is a hash of the content last sent; `reminded_at` when the last reminder went.
CREATE TABLE channel_messages (
    request_id    TEXT    NOT NULL REFERENCES requests (id),
    target        TEXT    NOT NULL,
    conversation  TEXT    NOT NULL,
    ts            TEXT    NOT NULL,
    rendered      TEXT    NOT NULL,
    reminded_at   BIGINT,
    PRIMARY KEY (request_id, target)
);
