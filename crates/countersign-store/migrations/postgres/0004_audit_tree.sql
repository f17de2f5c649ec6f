-- Countersign's PostgreSQL schema, version 4: the Merkle tree over the audit log (RFC 9162),
-- signed checkpoints, where each request's audit entries are, and the cursors of audit consumers.
-- (Version 3 belongs to another change; the numbers only need to be distinct and ordered.)

-- `nodes`: the hashes of the perfect subtrees that this entry completes (levels 1, 2, … in
-- order, 32 bytes each; empty for most entries), written with the entry, so any node of the tree
-- is one primary-key lookup away. NULL only on entries written before this version: the store
-- fills them in once, when it next connects.
ALTER TABLE audit ADD COLUMN nodes BYTEA;
CREATE INDEX audit_without_nodes ON audit (seq) WHERE nodes IS NULL;

-- The compact frontier of the tree (the roots of its perfect subtrees, largest first), kept
-- with the head so an append needs no tree read. NULL until filled in as above.
ALTER TABLE audit_head ADD COLUMN frontier BYTEA;
UPDATE audit_head SET frontier = ''::bytea WHERE next_seq = 0;

-- The log stays append-only; the one update allowed is filling in `nodes` where it is NULL.
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.nodes IS NULL AND NEW.nodes IS NOT NULL
        AND NEW.seq = OLD.seq AND NEW.bytes = OLD.bytes
        AND NEW.leaf = OLD.leaf AND NEW.chain = OLD.chain THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END
$$ LANGUAGE plpgsql;

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), one per tree size.
CREATE TABLE audit_checkpoints (
    size       BIGINT  PRIMARY KEY CHECK (size >= 0),
    root       BYTEA   NOT NULL,
    note       TEXT    NOT NULL,
    signed_at  BIGINT  NOT NULL
);

-- The seqs of the audit entries about each request, as `5,6,9,` (attestations list them).
ALTER TABLE requests ADD COLUMN audit_seqs TEXT NOT NULL DEFAULT '';

-- How far each consumer of the log (an outgoing webhook) has got: the next seq to deliver.
CREATE TABLE audit_cursors (
    name      TEXT    PRIMARY KEY,
    next_seq  BIGINT  NOT NULL CHECK (next_seq >= 0)
);
