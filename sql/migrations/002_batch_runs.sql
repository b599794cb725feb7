-- A batch run: the user-facing summary row (batch_jobs, the original's table and meaning),
-- its chunks (one graphile-worker job each) and its memoised steps.
CREATE TABLE IF NOT EXISTS batch_jobs (
  id SERIAL PRIMARY KEY,
  batch_name VARCHAR(255) NOT NULL,
  status VARCHAR(20) DEFAULT 'pending',
  total_records INTEGER DEFAULT 0,
  processed_records INTEGER DEFAULT 0,
  failed_records INTEGER DEFAULT 0,
  started_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  completed_at TIMESTAMP,
  error_message TEXT
);

ALTER TABLE batch_jobs
  -- 'process' runs work through users; 'import' rows record a seed import
  ADD COLUMN IF NOT EXISTS kind VARCHAR(20) NOT NULL DEFAULT 'process',
  -- failed rows that still have attempts left: not final, still work to do
  ADD COLUMN IF NOT EXISTS retryable_records INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS config JSONB NOT NULL DEFAULT '{}',
  ADD COLUMN IF NOT EXISTS round INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS chunks_total INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS chunks_done INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS created_by TEXT,
  ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ NOT NULL DEFAULT now();

ALTER TABLE batch_jobs ADD CONSTRAINT batch_jobs_kind_check CHECK (kind IN ('process', 'import'));
ALTER TABLE batch_jobs ADD CONSTRAINT batch_jobs_status_check
  CHECK (status IN ('pending', 'running', 'paused', 'cancelling', 'cancelled', 'completed', 'failed'));
-- a run's name is its identity: starting a run that exists returns it
CREATE UNIQUE INDEX IF NOT EXISTS batch_jobs_batch_name_key ON batch_jobs (batch_name);

CREATE TABLE batch_chunks (
  run_id INTEGER NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
  round INTEGER NOT NULL,
  chunk_no INTEGER NOT NULL,
  first_id BIGINT NOT NULL,
  last_id BIGINT NOT NULL,
  planned_rows INTEGER NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'done', 'failed')),
  rows_completed INTEGER NOT NULL DEFAULT 0,
  rows_failed INTEGER NOT NULL DEFAULT 0,
  worker TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  -- rows processed before this instant belong to earlier rounds: see src/chunks/slice.ts
  planned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  started_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, round, chunk_no),
  CHECK (first_id <= last_id)
);

-- A step that has committed is recorded here with its result and never runs again.
CREATE TABLE batch_steps (
  run_id INTEGER NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
  step VARCHAR(20) NOT NULL,
  round INTEGER NOT NULL,
  result JSONB NOT NULL,
  worker TEXT,
  finished_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, step, round)
);
