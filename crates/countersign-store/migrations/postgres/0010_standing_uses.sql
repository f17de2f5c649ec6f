-- Countersign's PostgreSQL schema, version 10: standing approvals' uses, counted beside their pair.
--
-- The approval that forms a standing approval parks its holder under the approval's key with
-- `uses_left` set to the uses allowed; each action it covers takes one in the transaction that
-- records the covered action (a conditional decrement: never below zero), instead of rewriting
-- the holder. A revocation sets it to 0. NULL on every other pair (parking keys, idempotency
-- keys, plan steps). Pairs with a count are kept past the 7-day retention (they are formed by
-- people, one per standing approval), so a standing approval's count can always be shown.
ALTER TABLE parked_calls ADD COLUMN uses_left BIGINT;
