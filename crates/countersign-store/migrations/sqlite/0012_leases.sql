-- Countersign's SQLite schema, version 12: leases on work that one replica does at a time, and
-- callbacks already handled.
--
-- A duty that must not run on two replicas at once (delivering a webhook's entries in order)
-- holds the lease named after it: taken when free or lapsed, renewed by its holder, lost when
-- the holder stops renewing (it died). `until` is in milliseconds. Leases an hour past their
-- end are deleted as others are taken (a first post's claim on a request and target is one).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
CREATE INDEX leases_until ON leases (until);

-- Channel callbacks already acted on (Slack interactions, Teams invokes), by their canonical
-- replay key, until their replay window ends: a replayed or retried callback is acted on once,
-- whichever replica it reaches. Expired keys are deleted as new ones arrive.
CREATE TABLE replay_keys (
    key TEXT PRIMARY KEY,
    until INTEGER NOT NULL
);
