-- Countersign's SQLite schema, version 3: conversation references of chat channels that
-- address conversations through a per-conversation service (Microsoft Teams' Bot Connector).
-- A row is written only from an inbound activity whose token was verified, so the service
-- URL here is one the channel vouched for; the bot's credentials are only ever sent to these.
-- Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE channel_conversations (
    channel       TEXT    NOT NULL,
    conversation  TEXT    NOT NULL,
    service_url   TEXT    NOT NULL,
    tenant        TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (channel, conversation)
);
