-- Monitoring queries for psql. Run one, or all: psql "$DATABASE_URL" -f sql/monitoring.sql

-- Queue depth: the work a pod started now could take up, in chunks (with the workflow steps and
-- schedule ticks due) and in rows. chunks_left is what the autoscaler reads; it costs the same
-- at 50M rows as at 50.
SELECT chunks_left, rows_left, runs FROM batch_backlog;

-- The queue depth of users, row by row: rows waiting or failed (retryable or not). It reads
-- the whole table: prefer batch_backlog on large tables.
SELECT count(1) FROM users WHERE batch_status IN ('pending', 'failed');

-- Processing status of every row (a full scan: for small tables or quiet hours).
SELECT batch_status, count(*) FROM users GROUP BY batch_status ORDER BY batch_status;

-- Progress of every batch run: counts, percent done, current rate and ETA, and while nothing of a
-- running run runs (a retry round's delay), when its next chunk is due.
SELECT id, batch_name, status, round, total, completed, failed, retrying, pending, percent_done,
       rows_per_second, eta_seconds, waiting_until
  FROM batch_progress ORDER BY id DESC LIMIT 10;

-- Chunks of each run's current round by state: running (a worker holds its job), waiting,
-- retrying (its job waits out graphile-worker's backoff after a failure).
SELECT c.run_id, c.round, count(*) AS chunks,
       count(*) FILTER (WHERE c.status = 'done') AS done,
       count(*) FILTER (WHERE q.locked_at IS NOT NULL) AS running,
       count(*) FILTER (WHERE c.status IN ('queued', 'running') AND q.locked_at IS NULL
                          AND coalesce(q.attempts, 0) = 0) AS waiting,
       count(*) FILTER (WHERE c.status IN ('queued', 'running') AND q.locked_at IS NULL AND q.attempts > 0) AS retrying,
       count(*) FILTER (WHERE c.status = 'failed') AS failed
  FROM batch_chunks c
  JOIN batch_jobs j ON j.id = c.run_id AND j.round = c.round
  LEFT JOIN graphile_worker.jobs q ON q.key = format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)
 GROUP BY c.run_id, c.round ORDER BY c.run_id DESC;

-- Runs throttled on the database's health now: what their workers wait on (the newest reading),
-- since when, and how many wait.
SELECT run_id, signal, figure, threshold, unit, detail, since, workers FROM batch_throttled_runs;

-- Workers, busiest first, and the most frequent errors of each run.
SELECT * FROM batch_workers ORDER BY running_chunks DESC, rows DESC LIMIT 10;
SELECT run_id, attempts AS failed_attempts, message, last_seen FROM batch_errors ORDER BY attempts DESC LIMIT 10;

-- A run's history (replace 1 by its id).
SELECT at, event, round, chunk_no, actor, counts, detail FROM batch_events WHERE run_id = 1 ORDER BY id;

-- Latest batch runs and imports.
SELECT id, batch_name, kind, status, total_records, processed_records, failed_records, retryable_records,
       started_at, completed_at, error_message
  FROM batch_jobs ORDER BY started_at DESC LIMIT 10;

-- Active runs.
SELECT DISTINCT id AS batch_id, batch_name FROM batch_jobs WHERE status = 'running';

-- Chunks being worked on now (their job is locked: a chunk handed back stays 'running' until
-- another worker starts it), and by which worker.
SELECT c.run_id, c.round, c.chunk_no, c.first_id, c.last_id, c.worker, c.rows_completed + c.rows_failed AS rows_done,
       c.planned_rows, now() - c.started_at AS running_for
  FROM batch_chunks c
  JOIN graphile_worker.jobs q ON q.key = format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)
 WHERE c.status = 'running' AND q.locked_at IS NOT NULL
 ORDER BY c.started_at;

-- The queue underneath: graphile-worker jobs by task, with retries and locks.
SELECT task_identifier, count(*) AS jobs, count(*) FILTER (WHERE attempts > 0) AS retried,
       count(*) FILTER (WHERE locked_at IS NOT NULL) AS running, min(run_at) AS next_due
  FROM graphile_worker.jobs GROUP BY task_identifier;
