-- Countersign's SQLite schema, version 4: the Merkle tree over the audit log (RFC 9162), signed
-- checkpoints, where each request's audit entries are, and the cursors of audit consumers.
-- (Version 3 belongs to another change; the numbers only need to be distinct and ordered.)

-- `nodes`: the hashes of the perfect subtrees that this entry completes (levels 1, 2, … in
-- order, 32 bytes each; empty for most entries), written with the entry. Any node of the tree
-- is thus one primary-key lookup away, which is what makes proofs O(log n) reads. NULL only on
-- entries written before this version: the store fills them in once, when it next opens.
ALTER TABLE audit ADD COLUMN nodes BLOB;
CREATE INDEX audit_without_nodes ON audit (seq) WHERE nodes IS NULL;

-- The log stays append-only; the one update allowed is filling in `nodes` where it is NULL.
DROP TRIGGER audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
WHEN OLD.nodes IS NOT NULL OR NEW.nodes IS NULL
    OR NEW.seq IS NOT OLD.seq OR NEW.bytes IS NOT OLD.bytes
    OR NEW.leaf IS NOT OLD.leaf OR NEW.chain IS NOT OLD.chain
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), one per tree size.
CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY NOT NULL CHECK (size >= 0),
    root       BLOB    NOT NULL,
    note       TEXT    NOT NULL,
    signed_at  INTEGER NOT NULL
);

-- The seqs of the audit entries about each request, as `5,6,9,` (attestations list them).
ALTER TABLE requests ADD COLUMN audit_seqs TEXT NOT NULL DEFAULT '';

-- How far each consumer of the log (an outgoing webhook) has got: the next seq to deliver.
CREATE TABLE audit_cursors (
    name      TEXT    PRIMARY KEY NOT NULL,
    next_seq  INTEGER NOT NULL CHECK (next_seq >= 0)
);
