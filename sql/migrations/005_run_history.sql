-- What a batch run's workflow needs beyond its summary row: a history of its state changes,
-- its row errors grouped by message, progress samples for its current rate, and chunks that a
-- cancel stopped.

-- Every state change of a run: who did it, in which step, and the counts at that moment.
CREATE TABLE batch_events (
  id BIGSERIAL PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
  at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  event VARCHAR(40) NOT NULL,
  step VARCHAR(20) NOT NULL,
  round INTEGER,
  chunk_no INTEGER,
  actor TEXT NOT NULL,
  counts JSONB NOT NULL DEFAULT '{}',
  detail TEXT
);
CREATE INDEX batch_events_run_idx ON batch_events (run_id, id);

-- Failed attempts of a run by error message, kept by the slices that record them.
CREATE TABLE batch_errors (
  run_id INTEGER NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
  message TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  last_seen TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (run_id, message)
);

-- Rows done (completed or failed for good) and when, at most one sample per 5-second bucket of
-- a run: the first slice committed in a bucket records it. Rates and ETAs come from these.
CREATE TABLE batch_samples (
  run_id INTEGER NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
  bucket BIGINT NOT NULL,
  at TIMESTAMPTZ NOT NULL,
  done BIGINT NOT NULL,
  PRIMARY KEY (run_id, bucket)
);

ALTER TABLE batch_chunks DROP CONSTRAINT batch_chunks_status_check;
ALTER TABLE batch_chunks ADD CONSTRAINT batch_chunks_status_check
  CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled'));
