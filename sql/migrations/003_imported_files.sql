-- Files `seed import` has loaded, committed in the same transaction as their rows, so a
-- re-run skips them and a file is never half imported.
CREATE TABLE imported_files (
  file_name TEXT PRIMARY KEY,
  bytes BIGINT NOT NULL,
  rows BIGINT NOT NULL,
  import_run_id INTEGER REFERENCES batch_jobs (id) ON DELETE SET NULL,
  imported_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
