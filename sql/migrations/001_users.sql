-- The table a batch run works through. The first nine columns are the original proof of
-- concept's, created only when absent so that its database can be adopted as it is; the
-- columns added below record each row's processing.
-- email compares byte-wise (COLLATE "C"): uniqueness is the same, and its unique index, paid
-- on every imported and every processed row, no longer calls the locale's strcoll.
CREATE TABLE IF NOT EXISTS users (
  id BIGSERIAL PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(255) COLLATE "C" UNIQUE NOT NULL,
  age INTEGER CHECK (age >= 0 AND age <= 150),
  salary INTEGER,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  batch_status VARCHAR(20) DEFAULT 'pending',
  batch_id INTEGER,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

ALTER TABLE users
  ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS last_error TEXT,
  ADD COLUMN IF NOT EXISTS processed_at TIMESTAMPTZ,
  -- results of the default business logic (src/business-logic.ts)
  ADD COLUMN IF NOT EXISTS email_normalized VARCHAR(255),
  ADD COLUMN IF NOT EXISTS segment VARCHAR(32);

ALTER TABLE users ALTER COLUMN batch_status SET NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_batch_status_check
  CHECK (batch_status IN ('pending', 'processing', 'completed', 'failed', 'cancelled'));

-- Only rows with work left are in this index, so it stays as small as the backlog. It serves
-- the chunk claim (id ranges), the run planner (an index-only scan over the claimable rows)
-- and counts of open work. Updating a row to completed adds no entry here.
CREATE INDEX IF NOT EXISTS users_open_idx ON users (id) INCLUDE (batch_status, attempts)
  WHERE batch_status IN ('pending', 'failed');

-- The original's single-column status index is replaced by users_open_idx; every index
-- on this table is paid for on every processed row.
DROP INDEX IF EXISTS idx_users_batch_status;
