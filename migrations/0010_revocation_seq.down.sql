DROP INDEX revocations_seq_idx;
ALTER TABLE revocations DROP COLUMN seq;
DROP SEQUENCE revocations_seq;
