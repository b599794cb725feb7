-- Rows of a chunk that another session keeps locked past the chunk's passes over its range and
-- its wait for them (an application's transaction left idle in transaction, say). The chunk
-- cannot end while they are claimable, and is tried again later with graphile-worker's backoff;
-- `status` shows which session holds them and since when. Its worker writes these columns when
-- it finds such rows (src/runs/chunks.ts, recordRowsHeld) and clears them once they are
-- released. Nullable columns without a default: adding them rewrites nothing, and the ACCESS
-- EXCLUSIVE lock on batch_chunks lasts only as long as the catalog change.
ALTER TABLE batch_chunks
  ADD COLUMN held_rows INT,
  -- the session holding the longest: its process id, its transaction's start, its state
  ADD COLUMN held_by_pid INT,
  ADD COLUMN held_since TIMESTAMPTZ,
  ADD COLUMN held_state TEXT;
