-- Monitoring queries for psql. Run one, or all: psql "$DATABASE_URL" -f sql/monitoring.sql

-- Queue depth: the work left in running batch runs (pending plus retryable rows). This is what
-- the autoscaler reads; it costs the same at 50M rows as at 50.
SELECT rows_left, runs FROM batch_backlog;

-- The original's queue depth, row by row: rows waiting or failed (retryable or not). It counts
-- through users_open_idx, so it grows with the backlog; prefer batch_backlog on large tables.
SELECT count(1) FROM users WHERE batch_status IN ('pending', 'failed');

-- Processing status of every row (a full scan: for small tables or quiet hours).
SELECT batch_status, count(*) FROM users GROUP BY batch_status ORDER BY batch_status;

-- Latest batch runs and imports.
SELECT id, batch_name, kind, status, total_records, processed_records, failed_records, retryable_records,
       started_at, completed_at, error_message
  FROM batch_jobs ORDER BY started_at DESC LIMIT 10;

-- Active runs (the original's "active workers" query).
SELECT DISTINCT id AS batch_id, batch_name FROM batch_jobs WHERE status = 'running';

-- Chunks being worked on now, and by which worker.
SELECT run_id, round, chunk_no, first_id, last_id, worker, rows_completed + rows_failed AS rows_done, planned_rows,
       now() - started_at AS running_for
  FROM batch_chunks WHERE status = 'running' ORDER BY started_at;

-- The queue underneath: graphile-worker jobs by task, with retries and locks.
SELECT task_identifier, count(*) AS jobs, count(*) FILTER (WHERE attempts > 0) AS retried,
       count(*) FILTER (WHERE locked_at IS NOT NULL) AS running, min(run_at) AS next_due
  FROM graphile_worker.jobs GROUP BY task_identifier;
