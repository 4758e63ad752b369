-- One row per batch the store writer commits, written in the batch's own
-- transaction. When the connection is lost after a COMMIT was sent, the
-- writer cannot tell from the failed call whether the batch is in the store;
-- once reconnected it inserts a tombstone (committed = 0) under the same id:
-- if the batch's own row is there, the batch was committed; if the tombstone
-- went in, the batch never can be. Rows are pruned after a day.
CREATE TABLE IF NOT EXISTS store_batches (
    id TEXT PRIMARY KEY,
    written_at BIGINT NOT NULL,
    committed BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS store_batches_written ON store_batches (written_at);
