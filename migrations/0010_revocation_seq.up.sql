-- Revocations in the order they were recorded: an edge's revocation stream
-- resumes from a seq and misses none (inserts take seqs in commit order).
CREATE SEQUENCE revocations_seq;
ALTER TABLE revocations ADD COLUMN seq bigint NOT NULL DEFAULT 0;
CREATE INDEX revocations_seq_idx ON revocations (seq);
