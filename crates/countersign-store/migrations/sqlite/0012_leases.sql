-- Countersign's SQLite schema, version 12: leases on work that one replica does at a time.
--
-- A duty that must not run on two replicas at once (delivering a webhook's entries in order)
-- holds the lease named after it: taken when free or lapsed, renewed by its holder, lost when
-- the holder stops renewing (it died). `until` is in milliseconds.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
